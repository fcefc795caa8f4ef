"""Which kind of data a ``--data_path`` holds (:func:`detect_source`), and the settings every
source shares (``--image_size``, ``--color_mode``). No TensorFlow: the scripts resolve ``--dataset auto``
before it loads.

Kinds: ``mnist`` (the four IDX files, or Keras' ``mnist.npz``), ``cifar10`` (the
``cifar-10-batches-py`` pickles or their archive), ``npz`` (any ``.npz`` file with
``x_train, y_train, x_test, y_test``), ``folder`` (one sub-folder of images per class, optionally
under ``train/``, ``test/`` and ``valid/``), and ``arrays`` (arrays or a ``tf.data.Dataset``
handed to the library from Python, never detected).
"""

from __future__ import annotations

from pathlib import Path

from enas.config.run_config import COLOR_MODES, parse_image_size  # noqa: F401  (re-exported)
from enas.errors import DataError

SOURCES = ("mnist", "cifar10", "npz", "folder", "arrays")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
SPLIT_FOLDERS = {"train": ("train",), "valid": ("valid", "validation", "val"), "test": ("test",)}


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def sub_folders(path: Path):
    """The visible sub-folders of ``path``, sorted by name."""
    return sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def detect_source(data_path) -> str:
    """The kind of data at ``data_path`` (see the module docstring). Raises :class:`DataError`
    (one line) when it holds none of them."""
    path = Path(data_path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        raise DataError(f"--data_path {str(data_path)!r} is a file but not an .npz; pass an .npz file or a "
                        "folder of images with one sub-folder per class")
    if not path.is_dir():
        raise DataError(f"--data_path {str(data_path)!r} does not exist; pass a folder of images with one "
                        "sub-folder per class, an .npz file, or the MNIST / CIFAR-10 folder")
    names = {p.name for p in path.iterdir()}
    if any(n.startswith(("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")) for n in names) or "mnist.npz" in names:
        return "mnist"
    if names & {"data_batch_1", "test_batch", "cifar-10-batches-py", "cifar-10-python.tar.gz"}:
        return "cifar10"
    if sub_folders(path):
        return "folder"
    npz = sorted(p for p in path.iterdir() if p.suffix.lower() == ".npz")
    if len(npz) == 1:
        raise DataError(f"--data_path {str(data_path)!r} holds one .npz file: pass the file itself "
                        f"(--data_path {npz[0]})")
    raise DataError(f"no data found in {str(data_path)!r}: expected sub-folders of images (one per class), "
                    "an .npz file, or the MNIST / CIFAR-10 files; pass --data_path")
