"""Quantization for every precision: the generic base (quantizers, layers) and k-bit presets.

``quantize.base`` / ``quantize.layers`` hold what binary, ternary and k-bit share;
``binarize`` and ``ternarize`` add their quantizers and presets on top.

The names below are imported on first use (PEP 562), so ``quantize.bit_widths`` can be read
without importing TensorFlow.
"""

import importlib

_EXPORTS = {
    "quantize.base": ("Quantizer", "WeightClip", "clipped_ste", "get", "precision_of", "serialize"),
    "quantize.layers": ("QuantConv2D", "QuantDense", "QuantDepthwiseConv2D", "QuantizedLayerBase",
                        "QuantSeparableConv2D"),
    "quantize.quantized_layers": ("QuantizedConv2D", "QuantizedDense", "QuantizedDepthwiseConv2D",
                                  "QuantizedSeparableConv2D"),
    "quantize.quantized_ops": ("SteQuantize", "quantize_uniform"),
    "quantize.bit_widths": ("SUPPORTED_BITS",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'quantize' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
