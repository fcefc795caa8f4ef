"""Data sources (enas.data.sources, enas.data.image_folder, enas.data.formats) on tiny files: image
folders streamed from disk, .npz files, arrays and tf.data datasets from Python, source detection,
the stem stride that follows the image size, and a training run on arrays through the Python API."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from enas.config.child_config import auto_stem_stride
from enas.data import sources
from enas.data.data_utils import split_arrays, split_dataset
from enas.data.formats import detect_source
from enas.errors import DataError
from tests.conftest import TINY, TINY_ARC
from tests.fixtures_data import (
    pattern_images,
    write_cifar_batches,
    write_image_folder,
    write_mnist_idx,
    write_mnist_npz,
)


# ------------------------------------------------------------------------------------ helpers


def write_classes(root, counts, size=(8, 6), channels=3, fmt="png", seed=0):
    """One folder per class, ``counts`` = ``{class name: number of images}`` (in that creation
    order, deliberately not sorted); returns ``{class name: uint8 images (n, H, W, C)}``."""
    rng = np.random.default_rng(seed)
    written = {}
    for name, n in counts.items():
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        images = rng.integers(0, 256, size=(n,) + tuple(size) + (channels,), dtype=np.uint8)
        for i, image in enumerate(images):
            Image.fromarray(image[..., 0] if channels == 1 else image).save(folder / f"{i:03d}.{fmt}")
        written[name] = images
    return written


def pillow(files, mode, size=None):
    """The files as Pillow reads them: uint8 (N, H, W, C) in ``mode`` ("L" or "RGB"), resized
    (bilinear) to ``size`` (W, H) when given."""
    out = []
    for path in files:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size is not None:
                image = image.resize(size, Image.BILINEAR)
            array = np.asarray(image, np.uint8)
        out.append(array[..., None] if array.ndim == 2 else array)
    return np.stack(out)


def file_order(x, y, num_classes):
    """write_image_folder's arrays in the order the folder lists them (class by class, file
    names in writing order within a class)."""
    order = np.concatenate([np.flatnonzero(y == c) for c in range(num_classes)])
    return x[order], y[order]


def batches(ds):
    return list(ds.as_numpy_iterator())


# ------------------------------------------------------------------------------------ image folders


@pytest.mark.parametrize("num_valid", [7, 0.2])
def test_folder_of_class_folders_draws_validation_per_class(tmp_path, num_valid):
    """One folder of class folders: class names are the sorted folder names, every file's label
    is its folder's, validation (a count or a fraction) keeps the class proportions, the split is
    the same on every load, and there is no test split."""
    write_classes(tmp_path, {"zebra": 20, "apple": 10, "mango": 5})
    d = sources.load_source("folder", tmp_path, num_valid=num_valid)
    assert d.name == "folder" and d.class_names == ("apple", "mango", "zebra") and d.num_classes == 3
    assert d.image_shape == (8, 6, 3) and d.pixels == "uint8" and not d.resize
    assert not d.train.in_memory and (len(d.train), len(d.valid), len(d.test)) == (28, 7, 0)
    for split in (d.train, d.valid):
        for path, label in zip(split.files, split.labels):
            assert Path(path).parent.name == d.class_names[label]
    assert np.bincount(d.valid.labels, minlength=3).tolist() == [2, 1, 4]  # 20 % of 10, 5, 20
    assert np.bincount(d.train.labels, minlength=3).tolist() == [8, 4, 16]
    every = sorted(str(p) for p in tmp_path.rglob("*.png"))
    assert sorted(d.train.files.tolist() + d.valid.files.tolist()) == every  # disjoint, nothing lost
    again = sources.load_source("auto", tmp_path, num_valid=num_valid)
    assert again.valid.files.tolist() == d.valid.files.tolist()  # a fixed permutation
    assert again.name == "folder"


@pytest.mark.parametrize("valid_name", ["valid", "validation"])
def test_train_valid_test_folders(tmp_path, valid_name):
    """train/ + valid/ + test/: each split is its folder's (num_valid is ignored), in file order,
    with the pixels that were written."""
    written = write_image_folder(tmp_path, {"train": 24, valid_name: 9, "test": 12}, num_classes=3, size=(10, 8))
    d = sources.load_source("folder", tmp_path, num_valid=5)
    assert (len(d.train), len(d.valid), len(d.test)) == (24, 9, 12)
    assert d.class_names == ("class_0", "class_1", "class_2")
    for split, name in (("train", "train"), ("valid", valid_name), ("test", "test")):
        x, y = file_order(*written[name], 3)
        got_x, got_y = split_arrays(d, split)
        np.testing.assert_array_equal(got_y, y)
        np.testing.assert_array_equal(got_x, x)
    assert "train/, valid/, test/" in d.description


def test_test_folder_with_a_class_training_lacks_is_refused(tmp_path):
    write_image_folder(tmp_path, {"train": 12, "test": 6}, num_classes=2, size=(6, 6))
    write_classes(tmp_path / "test", {"extra": 2}, size=(6, 6))
    with pytest.raises(DataError, match="'extra'"):
        sources.load_source("folder", tmp_path)


def test_grayscale_png_pixels_and_statistics_are_exact(tmp_path):
    """Grayscale PNGs are detected (1 channel); the decoded pixels are exactly the written bytes
    and what Pillow reads, and mean/std are numpy's on the training images."""
    written = write_classes(tmp_path, {"a": 9, "b": 7}, size=(7, 5), channels=1)
    d = sources.load_source("folder", tmp_path, num_valid=4)
    assert d.image_shape == (7, 5, 1)
    x, y = split_arrays(d, "train")
    assert x.dtype == np.uint8 and x.shape == (12, 7, 5, 1)
    np.testing.assert_array_equal(x, pillow(d.train.files, "L"))
    every = np.concatenate([written["a"], written["b"]])
    names = sorted(str(p) for p in tmp_path.rglob("*.png"))
    chosen = np.isin(names, d.train.files)
    np.testing.assert_array_equal(x, every[chosen])
    np.testing.assert_allclose(d.raw_mean, x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, x.std(axis=(0, 1, 2)), rtol=1e-5)
    assert d.mean.dtype == d.std.dtype == np.float32

    rgb = sources.load_source("folder", tmp_path, num_valid=4, color_mode="rgb")
    assert rgb.image_shape == (7, 5, 3)
    x3, _ = split_arrays(rgb, "train")
    np.testing.assert_array_equal(x3, np.repeat(x, 3, axis=-1))  # gray copied to R, G and B
    np.testing.assert_allclose(rgb.raw_mean, np.repeat(d.raw_mean, 3), rtol=1e-5)


