"""Architecture strings of the ENAS micro search space: the one place where arcs are parsed.

A cell has ``B`` nodes (``num_nodes``, 5 by default). Ids 0 and 1 are the cell's two inputs (the
outputs of the previous two layers); id ``k + 2`` is node ``k``. Each node is four integers
``x_id x_op y_id y_op`` and computes ``op[x_op](input x_id) + op[y_op](input y_id)``. Node ``j``
(0-based) may take inputs ``0 .. j + 1``: the two cell inputs and earlier nodes, never itself or a
later node. The ops are::

    0 sep_conv_3x3   1 sep_conv_5x5   2 avg_pool_3x3   3 max_pool_3x3   4 identity

The cell output concatenates (along channels) every one of the ``B + 2`` ids, cell inputs
included, that no node uses as an input. A cell is ``4 * B`` integers; an architecture is the
normal cell followed by the reduction cell, ``8 * B`` integers (40 for B=5, 24 for B=3).

Worked example, a B=3 normal cell ``[0 2 1 4 1 3 0 1 2 0 1 0]``::

    node 0 (id 2): 0 2 1 4  ->  avg_pool_3x3(input 0) + identity(input 1)
    node 1 (id 3): 1 3 0 1  ->  max_pool_3x3(input 1) + sep_conv_5x5(input 0)
    node 2 (id 4): 2 0 1 0  ->  sep_conv_3x3(node 0) + sep_conv_3x3(input 1)

Ids 0, 1 and 2 are used as inputs, so the unused ids are 3 and 4 and the cell output is
``concat(node 1, node 2)``.

:func:`parse_arc` accepts the integers separated by spaces, commas, tabs or newlines, optionally
inside (nested) square brackets and quotes, e.g. ``"0 2 1 4 ..."``, ``"0,2,1,4,..."``,
``"[0 2 1 4 ...] [1 3 ...]"`` or ``"[[0, 2, ...], [...]]"``; also a sequence of integers, a NumPy
array of any shape, or an :class:`Arc`. Malformed input raises :class:`~enas.errors.ArcError`
whose one-line message names the cell, node, position and value at fault.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from enas.errors import ArcError
from enas.search_space import DEFAULT as SPACE

OP_NAMES = SPACE.op_names
NUM_OPS = SPACE.num_ops

_CELL_NAMES = ("normal cell", "reduction cell")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_SEPARATORS_RE = re.compile(r"[\s,\[\]]+")
_QUOTES = "'\""


def _fail(message: str) -> ArcError:
    return ArcError("bad architecture: " + " ".join(message.split()))


def _check_num_nodes(num_nodes) -> int | None:
    if num_nodes is None:
        return None
    if isinstance(num_nodes, (bool, np.bool_)) or not isinstance(num_nodes, (int, np.integer)) \
            or num_nodes < 1:
        raise _fail(f"num_nodes must be a positive integer, got {num_nodes!r}")
    return int(num_nodes)


def _check_count(count: int, num_nodes: int | None) -> int:
    """Returns num_nodes implied by ``count`` integers (checked against ``num_nodes`` if given)."""
    if num_nodes is not None:
        if count != 8 * num_nodes:
            raise _fail(f"expected {8 * num_nodes} integers (2 cells x {num_nodes} nodes x 4), "
                        f"got {count}")
        return num_nodes
    if count == 0 or count % 8:
        raise _fail("expected a positive multiple of 8 integers (2 cells x num_nodes x 4, "
                    f"e.g. 40 for 5 nodes), got {count}")
    return count // 8


def _check_cell(values: Sequence[int], cell_name: str) -> None:
    """Checks the 4*B ints of one cell; messages name ``cell_name``, the node and the position."""
    problem = SPACE.cell_problem(values)
    if problem is not None:
        node, field, value, message = problem
        raise _fail(f"{cell_name}, node {node}, {field} = {value}: {message}")


def _is_int(item) -> bool:
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def _to_int(item, index: int) -> int:
    """``item`` as an int; ``index`` is its 1-based position, for the error message."""
    if _is_int(item):
        return int(item)
    if isinstance(item, (float, np.floating)) and float(item).is_integer():
        return int(item)  # e.g. from np.loadtxt
    if isinstance(item, np.generic):
        item = item.item()
    raise _fail(f"element {index} ({item!r}) is not an integer")


def _tokens_to_ints(text: str) -> list[int]:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] == text[0]:
        text = text[1:-1].strip()
    tokens = [t for t in _SEPARATORS_RE.split(text) if t]
    if not tokens:
        raise _fail("empty string; expected the integers of the normal cell followed by the "
                    "reduction cell, e.g. 40 integers for 5 nodes")
    ints = []
    for i, token in enumerate(tokens, start=1):
        if not _INT_RE.fullmatch(token):
            raise _fail(f'token {i} ("{token}") is not an integer')
        ints.append(int(token))
    return ints


def _flatten(values):
    for v in values:
        if isinstance(v, np.ndarray):
            yield from v.reshape(-1).tolist()
        elif isinstance(v, Sequence) and not isinstance(v, str):
            yield from _flatten(v)
        else:
            yield v


def _as_int_list(values) -> list[int]:
    if isinstance(values, str):
        return _tokens_to_ints(values)
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    elif not isinstance(values, Sequence):
        raise _fail("expected a string, a sequence of integers, an array or an Arc, "
                    f"got {type(values).__name__}")
    values = list(_flatten(values))
    if values and all(isinstance(v, str) for v in values):  # e.g. argparse nargs="+"
        return _tokens_to_ints(" ".join(values))
    return [_to_int(v, i) for i, v in enumerate(values, start=1)]


def validate_arc_array(values, num_nodes=None) -> None:
    """Raises :class:`ArcError` unless ``values`` (any shape, flattened) is a valid arc.

    ``num_nodes`` fixes the expected count ``8 * num_nodes``; if None, any positive multiple
    of 8 is accepted.
    """
    ints = _as_int_list(values)
    num_nodes = _check_count(len(ints), _check_num_nodes(num_nodes))
    n = 4 * num_nodes
    _check_cell(ints[:n], _CELL_NAMES[0])
    _check_cell(ints[n:], _CELL_NAMES[1])


@dataclasses.dataclass(frozen=True)
class Node:
    """One node: ``op[x_op](x_id) + op[y_op](y_id)``."""

    x_id: int
    x_op: int
    y_id: int
    y_op: int

    @property
    def inputs(self) -> tuple[int, int]:
        return (self.x_id, self.y_id)

    @property
    def ops(self) -> tuple[int, int]:
        return (self.x_op, self.y_op)

    def to_list(self) -> list[int]:
        return [self.x_id, self.x_op, self.y_id, self.y_op]


@dataclasses.dataclass(frozen=True)
class Cell:
    """A cell of ``num_nodes`` nodes; constructing an invalid cell raises :class:`ArcError`."""

    nodes: tuple[Node, ...]

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes or not all(isinstance(n, Node) for n in self.nodes):
            raise _fail("a cell needs at least one node and only Node objects")
        values = self.to_list()
        if not all(_is_int(v) for v in values):
            raise _fail(f"cell {values}: node fields must be integers")
        _check_cell(values, "cell")

    @classmethod
    def from_list(cls, values: Sequence[int]) -> Cell:
        """A cell from its ``4 * B`` integers (already validated, or validated as "cell")."""
        values = [int(v) for v in values]
        return cls(tuple(Node(*values[i:i + 4]) for i in range(0, len(values), 4)))

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def to_list(self) -> list[int]:
        return [v for node in self.nodes for v in node.to_list()]

    def unused_ids(self) -> tuple[int, ...]:
        """Sorted ids in ``0 .. num_nodes + 1`` no node takes as input (concatenated as output)."""
        used = {i for node in self.nodes for i in node.inputs}
        return tuple(i for i in range(self.num_nodes + 2) if i not in used)

    def used_ops(self) -> set[tuple[int, int, int]]:
        """``(node, slot, op)`` triples, slot 0 for x and 1 for y."""
        return {(j, slot, op) for j, node in enumerate(self.nodes)
                for slot, op in enumerate(node.ops)}

    def __str__(self) -> str:
        return "[" + " ".join(str(v) for v in self.to_list()) + "]"


@dataclasses.dataclass(frozen=True)
class Arc:
    """A normal cell and a reduction cell with the same number of nodes."""

    normal: Cell
    reduce: Cell

    def __post_init__(self):
        if not isinstance(self.normal, Cell) or not isinstance(self.reduce, Cell):
            raise _fail("an Arc is made of two Cell objects")
        if self.normal.num_nodes != self.reduce.num_nodes:
            raise _fail(f"the normal cell has {self.normal.num_nodes} nodes but the reduction "
                        f"cell has {self.reduce.num_nodes}; both need the same number")

    @classmethod
    def from_list(cls, values, num_nodes: int | None = None) -> Arc:
        """An arc from ``8 * B`` integers (normal cell, then reduction cell)."""
        ints = _as_int_list(values)
        validate_arc_array(ints, num_nodes)
        n = len(ints) // 2
        return cls(Cell.from_list(ints[:n]), Cell.from_list(ints[n:]))

    @property
    def num_nodes(self) -> int:
        return self.normal.num_nodes

    def to_list(self) -> list[int]:
        return self.normal.to_list() + self.reduce.to_list()

    def to_numpy(self) -> np.ndarray:
        return np.array([self.normal.to_list(), self.reduce.to_list()], dtype=np.int32)

    def __str__(self) -> str:
        return " ".join(str(v) for v in self.to_list())


def parse_arc(value, num_nodes: int | None = None) -> Arc:
    """Parses an architecture string, sequence, array or :class:`Arc` (see the module docstring).

    If ``num_nodes`` is given the arc must have exactly ``8 * num_nodes`` integers.
    """
    if isinstance(value, Arc):
        num_nodes = _check_num_nodes(num_nodes)
        if num_nodes is not None:
            _check_count(len(value.to_list()), num_nodes)
        return value
    return Arc.from_list(value, num_nodes)


def random_arc(num_nodes: int, rng: np.random.Generator) -> Arc:
    """A uniformly random valid arc: each id uniform over ``0 .. j + 1``, each op over ops."""
    num_nodes = _check_num_nodes(num_nodes)
    if num_nodes is None:
        raise _fail("random_arc needs num_nodes")
    space = dataclasses.replace(SPACE, num_nodes=num_nodes)
    cells = []
    for _ in range(2):
        values = []
        for j in range(num_nodes):
            ids = rng.integers(0, space.input_choices(j), size=2)
            ops = rng.integers(0, space.num_ops, size=2)
            values += [int(ids[0]), int(ops[0]), int(ids[1]), int(ops[1])]
        cells.append(Cell.from_list(values))
    return Arc(*cells)
