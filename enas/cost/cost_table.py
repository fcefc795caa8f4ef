"""What an architecture costs (weight memory, OPs), from a per-op table, in numpy and in a compiled step.

The bit-accurate summary (:mod:`enas.cost.model_summary`, ``summarize_arc.py``) of a fixed child is a
sum of rows, and every row belongs to exactly one of

* the *base*: the stem, the reductions, the cells' calibrations, the auxiliary head and the
  classifier, the same for every architecture;
* an *op* of a cell: a separable conv with its batch norms, whose cost depends only on the layer
  (its ``H x W x C``), the op and its precision, not on the node or slot it sits in (pools and
  identity cost nothing);
* a cell's *combine* (the 1x1 conv over its ``k`` unused ids), whose cost depends on the layer and
  ``k``.

:meth:`CostTable.build` measures those rows once by summarising one probe child per precision
(node 0 holds a 3x3 and a 5x5 separable conv at that precision, the other nodes identities; the
combine's other ``k`` follow from its quantizer's storage rule and its MACs, ``H W k C^2``), and
sums the ops of all normal (all reduction) layers into one table per cell type. The cost of an
architecture is then ``base + sum over op slots of op[cell, op, precision] + combine[cell, k]``:
the same totals as summarising its fixed child (``tests/test_cost.py`` compares them for random
architectures), computed in a few gathers inside the search's compiled reward.

Metrics, per example, as the summary defines them: ``memory_bits`` (every variable at its stored
width), ``flops`` (float MACs), ``bops`` (quantized MACs x weight bits x activation bits); then
``memory_kib = memory_bits / 8 / 1024`` and ``ops = flops + bops / 64``.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from enas.errors import ConfigError
from enas.space.arc import Arc, Cell, parse_arc, precision_name

METRICS = ("memory_bits", "flops", "bops")
_OP_ROW = re.compile(r"(layer_\d+)/ops/node0/([xy])/op(\d+)/")
_COMBINE_ROW = re.compile(r"(layer_\d+)/combine(/|$)")


@dataclasses.dataclass(frozen=True)
class Cost:
    """Cost of one architecture (per example)."""

    memory_bits: float
    flops: float
    bops: float

    @property
    def memory_kib(self):
        return self.memory_bits / 8 / 1024

    @property
    def ops(self):
        return self.flops + self.bops / 64

    def as_dict(self):
        return {"memory_kib": self.memory_kib, "ops": self.ops, "memory_bits": self.memory_bits,
                "flops": self.flops, "bops": self.bops}


def _row_metrics(row, mac_bits):
    flops = row.macs.get("float", 0)
    bops = sum(m * mac_bits[c][0] * mac_bits[c][1] for c, m in row.macs.items() if c != "float")
    return np.array([row.memory_bits, flops, bops], np.float64)


@dataclasses.dataclass
class CostTable:
    """Per-op cost tables of one child configuration (see the module docstring).

    Attributes:
        precisions: the precision names the op table's last axis stands for (one entry, the
            layers' own precision written as ``None``, when the precision is not searched).
        num_nodes: ``B``.
        op: ``[2, K, P, 3]``: normal / reduction cell, op, precision, metric.
        combine: ``[2, B + 3, 3]``: the combine of every layer of that cell type with ``k``
            unused ids.
        base: ``[3]``.
    """

    precisions: tuple
    num_nodes: int
    op: np.ndarray
    combine: np.ndarray
    base: np.ndarray

    @classmethod
    def build(cls, child_config, image_shape):
        """Measure the tables of ``child_config`` (its ``search_precisions``, or the layers' own
        precision) for images of ``image_shape`` (H, W, C): one summarised probe per precision."""
        from enas.child.micro_child import MicroChild
        from enas.cost.model_summary import storage_of, summarize

        b = child_config.num_nodes
        precisions = tuple(child_config.search_precisions) or (None,)
        from enas.space.search_space import SearchSpace

        op = np.zeros([2, SearchSpace(b).num_ops, len(precisions), 3])
        combine = np.zeros([2, b + 3, 3])
        base = None
        for p_index, name in enumerate(precisions):
            suffix = "" if name is None else f":{name}"
            cell = [0, f"0{suffix}", 1, f"1{suffix}"] + [0, 4, 1, 4] * (b - 1)
            arc = parse_arc(" ".join(str(v) for v in cell * 2), b)
            model = MicroChild(child_config, fixed_arc=arc).build_for(image_shape)
            summary = summarize(model)
            kinds = {f"layer_{i}": int(reducer is not None) for i, reducer in enumerate(model.reducers)}
            probe_base = np.zeros(3)
            combine_rows = {}
            for row in summary.rows:
                metrics = _row_metrics(row, summary.mac_bits)
                matched = _OP_ROW.match(row.path)
                if matched:
                    op[kinds[matched.group(1)], int(matched.group(3)), p_index] += metrics
                    continue
                matched = _COMBINE_ROW.match(row.path)
                if matched:
                    combine_rows[matched.group(1)] = combine_rows.get(matched.group(1), 0) + metrics
                    continue
                probe_base += metrics
            if base is None:
                base = probe_base
                for layer_name, metrics in combine_rows.items():
                    layer = model.cells[int(layer_name[6:])].combine
                    channels = layer.filters
                    probe_kernel = storage_of(layer.kernel_quantizer, (b, channels, channels)).total_bits(
                        b * channels * channels)
                    for k in range(1, b + 3):
                        kernel = storage_of(layer.kernel_quantizer, (k, channels, channels)).total_bits(
                            k * channels * channels)
                        scaled = metrics * k / b
                        combine[kinds[layer_name], k] += [metrics[0] - probe_kernel + kernel, scaled[1], scaled[2]]
            elif not np.allclose(base, probe_base):
                raise AssertionError("the base cost of the probes differs: an op's precision reached a shared layer")
        return cls(tuple(precisions), b, op, combine, base)

    @property
    def searches_precision(self):
        return self.precisions != (None,)

    def _precision_index(self, name):
        if not self.searches_precision:
            if name is not None:
                raise ConfigError(f"the cost table has no per-op precisions; got an op at {name}")
            return 0
        if name not in self.precisions:
            raise ConfigError(f"precision {name} is not one of the searched precisions {', '.join(self.precisions)}")
        return self.precisions.index(name)

    def cost(self, arc, default=None) -> Cost:
        """The :class:`Cost` of ``arc`` (anything :func:`parse_arc` reads, or a search vector);
        an op without a precision has ``default``'s."""
        if not isinstance(arc, (Arc, str)):
            values = list(np.asarray(arc).reshape(-1))
            arc = Arc.from_vector(values, self.precisions if self.searches_precision else ())
        arc = parse_arc(arc)
        default_name = None if default is None or not self.searches_precision else precision_name(default)
        total = self.base.copy()
        for t, cell in enumerate((arc.normal, arc.reduce)):
            total += self._cell_cost(t, cell, default_name)
        return Cost(*total.tolist())

    def _cell_cost(self, t, cell: Cell, default_name):
        total = np.zeros(3)
        for node in cell.nodes:
            for op, name in zip(node.ops, node.precisions):
                if self.op[t, op].any():
                    total += self.op[t, op, self._precision_index(name or default_name)]
        return total + self.combine[t, len(cell.unused_ids())]

    def tf_cost(self, vector):
        """``(memory_kib, ops)`` float32 scalars of a search vector (int32 ``[8B]``, or
        ``[12B]`` with precision indices), traceable: a few gathers."""
        import tensorflow as tf

        from enas.child.micro_cell import unused_mask

        b = self.num_nodes
        vector = tf.convert_to_tensor(vector, tf.int32)
        op_table = tf.constant(self.op, tf.float64)
        combine_table = tf.constant(self.combine, tf.float64)
        total = tf.constant(self.base, tf.float64)
        for t in range(2):
            cell = vector[4 * b * t:4 * b * (t + 1)]
            ops = cell[1::2]  # [2B]
            if self.searches_precision:
                precisions = vector[8 * b + 2 * b * t:8 * b + 2 * b * (t + 1)]
            else:
                precisions = tf.zeros_like(ops)
            total += tf.reduce_sum(tf.gather_nd(op_table[t], tf.stack([ops, precisions], axis=1)), axis=0)
            unused = tf.reduce_sum(tf.cast(unused_mask(cell, b), tf.int32))
            total += tf.gather(combine_table[t], unused)
        memory_kib = total[0] / 8.0 / 1024.0
        ops = total[1] + total[2] / 64.0
        return tf.cast(memory_kib, tf.float32), tf.cast(ops, tf.float32)


def pareto_front(points):
    """Indices of the points ``(cost, accuracy)`` no other point beats (cost <= and accuracy >=,
    one strictly), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
