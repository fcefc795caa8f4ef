"""Repairs of a full-integer TensorFlow Lite file that make it integer end to end and loadable
by TensorFlow Lite Micro, and the check that it is.

The converter is asked for the quantizers' exact int8 levels (:meth:`quantize.base.Quantizer.int8_call`:
a tensor of scale ``1 / m`` and zero point 0 holding the integers ``j`` of the levels ``j / m``);
it gives those tensors the asked scale, but quantizes the int32 bias of the convolutions that
read them with the scale it had calibrated (``s_calibrated * s_weight``), not the one it gave
(``s_input * s_weight``, which TensorFlow Lite's kernels assume). :func:`integer_only` rescales
every such bias to its operator's real input scale (``bias_q * old_scale / new_scale``,
rounded: the same real bias), and replaces each stand-alone ``RELU_N1_TO_1`` (a clip to
[-1, 1] that no producer could fuse, and that TensorFlow Lite Micro does not register) by a
``QUANTIZE`` (int8 requantize) into the same output tensor, whose int8 range is already
[-1, 1], so the values are the same. Where such a requantize reads an ``ADD`` or a convolution
(whose output other operators read on its coarse grid), the result is recomputed straight into
the fine grid by a second ``ADD`` or convolution (one rounding instead of two before a binary or
ternary quantizer's thresholds: a binary MNIST child's int8 file went from 94% to 99% agreement
with Keras once its stem convolution was recomputed for the signs that read it).

:func:`float_operators` lists what is left that is not integer: a ``DEQUANTIZE``, ``QUANTIZE``
from float, or any operator with a float tensor between the (integer) input and output.
"""

from __future__ import annotations

import collections

import numpy as np

# Operators with an int32 bias (input 2) quantized at input scale x weight scale.
BIASED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# Operators whose int8 output a requantize into a finer grid may be replaced by: the same
# operator writing straight into that grid (its int32 accumulator rounded once, at the fine step).
RECOMPUTABLE = ("ADD", "CONV_2D", "DEPTHWISE_CONV_2D")


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def _names(schema):
    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def read(blob):
    """The object tree (``ModelT``) of ``.tflite`` bytes."""
    return _schema().ModelT.InitFromPackedBuf(bytearray(blob), 0)


def write(model):
    """``.tflite`` bytes of a ``ModelT``."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def operator_name(model, op, names=None):
    code = model.operatorCodes[op.opcodeIndex]
    names = names or _names(_schema())
    return names[max(code.builtinCode, code.deprecatedBuiltinCode)]


def operator_counts(blob):
    """``{operator name: count}`` of the file's main graph, in order of first appearance."""
    model = read(blob)
    names = _names(_schema())
    return dict(collections.Counter(operator_name(model, op, names) for op in model.subgraphs[0].operators))


def is_constant(model, tensor):
    """True for a tensor whose values are stored in the file (weights, biases, constants)."""
    data = model.buffers[tensor.buffer].data if tensor.buffer else None
    return data is not None and len(data) > 0


def _scales(tensor):
    q = tensor.quantization
    return None if q is None or q.scale is None else np.asarray(q.scale, np.float64)


def _buffer_array(model, tensor, dtype):
    data = model.buffers[tensor.buffer].data
    return None if data is None or len(data) == 0 else np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype).copy()


def _set_buffer(model, tensor, array):
    model.buffers[tensor.buffer].data = np.frombuffer(array.tobytes(), np.uint8).copy()


def integer_only(blob):
    """The repaired ``.tflite`` bytes (see the module docstring) and what was repaired:
    ``(blob, {"biases rescaled": n, "RELU_N1_TO_1 replaced": n})``."""
    schema = _schema()
    model = read(blob)
    names = _names(schema)
    graph = model.subgraphs[0]
    users = collections.Counter(t.buffer for g in model.subgraphs for t in g.tensors if t.buffer)
    rescaled = replaced = 0
    quantize_index = None
    for op in graph.operators:
        name = operator_name(model, op, names)
        if name in BIASED and len(op.inputs) > 2 and op.inputs[2] >= 0:
            rescaled += _rescale_bias(model, graph, op, users)
        elif name == "RELU_N1_TO_1" and _int8_range_within_unit(graph.tensors[op.outputs[0]]):
            if quantize_index is None:
                quantize_index = _operator_code(model, schema.BuiltinOperator.QUANTIZE)
            op.opcodeIndex = quantize_index
            op.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
            op.builtinOptions = schema.QuantizeOptionsT()
            replaced += 1
    recomputed = _recompute_fine_sums(model, graph, names)
    return write(model), {"biases rescaled": rescaled, "RELU_N1_TO_1 replaced": replaced, "sums recomputed": recomputed}


