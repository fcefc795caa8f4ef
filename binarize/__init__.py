"""Binary (1-bit) quantizers and Keras layers."""

from binarize.binary_layers import (
    BinaryConv2D,
    BinaryDense,
    BinaryDepthwiseConv2D,
    BinarySeparableConv2D,
)
from binarize.binary_ops import SteSign, binarize

__all__ = [
    "SteSign",
    "binarize",
    "BinaryConv2D",
    "BinaryDense",
    "BinaryDepthwiseConv2D",
    "BinarySeparableConv2D",
]
