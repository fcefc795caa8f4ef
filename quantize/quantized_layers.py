"""k-bit Keras layers: presets of :mod:`quantize.layers` with uniform k-bit quantizers.

``QuantizedConv2D(filters, kernel_size, bits=4)`` quantizes kernel and input to ``bits`` bits
(``SteQuantize``; 2**bits levels in [-1, 1 - 2**(1-bits)]).
"""

from quantize.layers import QuantConv2D, QuantDense, QuantDepthwiseConv2D, QuantSeparableConv2D
from quantize.quantized_ops import SteQuantize


def _kbit(layer_cls, name):
    def factory(*args, bits=4, **kwargs):
        kwargs.setdefault("kernel_quantizer", SteQuantize(bits))
        kwargs.setdefault("input_quantizer", SteQuantize(bits))
        return layer_cls(*args, **kwargs)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"``{layer_cls.__name__}`` with ``bits``-bit kernel and input quantizers."
    return factory


QuantizedConv2D = _kbit(QuantConv2D, "QuantizedConv2D")
QuantizedDepthwiseConv2D = _kbit(QuantDepthwiseConv2D, "QuantizedDepthwiseConv2D")
QuantizedSeparableConv2D = _kbit(QuantSeparableConv2D, "QuantizedSeparableConv2D")
QuantizedDense = _kbit(QuantDense, "QuantizedDense")
