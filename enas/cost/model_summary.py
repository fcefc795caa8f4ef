"""A bit-accurate summary of a quantized model: parameters, memory, and MACs by precision.

:func:`summarize` takes any built Keras model made of this project's layers (a fixed-arc
:class:`~enas.child.micro_child.MicroChild` of any precision, or e.g. a ``keras.Sequential`` of
``QuantConv2D`` / ``BatchNormalization`` / ``QuantDense``) and returns a :class:`ModelSummary`;
:func:`format_summary` renders it as a larq-style text table.

Conventions
-----------
Rows: one per layer that owns variables or multiply-accumulates (containers, pools, identity and
dropout own neither and get no row). A row's path joins the layer names from the model down
(explicit names such as ``layer_3``; an attribute or dict key such as ``ops/node0/x/op1`` where
Keras made the name up), so paths are stable across processes.

Parameters: every variable in ``model.weights`` (trainable or not: batch-norm gamma, beta, moving
mean and variance count), so the total equals ``model.count_params()``.

Memory (bits per variable, see :func:`storage_of`): what the kernel's quantizer declares
(``Quantizer.storage``, see :mod:`quantize.storage`):

* a kernel quantized by ``SteSign``: 1 bit per weight (+ 32 bits per output channel with
  ``channel_scale=True``, the XNOR-Net scale; none without it);
* ``SteTern``: 2 bits per weight (3 levels stored in 2 bits) + one float32 scale ``a`` per kernel
  tensor with ``rule="twn"`` (none with ``rule="fixed"``, whose ``a`` is 1);
* ``SteQuantize(k)``: k bits per weight (fixed range, no scale);
* everything else (float kernels, biases, batch norm, quantizers declaring no storage): 32 bits.

The float32 reference is ``params x 32`` bits; ``compression = float32 / memory``. The packed
file written by :func:`enas.deploy.export.export_packed` stores exactly these bits (each tensor rounded up
to whole bytes) plus its header.

MACs are inference MACs per example, counted from one eager forward pass (batch 1,
``training=False``) whose conv/dense input and output shapes are recorded (:func:`recording`)::

    conv       H_out * W_out * kh * kw * C_in * C_out
    depthwise  H_out * W_out * kh * kw * C * multiplier
    separable  depthwise + H_out * W_out * C_in * multiplier * C_out (pointwise)
    dense      in * out (times the leading spatial size for a dense on a feature map)
    CellCombine  H * W * (rows * C) * C     (the 1x1 conv over the concatenated unused nodes)
    pools, batch norm, identity, additions: 0

Layers not run at inference (the auxiliary head) have parameters but 0 MACs. Each MAC is put in
the class of its weight and input-activation bits: ``1-bit`` (binary weights and binary
activations), ``2-bit`` (ternary or 2-bit weights and activations), ``k-bit`` (k-bit weights and
activations), ``wXaY`` for mixed widths, and ``float`` whenever either side is 32-bit: the stem on
the raw image, the classifier, the auxiliary head's dense layer, and a quantized-kernel layer whose
input is not quantized. A layer without an input quantizer counts as reading quantized
activations only if its input in the recorded pass is exactly a fixed point of the matching
activation quantizer (``q(x) == x``; e.g. FactorizedReduce quantizes once, then feeds its two 1x1
convs; the auxiliary head's first conv reads average-pooled activations, which are not
quantized, so its MACs are float).

Operations, as for binary networks (Bi-Real Net, ReActNet)::

    BOPs  = sum over quantized MACs of MACs * w_bits * a_bits   (binary 1x, ternary 4x, 4-bit 16x)
    FLOPs = float MACs
    OPs   = FLOPs + BOPs / 64
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re

import keras
import numpy as np
import tensorflow as tf

from enas.child.layer_paths import walk_layers, weights_by_path
from enas.child.micro_cell import CellCombine, unused_mask
from quantize import base
from quantize.layers import QuantizedLayerBase
from quantize.storage import FLOAT_BITS, Storage, raw_storage  # noqa: F401  (Storage: re-exported)

FLOAT = "float"

# Plain Keras layers whose MACs are counted, with their kernel attributes.
_KERAS_MAC_LAYERS = (
    (keras.layers.SeparableConv2D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.SeparableConv1D, ("depthwise_kernel", "pointwise_kernel")),
    (keras.layers.DepthwiseConv2D, ("kernel",)),
    (keras.layers.DepthwiseConv1D, ("kernel",)),
    (keras.layers.Conv1D, ("kernel",)),
    (keras.layers.Conv2D, ("kernel",)),
    (keras.layers.Conv3D, ("kernel",)),
    (keras.layers.Dense, ("kernel",)),
)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


# --------------------------------------------------------------------------------------------
# Storage of each variable
# --------------------------------------------------------------------------------------------
def storage_of(quantizer, shape, dtype="float32"):
    """The :class:`~quantize.storage.Storage` of a kernel of ``shape`` quantized by ``quantizer``
    (the quantizer's own :meth:`~quantize.base.Quantizer.storage`; ``None`` or a quantizer
    without one: raw ``dtype``)."""
    declared = quantizer.storage(shape) if isinstance(quantizer, base.Quantizer) else None
    return declared or raw_storage(keras.backend.standardize_dtype(dtype))


def _kernel_quantizer(layer):
    quantizer = getattr(layer, "kernel_quantizer", None)
    return quantizer if isinstance(quantizer, base.Quantizer) else None


def quantized_kernel_attrs(layer):
    """Attributes of ``layer``'s kernels that a quantizer quantizes (empty: none)."""
    if _kernel_quantizer(layer) is None:
        return ()
    if isinstance(layer, QuantizedLayerBase):
        return tuple(attr for attr, _, _ in layer._kernel_args)
    if isinstance(layer, CellCombine):
        return ("kernel",)
    return ()