def test_rgb_png_auto_and_as_grayscale(tmp_path):
    """RGB PNGs keep 3 channels (auto); color_mode="grayscale" gives Pillow's "L" conversion."""
    write_classes(tmp_path, {"a": 6, "b": 6}, size=(6, 9), channels=3)
    d = sources.load_source("folder", tmp_path, num_valid=2)
    assert d.image_shape == (6, 9, 3)
    x, _ = split_arrays(d, "train")
    np.testing.assert_array_equal(x, pillow(d.train.files, "RGB"))
    np.testing.assert_allclose(d.raw_mean, x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, x.std(axis=(0, 1, 2)), rtol=1e-5)

    gray = sources.load_source("folder", tmp_path, num_valid=2, color_mode="grayscale")
    assert gray.image_shape == (6, 9, 1)
    xg, _ = split_arrays(gray, "train")
    np.testing.assert_array_equal(xg, pillow(gray.train.files, "L"))
    np.testing.assert_allclose(gray.raw_mean, xg.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_image_size_resizes_and_accepts_mixed_sizes(tmp_path):
    """image_size resizes every image (bilinear, as Pillow up to rounding); images of different
    sizes are refused without it (one line) and accepted with it."""
    write_classes(tmp_path / "same", {"a": 6, "b": 6}, size=(12, 9))
    d = sources.load_source("folder", tmp_path / "same", num_valid=2, image_size=(7, 5))
    assert d.image_shape == (7, 5, 3) and d.resize
    x, _ = split_arrays(d, "train")
    assert x.shape == (10, 7, 5, 3) and x.dtype == np.uint8
    expected = pillow(d.train.files, "RGB", size=(5, 7))
    assert np.abs(x.astype(int) - expected).max() <= 2
    np.testing.assert_allclose(d.raw_mean, expected.mean(axis=(0, 1, 2)), rtol=1e-5)  # measured with Pillow
    np.testing.assert_allclose(d.raw_mean, x.mean(axis=(0, 1, 2)), atol=1.0)
    batch = next(iter(split_dataset(d, "train", 4, training=True, seed=0)))
    assert tuple(batch[0].shape) == (4, 7, 5, 3)

    mixed = tmp_path / "mixed"
    write_classes(mixed, {"a": 4}, size=(10, 8), seed=1)
    write_classes(mixed, {"b": 4}, size=(14, 11), seed=2)
    with pytest.raises(DataError, match="differ in size") as e:
        sources.load_source("folder", mixed, num_valid=2)
    assert "--image_size" in str(e.value) and "\n" not in str(e.value)
    d = sources.load_source("folder", mixed, num_valid=2, image_size=(8, 8))
    x, y = split_arrays(d, "train")
    assert d.image_shape == (8, 8, 3) and x.shape == (6, 8, 8, 3) and sorted(set(y.tolist())) == [0, 1]


@pytest.mark.parametrize("fmt", ["jpg", "bmp", "gif"])
def test_jpeg_bmp_gif_files_are_read(tmp_path, fmt):
    """JPEG, BMP and GIF files decode as Pillow reads them (JPEG up to decoder rounding)."""
    write_image_folder(tmp_path, {"": 12}, num_classes=2, size=(10, 8), channels=3, fmt=fmt)
    d = sources.load_source("folder", tmp_path, num_valid=2)
    assert d.image_shape == (10, 8, 3) and (len(d.train), len(d.valid)) == (10, 2)
    assert all(f.endswith(f".{fmt}") for f in d.train.files)
    x, _ = split_arrays(d, "train")
    expected = pillow(d.train.files, "RGB")
    tolerance = 8 if fmt == "jpg" else 0
    assert np.abs(x.astype(int) - expected).max() <= tolerance
    np.testing.assert_allclose(d.raw_mean, expected.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_non_square_images(tmp_path):
    """49x10 (HxW) images keep their orientation through listing, decoding and batching."""
    written = write_image_folder(tmp_path, {"": 10}, num_classes=2, size=(49, 10), channels=1)
    d = sources.load_source("folder", tmp_path, num_valid=0)
    assert d.image_shape == (49, 10, 1) and len(d.valid) == 0
    x, y = split_arrays(d, "train")
    ex, ey = file_order(*written[""], 2)
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    images, labels = next(iter(split_dataset(d, "train", 5, training=False)))
    assert tuple(images.shape) == (5, 49, 10, 1) and images.dtype.name == "float32"
    np.testing.assert_array_equal(images.numpy(), ex[:5].astype(np.float32))
    assert auto_stem_stride(d.image_shape) == 1


def test_folder_errors_are_one_line(tmp_path):
    write_classes(tmp_path / "one", {"only": 3})
    (tmp_path / "empty" / "a").mkdir(parents=True)
    write_classes(tmp_path / "empty", {"b": 3})
    write_classes(tmp_path / "bad", {"a": 3, "b": 3})
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"not a png")
    for folder, text in (("one", "at least two"), ("empty", "has no images"), ("bad", "broken.png")):
        with pytest.raises(DataError, match=text) as e:
            sources.load_source("folder", tmp_path / folder, num_valid=1)
        assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------ files vs memory


@pytest.mark.parametrize("cache", ["", "memory"])
def test_streamed_split_gives_the_same_batches_as_arrays(tmp_path, cache):
    """A folder streamed through tf.data and the same images in memory (from_arrays) yield the
    same training batches for the same seed (split_dataset's promise), epoch after epoch,
    augmented or not; an epoch is a reshuffle of the training images; evaluation keeps the file
    order."""
    write_image_folder(tmp_path, {"": 40}, num_classes=3, size=(12, 9), channels=3)
    files = sources.load_source("folder", tmp_path, num_valid=0.25)
    arrays = {split: split_arrays(files, split) for split in ("train", "valid", "test")}
    memory = sources.from_arrays(*arrays["train"], *arrays["test"], *arrays["valid"],
                                 class_names=files.class_names)
    assert memory.train.in_memory and not files.train.in_memory
    assert (len(memory.train), len(memory.valid), len(memory.test)) == (30, 10, 0)
    np.testing.assert_allclose(memory.mean, files.mean, rtol=1e-6)
    np.testing.assert_allclose(memory.std, files.std, rtol=1e-6)
    for kw in (dict(), dict(augment=True, cutout_size=4)):
        streamed = split_dataset(files, "train", 8, training=True, seed=3, cache=cache, **kw)
        held = split_dataset(memory, "train", 8, training=True, seed=3, **kw)
        epochs = []
        for _ in range(2):
            a, b = batches(streamed), batches(held)
            assert len(a) == len(b) == 3  # 30 training images, drop_remainder
            for (xa, ya), (xb, yb) in zip(a, b):
                assert xa.shape == xb.shape == (8, 12, 9, 3) and xa.dtype == xb.dtype == np.float32
                np.testing.assert_array_equal(ya, yb)
                if kw:  # padding and cutout take the training mean: measured two ways, equal to float rounding
                    np.testing.assert_allclose(xa, xb, rtol=0, atol=1e-4)
                else:
                    np.testing.assert_array_equal(xa, xb)
            epochs.append(np.concatenate([x for x, _ in a]))
        assert not np.array_equal(*epochs)  # reshuffled (and re-augmented) every epoch
    # unaugmented, one epoch holds every training image once, in a shuffled order
    (epoch, labels), = batches(split_dataset(files, "train", 30, training=True, seed=3, cache=cache))
    sums = np.sort(epoch.sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(sums, np.sort(arrays["train"][0].astype(np.float64).sum(axis=(1, 2, 3))))
    assert sorted(labels.tolist()) == sorted(arrays["train"][1].tolist())
    assert not np.array_equal(labels, arrays["train"][1])
    xs = np.concatenate([x for x, _ in batches(split_dataset(files, "valid", 4))])
    np.testing.assert_array_equal(xs, arrays["valid"][0].astype(np.float32))


# ------------------------------------------------------------------------------------ .npz


def test_npz_grayscale_uint8_with_stratified_validation(tmp_path):
    """(N, H, W) uint8 images become (N, H, W, 1), raw; validation is drawn per class; mean/std
    are the training split's."""
    x, y = pattern_images(40, 4, 9, 7, 1, seed=1)
    x_te, y_te = pattern_images(8, 4, 9, 7, 1, seed=2)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x[..., 0], y_train=y, x_test=x_te[..., 0], y_test=y_te)
    d = sources.load_source("auto", path, num_valid=8)
    assert d.name == "npz" and d.image_shape == (9, 7, 1) and d.pixels == "uint8" and d.num_classes == 4
    assert d.x_train.dtype == np.uint8 and (len(d.train), len(d.valid), len(d.test)) == (32, 8, 8)
    assert np.bincount(d.y_valid, minlength=4).tolist() == [2, 2, 2, 2]  # 10 images per class
    np.testing.assert_array_equal(d.x_test, x_te)
    np.testing.assert_array_equal(d.y_test, y_te)
    held_out = np.concatenate([d.x_train, d.x_valid])
    assert sorted(held_out.reshape(40, -1).sum(axis=1).tolist()) == sorted(x.reshape(40, -1).sum(axis=1).tolist())
    np.testing.assert_allclose(d.raw_mean, d.x_train.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, d.x_train.std(axis=(0, 1, 2)), rtol=1e-5)
    assert d.class_names == ("0", "1", "2", "3")


def test_npz_float_images_given_validation_class_names_and_limits(tmp_path):
    """(N, H, W, C) float32 values are kept as they are (pixels "float32"); x_valid/y_valid are the
    validation split as given; class_names names the classes; max_train/max_test keep the first."""
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=(30, 6, 5, 2)).astype(np.float32)
    y = np.arange(30) % 3
    x_va = rng.normal(size=(4, 6, 5, 2)).astype(np.float32)
    y_va = np.array([0, 1, 2, 0])
    x_te = rng.normal(size=(10, 6, 5, 2)).astype(np.float32)
    y_te = np.arange(10) % 3
    path = tmp_path / "f.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x_te, y_test=y_te, x_valid=x_va, y_valid=y_va,
             class_names=np.array(["cat", "dog", "owl"]))
    d = sources.load_npz(path, num_valid=0.5, max_train=20, max_test=6)
    assert d.pixels == "float32" and d.image_shape == (6, 5, 2) and d.class_names == ("cat", "dog", "owl")
    assert d.num_classes == 3
    np.testing.assert_array_equal(d.x_train, x[:20])  # the first 20, none taken for validation
    np.testing.assert_array_equal(d.y_train, y[:20])
    np.testing.assert_array_equal(d.x_valid, x_va)
    np.testing.assert_array_equal(d.y_valid, y_va)
    np.testing.assert_array_equal(d.x_test, x_te[:6])
    np.testing.assert_allclose(d.raw_mean, x[:20].mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(d.raw_std, x[:20].std(axis=(0, 1, 2)), rtol=1e-5)
    assert abs(d.raw_mean[0] - 5.0) < 1.0  # the float values' own units, not rescaled


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((4, 3, 3), np.uint8), y_train=np.arange(4) % 2)
    with pytest.raises(DataError, match="x_test"):
        sources.load_source("npz", tmp_path / "partial.npz")
    with pytest.raises(DataError, match="pass the file itself"):
        sources.load_source("auto", tmp_path)


