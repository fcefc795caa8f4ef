"""The output directory of a run: its config record, its log, its checkpoints.

* ``config.json`` records the run's whole configuration (``"config"``:
  :meth:`enas.config.run_config.RunConfig.to_json`, so the folder alone reproduces the run) and, at its top
  level, the settings that define the checkpoint (architecture, precision, network shape:
  :meth:`~enas.config.run_config.RunConfig.identity`); rerunning with different ones in the same folder is
  refused instead of resuming into a mismatched checkpoint. Other settings (epochs, learning
  rate ...) may change on a rerun; the record is then updated.
* ``stdout`` receives a copy of every log line (as the original tee'd it).
* ``.lock`` is held by the process writing the folder (:mod:`enas.run.folder_lock`): a second
  run on a live run's folder is refused, a killed run's lock is gone with it.
* checkpoints are written with ``tf.train.CheckpointManager``: the data files are complete before
  the small ``checkpoint`` index file is replaced atomically, so a run killed at any point
  resumes from the last complete checkpoint.
* ``clock.json`` records the run's time (seconds, over all its sittings) at the newest
  checkpoint, so a resumed run's ``mins`` and recorded time go on from there.
"""

import json
import os
import re
import sys

import keras
import tensorflow as tf

from enas.child.layer_paths import weights_by_path
from enas.errors import CheckpointError, ConfigError
from enas.run.atomic import atomic_write
from enas.run.folder_lock import LOCK_FILE, FolderLock, clear_folder

CONFIG_FILE = "config.json"
LOG_FILE = "stdout"
CLOCK_FILE = "clock.json"
# Every name a run writes into its output folder (checkpoints are ckpt-N.index / .data-*).
_OURS = {CONFIG_FILE, LOG_FILE, CLOCK_FILE, LOCK_FILE, "checkpoint", "tensorboard", "arcs.jsonl", "controller.jsonl", "best_arc.txt",
         "best_arc.json", "final_pick.json", "result.json", "curves.png", "search_curves.png",
         "pareto.json", "pareto.png"}
# What a run killed while writing leaves: atomic_write's and the plots' temporary files, and a
# checkpoint's temporary folder.
_OURS_PATTERN = re.compile(r"ckpt-\d+\.(index|data-\d+-of-\d+)|ckpt-\d+_temp.*|\.tmp-.*|.+\.tmp\.png")


def _is_ours(name):
    return name in _OURS or _OURS_PATTERN.fullmatch(name) is not None


def prepare(output_dir, config, reset=False):
    """Create or reopen ``output_dir`` for the run of ``config`` (a :class:`enas.config.run_config.RunConfig`,
    or just an identity dict), and lock it for this process. Returns the held
    :class:`~enas.run.folder_lock.FolderLock`: release it (``with``) when the run ends.

    With ``reset``, a previous run's files are deleted first (only if every file there is one
    this project writes). Without it, an existing run with a different identity is an error.
    A folder another live process holds is :class:`~enas.run.folder_lock.FolderInUseError`.
    Every refusal happens before anything in the folder is written or deleted.
    """
    identity = config if isinstance(config, dict) else config.identity()
    record = identity if isinstance(config, dict) else {**identity, "config": config.to_json()}
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ConfigError(f"--output_dir {output_dir!r} is a file; pass a folder")
    if reset and os.path.isdir(output_dir):
        foreign = [n for n in os.listdir(output_dir) if not _is_ours(n)]
        if foreign:
            raise ConfigError(
                f"refusing to reset --output_dir {output_dir!r}: it holds files this program did not "
                f"write ({', '.join(sorted(foreign)[:3])}); choose another folder"
            )
    elif os.path.isdir(output_dir):
        check_identity(output_dir, identity)
    os.makedirs(output_dir, exist_ok=True)
    lock = FolderLock(output_dir).acquire()
    try:
        if reset:
            clear_folder(output_dir)
        path = os.path.join(output_dir, CONFIG_FILE)
        if not os.path.exists(path):
            atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    except BaseException:
        lock.release()
        raise
    return lock


def check_identity(output_dir, config):
    """Raise unless the run recorded in ``output_dir`` (if any) has the identity of ``config`` (a
    :class:`enas.config.run_config.RunConfig` or an identity dict). Reads only."""
    identity = config if isinstance(config, dict) else config.identity()
    path = os.path.join(output_dir, CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError) as e:
            raise CheckpointError(
                f"cannot read {path} ({e.__class__.__name__}); pass --reset_output_dir to start over "
                "or another --output_dir"
            ) from None
        if not isinstance(previous, dict):
            previous = {"(record)": previous}
        keys = (set(previous) | set(identity)) - {"config"}
        changed = sorted(k for k in keys if previous.get(k) != identity.get(k))
        if changed:
            k = changed[0]
            raise ConfigError(
                f"{output_dir!r} holds a run with a different {k} ({previous.get(k)!r}, now "
                f"{identity.get(k)!r}); pass --reset_output_dir to start over or use another --output_dir"
            )


