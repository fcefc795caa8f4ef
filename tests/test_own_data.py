"""Your own data end to end: an image folder searched, trained and exported to a TensorFlow Lite
file that takes the raw image bytes; runs recorded before the network held its input statistics
still export."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import search_arc
import train_arc
from enas.cli import script
from tests.fixtures_data import write_image_folder

TINY = dict(child_num_layers=0, child_num_cells=2, child_out_filters=8, batch_size=32, log_every=1000,
            eval_batch_size=64)


def run_script(module, mode, args, capsys):
    code = script.main(module.CONFIG, dataset=None, mode=mode, argv=["prog"] + args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes, 40x30 RGB PNGs: 300 training and 90 test images in train/ and test/."""
    root = tmp_path_factory.mktemp("own") / "images"
    write_image_folder(root, {"train": 300, "test": 90}, num_classes=3, size=(40, 30), channels=3)
    return root


def raw_images(folder, split):
    """The split's images as a camera gives them: uint8 (N, H, W, C) read with Pillow, and labels."""
    classes = sorted(p.name for p in (folder / split).iterdir())
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / split / name).glob("*.png")):
            images.append(np.asarray(Image.open(path).convert("RGB"), np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_folder_search_train_export_uint8_tflite(folder, tmp_path, capsys):
    """search 1 epoch -> train the best architecture -> int8 TensorFlow Lite with uint8 input ->
    the file, given the raw image bytes, predicts what Keras predicts."""
    import export_arc
    from enas.cli.command import run_command
    from enas.deploy import tflite_export
    from enas.run.restore import restore_run

    flags = [f"--{k}={v}" for k, v in TINY.items()]
    search_dir = tmp_path / "search"
    code, out, err = run_script(search_arc, "search", [
        "--data_path", str(folder), "--output_dir", str(search_dir), "--num_epochs", "1",
        "--controller_warmup_epochs", "0", "--controller_train_steps", "3", "--final_pick_samples", "6",
        "--num_sampled_arcs", "2"] + flags, capsys)
    assert code == 0, err
    assert "Architecture search on folder (270 train, 30 valid, 90 test); 40x30x3 images, 3 classes" in out
    best = (search_dir / "best_arc.txt").read_text().strip()

    train_dir = tmp_path / "train"
    code, out, err = run_script(train_arc, "train", [
        "--data_path", str(folder), "--output_dir", str(train_dir), "--num_epochs", "3", "-fixed_arc", best,
        "--child_use_aux_heads=false"] + flags, capsys)
    assert code == 0, err
    assert f"Training architecture: {best}" in out
    recorded = json.loads((train_dir / "config.json").read_text())["config"]
    assert recorded["dataset"] == "folder" and recorded["child"]["image_shape"] == [40, 30, 3]
    assert recorded["child"]["num_classes"] == 3 and len(recorded["child"]["input_mean"]) == 3
    test_accuracy = float(out.split("Final test_accuracy:")[1].split()[0])
    assert test_accuracy > 0.6  # learnable images: better than chance (1/3)

    tflite = tmp_path / "m.tflite"
    code = run_command(export_arc.CONFIG, ["export", "--output_dir", str(train_dir), "--packed", "",
                                           "--tflite", str(tflite), "--int8", "--tflite_io", "uint8", "--tflm"],
                       export_arc.main)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "TFLite input: uint8 (1, 40, 30, 3): the raw image bytes (scale 1, zero point 0)" in out
    # ... and TensorFlow Lite Micro runs it, integer end to end, on the raw bytes too.
    assert "TFLite integer only: yes" in out
    micro = re.search(r"TFLM: test accuracy [0-9.]+ \(Keras [0-9.]+\), same prediction as Keras on ([0-9.]+)%", out)
    assert micro and float(micro.group(1)) >= 99, out

    images, labels = raw_images(folder, "test")
    model, _, _ = restore_run(str(train_dir))
    keras_classes = np.argmax(model(images, training=False).numpy(), axis=-1)
    runner = tflite_export.interpreter(tflite.read_bytes())  # TensorFlow's TensorFlow Lite interpreter
    source, target = runner.get_input_details()[0], runner.get_output_details()[0]
    assert source["dtype"] == np.uint8 and tuple(source["shape"]) == (1, 40, 30, 3)
    file_classes = []
    for image in images:
        runner.set_tensor(source["index"], image[None])  # the bytes as they are
        runner.invoke()
        file_classes.append(int(np.argmax(runner.get_tensor(target["index"])[0])))
    agreement = np.mean(np.array(file_classes) == keras_classes)
    assert agreement >= 0.99, agreement
    assert np.mean(keras_classes == labels) == pytest.approx(test_accuracy, abs=1e-6)


def test_run_recorded_before_input_statistics_still_exports(folder, tmp_path, capsys):
    """A config.json without the input statistics (as runs recorded before the network held
    them): restoring measures them on the run's training data again, giving the same network."""
    from enas.run.restore import restore_run

    train_dir = tmp_path / "train"
    arc = "0 1 1 0 0 1 1 2 0 0 1 1 1 3 1 0"
    code, out, err = run_script(train_arc, "train", [
        "--data_path", str(folder), "--output_dir", str(train_dir), "--num_epochs", "1", "-fixed_arc", arc,
        "--child_use_aux_heads=false"] + [f"--{k}={v}" for k, v in TINY.items()], capsys)
    assert code == 0, err
    model, _, _ = restore_run(str(train_dir))
    images = raw_images(folder, "test")[0][:40]
    expected = model(images, training=False).numpy()

    legacy = tmp_path / "legacy"
    shutil.copytree(train_dir, legacy)
    record = json.loads((legacy / "config.json").read_text())
    for key in ("input_mean", "input_std", "image_shape"):
        record["config"]["child"].pop(key)
    (legacy / "config.json").write_text(json.dumps(record))
    restored, _, _ = restore_run(str(legacy))
    assert restored.config.input_mean == model.config.input_mean
    np.testing.assert_allclose(restored(images, training=False).numpy(), expected, rtol=1e-5, atol=1e-5)

    # Without its data the old run cannot be normalised: one line saying so.
    from enas.errors import DataError

    with pytest.raises(DataError, match="trained before networks stored their input statistics"):
        restore_run(str(legacy), data_path=str(tmp_path / "nowhere"))


def test_study_and_summary_read_any_source(folder, tmp_path, capsys):
    """study_arc.py's --dataset auto resolves what --data_path holds; summarize_arc.py takes the
    image shape and class count from the data (and the stem's stride from the image size)."""
    import summarize_arc
    from enas.cli.command import run_command
    from enas.search.study import from_settings, settings_of

    settings = {**settings_of({"dataset": "auto"}), "data_path": str(folder), "output_dir": str(tmp_path / "s")}
    _, search = from_settings(settings)
    assert search.dataset == "folder" and search.data.data_path == str(folder)

    code = run_command(summarize_arc.CONFIG, ["summarize_arc.py", "--data_path", str(folder), "--noint8_memory"], summarize_arc.main)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Input: 40x30x3 images, 3 classes, stem stride 1" in out and "(input 40x30x3, per example)" in out
    code = run_command(summarize_arc.CONFIG, ["summarize_arc.py", "--image_shape", "96,96,3", "--num_classes", "4",
                                        "--noint8_memory"],
                       summarize_arc.main)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Input: 96x96x3 images, 4 classes, stem stride 4" in out
    classifier = [line for line in out.splitlines() if line.startswith("| classifier")]
    assert classifier and " 324 " in classifier[0]  # (20 filters x 4 after two reductions) x 4 classes + 4 biases
