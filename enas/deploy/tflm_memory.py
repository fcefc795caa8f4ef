"""The RAM a ``.tflite`` file needs in TensorFlow Lite Micro, computed from the file the way TFLM
plans it, and a better operator order.

TFLM's tensor arena has a head and a tail. The head holds the activations: every tensor that
is not a constant lives from the operator that writes it (the graph's inputs: from the start)
to the last operator that reads it (the graph's outputs: to the end), in the file's operator
order, and TFLM's greedy planner packs them: largest first, each at the lowest offset where it
overlaps no tensor alive at the same time, every size rounded up to 16 bytes.
:func:`planned_activations` does exactly that. The tail is TFLM's bookkeeping, estimated per
tensor and per operator by :func:`bookkeeping` (constants fitted to TFLM's recording allocator:
24 bytes per tensor, 64 per operator, the kernels' own data and their per-channel requantization
multipliers and shifts, 8 bytes per output channel).

The operator order is free wherever the graph allows it (a cell's branches can run in any
order), and the peak depends on it. :func:`better_order` searches topological orders greedily
(run next the ready operator after which the least memory stays alive, as the µNAS and MCUNet
schedulers do), and :func:`reordered` writes a file in that order; TFLM runs operators in file
order, so the file needs that much less arena.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from enas.deploy import int8_graph

ALIGNMENT = 16
TENSOR_BYTES = 24  # TfLiteEvalTensor
OPERATOR_BYTES = 64  # NodeAndRegistration
CHANNEL_BYTES = 8  # per output channel: an int32 multiplier and an int32 shift
# Each kernel's OpData (persistent), bytes; measured with TFLM's RecordingMicroAllocator.
KERNEL_BYTES = {"CONV_2D": 80, "DEPTHWISE_CONV_2D": 80, "FULLY_CONNECTED": 48, "ADD": 96, "MUL": 48,
                "QUANTIZE": 24, "MEAN": 64, "AVERAGE_POOL_2D": 32, "MAX_POOL_2D": 32, "CONCATENATION": 112,
                "SLICE": 0, "STRIDED_SLICE": 96, "PACK": 0, "MINIMUM": 0, "MAXIMUM": 0}
PER_CHANNEL = ("CONV_2D", "DEPTHWISE_CONV_2D")
FIXED_BYTES = 256  # the interpreter's own allocations


def _aligned(n):
    return (int(n) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}  # TensorType -> bytes per element


@dataclasses.dataclass
class Graph:
    """What the planner needs of a file: per tensor its bytes (0 for constants), per operator the
    tensors it reads and writes, the graph's inputs and outputs."""

    sizes: list
    reads: list
    writes: list
    inputs: list
    outputs: list
    names: list  # operator names
    channels: list  # per operator: output channels of a per-channel kernel, else 0


def graph_of(blob):
    model = int8_graph.read(blob)
    graph = model.subgraphs[0]
    sizes = []
    for tensor in graph.tensors:
        constant = tensor.buffer and model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data)
        shape = [max(int(d), 1) for d in (tensor.shape if tensor.shape is not None else [])]
        sizes.append(0 if constant else int(np.prod(shape, dtype=np.int64)) * _TYPE_BYTES.get(tensor.type, 4))
    names = [int8_graph.operator_name(model, op) for op in graph.operators]
    channels = []
    for name, op in zip(names, graph.operators):
        out = graph.tensors[op.outputs[0]]
        channels.append(int(out.shape[-1]) if name in PER_CHANNEL else 0)
    return Graph(sizes=sizes, reads=[[j for j in op.inputs if j >= 0] for op in graph.operators],
                 writes=[list(op.outputs) for op in graph.operators], inputs=list(graph.inputs),
                 outputs=list(graph.outputs), names=names, channels=channels)