def update_record(output_dir, config):
    """Rewrite ``config.json`` with ``config``'s whole configuration when it changed (e.g. more
    epochs on a rerun). Called once the run has resumed, so a run that fails to start (an
    unreadable checkpoint) leaves the folder as it was."""
    path = os.path.join(output_dir, CONFIG_FILE)
    record = {**config.identity(), "config": config.to_json()}
    try:
        with open(path) as f:
            if json.load(f) == record:
                return
    except (OSError, ValueError):
        pass
    atomic_write(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


class RunLog:
    """Print log lines to stdout (flushed, so ``>> file`` works; not with ``echo=False``) and
    append them to ``<output_dir>/stdout``."""

    def __init__(self, output_dir=None, stream=None, echo=True):
        self.stream = (stream or sys.stdout) if echo else None
        self.file = open(os.path.join(output_dir, LOG_FILE), "a") if output_dir else None

    def __call__(self, line=""):
        for out in (self.stream, self.file):
            if out is not None:
                out.write(line + "\n")
                out.flush()

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


class Checkpoints:
    """Per-epoch checkpoints of a ``tf.train.Checkpoint`` (keeps the last ``max_to_keep``).

    ``tf.train.Checkpoint`` does not follow Keras 3 layers held in Python lists and dicts (the
    child's cells, op registries, sep-conv stacks), so every Keras layer passed in is also
    tracked through a dict of *all* its variables keyed by their stable path in the layer tree.
    """

    def __init__(self, output_dir, max_to_keep=2, **trackables):
        for name, obj in list(trackables.items()):
            if isinstance(obj, keras.layers.Layer):
                trackables[f"{name}_variables"] = variables_by_path(obj)
        self.checkpoint = tf.train.Checkpoint(**trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, output_dir, max_to_keep=max_to_keep)
        self.output_dir = output_dir

    @staticmethod
    def latest(output_dir):
        """The path of the newest checkpoint in ``output_dir``, or ``None``."""
        return tf.train.latest_checkpoint(output_dir)

    def restore_latest(self, partial=False, directory=None):
        """Restore the newest checkpoint (of ``directory`` when given: a multi-worker run's
        other workers read the chief's); return its path, or ``None`` when there is none.

        Every tracked object must be found in it; with ``partial``, values in the checkpoint
        that nothing here tracks (e.g. an optimizer, when only the model is wanted) are fine.
        """
        path = self.manager.latest_checkpoint if directory is None else tf.train.latest_checkpoint(directory)
        if path is None:
            return None
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
            if partial:
                status.expect_partial()
        except Exception as e:  # noqa: BLE001 - any failure to read it is the same user-facing problem
            text = " ".join(str(e).split())
            if "not bound to checkpointed values" in text or "could not be found" in text:
                reason = "it does not match this network: another version or configuration wrote it"
            else:
                reason = text[:160] or e.__class__.__name__
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({reason}); pass --reset_output_dir to start over "
                "or another --output_dir"
            ) from None
        return path

    def save(self, seconds=None):
        """Write a checkpoint and return its path; ``seconds`` (the run's time so far, over all
        its sittings) is recorded for it in ``clock.json``."""
        path = self.manager.save()
        if seconds is not None:
            record = {"checkpoint": os.path.basename(path), "seconds": round(float(seconds), 1)}
            atomic_write(os.path.join(self.output_dir, CLOCK_FILE), json.dumps(record) + "\n")
        return path

    @staticmethod
    def seconds_at(path):
        """The run's time (seconds) recorded when checkpoint ``path`` was written; 0.0 when
        ``clock.json`` is missing, unreadable or recorded for another checkpoint (a run written
        before the clock was kept, or killed between the checkpoint and its record)."""
        try:
            with open(os.path.join(os.path.dirname(path), CLOCK_FILE)) as f:
                record = json.load(f)
            if record["checkpoint"] == os.path.basename(path):
                return float(record["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return 0.0


def variables_by_path(layer):
    """``{path: variable}`` for every weight of ``layer``, keyed by its stable path in the layer
    tree (``layer_3/ops/node0/x/op1/sep_conv_0/depthwise_kernel``; see
    :func:`enas.child.layer_paths.weights_by_path`), not by Keras' process-global automatic names."""
    table = {entry.path: entry.variable for entry in weights_by_path(layer)}
    known = {id(v) for v in table.values()}
    # Non-weight state (random seed generators) in creation order.
    extra = [v for v in layer.variables if id(v) not in known]
    table.update({f"(state)/{i}": v for i, v in enumerate(extra)})
    return table
