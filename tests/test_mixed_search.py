"""Searching the precision too: the shared child quantizes each op at the sampled precision in one
compiled step (and computes what the fixed mixed network computes), the controller samples
precisions, a cost-weighted reward moves it to cheaper architectures within the target, and the
search script reports costs, writes the Pareto front and a pick that trains and summarizes."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import search_arc_mnist
import summarize_arc
import train_arc_mnist
from enas.child.child_trainer import ChildTrainer, make_optimizer
from enas.child.micro_child import MicroChild
from enas.cli import script
from enas.config.child_config import ChildConfig
from enas.config.run_config import CostConfig
from enas.controller.controller import RandomController, ReinforceTrainer
from enas.controller.micro_controller import MicroController
from enas.cost.cost_table import CostTable
from enas.run import run_dir
from enas.search.search_cost import SearchCost
from enas.space.arc import Arc, parse_arc, random_arc
from enas.space.search_space import SearchSpace
from tests.conftest import argv_from
from tests.test_search import SEARCH_TINY
from tests.test_search_step import _images, _transplant

B = 3
PRECISIONS = ("binary", "ternary", "4bit")
# Every op in each cell, the sep convs at different precisions.
MIXED = "0 0:binary 1 1:4bit 2 2 1 3 3 4 0 0:ternary 1 3 0 2 2 4 1 1:ternary 0 0:4bit 3 3"


def _config(**kw):
    return ChildConfig(num_layers=1, num_nodes=B, out_filters=4, search_precisions=PRECISIONS, **kw)


def test_mixed_search_child_computes_the_fixed_mixed_network():
    arc = parse_arc(MIXED)
    search = MicroChild(_config()).build_for((28, 28, 1))
    fixed = MicroChild(ChildConfig(num_layers=1, num_nodes=B, out_filters=4), fixed_arc=arc).build_for((28, 28, 1))
    _transplant(search, fixed)
    x = _images()
    vector = tf.constant(arc.to_vector(PRECISIONS, default="ternary"), tf.int32)
    np.testing.assert_allclose(search(x, arc=vector, training=True).numpy(), fixed(x, training=True).numpy(),
                               rtol=1e-4, atol=1e-4)


SMALL_MIXED = "0 0:binary 1 2 2 1:4bit 0 4 1 0:ternary 0 3 2 1:binary 1 4"  # B = 2


def test_precision_is_a_run_time_input_of_one_compiled_step():
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, search_precisions=PRECISIONS)
    model = MicroChild(config).build_for((28, 28, 1))
    assert model.space.vector_length == 24
    single = MicroChild(ChildConfig(num_layers=0, num_nodes=2, out_filters=4)).build_for((28, 28, 1))
    assert len(model.trainable_variables) == len(single.trainable_variables)  # no weights per precision
    trainer = ChildTrainer(model, make_optimizer("sgd", 0.0), 6, search_mode=True)
    x, labels = _images(), tf.constant([0, 1, 2, 3, 4, 5])
    rng = np.random.default_rng(0)
    for _ in range(4):
        arc = random_arc(2, rng, PRECISIONS)
        trainer.train_step(x, labels, tf.constant(arc.to_vector(PRECISIONS), tf.int32))
    assert trainer.trace_count == 1
    # The precision index changes the output of an op with weights, not that of a pool (both
    # layers are reductions here: the reduction cell's slots, 16 + 4 ..).
    base = parse_arc(SMALL_MIXED).to_vector(PRECISIONS)

    def logits(vector):
        return model(x, arc=tf.constant(vector, tf.int32), training=False).numpy()

    reference = logits(base)
    changed = list(base)
    changed[20] = (changed[20] + 1) % 3  # node 0's x op: sep 3x3
    assert np.abs(logits(changed) - reference).max() > 1e-4
    unchanged = list(base)
    unchanged[21] = (unchanged[21] + 1) % 3  # node 0's y op: max pool
    np.testing.assert_allclose(logits(unchanged), reference, rtol=1e-6, atol=1e-6)


def test_controllers_sample_precisions():
    space = SearchSpace(B, precisions=PRECISIONS)
    controller = MicroController(B, lstm_size=16, seed=0, num_precisions=3, weighted_ops=space.weighted_ops)
    random = RandomController(B, num_precisions=3, seed=0)
    for c in (controller, random):
        for _ in range(5):
            sample = c.sample()
            vector = sample.arc.numpy()
            assert vector.shape == (12 * B,) and vector[8 * B:].min() >= 0 and vector[8 * B:].max() <= 2
            Arc.from_vector(vector, PRECISIONS)  # valid
            np.testing.assert_allclose(c.log_prob_of(sample.arc).log_prob.numpy(), sample.log_prob.numpy(),
                                       rtol=1e-5)
    # The precision decision of an op without weights does not count.
    sample = controller.sample()
    vector = sample.arc.numpy().copy()
    pools = [k for k, op in enumerate(vector[1:8 * B:2]) if op >= 2]
    assert pools
    vector[8 * B + pools[0]] = (vector[8 * B + pools[0]] + 1) % 3
    np.testing.assert_allclose(controller.log_prob_of(tf.constant(vector)).log_prob.numpy(),
                               sample.log_prob.numpy(), rtol=1e-5)


def _controller_cost_after_training(costing, steps, seed=0):
    controller = MicroController(2, lstm_size=16, seed=seed, num_precisions=3,
                                 weighted_ops=SearchSpace(2).weighted_ops)
    accuracy = tf.constant(0.9)
    trainer = ReinforceTrainer(controller, lambda arc: (accuracy, costing.tf_reward(accuracy, arc)),
                               learning_rate=0.05, entropy_weight=0.0, num_aggregate=8)
    for _ in range(steps):
        trainer.train_step()
    costs = [costing.of(Arc.from_vector(controller.sample().arc.numpy(), PRECISIONS)) for _ in range(60)]
    return np.mean([c["memory_kib"] for c in costs]), np.mean([c["meets_target"] for c in costs])


def test_toy_reward_moves_the_controller_to_cheaper_architectures_within_the_target():
    """Accuracy held constant: the reward is the cost factor alone. The heavier the cost weight,
    the cheaper the architectures the controller samples after the same training, and at a heavy
    weight nearly all of them are within a target (halfway between the cheapest cell and the
    all-ternary one) that few untrained samples meet."""
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=8, search_precisions=PRECISIONS)
    table = CostTable.build(config, (28, 28, 1))
    cheapest = table.cost(parse_arc("0 4 1 4 0 4 1 4 0 4 1 4 0 4 1 4")).memory_kib
    all_ternary = table.cost(parse_arc("0 0 1 1 0 0 1 1 0 0 1 1 0 0 1 1").with_precisions("ternary")).memory_kib
    target = (cheapest + all_ternary) / 2
    results = {}
    for weight in (0.0, -0.3, -2.0):
        costing = SearchCost(table, CostConfig(target_memory_kib=target, cost_weight=weight), "ternary")
        results[weight] = _controller_cost_after_training(costing, steps=120)
    untrained = _controller_cost_after_training(SearchCost(table, CostConfig(target_memory_kib=target), "ternary"),
                                                steps=0)
    memory = {w: r[0] for w, r in results.items()}
    assert memory[-2.0] < memory[-0.3] < memory[0.0], memory
    assert memory[-2.0] < untrained[0] - 0.3 * (untrained[0] - cheapest), (memory, untrained)
    assert results[-2.0][1] >= 0.85 and results[-2.0][1] > untrained[1] + 0.25, (results, untrained)


VAL_COST_LINE = re.compile(r"^val_acc = \d\.\d{4}\s+memory = \d+\.\d{2} KiB\s+ops = \d+\.\d{2} MOPs\s+"
                           r"reward = \d\.\d{4}\s+\((within|over) target\)$")


def test_mixed_precision_search_end_to_end(tmp_path, mnist_path, capsys):
    """``--search_precisions binary,ternary,4bit --target_memory_kib T``: the report gives each
    architecture's cost, the pick meets the target when any evaluated one does, pareto.json/png are
    written, and the pick trains with ``train_arc_mnist.py`` and summarizes to the reported size."""
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, search_precisions=PRECISIONS)
    table = CostTable.build(config, (28, 28, 1))
    rng = np.random.default_rng(0)
    costs = sorted(table.cost(random_arc(2, rng, PRECISIONS)).memory_kib for _ in range(50))
    target = round(costs[len(costs) // 3], 3)  # a third of random mixed arcs fit
    out_dir = tmp_path / "search"
    settings = {**search_arc_mnist.CONFIG, **SEARCH_TINY, "data_path": mnist_path, "output_dir": str(out_dir),
                "num_epochs": 1, "search_precisions": "binary,ternary,4bit", "target_memory_kib": target,
                "final_pick_samples": 8}
    code = script.main(search_arc_mnist.CONFIG, "mnist", "search", argv_from(settings, "search"))
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "Op precisions: binary, ternary, 4bit; reward = acc * (memory / " in out
    reported = [line for i, line in enumerate(lines) if line.startswith("val_acc = ") and lines[i + 1].startswith("arc = ")]
    assert len(reported) == 3 and all(VAL_COST_LINE.match(line) for line in reported), reported
    pick = json.loads((out_dir / "final_pick.json").read_text())
    best = json.loads((out_dir / "best_arc.json").read_text())
    within = [item for item in pick["ranked"] if item["meets_target"]]
    assert within and len(within) < len(pick["ranked"])  # the target splits the sampled architectures
    assert best["meets_target"] and best["memory_kib"] <= target
    assert best["val_acc"] == max(item["val_acc"] for item in within)
    pareto = json.loads((out_dir / "pareto.json").read_text())
    assert os.path.getsize(out_dir / "pareto.png") > 1000
    assert pareto["target"] == target and pareto["chosen"] == best["arc"]
    points = pareto["points"]
    assert len(points) == len({p["arc"] for p in points}) >= len(pick["ranked"])
    for i in pareto["front"]:  # nothing dominates a point of the front
        assert not any(q["memory_kib"] <= points[i]["memory_kib"] and q["val_acc"] > points[i]["val_acc"]
                       for q in points)
    arc_text = (out_dir / "best_arc.txt").read_text().strip()
    picked = parse_arc(best["arc"])
    assert parse_arc(arc_text) == picked
    # Each op with weights carries its precision (``op:precision``); a pick of weightless ops has none.
    weighted = [op for cell in (picked.normal, picked.reduce) for op in cell.to_list()[1::2]
                if SearchSpace().ops[op].has_weights]
    assert arc_text.count(":") == len(weighted)
    # The pick trains as a fixed network and summarizes to the reported cost.
    train = {**train_arc_mnist.CONFIG, "data_path": mnist_path, "output_dir": str(tmp_path / "train"),
             "max_train_examples": 256, "max_test_examples": 100, "num_valid": 0, "batch_size": 64,
             "num_epochs": 1, "child_num_layers": 0, "child_num_cells": 2, "child_out_filters": 4,
             "child_fixed_arc": arc_text}
    assert script.main(train_arc_mnist.CONFIG, "mnist", "train", argv_from(train)) == 0
    capsys.readouterr()
    summarize_arc.main({**summarize_arc.CONFIG, "child_num_layers": 0, "child_num_cells": 2,
                        "child_out_filters": 4, "child_fixed_arc": arc_text, "int8_memory": False})
    summary = capsys.readouterr().out
    assert f"Memory: {best['memory_kib']:.2f} KiB" in summary
    # --reset_output_dir recognises everything the search wrote (it refused pareto.json/png once).
    run_dir.prepare(str(out_dir), {"run": "next"}, reset=True)
    assert os.listdir(out_dir) == ["config.json"]


@pytest.mark.parametrize("flags, fragment", [
    (["--search_precisions", "binary,fourbit"], "search_precisions"),
    (["--search_precisions", "binary,binary"], "twice"),
    (["--search_precisions", "binary"], "two or more"),
    (["--cost_weight", "0.5"], "cost_weight"),
    (["--target_memory_kib", "-3"], "target_memory_kib"),
    (["--cost_constraint", "strict"], "cost_constraint"),
])
def test_bad_cost_flags_are_one_line_errors(flags, fragment, tmp_path, mnist_path, capsys):
    settings = {**search_arc_mnist.CONFIG, **SEARCH_TINY, "data_path": mnist_path, "output_dir": str(tmp_path / "r")}
    code = script.main(search_arc_mnist.CONFIG, "mnist", "search", argv_from(settings, "search") + flags)
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and "\n" not in err, err
    assert not (tmp_path / "r").exists()
