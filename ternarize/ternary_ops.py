"""Ternary quantization: values {-a, 0, +a} with a straight-through estimator.

Two rules:

* ``rule="twn"`` (default; Ternary Weight Networks, Li, Zhang & Liu 2016)::

      delta = twn_factor * mean(|x|)                   (twn_factor = 0.7)
      a     = mean(|x_i| for |x_i| > delta)            (a = 0 when no value exceeds delta)
      q(x)  = +a if x > delta,  -a if x < -delta,  0 otherwise

* ``rule="fixed"`` (the original repo)::

      q(x) = +1 if x > threshold_value,  -1 if x < -threshold_value,  0 otherwise   (threshold 0.5)

Backward: ``dq/dx = 1 if |x| <= clip_value else 0`` (``a`` is a constant in the backward pass).
Both rules are idempotent: ``q(q(x)) == q(x)``.
"""

import numpy as np
import tensorflow as tf

from quantize.base import TIES_TOWARD_ZERO, Quantizer, clipped_ste, int8_levels, register_quantizer
from quantize.storage import Storage, pack_codes, unpack_codes

RULES = ("twn", "fixed")


def ternarize(x, rule="twn", threshold_value=0.5, twn_factor=0.7, clip_value=1.0):
    """Ternary values of ``x`` (see module docstring). Shape and dtype kept."""

    def forward(t):
        abs_t = tf.abs(t)
        if rule == "twn":
            # Statistics in float64: the sum of n copies of a float32/float16 ``a`` is then exact,
            # so ``a`` is reproduced bit for bit (idempotence) and float16 sums cannot overflow.
            abs64 = tf.cast(abs_t, tf.float64)
            delta = twn_factor * tf.reduce_mean(abs64)
            above = abs64 > delta
            count = tf.reduce_sum(tf.cast(above, tf.float64))
            total = tf.reduce_sum(tf.where(above, abs64, tf.zeros_like(abs64)))
            scale = tf.cast(tf.math.divide_no_nan(total, count), t.dtype)
        else:
            delta = tf.constant(threshold_value, t.dtype)
            above = abs_t > delta
            scale = tf.ones((), t.dtype)
        return tf.where(above, tf.sign(t) * scale, tf.zeros_like(t))

    return clipped_ste(forward, x, -clip_value, clip_value)


