"""The generic machinery shared by every precision: quantizer base class, straight-through
estimator, latent-weight clipping constraint, and the quantizer registry.

A *quantizer* is a small serialisable callable ``q(x) -> x_q`` with a class attribute
``precision`` (bits per value). Its forward pass rounds to a finite set of levels; its backward
pass is a straight-through estimator (STE): the incoming gradient is passed through unchanged
where the input lies inside the quantizer's clip range and set to zero outside it::

    dq/dx = 1  if clip_low <= x <= clip_high  else 0

The concrete quantizers live with their precision: ``binarize.binary_ops.SteSign`` (1 bit),
``ternarize.ternary_ops.SteTern`` (2 bits, 3 levels) and ``quantize.quantized_ops.SteQuantize``
(k bits). They can be referred to by name anywhere a quantizer is accepted::

    quantize.get("ste_sign"), quantize.get({"class_name": "SteTern", "config": {...}})
"""

import contextlib
import importlib
import threading

import keras
import tensorflow as tf

from quantize import storage

_PACKAGE = "qenas"
_ALIASES = {}
# The modules of the concrete quantizers (they register themselves when imported).
PRECISION_MODULES = ("binarize.binary_ops", "ternarize.ternary_ops", "quantize.quantized_ops")


def register_quantizer(alias):
    """Class decorator: register a quantizer for Keras serialisation, under ``alias``, and as
    the codec of its ``storage_codes`` (:mod:`quantize.storage`)."""

    def decorator(cls):
        cls = keras.saving.register_keras_serializable(package=_PACKAGE)(cls)
        _ALIASES[alias] = cls
        _ALIASES[cls.__name__] = cls
        storage.register_codec(cls.storage_codes, cls)
        return cls

    return decorator


def clipped_ste(forward, x, clip_low, clip_high):
    """Apply ``forward(x)`` with a clipped straight-through gradient.

    Args:
        forward: function computing the quantized value of ``x`` (any shape).
        x: float tensor.
        clip_low, clip_high: the gradient is ``dy`` where ``clip_low <= x <= clip_high``, else 0.

    Returns:
        ``forward(x)``, same shape and dtype as ``x``.
    """

    @tf.custom_gradient
    def _quantize(x):
        def grad(dy):
            inside = tf.logical_and(x >= clip_low, x <= clip_high)
            return dy * tf.cast(inside, dy.dtype)

        return forward(x), grad

    return _quantize(tf.convert_to_tensor(x))


