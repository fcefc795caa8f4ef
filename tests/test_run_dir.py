"""Checkpoints restore *every* variable of a child and its optimizer into a fresh process-like
rebuild (Keras layers held in lists and dicts included), and config records guard resumes."""

import numpy as np
import pytest
import tensorflow as tf

from enas.child.child_trainer import make_optimizer
from enas.child.micro_child import ChildConfig, MicroChild
from enas.errors import ConfigError
from enas.run import run_dir

ARC = "0 0 1 2 2 3 0 4 1 1 0 3 2 4 0 0"


def make(search):
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, drop_path_keep_prob=0.5)
    model = MicroChild(config, fixed_arc=None if search else ARC).build_for((28, 28, 1))
    optimizer = make_optimizer("momentum", 0.1)
    optimizer.build(model.trainable_variables)
    return model, optimizer


@pytest.mark.parametrize("search", [False, True], ids=["fixed", "search"])
def test_checkpoint_restores_every_variable(tmp_path, search):
    model, optimizer = make(search)
    rng = np.random.default_rng(0)
    for variable in model.variables:  # every weight and state away from its initial value
        variable.assign(rng.integers(1, 100, variable.shape).astype(variable.dtype))
    grads = [tf.ones_like(v) for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)  # momentum slots become non-zero
    run_dir.Checkpoints(str(tmp_path), model=model, optimizer=optimizer).save()
    fresh, fresh_optimizer = make(search)
    run_dir.Checkpoints(str(tmp_path), model=fresh, optimizer=fresh_optimizer).restore_latest()
    pairs = list(zip(model.variables + optimizer.variables, fresh.variables + fresh_optimizer.variables))
    assert len(pairs) == len(model.variables) + len(optimizer.variables)
    for before, after in pairs:
        np.testing.assert_array_equal(before.numpy(), after.numpy(), err_msg=before.path)


def test_prepare_refuses_changed_identity(tmp_path):
    run_dir.prepare(str(tmp_path / "r"), {"arc": "1 2"})
    run_dir.prepare(str(tmp_path / "r"), {"arc": "1 2"})
    with pytest.raises(ConfigError, match="different arc"):
        run_dir.prepare(str(tmp_path / "r"), {"arc": "3 4"})


def test_reset_takes_what_a_killed_run_leaves_but_refuses_foreign_files(tmp_path):
    """A run killed mid-write leaves temporary files and checkpoint folders; a reset removes
    them. A file the project never writes makes the reset refuse and leaves everything."""
    folder = tmp_path / "r"
    run_dir.prepare(str(folder), {"arc": "1 2"})
    leftovers = [".tmp-abc123", "pareto.png.tmp.png", "ckpt-3.index", "ckpt-3.data-00000-of-00001",
                 "pareto.json", "pareto.png"]
    for name in leftovers:
        (folder / name).write_text("x")
    (folder / "ckpt-4_temp").mkdir()
    run_dir.prepare(str(folder), {"arc": "3 4"}, reset=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to reset.*notes.txt"):
        run_dir.prepare(str(folder), {"arc": "5 6"}, reset=True)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "config.json").exists()
