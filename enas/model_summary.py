"""A bit-accurate summary of a quantized model: parameters, memory, and MACs by precision.

:func:`summarize` takes any built Keras model made of this project's layers (a fixed-arc
:class:`~enas.micro_child.MicroChild` of any precision, or e.g. a ``keras.Sequential`` of
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

Memory (bits per variable, see :func:`storage_of`):

* a kernel quantized by ``SteSign``: 1 bit per weight (+ 32 bits per output channel with
  ``channel_scale=True``, the XNOR-Net scale; none without it);
* ``SteTern``: 2 bits per weight (3 levels stored in 2 bits) + one float32 scale ``a`` per kernel
  tensor with ``rule="twn"`` (none with ``rule="fixed"``, whose ``a`` is 1);
* ``SteQuantize(k)``: k bits per weight (fixed range, no scale);
* everything else (float kernels, biases, batch norm, other quantizers): 32 bits.

The float32 reference is ``params x 32`` bits; ``compression = float32 / memory``. The packed
file written by :func:`enas.export.export_packed` stores exactly these bits (each tensor rounded up
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

from binarize.binary_ops import SteSign
from enas.micro_cell import CellCombine, unused_mask
from quantize import base
from quantize.layers import QuantizedLayerBase
from quantize.quantized_ops import SteQuantize
from ternarize.ternary_ops import SteTern

FLOAT_BITS = 32
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
# Walking the layers, with stable paths
# --------------------------------------------------------------------------------------------
def _snake_case(name):
    # Keras' own rule for automatic layer names (keras.src.utils.naming.to_snake_case).
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_auto_name(layer):
    return re.fullmatch(re.escape(_snake_case(type(layer).__name__)) + r"(_\d+)?", layer.name) is not None


def _attribute_labels(layer):
    """``id(sublayer) -> label`` from the public attributes holding it (lists: ``attr[i]``,
    dicts: the key)."""
    labels = {}

    def visit(value, label, depth=0):
        if isinstance(value, keras.layers.Layer):
            labels.setdefault(id(value), label)
        elif depth < 2 and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{label}[{i}]", depth + 1)
        elif depth < 2 and isinstance(value, dict):
            for key, item in value.items():
                visit(item, str(key), depth + 1)

    for attr, value in vars(layer).items():
        if not attr.startswith("_"):
            visit(value, attr)
    return labels


def _children(layer):
    """``[(label, sublayer)]`` in creation order with labels unique among siblings: the layer's
    name when it was chosen explicitly, else the attribute (or dict key) holding it, else the
    class name numbered like Keras' automatic names."""
    attr_labels = _attribute_labels(layer)
    used, class_counts, out = set(), {}, []
    for child in layer._flatten_layers(include_self=False, recursive=False):
        if not _is_auto_name(child):
            label = child.name
        elif id(child) in attr_labels:
            label = attr_labels[id(child)]
        else:
            stem = _snake_case(type(child).__name__)
            n = class_counts.get(stem, 0)
            class_counts[stem] = n + 1
            label = stem if n == 0 else f"{stem}_{n}"
        unique, k = label, 1
        while unique in used:
            unique, k = f"{label}_{k}", k + 1
        used.add(unique)
        out.append((unique, child))
    return out


def walk_layers(model):
    """Yield ``(path, layer, ancestors)`` for the model (path ``""``) and every sublayer, depth
    first in creation order; each layer once."""
    seen = set()

    def visit(path, layer, ancestors):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        yield path, layer, ancestors
        for label, child in _children(layer):
            yield from visit(f"{path}/{label}" if path else label, child, ancestors + (layer,))

    yield from visit("", model, ())


def _own_weights(layer, all_weight_ids):
    """Variables of ``layer`` itself (not of its sublayers) that are model weights."""
    below = set()
    for child in layer._flatten_layers(include_self=False, recursive=False):
        below.update(id(w) for w in child.weights)
    return [w for w in layer.weights if id(w) not in below and id(w) in all_weight_ids]


