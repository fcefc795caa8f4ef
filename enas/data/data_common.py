"""What every dataset loader shares: the :class:`DataSplits` record, the validation split and
normalisation (:func:`split_and_normalise`), example limits, and downloads that fail with one
line (:func:`try_download`). See :mod:`enas.data.data_utils` for the conventions."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import socket
import sys
from pathlib import Path

import numpy as np

from enas.errors import DataError

#: Socket timeout (seconds) applied while downloading, so a dead network fails instead of hanging.
DOWNLOAD_TIMEOUT = 30.0


@dataclasses.dataclass
class DataSplits:
    """Normalised train / validation / test splits of one dataset.

    Attributes:
        x_train: float32 (N, H, W, C), normalised with the training split's per-channel mean/std.
        y_train: int32 (N,), class ids in [0, num_classes).
        x_valid: float32 (V, H, W, C); V may be 0 (then the shape is (0, H, W, C)).
        y_valid: int32 (V,).
        x_test: float32 (T, H, W, C).
        y_test: int32 (T,).
        mean: float32 (C,), per-channel mean of the training split after ``/255``.
        std: float32 (C,), per-channel std of the training split after ``/255`` (floored at 1e-6).
        num_classes: number of classes.
        name: dataset name ("mnist", "cifar10").
    """

    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    x_valid: np.ndarray = dataclasses.field(repr=False)
    y_valid: np.ndarray = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray = dataclasses.field(repr=False)
    mean: np.ndarray
    std: np.ndarray
    num_classes: int = 10
    name: str = ""

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """A short single-line description of an exception."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if old is None else min(old, seconds))
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def try_download(fname: str, origin: str, data_path, file_hash: str | None = None):
    """Download ``origin`` to ``data_path/fname`` the Keras way (``keras.utils.get_file``).

    Returns ``(path, "")`` on success or ``(None, short_reason)`` on any failure. A ``data_path``
    created only for the download is removed again if the download fails and it stays empty.
    """
    import keras  # deferred: only needed when downloading

    root = Path(data_path)
    existed = root.exists()
    # Keras announces downloads on stdout; keep that out of logs redirected with >>. On a
    # terminal it shows live on stderr; otherwise it is held back and shown only if the download
    # worked, so a failed one ends in the single error line that says so.
    announce = sys.stderr if sys.stderr.isatty() else io.StringIO()
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT), contextlib.redirect_stdout(announce):
            path = keras.utils.get_file(
                fname, origin, file_hash=file_hash, cache_dir=str(root.absolute()), cache_subdir=""
            )
        if announce is not sys.stderr:
            sys.stderr.write(announce.getvalue())
        return Path(path), ""
    except BaseException as exc:  # noqa: BLE001 - any failure becomes a DataError upstream
        if isinstance(exc, KeyboardInterrupt):
            raise
        if not existed:
            with contextlib.suppress(OSError):
                root.rmdir()  # only succeeds if empty
        return None, short_reason(exc)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def limit_examples(x: np.ndarray, y: np.ndarray, limit, what: str):
    """Keep the first ``limit`` examples (``None`` keeps all); ``what`` names the argument."""
    if limit is None:
        return x, y
    if not _is_int(limit) or limit < 1:
        raise DataError(f"{what}={limit!r} is invalid: pass a positive integer or None.")
    return x[:limit], y[:limit]


def split_and_normalise(x_train, y_train, x_test, y_test, num_valid, name) -> DataSplits:
    """Carve the validation split and normalise all splits with training-split statistics.

    Args:
        x_train: uint8 (N, H, W, C) or (N, H, W) official training images (official order).
        y_train: integer (N,) labels.
        x_test: uint8 (T, H, W, C) or (T, H, W).
        y_test: integer (T,).
        num_valid: 0 <= num_valid < N; the LAST ``num_valid`` training examples become validation.
        name: dataset name stored in the result.

    Returns:
        :class:`DataSplits` with float32 images ``((x / 255) - mean) / std`` where mean/std are the
        per-channel statistics of the remaining N - num_valid training images.
    """
    x_train, x_test = np.asarray(x_train), np.asarray(x_test)
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., None], x_test[..., None]
    y_train = np.asarray(y_train).reshape(-1).astype(np.int32)
    y_test = np.asarray(y_test).reshape(-1).astype(np.int32)
    if x_train.ndim != 4 or x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"{name}: images must be (N, H, W[, C]) with equal train/test image shapes, got "
            f"{x_train.shape} and {x_test.shape}; check the files under --data_path."
        )
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataError(
            f"{name}: image and label counts differ (train {len(x_train)} vs {len(y_train)}, "
            f"test {len(x_test)} vs {len(y_test)}); check the files under --data_path."
        )
    n = len(x_train)
    if not _is_int(num_valid) or not 0 <= num_valid < n:
        raise DataError(
            f"num_valid={num_valid!r} is invalid: the {name} training set has {n} examples, so "
            f"num_valid must be an integer from 0 to {n - 1}; pass a smaller num_valid."
        )
    num_valid = int(num_valid)

    x_all = x_train.astype(np.float32) / np.float32(255.0)
    x_te = x_test.astype(np.float32) / np.float32(255.0)
    n_tr = n - num_valid
    mean = x_all[:n_tr].mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = x_all[:n_tr].std(axis=(0, 1, 2), dtype=np.float64)
    std = np.maximum(std, 1e-6).astype(np.float32)
    for arr in (x_all, x_te):
        arr -= mean
        arr /= std
    return DataSplits(
        x_train=x_all[:n_tr],
        y_train=y_train[:n_tr],
        x_valid=x_all[n_tr:],
        y_valid=y_train[n_tr:],
        x_test=x_te,
        y_test=y_test,
        mean=mean,
        std=std,
        num_classes=10,
        name=name,
    )


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------