def quantized_value(layer, attr):
    """The quantized value (numpy) of kernel ``attr`` of ``layer``, exactly as its call computes it."""
    variable = getattr(layer, attr)
    quantizer = _kernel_quantizer(layer)
    if isinstance(layer, CellCombine):
        # The call quantizes the kernel reshaped to a 1x1 conv kernel [1, 1, rows * C, C].
        value = quantizer(tf.reshape(variable, [1, 1, -1, variable.shape[-1]]))
        return np.reshape(value.numpy(), variable.shape)
    return np.asarray(layer.quantize_kernel(variable))


@dataclasses.dataclass
class VariableEntry:
    """One model weight: stable ``path`` (``<layer path>/<variable name>``), its layer, the
    kernel quantizer whose values are stored (``None``: stored raw) and its :class:`Storage`."""

    path: str
    layer_path: str
    layer: object
    attr: str
    variable: object
    quantizer: object
    storage: Storage

    @property
    def size(self):
        return int(np.prod(self.variable.shape, dtype=np.int64))

    @property
    def bits(self):
        return self.storage.total_bits(self.size)

    def stored_value(self):
        """What inference uses: the quantized kernel, or the variable itself."""
        if self.quantizer is not None:
            return quantized_value(self.layer, self.attr)
        return np.asarray(self.variable.numpy())


def variable_table(model):
    """Every weight of ``model`` as a :class:`VariableEntry`, in
    :func:`enas.child.layer_paths.walk_layers` order (see :func:`enas.child.layer_paths.weights_by_path`)."""
    entries = []
    for weight in weights_by_path(model):
        layer, variable = weight.layer, weight.variable
        quantized = {} if layer is None else {id(getattr(layer, a)): a for a in quantized_kernel_attrs(layer)}
        is_quantized = id(variable) in quantized
        quantizer = _kernel_quantizer(layer) if is_quantized else None
        # An unknown quantizer gets storage f32: its values are stored as float32.
        storage = storage_of(quantizer, variable.shape, variable.dtype)
        entries.append(VariableEntry(weight.path, weight.layer_path, layer,
                                     quantized.get(id(variable), variable.name), variable, quantizer, storage))
    return entries


# --------------------------------------------------------------------------------------------
# Recording conv/dense shapes in one eager forward pass
# --------------------------------------------------------------------------------------------
def mac_kernel_attrs(layer):
    """Kernel attributes whose MACs ``layer`` performs (empty: not a MAC layer)."""
    if isinstance(layer, QuantizedLayerBase):
        return tuple(attr for attr, _, _ in layer._kernel_args)
    if isinstance(layer, CellCombine):
        return ("kernel",)
    if isinstance(layer, _TRANSPOSED):
        return ()
    for cls, attrs in _KERAS_MAC_LAYERS:
        if isinstance(layer, cls):
            return attrs
    return ()


@dataclasses.dataclass
class CallRecord:
    """One recorded call: MACs per example and the bits of its weights and input activations."""

    macs: int
    w_bits: int
    a_bits: int


