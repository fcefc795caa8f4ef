"""Uniform signed k-bit quantization with a clipped straight-through estimator.

Forward, with ``m = 2**(k-1)``::

    q(x) = clip(round(x * m), -m, m - 1) / m

``round`` is round-half-to-even. The output takes exactly ``2**k`` levels
``{-1, -1 + 1/m, ..., 1 - 1/m}`` (range ``[-1, 1 - 2**(1-k)]``; 4 bits: -1, -0.875, ..., 0.875).

Backward::

    dq/dx = 1 if -1 <= x <= 1 - 1/m else 0      (zero where the forward pass clips)

``q`` is idempotent: every level is reproduced exactly. Supported widths: 2..8 and 16 bits.
"""

import keras
import tensorflow as tf

from quantize.base import Quantizer, clipped_ste, register_quantizer
from quantize.bit_widths import SUPPORTED_BITS


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

    def __init__(self, bits=4):
        self.bits = check_bits(bits)
        self.precision = self.bits
        # Latent weights stay where the STE passes gradient: [-1, 1 - 2**(1-bits)]. A symmetric
        # [-1, 1] clip would strand weights above the top level with zero gradient forever.
        self.latent_clip = (-1.0, 1.0 - 2.0 ** (1 - self.bits))
        # Weights use the whole fixed range; Glorot-sized weights would hit only a few levels.
        self.kernel_initializer = keras.initializers.RandomUniform(-1.0, 1.0)

    def call(self, x):
        return quantize_uniform(x, self.bits)

    def get_config(self):
        return {"bits": self.bits}
