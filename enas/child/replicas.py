"""Per-replica helpers of the child's steps under a ``tf.distribute`` strategy.

The compiled steps (:mod:`enas.child.child_trainer`) and the ops (:mod:`enas.child.micro_ops`)
call these; outside a strategy, or with one replica, each is the identity (nothing here runs for
``--distribution default``). The strategy itself, and the workers' roles, are the run's:
:mod:`enas.run.distribute`.

* :func:`distribute_dataset` splits batches of the global batch size over the replicas;
* :func:`first_replica_value` makes every replica train the first replica's architecture;
* :func:`synchronized_batch_norm` / :func:`global_moments`: batch norm on the statistics of the
  global batch, also inside the search's ``switch_case`` branches (:func:`sum_over_replicas`).
"""

from __future__ import annotations

import contextlib
import threading

_SYNC = threading.local()


def num_replicas(strategy=None):
    """Replicas of ``strategy`` (of the current one when ``None``); 1 outside any."""
    import tensorflow as tf

    if strategy is None:
        strategy = tf.distribute.get_strategy()
    return strategy.num_replicas_in_sync


def distribute_dataset(strategy, dataset):
    """``dataset`` (batches of the global batch size) split over ``strategy``'s replicas, sharded
    per worker by data (each worker keeps its part of every global batch); unchanged without a
    strategy."""
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def in_replicas():
    """The replica context when the code runs inside ``strategy.run`` with two or more replicas
    in sync, else ``None``."""
    import tensorflow as tf

    context = tf.distribute.get_replica_context()  # None in a cross-replica context
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context


def first_replica_value(x):
    """``x`` as the first replica has it, on every replica (an all-reduce; ``x`` unchanged with
    one replica). A search step uses it so that every worker trains the same architecture."""
    import tensorflow as tf

    context = in_replicas()
    if context is None:
        return x
    keep = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
    value = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(x, tf.float32) * keep)
    return tf.cast(tf.round(value), x.dtype)


@contextlib.contextmanager
def synchronized_batch_norm(enabled=True):
    """Within this block (read when a step is traced) batch norm in training uses the statistics
    of the global batch across replicas (:func:`global_moments`)."""
    previous = getattr(_SYNC, "enabled", False), getattr(_SYNC, "token", None)
    _SYNC.enabled = bool(enabled)
    try:
        yield
    finally:
        _SYNC.enabled, _SYNC.token = previous


def sync_context():
    """The replica context to synchronise batch statistics over, or ``None`` (one replica, or
    outside :func:`synchronized_batch_norm`)."""
    return in_replicas() if getattr(_SYNC, "enabled", False) else None


def _launcher(context):
    """The strategy's collective launcher of this replica (TensorFlow's private
    ``CollectiveReplicaLauncher``: its device, group and instance keys, ordering token), or
    ``None`` when the strategy has none."""
    extended = context.strategy.extended
    collective = getattr(extended, "_collective_ops", None) or getattr(extended, "_cross_device_ops", None)
    launchers = getattr(collective, "_launchers", None)
    replica = getattr(context, "_replica_id", None)
    if not launchers or not isinstance(replica, int) or replica >= len(launchers):
        return None
    return launchers[replica]


def capture_ordering_token():
    """In a replica's step function, outside any branch: keep this replica's collective ordering
    token as a tensor of the step's graph, for :func:`sum_over_replicas` inside branches."""
    import tensorflow as tf

    context = in_replicas()
    launcher = None if context is None else _launcher(context)
    token = getattr(launcher, "_ordering_token", None)
    _SYNC.token = None if token is None else tf.identity(token.handle)


def sum_over_replicas(value, context):
    """The sum of the tensor ``value`` over the replicas of ``context``, differentiable (the
    gradient is the sum of the replicas' gradients), and valid inside ``tf.switch_case`` /
    ``tf.cond`` branches, where the search's ops run.

    ``ReplicaContext.all_reduce`` synchronises the replicas with a ``merge_call``, which
    TensorFlow refuses inside a branch (unless compiled with XLA on GPUs); and the strategy's
    collective launcher reads its ordering token as an eager tensor, which a branch's gradient
    cannot capture. So the collective op the launcher would make (``CollectiveReduceV2`` on this
    replica's device, its group, its next instance key) is made here with the ordering token
    captured in the step's graph (:func:`capture_ordering_token`); every replica runs the same
    branch, because every replica trains the same architecture. This reads private attributes of
    TensorFlow's strategies (pinned: 2.21); without them it falls back to
    ``ReplicaContext.all_reduce`` (fine outside branches)."""
    import tensorflow as tf

    launcher = _launcher(context)
    token = getattr(_SYNC, "token", None)
    if launcher is None or token is None:
        return context.all_reduce(tf.distribute.ReduceOp.SUM, value)

    def launch(tensor):
        instance_key = launcher._next_instance_key()
        with tf.device(launcher._device):
            return tf.raw_ops.CollectiveReduceV2(
                input=tensor, group_size=launcher._group_size, group_key=launcher._group_key,
                instance_key=instance_key, ordering_token=[token], merge_op="Add", final_op="Id",
                communication_hint=launcher._options.implementation.value)

    @tf.custom_gradient
    def summed(tensor):
        return launch(tensor), launch

    return summed(value)


def global_moments(x, context):
    """Mean and (biased) variance per channel of ``x`` ``(batch, H, W, C)`` over the batches of
    every replica, and the number of values per channel: ``(mean [C], variance [C], count)``.
    One all-reduce of ``[sum, sum of squares, count]`` (:func:`sum_over_replicas`); differentiable."""
    import tensorflow as tf

    channels = x.shape[-1]
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), x.dtype)
    local = tf.concat([tf.reduce_sum(x, axis=[0, 1, 2]), tf.reduce_sum(tf.square(x), axis=[0, 1, 2]),
                       tf.reshape(count, [1])], axis=0)
    total = sum_over_replicas(local, context)
    count = total[-1]
    mean = total[:channels] / count
    variance = tf.maximum(total[channels:2 * channels] / count - tf.square(mean), 0.0)
    return mean, variance, count