def _input_quantizer(layer):
    """What the layer applies to its input: ``input_quantizer``, or CellCombine's activation."""
    if isinstance(layer, CellCombine):
        return layer.activation
    return getattr(layer, "input_quantizer", None)


def _is_fixed_point(quantizer, x):
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
        return False
    return bool(np.array_equal(np.asarray(quantizer(x)), np.asarray(x)))


def _activation_bits(layer, consumed, candidates):
    quantizer = _input_quantizer(layer)
    if isinstance(quantizer, base.Quantizer):
        return quantizer.precision
    if quantizer is not None:  # a float activation such as ReLU
        return FLOAT_BITS
    for candidate in candidates:
        if _is_fixed_point(candidate, consumed):
            return candidate.precision
    return FLOAT_BITS


def _spatial_size(layer, output):
    shape = tuple(output.shape)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return int(np.prod(shape[2:], dtype=np.int64))
    return int(np.prod(shape[1:-1], dtype=np.int64))


def _record(layer, args, kwargs, output, ancestors):
    inputs = args[0] if args else next(iter(kwargs.values()))
    kernels = [getattr(layer, attr) for attr in mac_kernel_attrs(layer)]
    if isinstance(layer, CellCombine):
        # Output (N, H, W, C); the 1x1 conv reads rows * C channels.
        if layer.fixed_unused is not None:
            rows = len(layer.fixed_unused)
        else:
            cell_arc = kwargs.get("cell_arc", args[1] if len(args) > 1 else None)
            rows = int(tf.reduce_sum(tf.cast(unused_mask(cell_arc, layer.num_ids - 2), tf.int32)))
        c = int(layer.filters)
        macs = _spatial_size(layer, output) * rows * c * c
        consumed = None  # the activation is always applied to the concatenation
    else:
        macs = sum(_spatial_size(layer, output) * int(np.prod(k.shape, dtype=np.int64)) for k in kernels)
        consumed = inputs
        quantizer = _input_quantizer(layer)
        if quantizer is not None and not isinstance(quantizer, base.Quantizer):
            consumed = quantizer(inputs)
    kernel_quantizer = _kernel_quantizer(layer)
    w_bits = base.precision_of(kernel_quantizer)
    candidates = []
    if w_bits < FLOAT_BITS and consumed is not None:
        for owner in reversed(ancestors):
            for attr in ("activation", "input_quantizer"):
                q = getattr(owner, attr, None)
                if isinstance(q, base.Quantizer) and q not in candidates:
                    candidates.append(q)
        family = kernel_quantizer.activation_quantizer() if kernel_quantizer is not None else None
        if family is not None and family not in candidates:
            candidates.append(family)
    if isinstance(layer, CellCombine):
        activation = layer.activation
        a_bits = activation.precision if isinstance(activation, base.Quantizer) else FLOAT_BITS
    else:
        a_bits = _activation_bits(layer, consumed, candidates)
    return CallRecord(int(macs), int(w_bits), int(a_bits))


@contextlib.contextmanager
def recording(model):
    """Context manager: while active, every call of a MAC layer of ``model`` (conv, dense,
    CellCombine, their quantized versions) appends a :class:`CallRecord` to
    ``records[id(layer)]``; yields ``records``.

    Each of the model's MAC layers gets its own wrapped ``call`` (an instance attribute, which
    Keras' ``__call__`` runs in place of the class's method) for the duration only; no class is
    changed, so other models and threads are not affected."""
    layers = [(layer, ancestors) for _, layer, ancestors in walk_layers(model) if mac_kernel_attrs(layer)]
    records = {}
    wrapped = []

    def wrap(layer, ancestors):
        original = layer.call
        active = []

        @functools.wraps(original)
        def call(*args, **kwargs):
            if active:  # a layer calling itself (e.g. a parent's call): record the outer call only
                return original(*args, **kwargs)
            active.append(True)
            try:
                output = original(*args, **kwargs)
            finally:
                active.pop()
            records.setdefault(id(layer), []).append(_record(layer, args, kwargs, output, ancestors))
            return output

        own = vars(layer).get("call")
        layer.call = call
        wrapped.append((layer, own))

    try:
        for layer, ancestors in layers:
            wrap(layer, ancestors)
        yield records
    finally:
        for layer, own in reversed(wrapped):
            if own is None:
                del layer.call
            else:
                layer.call = own


