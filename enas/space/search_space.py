"""The ENAS micro search space, spelled once: its ops (by name) and the choices of each decision.

A cell of ``B`` nodes is ``4 * B`` decisions, node ``j`` taking ``x_id x_op y_id y_op``: an input
id in ``0 .. j + 1`` (the two cell inputs, then earlier nodes) and an op index for each of its two
slots; an architecture is the normal cell then the reduction cell, ``8 * B`` decisions.
:class:`SearchSpace` answers every question about that layout (how many choices a decision has,
where node ``j``'s slot ``s`` sits in the list, which op is the identity), and parsing
(:mod:`enas.space.arc`), sampling (:mod:`enas.controller.controller`), the cell (:mod:`enas.child.micro_cell`), its op
layers (:func:`enas.child.micro_ops.make_op`) and the diagrams (:mod:`enas.viz.draw`) all ask it.

No TensorFlow here.
"""

from __future__ import annotations

import dataclasses

FIELDS = ("x_id", "x_op", "y_id", "y_op")  # the four decisions of a node, in arc order


@dataclasses.dataclass(frozen=True)
class Op:
    """One candidate op: ``name`` (as in ENAS), ``label`` (diagrams), ``family``
    (``sep_conv``, ``avg_pool``, ``max_pool`` or ``identity``), ``kernel_size`` and ``color``."""

    name: str
    label: str
    family: str
    kernel_size: int | None = None
    color: str = "#555555"

    @property
    def has_weights(self):
        return self.family == "sep_conv"


OPS = (
    Op("sep_conv_3x3", "sep 3x3", "sep_conv", 3, "#1f6fb4"),
    Op("sep_conv_5x5", "sep 5x5", "sep_conv", 5, "#8e44ad"),
    Op("avg_pool_3x3", "avg pool", "avg_pool", 3, "#2e9e44"),
    Op("max_pool_3x3", "max pool", "max_pool", 3, "#d62728"),
    Op("identity", "identity", "identity", None, "#555555"),
)


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Cells of ``num_nodes`` nodes over ``ops`` (default: ENAS's five), and the precisions an op
    with weights may take (``precisions``: names such as ``("binary", "ternary", "4bit")``; fewer
    than two: the precision is not searched, every op has the run's)."""

    num_nodes: int = 5
    ops: tuple = OPS
    precisions: tuple = ()

    @property
    def searches_precision(self):
        """The precision of each op with weights is a decision (two or more precisions)."""
        return len(self.precisions) >= 2

    @property
    def num_precisions(self):
        """Precisions to choose from (1 when the precision is not searched)."""
        return len(self.precisions) if self.searches_precision else 1

    @property
    def vector_length(self):
        """Length of the search's int vector: the ``8B`` decisions, then, when the precision is
        searched, one precision index per op slot (``4B``): ``12B``."""
        return self.arc_length + (self.arc_length // 2 if self.searches_precision else 0)

    @property
    def weighted_ops(self):
        """1 for each op with weights, 0 otherwise (in op order)."""
        return tuple(int(op.has_weights) for op in self.ops)

    @property
    def num_ops(self):
        return len(self.ops)

    @property
    def op_names(self):
        return tuple(op.name for op in self.ops)

    @property
    def identity_op(self):
        """Index of the identity op (no weights, never dropped by drop path)."""
        return next(i for i, op in enumerate(self.ops) if op.family == "identity")

    @property
    def cell_length(self):
        """Decisions of one cell: ``4 * num_nodes``."""
        return len(FIELDS) * self.num_nodes

    @property
    def arc_length(self):
        """Decisions of an architecture (normal and reduction cell): ``8 * num_nodes``."""
        return 2 * self.cell_length

    @property
    def num_ids(self):
        """Ids a cell holds: the two inputs and the nodes, ``num_nodes + 2``."""
        return self.num_nodes + 2

    @staticmethod
    def input_position(node, slot):
        """Index, within a cell's decisions, of node ``node``'s input id for ``slot`` (0: x, 1: y);
        its op follows at ``+ 1``."""
        return len(FIELDS) * node + 2 * slot

    @staticmethod
    def input_choices(node):
        """Input ids node ``node`` may take: ``0 .. node + 1``."""
        return node + 2

    def choices(self):
        """Number of allowed values of each decision of an architecture (``8 * num_nodes``)."""
        return decision_choices(self.num_nodes, self.num_ops)

    def positions(self):
        """Every ``(node, slot, op)`` a search-mode cell holds a layer for."""
        return [(n, s, o) for n in range(self.num_nodes) for s in range(2) for o in range(self.num_ops)]

    def ops_help(self):
        """``"ops are 0..4 (0 sep_conv_3x3, ...)"``, for error messages."""
        return "ops are 0..{} ({})".format(self.num_ops - 1, ", ".join(f"{i} {op.name}" for i, op in enumerate(self.ops)))

    def cell_problem(self, values):
        """The first reason ``values`` (one cell's ints) is not a valid cell, as ``(node, field,
        value, message)``, or ``None``. Node ``j`` may take inputs ``0 .. j + 1``."""
        for node in range(len(values) // len(FIELDS)):
            allowed = "the two cell inputs" if node == 0 else "the two cell inputs and earlier nodes"
            id_help = f"node {node} may only take inputs 0..{node + 1} ({allowed})"
            for pos, field in enumerate(FIELDS):
                v = values[len(FIELDS) * node + pos]
                if field.endswith("_op"):
                    if not 0 <= v < self.num_ops:
                        return node, field, v, self.ops_help()
                elif v < 0:
                    return node, field, v, f"ids must be non-negative; {id_help}"
                elif v >= self.input_choices(node):
                    return node, field, v, id_help
        return None


def decision_choices(num_nodes, num_ops):
    """Allowed values of each of the ``8 * num_nodes`` decisions of an architecture: node ``j``'s
    input ids allow ``j + 2`` values, its ops ``num_ops``; the same for both cells."""
    cell = [n for node in range(num_nodes) for n in (SearchSpace.input_choices(node), num_ops) * 2]
    return cell * 2


DEFAULT = SearchSpace()
