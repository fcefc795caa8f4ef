"""Dataset loading (MNIST here, CIFAR-10 in :mod:`enas.data.data_utils_cifar`) and the tf.data pipeline.

Conventions shared by every loader:

* ``read_*`` functions return the official splits as raw ``uint8`` arrays in the official order.
* ``load_*`` functions return a :class:`DataSplits`: raw images (``uint8`` NHWC), labels ``int32``.
  The validation split is the LAST ``num_valid`` examples of the official training set (as ENAS
  does); ``num_valid=0`` gives an empty validation split (final training on all training data).
  ``max_train`` / ``max_test`` keep only the FIRST N examples of the official train / test sets;
  ``max_train`` applies BEFORE the validation split is carved, so validation still comes from the
  end of the (shortened) training set.
* Normalisation: the per-channel mean/std of the TRAINING split only (the original code
  normalised each split by its own statistics, leaking test statistics and shifting the splits
  against each other), applied by the network's first layer, so the pipeline feeds raw values
  and exported models take raw pixels.

Other sources (image folders, ``.npz`` files, arrays): :mod:`enas.data.sources`.

Every user-fixable problem raises :class:`enas.errors.DataError` with a one-line message.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import tensorflow as tf

from enas.data.data_common import (  # noqa: F401  (re-exported: the loaders' shared record and helpers)
    DataSplits,
    _is_int,
    limit_examples,
    short_reason,
    make_splits,
    try_download,
)
from enas.data.data_utils_cifar import load_cifar10
from enas.errors import DataError

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_NPZ = "mnist.npz"
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

def _find_idx(root: Path, base: str) -> Path | None:
    """``root/base.gz`` (preferred, the official distribution) or ``root/base``, if present."""
    for candidate in (root / f"{base}.gz", root / base):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (gzip or not) of unsigned bytes; returns uint8 with the header's shape."""
    fix = "re-download it or pass --data_path"
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"'{path}' is truncated or corrupt ({short_reason(exc)}); {fix}.") from exc
    if len(raw) < 4:
        raise DataError(f"'{path}' is truncated or corrupt (only {len(raw)} bytes); {fix}.")
    (found,) = struct.unpack(">i", raw[:4])
    if found != magic:
        raise DataError(
            f"'{path}' has magic number {found}, expected {magic}: not an MNIST "
            f"{'image' if magic == IDX_IMAGES_MAGIC else 'label'} IDX file; {fix}."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"'{path}' is truncated or corrupt (header incomplete); {fix}.")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"'{path}' is truncated or corrupt: header says shape {dims} ({expected} bytes) but "
            f"it holds {len(raw) - header} data bytes; {fix}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _check_mnist(x: np.ndarray, y: np.ndarray, where: str) -> None:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{where}: images have shape {x.shape}, expected (N, 28, 28); re-download "
                        "MNIST or pass --data_path.")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels; re-download MNIST or "
                        "pass --data_path.")
    if y.size and int(y.max()) > 9:
        raise DataError(f"{where}: labels outside 0-9; re-download MNIST or pass --data_path.")


def _read_mnist_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except Exception as exc:  # noqa: BLE001 - zip, key and format errors alike
        raise DataError(
            f"'{path}' is not a readable MNIST npz with keys x_train, y_train, x_test, y_test "
            f"({short_reason(exc)}); delete it and re-download, or pass --data_path."
        ) from exc
    x_tr, y_tr, x_te, y_te = (a.astype(np.uint8, copy=False) for a in arrays)
    _check_mnist(x_tr, y_tr, f"'{path}' (train)")
    _check_mnist(x_te, y_te, f"'{path}' (test)")
    return (x_tr, y_tr), (x_te, y_te)