# --------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------
def mac_class(w_bits, a_bits):
    """``"float"``, ``"1-bit"``, ``"2-bit"``, ``"4-bit"`` ... or ``"w1a2"`` for mixed widths."""
    if w_bits >= FLOAT_BITS or a_bits >= FLOAT_BITS:
        return FLOAT
    return f"{w_bits}-bit" if w_bits == a_bits else f"w{w_bits}a{a_bits}"


def _class_order(name):
    if name == FLOAT:
        return (2, 0, 0)
    match = re.fullmatch(r"(\d+)-bit", name)
    if match:
        return (0, int(match.group(1)), 0)
    w, a = re.fullmatch(r"w(\d+)a(\d+)", name).groups()
    return (1, int(w), int(a))


@dataclasses.dataclass
class LayerRow:
    """One row: ``macs`` maps a MAC class (see :func:`mac_class`) to MACs per example."""

    path: str
    kind: str
    params: int
    weight_bits: tuple  # distinct bits per element of the layer's own variables
    activation_bits: tuple  # distinct input-activation bits of its MACs (empty: no MACs)
    memory_bits: int
    macs: dict

    @property
    def memory_bytes(self):
        return self.memory_bits / 8


@dataclasses.dataclass
class ModelSummary:
    """Totals of :func:`summarize`; every count is per example (batch 1)."""

    name: str
    input_shape: tuple
    rows: list
    params: int
    quantized_params: int  # weights stored below 32 bits
    memory_bits: int
    macs: dict  # class -> MACs
    mac_bits: dict  # class -> (w_bits, a_bits); float -> (32, 32)

    @property
    def float_params(self):
        return self.params - self.quantized_params

    @property
    def memory_bytes(self):
        return self.memory_bits / 8

    @property
    def float32_bytes(self):
        return self.params * 4

    @property
    def compression(self):
        return self.float32_bytes / self.memory_bytes if self.memory_bits else float("nan")

    @property
    def total_macs(self):
        return sum(self.macs.values())

    @property
    def flops(self):
        """Float MACs."""
        return self.macs.get(FLOAT, 0)

    @property
    def bops(self):
        """Binary operations: quantized MACs x w_bits x a_bits."""
        return sum(m * self.mac_bits[c][0] * self.mac_bits[c][1] for c, m in self.macs.items() if c != FLOAT)

    @property
    def ops(self):
        """FLOPs + BOPs / 64 (Bi-Real Net / ReActNet)."""
        return self.flops + self.bops / 64

    def as_dict(self):
        """Plain-JSON numbers (totals and rows)."""
        return {
            "name": self.name, "input_shape": list(self.input_shape), "params": self.params,
            "quantized_params": self.quantized_params, "float_params": self.float_params,
            "memory_bytes": self.memory_bytes, "float32_bytes": self.float32_bytes,
            "compression": self.compression, "macs": dict(self.macs), "total_macs": self.total_macs,
            "bops": self.bops, "flops": self.flops, "ops": self.ops,
            "rows": [{**dataclasses.asdict(r), "weight_bits": list(r.weight_bits),
                      "activation_bits": list(r.activation_bits)} for r in self.rows],
        }


def _input_shape_of(model, input_shape):
    if input_shape is not None:
        return tuple(int(d) for d in input_shape)
    shape = getattr(model, "input_image_shape", None)
    if shape is None:
        try:
            shape = tuple(model.input_shape)[1:]
        except (AttributeError, ValueError):
            shape = None
    if shape is None or any(d is None for d in shape):
        raise ValueError("cannot tell the model's input shape: pass input_shape=(H, W, C)")
    return tuple(int(d) for d in shape)


