"""Generic quantized Keras layers: one base for every precision.

Each layer takes two quantizers (see :mod:`quantize.base`):

* ``input_quantizer`` applied to the layer input (the quantized *activation*; ``None`` keeps the
  input as it is; any Keras activation such as ``"relu"`` also works, for full precision);
* ``kernel_quantizer`` applied to the latent float kernel(s) on every read (``None``: float).

The float *latent* weights are what the optimizer updates; the quantized values are recomputed
from them in each forward pass (straight-through gradients reach the latent weights). If the
kernel quantizer has a ``latent_clip`` and no constraint is given, the latent weights are clipped
to the quantizer's ``latent_clip`` range after every optimizer update (:class:`~quantize.base.WeightClip`).
With both quantizers ``None`` each layer is exactly its Keras parent.

The precision packages build on these: ``binarize.BinaryConv2D``, ``ternarize.TernaryConv2D``,
``quantize.QuantizedConv2D`` ... are presets (see :func:`preset`), not copies.
"""

import functools

import keras
from keras import ops

from quantize import base


class QuantizedLayerBase:
    """Mixin adding input/kernel quantizers to a Keras layer class.

    Use as the first base: ``class QuantConv2D(QuantizedLayerBase, keras.layers.Conv2D)``.
    Subclasses list their kernel attributes in ``_kernel_args`` as
    ``(attribute, initializer_kwarg, constraint_kwarg)`` and implement ``call`` with
    :meth:`quantize_input` and :meth:`quantize_kernel`.
    """

    _kernel_args = (("kernel", "kernel_initializer", "kernel_constraint"),)

    def __init__(self, *args, input_quantizer=None, kernel_quantizer=None, **kwargs):
        input_quantizer = base.get(input_quantizer)
        kernel_quantizer = base.get(kernel_quantizer)
        for _, init_arg, constraint_arg in self._kernel_args:
            if kwargs.get(constraint_arg) is None:
                kwargs[constraint_arg] = base.latent_clip_constraint(kernel_quantizer)
            preferred_init = getattr(kernel_quantizer, "kernel_initializer", None)
            if preferred_init is not None and init_arg not in kwargs:
                # A fresh instance per kernel: an unseeded Keras initializer instance returns the
                # same values on every call, so sharing one would give identical kernels.
                kwargs[init_arg] = keras.initializers.get(preferred_init)
                if kwargs[init_arg] is preferred_init:
                    kwargs[init_arg] = preferred_init.clone()
        super().__init__(*args, **kwargs)
        self.input_quantizer = input_quantizer
        self.kernel_quantizer = kernel_quantizer

    # --- quantization seams -------------------------------------------------------------
    def quantize_input(self, inputs):
        """Quantized (or activated) input; unchanged when ``input_quantizer`` is ``None``."""
        return inputs if self.input_quantizer is None else self.input_quantizer(inputs)

    def quantize_kernel(self, kernel):
        """Quantized view of a latent kernel; the kernel itself when no quantizer is set or
        inside :func:`quantize.base.real_weights`."""
        if self.kernel_quantizer is None or base.weights_are_real():
            return kernel
        return self.kernel_quantizer(kernel)

    @property
    def quantized_kernels(self):
        """Dict ``attribute -> quantized value`` of every kernel (what inference uses)."""
        return {attr: self.quantize_kernel(getattr(self, attr)) for attr, _, _ in self._kernel_args}

    # --- reporting ----------------------------------------------------------------------
    @property
    def bits_per_weight(self):
        """Bits needed to store one kernel weight (32 when the kernel is not quantized)."""
        return base.precision_of(self.kernel_quantizer)

    @property
    def activation_bits(self):
        """Bits of one input value as this layer consumes it (32 when not quantized)."""
        return base.precision_of(self.input_quantizer)

    def _conv_options(self):
        return dict(strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
                    data_format=self.data_format)

    def _bias_and_activation(self, outputs):
        if self.use_bias:
            if getattr(self, "data_format", "channels_last") == "channels_first":
                shape = (1, -1) + (1,) * (len(outputs.shape) - 2)
                outputs = ops.add(outputs, ops.reshape(self.bias, shape))
            else:
                outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            input_quantizer=base.serialize(self.input_quantizer),
            kernel_quantizer=base.serialize(self.kernel_quantizer),
        )
        return config