def read_mnist(data_path, download=True):
    """Read the official MNIST splits from ``data_path``.

    Looks for the four official IDX files (``*.gz`` or uncompressed), else Keras' ``mnist.npz``;
    if neither is there and ``download`` is true, downloads ``mnist.npz`` into ``data_path``.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x uint8 (60000, 28, 28) / (10000, 28, 28),
        y uint8 (60000,) / (10000,), in the official order.

    Raises:
        DataError: files missing (and download failed/disabled), truncated, corrupt or mismatched.
    """
    root = Path(data_path)
    found = {key: _find_idx(root, base) for key, base in MNIST_FILES.items()}
    if all(found.values()):
        x_tr = _read_idx(found["train_images"], IDX_IMAGES_MAGIC)
        y_tr = _read_idx(found["train_labels"], IDX_LABELS_MAGIC)
        x_te = _read_idx(found["test_images"], IDX_IMAGES_MAGIC)
        y_te = _read_idx(found["test_labels"], IDX_LABELS_MAGIC)
        _check_mnist(x_tr, y_tr, f"'{found['train_images'].name}' / '{found['train_labels'].name}'")
        _check_mnist(x_te, y_te, f"'{found['test_images'].name}' / '{found['test_labels'].name}'")
        return (x_tr, y_tr), (x_te, y_te)
    if (root / MNIST_NPZ).is_file():
        return _read_mnist_npz(root / MNIST_NPZ)
    if any(found.values()):
        missing = ", ".join(f"{MNIST_FILES[k]}(.gz)" for k, p in found.items() if p is None)
        raise DataError(f"MNIST incomplete in '{data_path}': missing {missing}. Put the files "
                        "there or pass --data_path.")

    def not_found(why: str) -> DataError:
        expected = ", ".join(f"{base}(.gz)" for base in MNIST_FILES.values())
        return DataError(f"MNIST not found in '{data_path}': expected {expected} or {MNIST_NPZ}; "
                         f"{why}. Put the files there or pass --data_path.")

    if not download:
        raise not_found("download disabled")
    path, reason = try_download(MNIST_NPZ, MNIST_URL, root, MNIST_NPZ_SHA256)
    if path is None:
        raise not_found(f"download failed (no network?): {reason}")
    return _read_mnist_npz(path)


def load_mnist(data_path, num_valid=5000, download=True, max_train=None, max_test=None):
    """MNIST as :class:`DataSplits` with raw uint8 images (N, 28, 28, 1).

    ``max_train`` / ``max_test`` keep the first N official train / test examples; ``max_train``
    applies before the last ``num_valid`` training examples are carved off as validation.
    """
    (x_tr, y_tr), (x_te, y_te) = read_mnist(data_path, download=download)
    x_tr, y_tr = limit_examples(x_tr, y_tr, max_train, "max_train")
    x_te, y_te = limit_examples(x_te, y_te, max_test, "max_test")
    return make_splits((x_tr[..., None], y_tr), (x_te[..., None], y_te), num_valid, "mnist", stratified=False,
                       num_classes=10, description=f"MNIST in {data_path}")


def load_dataset(name, data_path, num_valid=5000, **kw) -> DataSplits:
    """Dispatch on ``name`` ("mnist" or "cifar10"); ``kw`` goes to the loader (download, max_*)."""
    key = str(name).lower()
    if key == "mnist":
        return load_mnist(data_path, num_valid=num_valid, **kw)
    if key == "cifar10":
        return load_cifar10(data_path, num_valid=num_valid, **kw)
    raise DataError(f"unknown dataset '{name}': choose one of mnist, cifar10.")


# --------------------------------------------------------------------------------------------
# tf.data pipeline
# --------------------------------------------------------------------------------------------


def _augment_fn(shape, pad: int, cutout_size: int | None, fill=None):
    """Per-image ENAS-style augmentation driven by one random int64 ``key`` per element.

    Works on raw float32 images (H, W, C); padding and the cutout square take ``fill`` (C,), the
    training mean, so they read as 0 after the network's input normalisation (as ENAS pads its
    normalised images with zeros). All randomness comes from ``tf.random.stateless_*`` ops seeded
    with ``[key, k]``, so the result depends only on the key stream (see :func:`make_dataset`),
    not on thread scheduling.
    """
    h, w, c = shape
    fill = tf.zeros([c], tf.float32) if fill is None else tf.constant(np.asarray(fill, np.float32).reshape(c))

    def fn(xy, key):
        image, label = xy
        image = tf.cast(image, tf.float32) - fill  # 0 = the mean while padding and cutting out
        key = tf.cast(key, tf.int64)

        def seed(k):
            return tf.stack([key, tf.constant(k, tf.int64)])

        if pad:
            padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])  # zeros (= the mean)
            off = tf.random.stateless_uniform([2], seed(1), 0, 2 * pad + 1, dtype=tf.int32)
            image = tf.slice(padded, [off[0], off[1], 0], [h, w, c])
            flip = tf.random.stateless_uniform([], seed(2)) < 0.5
            image = tf.where(flip, tf.reverse(image, axis=[1]), image)
        if cutout_size:
            # As ENAS: a cutout_size square whose top-left corner is uniform over the image,
            # clipped at the bottom/right border, is set to the mean.
            r0 = tf.random.stateless_uniform([], seed(3), 0, h, dtype=tf.int32)
            c0 = tf.random.stateless_uniform([], seed(4), 0, w, dtype=tf.int32)
            rows, cols = tf.range(h), tf.range(w)
            in_r = (rows >= r0) & (rows < r0 + cutout_size)
            in_c = (cols >= c0) & (cols < c0 + cutout_size)
            mask = tf.logical_and(in_r[:, None], in_c[None, :])[:, :, None]
            image = tf.where(mask, tf.zeros_like(image), image)
        return tf.ensure_shape(image + fill, [h, w, c]), label

    return fn


