"""Ternary Keras layers: presets of :mod:`quantize.layers` with ternary quantizers.

Kernels use Ternary Weight Networks (``SteTern(rule="twn")``: threshold 0.7 mean|W|, scale a);
inputs use the fixed rule (``SteTern(rule="fixed")``: {-1, 0, +1} with threshold 0.5), as the
original repo quantized activations.
"""

from quantize.layers import preset_family
from ternarize.ternary_ops import SteTern

_family = preset_family(
    "Ternary", kernel_quantizer=SteTern(rule="twn"), input_quantizer=SteTern(rule="fixed")
)
TernaryConv2D = _family["TernaryConv2D"]
TernaryDepthwiseConv2D = _family["TernaryDepthwiseConv2D"]
TernarySeparableConv2D = _family["TernarySeparableConv2D"]
TernaryDense = _family["TernaryDense"]
