"""Tests of enas.space.arc: parsing, formatting, validation and random sampling of architectures."""

import sys
from pathlib import Path

import numpy as np
import pytest

from enas.errors import ArcError, UserError
from enas.space.arc import (
    NUM_OPS,
    OP_NAMES,
    Arc,
    Cell,
    Node,
    parse_arc,
    random_arc,
    validate_arc_array,
    with_random_precisions,
)

ARC5 = "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3"
ARC5_INTS = [int(t) for t in ARC5.split()]
ARC3 = "0 2 1 4 1 3 0 1 2 0 1 0 1 1 0 3 2 4 0 2 3 0 2 1"
ARC3_INTS = [int(t) for t in ARC3.split()]


def _error(value, num_nodes=None) -> str:
    with pytest.raises(ArcError) as info:
        parse_arc(value, num_nodes)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("bad architecture: ")
    return message


def test_constants_and_error_type():
    assert NUM_OPS == 5 == len(OP_NAMES)
    assert OP_NAMES[0] == "sep_conv_3x3" and OP_NAMES[4] == "identity"
    assert issubclass(ArcError, UserError) and issubclass(ArcError, ValueError)


@pytest.mark.parametrize("text, ints, b", [(ARC5, ARC5_INTS, 5), (ARC3, ARC3_INTS, 3)])
def test_examples_parse(text, ints, b):
    arc = parse_arc(text)
    assert arc.num_nodes == b == arc.normal.num_nodes == arc.reduce.num_nodes
    assert arc.to_list() == ints
    assert arc.normal.to_list() == ints[:4 * b] and arc.reduce.to_list() == ints[4 * b:]
    assert parse_arc(text, num_nodes=b) == arc
    assert arc.normal.nodes[0] == Node(*ints[:4])
    assert all(type(v) is int for v in arc.to_list())


@pytest.mark.parametrize("text", [ARC5, ARC3])
def test_round_trip(text):
    arc = parse_arc(text)
    assert str(arc) == text
    assert parse_arc(str(arc)) == arc
    assert parse_arc(f"{arc.normal} {arc.reduce}") == arc
    assert parse_arc(arc.to_list()) == arc
    assert parse_arc(arc.to_numpy()) == arc
    assert parse_arc(arc.to_numpy().tolist()) == arc
    assert Arc.from_list(arc.to_list()) == arc
    assert hash(parse_arc(text)) == hash(arc)


def test_to_numpy():
    arc = parse_arc(ARC5)
    a = arc.to_numpy()
    assert a.dtype == np.int32 and a.shape == (2, 20)
    assert a.reshape(-1).tolist() == ARC5_INTS


def _variants(ints):
    b4 = len(ints) // 2
    sp = " ".join(map(str, ints))
    first, second = " ".join(map(str, ints[:b4])), " ".join(map(str, ints[b4:]))
    return [
        sp,
        ",".join(map(str, ints)),
        ", ".join(map(str, ints)),
        "\t".join(map(str, ints)),
        "\n".join(map(str, ints)),
        f"  {sp}  \n",
        f"[{sp}]",
        f"[{first}] [{second}]",
        f"[{first}]\n[{second}]",
        f"[[{first}]\n [{second}]]",
        "[[" + ", ".join(map(str, ints[:b4])) + "], [" + ", ".join(map(str, ints[b4:])) + "]]",
        f'"{sp}"',
        f"'{sp}'",
        f"'[{first}] [{second}]'",
        f'" {sp} "',
        str(ints),
        str(np.array(ints)),
        str(np.array([ints[:b4], ints[b4:]])),
        repr(ints),
    ]


@pytest.mark.parametrize("ints", [ARC5_INTS, ARC3_INTS])
def test_separators_brackets_quotes(ints):
    expected = Arc.from_list(ints)
    for text in _variants(ints):
        assert parse_arc(text) == expected, text


def test_non_string_inputs():
    expected = parse_arc(ARC5)
    assert parse_arc(tuple(ARC5_INTS)) == expected
    assert parse_arc(np.array(ARC5_INTS, dtype=np.int64)) == expected
    assert parse_arc(np.array(ARC5_INTS).reshape(2, 5, 4)) == expected
    assert parse_arc(np.array(ARC5_INTS, dtype=np.float32)) == expected
    assert parse_arc([np.int32(v) for v in ARC5_INTS]) == expected
    assert parse_arc([ARC5_INTS[:20], ARC5_INTS[20:]]) == expected
    assert parse_arc(ARC5.split()) == expected  # e.g. argparse nargs="+"
    assert parse_arc(expected) is expected
    assert parse_arc(expected, num_nodes=5) is expected


