"""Mixed-precision architectures and their cost: the ``OP:PRECISION`` arc syntax, the search
vector round trip, the cost table against the bit-accurate summary of the fixed child (numpy and
compiled), the MnasNet reward factor and the Pareto front."""

import numpy as np
import pytest
import tensorflow as tf

from enas.child.micro_child import MicroChild
from enas.config.child_config import ChildConfig, parse_precision_list
from enas.config.run_config import CostConfig
from enas.cost.cost_table import CostTable, pareto_front
from enas.cost.model_summary import summarize
from enas.errors import ArcError, ConfigError
from enas.space.arc import Arc, parse_arc, random_arc
from enas.space.precision import PrecisionPolicy

B = 3
PRECISIONS = ("binary", "ternary", "4bit")
MIXED = "0 0:binary 1 1:4bit 2 2 0 0:ternary 1 3 3 4 0 1:binary 1 0:4bit 2 1:ternary 1 4 3 2 0 0"


def test_annotated_arc_parses_prints_and_keeps_old_strings():
    arc = parse_arc(MIXED)
    assert str(arc) == MIXED
    assert arc.is_mixed and arc.normal.nodes[0].precisions == ("binary", "4bit")
    assert arc.normal.nodes[1].precisions == (None, "ternary")  # avg pool: no weights, no precision
    assert arc.normal.nodes[2].precisions == (None, None)
    assert arc.to_list() == [int(t.split(":")[0]) for t in MIXED.split()]
    plain = parse_arc(" ".join(str(v) for v in arc.to_list()))
    assert not plain.is_mixed and str(plain) == " ".join(str(v) for v in arc.to_list())
    # Spellings of a precision: canonical short names.
    assert str(parse_arc(MIXED.replace("4bit", "quantized:4"))) == MIXED


@pytest.mark.parametrize("text, fragment", [
    ("0:binary 0 1 1 0 0 1 0 0 0 1 1 0 0 1 1 1 0 0 0 0 0 1 1", "input id"),
    ("0 2:binary 1 1 0 0 1 0 0 0 1 1 0 0 1 1 1 0 0 0 0 0 1 1", "no weights"),
    ("0 0:5bitx 1 1 0 0 1 0 0 0 1 1 0 0 1 1 1 0 0 0 0 0 1 1", "bad op precision"),
])
def test_bad_annotations_are_one_line_errors(text, fragment):
    with pytest.raises(ArcError, match=fragment) as info:
        parse_arc(text, B)
    assert "\n" not in str(info.value)


def test_search_vector_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        arc = random_arc(B, rng, PRECISIONS)
        vector = arc.to_vector(PRECISIONS)
        assert len(vector) == 12 * B
        assert Arc.from_vector(vector, PRECISIONS) == arc
        assert parse_arc(str(arc)) == arc
    # An op without a precision takes the run's; pools and identity ignore their index.
    plain = parse_arc(" ".join(str(v) for v in parse_arc(MIXED).to_list()))
    vector = plain.to_vector(PRECISIONS, default="ternary")
    assert Arc.from_vector(vector, PRECISIONS) == plain.with_precisions("ternary")
    with pytest.raises(ArcError, match="not one of the searched"):
        plain.to_vector(PRECISIONS, default="float")
    with pytest.raises(ArcError, match="outside"):
        Arc.from_vector(vector[:-1] + [3], PRECISIONS)


def test_precision_list_flag():
    assert parse_precision_list("binary, ternary,4bit") == PRECISIONS
    assert parse_precision_list("") == ()
    with pytest.raises(ConfigError, match="search_precisions"):
        parse_precision_list("binary,fourbit")
    with pytest.raises(ConfigError, match="twice"):
        ChildConfig(search_precisions=("binary", "binary"))
    with pytest.raises(ConfigError, match="two or more"):
        ChildConfig(search_precisions=("binary",))  # one: nothing to search


def _summary_cost(config, arc):
    summary = summarize(MicroChild(config, fixed_arc=arc).build_for((28, 28, 1)))
    return summary.memory_bits, summary.flops, summary.bops


