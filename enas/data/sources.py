"""Every data source behind one call, :func:`load_source`, and the Python forms for notebooks.

* ``mnist`` / ``cifar10``: the official files (:mod:`enas.data.data_utils`,
  :mod:`enas.data.data_utils_cifar`); validation = the LAST ``num_valid`` training images, as ENAS.
* ``npz``: a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (Keras' datasets convention;
  optional ``x_valid, y_valid`` and ``class_names``), uint8 or float images ``(N, H, W)`` or
  ``(N, H, W, C)``, integer labels; validation drawn per class unless given.
* ``folder``: a folder of images with one sub-folder per class (:mod:`enas.data.image_folder`).
* ``arrays``: :func:`from_arrays` (numpy arrays) and :func:`from_tf_dataset` (``tf.data``
  datasets of ``(image, label)``), passed to ``train_fixed.run`` / ``search_task.run`` as ``data=``.

``image_size`` (H, W) resizes (bilinear; uint8 stays uint8) and ``color_mode`` converts
(grayscale / rgb / rgba) every source. Every user-fixable problem is a one-line
:class:`~enas.errors.DataError`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from enas.data import data_utils
from enas.data.data_common import DataSplits, Split, limit_examples, make_splits, short_reason
from enas.data.formats import COLOR_MODES, detect_source
from enas.data.image_folder import CHANNELS, load_image_folder
from enas.errors import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path, num_valid=0.1, max_train=None, max_test=None, image_size=None, color_mode="auto"):
    """The ``.npz`` file at ``path`` as :class:`DataSplits` (see the module docstring)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"cannot read {str(path)!r} as an .npz file (not a zip archive); write it with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as f:
            present = set(f.files)
            missing = [k for k in NPZ_KEYS if k not in present]
            if missing:
                raise DataError(f"{str(path)!r} has no {missing[0]!r} array: an .npz for --data_path needs "
                                f"{', '.join(NPZ_KEYS)} (optional x_valid, y_valid)")
            if ("x_valid" in present) != ("y_valid" in present):
                raise DataError(f"{str(path)!r} has only one of x_valid, y_valid; give both or neither")
            arrays = {k: np.asarray(f[k]) for k in present}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} as an .npz file ({short_reason(exc)}); write it with "
                        "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    x_tr, y_tr = limit_examples(arrays["x_train"], arrays["y_train"], max_train, "max_train")
    x_te, y_te = limit_examples(arrays["x_test"], arrays["y_test"], max_test, "max_test")
    valid = (arrays["x_valid"], arrays["y_valid"]) if "x_valid" in arrays else None
    names = tuple(str(n) for n in arrays.get("class_names", np.array([])).reshape(-1))
    try:
        data = make_splits((x_tr, y_tr), (x_te, y_te), num_valid, "npz", valid=valid,
                           num_classes=len(names) or None, class_names=names, description=f".npz file {path}")
    except DataError as e:
        raise DataError(f"{str(path)!r}: {e}") from None
    return _adapted(data, image_size, color_mode)


def from_arrays(x_train, y_train, x_test=None, y_test=None, x_valid=None, y_valid=None, num_valid=0.1,
                class_names=(), image_size=None, color_mode="auto") -> DataSplits:
    """:class:`DataSplits` of numpy arrays (images uint8 or float ``(N, H, W[, C])``, integer labels);
    no test split when ``x_test`` is ``None``; validation per class from the training images
    (``num_valid``: a count or a fraction) unless ``x_valid`` is given."""
    x_train = np.asarray(x_train)
    if x_test is None:
        x_test, y_test = x_train[:0], np.zeros(0, np.int32)
    valid = None if x_valid is None else (x_valid, y_valid)
    return _adapted(make_splits((x_train, y_train), (x_test, y_test), num_valid, "arrays", valid=valid,
                                num_classes=len(class_names) or None, class_names=class_names,
                                description="arrays"), image_size, color_mode)


def _collect(dataset, what):
    """A ``tf.data.Dataset`` of ``(image, label)`` (batched or not) read into two arrays."""
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(np.asarray(image))
        labels.append(np.asarray(label))
    if not images:
        raise DataError(f"the {what} dataset is empty")
    if images[0].ndim == np.ndim(labels[0]) + 3 and np.ndim(labels[0]) == 0:  # one image per element
        return np.stack(images), np.stack(labels)
    return np.concatenate(images), np.concatenate(labels).reshape(-1)


