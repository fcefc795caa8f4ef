"""Fixed-architecture training: log format, checkpoints and resume, CIFAR path, NaN stop."""

import json
import os
import re

import numpy as np
import pytest

import train_arc_cifar
import train_arc_mnist
from enas.cli import script
from enas.errors import DataError
from enas.run import run_dir, run_loop, train_fixed
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


def recomputed_test_accuracy(output_dir):
    """Accuracy of the run's latest checkpoint on its test split, loaded (and normalised) as the
    run loaded it, predicted in one pass outside the run's evaluation code."""
    from enas.config.run_config import RunConfig
    from enas.run.restore import restore_run

    model, record, _ = restore_run(output_dir)
    config = RunConfig.from_json(record["config"])
    data = run_loop.load_data(config)
    assert len(data.x_test) == config.data.max_test_examples
    batch = config.training.eval_batch_size
    logits = np.concatenate([model(data.x_test[i:i + batch], training=False)
                             for i in range(0, len(data.x_test), batch)])
    return float(np.mean(np.argmax(logits, -1) == data.y_test))


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
    assert len(accuracy) == 2 and f"Final test_accuracy: {accuracy[-1]:.4f}" in lines
    assert all(abs(a * 200 - round(a * 200)) < 1e-6 for a in accuracy), accuracy  # k / 200 examples
    # The last printed test accuracy is that of the saved weights on the 200 test images.
    assert accuracy[-1] == round(recomputed_test_accuracy(train_config["output_dir"]), 4)
    assert re.search(r"^Parameters: \d+$", out, re.M)
    # ... and ends with the int8 file's flash and the arena TensorFlow Lite Micro plans for it.
    micro = re.search(r"^Int8 for TensorFlow Lite Micro: flash ([\d,]+) bytes .* peak RAM ([\d,]+) bytes", out, re.M)
    assert micro and min(int(v.replace(",", "")) for v in micro.groups()) > 1000, out[-600:]

    # The run's time is recorded for its newest checkpoint.
    clock_path = os.path.join(train_config["output_dir"], run_dir.CLOCK_FILE)
    with open(clock_path) as f:
        clock = json.load(f)
    assert clock["checkpoint"] == "ckpt-2" and clock["seconds"] > 0

    # Rerunning the same command with more epochs resumes at epoch 2 instead of starting over,
    # and its clock goes on from the checkpoint's (made an hour here, to tell it from this sitting's).
    with open(clock_path, "w") as f:
        json.dump({"checkpoint": "ckpt-2", "seconds": 3600.0}, f)
    more = {**train_config, "num_epochs": 3}
    code, out2, err2 = run_main(more, capsys)
    assert code == 0, err2
    assert re.search(r"Resuming from .*ckpt-2 at epoch 2, step \d+", out2)
    assert "Epoch 3: Eval" in out2 and "Epoch 1: Eval" not in out2
    first_step = min(int(m) for m in re.findall(r"ch_step = (\d+)", out2))
    steps_per_epoch = (TINY["max_train_examples"] - TINY["num_valid"]) // TINY["batch_size"]
    assert first_step > 2 * steps_per_epoch
    minutes = [float(m) for m in re.findall(r"mins = (\d+\.\d+)", out2)]
    assert minutes and all(60.0 <= m < 70.0 for m in minutes), minutes
    with open(clock_path) as f:
        clock = json.load(f)
    assert clock["checkpoint"] == "ckpt-3" and 3600.0 < clock["seconds"] < 4200.0


def test_clock_of_a_checkpoint_is_zero_when_not_recorded_for_it(tmp_path):
    """A checkpoint written before the clock was kept, or whose record is another checkpoint's or
    unreadable, resumes with the earlier sittings' time unknown (0), never a wrong one."""
    checkpoint = str(tmp_path / "ckpt-4")
    assert run_dir.Checkpoints.seconds_at(checkpoint) == 0.0
    for text in ('{"checkpoint": "ckpt-3", "seconds": 12.5}', "{not json", '{"seconds": 1}', "[1]"):
        (tmp_path / run_dir.CLOCK_FILE).write_text(text)
        assert run_dir.Checkpoints.seconds_at(checkpoint) == 0.0, text
    (tmp_path / run_dir.CLOCK_FILE).write_text('{"checkpoint": "ckpt-4", "seconds": 12.5}')
    assert run_dir.Checkpoints.seconds_at(checkpoint) == 12.5


def test_learns_mnist_digits(train_config, capsys):
    """A few epochs of a tiny ternary child on MNIST digits: well above chance (10%)."""
    config = {**train_config, "num_epochs": 3, "max_train_examples": 1500, "child_out_filters": 8,
              "child_optimizer": "adam", "child_lr_max": 0.01, "child_lr_min": 0.001, "micro_memory": False}
    code, out, err = run_main(config, capsys)
    assert code == 0, err
    assert "Int8 for TensorFlow Lite Micro" not in out  # --nomicro_memory
    final = float(re.search(r"^Final test_accuracy: (\S+)", out, re.M).group(1))
    assert final > 0.5, out[-800:]


