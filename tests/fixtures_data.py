"""Writers of tiny dataset files in the official formats, for tests.

Each writer creates ``dir`` if needed, writes random (seeded) images and labels, and returns what
it wrote as ``((x_train, y_train), (x_test, y_test))`` with uint8 arrays in the loaders' layout:
MNIST x (N, 28, 28), CIFAR-10 x NHWC (N, 32, 32, 3); labels uint8 (N,).
"""

from __future__ import annotations

import gzip as _gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _mnist_arrays(n_train: int, n_test: int, seed: int):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    y_tr = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    y_te = rng.integers(0, 10, size=n_test, dtype=np.uint8)
    return (x_tr, y_tr), (x_te, y_te)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding (unsigned bytes) of a uint8 array: magic 0x0000 08 <ndim>, dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">i", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.tobytes()


def write_mnist_idx(dir, n_train, n_test, gzip=True, seed=0):
    """Write the four MNIST IDX files (``*.gz`` if ``gzip``) into ``dir``; returns the arrays."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = _mnist_arrays(n_train, n_test, seed)
    arrays = {"train_images": x_tr, "train_labels": y_tr, "test_images": x_te, "test_labels": y_te}
    for key, arr in arrays.items():
        data = idx_bytes(arr)
        if gzip:
            (d / f"{MNIST_NAMES[key]}.gz").write_bytes(_gzip.compress(data))
        else:
            (d / MNIST_NAMES[key]).write_bytes(data)
    return (x_tr, y_tr), (x_te, y_te)


def write_mnist_npz(dir, n_train, n_test, seed=0):
    """Write Keras' ``mnist.npz`` (keys x_train, y_train, x_test, y_test) into ``dir``."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = _mnist_arrays(n_train, n_test, seed)
    np.savez(d / "mnist.npz", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    return (x_tr, y_tr), (x_te, y_te)


def _cifar_batches(n_per_batch: int, seed: int):
    """{file name: (x NHWC uint8, y uint8)} for data_batch_1..5 and test_batch."""
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {
        n: (
            rng.integers(0, 256, size=(n_per_batch, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, size=n_per_batch, dtype=np.uint8),
        )
        for n in names
    }


def cifar_batch_bytes(name: str, x: np.ndarray, y: np.ndarray) -> bytes:
    """A batch pickle as in cifar-10-batches-py: dict with bytes keys, data (N, 3072) row-major
    R, G, B planes of 32x32, labels a list of ints (protocol 2, as the Python 2 originals)."""
    data = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072), dtype=np.uint8)
    d = {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in y],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(x))],
    }
    return pickle.dumps(d, protocol=2)


def _stack(batches):
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return (
        (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
        batches["test_batch"],
    )


def write_cifar_batches(dir, n_per_batch, seed=0):
    """Write data_batch_1..5 and test_batch (``n_per_batch`` images each) into ``dir``.

    Returns ``((x_train (5n, 32, 32, 3), y_train), (x_test (n, 32, 32, 3), y_test))`` uint8.
    """
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    batches = _cifar_batches(n_per_batch, seed)
    for name, (x, y) in batches.items():
        (d / name).write_bytes(cifar_batch_bytes(name, x, y))
    return _stack(batches)


def write_cifar_tar_gz(dir, n_per_batch, seed=0):
    """Write ``cifar-10-python.tar.gz`` (members under ``cifar-10-batches-py/``) into ``dir``."""
    d = Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    batches = _cifar_batches(n_per_batch, seed)
    with tarfile.open(d / "cifar-10-python.tar.gz", "w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, (x, y) in batches.items():
            data = cifar_batch_bytes(name, x, y)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return _stack(batches)


def pattern_images(n, num_classes, height, width, channels, seed=0):
    """``(x uint8 (n, H, W, C), y int (n,))``: learnable images: class ``c`` has a bright bar in
    the ``c``-th of ``num_classes`` horizontal bands (and a class-tinted channel), over noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = rng.integers(0, 90, size=(n, height, width, channels)).astype(np.int32)
    band = max(height // num_classes, 1)
    for i, c in enumerate(y):
        x[i, c * band:(c + 1) * band, :, :] += 120
        x[i, :, :, c % channels] += 30
    return np.clip(x, 0, 255).astype(np.uint8), y


def write_image_folder(root, counts, num_classes=3, size=(30, 40), channels=3, fmt="png", seed=0,
                       class_names=None):
    """Write a folder of images, one sub-folder per class. ``counts``: ``{"": n}`` for one folder
    of class folders, or ``{"train": n, "test": m, ...}`` for split folders. Returns ``{split:
    (x, y)}`` of what was written (in file-name order within each class)."""
    from PIL import Image

    root = Path(root)
    names = class_names or [f"class_{c}" for c in range(num_classes)]
    written = {}
    for k, (split, n) in enumerate(counts.items()):
        x, y = pattern_images(n, num_classes, size[0], size[1], channels, seed=seed + k)
        folder = root / split if split else root
        for c in range(num_classes):
            (folder / names[c]).mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(x, y)):
            mode = "L" if channels == 1 else "RGB"
            Image.fromarray(image[..., 0] if channels == 1 else image, mode).save(
                folder / names[label] / f"img_{i:05d}.{fmt}")
        written[split] = (x, y)
    return written
