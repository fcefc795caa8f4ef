"""Bad input gets one line on stderr, exit status 2, no traceback, and nothing on disk damaged.

Most cases run in-process through ``enas.cli.script.main`` (fast); a few run the real script in a
subprocess to check the exit status and the absence of a traceback end to end, and one kills a
training run with SIGKILL mid-epoch and resumes it.
"""

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import train_arc_mnist
from enas.cli import script
from tests.conftest import REPO, TINY_ARC, argv_from

GOOD_40 = "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3"


def run(config, capsys, extra=()):
    code = script.main(train_arc_mnist.CONFIG, "mnist", "train", argv_from(config) + list(extra))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("arc,fragments", [
    (GOOD_40[:-2], ["expected 40 integers", "got 39"]),
    (GOOD_40.replace("4", "x", 1), ["not an integer", '"x"']),
    (GOOD_40.replace("0 2 1 4", "0 7 1 4", 1), ["normal cell", "node 0", "x_op = 7"]),
    ("0 2 1 4 3 3 0 1" + GOOD_40[15:], ["normal cell", "node 1", "x_id = 3"]),
    (GOOD_40[:20] + "5" + GOOD_40[21:], ["normal cell", "node 2"]),
    (GOOD_40[:-7] + "7 1 0 3", ["reduction cell", "node 4", "x_id = 7"]),
    ("", ["empty"]),
])
def test_malformed_arc(train_config, capsys, arc, fragments):
    config = {**train_config, "child_fixed_arc": arc, "child_num_cells": 5}
    assert_one_line_error(*run(config, capsys)[::2], *fragments)
    assert not os.path.exists(train_config["output_dir"])  # nothing written before validation


@pytest.mark.parametrize("extra,fragments", [
    (["--batch_size=abc"], ["batch_size"]),
    (["--no_such_flag=1"], ["no_such_flag"]),
    (["--child_quantization=octal"], ["unknown precision 'octal'"]),
    (["--child_quantization=quantized", "--child_bits=9"], ["bit width 9"]),
    (["--child_precision_overrides=stem:binary"], ["bad precision override"]),
    (["--num_epochs=0"], ["--num_epochs must be >= 1"]),
    (["--child_keep_prob=1.5"], ["keep_prob"]),
    (["--child_optimizer=rmsprop"], ["unknown optimizer 'rmsprop'"]),
    (["--num_valid=100000"], ["num_valid"]),
    (["stray_positional"], ["unexpected argument 'stray_positional'"]),
    (["--child_reduction_layers=a,b"], ["bad --child_reduction_layers 'a,b'"]),
    (["--child_reduction_layers=9"], ["reduction layer(s) [9] out of range"]),
    (["--child_precision_overrides=layer_99=binary"], ["'layer_99' names no layer"]),
])
def test_bad_flag_values(train_config, capsys, extra, fragments):
    assert_one_line_error(*run(train_config, capsys, extra)[::2], *fragments)
    # Nothing is written before every setting is validated, so the fixed command just works.
    assert not os.path.exists(train_config["output_dir"])


def test_fixed_arc_aliases_and_separators(train_config, capsys):
    config = {k: v for k, v in train_config.items() if k != "child_fixed_arc"}
    bracketed = "[" + TINY_ARC.replace(" ", ", ") + "]"
    code, out, err = run({**config, "num_epochs": 1}, capsys, ["-fixed_arc", bracketed])
    assert code == 0, err
    assert f"Training architecture: {TINY_ARC}" in out


def test_missing_data(train_config, tmp_path, capsys, monkeypatch):
    from enas.data import data_utils

    monkeypatch.setattr(data_utils, "try_download", _no_download, raising=False)
    config = {**train_config, "data_path": str(tmp_path / "nowhere")}
    code, _, err = run(config, capsys)
    assert_one_line_error(code, err, "MNIST", "--data_path")


