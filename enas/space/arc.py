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

Mixed precision (``search_arc_*.py --search_precisions``): an op with weights (the separable
convs) may carry its precision after a colon, ``OP:PRECISION`` with PRECISION ``binary``,
``ternary``, ``<k>bit`` or ``float``, e.g. ``"0 0:binary 1 1:4bit ..."``. An op without one has
the run's precision (so every older string keeps its meaning); pools and identity have no weights
and take no precision. :meth:`Arc.to_vector` / :meth:`Arc.from_vector` convert to and from the
search's int vector (the ``8B`` integers, then one precision index per op slot, ``4B``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from enas.errors import ArcError, ConfigError
from enas.space.precision import Precision
from enas.space.search_space import DEFAULT as SPACE

OP_NAMES = SPACE.op_names
NUM_OPS = SPACE.num_ops

_CELL_NAMES = ("normal cell", "reduction cell")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_ANNOTATED_RE = re.compile(r"([+-]?[0-9]+):([A-Za-z0-9:_-]+)")
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


def precision_name(spec) -> str:
    """Canonical short name of a precision: ``binary``, ``ternary``, ``4bit``, ``float``."""
    try:
        precision = Precision.parse(spec)
    except ConfigError as e:
        raise _fail(f"bad op precision {spec!r} ({e}); write binary, ternary, <k>bit or float") from None
    return precision.short_name()


def _tokens_to_ints(text: str, annotations: dict | None = None) -> list[int]:
    """The integers of ``text``; ``OP:PRECISION`` tokens put ``{index: precision name}`` in
    ``annotations`` (refused when it is None)."""
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] == text[0]:
        text = text[1:-1].strip()
    tokens = [t for t in _SEPARATORS_RE.split(text) if t]
    if not tokens:
        raise _fail("empty string; expected the integers of the normal cell followed by the "
                    "reduction cell, e.g. 40 integers for 5 nodes")
    ints = []
    for i, token in enumerate(tokens, start=1):
        annotated = _ANNOTATED_RE.fullmatch(token)
        if annotated and annotations is not None:
            annotations[i - 1] = precision_name(annotated.group(2))
            token = annotated.group(1)
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


def _as_int_list(values, annotations: dict | None = None) -> list[int]:
    if isinstance(values, str):
        return _tokens_to_ints(values, annotations)
    if isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    elif not isinstance(values, Sequence):
        raise _fail("expected a string, a sequence of integers, an array or an Arc, "
                    f"got {type(values).__name__}")
    values = list(_flatten(values))
    if values and all(isinstance(v, str) for v in values):  # e.g. argparse nargs="+"
        return _tokens_to_ints(" ".join(values), annotations)
    return [_to_int(v, i) for i, v in enumerate(values, start=1)]