def test_count_errors():
    msg = _error(ARC5_INTS[:-1], num_nodes=5)
    assert "expected 40 integers (2 cells x 5 nodes x 4), got 39" in msg
    msg = _error(ARC3, num_nodes=5)
    assert "expected 40 integers" in msg and "got 24" in msg
    msg = _error(parse_arc(ARC3), num_nodes=5)
    assert "expected 40 integers" in msg and "got 24" in msg
    msg = _error(" ".join(ARC5.split()[:-1]))
    assert "multiple of 8" in msg and "got 39" in msg
    msg = _error([])
    assert "got 0" in msg
    for bad in (0, -1, 2.5, True):
        assert "num_nodes" in _error(ARC5, num_nodes=bad)


@pytest.mark.parametrize("text", ["", "   ", "\n", "[]", "[[ ], []]", '""', "''"])
def test_empty_string(text):
    assert "empty" in _error(text)


def test_non_integer_tokens():
    tokens = ARC5.split()
    tokens[6] = "x"
    msg = _error(" ".join(tokens))
    assert 'token 7 ("x")' in msg and "not an integer" in msg
    tokens[6] = "1.5"
    assert 'token 7 ("1.5")' in _error(",".join(tokens))
    tokens = ARC5.split()
    tokens[0] = "0;"
    assert 'token 1 ("0;")' in _error(" ".join(tokens))
    values = list(ARC5_INTS)
    values[3] = 1.5
    assert "element 4 (1.5)" in _error(values)
    values[3] = None
    assert "element 4 (None)" in _error(values)
    values[3] = True
    assert "element 4 (True)" in _error(values)
    assert "not an integer" in _error(np.array(ARC5_INTS, dtype=float) + 0.5)
    assert "expected a string" in _error(3.0)


def _set(ints, index, value):
    ints = list(ints)
    ints[index] = value
    return " ".join(map(str, ints))


def test_example_id_error_message():
    # reduction cell, node 1, y_id is integer 20 + 4 + 2 of the B=5 arc
    msg = _error(_set(ARC5_INTS, 20 + 4 * 1 + 2, 4))
    assert msg == ("bad architecture: reduction cell, node 1, y_id = 4: node 1 may only take "
                   "inputs 0..2 (the two cell inputs and earlier nodes)")


@pytest.mark.parametrize("cell, offset", [("normal cell", 0), ("reduction cell", 20)])
@pytest.mark.parametrize("node", range(5))
@pytest.mark.parametrize("pos, name", enumerate(("x_id", "x_op", "y_id", "y_op")))
def test_bad_value_messages(cell, offset, node, pos, name):
    index = offset + 4 * node + pos
    is_op = name.endswith("_op")
    bad_values = [5, 7, -1] if is_op else [node + 2, 9, -1]
    for value in bad_values:
        msg = _error(_set(ARC5_INTS, index, value), num_nodes=5)
        assert f"{cell}, node {node}, {name} = {value}:" in msg
        if is_op:
            assert ("ops are 0..4 (0 sep_conv_3x3, 1 sep_conv_5x5, 2 avg_pool_3x3, "
                    "3 max_pool_3x3, 4 identity)") in msg
        else:
            assert f"node {node} may only take inputs 0..{node + 1}" in msg
            if value < 0:
                assert "non-negative" in msg
    # the largest allowed value is fine
    assert parse_arc(_set(ARC5_INTS, index, 4 if is_op else node + 1)).num_nodes == 5


def test_first_error_reported_normal_before_reduction():
    ints = list(ARC3_INTS)
    ints[12 + 1] = 9
    ints[2] = 5
    assert "normal cell, node 0, y_id = 5" in _error(ints)


def test_validate_arc_array():
    validate_arc_array(np.array(ARC5_INTS), 5)
    validate_arc_array(parse_arc(ARC3).to_numpy(), 3)
    validate_arc_array(np.array(ARC3_INTS, dtype=np.int32).reshape(2, 12), None)
    with pytest.raises(ArcError, match="expected 40 integers"):
        validate_arc_array(np.array(ARC3_INTS), 5)
    bad = parse_arc(ARC3).to_numpy()
    bad[1, 4 * 2 + 0] = 4
    with pytest.raises(ArcError, match=r"reduction cell, node 2, x_id = 4: node 2 may only"):
        validate_arc_array(bad, 3)


def test_unused_ids_hand_worked():
    # module docstring example: node 0 <- 0, 1; node 1 <- 1, 0; node 2 <- 2 (node 0), 1
    cell = Cell.from_list([0, 2, 1, 4, 1, 3, 0, 1, 2, 0, 1, 0])
    assert cell.unused_ids() == (3, 4)
    arc = parse_arc(ARC5)
    assert arc.normal.unused_ids() == (2, 3, 4, 5, 6)  # every node reads only the cell inputs
    # reduction: node 3 reads id 3 (node 1); inputs 0, 1 used
    assert arc.reduce.unused_ids() == (2, 4, 5, 6)
    # inputs themselves may be unused: node 0 <- 1, 1; node 1 <- 2, 2
    cell = Cell.from_list([1, 0, 1, 1, 2, 4, 2, 3])
    assert cell.unused_ids() == (0, 3)


