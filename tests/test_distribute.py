"""Scale-out on tf.distribute (``--distribution``): the same results as one device, and a real
two-process multi-worker run on 127.0.0.1 that checkpoints from the chief, is killed, resumes,
and resumes again with another replica count.

Each run is a fresh Python process (the CPU can only be split into logical devices, and a
cluster only joined, before TensorFlow starts). The children are float and trained with SGD:
quantizers and Adam's first steps turn the last-bit differences of a summation order into
different levels and steps, so only a float child with SGD shows whether the distributed step
computes the single-device step.
"""

import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from enas.cli.script import main as script_main
from enas.config.run_config import DistributeConfig, RunConfig
from enas.errors import ConfigError
from enas.run import distribute
from tests.conftest import REPO, TINY, TINY_ARC, argv_from

FLOAT_SGD = {**TINY, "log_every": 1, "child_quantization": "float", "child_recipe": "enas"}
SEARCH = {"controller_train_steps": 2, "controller_warmup_epochs": 1, "final_pick_samples": 3,
          "num_sampled_arcs": 2}
STEP = re.compile(r"^epoch = +(\d+) +ch_step = +(\d+) +loss = ([\d.]+) +lr = [\d.]+ +\|g\| = ([\d.]+)", re.M)
TIMEOUT = 600  # a guard against a hung run, not a speed check: CI may share the machine


def _env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _argv(script, settings):
    return [sys.executable, str(REPO / script)] + argv_from(settings)[1:]


def _run(script, settings, tf_config=None):
    result = subprocess.run(_argv(script, settings), capture_output=True, text=True, env=_env(tf_config),
                            cwd=REPO, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == "", result.stderr[-2000:]  # TensorFlow's INFO/WARNING lines filtered, no ERROR line
    return result.stdout


def _run_here(script, settings, capsys):
    """``script`` with ``settings`` in this process (no strategy: one device), its stdout."""
    module = importlib.import_module(script[:-3])
    mode = "train" if script.startswith("train") else "search"
    code = script_main(module.CONFIG, "mnist", mode, argv_from(settings, script))
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    return out


def _steps(out):
    """``[(step, loss, grad_norm)]`` of the log's child step lines."""
    return [(int(m[1]), float(m[2]), float(m[3])) for m in STEP.findall(out)]


# --- settings --------------------------------------------------------------------------------
def test_distribution_settings_are_checked_before_tensorflow():
    with pytest.raises(ConfigError, match="--distribution"):
        DistributeConfig(distribution="horovod")
    with pytest.raises(ConfigError, match="--num_devices is a setting of --distribution mirrored"):
        DistributeConfig(num_devices=2)
    with pytest.raises(ConfigError, match="--num_devices must be"):
        DistributeConfig(distribution="mirrored", num_devices=-1)
    config = RunConfig.from_settings({**TINY, "child_fixed_arc": TINY_ARC, "distribution": "mirrored",
                                      "num_devices": 2}, "train", "mnist")
    assert config.distribute == DistributeConfig("mirrored", 2, True)
    assert RunConfig.from_json(config.to_json()).distribute == config.distribute
    assert "distribution" not in json.dumps(config.identity())  # a run resumes under another one


@pytest.mark.parametrize("value, message", [
    ("", "needs the TF_CONFIG environment variable"),
    ("{not json", "is not a cluster description"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "names no chief or worker"),
])
def test_tf_config_is_checked(monkeypatch, value, message):
    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ConfigError, match=message):
        distribute.read_tf_config()


def test_bad_tf_config_is_one_line_and_exit_2(tmp_path, mnist_path):
    settings = {**FLOAT_SGD, "data_path": mnist_path, "output_dir": str(tmp_path / "run"),
                "child_fixed_arc": TINY_ARC, "distribution": "multi_worker"}
    result = subprocess.run(_argv("train_arc_mnist.py", settings), capture_output=True, text=True,
                            env=_env({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 5}}),
                            cwd=REPO, timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: TF_CONFIG task")
    assert not (tmp_path / "run").exists()


# --- two logical CPU devices: the single-device numbers --------------------------------------
# (script, child precision and recipe, tolerances of the first steps' losses and the first gradient norm)
MIRRORED_CASES = [
    ("train_arc_mnist.py", "float", "enas", 3, 1e-4, 1e-3),
    ("search_arc_mnist.py", "float", "enas", 3, 1e-4, 1e-3),
    # The default ternary search child with its default recipe (Adam): its gathered kernels' sparse
    # gradients are summed over the replicas like the others (a crash once). Quantizer thresholds
    # turn the last-bit differences of the all-reduced batch statistics into a few flipped
    # activations, so only the first step is compared, to 1% (loss) and 10% (gradient norm).
    ("search_arc_mnist.py", "ternary", "auto", 1, 1e-2, 1e-1),
]


