"""TensorBoard scalars of a run: written under ``<output_dir>/tensorboard``, and read back.

Training writes ``child/loss``, ``child/lr``, ``child/grad_norm``, ``child/train_accuracy``,
``eval/valid_accuracy`` and ``eval/test_accuracy``; the search writes those plus
``controller/loss``, ``controller/entropy``, ``controller/reward``, ``controller/accuracy``,
``controller/baseline``, ``controller/grad_norm``, ``search/sampled_val_acc_mean`` and
``search/sampled_val_acc_best``::

    with RunSummaries(settings["output_dir"]) as summaries:
        summaries.scalars(step, {"child/loss": loss, "child/lr": lr})

    read_scalars(output_dir)  # {"child/loss": [(0, 2.3), (50, 1.1), ...], ...}

View them with ``tensorboard --logdir <output_dir>/tensorboard`` or ``python plot_curves.py``.
The scalars are written as ``tf.summary.scalar`` writes them (a float32 tensor tagged for the
"scalars" plugin) but through ``tf.summary.write``, so the ``tensorboard`` package is not needed
to write them, only to view them. A resumed run appends a new event file; :func:`read_scalars` keeps, for every step written more
than once, the value written last.
"""

from __future__ import annotations

import functools
import glob
import os
import time

SUBDIR = "tensorboard"

TRAIN_TAGS = ("child/loss", "child/lr", "child/grad_norm", "child/train_accuracy",
              "eval/valid_accuracy", "eval/test_accuracy")
SEARCH_TAGS = TRAIN_TAGS + (
    "controller/loss", "controller/entropy", "controller/reward", "controller/accuracy",
    "controller/baseline", "controller/grad_norm", "search/sampled_val_acc_mean",
    "search/sampled_val_acc_best")


@functools.lru_cache(maxsize=1)
def _scalar_metadata():
    """What ``tf.summary.scalar`` attaches; written directly, TensorBoard need not be installed."""
    import tensorflow as tf

    return tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars"))


def tensorboard_dir(output_dir: str) -> str:
    return os.path.join(output_dir, SUBDIR)


class RunSummaries:
    """Scalar summaries of a run under ``<output_dir>/tensorboard``; a no-op if output_dir is None.

    Call :meth:`scalars` from eager Python (not inside a ``tf.function``). Events are flushed
    every ``flush_secs`` seconds and by :meth:`flush` / :meth:`close` (also on leaving a
    ``with`` block).
    """

    def __init__(self, output_dir: str | None, flush_secs: float = 30.0):
        self.output_dir = output_dir
        self.flush_secs = flush_secs
        self._writer = None
        self._closed = False
        self._last_flush = time.monotonic()
        if output_dir is not None:
            import tensorflow as tf

            logdir = tensorboard_dir(output_dir)
            os.makedirs(logdir, exist_ok=True)
            self._writer = tf.summary.create_file_writer(logdir)

    @property
    def enabled(self) -> bool:
        return self._writer is not None and not self._closed

    def scalars(self, step: int, values: dict) -> None:
        """Write ``{tag: value}`` at ``step``; None values are skipped."""
        if self._writer is None:
            return
        if self._closed:
            raise RuntimeError("RunSummaries.scalars() called after close()")
        import tensorflow as tf

        step = int(step)
        with self._writer.as_default():
            for tag, value in values.items():
                if value is None:
                    continue
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                                 metadata=_scalar_metadata())
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        if self.enabled:
            self._writer.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if self.enabled:
            self._writer.flush()
            self._writer.close()
        self._closed = True

    def __enter__(self) -> RunSummaries:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _event_files(logdir: str) -> list[str]:
    return [p for p in glob.glob(os.path.join(logdir, "**", "*tfevents*"), recursive=True)
            if os.path.isfile(p)]


def _read_events(path: str):
    """The events of one file, in file order; stops quietly at a truncated or corrupt record."""
    import tensorflow as tf

    try:
        for record in tf.data.TFRecordDataset(path):
            yield tf.compat.v1.Event.FromString(record.numpy())
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.NotFoundError):
        return


def _scalar_value(value) -> float | None:
    import tensorflow as tf

    if value.HasField("simple_value"):
        return float(value.simple_value)
    plugin = value.metadata.plugin_data.plugin_name
    if value.HasField("tensor") and plugin in ("", "scalars"):
        try:
            array = tf.make_ndarray(value.tensor)
        except (TypeError, ValueError):
            return None
        if array.size == 1 and array.dtype.kind in "fiub":
            return float(array.reshape(()))
    return None


def read_scalars(output_dir: str) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every scalar under ``<output_dir>/tensorboard``.

    Sorted by step; a step written several times (a resumed run rewriting steps) keeps the value
    written last (event files ordered by the time of their first scalar, records in file order;
    not by the file-version event that opens each file, whose time is whole seconds: two writers in
    one second would tie).
    Returns ``{}`` if there is no such folder or no scalar in it.
    """
    logdir = tensorboard_dir(output_dir)
    paths = _event_files(logdir)
    if not paths:
        return {}  # without importing TensorFlow
    files = []
    for path in paths:
        events = list(_read_events(path))
        times = [e.wall_time for e in events if e.HasField("summary")] or [e.wall_time for e in events]
        start = min(times) if times else os.path.getmtime(path)
        files.append((start, os.path.basename(path), events))
    files.sort(key=lambda f: (f[0], f[1]))
    latest: dict[str, dict[int, float]] = {}
    for _, _, events in files:
        for event in events:
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                v = _scalar_value(value)
                if v is not None:
                    latest.setdefault(value.tag, {})[int(event.step)] = v
    return {tag: sorted(by_step.items()) for tag, by_step in sorted(latest.items())}
