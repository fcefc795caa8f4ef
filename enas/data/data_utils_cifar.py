"""CIFAR-10 loading from the official ``cifar-10-batches-py`` pickles.

Looked up, in order: the batch files directly in ``data_path``; in
``data_path/cifar-10-batches-py``; the archive ``data_path/cifar-10-python.tar.gz`` (extracted
safely into ``data_path``); else a download of that archive into ``data_path`` via
``keras.utils.get_file`` (with ``extract=False``: we extract it ourselves, so the files land in
the standard ``cifar-10-batches-py/`` folder and unsafe members are refused). The test set is
``test_batch`` (the original ENAS README wrongly said ``test_data``). Split/normalisation
conventions: see :mod:`enas.data.data_utils`.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from enas.data.data_common import (
    DataSplits,
    limit_examples,
    short_reason,
    make_splits,
    try_download,
)
from enas.errors import DataError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_BATCHES = TRAIN_BATCHES + (TEST_BATCH,)

# The only globals a CIFAR batch pickle needs (a dict of bytes, lists and one numpy array).
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # bytes pickled by Python 3 with protocol 2
}


class _BatchUnpickler(pickle.Unpickler):
    """Refuses any global outside :data:`_ALLOWED_GLOBALS` (no code execution from a bad file)."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def _read_batch(path: Path):
    """One batch file -> (x uint8 (N, 32, 32, 3), y uint8 (N,))."""
    fix = f"re-extract {CIFAR_ARCHIVE} or pass --data_path"
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
        d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
        data = np.asarray(d["data"])
        labels = np.asarray(d["labels"])
    except Exception as exc:  # noqa: BLE001 - truncated, not a pickle, wrong content ...
        raise DataError(f"'{path}' is truncated or not a CIFAR-10 batch ({short_reason(exc)}); "
                        f"{fix}.") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"'{path}': data has shape {data.shape} {data.dtype}, expected (N, 3072) "
                        f"uint8; {fix}.")
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() <= 9):
        raise DataError(f"'{path}': expected {len(data)} labels in 0-9, got shape {labels.shape}; "
                        f"{fix}.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels.astype(np.uint8)


def _find_batch_dir(root: Path) -> Path | None:
    """The folder holding all six batch files, or None if neither candidate has any of them."""
    partial = None
    for d in (root, root / CIFAR_DIR):
        present = [n for n in _BATCHES if (d / n).is_file()]
        if len(present) == len(_BATCHES):
            return d
        if (present or (d / "test_data").is_file()) and partial is None:
            partial = (d, [n for n in _BATCHES if n not in present])
    if partial is None:
        return None
    d, missing = partial
    if missing == [TEST_BATCH] and (d / "test_data").is_file():
        raise DataError(f"CIFAR-10 in '{d}' has 'test_data' but the test set file is named "
                        f"'{TEST_BATCH}' (the original ENAS docs were wrong): rename it to "
                        f"'{TEST_BATCH}' or re-extract {CIFAR_ARCHIVE}.")
    raise DataError(f"CIFAR-10 incomplete in '{d}': missing {', '.join(missing)}. Re-extract "
                    f"{CIFAR_ARCHIVE} there or pass --data_path.")


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest``, refusing absolute paths, '..' and non-regular members."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if m.name.startswith(("/", "\\")) or ".." in parts or not (m.isfile() or m.isdir()):
                    raise DataError(f"'{archive}' contains an unsafe member '{m.name}' (absolute "
                                    "path, '..' or link); refusing to extract it. Use the official "
                                    f"{CIFAR_ARCHIVE} or pass --data_path.")
            # filter="data" (Python >= 3.11.4) adds the stdlib's own checks on top of ours.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **safe)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"'{archive}' is not a readable tar.gz archive ({short_reason(exc)}); "
                        f"delete it and re-download {CIFAR_ARCHIVE}, or pass --data_path.") from exc


def read_cifar10(data_path, download=True):
    """Read the official CIFAR-10 splits (see the module docstring for the lookup order).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: x uint8 NHWC (50000, 32, 32, 3) /
        (10000, 32, 32, 3), y uint8 (50000,) / (10000,), in the official order
        (data_batch_1..5 concatenated; test_batch).

    Raises:
        DataError: files missing (and download failed/disabled), truncated, corrupt or unsafe.
    """
    root = Path(data_path)
    batch_dir = _find_batch_dir(root)
    if batch_dir is None:
        archive = root / CIFAR_ARCHIVE
        if not archive.is_file():
            def not_found(why: str) -> DataError:
                return DataError(
                    f"CIFAR-10 not found in '{data_path}': expected {', '.join(_BATCHES)} (there "
                    f"or in {CIFAR_DIR}/) or {CIFAR_ARCHIVE}; {why}. Put the files there or pass "
                    "--data_path."
                )

            if not download:
                raise not_found("download disabled")
            archive, reason = try_download(CIFAR_ARCHIVE, CIFAR_URL, root, CIFAR_SHA256)
            if archive is None:
                raise not_found(f"download failed (no network?): {reason}")
        _safe_extract(archive, archive.parent)
        batch_dir = _find_batch_dir(archive.parent)
        if batch_dir is None:
            raise DataError(f"'{archive}' does not contain {CIFAR_DIR}/ with "
                            f"{', '.join(_BATCHES)}; delete it and re-download "
                            f"{CIFAR_ARCHIVE}, or pass --data_path.")
    train = [_read_batch(batch_dir / n) for n in TRAIN_BATCHES]
    x_te, y_te = _read_batch(batch_dir / TEST_BATCH)
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    return (x_tr, y_tr), (x_te, y_te)


def load_cifar10(data_path, num_valid=5000, download=True, max_train=None,
                 max_test=None) -> DataSplits:
    """CIFAR-10 as :class:`DataSplits` with raw uint8 images (N, 32, 32, 3).

    ``max_train`` / ``max_test`` keep the first N official train / test examples; ``max_train``
    applies before the last ``num_valid`` training examples are carved off as validation.
    """
    (x_tr, y_tr), (x_te, y_te) = read_cifar10(data_path, download=download)
    x_tr, y_tr = limit_examples(x_tr, y_tr, max_train, "max_train")
    x_te, y_te = limit_examples(x_te, y_te, max_test, "max_test")
    return make_splits((x_tr, y_tr), (x_te, y_te), num_valid, "cifar10", stratified=False, num_classes=10,
                       description=f"CIFAR-10 in {data_path}")
