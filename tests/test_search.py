"""Architecture search end to end on a tiny config: the original log format, arcs.jsonl and
best_arc.txt, printed arcs accepted by train_arc_mnist.py, determinism with a seed, and
resume after SIGKILL continuing exactly as an uninterrupted run."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import search_arc_mnist
import train_arc_mnist
from enas.cli import script
from enas.space.arc import parse_arc
from tests.conftest import REPO, argv_from

SEARCH_TINY = dict(
    max_train_examples=600, max_test_examples=200, num_valid=200, batch_size=32,
    eval_batch_size=100, num_epochs=2, log_every=5, seed=5, num_sampled_arcs=3,
    child_num_layers=0, child_num_cells=2, child_out_filters=4,
    controller_train_steps=5, controller_num_aggregate=2, controller_lstm_size=16, controller_warmup_epochs=0,
    final_pick_samples=6, final_pick_top=2,
)
CTRL_LINE = re.compile(
    r"^ctrl_step = \d+\s+loss = -?\d+\.\d{3}\s+ent = \d+\.\d{2}\s+lr = \d\.\d{4}\s+\|g\| = \d+\.\d{4}\s+"
    r"acc = \d\.\d{4}\s+bl = -?\d+\.\d{2}\s+mins = \d+\.\d{2}$"
)
CELL_LINE = re.compile(r"^\[(\d+ )*\d+\]$")


@pytest.fixture(scope="module")
def search_config(tmp_path_factory, mnist_path):
    """Two epochs, the first a controller warm-up (the shared weights train, the controller not)."""
    return {**search_arc_mnist.CONFIG, **SEARCH_TINY, "data_path": mnist_path, "controller_warmup_epochs": 1,
            "output_dir": str(tmp_path_factory.mktemp("search") / "run")}


def search(config, capsys=None):
    if capsys is None:  # module fixture: capture by hand
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = script.main(search_arc_mnist.CONFIG, "mnist", "search", argv_from(config, "search"))
        return code, out.getvalue(), err.getvalue()
    code = script.main(search_arc_mnist.CONFIG, "mnist", "search", argv_from(config, "search"))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def uninterrupted(search_config):
    """One uninterrupted tiny search (in-process), shared by the tests below."""
    return search(search_config)


def test_search_prints_original_format_and_records_arcs(search_config, uninterrupted, capsys,
                                                       tmp_path):
    code, out, err = uninterrupted
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("epoch = 0") for line in lines)
    # No normal layers (child_num_layers 0): the header says only the reduction cell is searched.
    assert sum(line.startswith("Note: every layer is a reduction cell") for line in lines) == 1
    # The controller warm-up: no controller update before it ends; all of them (5, logged every 5) after it.
    warm = lines.index("Epoch 1: controller warm-up (1/1), not trained")
    trained = lines.index("Epoch 2: Training controller")
    assert warm < trained and "Epoch 1: Training controller" not in lines
    assert not any(line.startswith("ctrl_step") for line in lines[:trained])
    ctrl = [line for line in lines if line.startswith("ctrl_step")]
    assert ctrl and all(CTRL_LINE.match(line) for line in ctrl), ctrl
    assert [line.split()[2] for line in ctrl] == ["5"]
    assert lines.count("Here are 3 architectures") == 2
    blocks = [i for i, line in enumerate(lines) if line.startswith("val_acc = ")]
    assert len(blocks) == 6
    for i in blocks:
        assert CELL_LINE.match(lines[i - 2]) and CELL_LINE.match(lines[i - 1])
        assert re.match(r"^val_acc = \d\.\d{4}$", lines[i])
        assert lines[i + 1].startswith("arc = ") and lines[i + 2] == "-" * 80
        normal, reduce = (list(map(int, lines[i - k][1:-1].split())) for k in (2, 1))
        assert parse_arc(lines[i + 1][6:], 2).to_list() == normal + reduce
    for expected in ("Epoch 2: Eval", "Valid Num examples:  200", "Test Num examples:  200"):
        assert expected in lines
    out_dir = Path(search_config["output_dir"])
    records = [json.loads(line) for line in (out_dir / "arcs.jsonl").read_text().splitlines()]
    assert len(records) == 6 and {r["epoch"] for r in records} == {1, 2}
    # The normal cell is not searched: every sampled arc's is a copy of its reduction cell.
    assert all(parse_arc(r["arc"], 2).normal == parse_arc(r["arc"], 2).reduce for r in records)
    updates = [json.loads(line) for line in (out_dir / "controller.jsonl").read_text().splitlines()]
    assert [u["step"] for u in updates] == [1, 2, 3, 4, 5] and all(u["grad_norm"] > 0 for u in updates)
    (best_arc,) = (out_dir / "best_arc.txt").read_text().splitlines()  # pasteable as is
    best = json.loads((out_dir / "best_arc.json").read_text())
    # The final pick: sampled architectures ranked on the whole validation split (200 images).
    pick = json.loads((out_dir / "final_pick.json").read_text())
    assert pick["samples"] == 6 and pick["valid_examples"] == 200 and len(pick["top"]) == 2
    accuracies = [item["val_acc"] for item in pick["ranked"]]
    assert accuracies == sorted(accuracies, reverse=True) and pick["top"] == pick["ranked"][:2]
    assert all(abs(a * 200 - round(a * 200)) < 1e-9 for a in accuracies)  # whole split: multiples of 1/200
    assert best["arc"] == best_arc == pick["top"][0]["arc"] and best["val_acc"] == accuracies[0]
    assert "Final pick: 6 architectures sampled from the final controller" in out
    assert f"Best architecture of the final pick (val_acc = {accuracies[0]:<6.4f}" in out

    # The best arc trains with the fixed-arc script, as printed.
    train = {**train_arc_mnist.CONFIG, **{k: search_config[k] for k in (
        "data_path", "max_train_examples", "max_test_examples", "num_valid", "batch_size",
        "child_out_filters")}, "child_num_cells": 0, "child_num_layers": 0, "num_epochs": 1,
        "child_use_aux_heads": False, "output_dir": str(tmp_path / "train")}
    code = script.main(train_arc_mnist.CONFIG, "mnist", "train",
                    argv_from(train, "train") + ["-fixed_arc", (out_dir / "best_arc.txt").read_text()])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Training architecture: {best_arc}" in out


def test_random_controller_search_without_final_pick(search_config, capsys, tmp_path):
    """``--controller_type random``: the same loop with uniformly sampled architectures and no
    controller training or controller weights; ``--final_pick_samples 0``: no final pick, the best
    architecture is the best one sampled during the search."""
    config = {**search_config, "controller_type": "random", "num_epochs": 1, "final_pick_samples": 0,
              "max_train_examples": 400, "output_dir": str(tmp_path / "random")}
    code, out, err = search(config, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "Controller: random; cells of 2 nodes; 0 layers + 2 reductions; 4 filters" in lines
    assert "Training controller" not in out and not any(CTRL_LINE.match(line) for line in lines)
    assert lines.count("Here are 3 architectures") == 1 and "Epoch 1: Eval" in lines
    out_dir = Path(config["output_dir"])
    import tensorflow as tf

    names = [name for name, _ in tf.train.list_variables(str(out_dir / "ckpt-1"))]
    assert any(name.startswith("child/") for name in names)
    assert not any("controller_trainer" in name or "lstm" in name.lower() for name in names), names
    # --final_pick_samples 0: the best of the architectures sampled after each epoch.
    records = [json.loads(line) for line in (out_dir / "arcs.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(parse_arc(r["arc"], 2) for r in records)
    best = max(records, key=lambda r: r["val_acc"])
    assert not (out_dir / "final_pick.json").exists() and "Final pick" not in out
    assert (out_dir / "best_arc.txt").read_text() == best["arc"] + "\n"
    assert json.loads((out_dir / "best_arc.json").read_text())["val_acc"] == best["val_acc"]
    assert f"Best sampled architecture (val_acc = {best['val_acc']:<6.4f}, epoch 1):" in lines
    assert lines[lines.index(f"Best sampled architecture (val_acc = {best['val_acc']:<6.4f}, epoch 1):") + 1] == best["arc"]


def _run_script(config, **popen):
    command = [sys.executable, str(REPO / "search_arc_mnist.py")] + argv_from(config)[1:]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return command, env


def test_seeded_search_is_deterministic_and_resumes_after_kill(search_config, uninterrupted,
                                                               tmp_path):
    """Run A: the uninterrupted search. Run B: same seed, SIGKILLed during epoch 2, then rerun.
    B resumes at epoch 1 and both record the same sampled architectures."""
    assert uninterrupted[0] == 0
    config_b = {**search_config, "output_dir": str(tmp_path / "b")}
    command_b, env = _run_script(config_b)
    proc = subprocess.Popen(command_b, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("epoch = 1 "):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    b_dir = Path(config_b["output_dir"])
    assert (b_dir / "ckpt-1.index").exists() and not (b_dir / "ckpt-2.index").exists()
    resumed = subprocess.run(command_b, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"^Resuming from .*ckpt-1 at epoch 1, step \d+$", resumed.stdout, re.M)
    assert "Here are 3 architectures" in resumed.stdout and "Epoch 2: Eval" in resumed.stdout
    arcs = lambda d: [json.loads(x)["arc"] for x in (d / "arcs.jsonl").read_text().splitlines()]  # noqa: E731
    assert arcs(Path(search_config["output_dir"])) == arcs(b_dir)


def test_negative_warmup_is_one_line(search_config, capsys, tmp_path):
    code, out, err = search({**search_config, "controller_warmup_epochs": -1,
                             "output_dir": str(tmp_path / "bad")}, capsys)
    assert code == 2 and err.strip() == "error: --controller_warmup_epochs must be >= 0, got -1"
    code, out, err = search({**search_config, "controller_grad_bound": -0.5,
                             "output_dir": str(tmp_path / "bad")}, capsys)
    assert code == 2 and err.strip() == "error: --controller_grad_bound must be >= 0, got -0.5"
    assert not (tmp_path / "bad").exists()


def test_the_search_trainer_takes_the_controller_settings():
    """``--controller_grad_bound`` (and the other controller settings) reach the REINFORCE trainer
    the search builds; 0 means no clipping."""
    from enas.config.run_config import ControllerConfig, RunConfig
    from enas.controller.micro_controller import MicroController
    from enas.search.search_task import make_reinforce_trainer

    for bound, expected in ((0.0, None), (0.05, 0.05)):
        config = RunConfig(mode="search", dataset="mnist",
                           controller=ControllerConfig(grad_bound=bound, lr=0.01, num_aggregate=3, bl_dec=0.9))
        trainer = make_reinforce_trainer(config, MicroController(num_nodes=2), lambda arc: 1.0)
        assert (trainer.grad_bound, trainer.learning_rate, trainer.num_aggregate, trainer.baseline_decay) == \
            (expected, 0.01, 3, 0.9)


def test_reward_over_k_minibatches_is_the_mean_of_the_k_single_rewards():
    """``--controller_reward_batches K``: the reward of an architecture is the mean of the K
    one-minibatch rewards the same minibatches give one at a time (each with its own batch
    statistics), and ``--reward_batch_size`` sets the minibatch, whatever the training batch."""
    import numpy as np
    import tensorflow as tf

    from enas.child.micro_child import MicroChild
    from enas.config.run_config import RunConfig
    from enas.data.sources import from_arrays
    from enas.search.search_task import RewardBatches, batch_accuracy
    from enas.space.arc import random_arc

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 12, 12, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, 300)
    config = RunConfig.from_settings({"child_num_layers": 0, "child_num_cells": 2, "child_out_filters": 4,
                                      "reward_batch_size": 16, "controller_reward_batches": 3, "batch_size": 50,
                                      "num_valid": 96}, "search", "arrays")
    data = from_arrays(images, labels, num_valid=96)
    config = config.with_data(data)
    model = MicroChild(config.child).build_for(data.image_shape)
    arc = tf.constant(random_arc(config.child.num_nodes, np.random.default_rng(1)).to_vector(), tf.int32)
    mean_of_three = tf.function(batch_accuracy(model, RewardBatches(data, 16, seed=5), 3))
    single = tf.function(batch_accuracy(model, RewardBatches(data, 16, seed=5), 1))
    for _ in range(2):  # the next three minibatches each time, from the same stream
        singles = [float(single(arc)) for _ in range(3)]
        assert all(s * 16 == round(s * 16) for s in singles)  # minibatches of 16 images
        assert float(mean_of_three(arc)) == pytest.approx(sum(singles) / 3, abs=1e-6)


def test_the_reward_stream_resumes_exactly_from_its_checkpoint(tmp_path):
    """The reward's validation minibatches after a restore are the ones the original stream gave,
    also across the end of a pass over the split (where a reshuffling tf.data pipeline does not
    resume: the killed-and-resumed search then rewarded other batches)."""
    import numpy as np
    import tensorflow as tf

    from enas.data.sources import from_arrays
    from enas.search.search_task import RewardBatches

    rng = np.random.default_rng(0)
    data = from_arrays(rng.integers(0, 256, (600, 8, 8, 1)).astype(np.uint8), rng.integers(0, 3, 600), num_valid=200)
    stream = RewardBatches(data, 128, seed=1)
    read = tf.function(lambda: stream.next())
    first_pass = [read() for _ in range(3)]  # 384 of the 200 images: into the second pass
    path = tf.train.Checkpoint(reward_data=stream.iterator).save(str(tmp_path / "ckpt"))
    expected = [read() for _ in range(4)]
    again = RewardBatches(data, 128, seed=1)
    tf.train.Checkpoint(reward_data=again.iterator).restore(path)
    read_again = tf.function(lambda: again.next())
    for (images, labels), (want_images, want_labels) in zip([read_again() for _ in range(4)], expected):
        assert np.array_equal(images, want_images) and np.array_equal(labels, want_labels)
    # Each pass is a permutation of the split; the passes differ.
    labels = np.concatenate([np.asarray(b[1]) for b in first_pass + expected])
    assert sorted(labels[:200].tolist()) == sorted(np.asarray(data.y_valid).tolist())
    assert not np.array_equal(labels[:200], labels[200:400])


def test_controller_policy_reports_each_decision_of_the_best_arc(search_config, uninterrupted, tmp_path):
    """``benchmarks/controller_policy.py``: one row per decision of the run's best arc, whose
    entropies add up to the printed total, which is the controller's teacher-forced entropy of
    that arc; a folder without a search is one line on stderr and exit status 2."""
    from enas.search.search_task import restore_controller

    run = search_config["output_dir"]
    command = [sys.executable, str(REPO / "benchmarks" / "controller_policy.py"), run]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if line.startswith(("| normal", "| reduction"))]
    nodes = search_config["child_num_cells"]
    # No normal layers: the reduction cell's decisions only (the normal cell is not decided).
    assert "the normal cell is not decided" in out.stdout
    assert len(rows) == 4 * nodes and all(row[0] == "| reduction" for row in rows)
    best = Path(run, "best_arc.txt").read_text().split()
    assert [row[3].removeprefix("id ") for row in rows[0::2]] == best[4 * nodes::2]  # the input ids chosen
    total = float(re.search(r"entropy along it: (\d+\.\d+) nats", out.stdout).group(1))
    assert sum(float(row[5]) for row in rows) == pytest.approx(total, abs=0.01 * len(rows))
    _, controller = restore_controller(run)
    assert controller.log_prob_of([int(v) for v in best]).entropy.numpy() == pytest.approx(total, abs=0.01)
    bad = subprocess.run(command[:2] + [str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "config.json" in bad.stderr