class Quantizer:
    """Base class of quantizers.

    Subclasses implement :meth:`call` and :meth:`get_config`, own the facts of their precision
    (:meth:`for_kernel` / :meth:`for_activation`: the kernel and activation quantizers of a
    precision; :meth:`storage`: how a quantized kernel is stored; :meth:`activation_quantizer`:
    the activation matching a kernel quantizer; the codec of their storage codes:
    :meth:`storage_from_code`, :meth:`encode`, :meth:`decode`), and set:

    * ``precision``: bits needed to store one quantized value (1 binary, 2 ternary, k for k-bit).
    * ``latent_clip``: the range ``c`` (meaning ``[-c, c]``) or ``(low, high)`` latent float
      weights are clipped to after each optimizer update when this quantizer is a kernel
      quantizer (``None``: no clipping). It must lie inside the STE's pass-through range, or
      weights at its edge would never receive a gradient again.
    * ``kernel_initializer``: preferred initializer of latent weights, as anything
      ``keras.initializers.get`` reads (``None``: layer default). Give a name or config rather
      than an instance: constructing an initializer draws a seed from the global random state.
    """

    precision = 32
    latent_clip = None
    kernel_initializer = None
    storage_codes = ()  # the storage codes this class encodes and decodes (quantize.storage)

    @classmethod
    def for_kernel(cls, bits=None):
        """The kernel quantizer of this precision (``bits``: the width, for k-bit; a precision
        with options takes them as keywords, e.g. binary's ``scale``)."""
        raise NotImplementedError

    @classmethod
    def for_activation(cls, bits=None):
        """The activation quantizer of this precision (where ENAS has a ReLU)."""
        raise NotImplementedError

    def activation_quantizer(self):
        """The activation quantizer of the same precision as this (kernel) quantizer."""
        return None

    def storage(self, shape):
        """The :class:`quantize.storage.Storage` of a kernel of ``shape`` quantized by this
        quantizer; ``None``: its values are stored as raw float32."""
        return None

    # --- codec of ``storage_codes`` (the packed export) ---------------------------------------
    @staticmethod
    def storage_from_code(code, shape):
        """The Storage of a kernel of ``shape`` stored under ``code``."""
        raise NotImplementedError

    @staticmethod
    def encode(value, storage):
        """Bytes of the quantized kernel ``value`` (numpy) under ``storage``."""
        raise NotImplementedError

    @staticmethod
    def decode(data, storage, shape):
        """Inverse of :meth:`encode`: float32 numpy array of ``shape``."""
        raise NotImplementedError

    def saturation(self):
        """``(low, high)`` outside which this quantizer's output no longer changes, so that
        ``q(clip(x, low, high)) == q(x)``; ``None`` when there is no such range (a rule that
        depends on the statistics of ``x``)."""
        return None

    def __call__(self, x):
        x = tf.convert_to_tensor(x)
        if inputs_on_int8_grid():
            return self.int8_call(x)
        if not inputs_saturated():
            return self.call(x)
        saturation = self.saturation()
        if saturation is not None:  # an exported integer model then resolves the thresholds finely
            x = tf.clip_by_value(x, *saturation)
        return self.export_call(x)

    def call(self, x):
        raise NotImplementedError

    def export_call(self, x):
        """:meth:`call`'s values (no gradient needed), written with operators TensorFlow Lite
        runs fast; used inside :func:`saturated_inputs` (the export). Default: :meth:`call`."""
        return self.call(x)

    def int8_call(self, x):
        """:meth:`call`'s values on an int8 grid, written so that TensorFlow Lite's full-integer
        conversion makes them integer operations (used inside :func:`int8_grid_inputs`): the
        input is clipped to :meth:`saturation` and rounded to that range's int8 grid
        (:func:`on_int8_grid`), and the output is a tensor whose int8 values are the levels
        exactly (:func:`int8_levels`). For every value of the input grid the result equals
        :meth:`call` (thresholds included). Default: an :class:`Int8ExportError`."""
        raise Int8ExportError(f"{type(self).__name__}{self.get_config()} has no integer (int8) form")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightClip(keras.constraints.Constraint):
    """Clip latent weights to ``[min_value, clip_value]`` after every optimizer update
    (``min_value`` defaults to ``-clip_value``).

    Without it, weights under a sign/ternary quantizer drift far outside the range where the STE
    passes gradient and can no longer flip ("starved" weights).
    """

    def __init__(self, clip_value=1.0, min_value=None):
        if not clip_value > 0:
            raise ValueError(f"WeightClip needs clip_value > 0, got clip_value={clip_value!r}")
        if min_value is not None and not min_value < 0:
            raise ValueError(f"WeightClip needs min_value < 0, got min_value={min_value!r}")
        self.clip_value = float(clip_value)
        self.min_value = -self.clip_value if min_value is None else float(min_value)

    def __call__(self, w):
        return keras.ops.clip(w, self.min_value, self.clip_value)

    def get_config(self):
        config = {"clip_value": self.clip_value}
        if self.min_value != -self.clip_value:
            config["min_value"] = self.min_value
        return config


_STAGE = threading.local()


@contextlib.contextmanager
def _stage(name):
    """Set the thread's flag ``name`` for the block (read when a model is traced)."""
    previous = getattr(_STAGE, name, False)
    setattr(_STAGE, name, True)
    try:
        yield
    finally:
        setattr(_STAGE, name, previous)


def real_weights():
    """Within this block the quantized layers use their latent float kernels as they are (no
    kernel quantizer; activations stay quantized): the first stage of two-stage training
    (Real-to-Binary, ReActNet). Read when a layer is called, so a ``tf.function`` traced inside
    the block keeps real weights."""
    return _stage("real")


def weights_are_real():
    """True inside :func:`real_weights`."""
    return getattr(_STAGE, "real", False)


