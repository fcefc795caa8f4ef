"""Fixed-architecture training: log format, checkpoints and resume, CIFAR path, NaN stop."""

import re

import numpy as np
import pytest

import train_arc_cifar
import train_arc_mnist
from enas.cli import script
from enas.errors import UserError
from enas.run import run_loop, train_fixed
from tests.conftest import TINY, TINY_ARC

CHILD_LINE = re.compile(
    r"^epoch = \d+\s+ch_step = \d+\s+ loss = \d+\.\d{6}\s+lr = \d+\.\d{4}\s+\|g\| = \d+\.\d{4}\s+"
    r"tr_acc = \s*\d+\s*/\s*\d+\s+mins = \d+\.\d{2}\s*$"
)


def run_main(config, capsys, script_config=None, dataset="mnist", argv_extra=()):
    argv = ["train"] + [f"--{k}={v}" if not isinstance(v, bool) else (f"--{k}" if v else f"--no{k}")
                        for k, v in config.items()] + list(argv_extra)
    code = script.main(script_config or train_arc_mnist.CONFIG, dataset, "train", argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_prints_original_format_and_resumes(train_config, capsys):
    code, out, err = run_main(train_config, capsys)
    assert code == 0, err
    lines = out.splitlines()
    child_lines = [line for line in lines if line.startswith("epoch = ")]
    assert child_lines and all(CHILD_LINE.match(line) for line in child_lines), child_lines[:2]
    for expected in ("Epoch 1: Eval", "Epoch 2: Eval", "Valid Num examples:  100",
                     "Test Num examples:  200", "Architecture String", TINY_ARC):
        assert expected in lines
    accuracy = [float(line.split(": ")[1]) for line in lines if line.startswith("test_accuracy: ")]
    assert len(accuracy) == 2 and all(0.0 <= a <= 1.0 for a in accuracy)
    assert re.search(r"^Parameters: \d+$", out, re.M)

    # Rerunning the same command with more epochs resumes at epoch 2 instead of starting over.
    more = {**train_config, "num_epochs": 3}
    code, out2, err2 = run_main(more, capsys)
    assert code == 0, err2
    assert re.search(r"Resuming from .*ckpt-2 at epoch 2, step \d+", out2)
    assert "Epoch 3: Eval" in out2 and "Epoch 1: Eval" not in out2
    first_step = min(int(m) for m in re.findall(r"ch_step = (\d+)", out2))
    steps_per_epoch = (TINY["max_train_examples"] - TINY["num_valid"]) // TINY["batch_size"]
    assert first_step > 2 * steps_per_epoch


def test_learns_mnist_digits(train_config, capsys):
    """A few epochs of a tiny ternary child on MNIST digits: well above chance (10%)."""
    config = {**train_config, "num_epochs": 3, "max_train_examples": 1500, "child_out_filters": 8,
              "child_optimizer": "adam", "child_lr_max": 0.01, "child_lr_min": 0.001}
    code, out, err = run_main(config, capsys)
    assert code == 0, err
    final = float(re.search(r"^Final test_accuracy: (\S+)", out, re.M).group(1))
    assert final > 0.5, out[-800:]


def test_cifar_end_to_end_on_tiny_files(tmp_path, cifar_path, capsys):
    config = {**train_arc_cifar.CONFIG, **TINY, "data_path": cifar_path,
              "output_dir": str(tmp_path / "cifar"), "child_fixed_arc": TINY_ARC,
              "num_epochs": 1, "max_train_examples": 250, "num_valid": 50, "child_augment": True,
              "child_cutout_size": 8, "child_use_aux_heads": True, "child_drop_path_keep_prob": 0.6,
              "child_keep_prob": 0.8, "child_num_layers": 1}
    code, out, err = run_main(config, capsys, train_arc_cifar.CONFIG, "cifar10")
    assert code == 0, err
    assert "Dataset: cifar10 (200 train, 50 valid, 60 test)" in out
    assert "Test Num examples:  60" in out


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(train_config, monkeypatch, capsys):
    real_load = run_loop.load_data
    calls = {"n": 0}

    def poisoned(config):
        data = real_load(config)
        calls["n"] += 1
        if calls["n"] == 2:  # second run: images become NaN
            data.x_train[:] = np.nan
        return data

    monkeypatch.setattr(run_loop, "load_data", poisoned)
    code, _, err = run_main({**train_config, "num_epochs": 1}, capsys)
    assert code == 0, err
    code, out, err = run_main({**train_config, "num_epochs": 2}, capsys)
    assert code == 3
    assert err.startswith("error: loss became nan at epoch 1") and err.count("\n") == 1
    assert "ckpt-1" in err
    import os
    assert os.path.exists(os.path.join(train_config["output_dir"], "ckpt-1.index"))


@pytest.mark.parametrize("precision", ["binary", "quantized"])
def test_other_precisions_train(train_config, capsys, precision):
    config = {**train_config, "num_epochs": 1, "child_quantization": precision, "child_bits": 3,
              "child_precision_overrides": "stem=quantized:4,layer_0=quantized:4"}
    code, out, err = run_main(config, capsys)
    assert code == 0, err
    expected = "binary" if precision == "binary" else "quantized:3"
    assert f"Precision: default={expected}, stem=quantized:4, classifier=float, layer_0=quantized:4" in out


def test_run_rejects_mismatched_checkpoint_folder(train_config, capsys):
    code, _, err = run_main({**train_config, "num_epochs": 1}, capsys)
    assert code == 0, err
    other_arc = "1 0 0 2 2 3 0 4 1 1 0 3 2 4 0 0"
    code, _, err = run_main({**train_config, "child_fixed_arc": other_arc}, capsys)
    assert code == 2 and "different arc" in err and "--reset_output_dir" in err
    code, out, err = run_main({**train_config, "child_fixed_arc": other_arc, "num_epochs": 1,
                               "reset_output_dir": True}, capsys)
    assert code == 0, err
    assert "Resuming" not in out


def test_user_error_is_not_swallowed_for_programming_errors():
    with pytest.raises(TypeError):
        train_fixed.run(None, "mnist")
    assert issubclass(train_fixed.TrainingDiverged, UserError)