# ------------------------------------------------------------------------------------ Python sources


def test_from_arrays():
    x, y = pattern_images(50, 5, 8, 8, 3)
    d = sources.from_arrays(x, y, num_valid=10, class_names=list("abcde"))
    assert d.name == "arrays" and d.num_classes == 5 and d.class_names == tuple("abcde")
    assert (len(d.train), len(d.valid), len(d.test)) == (40, 10, 0) and d.x_test.shape == (0, 8, 8, 3)
    assert np.bincount(d.y_valid).tolist() == [2] * 5  # per class
    assert d.x_train.dtype == np.uint8 and d.image_shape == (8, 8, 3)
    np.testing.assert_allclose(d.raw_mean, d.x_train.mean(axis=(0, 1, 2)), rtol=1e-5)
    gray = sources.from_arrays(x[..., 0], y, x[:5, ..., 0], y[:5], num_valid=0, image_size=(4, 4))
    assert gray.image_shape == (4, 4, 1) and gray.x_test.shape == (5, 4, 4, 1) and gray.x_train.dtype == np.uint8
    with pytest.raises(DataError, match="labels"):
        sources.from_arrays(x, y[:10])


@pytest.mark.parametrize("batched", [False, True])
def test_from_tf_dataset(batched):
    """tf.data datasets of (image, label), one example or one batch per element; Keras-style
    float32 pixels 0-255 become uint8, other floats stay float32."""
    import tensorflow as tf

    x, y = pattern_images(30, 3, 6, 6, 3, seed=4)
    x_te, y_te = pattern_images(9, 3, 6, 6, 3, seed=5)

    def dataset(images, labels):
        ds = tf.data.Dataset.from_tensor_slices((images.astype(np.float32), labels))
        return ds.batch(7) if batched else ds

    d = sources.from_tf_dataset(dataset(x, y), test=dataset(x_te, y_te), num_valid=6, class_names=("r", "g", "b"))
    assert d.pixels == "uint8" and d.x_train.dtype == np.uint8 and d.class_names == ("r", "g", "b")
    assert (len(d.train), len(d.valid), len(d.test)) == (24, 6, 9)
    np.testing.assert_array_equal(d.x_test, x_te)
    np.testing.assert_array_equal(d.y_test, y_te)
    together = np.concatenate([d.y_train, d.y_valid])
    assert sorted(together.tolist()) == sorted(y.tolist())

    floats = x.astype(np.float32) / 255.0
    f = sources.from_tf_dataset(tf.data.Dataset.from_tensor_slices((floats, y)).batch(4), num_valid=3)
    assert f.pixels == "float32" and f.x_train.dtype == np.float32 and f.x_train.max() <= 1.0
    assert len(f.test) == 0 and len(f.train) == 27