def test_node_and_cell_accessors():
    cell = Cell.from_list([0, 2, 1, 4, 1, 3, 0, 1, 2, 0, 1, 0])
    assert cell.num_nodes == 3
    assert cell.nodes[2].inputs == (2, 1) and cell.nodes[2].ops == (0, 0)
    assert cell.used_ops() == {(0, 0, 2), (0, 1, 4), (1, 0, 3), (1, 1, 1), (2, 0, 0),
                               (2, 1, 0)}
    assert cell.to_list() == [0, 2, 1, 4, 1, 3, 0, 1, 2, 0, 1, 0]


def test_cell_str_format():
    values = [0, 2, 1, 4, 1, 3, 0, 1, 2, 0, 1, 0]
    cell = Cell.from_list(values)
    assert str(cell) == "[0 2 1 4 1 3 0 1 2 0 1 0]"
    assert str(cell) == str(np.array(values))
    arc = parse_arc(ARC5)
    assert str(arc.normal) == "[" + " ".join(ARC5.split()[:20]) + "]"
    assert "\n" not in str(arc.normal)  # no numpy-style line wrapping


def test_direct_construction_is_validated():
    with pytest.raises(ArcError, match="cell, node 1, x_id = 3"):
        Cell((Node(0, 0, 1, 0), Node(3, 0, 0, 0)))
    with pytest.raises(ArcError, match="same number"):
        Arc(Cell.from_list(ARC3_INTS[:12]), Cell.from_list(ARC5_INTS[:20]))
    with pytest.raises(ArcError):
        Cell(())


@pytest.mark.parametrize("b", [3, 5])
def test_random_arc_valid_and_covers_everything(b):
    rng = np.random.default_rng(1234)
    n = 1000
    ids = np.zeros((2, b, 2, b + 1), dtype=np.int64)  # cell, node, slot, id
    ops = np.zeros((2, b, 2, NUM_OPS), dtype=np.int64)
    for _ in range(n):
        arc = random_arc(b, rng)
        assert arc.num_nodes == b
        validate_arc_array(arc.to_numpy(), b)
        assert parse_arc(str(arc), num_nodes=b) == arc
        for c, cell in enumerate((arc.normal, arc.reduce)):
            for j, node in enumerate(cell.nodes):
                for slot in range(2):
                    ids[c, j, slot, node.inputs[slot]] += 1
                    ops[c, j, slot, node.ops[slot]] += 1
    # every allowed id and op appears with roughly uniform frequency (> 6 sigma margin),
    # and disallowed ids never appear
    for j in range(b):
        allowed = ids[:, j, :, :j + 2]
        expected = n / (j + 2)
        assert allowed.min() > 0.6 * expected and allowed.max() < 1.4 * expected
        assert ids[:, j, :, j + 2:].sum() == 0
    assert ops.min() > 0.6 * n / NUM_OPS and ops.max() < 1.4 * n / NUM_OPS


def test_random_arc_reproducible():
    a = random_arc(5, np.random.default_rng(7))
    b = random_arc(5, np.random.default_rng(7))
    assert a == b
    with pytest.raises(ArcError):
        random_arc(0, np.random.default_rng(0))


def test_random_precisions_keep_the_architecture():
    """The same inputs and ops; every op with weights (and only those) gets a precision of the
    set, each of them drawn; the result pastes back as a mixed string."""
    rng = np.random.default_rng(3)
    precisions = ("binary", "ternary", "4bit")
    arc = parse_arc(ARC5)
    seen = set()
    for _ in range(20):
        mixed = with_random_precisions(arc, precisions, rng)
        assert mixed.to_list() == arc.to_list()
        ops = arc.to_list()[1::2]
        names = mixed.normal.precisions + mixed.reduce.precisions
        assert all((name in precisions) == (op in (0, 1)) for op, name in zip(ops, names))
        assert all(name is None for op, name in zip(ops, names) if op not in (0, 1))
        assert parse_arc(str(mixed)) == mixed
        seen.update(n for n in names if n)
    assert seen == set(precisions)
    with pytest.raises(ArcError, match="two or more"):
        with_random_precisions(arc, ("ternary",), rng)


def test_no_tensorflow_import():
    """Parsing arcs must stay cheap: importing enas.space.arc does not import TensorFlow."""
    import subprocess

    code = "import sys, enas.space.arc; sys.exit('tensorflow' in sys.modules)"
    root = str(Path(__file__).resolve().parents[1])
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