def _check_batching(batch_size, cutout_size):
    if not _is_int(batch_size) or batch_size < 1:
        raise DataError(f"batch_size={batch_size!r} is invalid: pass a positive integer.")
    if cutout_size is not None and (not _is_int(cutout_size) or cutout_size < 0):
        raise DataError(f"cutout_size={cutout_size!r} is invalid: pass a positive integer or None.")


def _finish(ds, shape, batch_size, training, augment, cutout_size, seed, drop_remainder, fill):
    """Augment (training), batch, cast to float32 and prefetch an unbatched ``(image, label)``
    dataset whose order is already final."""
    if drop_remainder is None:
        drop_remainder = bool(training)
    if training and (augment or cutout_size):
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        fn = _augment_fn(shape, 4 if augment else 0, cutout_size or None, fill)
        ds = tf.data.Dataset.zip((ds, keys)).map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_dataset(x, y, batch_size, *, training, augment=False, cutout_size=None, seed=None,
                 drop_remainder=None, fill=None) -> tf.data.Dataset:
    """A batched tf.data pipeline over in-memory arrays.

    Args:
        x: raw images (N, H, W, C), uint8 or float; held as given (no float32 copy of a uint8
            array), cast to float32 batch by batch.
        y: integer (N,) labels.
        batch_size: examples per batch.
        training: True -> shuffle (buffer N, reshuffled every epoch) and optional augmentation;
            False -> original order, no augmentation.
        augment: (training only) ENAS-style: pad 4, random crop back to HxW, random horizontal
            flip. Meant for natural images (flipping digits is not label-preserving).
        cutout_size: (training only) if set, a random cutout_size x cutout_size square is set to
            ``fill``.
        seed: makes shuffling and augmentation deterministic: two pipelines built with the same
            seed yield the same batches, epoch after epoch. ``None`` -> nondeterministic.
        drop_remainder: drop the last partial batch; default True for training, False otherwise.
        fill: (C,) the value of padding and cutout (the training mean; default 0).

    Determinism: shuffling uses ``Dataset.shuffle(seed=seed)``; augmentation draws one int64 key
    per element from ``tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)``
    (zipped in after shuffling) and feeds it to stateless random ops, so the parallel map is
    reproducible and every epoch gets fresh augmentations.

    Returns:
        Dataset of ``(images float32 (B, H, W, C), labels int32 (B,))``, prefetched.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        x = x.astype(np.float32, copy=False)
    y = np.asarray(y).reshape(-1).astype(np.int32)
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"make_dataset: x must be (N, H, W, C) with len(y) == N, got {x.shape}, "
                         f"{y.shape}")
    _check_batching(batch_size, cutout_size)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(max(len(x), 1), seed=seed, reshuffle_each_iteration=True)
    return _finish(ds, x.shape[1:], batch_size, training, augment, cutout_size, seed, drop_remainder, fill)


def split_dataset(data: DataSplits, split, batch_size, *, training=False, augment=False, cutout_size=None,
                  seed=None, drop_remainder=None, cache="") -> tf.data.Dataset:
    """The batched pipeline of ``data``'s ``split`` ("train", "valid", "test"): :func:`make_dataset`
    for images in memory, decoded from files (:func:`enas.data.image_folder.file_dataset`, with
    ``cache``) otherwise; augmentation fills with the training mean. Same batches for the same
    seed either way."""
    part = data.split(split)
    if part.in_memory:
        return make_dataset(part.images, part.labels, batch_size, training=training, augment=augment,
                            cutout_size=cutout_size, seed=seed, drop_remainder=drop_remainder, fill=data.raw_mean)
    from enas.data.image_folder import file_dataset

    _check_batching(batch_size, cutout_size)
    ds = file_dataset(part, data.image_shape, data.resize, shuffle_seed=seed, training=training, cache=cache)
    return _finish(ds, data.image_shape, batch_size, training, augment, cutout_size, seed, drop_remainder,
                   data.raw_mean)


def split_arrays(data: DataSplits, split, limit=None):
    """``(images, labels)`` of the first ``limit`` examples of a split as arrays (decoded from
    files for a streamed split): for checks and calibration, not for training."""
    part = data.split(split)
    count = len(part) if limit is None else min(int(limit), len(part))
    if part.in_memory:
        return part.images[:count], part.labels[:count]
    images = [image for image, _ in split_dataset(data, split, 256).unbatch().take(count).as_numpy_iterator()]
    shape = (0,) + tuple(data.image_shape)
    x = np.stack(images).astype(np.uint8) if images else np.zeros(shape, np.uint8)
    return x, part.labels[:count]