def _no_download(*args, **kwargs):
    from enas.errors import DataError

    raise DataError("MNIST not found in 'nowhere' (no network): put the files there or pass --data_path")


def test_corrupt_data_file_is_reported_and_left_alone(train_config, tmp_path, capsys):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    source = Path(train_config["data_path"])
    for name in os.listdir(source):
        if name.endswith(".gz"):
            (folder / name).write_bytes((source / name).read_bytes())
    broken = folder / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x10" + b"\x01" * 5))
    before = broken.read_bytes()
    code, _, err = run({**train_config, "data_path": str(folder)}, capsys)
    assert_one_line_error(code, err, "train-labels-idx1-ubyte")
    assert broken.read_bytes() == before


def test_unreadable_checkpoint_is_reported_and_kept(train_config, capsys):
    code, _, err = run({**train_config, "num_epochs": 1}, capsys)
    assert code == 0, err
    out_dir = Path(train_config["output_dir"])
    data_file = next(out_dir.glob("ckpt-1.data-*"))
    data_file.write_bytes(b"garbage")
    files_before = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file() and p.name != "stdout"}
    code, _, err = run(train_config, capsys)
    assert_one_line_error(code, err, "cannot restore checkpoint", "--reset_output_dir")
    files_after = {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file() and p.name != "stdout"}
    assert files_after == files_before


@pytest.mark.parametrize("name", ["thesis.tex", "mnist_arc.txt", "plot.png"])
def test_reset_refuses_foreign_folder(train_config, tmp_path, capsys, name):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / name).write_text("precious")
    code, _, err = run({**train_config, "output_dir": str(folder), "reset_output_dir": True}, capsys)
    assert_one_line_error(code, err, "refusing to reset", name)
    assert (folder / name).read_text() == "precious"


def _script(config, *extra):
    # A fresh machine: no TF_CPP_MIN_LOG_LEVEL of the user's, and TensorFlow printing its oneDNN
    # banner (forced on with TF_ENABLE_ONEDNN_OPTS=1, which prints it whatever the log level).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=str(REPO), TF_ENABLE_ONEDNN_OPTS="1")
    return subprocess.run(
        [sys.executable] + argv_from(config, str(REPO / "train_arc_mnist.py"))[:1]
        + argv_from(config)[1:] + list(extra),
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )


def test_script_exit_status_and_no_traceback(train_config):
    result = _script({**train_config, "child_fixed_arc": "0 1 2"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: bad architecture")
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert result.stdout == ""


def test_kill_mid_epoch_then_resume(train_config):
    """SIGKILL a run during epoch 2, rerun the same command: it resumes from the epoch-1
    checkpoint (same epoch count, step and learning rate) and completes."""
    config = {**train_config, "num_epochs": 3, "max_train_examples": 1100, "batch_size": 16,
              "log_every": 10}
    out_dir = Path(config["output_dir"])
    command = [sys.executable, str(REPO / "train_arc_mnist.py")] + argv_from(config)[1:]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env, cwd=REPO)
    deadline = time.time() + 240
    lines = []
    while time.time() < deadline:  # wait for a step line of epoch 1 (the second epoch)
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("epoch = 1 "):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out_dir / "ckpt-1.index").exists(), "".join(lines)
    assert not (out_dir / "ckpt-3.index").exists()
    assert f"process {proc.pid} " in (out_dir / ".lock").read_text()  # the killed run's lock file stays ...
    steps_per_epoch = (1100 - 100) // 16  # the fallback data (no ../shared) has 1200
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr  # ... but does not block the rerun
    resumed = [line for line in result.stdout.splitlines() if line.startswith("Resuming from")]
    assert resumed and resumed[0].endswith(f"ckpt-1 at epoch 1, step {steps_per_epoch}"), resumed
    assert "Epoch 3: Eval" in result.stdout and "Epoch 1: Eval" not in result.stdout
    log = (out_dir / "stdout").read_text()
    assert log.count("Training architecture:") == 2  # the tee'd log holds both runs
