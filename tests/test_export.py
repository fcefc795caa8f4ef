"""Packed export: bit-packed quantized weights that reload with identical predictions, a file
the size of the summary's memory figure, clear errors for damaged files, and the .keras path."""

import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import export_arc
from enas.child.child_trainer import make_optimizer
from enas.child.micro_child import ChildConfig, MicroChild
from enas.cli import script
from enas.config.run_config import RunConfig
from enas.cost.model_summary import summarize
from enas.data.data_utils import load_dataset
from enas.deploy.export import (
    decode,
    encode,
    export_packed,
    load_packed,
    pack_codes,
    read_header,
    unpack_codes,
)
from enas.errors import CheckpointError
from enas.run import run_dir
from enas.run.restore import policy_from_description, restore_run
from enas.space.arc import parse_arc, random_arc
from enas.space.precision import PrecisionPolicy
from quantize.layers import QuantConv2D, QuantDense
from tests.conftest import TINY, TINY_ARC, write_learnable_mnist

IMAGES = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype("float32")


def randomize(model, seed=0):
    """Latent weights uniform in [-1, 1]; BN moving statistics away from 0/1 (as after training)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
        elif v.path.endswith("drop_path_scale"):
            continue
        else:
            v.assign(rng.uniform(-1, 1, v.shape).astype("float32"))
    return model


def tiny_child(quantization, **kw):
    config = ChildConfig(num_layers=1, num_nodes=2, out_filters=4,
                         policy=PrecisionPolicy.from_flags(quantization, 4), **kw)
    return randomize(MicroChild(config, fixed_arc=TINY_ARC).build_for((28, 28, 1)))


def predict(model, images=IMAGES):
    return np.asarray(model(images, training=False))


@pytest.mark.parametrize("quantization", ["binary", "ternary", "quantized:4", "float"])
def test_round_trip_gives_identical_predictions(quantization, tmp_path):
    model = tiny_child(quantization)
    path = tmp_path / "m.qenas"
    size = export_packed(model, path)
    assert size == os.path.getsize(path)
    loaded = load_packed(path)
    assert isinstance(loaded, MicroChild)
    assert loaded.config == model.config and str(loaded.fixed_arc) == str(model.fixed_arc)
    np.testing.assert_array_equal(predict(loaded), predict(model))
    # The latent weights of the loaded model are the quantized values themselves.
    conv = model.cells[0].combine
    if conv.kernel_quantizer is not None:
        loaded_conv = loaded.cells[0].combine
        np.testing.assert_array_equal(loaded_conv.kernel.numpy(),
                                      np.reshape(conv.kernel_quantizer(
                                          tf.reshape(conv.kernel, [1, 1, -1, 4])), conv.kernel.shape))


def test_generic_model_with_other_quantizers_round_trips(tmp_path):
    """XNOR channel scales (b1c), fixed-threshold ternary (t2), 8- and 3-bit codes, float bias."""
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        QuantConv2D(5, 3, kernel_quantizer={"class_name": "SteSign", "config": {"channel_scale": True}},
                    input_quantizer="ste_sign", name="xnor"),
        QuantConv2D(4, 1, kernel_quantizer={"class_name": "SteTern", "config": {"rule": "fixed"}},
                    input_quantizer={"class_name": "SteTern", "config": {"rule": "fixed"}}, name="tern"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(),
        QuantDense(7, kernel_quantizer={"class_name": "SteQuantize", "config": {"bits": 8}}, name="q8"),
        QuantDense(3, kernel_quantizer={"class_name": "SteQuantize", "config": {"bits": 3}}, name="q3"),
    ])
    randomize(model)
    path = tmp_path / "seq.qenas"
    export_packed(model, path)
    header, _, _ = read_header(path)
    codes = {p: c for p, _, c, _, _ in header["vars"]}
    assert codes["xnor/kernel"] == "b1c" and codes["tern/kernel"] == "t2" and codes["q8/kernel"] == "q8"
    assert codes["q3/kernel"] == "q3" and codes["xnor/bias"] == "f32"
    images = np.random.default_rng(2).normal(size=(3, 6, 6, 3)).astype("float32")
    np.testing.assert_array_equal(predict(load_packed(path), images), predict(model, images))


def test_packing_primitives():
    codes = np.arange(37) % 8
    assert np.array_equal(unpack_codes(pack_codes(codes, 3), 37, 3), codes)
    assert len(pack_codes(codes, 3)) == (37 * 3 + 7) // 8
    signs = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0, -1.0], np.float32)
    packed = encode(signs, "b1")
    assert packed == np.packbits(signs >= 0).tobytes() and len(packed) == 2
    assert np.array_equal(decode(packed, "b1", (9,)), signs)
    tern = np.array([0.0, 0.25, -0.25, 0.25, 0.0], np.float32)
    blob = encode(tern, "t2s")
    assert len(blob) == 4 + 2 and np.array_equal(decode(blob, "t2s", (5,)), tern)
    assert blob[4] == 0b00011001  # codes 0, 1, 2, 1 -> 00 01 10 01


def test_file_size_matches_summary_memory(tmp_path):
    arc = random_arc(5, np.random.default_rng(0))
    config = ChildConfig(num_layers=2, num_nodes=5, out_filters=16,
                         policy=PrecisionPolicy.from_flags("binary"))
    model = MicroChild(config, fixed_arc=arc).build_for((28, 28, 1))
    summary = summarize(model)
    size = export_packed(model, tmp_path / "m.qenas")
    header, data, header_bytes = read_header(tmp_path / "m.qenas")
    # data = the summary's bits, each tensor rounded up to whole bytes
    assert summary.memory_bytes <= len(data) < summary.memory_bytes + len(header["vars"])
    assert abs(size - summary.memory_bytes) / summary.memory_bytes < 0.05, (size, summary.memory_bytes)
    assert summary.float32_bytes / size > 8  # binary cells: far smaller than float32


@pytest.fixture(scope="module")
def packed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("packed") / "m.qenas"
    export_packed(tiny_child("ternary"), path)
    return path


@pytest.mark.parametrize("damage", ["truncate_data", "truncate_header", "flip_data", "flip_header",
                                    "magic", "empty", "missing", "extra"])
def test_damaged_file_is_a_checkpoint_error(damage, packed_file, tmp_path):
    raw = packed_file.read_bytes()
    _, _, header_bytes = read_header(packed_file)
    data_start = 14 + header_bytes
    damaged = {
        "truncate_data": raw[:-5],
        "truncate_header": raw[:20],
        "flip_data": raw[:data_start + 3] + bytes([raw[data_start + 3] ^ 0xFF]) + raw[data_start + 4:],
        "flip_header": raw[:16] + bytes([raw[16] ^ 0xFF]) + raw[17:],
        "magic": b"NOTQENAS" + raw[8:],
        "empty": b"",
        "extra": raw + b"\0",
    }
    path = tmp_path / "bad.qenas"
    if damage != "missing":
        path.write_bytes(damaged[damage])
    with pytest.raises(CheckpointError) as info:
        load_packed(path)
    message = str(info.value)
    assert message.startswith(f"cannot read packed model {path}") and "\n" not in message


def test_keras_file_round_trip(tmp_path):
    model = tiny_child("ternary", keep_prob=0.9)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, MicroChild) and loaded.config == model.config
    np.testing.assert_array_equal(predict(loaded), predict(model))


@pytest.mark.parametrize("policy", [
    PrecisionPolicy.from_flags("binary", head_activation="cells", shortcuts="none"),
    PrecisionPolicy.from_flags("quantized", 3, quantize_stem=True, overrides="layer_1=ternary,aux_head=float"),
    PrecisionPolicy.from_flags("ternary", overrides="original"),
])
def test_policy_from_run_description(policy):
    parsed = policy_from_description(policy.describe())
    assert parsed.describe() == policy.describe()
    for part in ("stem", "classifier", "aux_head", "layer_0", "layer_1", "layer_2"):
        assert str(parsed.for_part(part)) == str(policy.for_part(part))  # (bits only matter for k-bit)


def make_run(tmp_path, quantization="binary"):
    """A run folder as train_arc_mnist.py leaves it before its first checkpoint (config.json
    written by run_dir.prepare, as run_loop.run does) and its model. Like a real run's, the
    recorded child holds the image shape, class count and training statistics of its data
    (RunConfig.with_data), so restoring needs no MNIST files."""
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, keep_prob=0.9,
                         reduction_layers=(1,),  # not the default (0, 1): read from config.json
                         policy=PrecisionPolicy.from_flags(quantization)).for_data((28, 28, 1), 10, [33.3], [78.6])
    model = randomize(MicroChild(config, fixed_arc=TINY_ARC).build_for((28, 28, 1)))
    run = tmp_path / "run"
    # prepare locks the folder for the run; a run releases the lock when it ends
    run_dir.prepare(str(run), RunConfig(mode="train", dataset="mnist", child=config, fixed_arc=TINY_ARC)).release()
    return run, model


def save_like_a_run(run, model, epoch=1):
    """A checkpoint exactly as run_loop.run writes one for train_fixed's task: the epoch counter,
    the model and its optimizer (built on the model's weights, as ChildTrainer does)."""
    optimizer = make_optimizer("momentum", 0.05)
    optimizer.build(model.trainable_variables)
    epoch_var = keras.Variable(epoch, dtype="int64", trainable=False, name="epoch")
    return run_dir.Checkpoints(str(run), epoch=epoch_var, model=model, optimizer=optimizer).save()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real run folder: train_arc_mnist.py trains a tiny ternary child for one epoch on
    learnable synthetic digits (its own checkpoint; config.json with a non-default reduction
    layer); returns (folder, settings, the run's log)."""
    import contextlib
    import io

    import train_arc_mnist

    root = tmp_path_factory.mktemp("export_run")
    settings = {**train_arc_mnist.CONFIG, **TINY, "data_path": str(write_learnable_mnist(root / "data")),
                "output_dir": str(root / "run"), "child_fixed_arc": TINY_ARC, "num_epochs": 1,
                "max_train_examples": 1200, "max_test_examples": 300, "child_quantization": "ternary",
                "child_keep_prob": 0.9, "child_reduction_layers": "1", "child_optimizer": "adam",
                "child_lr_max": 0.02, "child_lr_min": 0.02, "child_lr_cosine": False}
    argv = ["train"] + [f"--{k}={v}" if not isinstance(v, bool) else (f"--{k}" if v else f"--no{k}")
                        for k, v in settings.items()]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = script.main(train_arc_mnist.CONFIG, "mnist", "train", argv)
    assert code == 0, out.getvalue()[-2000:]
    return root / "run", settings, out.getvalue()


def run_test_split(settings):
    return load_dataset("mnist", settings["data_path"], num_valid=settings["num_valid"],
                        max_train=settings["max_train_examples"], max_test=settings["max_test_examples"])


def run_export(argv, capsys):
    code = export_arc.run_command(export_arc.CONFIG, ["export_arc.py"] + argv, export_arc.main)
    out, err = capsys.readouterr()
    return code, out, err


def test_export_arc_command(trained_run, tmp_path, capsys, monkeypatch):
    """export_arc.py on a folder train_arc_mnist.py wrote: refused before the first checkpoint;
    then the packed file is the trained network: it predicts exactly what the restored checkpoint
    predicts and scores the run's own final test accuracy on the run's test split."""
    early, _ = make_run(tmp_path, "ternary")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_export([f"--output_dir={early}", "--packed=early.qenas"], capsys)
    assert code == 2 and err.startswith("error: ") and "no checkpoint" in err
    assert not (tmp_path / "early.qenas").exists()

    run, settings, log = trained_run
    argv = [f"--output_dir={run}", "--packed=out/m.qenas", "--keras=m.keras"]
    code, out, err = run_export(argv, capsys)
    assert code == 0, err
    assert f"Restored {run / 'ckpt-1'}" in out and f"Architecture: {TINY_ARC}" in out
    assert "Packed model: out/m.qenas: " in out and "Summary memory: " in out and "Keras model: m.keras" in out
    assert "reproduces the checkpoint's predictions: yes" in out
    restored, record, _ = restore_run(str(run))
    assert restored.config.reduction_layers == (1,) and record["arc"] == TINY_ARC
    packed = load_packed(tmp_path / "out/m.qenas")
    assert packed.config == restored.config
    data = run_test_split(settings)
    np.testing.assert_array_equal(predict(packed, data.x_test), predict(restored, data.x_test))
    final = float(re.search(r"^Final test_accuracy: (\S+)", log, re.M).group(1))
    accuracy = np.mean(np.argmax(predict(packed, data.x_test), axis=-1) == data.y_test.reshape(-1))
    assert accuracy == pytest.approx(final, abs=1e-4), (accuracy, final)

    code, out, err = run_export(["--output_dir=nowhere"], capsys)
    assert code == 2 and "no run folder" in err


def test_export_arc_keras_file_reloads_with_the_checkpoints_predictions(trained_run, tmp_path, capsys,
                                                                         monkeypatch):
    """The .keras file export_arc.py --keras writes reloads with keras.models.load_model (no
    custom_objects: the classes are registered) as the same network, predicting exactly what the
    restored checkpoint and the packed file predict."""
    run, settings, _ = trained_run
    monkeypatch.chdir(tmp_path)
    code, out, err = run_export([f"--output_dir={run}", "--packed=m.qenas", "--keras=m.keras"], capsys)
    assert code == 0, err
    assert f"Keras model: m.keras: {(tmp_path / 'm.keras').stat().st_size:,} bytes" in out
    loaded = keras.models.load_model(tmp_path / "m.keras")
    restored, _, _ = restore_run(str(run))
    assert isinstance(loaded, MicroChild) and loaded.config == restored.config
    assert str(loaded.fixed_arc) == str(restored.fixed_arc) == TINY_ARC
    images = run_test_split(settings).x_test[:64]
    expected = predict(restored, images)
    np.testing.assert_array_equal(predict(loaded, images), expected)
    np.testing.assert_array_equal(predict(load_packed(tmp_path / "m.qenas"), images), expected)
    # the weights are the trained ones, not a fresh network's
    fresh = MicroChild(restored.config, fixed_arc=TINY_ARC).build_for((28, 28, 1))
    assert not np.allclose(predict(fresh, images), expected)


def test_export_arc_from_run_checkpoint_and_refuses_partial_ones(tmp_path, capsys):
    """A run checkpoint (run_dir.Checkpoints) holds every weight, so the export reproduces the
    model; a checkpoint that misses the cells (tf.train.Checkpoint alone does not follow Keras
    layers kept in lists and dicts) is refused instead of exporting untrained cells."""
    run, model = make_run(tmp_path)
    save_like_a_run(run, model)
    code, out, err = run_export([f"--output_dir={run}", f"--packed={tmp_path / 'm.qenas'}"], capsys)
    assert code == 0 and "predictions: yes" in out, err
    packed = load_packed(tmp_path / "m.qenas")
    assert packed.config == model.config  # the input statistics travel with the network
    assert packed.config.input_mean == (33.3,) and packed.config.input_std == (78.6,)
    np.testing.assert_array_equal(predict(packed), predict(model))

    partial, model = make_run(tmp_path / "partial")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(partial), 1)
    manager.save()
    code, out, err = run_export([f"--output_dir={partial}", f"--packed={tmp_path / 'p.qenas'}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot restore checkpoint" in err and "does not match this network" in err


def test_mixed_precision_arc_round_trips_at_each_ops_own_width(tmp_path):
    """An arc whose ops name their precision (a mixed-precision search's pick) exports each op at
    its own width, reloads with identical predictions and matches the summary's memory."""
    arc = parse_arc("0 0:binary 1 1:4bit 2 0:ternary 0 4 1 1:binary 0 3 2 0:4bit 1 1:ternary")
    config = ChildConfig(num_layers=1, num_nodes=2, out_filters=4, policy=PrecisionPolicy.from_flags("ternary"))
    model = randomize(MicroChild(config, fixed_arc=arc).build_for((28, 28, 1)))
    path = tmp_path / "m.qenas"
    size = export_packed(model, path)
    loaded = load_packed(path)
    assert str(loaded.fixed_arc) == str(arc)
    np.testing.assert_array_equal(predict(loaded), predict(model))
    summary = summarize(model)
    header, data, _ = read_header(path)  # data: the summary's bits, each tensor rounded up to whole bytes
    assert size == os.path.getsize(path) and summary.memory_bytes <= len(data) < summary.memory_bytes + len(header["vars"])
    widths = {row.path: row.weight_bits[0] for row in summary.rows if "sep_conv_0" in row.path}
    normal = next(i for i, reducer in enumerate(model.reducers) if reducer is None)
    reduce = next(i for i, reducer in enumerate(model.reducers) if reducer is not None)
    expected = {(normal, "node0/x/op0"): 1, (normal, "node0/y/op1"): 4, (normal, "node1/x/op0"): 2,
                (reduce, "node0/x/op1"): 1, (reduce, "node1/x/op0"): 4, (reduce, "node1/y/op1"): 2}
    for (layer, op), bits in expected.items():
        assert widths[f"layer_{layer}/ops/{op}/sep_conv_0"] == bits, (layer, op, widths)
