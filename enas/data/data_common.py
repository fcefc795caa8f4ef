"""What every dataset loader shares: the :class:`Split` and :class:`DataSplits` records, the
checks of raw arrays and the validation split (:func:`make_splits`), the training split's
statistics, example limits, and downloads that fail with one line (:func:`try_download`). See
:mod:`enas.data.data_utils` for the conventions."""

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
class Split:
    """One split of a dataset: its labels and either the images in memory or the image files
    (decoded when a pipeline reads them, :mod:`enas.data.image_folder`).

    Attributes:
        labels: int32 (N,), class ids in [0, num_classes).
        images: raw images (N, H, W, C), uint8 pixels or float32 values as the source gave them
            (never normalised: the network normalises its input), or ``None`` for files.
        files: str (N,) image paths, or ``None`` for images in memory.
    """

    labels: np.ndarray = dataclasses.field(repr=False)
    images: np.ndarray | None = dataclasses.field(default=None, repr=False)
    files: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def __len__(self):
        return len(self.labels)

    @property
    def in_memory(self):
        return self.files is None

    def take(self, indices) -> "Split":
        """The examples at ``indices`` (an index array or a slice)."""
        pick = (lambda a: None if a is None else a[indices])
        return Split(labels=self.labels[indices], images=pick(self.images), files=pick(self.files))


@dataclasses.dataclass
class DataSplits:
    """Train / validation / test splits of one dataset, with what the network needs to know of it.

    The images are raw (uint8 pixels, or float32 values for float sources): the network's input
    layer normalises them, ``(x / scale - mean) / std`` (:class:`enas.child.common_ops.InputNormalization`),
    so the exported files take the same raw values.

    Attributes:
        train, valid, test: :class:`Split`; ``valid`` or ``test`` may be empty (0 examples).
        mean: float32 (C,), per-channel mean of the training split's ``x / scale``.
        std: float32 (C,), per-channel standard deviation of the training split's ``x / scale``
            (floored at 1e-6).
        scale: 255.0 for uint8 pixels (the statistics are those of ``x / 255``, as ENAS
            computes them), 1.0 for float sources.
        num_classes: number of classes (>= 2).
        name: the source's kind ("mnist", "cifar10", "folder", "npz", "arrays").
        image_shape: (H, W, C) of one image as the network sees it (after ``--image_size``).
        class_names: the class names (folder names; ``"0"``, ``"1"``... for arrays).
        pixels: ``"uint8"`` (raw bytes, 0-255) or ``"float32"`` (the source's float values).
        resize: files are resized to ``image_shape`` when decoded (``--image_size``).
        description: where the data came from (for the log header).
    """

    train: Split
    valid: Split
    test: Split
    mean: np.ndarray
    std: np.ndarray
    num_classes: int = 10
    scale: float = 255.0
    name: str = ""
    image_shape: tuple = ()
    class_names: tuple = ()
    pixels: str = "uint8"
    resize: bool = False
    description: str = ""

    def __post_init__(self):
        if not self.image_shape:
            images = self.train.images if self.train.images is not None else self.test.images
            self.image_shape = tuple(int(d) for d in images.shape[1:])
        self.image_shape = tuple(int(d) for d in self.image_shape)
        if not self.class_names:
            self.class_names = tuple(str(i) for i in range(self.num_classes))

    def split(self, name) -> Split:
        """The split called ``name`` ("train", "valid" or "test")."""
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    # The arrays of in-memory splits (the original's names; a streamed split has no array).
    def _images(self, split):
        images = self.split(split).images
        if images is None:
            raise ValueError(f"the {split} split of {self.name} is read from files; use "
                             "enas.data.data_utils.split_arrays or split_dataset")
        return images

    x_train = property(lambda self: self._images("train"))
    x_valid = property(lambda self: self._images("valid"))
    x_test = property(lambda self: self._images("test"))

    @property
    def raw_mean(self):
        """float32 (C,): the mean in raw units (the fill of padding and cutout)."""
        return (np.asarray(self.mean, np.float64) * self.scale).astype(np.float32)

    @property
    def raw_std(self):
        """float32 (C,): the standard deviation in raw units."""
        return (np.asarray(self.std, np.float64) * self.scale).astype(np.float32)
    y_train = property(lambda self: self.train.labels)
    y_valid = property(lambda self: self.valid.labels)
    y_test = property(lambda self: self.test.labels)


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


def valid_count(num_valid, n, name):
    """The number of validation examples ``num_valid`` asks for out of ``n`` training examples:
    an integer count, or a fraction in (0, 1). Raises :class:`DataError` when it leaves no
    training example."""
    if isinstance(num_valid, (float, np.floating)) and 0 < num_valid < 1:
        count = int(round(float(num_valid) * n))
    elif _is_int(num_valid) or (isinstance(num_valid, (float, np.floating)) and float(num_valid).is_integer()):
        count = int(num_valid)
    else:
        count = -1
    if not 0 <= count < n:
        raise DataError(
            f"num_valid={num_valid!r} is invalid: the {name} training set has {n} examples, so "
            f"--num_valid must be a count from 0 to {n - 1} or a fraction below 1; pass a smaller --num_valid."
        )
    return count


