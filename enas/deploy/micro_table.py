"""What an architecture needs on a microcontroller (TensorFlow Lite Micro's tensor arena and the
int8 file's flash), from per-op tables, in numpy and in a compiled step: the RAM and flash terms
of the search's reward (``--target_ram_kib``, ``--target_flash_kib``).

Measured facts it rests on (MNIST children, 8 and 16 filters): the planned activation peak is the
same for every architecture of a configuration (it lies at the stem), while TFLM's bookkeeping and
the file's size are sums over the file's operators and tensors, so each is, to within about 2%,
a sum over the cell's op slots plus a term in the number of loose ends the cell concatenates.

:meth:`MicroTable.build` converts ``samples`` random children of the configuration to int8 files
(random weights and calibration: sizes do not depend on them), plans each with
:mod:`enas.deploy.tflm_memory`, and fits by least squares

    bookkeeping, flash = coef . [1, per cell: count of each (op, precision) among its slots,
                                 its number of loose ends]

then ``ram = activations (the largest planned peak seen) + bookkeeping``. It reports the
leave-one-out error of the fit. :meth:`MicroTable.cost` (numpy) and :meth:`MicroTable.tf_cost`
(a few one-hot sums inside the compiled reward) compute the same figures. :func:`memory_line`
is ``summarize_arc.py``'s figure of one architecture (its int8 file, planned).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from enas.deploy import tflm_memory
from enas.space.arc import Arc, parse_arc, precision_name, random_arc
from enas.space.search_space import DEFAULT as SPACE

METRICS = ("bookkeeping", "flash")


def sized_int8_file(model, image_shape, seed=0):
    """The int8 ``.tflite`` bytes :func:`enas.deploy.tflite_export.convert` writes for ``model``
    (uint8 pixels in), calibrated on 4 random images: for its sizes (flash, arena), which do not
    depend on the weights or the calibration."""
    from enas.deploy import tflite_export

    images = np.random.default_rng(seed).uniform(0, 255, (4,) + tuple(image_shape)).astype(np.float32)
    return tflite_export.convert(tflite_export.deployable(model), int8=True, representative=images, io="int8",
                                 pixels="uint8")


def memory_lines(model):
    """``[memory_line]`` of a built child (the end of a training run's log), or ``[why not]`` when
    it has no integer-only int8 file (e.g. 16-bit activations)."""
    from enas.deploy.tflite_export import TFLiteExportError
    from quantize.base import Int8ExportError

    try:
        return [memory_line(model, model.input_image_shape)]
    except (TFLiteExportError, Int8ExportError) as e:
        return [f"Int8 for TensorFlow Lite Micro: none ({e})"]


def memory_line(model, image_shape):
    """One line: flash and planned TFLM arena of ``model``'s int8 file (``summarize_arc.py``)."""
    blob = sized_int8_file(model, image_shape)
    activations, bookkeeping, total = tflm_memory.peak_ram(blob)
    return (f"Int8 for TensorFlow Lite Micro: flash {len(blob):,} bytes ({len(blob) / 1024:.1f} KiB, the file), peak RAM "
            f"{total:,} bytes ({total / 1024:.1f} KiB: tensor arena, activations {activations:,} + bookkeeping "
            f"{bookkeeping:,})")


@dataclasses.dataclass
class MicroTable:
    """Per-op tables of TFLM RAM and flash of one child configuration (see the module docstring)."""

    num_nodes: int
    precisions: tuple  # the searched precisions' names ("" : the layers' own, not searched)
    activations: float  # bytes
    coef: np.ndarray  # [2 metrics, features]
    samples: int
    loo_error: dict  # metric -> the largest leave-one-out relative error ("ram", "flash")

    # --- features ------------------------------------------------------------------------------
    @property
    def num_precisions(self):
        return max(len(self.precisions), 1)

    def cell_width(self):
        return SPACE.num_ops * self.num_precisions + 1

    def features(self, arc, default=None):
        """The feature vector of ``arc`` (an :class:`Arc` or string): 1, then per cell the counts
        of each (op, precision) among its slots and its number of loose ends."""
        arc = parse_arc(arc)
        default_name = None if default is None or len(self.precisions) < 2 else precision_name(default)
        row = [1.0]
        weighted = SPACE.weighted_ops
        for cell in (arc.normal, arc.reduce):
            counts = np.zeros(self.cell_width())
            for node in cell.nodes:
                for op, name in zip(node.ops, node.precisions):
                    p = 0
                    if len(self.precisions) > 1 and weighted[op]:
                        p = self.precisions.index(precision_name(name or default_name))
                    counts[op * self.num_precisions + p] += 1
            counts[-1] = len(cell.unused_ids())
            row.extend(counts.tolist())
        return np.array(row)

    def cost(self, arc, default=None):
        """``{"ram_kib", "flash_kib"}`` of ``arc``."""
        if not isinstance(arc, (Arc, str)):
            values = list(np.asarray(arc).reshape(-1))
            arc = Arc.from_vector(values, self.precisions if len(self.precisions) > 1 else ())
        bookkeeping, flash = self.coef @ self.features(arc, default)
        return {"ram_kib": float(self.activations + bookkeeping) / 1024, "flash_kib": float(flash) / 1024}

    def tf_cost(self, vector):
        """``(ram_kib, flash_kib)`` float32 scalars of a search vector (int32 ``[8B]``, or ``[12B]``
        with precision indices), traceable."""
        import tensorflow as tf

        from enas.child.micro_cell import unused_mask

        b, p = self.num_nodes, self.num_precisions
        vector = tf.convert_to_tensor(vector, tf.int32)
        weighted = tf.constant([bool(w) for w in SPACE.weighted_ops])
        parts = [tf.ones([1], tf.float64)]
        for t in range(2):
            cell = vector[4 * b * t:4 * b * (t + 1)]
            ops = cell[1::2]  # [2B]
            if len(self.precisions) > 1:
                precisions = vector[8 * b + 2 * b * t:8 * b + 2 * b * (t + 1)]
                precisions = tf.where(tf.gather(weighted, ops), precisions, tf.zeros_like(precisions))
            else:
                precisions = tf.zeros_like(ops)
            counts = tf.reduce_sum(tf.one_hot(ops * p + precisions, SPACE.num_ops * p, dtype=tf.float64), axis=0)
            unused = tf.reduce_sum(tf.cast(unused_mask(cell, b), tf.float64))
            parts += [counts, tf.reshape(unused, [1])]
        features = tf.concat(parts, axis=0)
        bookkeeping_flash = tf.linalg.matvec(tf.constant(self.coef, tf.float64), features)
        ram_kib = (self.activations + bookkeeping_flash[0]) / 1024.0
        return tf.cast(ram_kib, tf.float32), tf.cast(bookkeeping_flash[1] / 1024.0, tf.float32)

    def describe(self):
        return (f"TensorFlow Lite Micro tables: fitted on {self.samples} converted random children; activations "
                f"{self.activations:,.0f} bytes; leave-one-out error at most {self.loo_error['ram']:.1%} (RAM), "
                f"{self.loo_error['flash']:.1%} (flash)")

    # --- fitting -------------------------------------------------------------------------------
    @classmethod
    def build(cls, child_config, image_shape, samples=None, seed=0, log=None):
        """Fit the tables of ``child_config`` (a :class:`~enas.child.micro_child.ChildConfig`) for
        images of ``image_shape`` on ``samples`` converted random children (default: the number of
        features + 8)."""
        from enas.child.micro_child import MicroChild

        precisions = tuple(precision_name(p) for p in child_config.search_precisions) \
            if len(child_config.search_precisions) > 1 else ("",)
        empty = cls(child_config.num_nodes, precisions, 0.0, np.zeros((2, 1)), 0, {})
        count = samples or (1 + 2 * empty.cell_width() + 8)
        rng = np.random.default_rng(seed)
        rows, targets, heads = [], [], []
        for i in range(count):
            arc = random_arc(child_config.num_nodes, rng, precisions if len(precisions) > 1 else ())
            model = MicroChild(child_config, fixed_arc=arc).build_for(tuple(image_shape))
            blob = sized_int8_file(model, image_shape, seed=i)
            head, tail, _ = tflm_memory.peak_ram(blob)
            rows.append(empty.features(arc))
            targets.append([tail, len(blob)])
            heads.append(head)
            if log is not None and (i + 1) % 5 == 0:
                log(f"TensorFlow Lite Micro tables: {i + 1} of {count} children converted")
        x, y = np.array(rows), np.array(targets, np.float64)
        coef = np.linalg.lstsq(x, y, rcond=None)[0].T
        activations = float(max(heads))
        errors = {"ram": 0.0, "flash": 0.0}
        for i in range(len(x)):  # leave-one-out
            keep = np.arange(len(x)) != i
            fit = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0].T @ x[i]
            ram = heads[i] + y[i, 0]
            errors["ram"] = max(errors["ram"], abs(activations + fit[0] - ram) / ram)
            errors["flash"] = max(errors["flash"], abs(fit[1] - y[i, 1]) / y[i, 1])
        return cls(child_config.num_nodes, precisions, activations, coef, count, errors)
