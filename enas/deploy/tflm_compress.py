"""Look-up-table (LUT) compression of a full-integer ``.tflite`` file's weights with TensorFlow
Lite Micro's own compressor (the ``tflite-micro`` package), checked in TFLM's interpreter.

LUT compression stores a tensor as ``bits``-wide indices into small value tables; a ``DECODE``
operator (the custom operator ``TFLM_DECODE``) inserted before each consumer expands it into the
tensor arena at run time. It is lossless: the decoded int8 values are the original ones, so the
outputs are bit-identical when TFLM decodes it right (:func:`check_compressed` measures that).
Only TFLM reads the compressed file: the TensorFlow Lite interpreter does not know ``DECODE``.

Tensors (:func:`compression_plan`): the constant int8 kernel (input 1) of every ``CONV_2D``,
``DEPTHWISE_CONV_2D`` and ``FULLY_CONNECTED``. Tables follow the tensor's quantization, the only
layout TFLM decoded bit-exactly (measured with this package version; other layouts loaded but
gave different outputs):

* per-channel quantized (several scales): one table per channel along ``quantizedDimension``
  (axis 0 of ``CONV_2D`` / ``FULLY_CONNECTED`` kernels ``(O, ...)``, axis 3 of ``DEPTHWISE_CONV_2D``
  kernels ``(1, H, W, C)``); a per-tensor table or another axis gave wrong outputs;
* per-tensor quantized (one scale): one table for the tensor; per-channel tables gave wrong
  outputs unless every channel's table was the same.

Bits: the smallest ``bits`` in 1..``max_bits`` (default 4; the tool accepts 1 to 7) with
``2 ** bits`` >= the largest number of distinct values in a table: a ternary kernel
({-q, 0, q} per channel) takes 2 bits, a binary one 1 bit, 16 levels 4 bits. A tensor is skipped
when it needs more than ``max_bits``, when its buffer is shared with a tensor that is not
compressed (the uncompressed copy would stay), or when it is too small to gain: the estimate is
``ceil(n * bits / 8)`` index bytes + 16 header bytes + the value tables (tables x the largest table,
one byte per int8 value) + about :data:`TENSOR_OVERHEAD` bytes + twice the name's length for the
file's new tensors and operator (measured), and the tensor is kept only if that is smaller than
its ``n`` bytes. A 4-bit per-channel table costs 16 bytes a channel, so a kernel needs more than
about 32 values a channel to gain.

Limits: the ``tflite-micro`` compressor leaves the per-channel scales and zero points on the
encoded (uint8) tensor as well as on the decoded one (12 bytes a channel, per tensor);
:func:`compress` removes them from the encoded tensors (``strip_encoded_quantization``), which
TFLM does not read there. Each compressed kernel is decoded into the arena just before its
operator, so the arena can grow (by up to the largest decoded kernel plus the decoders' own
state): :func:`check_compressed` measures both arenas with
:func:`enas.deploy.tflm_check.smallest_arena`. Decoding costs time on every invocation. The tool
also merges byte-identical buffers and drops empty ones across the whole file, which the plan's
estimates do not count (about 11 KB of a 414 KB MNIST child's file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import tempfile
import warnings

import numpy as np

from enas.deploy import int8_graph, tflm_check
from enas.errors import UserError

KERNEL_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
HEADER_BYTES = 16  # DECODE's common metadata at the start of each value-table tensor
TENSOR_OVERHEAD = 176  # bytes a compressed tensor adds to the file besides its data and names (measured)
DECODE_OPERATOR = "TFLM_DECODE"


class CompressionToolError(UserError):
    """TensorFlow Lite Micro's compressor failed, or its result is not what was planned (one line)."""


@dataclasses.dataclass(frozen=True)
class PlanEntry:
    """One kernel to compress (:func:`compression_plan`)."""

    tensor: int  # index in subgraph 0
    name: str
    operator: str  # the first operator that reads it
    shape: tuple
    axis: int | None  # the per-channel table axis (the quantized dimension), None: one table
    levels: int  # the largest number of distinct values in one table
    bits: int  # index bitwidth
    bytes_before: int  # the int8 kernel
    bytes_after: int  # estimate: indices + header + value tables + file overhead

    def line(self):
        tables = "one table" if self.axis is None else f"per channel (axis {self.axis})"
        return (f"{self.operator} tensor {self.tensor} {list(self.shape)}: {self.levels} levels, {self.bits} bits, "
                f"{tables}, {self.bytes_before:,} -> ~{self.bytes_after:,} bytes")


def _one_line(text):
    return " ".join(str(text).split())


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _kernel(model, tensor):
    data = model.buffers[tensor.buffer].data if tensor.buffer else None
    if data is None or len(data) == 0:
        return None
    return np.frombuffer(bytes(np.asarray(data, np.uint8)), np.int8).reshape([int(d) for d in tensor.shape])


