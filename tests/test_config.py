"""The typed run configuration: defaults in one place, flat settings and JSON round trips, one-line
errors, and a run folder's config.json reproducing its run."""

import json
import re

import pytest

import search_arc_cifar
import search_arc_mnist
import train_arc_cifar
import train_arc_mnist
from enas.cli import script
from enas.config.run_config import RunConfig, default_settings, flag_names
from enas.errors import ConfigError
from tests.conftest import argv_from

SCRIPTS = [(train_arc_mnist, "train", "mnist"), (train_arc_cifar, "train", "cifar10"),
           (search_arc_mnist, "search", "mnist"), (search_arc_cifar, "search", "cifar10")]


@pytest.mark.parametrize("script, mode, dataset", SCRIPTS)
def test_script_config_round_trips(script, mode, dataset):
    settings = default_settings(mode, script.CONFIG)
    assert set(settings) == set(flag_names(mode))
    config = RunConfig.from_settings(settings, mode, dataset)
    assert RunConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert RunConfig.from_settings(config.to_settings(), mode, dataset) == config
    for key, value in script.CONFIG.items():  # the block holds only changes from the defaults
        assert value != default_settings(mode)[key], key


def test_sections_hold_the_flags():
    config = RunConfig.from_settings(default_settings("search", {"controller_lr": 0.01, "child_lr_max": 0.1,
                                                                  "num_valid": 7, "seed": 9}), "search", "mnist")
    assert (config.controller.lr, config.training.lr_max, config.data.num_valid, config.output.seed) == \
        (0.01, 0.1, 7, 9)
    assert config.fixed_arc is None and config.identity()["controller_type"] == "micro"
    train = RunConfig.from_settings(default_settings("train", train_arc_mnist.CONFIG), "train", "mnist")
    assert train.controller is None and train.child.num_nodes == 5  # B from the arc's 40 integers
    assert "controller_lr" not in flag_names("train") and "child_fixed_arc" not in flag_names("search")


@pytest.mark.parametrize("changes, fragment", [
    ({"batch_size": 0}, "--batch_size must be >= 1"),
    ({"child_optimizer": "rmsprop"}, "unknown optimizer"),
    ({"child_lr_min": 1.0}, "lr_min <= lr_max"),
    ({"controller_type": "evolution"}, "--controller_type"),
    ({"num_valid": -1}, "--num_valid must be >= 0"),
    ({"controller_num_aggregate": 0}, "--controller_num_aggregate must be >= 1"),
])
def test_bad_values_are_one_line_config_errors(changes, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)) as info:
        RunConfig.from_settings(default_settings("search", changes), "search", "mnist")
    assert "\n" not in str(info.value)


def test_unknown_config_key_and_bad_json():
    with pytest.raises(ConfigError, match="not a setting of train runs"):
        default_settings("train", {"child_lr_maxx": 0.1})
    with pytest.raises(ConfigError, match="cannot read the run configuration"):
        RunConfig.from_json({"version": 1, "mode": "train"})
    assert script.main({"no_such_setting": 1}, "mnist", "train", ["train_arc_mnist.py"]) == 2


def _first_epoch_steps(text):
    """The child step lines of epoch 0, without the minutes column."""
    return [re.sub(r"mins = \S+", "", line) for line in text.splitlines() if line.startswith("epoch = 0 ")]


def test_config_json_alone_reproduces_the_run(train_config, tmp_path, capsys):
    config = {**train_config, "num_epochs": 1, "child_lr_max": 0.07, "child_l2_reg": 3e-4,
              "child_optimizer": "adam", "batch_size": 24, "seed": 5}
    assert script.main(train_arc_mnist.CONFIG, "mnist", "train", argv_from(config)) == 0
    first = capsys.readouterr().out
    record_path = tmp_path / "run" / "config.json"
    record = json.loads(record_path.read_text())
    assert record["config"]["training"]["lr_max"] == 0.07 and record["config"]["output"]["seed"] == 5
    # Only the folder: its config.json, with a new output folder for the rerun.
    argv = ["train_arc_mnist.py", f"--from_config={record_path}", f"--output_dir={tmp_path / 'again'}"]
    assert script.main(train_arc_mnist.CONFIG, "mnist", "train", argv) == 0
    again = capsys.readouterr().out
    assert "Resuming" not in again
    steps = _first_epoch_steps(first)
    assert steps and steps == _first_epoch_steps(again)
    assert json.loads((tmp_path / "again" / "config.json").read_text())["config"]["training"] == \
        record["config"]["training"]
    # A recorded training run is not a search configuration.
    bad = script.main(search_arc_mnist.CONFIG, "mnist", "search", ["search_arc_mnist.py", f"--from_config={record_path}"])
    assert bad == 2 and "is a train run on mnist" in capsys.readouterr().err