def lifetimes(g, order=None):
    """``{tensor: (first, last)}`` operator positions of every non-constant tensor under ``order``
    (default: the file's)."""
    order = list(range(len(g.names))) if order is None else list(order)
    life = {j: [0, 0] for j in g.inputs if g.sizes[j]}
    for position, op in enumerate(order):
        for j in g.writes[op]:
            if g.sizes[j]:
                life.setdefault(j, [position, position])
        for j in g.reads[op]:
            if g.sizes[j] and j in life:
                life[j][1] = max(life[j][1], position)
    for j in g.outputs:
        if j in life:
            life[j][1] = len(order) - 1
    return {j: tuple(v) for j, v in life.items()}


def greedy_plan(sizes_and_lives):
    """TFLM's greedy memory planner on ``[(bytes, first, last)]``: the head size in bytes."""
    placed = []  # (offset, size, first, last)
    head = 0
    for size, first, last in sorted(sizes_and_lives, key=lambda t: -t[0]):
        size = _aligned(size)
        clashes = sorted((o, s) for o, s, f, l in placed if not (l < first or f > last))
        offset = 0
        for o, s in clashes:
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
        head = max(head, offset + size)
    return head


def planned_activations(blob_or_graph, order=None):
    """The arena head TFLM plans for the file's activations (bytes), in ``order`` (default the file's)."""
    g = blob_or_graph if isinstance(blob_or_graph, Graph) else graph_of(blob_or_graph)
    life = lifetimes(g, order)
    return greedy_plan([(g.sizes[j], f, l) for j, (f, l) in life.items()])


def bookkeeping(blob_or_graph):
    """The arena tail TFLM allocates for its own structures (bytes, estimated: module docstring)."""
    g = blob_or_graph if isinstance(blob_or_graph, Graph) else graph_of(blob_or_graph)
    total = FIXED_BYTES + TENSOR_BYTES * len(g.sizes) + OPERATOR_BYTES * len(g.names)
    for name, channels in zip(g.names, g.channels):
        total += KERNEL_BYTES.get(name, 64) + CHANNEL_BYTES * channels
    return total


def peak_ram(blob, order=None):
    """``(activations, bookkeeping, total)`` bytes of the arena TFLM needs for ``blob``."""
    g = graph_of(blob)
    head, tail = planned_activations(g, order), bookkeeping(g)
    return head, tail, head + tail


def better_order(blob_or_graph):
    """A topological operator order with a smaller (or equal) planned head than the file's: at each
    step the ready operator after which the fewest bytes stay alive (ties: the file's order)."""
    g = blob_or_graph if isinstance(blob_or_graph, Graph) else graph_of(blob_or_graph)
    producer = {j: op for op, outs in enumerate(g.writes) for j in outs}
    needs = [{producer[j] for j in g.reads[op] if j in producer} for op in range(len(g.names))]
    readers = {}
    for op, ins in enumerate(g.reads):
        for j in ins:
            readers.setdefault(j, set()).add(op)
    done, order = set(), []
    alive = {j for j in g.inputs if g.sizes[j]}
    pending = {j: set(readers.get(j, ())) for j in range(len(g.sizes))}
    while len(order) < len(g.names):
        ready = [op for op in range(len(g.names)) if op not in done and needs[op] <= done]

        def after(op):
            freed = sum(g.sizes[j] for j in set(g.reads[op]) & alive if pending[j] == {op} and j not in g.outputs)
            return sum(g.sizes[j] for j in g.writes[op]) - freed

        op = min(ready, key=lambda o: (after(o), o))
        order.append(op)
        done.add(op)
        for j in g.reads[op]:
            pending[j].discard(op)
            if not pending[j] and j not in g.outputs:
                alive.discard(j)
        alive.update(j for j in g.writes[op] if g.sizes[j])
    file_order = list(range(len(g.names)))
    return order if planned_activations(g, order) < planned_activations(g, file_order) else file_order


def reordered(blob, order):
    """The file with its operators in ``order`` (a topological order of its graph)."""
    model = int8_graph.read(blob)
    graph = model.subgraphs[0]
    graph.operators = [graph.operators[i] for i in order]
    return int8_graph.write(model)