@pytest.mark.parametrize("script,precision,recipe,steps,loss_rtol,grad_rtol", MIRRORED_CASES,
                         ids=["train-float", "search-float", "search-ternary"])
def test_mirrored_on_two_cpu_devices_computes_the_single_device_steps(script, precision, recipe, steps, loss_rtol,
                                                                      grad_rtol, tmp_path, mnist_path, capsys):
    settings = {**FLOAT_SGD, "data_path": mnist_path, "num_epochs": 1, "max_train_examples": 300,
                "child_quantization": precision, "child_recipe": recipe}
    settings.update({"child_fixed_arc": TINY_ARC} if script.startswith("train") else SEARCH)
    single = _run_here(script, {**settings, "output_dir": str(tmp_path / "single")}, capsys)
    mirrored = _run(script, {**settings, "output_dir": str(tmp_path / "mirrored"), "distribution": "mirrored",
                             "num_devices": 2})
    assert "Distribution: mirrored, 2 replica(s)" in mirrored and "global batch 32 = 2 x 16" in mirrored
    assert "synchronized batch norm" in mirrored and "Distribution" not in single
    assert f"default={precision}" in mirrored
    one, two = _steps(single), _steps(mirrored)
    assert len(one) == len(two) == (300 - 100) // 32
    # The first steps agree to float precision (float) or to the quantizers' tolerance; later
    # ones drift apart only as rounding differences grow through training (ReLU and max-pool
    # edges, quantizer thresholds), not by a different step.
    np.testing.assert_allclose([loss for _, loss, _ in two[:steps]], [loss for _, loss, _ in one[:steps]],
                               rtol=loss_rtol)
    np.testing.assert_allclose(two[0][2], one[0][2], rtol=grad_rtol)
    assert np.all(np.isfinite([loss for _, loss, _ in two]))
    assert "Final test_accuracy" in mirrored if script.startswith("train") else "Final pick" in mirrored


# --- two processes on 127.0.0.1 ---------------------------------------------------------------
def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(script, settings):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    return [subprocess.Popen(_argv(script, settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}), cwd=REPO,
                             start_new_session=True)
            for i in range(2)]


def _finish(workers):
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=TIMEOUT)
        assert worker.returncode == 0, err[-2000:]
        outputs.append(out)
    return outputs


def _kill_when(workers, ready, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while not ready():
        assert time.time() < deadline, "the workers never reached the kill point"
        assert all(w.poll() is None for w in workers), "a worker ended early"
        time.sleep(0.2)
    for worker in workers:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_multi_worker_fixed_training_checkpoints_from_the_chief_resumes_after_a_kill(tmp_path, mnist_path):
    folder = tmp_path / "run"
    settings = {**FLOAT_SGD, "data_path": mnist_path, "output_dir": str(folder), "child_fixed_arc": TINY_ARC,
                "num_epochs": 2, "log_every": 5, "distribution": "multi_worker"}
    workers = _start_workers("train_arc_mnist.py", settings)
    _kill_when(workers, lambda: (folder / "ckpt-1.index").exists() and (folder / "checkpoint").exists())
    assert not (folder / "ckpt-2.index").exists()

    chief, worker = _finish(_start_workers("train_arc_mnist.py", settings))
    assert re.search(r"^Resuming from .*ckpt-1 at epoch 1", chief, re.M), chief[-1500:]
    assert re.search(r"^Resuming from .*ckpt-1 at epoch 1", worker, re.M)
    assert "this process: chief" in chief and "this process: worker" in worker
    assert "Distribution: multi_worker, 2 replica(s)" in chief
    assert "Final test_accuracy" in chief and (folder / "ckpt-2.index").exists()
    # Only the chief wrote the run folder; the other worker's folder is gone.
    worker_dir = re.search(r"this process: worker \((.*)\)", worker)[1]
    assert not os.path.exists(worker_dir) and str(folder) not in worker_dir

    # Another replica count: one device resumes the two-worker run.
    out = _run("train_arc_mnist.py", {**settings, "num_epochs": 3, "distribution": "default"})
    assert re.search(r"^Resuming from .*ckpt-2 at epoch 2", out, re.M) and "Epoch 3: Eval" in out


def test_multi_worker_search_trains_the_chiefs_architectures(tmp_path, mnist_path):
    folder = tmp_path / "search"
    settings = {**FLOAT_SGD, **SEARCH, "data_path": mnist_path, "output_dir": str(folder), "num_epochs": 1,
                "log_every": 1, "max_train_examples": 300, "distribution": "multi_worker"}
    chief, worker = _finish(_start_workers("search_arc_mnist.py", settings))
    assert "Final pick" in chief and (folder / "best_arc.txt").exists()
    # Every worker trained the same architectures: the same losses, step by step.
    assert len(_steps(chief)) == (300 - 100) // 32 and _steps(chief) == _steps(worker)
