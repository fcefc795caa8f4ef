"""Ternary (2-bit, three-level) quantizers and Keras layers."""

from ternarize.ternary_layers import (
    TernaryConv2D,
    TernaryDense,
    TernaryDepthwiseConv2D,
    TernarySeparableConv2D,
)
from ternarize.ternary_ops import SteTern, ternarize

__all__ = [
    "SteTern",
    "ternarize",
    "TernaryConv2D",
    "TernaryDense",
    "TernaryDepthwiseConv2D",
    "TernarySeparableConv2D",
]