def _register(cls):
    return keras.saving.register_keras_serializable(package="qenas")(cls)


@_register
class QuantConv2D(QuantizedLayerBase, keras.layers.Conv2D):
    """2-D convolution with quantized input and kernel.

    Input shape: ``(batch, H, W, C_in)`` (channels_last). Output: ``(batch, H', W', filters)``.
    Computes ``activation(conv2d(input_quantizer(x), kernel_quantizer(kernel)) + bias)``.
    Other arguments: as :class:`keras.layers.Conv2D`.
    """

    def call(self, inputs):
        outputs = self.convolution_op(self.quantize_input(inputs), self.quantize_kernel(self.kernel))
        return self._bias_and_activation(outputs)


@_register
class QuantDepthwiseConv2D(QuantizedLayerBase, keras.layers.DepthwiseConv2D):
    """Depthwise 2-D convolution with quantized input and depthwise kernel.

    Input ``(batch, H, W, C)``; output ``(batch, H', W', C * depth_multiplier)``.
    """

    _kernel_args = (("kernel", "depthwise_initializer", "depthwise_constraint"),)

    def call(self, inputs):
        outputs = ops.depthwise_conv(
            self.quantize_input(inputs), self.quantize_kernel(self.kernel), **self._conv_options()
        )
        return self._bias_and_activation(outputs)


@_register
class QuantSeparableConv2D(QuantizedLayerBase, keras.layers.SeparableConv2D):
    """Separable 2-D convolution (depthwise then 1x1 pointwise), both kernels quantized.

    Input ``(batch, H, W, C_in)``; output ``(batch, H', W', filters)``.
    """

    _kernel_args = (
        ("depthwise_kernel", "depthwise_initializer", "depthwise_constraint"),
        ("pointwise_kernel", "pointwise_initializer", "pointwise_constraint"),
    )

    def call(self, inputs):
        return self.call_with(inputs, self.kernel_quantizer, self.input_quantizer)

    def call_with(self, inputs, kernel_quantizer, input_quantizer):
        """The layer's computation with other quantizers on the same latent kernels (a
        mixed-precision search runs one set of weights at the precision it samples)."""
        if input_quantizer is not None:
            inputs = input_quantizer(inputs)
        quantize = (lambda w: w) if kernel_quantizer is None or base.weights_are_real() else kernel_quantizer
        outputs = ops.separable_conv(
            inputs, quantize(self.depthwise_kernel), quantize(self.pointwise_kernel), **self._conv_options(),
        )
        return self._bias_and_activation(outputs)


@_register
class QuantDense(QuantizedLayerBase, keras.layers.Dense):
    """Fully connected layer with quantized input and kernel.

    Input ``(batch, ..., d_in)``; output ``(batch, ..., units)``.
    """

    def call(self, inputs):
        outputs = ops.matmul(self.quantize_input(inputs), self.quantize_kernel(self.kernel))
        return self._bias_and_activation(outputs)


def preset(layer_cls, name, **defaults):
    """Make a factory ``name(*args, **kwargs)`` building ``layer_cls`` with default quantizers.

    ``defaults`` (e.g. ``kernel_quantizer="ste_sign"``) are overridden by explicit kwargs. The
    built layer serialises as ``layer_cls`` with its quantizers, so no per-precision class is
    needed to reload a model.
    """

    @functools.wraps(layer_cls, assigned=("__module__",), updated=())
    def factory(*args, **kwargs):
        return layer_cls(*args, **{**defaults, **kwargs})

    factory.__name__ = factory.__qualname__ = name
    described = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    factory.__doc__ = f"``{layer_cls.__name__}`` with defaults {described}.\n\n{layer_cls.__doc__}"
    return factory


def preset_family(prefix, **defaults):
    """The four layer presets of one precision: ``{prefix}Conv2D``, ``...Dense``, etc."""
    return {
        f"{prefix}{kind}": preset(cls, f"{prefix}{kind}", **defaults)
        for kind, cls in (
            ("Conv2D", QuantConv2D),
            ("DepthwiseConv2D", QuantDepthwiseConv2D),
            ("SeparableConv2D", QuantSeparableConv2D),
            ("Dense", QuantDense),
        )
    }