@pytest.fixture(scope="module")
def mixed_config():
    return ChildConfig(num_layers=1, num_nodes=B, out_filters=4, search_precisions=PRECISIONS,
                       use_aux_heads=True)


@pytest.fixture(scope="module")
def table(mixed_config):
    return CostTable.build(mixed_config, (28, 28, 1))


def test_cost_table_matches_the_summary_for_random_mixed_arcs(mixed_config, table):
    """The acceptance check: the table's cost equals ``summarize_arc.py``'s totals exactly, and the
    compiled cost equals it too (float32)."""
    fixed_config = ChildConfig(num_layers=1, num_nodes=B, out_filters=4, use_aux_heads=True)
    rng = np.random.default_rng(1)
    arcs = [random_arc(B, rng, PRECISIONS) for _ in range(8)] + [parse_arc(MIXED).with_precisions("ternary")]
    tf_cost = tf.function(table.tf_cost)
    for arc in arcs:
        memory_bits, flops, bops = _summary_cost(fixed_config, arc)
        cost = table.cost(arc)
        assert (cost.memory_bits, cost.flops, cost.bops) == (memory_bits, flops, bops), str(arc)
        memory_kib, ops = (float(t) for t in tf_cost(tf.constant(arc.to_vector(PRECISIONS), tf.int32)))
        assert memory_kib == pytest.approx(memory_bits / 8 / 1024, rel=1e-6)
        assert ops == pytest.approx(flops + bops / 64, rel=1e-6)


def test_single_precision_table_matches_the_summary():
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, policy=PrecisionPolicy.from_flags("binary"))
    table = CostTable.build(config, (28, 28, 1))
    assert not table.searches_precision
    for arc in (random_arc(2, np.random.default_rng(s)) for s in range(4)):
        assert (table.cost(arc).memory_bits, table.cost(arc).flops, table.cost(arc).bops) == _summary_cost(config, arc)


def test_lower_precision_costs_less(table):
    arc = parse_arc(" ".join(str(v) for v in parse_arc(MIXED).to_list()))
    memory = [table.cost(arc.with_precisions(p)).memory_kib for p in PRECISIONS]
    assert memory[0] < memory[1] < memory[2]


def test_reward_factor_soft_and_hard():
    soft = CostConfig(target_memory_kib=10, cost_weight=-0.07)
    assert soft.factor(10, 0) == pytest.approx(1.0)
    assert soft.factor(20, 0) == pytest.approx(2 ** -0.07)
    assert soft.factor(5, 0) == pytest.approx(0.5 ** -0.07) and soft.factor(5, 0) > 1
    hard = CostConfig(target_memory_kib=10, cost_constraint="hard")
    assert hard.factor(5, 0) == 1.0 and hard.factor(20, 0) == pytest.approx(2 ** -0.07)
    both = CostConfig(target_memory_kib=10, target_ops=1e6, cost_weight=-0.5)
    assert both.factor(20, 4e6) == pytest.approx(2 ** -0.5 * 4 ** -0.5)
    assert both.meets(10, 1e6) and not both.meets(10.5, 1e6)
    for config, args in ((soft, (20.0, 0.0)), (hard, (5.0, 0.0)), (both, (20.0, 4e6))):
        assert float(config.tf_factor(tf.constant(args[0]), tf.constant(args[1]))) == pytest.approx(
            config.factor(*args), rel=1e-6)
    assert CostConfig().factor(123, 456) == 1.0 and not CostConfig().has_target


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(cost_weight=0.1), "cost_weight"), (dict(target_memory_kib=-1), "target_memory_kib"),
    (dict(cost_constraint="strict"), "cost_constraint"),
])
def test_bad_cost_settings(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        CostConfig(**kwargs)


def test_pareto_front():
    points = [(3, 0.9), (1, 0.5), (2, 0.5), (2, 0.8), (4, 0.85), (5, 0.95)]
    assert pareto_front(points) == [1, 3, 0, 5]
