"""Scale-out on ``tf.distribute``: a run's strategy and its workers' roles (the per-replica helpers of
the steps are :mod:`enas.child.replicas`).

``--distribution`` (:class:`enas.config.run_config.DistributeConfig`) picks the strategy:

==================  ==========================================================================
``default``         no strategy: today's single-device path, unchanged
``mirrored``        ``tf.distribute.MirroredStrategy`` over ``--num_devices`` GPUs of this host
                    (0: all); with no GPU, the CPU split into ``--num_devices`` logical devices
                    (for testing: the same code path as GPUs, on one machine)
``multi_worker``    ``tf.distribute.MultiWorkerMirroredStrategy`` over the hosts named by the
                    standard ``TF_CONFIG`` environment variable (one process per host)
==================  ==========================================================================

What changes under a strategy (the rest of the code is the same):

* the steps run once per replica (``strategy.run``) on its share of the *global* batch
  (``--batch_size``); the loss is averaged over the global batch, so the gradient, and therefore
  the learning rate, mean what they mean on one device (no rescaling when the replica count
  changes);
* gradients are summed over the replicas before the norm is clipped, batch norm uses the
  statistics of the global batch (``--sync_batch_norm``, :func:`synchronized_batch_norm`), and a
  search step trains every replica on the architecture of the first one
  (:func:`first_replica_value`);
* datasets are split per worker (:func:`distribute_dataset`, auto-shard policy ``DATA`` set
  explicitly);
* the chief writes the run folder; every other worker writes to a temporary folder of its own
  (the TensorFlow rule) and resumes from the chief's checkpoint (:class:`Worker`), so the output
  folder must be on storage every worker reads.

Nothing here runs for ``default``.
"""

from __future__ import annotations

import json
import os
import tempfile

from enas.child.replicas import num_replicas
from enas.errors import ConfigError

_STRATEGIES = {}


def make_strategy(config):
    """The ``tf.distribute`` strategy of a :class:`~enas.config.run_config.DistributeConfig` (``None`` for
    ``default``), one per process and setting (a study runs many phases; a process joins its
    cluster once). Call it before TensorFlow runs anything: splitting the CPU and joining a
    cluster are only possible then. Raises :class:`ConfigError` (one line) for a setting this
    host cannot meet."""
    if config.distribution == "default":
        return None
    key = (config.distribution, config.num_devices)
    if key not in _STRATEGIES:
        import tensorflow as tf

        if config.distribution == "mirrored":
            _STRATEGIES[key] = tf.distribute.MirroredStrategy(mirrored_devices(config.num_devices))
        else:
            read_tf_config()
            _STRATEGIES[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _STRATEGIES[key]


def mirrored_devices(num_devices=0):
    """The devices of a mirrored run: the first ``num_devices`` GPUs (0: all of them), or, on a
    host without GPUs, ``num_devices`` logical CPU devices (0: one)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = num_devices or len(gpus)
        if count > len(gpus):
            raise ConfigError(f"--num_devices {count}: this host has {len(gpus)} GPU(s)")
        return [f"/gpu:{i}" for i in range(count)]
    return split_cpu(num_devices or 1)


def split_cpu(count):
    """Names of ``count`` logical devices made by splitting the host's CPU (they share its cores).
    TensorFlow allows the split only before it starts; afterwards the devices it already has are
    used if there are enough."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # TensorFlow has started: keep its devices
        pass
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < count:
        raise ConfigError(f"--num_devices {count}: TensorFlow already started with {len(devices)} CPU device(s); "
                          "start a new process")
    return [d.name for d in devices[:count]]


def read_tf_config():
    """``(cluster, task)`` of the ``TF_CONFIG`` environment variable, checked. Raises
    :class:`ConfigError` when it is missing or malformed."""
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ConfigError(f"--distribution multi_worker needs the TF_CONFIG environment variable, e.g. {example}")
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], task["index"]
        members = cluster[kind]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"TF_CONFIG is not a cluster description ({raw[:60]!r}); write it as {example}") from None
    if kind not in ("chief", "worker") or not isinstance(index, int) or not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG task {task!r} names no chief or worker of its cluster; write it as {example}")
    return cluster, task


def is_chief(strategy):
    """This process writes the run folder: always, but for the non-chief workers of a
    multi-worker run (the chief is task ``chief``, or worker 0 of a cluster without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if strategy is None or resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and \
        "chief" not in resolver.cluster_spec().as_dict()


class Worker:
    """The role of this process in a run under ``strategy``: ``is_chief``, ``write_dir`` (the run
    folder for the chief, a temporary folder of this worker's otherwise) and ``read_dir`` (the
    run folder, where every worker resumes from)."""

    def __init__(self, strategy, output_dir):
        self.strategy = strategy
        self.is_chief = is_chief(strategy)
        self.read_dir = output_dir
        if self.is_chief:
            self.write_dir = output_dir
        else:
            resolver = strategy.cluster_resolver
            self.write_dir = os.path.join(tempfile.gettempdir(),
                                          f"qenas-{resolver.task_type}-{resolver.task_id}-{os.getpid()}")

    def check_same_epoch(self, epoch):
        """Raise unless every worker resumed at ``epoch`` (a worker that could not read the
        chief's checkpoint would otherwise train from other weights)."""
        if self.strategy is None or self.is_chief and num_replicas(self.strategy) == 1:
            return
        import tensorflow as tf

        value = tf.constant([epoch], tf.int64)

        @tf.function
        def every_workers_epoch():
            return self.strategy.gather(self.strategy.run(tf.identity, args=(value,)), axis=0)

        epochs = every_workers_epoch()
        low, high = int(tf.reduce_min(epochs)), int(tf.reduce_max(epochs))
        if low != high:
            from enas.errors import CheckpointError

            raise CheckpointError(
                f"the workers resumed at different epochs ({low} and {high}): every worker must read "
                f"the chief's checkpoints in --output_dir {self.read_dir!r} (put it on a shared folder)")


def describe(strategy, config, global_batch, worker):
    """The log's line on the distribution: strategy, replicas, batch split, batch norm, role."""
    replicas = num_replicas(strategy)
    devices = ", ".join(getattr(strategy.extended, "worker_devices", ()))
    role = "" if config.distribution != "multi_worker" else \
        f"; this process: {'chief' if worker.is_chief else 'worker'} ({worker.write_dir})"
    norm = "synchronized" if config.sync_batch_norm else "per-replica"
    return (f"Distribution: {config.distribution}, {replicas} replica(s) ({devices}); global batch {global_batch} "
            f"= {replicas} x {global_batch // replicas}; {norm} batch norm{role}")
