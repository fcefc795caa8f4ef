"""Quantization for every precision: the generic base (quantizers, layers) and k-bit presets.

``quantize.base`` / ``quantize.layers`` hold what binary, ternary and k-bit share;
``binarize`` and ``ternarize`` add their quantizers and presets on top.
"""

from quantize.base import Quantizer, WeightClip, clipped_ste, get, precision_of, serialize
from quantize.layers import (
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantizedLayerBase,
    QuantSeparableConv2D,
)
from quantize.quantized_layers import (
    QuantizedConv2D,
    QuantizedDense,
    QuantizedDepthwiseConv2D,
    QuantizedSeparableConv2D,
)
from quantize.quantized_ops import SUPPORTED_BITS, SteQuantize, quantize_uniform

__all__ = [
    "Quantizer", "WeightClip", "clipped_ste", "get", "precision_of", "serialize",
    "QuantConv2D", "QuantDense", "QuantDepthwiseConv2D", "QuantizedLayerBase", "QuantSeparableConv2D",
    "QuantizedConv2D", "QuantizedDense", "QuantizedDepthwiseConv2D", "QuantizedSeparableConv2D",
    "SUPPORTED_BITS", "SteQuantize", "quantize_uniform",
]
