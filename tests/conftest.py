"""Shared fixtures: data folders (real MNIST when ../shared has it, else small files the tests
write) and tiny run configurations."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

# What the scripts' entry point sets (enas.cli.tf_log), so that in-process runs compute what the
# scripts' subprocesses compute.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
sys.path.insert(0, str(REPO))

from tests.fixtures_data import idx_bytes, write_cifar_batches  # noqa: E402

# Tiny child and run settings: seconds per run on 2 CPU cores.
TINY = dict(
    max_train_examples=600, max_test_examples=200, num_valid=100, batch_size=32,
    eval_batch_size=100, num_epochs=2, log_every=5, seed=3,
    child_num_layers=0, child_num_cells=2, child_out_filters=4, child_use_aux_heads=False,
    child_keep_prob=1.0, child_drop_path_keep_prob=1.0,
)
TINY_ARC = "0 0 1 2 2 3 0 4 1 1 0 3 2 4 0 0"  # B = 2: normal cell, reduction cell


def write_learnable_mnist(folder, n_train=1200, n_test=300, seed=0):
    """IDX gzip files of synthetic 'digits': class k is a bright 6x6 block at a k-dependent
    place plus noise, so a network can learn it (unlike uniformly random images)."""
    import gzip

    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(y):
            r, c = 2 + 8 * (label // 4), 2 + 6 * (label % 4)
            x[i, r:r + 6, c:c + 6] = 255
        return x, y

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = make(n)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    return folder


@pytest.fixture(scope="session")
def mnist_path(tmp_path_factory):
    """Real MNIST from ../shared/data/mnist when present (a developer machine, CI), else
    synthetic learnable IDX files (a user's clone)."""
    if (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        return str(SHARED_MNIST)
    return str(write_learnable_mnist(tmp_path_factory.mktemp("mnist")))


@pytest.fixture(scope="session")
def cifar_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_cifar_batches(folder, n_per_batch=60)
    return str(folder)


@pytest.fixture
def train_config(tmp_path, mnist_path):
    """train_arc_mnist.CONFIG with tiny settings and a fresh output folder."""
    import train_arc_mnist

    return {**train_arc_mnist.CONFIG, **TINY, "data_path": mnist_path,
            "output_dir": str(tmp_path / "run"), "child_fixed_arc": TINY_ARC}


def argv_from(config, script="train_arc_mnist.py"):
    """Command line equivalent to ``config`` (every key as --key=value)."""
    argv = [script]
    for key, value in config.items():
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no{key}")
        else:
            argv.append(f"--{key}={value}")
    return argv


# The longest test files start first (``--dist loadfile`` hands out whole files in collection
# order), so that the two xdist workers end together instead of one waiting on a long file.
LONG_FIRST = ("test_study", "test_docs", "test_distribute", "test_search", "test_mixed_search", "test_tflite_export",
              "test_train_fixed", "test_cli_errors", "test_search_step", "test_folder_lock", "test_export",
              "test_recipes", "test_startup")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1][:-3]
        return LONG_FIRST.index(module) if module in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the file's own order within a module