def from_tf_dataset(train, test=None, valid=None, num_valid=0.1, class_names=(), image_size=None,
                    color_mode="auto") -> DataSplits:
    """:class:`DataSplits` of ``tf.data.Dataset`` objects yielding ``(image, label)``, one example or
    one batch per element (e.g. ``keras.utils.image_dataset_from_directory``'s). They are read once
    into memory (uint8 stays uint8); for data larger than memory use an image folder."""
    x_tr, y_tr = _collect(train, "training")
    x_te, y_te = _collect(test, "test") if test is not None else (None, None)
    x_va, y_va = _collect(valid, "validation") if valid is not None else (None, None)
    if x_tr.dtype != np.uint8 and np.issubdtype(x_tr.dtype, np.floating) and x_tr.size and \
            np.all(x_tr == np.round(x_tr)) and x_tr.min() >= 0 and x_tr.max() <= 255:
        x_tr = x_tr.astype(np.uint8)  # Keras' image datasets give float32 pixel values 0-255
        x_te = None if x_te is None else x_te.astype(np.uint8)
        x_va = None if x_va is None else x_va.astype(np.uint8)
    return from_arrays(x_tr, y_tr, x_te, y_te, x_va, y_va, num_valid=num_valid, class_names=class_names,
                       image_size=image_size, color_mode=color_mode)


def _adapted(data: DataSplits, image_size, color_mode) -> DataSplits:
    """In-memory splits resized to ``image_size`` and converted to ``color_mode``; the
    statistics recomputed when anything changed."""
    if color_mode not in COLOR_MODES:
        raise DataError(f"unknown --color_mode {color_mode!r}: use one of {', '.join(COLOR_MODES)}")
    channels = data.image_shape[-1]
    want = channels if color_mode == "auto" else CHANNELS[color_mode]
    if (image_size is None or tuple(image_size) == data.image_shape[:2]) and want == channels:
        return data
    if want != channels and not (channels in (1, 3) and want in (1, 3)):
        raise DataError(f"cannot convert {channels}-channel images to --color_mode {color_mode}; "
                        "grayscale and rgb convert into each other")

    def convert(x):
        if len(x) == 0:
            shape = tuple(image_size or data.image_shape[:2]) + (want,)
            return np.zeros((0,) + shape, x.dtype)
        import tensorflow as tf

        out = []
        for start in range(0, len(x), 1024):
            block = tf.convert_to_tensor(x[start:start + 1024])
            if want == 1 and channels == 3:
                block = tf.image.rgb_to_grayscale(tf.cast(block, tf.float32))
            elif want == 3 and channels == 1:
                block = tf.repeat(tf.cast(block, tf.float32), 3, axis=-1)
            if image_size is not None:
                block = tf.image.resize(tf.cast(block, tf.float32), image_size, antialias=True)
            block = tf.cast(block, tf.float32).numpy()
            out.append(np.clip(np.round(block), 0, 255).astype(np.uint8) if x.dtype == np.uint8 else block)
        return np.concatenate(out)

    splits = {name: Split(data.split(name).labels, convert(data.split(name).images))
              for name in ("train", "valid", "test")}
    return make_splits((splits["train"].images, splits["train"].labels),
                       (splits["test"].images, splits["test"].labels), 0, data.name,
                       valid=(splits["valid"].images, splits["valid"].labels), num_classes=data.num_classes,
                       class_names=data.class_names, description=data.description)


def load_source(kind, data_path, num_valid=5000, image_size=None, color_mode="auto", max_train=None,
                max_test=None, download=True) -> DataSplits:
    """The data of ``kind`` (one of :data:`enas.data.formats.SOURCES` but ``arrays``, or ``"auto"``:
    :func:`~enas.data.formats.detect_source`) at ``data_path``."""
    if kind == "auto":
        kind = detect_source(data_path)
    if kind in ("mnist", "cifar10"):
        data = data_utils.load_dataset(kind, data_path, num_valid=num_valid, download=download,
                                       max_train=max_train, max_test=max_test)
        return _adapted(data, image_size, color_mode)
    if kind == "npz":
        if Path(data_path).is_dir():
            raise DataError(f"--dataset npz needs --data_path to name the .npz file, not the folder {data_path!r}")
        if not Path(data_path).is_file():
            raise DataError(f"no .npz file {str(data_path)!r}; pass --data_path path/to/data.npz")
        return load_npz(data_path, num_valid, max_train, max_test, image_size, color_mode)
    if kind == "folder":
        return load_image_folder(data_path, num_valid, image_size, color_mode, max_train, max_test)
    if kind == "arrays":
        raise DataError("the arrays source is given from Python (enas.data.sources.from_arrays), not read from "
                        "--data_path")
    raise DataError(f"unknown dataset {kind!r}: use one of auto, mnist, cifar10, npz, folder")
