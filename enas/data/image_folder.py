"""A folder of images, one sub-folder per class, streamed from disk.

Layout (as ``keras.utils.image_dataset_from_directory`` reads it; class names are the sorted
sub-folder names)::

    data/                      or   data/train/<class>/*.png   (+ data/test/<class>/...,
      cat/001.png ...                                            data/valid/<class>/... optional)
      dog/001.jpg ...

PNG, JPEG, BMP and GIF (first frame) are read. Without ``test/`` the test split is empty; without
``valid/`` the validation split is drawn from the training images per class (``--num_valid``, a
count or a fraction).

:func:`load_image_folder` lists the files and checks every image once with Pillow (a file it
cannot decode is one error line naming it; images of different sizes without ``--image_size``
are one line too), computing the training split's per-channel statistics on the way. The images
are never held in memory: :func:`file_dataset` decodes them in the ``tf.data`` pipeline (uint8,
resized to ``--image_size`` when given; ``cache`` keeps the decoded uint8 images in memory or in a
file for the following epochs).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from enas.data.data_common import DataSplits, Split, stratified_valid_indices, valid_count
from enas.data.formats import COLOR_MODES, SPLIT_FOLDERS, is_image, sub_folders
from enas.errors import DataError

GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
PIL_MODE = {1: "L", 3: "RGB", 4: "RGBA"}
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def split_folders(root: Path):
    """``{split: folder of class sub-folders}``: ``train`` always; ``valid``/``test`` when present."""
    children = {p.name.lower(): p for p in sub_folders(root)}
    if "train" not in children:
        split_names = [name for names in (SPLIT_FOLDERS["valid"], SPLIT_FOLDERS["test"]) for name in names]
        found = sorted(set(split_names) & set(children))
        if found:
            raise DataError(f"{str(root)!r} has {found[0]}/ but no train/ folder; put the training images in "
                            "train/<class>/")
        return {"train": root}
    found = {"train": children["train"]}
    for split in ("valid", "test"):
        for name in SPLIT_FOLDERS[split]:
            if name in children:
                found[split] = children[name]
                break
    return found


def list_class_files(folder: Path, class_names=None):
    """``(files, labels, class_names)`` of a folder of class sub-folders; with ``class_names``
    (the training split's), a class this folder lacks is fine, a class it adds is an error."""
    classes = sub_folders(folder)
    if not classes:
        raise DataError(f"{str(folder)!r} has no class sub-folders: put the images in one sub-folder per class "
                        "(e.g. data/cat/*.png, data/dog/*.png)")
    names = [c.name for c in classes]
    if class_names is not None:
        extra = sorted(set(names) - set(class_names))
        if extra:
            raise DataError(f"{str(folder)!r} has class folder {extra[0]!r}, which the training split lacks; "
                            "every class needs training images")
    index = {name: i for i, name in enumerate(class_names if class_names is not None else names)}
    files, labels = [], []
    for folder_of_class in classes:
        images = sorted(str(p) for p in folder_of_class.rglob("*") if is_image(p))
        if not images:
            raise DataError(f"class folder {str(folder_of_class)!r} has no images ({', '.join(sorted({'.png', '.jpg', '.jpeg', '.bmp', '.gif'}))}); "
                            "add some or remove the folder")
        files += images
        labels += [index[folder_of_class.name]] * len(images)
    return np.array(files), np.array(labels, np.int32), tuple(names if class_names is None else class_names)


def _open(path):
    from PIL import Image

    path = str(path)
    try:
        return Image.open(path)
    except Exception as exc:  # noqa: BLE001 - not an image, truncated header, unreadable ...
        raise DataError(f"cannot read image {path!r} ({type(exc).__name__}); fix or remove the file") from None


def _header(path):
    """``((W, H), mode)``; a palette image (GIF) whose palette is all gray counts as mode "L"."""
    with _open(path) as image:
        mode = image.mode
        if mode == "P":
            palette = np.asarray(image.getpalette() or [0, 1, 2]).reshape(-1, 3)
            mode = "L" if np.all(palette == palette[:, :1]) else "P"
        return image.size, mode


def _pixels(path, mode, size):
    """The decoded image as uint8 (H, W, C) in ``mode`` ("L", "RGB", "RGBA"), resized to ``size``
    (W, H) when given. Raises DataError naming the file when it does not decode."""
    from PIL import Image

    path = str(path)
    with _open(path) as image:
        try:
            image.load()
            image = image.convert(mode)
            if size is not None and image.size != size:
                image = image.resize(size, Image.BILINEAR)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
            raise DataError(f"cannot decode image {path!r} ({type(exc).__name__}: corrupt or truncated); "
                            "fix or remove the file") from None
        array = np.asarray(image, np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _workers():
    return max(1, min(8, os.cpu_count() or 1))


def scan(files, train_mask, color_mode="auto", image_size=None):
    """Check every image and measure the training images.

    Returns ``(image_shape (H, W, C), mean float32 (C,), std float32 (C,))``: the statistics of
    ``x / 255`` over the files where ``train_mask`` is true, after the color conversion and resize
    the pipeline applies (Pillow's, which matches TensorFlow's decode up to JPEG rounding).
    """
    files = [str(f) for f in files]
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        headers = list(pool.map(_header, files))
    if color_mode == "auto":
        channels = 1 if all(mode in GRAY_MODES for _, mode in headers) else 3
    else:
        channels = CHANNELS[color_mode]
    if image_size is None:
        sizes = {}
        for path, (size, _) in zip(files, headers):
            sizes.setdefault(size, path)
            if len(sizes) > 1:
                (w0, h0), first = next(iter(sizes.items()))
                raise DataError(f"images differ in size: {first!r} is {h0}x{w0} (HxW) but {path!r} is "
                                f"{size[1]}x{size[0]}; pass --image_size H,W to resize them all")
        width, height = headers[0][0]
        target = None
    else:
        height, width = image_size
        target = (width, height)
    mode = PIL_MODE[channels]
    total = np.zeros(channels)
    squares = np.zeros(channels)

    def measure(item):
        path, is_train = item
        pixels = _pixels(path, mode, target)
        if not is_train:
            return None
        block = pixels.astype(np.float64)
        return block.sum(axis=(0, 1)), np.square(block).sum(axis=(0, 1))

    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        for out in pool.map(measure, zip(files, train_mask), chunksize=64):
            if out is not None:
                total += out[0]
                squares += out[1]
    count = max(int(np.sum(train_mask)) * height * width, 1)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    mean, std = mean / 255.0, std / 255.0  # the statistics of x / 255, as for arrays of pixels
    return (height, width, channels), mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def _limit(files, labels, limit):
    """The first ``limit`` of a fixed shuffle (seed 0) of the files, so a limit keeps every class."""
    if not limit or limit >= len(files):
        return files, labels
    order = np.sort(np.random.default_rng(0).permutation(len(files))[:limit])
    return files[order], labels[order]


def load_image_folder(data_path, num_valid=0.1, image_size=None, color_mode="auto", max_train=None,
                      max_test=None) -> DataSplits:
    """The folder at ``data_path`` as :class:`DataSplits` of files (see the module docstring).

    Raises:
        DataError: an empty folder, a class folder without images, a single class, an unreadable
            image (named), images of different sizes without ``image_size``, or a validation split
            that leaves no training image.
    """
    root = Path(data_path)
    if not root.is_dir():
        raise DataError(f"--data_path {str(data_path)!r} is not a folder of images")
    if color_mode not in COLOR_MODES:
        raise DataError(f"unknown --color_mode {color_mode!r}: use one of {', '.join(COLOR_MODES)}")
    folders = split_folders(root)
    files, labels, class_names = list_class_files(folders["train"])
    if len(class_names) < 2:
        raise DataError(f"{str(folders['train'])!r} has one class folder ({class_names[0]!r}); a classifier needs "
                        "at least two")
    files, labels = _limit(files, labels, max_train)
    splits = {}
    for split in ("valid", "test"):
        if split in folders:
            f, l, _ = list_class_files(folders[split], class_names)
            splits[split] = (f, l) if split == "valid" else _limit(f, l, max_test)
    if "valid" not in splits:
        count = valid_count(num_valid, len(files), "folder")
        chosen = np.zeros(len(files), bool)
        chosen[stratified_valid_indices(labels, count)] = True
        splits["valid"] = (files[chosen], labels[chosen])
        files, labels = files[~chosen], labels[~chosen]
    if len(np.unique(labels)) < 2:
        raise DataError("the training split holds one class; a classifier needs at least two")
    splits.setdefault("test", (np.array([], dtype=str), np.zeros(0, np.int32)))
    every = np.concatenate([files, splits["valid"][0], splits["test"][0]])
    train_mask = np.arange(len(every)) < len(files)
    shape, mean, std = scan(every, train_mask, color_mode, image_size)
    where = "".join(f"{split}/, " for split in ("train", "valid", "test") if split in folders)
    where = f"{where[:-2]} in " if len(folders) > 1 else ""
    return DataSplits(
        train=Split(labels, files=files), valid=Split(splits["valid"][1], files=splits["valid"][0]),
        test=Split(splits["test"][1], files=splits["test"][0]), mean=mean, std=std,
        num_classes=len(class_names), name="folder", image_shape=shape, class_names=class_names,
        pixels="uint8", resize=image_size is not None,
        description=f"image folder ({where}{data_path}; {len(class_names)} classes: {', '.join(class_names[:8])}"
                    f"{' ...' if len(class_names) > 8 else ''})",
    )


def decode_fn(image_shape, resize):
    """``(path, label) -> (uint8 image (H, W, C), label)``: decode, convert the color (grayscale with
    Pillow's integer ITU-R 601-2 weights, so it equals what :func:`scan` measured), resize
    (bilinear) when ``resize``."""
    height, width, channels = image_shape

    def fn(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=4 if channels == 4 else 3,
                                   expand_animations=False, dtype=tf.uint8)
        if channels == 1:
            rgb = tf.cast(image, tf.int32)
            gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 32768) // 65536
            image = tf.cast(gray[..., None], tf.uint8)
        if resize:
            image = tf.image.resize(image, [height, width], method="bilinear", antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        return tf.ensure_shape(image, [height, width, channels]), label

    return fn


def file_dataset(split: Split, image_shape, resize, shuffle_seed=None, training=False, cache=""):
    """An unbatched dataset of ``(uint8 image (H, W, C), int32 label)`` decoded from the split's
    files. ``training``: shuffled (the file list, reshuffled every epoch; with ``cache`` the
    decoded images after the first epoch). ``cache``: "" none, "memory", or a file path prefix."""
    ds = tf.data.Dataset.from_tensor_slices((split.files, split.labels))
    decode = decode_fn(image_shape, resize)
    if cache:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.cache("" if cache == "memory" else cache)
        if training:
            ds = ds.shuffle(min(len(split), 20000), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds
    if training:
        ds = ds.shuffle(max(len(split), 1), seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