def strip_names(blob):
    """The ``.tflite`` bytes without the names of the inner tensors (the graph's inputs and
    outputs keep theirs): neither interpreter reads them, and in a small network they are a sixth
    of the file, i.e. of a microcontroller's flash (TensorFlow's ``strip_strings`` tool does the same)."""
    model = read(blob)
    for graph in model.subgraphs:
        ends = set(graph.inputs) | set(graph.outputs)
        for j, tensor in enumerate(graph.tensors):
            if j not in ends:
                tensor.name = b""
    return write(model)


def _recompute_fine_sums(model, graph, names):
    """Each int8 requantize (``QUANTIZE`` int8 -> int8) of the output of an ``ADD`` or a
    convolution without fused activation (:data:`RECOMPUTABLE`) into a finer grid becomes a
    second such operator of the same inputs (weights and bias shared) straight into that grid: the sum is then rounded
    once, at the fine step, instead of first at the coarse one (the clip before a binary or
    ternary quantizer: its thresholds see the sum to within half a fine step, not half a coarse
    one). Same saturation: the fine grid's int8 range is the clip's."""
    import copy

    producer = {j: op for op in graph.operators for j in op.outputs}
    int8 = _schema().TensorType.INT8
    count = 0
    for i, op in enumerate(graph.operators):
        if operator_name(model, op, names) != "QUANTIZE":
            continue
        source, target = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        add = producer.get(op.inputs[0])
        if add is None or operator_name(model, add, names) not in RECOMPUTABLE or source.type != int8 or target.type != int8:
            continue
        if getattr(add.builtinOptions, "fusedActivationFunction", 0) != 0:
            continue
        s_source, s_target = _scales(source), _scales(target)
        if s_source is None or s_target is None or not s_target[0] < s_source[0]:
            continue
        twin = copy.deepcopy(add)
        twin.outputs = list(op.outputs)
        graph.operators[i] = twin
        count += 1
    return count


def _rescale_bias(model, graph, op, users):
    source, weights, bias = (graph.tensors[j] for j in op.inputs[:3])
    s_in, s_w, s_b = _scales(source), _scales(weights), _scales(bias)
    if s_in is None or s_w is None or s_b is None or bias.type != _schema().TensorType.INT32:
        return 0
    want = (s_in[0] * s_w).astype(np.float32).astype(np.float64)
    if want.shape != s_b.shape or np.allclose(want, s_b, rtol=1e-6, atol=0):
        return 0
    values = _buffer_array(model, bias, np.int32)
    if values is None:
        return 0
    if users[bias.buffer] > 1:  # a buffer other tensors read too: give this bias its own copy
        users[bias.buffer] -= 1
        model.buffers.append(_schema().BufferT())
        bias.buffer = len(model.buffers) - 1
        users[bias.buffer] = 1
    new = np.round(values.astype(np.float64) * (s_b / want)).clip(-2**31, 2**31 - 1).astype(np.int32)
    _set_buffer(model, bias, new)
    bias.quantization.scale = want.astype(np.float32).tolist()
    return 1


def _int8_range_within_unit(tensor):
    """True when the int8 tensor's representable range lies within [-1, 1] (up to one step)."""
    scales = _scales(tensor)
    if scales is None or len(scales) != 1 or tensor.type != _schema().TensorType.INT8:
        return False
    s, z = scales[0], tensor.quantization.zeroPoint[0]
    return s * (-128 - z) >= -1 - s and s * (127 - z) <= 1 + s


def _operator_code(model, builtin):
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = _schema().OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def float_operators(blob):
    """The operators of the main graph that read or write a float32 tensor (other than the
    graph's own input and output), as ``[(index, name)]``: empty for an integer-only graph."""
    schema = _schema()
    model = read(blob)
    names = _names(schema)
    graph = model.subgraphs[0]
    ends = set(graph.inputs) | set(graph.outputs)
    found = []
    for i, op in enumerate(graph.operators):
        tensors = [j for j in list(op.inputs) + list(op.outputs) if j >= 0 and j not in ends]
        if any(graph.tensors[j].type == schema.TensorType.FLOAT32 for j in tensors):
            found.append((i, operator_name(model, op, names)))
        elif operator_name(model, op, names) == "DEQUANTIZE":
            found.append((i, "DEQUANTIZE"))
    return found