def _table_axis(tensor, kernel):
    """The per-channel table axis TFLM decodes exactly (see the module docstring), or None."""
    q = tensor.quantization
    scales = 0 if q is None or q.scale is None else len(q.scale)
    if scales > 1:
        axis = int(q.quantizedDimension)
        return axis if kernel.shape[axis] == scales else "bad"
    return None


def _levels(kernel, axis):
    if axis is None:
        return len(np.unique(kernel))
    return max(len(np.unique(s)) for s in np.moveaxis(kernel, axis, 0))


def estimated_bytes(kernel_shape, axis, levels, bits, name=""):
    """The estimated bytes a LUT-compressed kernel takes in the file (see the module docstring)."""
    size = int(np.prod(kernel_shape))
    tables = 1 if axis is None else int(kernel_shape[axis])
    return math.ceil(size * bits / 8) + HEADER_BYTES + tables * levels + TENSOR_OVERHEAD + 2 * len(name)


def compression_plan(blob, max_bits=4, skipped=None):
    """The kernels of ``blob`` (int8 ``.tflite`` bytes) to LUT-compress, as :class:`PlanEntry`
    objects in tensor order (rules in the module docstring). ``skipped``, a list, receives
    ``(tensor index, name, reason)`` of the kernels left out."""
    if not 1 <= int(max_bits) <= 7:
        raise CompressionToolError(f"max_bits must be 1 to 7 (the compressor's index widths), not {max_bits}")
    schema = _schema()
    model = int8_graph.read(blob)
    names = int8_graph._names(schema)
    graph = model.subgraphs[0]
    skipped = [] if skipped is None else skipped
    readers = {}
    for op in graph.operators:
        name = int8_graph.operator_name(model, op, names)
        if name in KERNEL_OPERATORS and len(op.inputs) > 1 and op.inputs[1] >= 0:
            readers.setdefault(int(op.inputs[1]), name)
    ends = set(graph.inputs) | set(graph.outputs)
    candidates = {}
    for index, operator in sorted(readers.items()):
        tensor = graph.tensors[index]
        label = tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name or "")
        label = label or f"tensor {index}"
        kernel = None if tensor.type != schema.TensorType.INT8 or index in ends else _kernel(model, tensor)
        if kernel is None:
            skipped.append((index, label, "not a constant int8 tensor"))
            continue
        axis = _table_axis(tensor, kernel)
        if axis == "bad":
            skipped.append((index, label, "scales do not match the quantized dimension"))
            continue
        levels = _levels(kernel, axis)
        bits = next((b for b in range(1, int(max_bits) + 1) if 2 ** b >= levels), None)
        if bits is None:
            skipped.append((index, label, f"{levels} levels need more than {max_bits} bits"))
            continue
        after = estimated_bytes(kernel.shape, axis, levels, bits, label)
        if after >= kernel.size:
            skipped.append((index, label, f"too small to gain ({kernel.size} bytes, ~{after} compressed)"))
            continue
        candidates[index] = PlanEntry(tensor=index, name=label, operator=operator, shape=tuple(kernel.shape),
                                      axis=axis, levels=levels, bits=bits, bytes_before=int(kernel.size),
                                      bytes_after=after)
    # A buffer another (uncompressed) tensor reads keeps its data in the file: no gain.
    owners = {}
    for g in model.subgraphs:
        for j, t in enumerate(g.tensors):
            if t.buffer:
                owners.setdefault(t.buffer, []).append((g is graph, j))
    plan = []
    for index, entry in candidates.items():
        aliases = owners[graph.tensors[index].buffer]
        if any(not here or j not in candidates for here, j in aliases):
            skipped.append((index, entry.name, "its buffer is shared with an uncompressed tensor"))
        else:
            plan.append(entry)
    return plan


def _tool():
    try:
        from tflite_micro.tensorflow.lite.micro import compression
        from tflite_micro.tensorflow.lite.micro.compression import spec
    except ImportError:
        raise CompressionToolError("TensorFlow Lite Micro's compressor is not installed: run ./setup.sh (it pins the "
                                   "tflite-micro package) or pip install -r requirements.txt") from None
    return compression, spec