def saturated_inputs():
    """Within this block (read when a model is traced) every quantizer first clips its input to
    its :meth:`Quantizer.saturation` range and then runs its :meth:`Quantizer.export_call`: the
    same outputs, and a TensorFlow Lite int8 export then quantizes that input on the quantizer's
    own range, not on the range of the values that feed it, so its thresholds move by far less
    (:mod:`enas.deploy.tflite_export`)."""
    return _stage("saturated")


def inputs_saturated():
    """True inside :func:`saturated_inputs`."""
    return getattr(_STAGE, "saturated", False)


def int8_grid_inputs():
    """Within this block (read when a model is traced for a full-integer TensorFlow Lite
    export) every quantizer runs its :meth:`Quantizer.int8_call`: its input on the int8 grid of
    its saturation range and its output as exact int8 levels, so the converter emits integer
    operations only (no DEQUANTIZE / ROUND / QUANTIZE round trip, no RELU_N1_TO_1 of its own)."""
    return _stage("int8_grid")


def inputs_on_int8_grid():
    """True inside :func:`int8_grid_inputs`."""
    return getattr(_STAGE, "int8_grid", False)


class Int8ExportError(ValueError):
    """A quantizer without an integer form in a full-integer export."""


# The factor that makes a rounding at an exact tie go towards zero, as the quantizers' strict
# thresholds do (``|x| > threshold``). Far smaller than any gap between an int8 grid value and a
# threshold (at least ``1 / (2 * 255)`` of a level step), far larger than float rounding.
TIES_TOWARD_ZERO = 1.0 - 2.0 ** -20


def on_int8_grid(x, low, high):
    """``x`` clipped to ``[low, high]`` and rounded to that range's int8 grid (256 levels, scale
    ``(high - low) / 255``, the zero point nudged to an integer: TensorFlow's fake quantization),
    which the int8 conversion then gives the tensor exactly, whatever the calibration saw."""
    x = tf.clip_by_value(x, low, high)
    return tf.quantization.fake_quant_with_min_max_args(x, min=float(low), max=float(high), num_bits=8)


def int8_levels(x, denominator):
    """``x`` rounded to the levels ``j / denominator`` (``j`` in [-128, 127]): a tensor the int8
    conversion stores as the integers ``j`` (scale ``1 / denominator``, zero point 0)."""
    scale = 1.0 / denominator
    return tf.quantization.fake_quant_with_min_max_args(x, min=-128.0 * scale, max=127.0 * scale, num_bits=8)


def latent_clip_constraint(quantizer):
    """The :class:`WeightClip` matching ``quantizer.latent_clip`` (``c`` or ``(low, high)``), or None."""
    clip = getattr(quantizer, "latent_clip", None)
    if not clip:
        return None
    if isinstance(clip, (tuple, list)):
        return WeightClip(clip_value=clip[1], min_value=clip[0])
    return WeightClip(clip)


def import_all_precisions():
    """Import every concrete quantizer module (each registers its classes and codecs)."""
    for module in PRECISION_MODULES:
        importlib.import_module(module)


def get(identifier):
    """Resolve ``identifier`` to a quantizer (or activation callable), or ``None``.

    Accepts ``None``, a :class:`Quantizer`, a registered name (``"ste_sign"``, ``"ste_tern"``,
    ``"ste_quantize"``, or a class name), a serialised dict, or any callable such as
    ``keras.activations.relu`` (a full-precision "activation quantizer").
    """
    if identifier is None or isinstance(identifier, Quantizer):
        return identifier
    import_all_precisions()
    if isinstance(identifier, str):
        if identifier in _ALIASES:
            return _ALIASES[identifier]()
        try:
            return keras.activations.get(identifier)
        except ValueError:
            raise ValueError(
                f"unknown quantizer {identifier!r}; known: {sorted(_ALIASES)} or a Keras activation"
            ) from None
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier, custom_objects=_ALIASES)
    if callable(identifier):
        return identifier
    raise ValueError(f"cannot interpret {identifier!r} as a quantizer")


def serialize(quantizer):
    """Serialise a quantizer or activation for ``get_config`` (``None`` stays ``None``)."""
    if quantizer is None:
        return None
    return keras.saving.serialize_keras_object(quantizer)


def precision_of(quantizer):
    """Bits per value produced by ``quantizer`` (32 for ``None`` or a float activation)."""
    return getattr(quantizer, "precision", 32) if quantizer is not None else 32