def stratified_valid_indices(labels, count, seed=0):
    """``count`` indices of ``labels`` drawn per class in proportion to the class sizes (largest
    remainders; a fixed permutation per class, so the split is the same on every run)."""
    labels = np.asarray(labels)
    if count == 0:
        return np.zeros(0, np.int64)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = sizes * count / len(labels)
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: count - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(picked))


def channel_stats(images, scale):
    """Per-channel ``(mean, std)`` float32 (C,) of ``float32(images) / scale`` (N, H, W, C), the
    way ENAS computed them (float64 accumulation of the float32 values; std floored at 1e-6), so
    MNIST and CIFAR-10 networks normalise exactly as they did when the data pipeline did it."""
    values = images.astype(np.float32) / np.float32(scale)
    mean = values.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = values.std(axis=(0, 1, 2), dtype=np.float64)
    return mean, np.maximum(std, 1e-6).astype(np.float32)


def check_arrays(x, y, where, num_classes=None):
    """``(x (N, H, W, C), y int32 (N,))`` from raw arrays, checked: image rank, x/y lengths, integer
    labels in range, finite float images. Raises :class:`DataError` naming ``where``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or min(x.shape[1:], default=0) < 1:
        raise DataError(f"{where}: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"{where}: images must be uint8 or float, got {x.dtype}")
        x = x.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{where}: images hold NaN or infinite values; clean the data first")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1:] == (1,) else y
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a vector of class ids (N,), got shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels; they must match one to one")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{where}: labels must be integer class ids, got {y.dtype} values such as "
                            f"{y.reshape(-1)[0].item()!r}")
    if y.size and (y.min() < 0 or (num_classes is not None and y.max() >= num_classes)):
        bound = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise DataError(f"{where}: label {int(y.min() if y.min() < 0 else y.max())} is out of range "
                        f"(class ids must be {bound})")
    return x, y.astype(np.int32)


def make_splits(train, test, num_valid, name, valid=None, stratified=True, num_classes=None,
                class_names=(), description="") -> DataSplits:
    """:class:`DataSplits` of raw arrays, checked, with the training split's statistics.

    Args:
        train: ``(x, y)``: images uint8 or float (N, H, W[, C]), integer labels (N,).
        test: ``(x, y)`` likewise (T may be 0).
        num_valid: a count or a fraction of ``train`` held out as validation (ignored when
            ``valid`` is given).
        name: the source's kind ("mnist", "npz" ...).
        valid: ``(x, y)`` of a validation split of the source's own, or ``None``.
        stratified: draw the validation split per class (:func:`stratified_valid_indices`);
            ``False``: the LAST examples, as ENAS does on MNIST and CIFAR-10.
        num_classes: the class count (default: the largest label + 1).

    Raises:
        DataError: bad shapes, lengths or labels; fewer than two classes; a split leaving no
            training image.
    """
    x_tr, y_tr = check_arrays(*train, f"{name} training split")
    if len(y_tr) == 0:
        raise DataError(f"{name}: the training split has no images")
    if num_classes is None:
        num_classes = int(y_tr.max()) + 1 if y_tr.size else 0
    x_te, y_te = check_arrays(*test, f"{name} test split", num_classes)
    x_tr, y_tr = check_arrays(x_tr, y_tr, f"{name} training split", num_classes)
    splits = [("test", x_te)]
    if valid is not None:
        x_va, y_va = check_arrays(*valid, f"{name} validation split", num_classes)
        splits.append(("validation", x_va))
    for what, x in splits:
        if x.shape[1:] != x_tr.shape[1:] and len(x):
            raise DataError(f"{name}: {what} images are {x.shape[1:]} but training images {x_tr.shape[1:]}; "
                            "every split must have the same image shape")
        if (x.dtype == np.uint8) != (x_tr.dtype == np.uint8) and len(x):
            raise DataError(f"{name}: {what} images are {x.dtype} but training images {x_tr.dtype}; "
                            "use one type for every split")
    if len(np.unique(y_tr)) < 2 or num_classes < 2:
        raise DataError(f"{name}: the training split has {len(np.unique(y_tr))} class(es); a classifier needs "
                        "at least two")
    if valid is None:
        count = valid_count(num_valid, len(x_tr), name)
        if stratified:
            chosen = np.zeros(len(x_tr), bool)
            chosen[stratified_valid_indices(y_tr, count)] = True
            x_va, y_va, x_tr, y_tr = x_tr[chosen], y_tr[chosen], x_tr[~chosen], y_tr[~chosen]
        else:
            n_tr = len(x_tr) - count
            x_va, y_va, x_tr, y_tr = x_tr[n_tr:], y_tr[n_tr:], x_tr[:n_tr], y_tr[:n_tr]
    scale = 255.0 if x_tr.dtype == np.uint8 else 1.0
    mean, std = channel_stats(x_tr, scale)
    return DataSplits(
        train=Split(y_tr, x_tr), valid=Split(y_va, x_va), test=Split(y_te, x_te), mean=mean, std=std,
        num_classes=int(num_classes), name=name, class_names=tuple(class_names), scale=scale,
        pixels="uint8" if x_tr.dtype == np.uint8 else "float32", description=description,
    )