# ------------------------------------------------------------------------------------ detection


def test_detect_source(tmp_path):
    write_mnist_idx(tmp_path / "mnist", 6, 2)
    write_mnist_npz(tmp_path / "mnist_npz", 6, 2)
    write_cifar_batches(tmp_path / "cifar", 2)
    x, y = pattern_images(6, 2, 4, 4, 1)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    write_image_folder(tmp_path / "images", {"": 4}, num_classes=2, size=(4, 4))
    write_image_folder(tmp_path / "splits", {"train": 4, "test": 2}, num_classes=2, size=(4, 4))
    assert detect_source(tmp_path / "mnist") == "mnist"
    assert detect_source(tmp_path / "mnist_npz") == "mnist"
    assert detect_source(tmp_path / "cifar") == "cifar10"
    assert detect_source(tmp_path / "data.npz") == "npz"
    assert detect_source(tmp_path / "images") == "folder"
    assert detect_source(tmp_path / "splits") == "folder"
    assert sources.load_source("auto", tmp_path / "mnist", num_valid=2, download=False).name == "mnist"
    assert sources.load_source("auto", tmp_path / "cifar", num_valid=2, download=False).name == "cifar10"
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "nothing").mkdir()
    for path, text in (("notes.txt", "not an .npz"), ("missing", "does not exist"), ("nothing", "no data found")):
        with pytest.raises(DataError, match=text):
            detect_source(tmp_path / path)


