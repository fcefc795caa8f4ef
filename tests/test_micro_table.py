"""The search under a microcontroller's RAM and flash: TensorFlow Lite Micro's per-op tables
(:mod:`enas.deploy.micro_table`), the same in numpy and in the compiled reward, close to the
planned arena and the file of random architectures, and a search with ``--target_ram_kib``."""

import json

import numpy as np
import pytest
import tensorflow as tf

import search_arc_mnist
from enas.child.micro_child import MicroChild
from enas.cli import script
from enas.config.run_config import CostConfig, RunConfig
from enas.cost.cost_table import CostTable
from enas.deploy import tflm_memory
from enas.deploy.micro_table import MicroTable, sized_int8_file
from enas.errors import ConfigError
from enas.search.search_cost import SearchCost
from enas.space.arc import random_arc
from tests.conftest import argv_from
from tests.test_search import SEARCH_TINY

CONFIG = RunConfig.from_settings({"data_path": "./data", "child_num_layers": 0, "child_num_cells": 2,
                                  "child_out_filters": 4, "child_use_aux_heads": False},
                                 "search", "mnist").child


@pytest.fixture(scope="module")
def table():
    return MicroTable.build(CONFIG, (28, 28, 1), samples=14, seed=0)


def _planned(arc):
    blob = sized_int8_file(MicroChild(CONFIG, fixed_arc=arc).build_for((28, 28, 1)), (28, 28, 1))
    return tflm_memory.peak_ram(blob)[2] / 1024, len(blob) / 1024


def test_table_is_close_to_the_planned_arena_and_the_file_of_random_architectures(table):
    """RAM and flash of random architectures not among the fitted ones are within 10% of the
    arena planned from their int8 file and of the file's size (measured: within 3%), and the
    fit's own leave-one-out error is reported."""
    assert table.samples == 14 and set(table.loo_error) == {"ram", "flash"}
    assert "leave-one-out error at most" in table.describe()
    rng = np.random.default_rng(123)
    for _ in range(3):
        arc = random_arc(2, rng)
        predicted = table.cost(arc)
        ram, flash = _planned(arc)
        assert predicted["ram_kib"] == pytest.approx(ram, rel=0.10), (str(arc), predicted, ram)
        assert predicted["flash_kib"] == pytest.approx(flash, rel=0.10), (str(arc), predicted, flash)


def test_compiled_cost_and_reward_equal_the_host_side(table):
    """The compiled table (one-hot sums of the search vector) gives the numpy figures, and the
    cost-aware reward with RAM and flash targets equals ``accuracy x`` the host-side factor."""
    costing = SearchCost(CostTable.build(CONFIG, (28, 28, 1)), CostConfig(target_ram_kib=30, target_flash_kib=40),
                         "ternary", micro=table)
    rng = np.random.default_rng(7)
    compiled = tf.function(lambda v: (table.tf_cost(v), costing.tf_reward(tf.constant(0.9), v)))
    for _ in range(6):
        arc = random_arc(2, rng)
        vector = tf.constant(arc.to_list(), tf.int32)
        (ram, flash), reward = compiled(vector)
        host = table.cost(arc)
        assert float(ram) == pytest.approx(host["ram_kib"], rel=1e-6)
        assert float(flash) == pytest.approx(host["flash_kib"], rel=1e-6)
        item = costing.of(arc)
        assert float(reward) == pytest.approx(0.9 * item["reward_factor"], rel=1e-5)
        assert item["meets_target"] == (host["ram_kib"] <= 30 and host["flash_kib"] <= 40)


def test_a_ram_target_without_tables_is_one_line():
    run = RunConfig.from_settings({"data_path": "./data", "target_ram_kib": 64, "child_num_layers": 0,
                                   "child_num_cells": 2, "child_out_filters": 4}, "search", "mnist")
    with pytest.raises(ConfigError) as error:
        SearchCost.build(run, (28, 28, 1))
    assert "\n" not in str(error.value) and "TensorFlow Lite Micro" in str(error.value)


def test_search_with_a_ram_target(tmp_path, mnist_path, capsys, monkeypatch, table):
    """``search_arc_mnist.py --target_ram_kib T``: the script asks for the tables (here the
    fixture's, fitted on the same child configuration, instead of fitting them again), the reward
    line names the RAM target, every reported architecture gives its RAM and flash, and
    pareto.json is drawn against RAM with the target."""
    built = []

    def fitted(cls, child_config, image_shape, samples=None, seed=0, log=None):
        built.append((child_config.num_nodes, child_config.out_filters, tuple(image_shape)))
        return table

    monkeypatch.setattr(MicroTable, "build", classmethod(fitted))
    out_dir = tmp_path / "search"
    settings = {**search_arc_mnist.CONFIG, **SEARCH_TINY, "data_path": mnist_path, "output_dir": str(out_dir),
                "num_epochs": 1, "target_ram_kib": 30, "final_pick_samples": 4}
    code = script.main(search_arc_mnist.CONFIG, "mnist", "search", argv_from(settings, "search"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert built == [(2, 4, (28, 28, 1))]
    assert "reward = acc * (RAM / 30 KiB) ** -0.07" in out and "TensorFlow Lite Micro tables: fitted on 14" in out
    reported = [line for line in out.splitlines() if line.startswith("val_acc = ")]
    assert reported and all(" ram = " in line and " flash = " in line for line in reported), reported
    pareto = json.loads((out_dir / "pareto.json").read_text())
    assert pareto["axis"] == "ram_kib" and pareto["target"] == 30
    assert all("ram_kib" in p and "flash_kib" in p for p in pareto["points"])