def compress(blob, plan, strip_encoded_quantization=True):
    """The LUT-compressed ``.tflite`` bytes of ``blob`` with the kernels of ``plan`` (from
    :func:`compression_plan`), made by TFLM's compressor (``DECODE`` operators inserted). With
    ``strip_encoded_quantization``, the encoded tensors lose the quantization parameters the tool
    leaves on them (module docstring). A :class:`CompressionToolError` when the tool fails."""
    plan = list(plan)
    if not plan:
        raise CompressionToolError("nothing to compress: no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED int8 kernel "
                                   "has few enough distinct values to gain (see compression_plan)")
    compression, spec = _tool()
    builder = compression.SpecBuilder()
    for entry in plan:
        mode = spec.PerTensor() if entry.axis is None else spec.PerChannel(axis=int(entry.axis))
        builder.add_tensor(subgraph=0, tensor=int(entry.tensor)).with_lut(index_bitwidth=int(entry.bits), mode=mode)
    specs = builder.build()
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(chatter):
            warnings.simplefilter("always")
            out = bytes(compression.compress(bytes(blob), specs))
    except Exception as e:  # the tool's CompressionError, or anything its model reader raises
        raise CompressionToolError(f"TensorFlow Lite Micro's compressor failed: {_one_line(e)}") from None
    for w in caught:
        message = _one_line(w.message)
        if message.startswith(("Not compressing", "Compressed tensor")):
            raise CompressionToolError(f"TensorFlow Lite Micro's compressor did not follow the plan: {message}")
    if strip_encoded_quantization:
        out = _strip_encoded_quantization(out)
    encoded = len(_encoded_tensors(out)[1])
    if encoded != len(plan):
        raise CompressionToolError(f"TensorFlow Lite Micro's compressor encoded {encoded} tensors, "
                                   f"the plan has {len(plan)}")
    return out


def _micro_schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _encoded_tensors(blob):
    """``(ModelT, {(subgraph, tensor)})`` of the tensors ``DECODE`` operators read as encoded data
    (their even inputs; the odd ones are the value tables)."""
    schema = _micro_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    decode = set()
    for i, code in enumerate(model.operatorCodes or []):
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        if custom == DECODE_OPERATOR:
            decode.add(i)
    found = set()
    for s, graph in enumerate(model.subgraphs or []):
        for op in graph.operators or []:
            if op.opcodeIndex in decode:
                found.update((s, int(j)) for j in list(op.inputs)[0::2] if j >= 0)
    return model, found


def _strip_encoded_quantization(blob):
    import flatbuffers

    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper as align

    model, encoded = _encoded_tensors(blob)
    changed = 0
    for s, j in encoded:
        tensor = model.subgraphs[s].tensors[j]
        if tensor.quantization is not None and tensor.type == _micro_schema().TensorType.UINT8:
            tensor.quantization = None
            changed += 1
    if not changed:
        return blob
    builder = flatbuffers.Builder(len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with tempfile.TemporaryDirectory() as folder:  # the aligner works on files
        source, target = os.path.join(folder, "in.tflite"), os.path.join(folder, "out.tflite")
        with open(source, "wb") as f:
            f.write(bytes(builder.Output()))
        try:
            align.align_tflite_model(source, target)
        except Exception as e:
            raise CompressionToolError(f"TensorFlow Lite Micro's flatbuffer aligner failed: {_one_line(e)}") from None
        with open(target, "rb") as f:
            return f.read()


def outputs(blob, images, arena_size):
    """The file's raw output vectors ``(N, K)`` (its own dtype, e.g. int8) in TFLM on raw
    ``images`` ``(N, H, W, C)``: :func:`enas.deploy.tflm_check.outputs`."""
    return tflm_check.outputs(blob, images, arena_size)


@dataclasses.dataclass
class CompressionCheck:
    """What :func:`check_compressed` measured."""

    bytes_before: int  # the files
    bytes_after: int
    arena_before: int  # the smallest tensor arenas that allocate
    arena_after: int
    examples: int
    identical: float  # fraction of images whose output vectors are bit-identical
    same_class: float  # ... whose argmax is the same

    def lines(self):
        saved = self.bytes_before - self.bytes_after
        return [
            f"TFLM LUT compression: file {self.bytes_before:,} -> {self.bytes_after:,} bytes "
            f"({saved:,} saved, {saved / max(self.bytes_before, 1):.1%}), tensor arena {self.arena_before:,} -> "
            f"{self.arena_after:,} bytes",
            f"TFLM LUT compression: identical outputs on {self.identical:.2%} and the same class on "
            f"{self.same_class:.2%} of {self.examples:,} images",
        ]


def check_compressed(blob, compressed, images):
    """:class:`CompressionCheck` of the ``compressed`` bytes against the original ``blob`` in
    TFLM (each in its own smallest arena) on raw ``images`` ``(N, H, W, C)``."""
    arena_before = tflm_check.smallest_arena(blob)
    arena_after = tflm_check.smallest_arena(compressed)
    before = outputs(blob, images, arena_before)
    after = outputs(compressed, images, arena_after)
    n = len(before)
    same = np.all(before == after, axis=1) if n else np.zeros(0, bool)
    classes = np.argmax(before, axis=1) == np.argmax(after, axis=1) if n else np.zeros(0, bool)
    return CompressionCheck(bytes_before=len(blob), bytes_after=len(compressed), arena_before=arena_before,
                            arena_after=arena_after, examples=n, identical=float(np.mean(same)) if n else 0.0,
                            same_class=float(np.mean(classes)) if n else 0.0)