@register_quantizer("ste_tern")
class SteTern(Quantizer):
    """Ternary quantizer, values ``{-a, 0, +a}`` (2 bits per value).

    Args:
        rule: ``"twn"`` (threshold ``0.7 * mean|x|``, learned-free scale ``a``) or ``"fixed"``
            (threshold ``threshold_value``, ``a = 1``; use this for activations).
        threshold_value: threshold of the fixed rule (default 0.5).
        twn_factor: threshold factor of the TWN rule (default 0.7).
        clip_value: gradient passes where ``|x| <= clip_value``; latent weights clipped to it.
    """

    precision = 2
    storage_codes = ("t2", "t2s")

    @classmethod
    def for_kernel(cls, bits=None):
        """TWN weights: {-a, 0, +a} with a per-kernel scale."""
        return cls(rule="twn")

    @classmethod
    def for_activation(cls, bits=None):
        """Fixed-threshold activations {-1, 0, +1} (threshold 0.5)."""
        return cls(rule="fixed")

    def activation_quantizer(self):
        return SteTern(rule="fixed")

    def storage(self, shape):
        """2 bits per weight, plus one float32 scale ``a`` with the TWN rule (``t2s``)."""
        return self.storage_from_code("t2s" if self.rule == "twn" else "t2", shape)

    @staticmethod
    def storage_from_code(code, shape):
        return Storage("t2s", 2, 1) if code == "t2s" else Storage("t2", 2)

    @staticmethod
    def encode(value, storage):
        """2-bit codes 0 -> 0, 1 -> +a, 2 -> -a, 4 per byte; ``t2s``: the scale ``a`` first."""
        flat = value.ravel()
        packed = pack_codes(np.where(flat > 0, 1, np.where(flat < 0, 2, 0)), 2)
        if storage.code == "t2":
            return packed
        scale = np.float32(np.abs(flat).max()) if flat.size else np.float32(0)
        return np.array([scale], "<f4").tobytes() + packed

    @staticmethod
    def decode(data, storage, shape):
        count = int(np.prod(shape, dtype=np.int64))
        scale = np.float32(1.0)
        if storage.code == "t2s":
            scale, data = np.frombuffer(data, dtype="<f4", count=1)[0], data[4:]
        codes = unpack_codes(data, count, 2)
        if codes.size and codes.max() > 2:
            raise ValueError("ternary code 3 does not exist")
        return np.array([0.0, scale, -scale], dtype=np.float32)[codes].reshape(shape)

    def __init__(self, rule="twn", threshold_value=0.5, twn_factor=0.7, clip_value=1.0):
        if rule not in RULES:
            raise ValueError(f"SteTern rule must be one of {RULES}, got rule={rule!r}")
        if not clip_value > 0:
            raise ValueError(f"SteTern needs clip_value > 0, got clip_value={clip_value!r}")
        if not 0 < threshold_value < clip_value + 1e-12:
            raise ValueError(
                f"SteTern needs 0 < threshold_value <= clip_value, got threshold_value={threshold_value!r}"
            )
        self.rule = rule
        self.threshold_value = float(threshold_value)
        self.twn_factor = float(twn_factor)
        self.clip_value = float(clip_value)
        self.latent_clip = self.clip_value
        if rule == "fixed":
            # With a fixed threshold, small (Glorot-sized) weights would all round to 0.
            # (A config, not an instance: building an initializer draws a seed, and a quantizer
            # used only as an activation must not move the random state.)
            self.kernel_initializer = {"class_name": "RandomUniform",
                                       "config": {"minval": -self.clip_value, "maxval": self.clip_value}}

    def saturation(self):
        """The fixed rule: ``[-clip_value, clip_value]`` (its threshold lies inside); the TWN
        rule depends on the statistics of its input: none."""
        return (-self.clip_value, self.clip_value) if self.rule == "fixed" else None

    def call(self, x):
        return ternarize(x, self.rule, self.threshold_value, self.twn_factor, self.clip_value)

    def export_call(self, x):
        """The fixed rule as ``clip(round(x / (2 threshold)), -1, 1)`` (round half to even, so
        ``|x| = threshold`` gives 0 as in :meth:`call`): multiply, round and clip, which TensorFlow
        Lite's CPU delegate runs, where ``call``'s abs / greater / sign / select split the exported
        graph (an MNIST child: float 0.40 against 1.0-1.6 ms per image, int8 2.5 against 4.0).
        (Narrower saturation ranges, which would drop the clip, cost int8 agreement: the rounded
        output shares its input's int8 range.) The TWN rule: :meth:`call`."""
        if self.rule != "fixed":
            return self.call(x)
        return tf.clip_by_value(tf.round(x * (0.5 / self.threshold_value)), -1.0, 1.0)

    def int8_call(self, x):
        """The fixed rule on the int8 grid of its input, one integer operation:
        a MUL by ``1 / (2 threshold)`` (times :data:`~quantize.base.TIES_TOWARD_ZERO`, so
        ``|x| = threshold`` gives 0) with a fused [-1, 1] clip, whose output (scale 1, zero point
        0) holds -1, 0 or +1 (the clip saturates as :meth:`saturation` does). With the default
        ``clip_value`` 1 the input is first clipped to [-1, 1] (TensorFlow Lite's RELU_N1_TO_1, whose
        output grid is finer than its producer's); other clips would become MINIMUM / MAXIMUM, which
        make the converter squeeze the producer's range, so they are left out (the result is the
        same). The TWN rule depends on its input's statistics: no integer form."""
        if self.rule != "fixed":
            return super().int8_call(x)
        if self.clip_value == 1.0:  # a RELU_N1_TO_1: a finer grid around the thresholds
            x = tf.clip_by_value(x, -1.0, 1.0)
        gain = (0.5 / self.threshold_value) * TIES_TOWARD_ZERO
        return int8_levels(tf.clip_by_value(x * gain, -1.0, 1.0), 1)

    def get_config(self):
        return {
            "rule": self.rule,
            "threshold_value": self.threshold_value,
            "twn_factor": self.twn_factor,
            "clip_value": self.clip_value,
        }