def summarize(model, input_shape=None):
    """Bit-accurate :class:`ModelSummary` of a built ``model`` (see the module docstring).

    Args:
        model: a built Keras model (a fixed-arc MicroChild, or any model of these layers).
        input_shape: shape of one example; default: ``model.input_image_shape`` (MicroChild)
            or ``model.input_shape[1:]``.
    """
    input_shape = _input_shape_of(model, input_shape)
    entries = variable_table(model)
    example = np.random.default_rng(0).normal(size=(1,) + input_shape).astype("float32")
    with recording(model) as records:
        model(tf.constant(example), training=False)
    by_layer = {}
    for entry in entries:
        by_layer.setdefault(entry.layer_path, []).append(entry)
    rows, seen_paths = [], set()
    for path, layer, _ in walk_layers(model):
        own = by_layer.get(path, [])
        calls = records.get(id(layer), [])
        if not own and not calls and not mac_kernel_attrs(layer):
            continue
        seen_paths.add(path)
        macs = {}
        for call in calls:
            key = mac_class(call.w_bits, call.a_bits)
            macs[key] = macs.get(key, 0) + call.macs
        rows.append(LayerRow(
            path=path or model.name, kind=type(layer).__name__,
            params=sum(e.size for e in own),
            weight_bits=tuple(sorted({e.storage.bits for e in own})),
            activation_bits=tuple(sorted({c.a_bits for c in calls})),
            memory_bits=sum(e.bits for e in own), macs=macs,
        ))
    for path, own in by_layer.items():  # weights outside every layer (none expected)
        if path not in seen_paths:
            rows.append(LayerRow(path, "(other)", sum(e.size for e in own),
                                 tuple(sorted({e.storage.bits for e in own})), (),
                                 sum(e.bits for e in own), {}))
    macs, mac_bits = {}, {}
    for calls in records.values():
        for call in calls:
            key = mac_class(call.w_bits, call.a_bits)
            macs[key] = macs.get(key, 0) + call.macs
            mac_bits[key] = (FLOAT_BITS, FLOAT_BITS) if key == FLOAT else (call.w_bits, call.a_bits)
    order = sorted(macs, key=_class_order)
    return ModelSummary(
        name=model.name, input_shape=input_shape, rows=rows,
        params=sum(e.size for e in entries),
        quantized_params=sum(e.size for e in entries if e.storage.bits < FLOAT_BITS),
        memory_bits=sum(e.bits for e in entries),
        macs={k: macs[k] for k in order}, mac_bits={k: mac_bits[k] for k in order},
    )


# --------------------------------------------------------------------------------------------
# Text table
# --------------------------------------------------------------------------------------------
def _bits_text(bits):
    return "/".join(str(b) for b in bits) if bits else "-"


def _kib(nbytes):
    return f"{nbytes / 1024:.2f}"


def _count(n):
    return f"{n:,}" if n else "0"


def format_summary(summary):
    """Larq-style text table of a :class:`ModelSummary`, followed by the totals."""
    classes = list(summary.macs) or [FLOAT]
    header = ["Layer", "Kind", "Params", "W bits", "A bits", "Memory KiB"] + \
        [f"{c} MACs" for c in classes]
    body = [[r.path, r.kind, _count(r.params), _bits_text(r.weight_bits), _bits_text(r.activation_bits),
             _kib(r.memory_bytes)] + [_count(r.macs.get(c, 0)) if r.macs.get(c) else "-" for c in classes]
            for r in summary.rows]
    total = ["Total", "", _count(summary.params), "", "", _kib(summary.memory_bytes)] + \
        [_count(summary.macs.get(c, 0)) for c in classes]
    widths = [max(len(row[i]) for row in [header, total] + body) for i in range(len(header))]
    right = [False, False] + [True] * (len(header) - 2)

    def line(cells):
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)]
        return "| " + " | ".join(parts) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    shape = "x".join(str(d) for d in summary.input_shape)
    lines = [f"Model summary: {summary.name} (input {shape}, per example)", rule, line(header),
             rule.replace("-", "=")]
    lines += [line(row) for row in body]
    lines += [rule, line(total), rule]
    mac_parts = " | ".join(f"{c} {_count(m)}" for c, m in summary.macs.items()) or "none"
    lines += [
        f"Total params: {_count(summary.params)} ({_count(summary.quantized_params)} quantized, "
        f"{_count(summary.float_params)} float32)",
        f"Memory: {_kib(summary.memory_bytes)} KiB ({summary.memory_bytes:,.0f} bytes) vs "
        f"{_kib(summary.float32_bytes)} KiB in float32: {summary.compression:.1f}x smaller",
        f"MACs: {mac_parts}",
        f"BOPs (quantized MACs x w_bits x a_bits): {_count(summary.bops)}",
        f"FLOPs (float MACs): {_count(summary.flops)}",
        f"OPs = FLOPs + BOPs/64: {summary.ops:,.0f}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
IMAGE_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def dataset_image_shape(dataset):
    """``(H, W, C)`` of the images of ``dataset`` ("mnist" or "cifar10")."""
    from enas.errors import ConfigError

    if dataset not in IMAGE_SHAPES:
        raise ConfigError(f"unknown dataset {dataset!r}: use one of {', '.join(IMAGE_SHAPES)}")
    return IMAGE_SHAPES[dataset]