# --------------------------------------------------------------------------------------------
# Storage of each variable
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Storage:
    """How one variable is stored: ``code`` (``f32`` raw float32, ``raw:<dtype>``, ``b1`` signs,
    ``b1c`` signs + per-channel float32 scales, ``t2`` ternary codes, ``t2s`` ternary codes + one
    float32 scale, ``q<k>`` k-bit codes), ``bits`` per element and the number of float32 scales."""

    code: str
    bits: int
    scales: int = 0

    def total_bits(self, size):
        return int(size) * self.bits + FLOAT_BITS * self.scales


def storage_of(quantizer, shape, dtype="float32"):
    """The :class:`Storage` of a kernel of ``shape`` quantized by ``quantizer`` (``None``: raw)."""
    if isinstance(quantizer, SteSign):
        return Storage("b1c", 1, int(shape[-1])) if quantizer.channel_scale else Storage("b1", 1)
    if isinstance(quantizer, SteTern):
        return Storage("t2s", 2, 1) if quantizer.rule == "twn" else Storage("t2", 2)
    if isinstance(quantizer, SteQuantize):
        return Storage(f"q{quantizer.bits}", quantizer.bits)
    dtype = np.dtype(keras.backend.standardize_dtype(dtype))
    if dtype == np.float32:
        return Storage("f32", FLOAT_BITS)
    return Storage(f"raw:{dtype.str}", dtype.itemsize * 8)


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
    """Every weight of ``model`` as a :class:`VariableEntry`, in :func:`walk_layers` order.
    Weights no layer owns directly (should not happen) come last under ``(other)/``."""
    all_ids = {id(w) for w in model.weights}
    entries, covered = [], set()
    for path, layer, _ in walk_layers(model):
        own = _own_weights(layer, all_ids)
        if not own:
            continue
        quantized = {id(getattr(layer, attr)): attr for attr in quantized_kernel_attrs(layer)}
        for variable in own:
            if id(variable) in covered:
                continue
            covered.add(id(variable))
            attr = quantized.get(id(variable), variable.name)
            quantizer = _kernel_quantizer(layer) if id(variable) in quantized else None
            # An unknown quantizer gets storage f32: its values are stored as float32.
            storage = storage_of(quantizer, variable.shape, variable.dtype)
            name = f"{path}/{variable.name}" if path else variable.name
            entries.append(VariableEntry(name, path, layer, attr, variable, quantizer, storage))
    for variable in model.weights:
        if id(variable) not in covered:
            covered.add(id(variable))
            storage = storage_of(None, variable.shape, variable.dtype)
            entries.append(VariableEntry(f"(other)/{variable.name}", "(other)", None, None,
                                         variable, None, storage))
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise ValueError(f"two variables share the path {dup!r}; give the layers distinct names")
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


def _activation_like(kernel_quantizer):
    """The activation quantizer matching a kernel quantizer's family (for the fixed-point test)."""
    if isinstance(kernel_quantizer, SteSign):
        return SteSign()
    if isinstance(kernel_quantizer, SteTern):
        return SteTern(rule="fixed")
    if isinstance(kernel_quantizer, SteQuantize):
        return SteQuantize(kernel_quantizer.bits)
    return None


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
        family = _activation_like(kernel_quantizer)
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
    ``records[id(layer)]``; yields ``records``. The layer classes' ``call`` is wrapped for the
    duration only and restored on exit; the layers themselves are not touched."""
    layers = {id(layer): (layer, ancestors) for _, layer, ancestors in walk_layers(model)
              if mac_kernel_attrs(layer)}
    records = {}
    active = set()
    patched = []

    def make_wrapper(original):
        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):
            key = id(self)
            if key not in layers or key in active:
                return original(self, *args, **kwargs)
            active.add(key)
            try:
                output = original(self, *args, **kwargs)
            finally:
                active.discard(key)
            records.setdefault(key, []).append(_record(self, args, kwargs, output, layers[key][1]))
            return output

        return wrapper

    classes = []
    for layer, _ in layers.values():
        if type(layer) not in classes:
            classes.append(type(layer))
    try:
        for cls in classes:
            own = cls.__dict__.get("call")
            patched.append((cls, own))
            cls.call = make_wrapper(cls.call)
        yield records
    finally:
        for cls, own in reversed(patched):
            if own is None:
                del cls.call
            else:
                cls.call = own


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