# ------------------------------------------------------------------------------------ stem stride


@pytest.mark.parametrize("shape, stride", [((28, 28, 1), 1), ((32, 32, 3), 1), ((40, 30, 3), 1),
                                           ((64, 64, 3), 2), ((96, 96, 3), 4), ((224, 224, 3), 8),
                                           ((49, 10, 1), 1)])
def test_auto_stem_stride(shape, stride):
    assert auto_stem_stride(shape) == stride


def test_stem_brings_96x96_images_to_24x24_unless_overridden():
    """A MicroChild for 96x96x3 images strides its stem by 4 (24x24 cells); ChildConfig.stem_stride
    (--child_stem_stride) overrides the automatic stride."""
    from enas.child.micro_child import ChildConfig, MicroChild

    arc = "0 1 1 0 0 1 1 2 0 0 1 1 1 3 1 0"
    images = np.random.default_rng(0).integers(0, 256, size=(2, 96, 96, 3)).astype(np.uint8)

    def stem_output(config):
        model = MicroChild(config, fixed_arc=arc).build_for((96, 96, 3))
        x = model.stem(model.input_norm(images))
        logits = model(images, training=False)
        assert tuple(logits.shape) == (2, config.num_classes)
        return model.stem_stride, tuple(x.shape[1:3])

    base = ChildConfig(num_layers=0, num_nodes=2, out_filters=4)
    assert stem_output(base) == (4, (24, 24))
    recorded = base.for_data((96, 96, 3), 5, [120.0, 110.0, 100.0], [60.0, 60.0, 60.0])
    assert recorded.stride_for() == 4 and stem_output(recorded) == (4, (24, 24))
    for stride, side in ((1, 96), (2, 48), (8, 12)):
        override = ChildConfig(num_layers=0, num_nodes=2, out_filters=4, stem_stride=stride)
        assert stem_output(override) == (stride, (side, side))


