"""Binary (1-bit) quantization: sign with a hard-tanh straight-through estimator.

Forward::

    q(x) = +1  if x >= 0          (so sign(0) = +1 and the values are exactly {-1, +1})
           -1  otherwise

Backward (Hubara et al., "Binarized Neural Networks", 2016; hard-tanh STE)::

    dq/dx = 1  if |x| <= clip_value  else 0

With ``channel_scale=True`` (XNOR-Net, Rastegari et al. 2016), weights are scaled per output
channel by ``alpha = mean(|W|)`` over every axis but the last, so ``q(W) = alpha * sign(W)``; alpha
is treated as a constant in the backward pass.
"""

import numpy as np
import tensorflow as tf

from quantize.base import Quantizer, clipped_ste, int8_levels, on_int8_grid, register_quantizer
from quantize.storage import Storage, pack_codes, unpack_codes


def binarize(x, clip_value=1.0):
    """Sign of ``x`` in {-1, +1} (sign(0) = +1) with the clipped STE. Shape and dtype kept."""
    one = tf.ones((), x.dtype)
    return clipped_ste(lambda t: tf.where(t >= 0, one, -one), x, -clip_value, clip_value)


@register_quantizer("ste_sign")
class SteSign(Quantizer):
    """Binary quantizer ``q(x) = sign(x)`` in {-1, +1}, hard-tanh STE.

    Args:
        clip_value: the gradient passes where ``|x| <= clip_value`` (default 1.0); latent
            weights are clipped to the same range.
        channel_scale: multiply by the per-output-channel mean absolute value (XNOR-Net
            weights). Output values are then ``{-alpha_c, +alpha_c}`` per channel ``c`` (last axis).
    """

    precision = 1
    storage_codes = ("b1", "b1c")

    @classmethod
    def for_kernel(cls, bits=None, scale=False):
        """Binary weights: ``sign(W)``; ``scale``: ``mean_c |W| * sign(W)`` per output channel."""
        return cls(channel_scale=scale)

    @classmethod
    def for_activation(cls, bits=None):
        return cls()

    def activation_quantizer(self):
        return SteSign()

    def storage(self, shape):
        """1 bit per weight (``b1``), plus a float32 scale per output channel with
        ``channel_scale`` (``b1c``)."""
        return self.storage_from_code("b1c" if self.channel_scale else "b1", shape)

    @staticmethod
    def storage_from_code(code, shape):
        return Storage("b1c", 1, int(shape[-1])) if code == "b1c" else Storage("b1", 1)

    @staticmethod
    def encode(value, storage):
        """Signs packed 8 per byte (``q(w) >= 0`` as 1); ``b1c``: the per-channel scales first."""
        signs = pack_codes(~np.signbit(value.ravel()), 1)
        if storage.code == "b1":
            return signs
        scales = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
        return scales.astype("<f4").tobytes() + signs

    @staticmethod
    def decode(data, storage, shape):
        count = int(np.prod(shape, dtype=np.int64))
        if storage.code == "b1":
            return np.where(unpack_codes(data, count, 1) == 1, 1.0, -1.0).astype(np.float32).reshape(shape)
        channels = int(shape[-1])
        scales = np.frombuffer(data, dtype="<f4", count=channels).astype(np.float32)
        signs = unpack_codes(data[4 * channels:], count, 1).reshape(-1, channels)
        return np.where(signs == 1, scales, -scales).astype(np.float32).reshape(shape)

    def __init__(self, clip_value=1.0, channel_scale=False):
        if not clip_value > 0:
            raise ValueError(f"SteSign needs clip_value > 0, got clip_value={clip_value!r}")
        self.clip_value = float(clip_value)
        self.channel_scale = bool(channel_scale)
        self.latent_clip = self.clip_value

    def saturation(self):
        """Only the sign matters: ``[-clip_value, clip_value]``."""
        return (-self.clip_value, self.clip_value)

    def int8_call(self, x):
        """The sign on the int8 grid of ``[-1, 1]`` (of ``x / clip_value``; scale ``s = 2 / 255``,
        zero point ``z``, int8 values ``q``), with two integer operations: an ADD of half a step into
        a tensor of scale ``s / 2`` and zero point 0, which holds ``2 (q - z) + 1`` (odd, so never 0,
        and positive exactly where ``x >= 0``), then a MUL by ``2 / s`` with a fused [-1, 1] clip
        into a tensor of scale 1 and zero point 0, which holds -1 or +1. Output ``{-1, +1}``; an
        activation, so no ``channel_scale``."""
        if self.channel_scale:
            return super().int8_call(x)
        step = 2.0 / 255.0
        if self.clip_value != 1.0:  # sign(x) = sign(x / c): keep the clip a RELU_N1_TO_1 (see SteTern.int8_call)
            x = x * (1.0 / self.clip_value)
        x = on_int8_grid(x, -1.0, 1.0)
        odd = int8_levels(x + step / 2, 2.0 / step)
        return int8_levels(tf.clip_by_value(odd * (2.0 / step), -1.0, 1.0), 1)

    def call(self, x):
        q = binarize(x, self.clip_value)
        if self.channel_scale:
            axes = list(range(x.shape.rank - 1))
            # Mean in float64 so that re-quantizing ``alpha * sign`` gives ``alpha`` back exactly.
            alpha = tf.reduce_mean(tf.cast(tf.abs(x), tf.float64), axis=axes, keepdims=True)
            q = q * tf.stop_gradient(tf.cast(alpha, x.dtype))
        return q

    def get_config(self):
        return {"clip_value": self.clip_value, "channel_scale": self.channel_scale}
