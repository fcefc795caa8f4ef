"""Bad own data given to the generic scripts (search_arc.py, train_arc.py, export_arc.py): exit status
2, exactly one ``error: ...`` line on stderr naming the problem (and the file, where one is
involved), no traceback, and no output folder created (or, for a run folder of other data, the
folder left byte for byte as it was).

Every case runs in-process through ``enas.cli.script.main`` / ``run_command``. Almost all fail
before TensorFlow builds anything; one tiny training run (1 epoch on 40 images) is shared by the
checkpoint and export cases. A run that gets past every check to its output folder where it
should have been refused fails at once (:func:`no_run`) instead of training.
"""

import contextlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import export_arc
import search_arc
import train_arc
from enas.cli import script
from enas.cli.command import run_command
from tests.fixtures_data import write_image_folder

ARC = "0 1 1 0 0 1 1 2 0 0 1 1 1 3 1 0"
TINY = ["--child_num_layers", "0", "--child_num_cells", "2", "--child_out_filters", "8", "--batch_size", "16",
        "--num_epochs", "1"]
MODULES = {"train": train_arc, "search": search_arc}


class ReachedRunFolder(Exception):
    """A run that should have been refused got past every check to its output folder."""


@pytest.fixture
def no_run(monkeypatch):
    """Refuse to start any run folder (so a case the library wrongly accepts fails in a second
    instead of training)."""
    from enas.run import run_dir

    def refuse(output_dir, *args, **kwargs):
        raise ReachedRunFolder(f"the run got past every check to its output folder {output_dir!r}")

    monkeypatch.setattr(run_dir, "prepare", refuse)


def run_script(mode, args, out_dir, capsys):
    """``<mode>_arc.py <args> --output_dir <out_dir>`` (tiny network; train: the fixed arc) ->
    (exit status, stdout, stderr)."""
    argv = ["prog"] + [str(a) for a in args] + ["--output_dir", str(out_dir)] + TINY
    if mode == "train":
        argv += ["-fixed_arc", ARC]
    code = script.main(MODULES[mode].CONFIG, dataset=None, mode=mode, argv=argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments, absent=()):
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    for fragment in absent:
        assert fragment not in err, f"{fragment!r} in {err!r}"


def snapshot(folder):
    """{relative path: (bytes, mtime_ns)} of every file under ``folder``, and its sub-folders."""
    files = {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
             for p in sorted(folder.rglob("*")) if p.is_file()}
    folders = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_dir())
    return files, folders