# ------------------------------------------------------------------------------------ Python API


def test_train_fixed_on_arrays_records_the_data(tmp_path):
    """enas.run.train_fixed.run(config, data=sources.from_arrays(...)) trains one epoch on the
    arrays and records the dataset "arrays", the image shape, class count and statistics."""
    from enas.config.run_config import RunConfig
    from enas.run import train_fixed

    x, y = pattern_images(160, 4, 16, 12, 3, seed=7)
    x_te, y_te = pattern_images(40, 4, 16, 12, 3, seed=8)
    data = sources.from_arrays(x, y, x_te, y_te, num_valid=32, class_names=("n", "e", "s", "w"))
    settings = {**TINY, "num_epochs": 1, "child_fixed_arc": TINY_ARC, "output_dir": str(tmp_path / "run")}
    config = RunConfig.from_settings(settings, "train", "arrays")
    lines = []
    result = train_fixed.run(config, data=data, log=lines.append)
    assert result["epochs"] == 1 and result["arc"] is not None
    assert "Epoch 1: Eval" in lines
    assert any("arrays (128 train, 32 valid, 40 test); 16x12x3 images, 4 classes" in line for line in lines), lines[:12]
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["dataset"] == "arrays" and record["config"]["dataset"] == "arrays"
    child = record["config"]["child"]
    assert child["image_shape"] == [16, 12, 3] and child["num_classes"] == 4
    np.testing.assert_allclose(child["input_mean"], data.mean, rtol=1e-6)
    np.testing.assert_allclose(child["input_std"], data.std, rtol=1e-6)
    assert result["model"].config.input_mean == tuple(float(v) for v in data.mean)
    logits = result["model"](x_te[:3], training=False)  # raw uint8 images in
    assert tuple(logits.shape) == (3, 4)
