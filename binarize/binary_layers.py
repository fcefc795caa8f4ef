"""Binary Keras layers: presets of :mod:`quantize.layers` with sign quantizers.

Kernel and input both binarized to {-1, +1} (``SteSign``); latent weights clipped to [-1, 1].
Pass ``kernel_quantizer=SteSign(channel_scale=True)`` for XNOR-Net style scaled weights, or
``input_quantizer=None`` for binary weights with float activations.
"""

from quantize.layers import preset_family

_family = preset_family("Binary", kernel_quantizer="ste_sign", input_quantizer="ste_sign")
BinaryConv2D = _family["BinaryConv2D"]
BinaryDepthwiseConv2D = _family["BinaryDepthwiseConv2D"]
BinarySeparableConv2D = _family["BinarySeparableConv2D"]
BinaryDense = _family["BinaryDense"]