# ------------------------------------------------------------------------------------------------
# Data, written once per module
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """{name: path} of good and bad image folders and files (all tiny)."""
    root = tmp_path_factory.mktemp("own_errors")
    paths = {}

    def folder(name, counts, **kw):
        write_image_folder(root / name, counts, **kw)
        paths[name] = root / name
        return root / name

    folder("good", {"": 40}, num_classes=3, size=(20, 20))  # folder A: 20x20 RGB, 3 classes
    folder("other_shape", {"": 40}, num_classes=3, size=(24, 24))
    folder("other_classes", {"": 40}, num_classes=2, size=(20, 20))
    folder("gray", {"": 40}, num_classes=3, size=(20, 20), channels=1)
    folder("tiny", {"": 20}, num_classes=2, size=(3, 3))

    (root / "empty").mkdir()
    paths["empty"] = root / "empty"
    paths["missing"] = root / "missing"
    (root / "notes.txt").write_text("not data\n")
    paths["text_file"] = root / "notes.txt"

    no_images = folder("no_images", {"": 20}, num_classes=2, size=(20, 20))
    (no_images / "class_2").mkdir()
    (no_images / "class_2" / "readme.txt").write_text("no images here\n")  # not an image
    folder("single", {"": 10}, num_classes=1, size=(20, 20))

    corrupt = folder("corrupt", {"": 20}, num_classes=2, size=(20, 20))
    (corrupt / "class_0" / "bad.png").write_bytes(np.random.default_rng(0).bytes(300))
    truncated = folder("truncated", {"": 20}, num_classes=2, size=(20, 20))
    whole = sorted((truncated / "class_1").glob("*.png"))[0].read_bytes()
    (truncated / "class_1" / "truncated.png").write_bytes(whole[:len(whole) // 2])
    corrupt_test = folder("corrupt_test", {"train": 20, "test": 6}, num_classes=2, size=(20, 20))
    (corrupt_test / "test" / "class_0" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")

    sizes = folder("sizes", {"": 20}, num_classes=2, size=(20, 20))
    Image.fromarray(np.full((24, 20, 3), 128, np.uint8)).save(sizes / "class_1" / "odd.png")  # 24x20 (HxW)

    extra_test = folder("extra_test_class", {"train": 20, "test": 6}, num_classes=2, size=(20, 20))
    write_image_folder(extra_test / "test", {"": 3}, num_classes=1, size=(20, 20), class_names=["zebra"])
    extra_valid = folder("extra_valid_class", {"train": 20, "valid": 6}, num_classes=2, size=(20, 20))
    write_image_folder(extra_valid / "valid", {"": 3}, num_classes=1, size=(20, 20), class_names=["zebra"])
    empty_test = folder("empty_test", {"train": 20}, num_classes=2, size=(20, 20))
    (empty_test / "test").mkdir()
    folder("no_train", {"test": 10, "valid": 10}, num_classes=2, size=(20, 20))
    return paths


# ------------------------------------------------------------------------------------------------
# --data_path: folders, files, images
# ------------------------------------------------------------------------------------------------

FOLDER_CASES = [  # (data in ``own``, extra flags, key phrases: the file's or folder's name among them)
    pytest.param("empty", [], ["no data found in", "/empty'"], id="empty-folder"),
    pytest.param("missing", [], ["does not exist", "/missing'"], id="missing-path"),
    pytest.param("text_file", [], ["is a file but not an .npz", "notes.txt"], id="file-not-npz"),
    pytest.param("text_file", ["--dataset", "folder"], ["is not a folder of images", "notes.txt"],
                 id="dataset-folder-on-file"),
    pytest.param("good", ["--dataset", "npz"], ["--dataset npz needs --data_path to name the .npz file", "/good'"],
                 id="dataset-npz-on-folder"),
    pytest.param("no_images", [], ["class folder", "no_images/class_2'", "has no images"], id="class-without-images"),
    pytest.param("single", [], ["one class folder", "'class_0'", "at least two"], id="single-class"),
    pytest.param("corrupt", [], ["cannot read image", "corrupt/class_0/bad.png", "fix or remove the file"],
                 id="corrupt-png"),
    pytest.param("truncated", [], ["cannot decode image", "truncated/class_1/truncated.png", "corrupt or truncated"],
                 id="truncated-png"),
    pytest.param("corrupt_test", [], ["cannot read image", "corrupt_test/test/class_0/bad.jpg"],
                 id="corrupt-jpeg-in-test"),
    pytest.param("sizes", [], ["images differ in size", "sizes/class_1/odd.png", "is 24x20", "--image_size H,W"],
                 id="mixed-sizes"),
    pytest.param("extra_test_class", [], ["extra_test_class/test'", "class folder 'zebra'",
                                          "which the training split lacks"], id="test-class-not-in-train"),
    pytest.param("extra_valid_class", [], ["extra_valid_class/valid'", "class folder 'zebra'",
                                           "which the training split lacks"], id="valid-class-not-in-train"),
    pytest.param("empty_test", [], ["empty_test/test'", "has no class sub-folders"], id="empty-test-folder"),
    pytest.param("no_train", [], ["train"], id="test-and-valid-without-train"),
]


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("mode", ["train", "search"])
@pytest.mark.parametrize("name,flags,fragments", FOLDER_CASES)
def test_bad_data_path(own, tmp_path, capsys, mode, name, flags, fragments):
    out_dir = tmp_path / "out"
    code, _, err = run_script(mode, ["--data_path", own[name]] + flags, out_dir, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not out_dir.exists()


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("name,file", [("corrupt", "class_0/bad.png"), ("truncated", "class_1/truncated.png"),
                                       ("sizes", "class_1/odd.png")])
def test_image_file_named_plainly(own, tmp_path, capsys, name, file):
    code, _, err = run_script("train", ["--data_path", own[name]], tmp_path / "out", capsys)
    assert_one_line_error(code, err, repr(str(own[name] / file)), absent=["np.str_"])


def test_image_size_resizes_mixed_sizes(own):
    """The mixed-size folder refused above loads with --image_size (all images 20x20)."""
    from enas.data.sources import load_source

    data = load_source("auto", str(own["sizes"]), num_valid=0.1, image_size=(20, 20))
    assert data.image_shape == (20, 20, 3) and data.resize
    assert len(data.train) + len(data.valid) == 21 and data.num_classes == 2


# ------------------------------------------------------------------------------------------------
# .npz files
# ------------------------------------------------------------------------------------------------

_rng = np.random.default_rng(0)
X = _rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8)
Y = np.arange(40) % 3
XT = _rng.integers(0, 256, (12, 12, 12, 3), dtype=np.uint8)
YT = np.arange(12) % 3
BASE = dict(x_train=X, y_train=Y, x_test=XT, y_test=YT)


def _without(key):
    return {k: v for k, v in BASE.items() if k != key}


def _float_with(x, value):
    x = x.astype(np.float32)
    x[0, 0, 0, 0] = value
    return x


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_without_arrays():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("readme.txt", "hello")
    return buffer.getvalue()


def _npy_bytes():
    buffer = io.BytesIO()
    np.save(buffer, X)
    return buffer.getvalue()


# id: (the file: arrays for np.savez, or its bytes; key phrases; phrases the message must not hold)
NPZ_CASES = {
    **{f"no-{k}": (_without(k), [f"has no {k!r} array", "x_train, y_train, x_test, y_test"], []) for k in
       ("x_train", "y_train", "x_test", "y_test")},
    "x_valid-only": ({**BASE, "x_valid": XT}, ["has only one of x_valid, y_valid"], []),
    "y_valid-only": ({**BASE, "y_valid": YT}, ["has only one of x_valid, y_valid"], []),
    "test-label-out-of-range": ({**BASE, "y_test": np.where(YT == 1, 7, YT)},
                                ["test split", "label 7 is out of range", "0..2"], []),
    "negative-train-label": ({**BASE, "y_train": Y - 1}, ["training split", "label -1 is out of range"], []),
    "negative-test-label": ({**BASE, "y_test": YT - 1}, ["test split", "label -1 is out of range"], []),
    "fractional-labels": ({**BASE, "y_train": Y + 0.5}, ["training split", "labels must be integer class ids",
                                                          "0.5"], []),
    "nan-labels": ({**BASE, "y_train": np.where(Y == 0, np.nan, Y)}, ["labels must be integer class ids"], []),
    "one-hot-labels": ({**BASE, "y_train": np.eye(3)[Y]}, ["labels must be a vector of class ids", "(40, 3)"], []),
    "nan-train-images": ({**BASE, "x_train": _float_with(X, np.nan), "x_test": XT.astype(np.float32)},
                         ["training split", "NaN or infinite"], []),
    "inf-test-images": ({**BASE, "x_train": X.astype(np.float32), "x_test": _float_with(XT, np.inf)},
                        ["test split", "NaN or infinite"], []),
    "string-images": ({**BASE, "x_train": np.full((40, 12, 12), "a")}, ["images must be uint8 or float"], []),
    "fewer-labels-than-images": ({**BASE, "y_train": Y[:-1]}, ["40 images but 39 labels"], []),
    "rank-2-images": ({**BASE, "x_train": X[:, :, 0, 0]}, ["images must be (N, H, W) or (N, H, W, C)",
                                                           "(40, 12)"], []),
    "rank-5-images": ({**BASE, "x_train": X[..., None]}, ["images must be (N, H, W) or (N, H, W, C)",
                                                          "(40, 12, 12, 3, 1)"], []),
    "test-shape-differs": ({**BASE, "x_test": XT[:, :10]}, ["test images are (10, 12, 3) but training images "
                                                            "(12, 12, 3)"], []),
    "valid-shape-differs": ({**BASE, "x_valid": XT[:, :5], "y_valid": YT}, ["validation images are (5, 12, 3)"], []),
    "uint8-train-float-test": ({**BASE, "x_test": XT.astype(np.float32)}, ["test images are float32 but training "
                                                                           "images uint8"], []),
    "empty-file": (b"", ["cannot read", "as an .npz file"], []),
    "truncated-npz": (_npz_bytes(**BASE)[:200], ["cannot read", "as an .npz file", "not a zip"], []),
    "zip-without-arrays": (_zip_without_arrays(), ["has no 'x_train' array"], []),
    "not-a-zip": (b"x_train,y_train\n1,2\n", ["cannot read", "as an .npz file"], ["pickle"]),
    "npy-named-npz": (_npy_bytes(), ["cannot read", "as an .npz file"], []),
    "empty-training-split": ({**BASE, "x_train": X[:0], "y_train": Y[:0]}, ["training split"], ["0..-1"]),
}
@pytest.fixture(scope="module")
def npz_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("npz_errors")
    files = {}
    for name, (content, _, _) in NPZ_CASES.items():
        path = root / f"{name}.npz"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.savez(path, **content)
        files[name] = path
    np.savez(root / "good.npz", **BASE)
    files["good"] = root / "good.npz"
    return files


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("name", list(NPZ_CASES))
def test_bad_npz(npz_files, tmp_path, capsys, name):
    _, fragments, absent = NPZ_CASES[name]
    out_dir = tmp_path / "out"
    code, _, err = run_script("train", ["--data_path", npz_files[name]], out_dir, capsys)
    assert_one_line_error(code, err, *fragments, absent=absent)
    assert not out_dir.exists()


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("name", list(NPZ_CASES))
def test_bad_npz_message_names_the_file(npz_files, tmp_path, capsys, name):
    code, _, err = run_script("search", ["--data_path", npz_files[name]], tmp_path / "out", capsys)
    assert_one_line_error(code, err, f"{name}.npz")


@pytest.mark.usefixtures("no_run")
def test_bad_label_value_shown_plainly(npz_files, tmp_path, capsys):
    code, _, err = run_script("train", ["--data_path", npz_files["fractional-labels"]], tmp_path / "out", capsys)
    assert_one_line_error(code, err, "such as 0.5", absent=["np.float64"])


# ------------------------------------------------------------------------------------------------
# Flags
# ------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("mode", ["train", "search"])
@pytest.mark.parametrize("data,flags,fragments", [
    pytest.param("good", ["--num_valid", "5000"], ["num_valid=5000 is invalid", "folder training set has 40 examples",
                                                  "from 0 to 39"], id="num_valid-5000-folder"),
    pytest.param("npz", ["--num_valid", "5000"], ["num_valid=5000 is invalid", "npz training set has 40 examples"],
                 id="num_valid-5000-npz"),
    pytest.param("good", ["--num_valid", "40"], ["num_valid=40 is invalid"], id="num_valid-all"),
    pytest.param("good", ["--num_valid", "1.5"], ["--num_valid must be a count or a fraction below 1", "1.5"],
                 id="num_valid-1.5"),
    pytest.param("good", ["--num_valid", "-1"], ["--num_valid must be >= 0"], id="num_valid-negative"),
    pytest.param("good", ["--image_size", "abc"], ["bad --image_size 'abc'", "e.g. 96,96"], id="image_size-abc"),
    pytest.param("good", ["--image_size", "0,5"], ["bad --image_size '0,5'"], id="image_size-0,5"),
    pytest.param("good", ["--image_size", "3"], ["bad --image_size '3'"], id="image_size-3"),
    pytest.param("good", ["--color_mode", "cmyk"], ["unknown --color_mode 'cmyk'", "grayscale, rgb, rgba"],
                 id="color_mode-cmyk"),
    pytest.param("npz", ["--color_mode", "rgba"], ["cannot convert 3-channel images to --color_mode rgba"],
                 id="color_mode-rgba-on-rgb-npz"),
    pytest.param("good", ["--dataset", "imagenet"], ["unknown --dataset 'imagenet'", "auto, mnist, cifar10, npz"],
                 id="dataset-imagenet"),
    pytest.param("good", ["--dataset", "arrays"], ["unknown --dataset 'arrays'"], id="dataset-arrays"),
    pytest.param("good", ["--child_stem_stride", "3"], ["--child_stem_stride must be 0 (auto) or one of 1, 2, 4, 8",
                                                        "got 3"], id="stem_stride-3"),
])
def test_bad_flag(own, npz_files, tmp_path, capsys, mode, data, flags, fragments):
    path = npz_files["good"] if data == "npz" else own[data]
    out_dir = tmp_path / "out"
    code, _, err = run_script(mode, ["--data_path", path] + flags, out_dir, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not out_dir.exists()


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("mode,data,flags,fragments", [
    ("train", "tiny", [], ["3x3 images are too small for this network", "stem (stride 1)", "divide them by 4"]),
    ("search", "tiny", [], ["3x3 images are too small for this network", "divide them by 4"]),
    ("train", "good", ["--image_size", "3,3"], ["3x3 images are too small"]),
    ("train", "good", ["--child_stem_stride", "8"], ["20x20 images are too small", "stem (stride 8)",
                                                     "divide them by 32", "--child_stem_stride 1"]),
])
def test_images_too_small(own, tmp_path, capsys, mode, data, flags, fragments):
    out_dir = tmp_path / "out"
    code, _, err = run_script(mode, ["--data_path", own[data]] + flags, out_dir, capsys)
    assert_one_line_error(code, err, *fragments)
    assert not out_dir.exists()


@pytest.mark.usefixtures("no_run")
def test_images_too_small_advice_is_actionable(own, tmp_path, capsys):
    code, _, err = run_script("train", ["--data_path", own["tiny"]], tmp_path / "out", capsys)
    assert_one_line_error(code, err, "too small", "--image_size", absent=["--child_stem_stride 1"])


# ------------------------------------------------------------------------------------------------
# A run folder (checkpoint) of other data, export with other data, --from_config of the other mode
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(own, tmp_path_factory):
    """A train_arc.py run folder: 1 epoch on folder A (20x20 RGB, 3 classes)."""
    out_dir = tmp_path_factory.mktemp("trained") / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = script.main(train_arc.CONFIG, dataset=None, mode="train", argv=[
            "prog", "--data_path", str(own["good"]), "--output_dir", str(out_dir), "-fixed_arc", ARC,
            "--child_use_aux_heads=false"] + TINY)
    assert code == 0, err.getvalue()
    assert (out_dir / "checkpoint").exists() and (out_dir / "config.json").exists()
    return out_dir


@pytest.mark.parametrize("data,flags,fragments", [
    pytest.param("other_shape", [], ["holds a run with a different image_shape", "[20, 20, 3]", "now [24, 24, 3]"],
                 id="other-shape"),
    pytest.param("other_classes", [], ["holds a run with a different num_classes", "(3, now 2)"],
                 id="other-class-count"),
    pytest.param("gray", [], ["different image_shape", "now [20, 20, 1]"], id="grayscale"),
    pytest.param("good", ["--image_size", "24,24"], ["different image_shape", "now [24, 24, 3]"],
                 id="same-data-resized"),
])
def test_run_folder_of_other_data_is_refused_and_kept(trained, own, capsys, data, flags, fragments):
    before = snapshot(trained)
    code, out, err = run_script("train", ["--data_path", own[data], "--child_use_aux_heads=false"] + flags,
                                trained, capsys)
    assert_one_line_error(code, err, repr(str(trained)), *fragments, "--reset_output_dir")
    assert snapshot(trained) == before


@pytest.mark.parametrize("data,flags,fragments", [
    pytest.param("other_shape", [], ["24x24x3 images, 3 classes", "(20x20x3, 3 classes)"], id="other-shape"),
    pytest.param("other_classes", ["--int8", "--tflite_io", "uint8"], ["20x20x3 images, 2 classes",
                                                                        "(20x20x3, 3 classes)"],
                 id="other-class-count-int8"),
])
def test_export_with_other_data_is_refused(trained, own, tmp_path, capsys, data, flags, fragments):
    before = snapshot(trained)
    tflite = tmp_path / "model.tflite"
    code = run_command(export_arc.CONFIG, ["export_arc.py", "--output_dir", str(trained), "--packed", "",
                                           "--tflite", str(tflite), "--data_path", str(own[data])] + flags,
                       export_arc.main)
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, "is not what the run was trained on", repr(str(own[data])), *fragments,
                          "pass the run's --data_path")
    assert not tflite.exists() and list(tmp_path.iterdir()) == []
    assert snapshot(trained) == before


@pytest.fixture(scope="module")
def search_record(own, tmp_path_factory):
    """The config.json a search_arc.py run on folder A writes (as it writes it: run_dir.prepare)."""
    from enas.config.run_config import RunConfig
    from enas.data.sources import load_source
    from enas.run import run_dir

    folder = tmp_path_factory.mktemp("search_record") / "search"
    config = RunConfig.from_settings({"data_path": str(own["good"]), "output_dir": str(folder), "num_valid": 0.1,
                                      "child_num_layers": 0, "child_num_cells": 2, "child_out_filters": 8},
                                     "search", "folder")
    config = config.with_data(load_source("folder", str(own["good"]), num_valid=0.1))
    with run_dir.prepare(str(folder), config):
        pass
    return folder / "config.json"


@pytest.mark.usefixtures("no_run")
@pytest.mark.parametrize("mode,record,fragments", [
    ("train", "search", ["is a search run on folder", "this script runs train"]),
    ("search", "train", ["is a train run on folder", "this script runs search"]),
])
def test_from_config_of_the_other_mode(trained, search_record, tmp_path, capsys, mode, record, fragments):
    path = search_record if record == "search" else trained / "config.json"
    out_dir = tmp_path / "out"
    code = script.main(MODULES[mode].CONFIG, dataset=None, mode=mode,
                       argv=["prog", "--from_config", str(path), "--output_dir", str(out_dir)])
    _, err = capsys.readouterr()
    assert_one_line_error(code, err, f"--from_config {str(path)!r}", *fragments)
    assert not out_dir.exists()