def _check_annotations(ints: list[int], annotations: dict) -> list:
    """Per-slot precision names (``4B`` entries, ``None``: the run's) from ``{token index:
    name}``; only op positions of ops with weights may carry one."""
    slots = [None] * (len(ints) // 2)
    n = len(ints) // 2
    for index, name in sorted(annotations.items()):
        cell, position = divmod(index, n)
        node, field = divmod(position, 4)
        where = f"{_CELL_NAMES[cell]}, node {node}"
        if field % 2 == 0:
            raise _fail(f"{where}: token {index + 1} is an input id; only an op takes a precision (OP:PRECISION)")
        op = ints[index]
        if 0 <= op < NUM_OPS and not SPACE.ops[op].has_weights:
            raise _fail(f"{where}: op {op} ({OP_NAMES[op]}) has no weights and takes no precision")
        slots[index // 2] = name
    return slots


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
    x_precision: str | None = None  # precision name of the x op (None: the run's precision)
    y_precision: str | None = None

    @property
    def precisions(self) -> tuple[str | None, str | None]:
        return (self.x_precision, self.y_precision)

    def tokens(self) -> list[str]:
        """``["0", "0:binary", "1", "4"]``: the four integers, ops with their precision if set."""
        out = []
        for slot_id, op, precision in ((self.x_id, self.x_op, self.x_precision),
                                       (self.y_id, self.y_op, self.y_precision)):
            out += [str(slot_id), str(op) if precision is None else f"{op}:{precision}"]
        return out

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
        for j, node in enumerate(self.nodes):
            for op, precision in zip(node.ops, node.precisions):
                if precision is not None and not SPACE.ops[op].has_weights:
                    raise _fail(f"cell, node {j}: op {op} ({OP_NAMES[op]}) has no weights and takes no precision")

    @classmethod
    def from_list(cls, values: Sequence[int], precisions: Sequence | None = None) -> Cell:
        """A cell from its ``4 * B`` integers (already validated, or validated as "cell") and
        optionally the ``2 * B`` precision names of its op slots (``None``: the run's)."""
        values = [int(v) for v in values]
        precisions = list(precisions) if precisions is not None else [None] * (len(values) // 2)
        return cls(tuple(Node(*values[i:i + 4], precisions[i // 2], precisions[i // 2 + 1])
                         for i in range(0, len(values), 4)))

    @property
    def precisions(self) -> list:
        """The ``2 * B`` precision names of the op slots (``None``: the run's precision)."""
        return [p for node in self.nodes for p in node.precisions]

    @property
    def is_mixed(self) -> bool:
        """Some op names its precision."""
        return any(p is not None for p in self.precisions)

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
        return "[" + " ".join(t for node in self.nodes for t in node.tokens()) + "]"


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
        """An arc from ``8 * B`` integers (normal cell, then reduction cell); in a string, ops
        may carry their precision (``OP:PRECISION``, see the module docstring)."""
        annotations = {}
        ints = _as_int_list(values, annotations)
        validate_arc_array(ints, num_nodes)
        slots = _check_annotations(ints, annotations)
        n, m = len(ints) // 2, len(slots) // 2
        return cls(Cell.from_list(ints[:n], slots[:m]), Cell.from_list(ints[n:], slots[m:]))

    @classmethod
    def from_vector(cls, values, precisions=()) -> Arc:
        """The arc of a search vector: ``8B`` integers, then (with two or more ``precisions``,
        names as :func:`precision_name` gives) ``4B`` precision indices, one per op slot in
        arc order; an op without weights ignores its index."""
        values = [int(v) for v in np.asarray(values).reshape(-1)]
        if len(precisions) < 2:
            return cls.from_list(values)
        num_nodes = len(values) // 12
        if len(values) != 12 * num_nodes or num_nodes == 0:
            raise _fail(f"a mixed-precision search vector has 12 * num_nodes integers, got {len(values)}")
        ints, indices = values[:8 * num_nodes], values[8 * num_nodes:]
        validate_arc_array(ints, num_nodes)
        slots = []
        for k, index in enumerate(indices):
            if not 0 <= index < len(precisions):
                raise _fail(f"precision index {index} at slot {k} is outside 0..{len(precisions) - 1}")
            slots.append(precision_name(precisions[index]) if SPACE.ops[ints[2 * k + 1]].has_weights else None)
        n = 4 * num_nodes
        return cls(Cell.from_list(ints[:n], slots[:2 * num_nodes]), Cell.from_list(ints[n:], slots[2 * num_nodes:]))

    def to_vector(self, precisions=(), default=None) -> list[int]:
        """Inverse of :meth:`from_vector`: the ``8B`` integers, then (with two or more
        ``precisions``) each op slot's index in ``precisions``; a slot without a precision has
        ``default``'s (the run's precision), pools and identity index 0."""
        if len(precisions) < 2:
            return self.to_list()
        names = [precision_name(p) for p in precisions]
        indices = []
        for op, name in zip(self.to_list()[1::2], self.normal.precisions + self.reduce.precisions):
            if not SPACE.ops[op].has_weights:
                indices.append(0)
                continue
            name = name or (None if default is None else precision_name(default))
            if name not in names:
                raise _fail(f"precision {name} is not one of the searched precisions {', '.join(names)}")
            indices.append(names.index(name))
        return self.to_list() + indices

    def with_precisions(self, default) -> Arc:
        """The same arc with every op with weights naming its precision (``default`` where it
        named none)."""
        name = precision_name(default)
        cells = [Cell.from_list(cell.to_list(), [p or (name if SPACE.ops[op].has_weights else None)
                                                  for op, p in zip(cell.to_list()[1::2], cell.precisions)])
                 for cell in (self.normal, self.reduce)]
        return Arc(*cells)

    @property
    def is_mixed(self) -> bool:
        """Some op names its precision."""
        return self.normal.is_mixed or self.reduce.is_mixed

    @property
    def num_nodes(self) -> int:
        return self.normal.num_nodes

    def to_list(self) -> list[int]:
        """The ``8B`` integers (without precisions)."""
        return self.normal.to_list() + self.reduce.to_list()

    def to_numpy(self) -> np.ndarray:
        return np.array([self.normal.to_list(), self.reduce.to_list()], dtype=np.int32)

    def __str__(self) -> str:
        return " ".join(t for cell in (self.normal, self.reduce) for node in cell.nodes for t in node.tokens())


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


def random_arc(num_nodes: int, rng: np.random.Generator, precisions=(), normal_cell: bool = True) -> Arc:
    """A uniformly random valid arc: each id uniform over ``0 .. j + 1``, each op over ops (and,
    with two or more ``precisions``, each op with weights a uniform precision of them).
    ``normal_cell=False`` (a child without normal layers): the normal cell is not drawn but a copy
    of the reduction cell (:func:`enas.controller.controller.mirror_normal_cell`)."""
    num_nodes = _check_num_nodes(num_nodes)
    if num_nodes is None:
        raise _fail("random_arc needs num_nodes")
    space = dataclasses.replace(SPACE, num_nodes=num_nodes)
    cells = []
    for _ in range(2 if normal_cell else 1):
        values = []
        for j in range(num_nodes):
            ids = rng.integers(0, space.input_choices(j), size=2)
            ops = rng.integers(0, space.num_ops, size=2)
            values += [int(ids[0]), int(ops[0]), int(ids[1]), int(ops[1])]
        cells.append(Cell.from_list(values, _random_slots(values, precisions, rng)))
    return Arc(*cells) if normal_cell else Arc(cells[0], cells[0])


def with_random_precisions(arc: Arc, precisions, rng: np.random.Generator) -> Arc:
    """``arc``'s inputs and ops, each op with weights at a uniform precision of ``precisions``
    (two or more; the draws :func:`random_arc` makes for them). Used to compare a mixed-precision
    search step with a single-precision one on the same architectures."""
    if len(precisions) < 2:
        raise _fail("with_random_precisions needs two or more precisions")
    return Arc(*(Cell.from_list(cell.to_list(), _random_slots(cell.to_list(), precisions, rng))
                 for cell in (arc.normal, arc.reduce)))


def _random_slots(values, precisions, rng):
    """Per op slot of a cell's ``values`` (``4B`` ints): a uniform precision name of
    ``precisions`` for an op with weights, ``None`` otherwise; ``None`` for fewer than two."""
    if len(precisions) < 2:
        return None
    names = [precision_name(p) for p in precisions]
    return [names[int(rng.integers(0, len(names)))] if SPACE.ops[op].has_weights else None
            for op in values[1::2]]