def test_cifar_end_to_end_on_tiny_files(tmp_path, cifar_path, monkeypatch, capsys):
    """The CIFAR path with augmentation, cutout, aux head, drop path and dropout: each option is
    recorded in config.json and reaches what trains (the training batches, the network, the
    checkpoint)."""
    import json

    from enas.data import data_utils
    from enas.run.restore import restore_run

    real_make_dataset, real_make_trainer = data_utils.make_dataset, run_loop.make_child_trainer
    train_datasets, trainers, initial_aux = [], [], []

    def make_dataset(*args, **kwargs):
        if kwargs.get("training"):
            train_datasets.append(kwargs)
        return real_make_dataset(*args, **kwargs)

    def make_trainer(config, model, *args, **kwargs):  # the network is built, not trained yet
        if model.aux_head is not None:
            initial_aux.extend(w.numpy().copy() for w in model.aux_head.trainable_weights)
        trainers.append(real_make_trainer(config, model, *args, **kwargs))
        return trainers[-1]

    monkeypatch.setattr(data_utils, "make_dataset", make_dataset)
    monkeypatch.setattr(run_loop, "make_child_trainer", make_trainer)
    output_dir = tmp_path / "cifar"
    config = {**train_arc_cifar.CONFIG, **TINY, "data_path": cifar_path,
              "output_dir": str(output_dir), "child_fixed_arc": TINY_ARC,
              "num_epochs": 1, "max_train_examples": 250, "num_valid": 50, "child_augment": True,
              "child_cutout_size": 8, "child_use_aux_heads": True, "child_drop_path_keep_prob": 0.6,
              "child_keep_prob": 0.8, "child_num_layers": 1}
    code, out, err = run_main(config, capsys, train_arc_cifar.CONFIG, "cifar10")
    assert code == 0, err
    assert "Dataset: cifar10 (200 train, 50 valid, 60 test)" in out
    assert "Test Num examples:  60" in out
    losses = [float(x) for x in re.findall(r"^epoch = .* loss = (\S+)", out, re.M)]
    assert losses and all(np.isfinite(losses)), out[:2000]
    assert re.search(r"^\| aux_head/", out, re.M)  # the model summary lists the aux head

    recorded = json.loads((output_dir / "config.json").read_text())["config"]
    assert recorded["data"]["augment"] is True and recorded["data"]["cutout_size"] == 8
    child = recorded["child"]
    assert child["use_aux_heads"] is True and child["drop_path_keep_prob"] == 0.6 and child["keep_prob"] == 0.8

    # What trained: augmented batches with cutout, a network with an aux head, drop path and dropout.
    assert train_datasets and all(d["augment"] is True and d["cutout_size"] == 8 for d in train_datasets)
    [trainer] = trainers
    model = trainer.model
    assert model.aux_head is not None and model.uses_drop_path and model.dropout.rate == pytest.approx(0.2)
    assert trainer.drop_path_steps == (200 // TINY["batch_size"]) * config["num_epochs"]

    # The aux head was trained (its loss is in the total), and the checkpoint holds it.
    assert initial_aux and len(initial_aux) == len(model.aux_head.trainable_weights)
    assert all(not np.array_equal(w0, w.numpy()) for w0, w in zip(initial_aux, model.aux_head.trainable_weights))
    restored, _, _ = restore_run(str(output_dir))
    assert restored.aux_head is not None and restored.aux_head.weights
    for saved, trained in zip(restored.aux_head.weights, model.aux_head.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), trained.numpy())


def test_nan_loss_stops_with_clear_message_and_keeps_checkpoint(train_config, monkeypatch, capsys):
    real_load = run_loop.load_data
    calls = {"n": 0}

    def poisoned(config):
        data = real_load(config)
        calls["n"] += 1
        if calls["n"] == 2:  # second run: images become NaN
            data.train.images = np.full(data.train.images.shape, np.nan, np.float32)
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


@pytest.mark.parametrize("where", ["load_data", "header"])
def test_user_error_is_not_swallowed_for_programming_errors(train_config, monkeypatch, capsys, tmp_path, where):
    """A bug (not a UserError) inside a run propagates with its traceback; a UserError raised at
    the same place is one ``error:`` line and exit status 2. ``where``: before the run folder is
    touched (loading the data) or once the network is built and the folder prepared (the header)."""
    raised = {}

    def fail(*args, **kwargs):
        raise raised["error"]

    target = run_loop if where == "load_data" else train_fixed.FixedTraining
    monkeypatch.setattr(target, where, fail)

    raised["error"] = RuntimeError("a bug in the library")
    with pytest.raises(RuntimeError, match="a bug in the library"):
        run_main({**train_config, "output_dir": str(tmp_path / "bug")}, capsys)
    assert "error:" not in capsys.readouterr().err

    raised["error"] = DataError("the data is bad\n  fix it")
    code, out, err = run_main({**train_config, "output_dir": str(tmp_path / "user")}, capsys)
    assert code == 2 and err == "error: the data is bad fix it\n", err
    assert "Epoch 1" not in out
    assert (tmp_path / "user" / "config.json").exists() == (where == "header")
