"""Uniform signed k-bit quantization with a clipped straight-through estimator.

Forward, with ``m = 2**(k-1)``::

    q(x) = clip(round(x * m), -m, m - 1) / m

``round`` is round-half-to-even. The output takes exactly ``2**k`` levels
``{-1, -1 + 1/m, ..., 1 - 1/m}`` (range ``[-1, 1 - 2**(1-k)]``; 4 bits: -1, -0.875, ..., 0.875).

Backward::

    dq/dx = 1 if -1 <= x <= 1 - 1/m else 0      (zero where the forward pass clips)

``q`` is idempotent: every level is reproduced exactly. Supported widths: 2..8 and 16 bits.
"""

import numpy as np
import tensorflow as tf

from quantize.base import TIES_TOWARD_ZERO, Quantizer, clipped_ste, int8_levels, register_quantizer
from quantize.bit_widths import SUPPORTED_BITS
from quantize.storage import Storage, pack_codes, unpack_codes


def check_bits(bits):
    """Return ``bits`` as an int, or raise ``ValueError`` quoting the bad value."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got bits={bits!r}")
    return bits


def quantize_uniform(x, bits=4):
    """k-bit uniform quantization of ``x`` (see module docstring). Shape and dtype kept."""
    levels_half = float(2 ** (check_bits(bits) - 1))

    def forward(t):
        return tf.clip_by_value(tf.round(t * levels_half), -levels_half, levels_half - 1) / levels_half

    return clipped_ste(forward, x, -1.0, 1.0 - 1.0 / levels_half)


@register_quantizer("ste_quantize")
class SteQuantize(Quantizer):
    """Uniform signed k-bit quantizer: ``2**bits`` levels in ``[-1, 1 - 2**(1-bits)]``.

    Args:
        bits: bit width, one of 2..8 or 16 (default 4).
    """

    storage_codes = tuple(f"q{bits}" for bits in SUPPORTED_BITS)

    @classmethod
    def for_kernel(cls, bits=4):
        return cls(bits)

    @classmethod
    def for_activation(cls, bits=4):
        return cls(bits)

    def activation_quantizer(self):
        return SteQuantize(self.bits)

    def storage(self, shape):
        """k bits per weight (``q<k>``), no scale: the levels are fixed."""
        return Storage(f"q{self.bits}", self.bits)

    @staticmethod
    def storage_from_code(code, shape):
        return Storage(code, int(code[1:]))

    @staticmethod
    def encode(value, storage):
        """Unsigned codes ``c + 2**(k-1)`` of the levels ``c / 2**(k-1)``, k bits each."""
        half = 2 ** (storage.bits - 1)
        levels = np.rint(value.ravel().astype(np.float64) * half).astype(np.int64)
        return pack_codes(levels + half, storage.bits)

    @staticmethod
    def decode(data, storage, shape):
        count = int(np.prod(shape, dtype=np.int64))
        half = 2 ** (storage.bits - 1)
        levels = (unpack_codes(data, count, storage.bits) - half).astype(np.float32)
        return (levels / np.float32(half)).astype(np.float32).reshape(shape)

    def __init__(self, bits=4):
        self.bits = check_bits(bits)
        self.precision = self.bits
        # Latent weights stay where the STE passes gradient: [-1, 1 - 2**(1-bits)]. A symmetric
        # [-1, 1] clip would strand weights above the top level with zero gradient forever.
        self.latent_clip = (-1.0, 1.0 - 2.0 ** (1 - self.bits))
        # Weights use the whole fixed range; Glorot-sized weights would hit only a few levels.
        # (A config, not an instance: building an initializer draws a seed, and a quantizer
        # used only as an activation must not move the random state.)
        self.kernel_initializer = {"class_name": "RandomUniform", "config": {"minval": -1.0, "maxval": 1.0}}

    def saturation(self):
        """The levels' range, ``[-1, 1 - 2**(1-bits)]``."""
        return self.latent_clip

    def call(self, x):
        return quantize_uniform(x, self.bits)

    def int8_call(self, x):
        """Two integer operations on the int8 grid of ``x`` (``m = 2**(bits-1)``): a MUL by 1 (times
        :data:`~quantize.base.TIES_TOWARD_ZERO`) with a fused [-1, 1] clip into a tensor of scale
        ``1/m`` and zero point 0, whose int8 values are ``round(x m)`` in ``[-m, m]``, then a MINIMUM
        with ``m - 1`` on that grid: the levels' numerators ``j`` in ``[-m, m - 1]``. (No clip of the
        input: a MINIMUM / MAXIMUM there makes the converter squeeze the producer's range, which
        other operators may read, to the quantizer's. No grid value of the saturation range lies at
        a rounding tie.) Up to 8 bits: wider levels do not fit int8."""
        if self.bits > 8:
            return super().int8_call(x)
        m = 2 ** (self.bits - 1)
        rounded = int8_levels(tf.clip_by_value(x * TIES_TOWARD_ZERO, -1.0, 1.0), m)
        return int8_levels(tf.minimum(rounded, (m - 1) / m), m)

    def get_config(self):
        return {"bits": self.bits}
