"""Architecture controllers of the ENAS micro search space and their REINFORCE trainer.

A controller is a distribution over architectures (see :mod:`enas.space.arc`). An architecture for
cells of ``B`` nodes (``num_nodes``) is an int32 vector of ``8 * B`` integers: the normal cell
(``4 * B``) followed by the reduction cell (``4 * B``); node ``j`` of a cell is the four integers
``x_id x_op y_id y_op`` with ids in ``0 .. j + 1`` and ops in ``0 .. num_ops - 1``.

* :class:`Controller` -- the abstract base: ``sample()`` returns an :class:`ArcSample` (the arc,
  the log-probability of all its ``8 * B`` decisions and the sum of their entropies) and is
  traceable inside :func:`tf.function`. A child without normal layers (``normal_cell=False``, the
  MNIST scripts' two reduction layers) does not use the normal half: it is not decided but copied
  from the reduction cell (:func:`mirror_normal_cell`), so a controller decides only what the
  network is built from, one network is one arc, and a deeper network trained from the arc uses
  the searched cell in its normal layers too. Every controller draws its randomness from its own
  :class:`tf.random.Generator` (``seed`` -> reproducible sequence of arcs); the generator state is
  checkpointed with the controller.
* :class:`RandomController` -- uniform over valid arcs (random-search baseline; does not learn).
* :class:`ReinforceTrainer` -- the REINFORCE update of a learning controller such as
  :class:`enas.controller.micro_controller.MicroController`.

Reference: H. Pham, M. Y. Guan, B. Zoph, Q. V. Le, J. Dean, "Efficient Neural Architecture
Search via Parameter Sharing", ICML 2018 (arXiv:1802.03268); official code
``melodyguan/enas`` (``src/cifar10/micro_controller.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from enas.errors import ArcError, ConfigError
from enas.space.search_space import decision_choices


class ArcSample(NamedTuple):
    """One architecture and its probability under the controller.

    Attributes:
        arc: int32 ``[8 * B]``, normal cell then reduction cell, 4 ints per node.
        log_prob: float32 scalar, ``sum_k log p(a_k | a_<k)`` over all ``8 * B`` decisions.
        entropy: float32 scalar, sum over the decisions of the entropy of each decision's
            categorical distribution (given the earlier decisions).
    """

    arc: tf.Tensor
    log_prob: tf.Tensor
    entropy: tf.Tensor


def _check_positive_int(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _check_seed(seed) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def allowed_choices(num_nodes: int, num_ops: int, num_precisions: int = 1, normal_cell: bool = True) -> np.ndarray:
    """int32 ``[8 * B]``: the number of allowed values at each position of an arc.

    Position ``4 * j + 0`` and ``4 * j + 2`` (input ids of node ``j``) allow ``j + 2`` values,
    positions ``4 * j + 1`` and ``4 * j + 3`` (ops) allow ``num_ops``; same for both cells
    (:meth:`enas.space.search_space.SearchSpace.choices`). With ``num_precisions >= 2`` the ``4 * B``
    precision positions that follow allow ``num_precisions`` each (``[12 * B]`` in all).
    ``normal_cell=False`` (a child without normal layers): the normal cell's ``4 * B`` positions
    and its ``2 * B`` precision positions count one value each (they are not decided: a copy of
    the reduction cell's, :func:`mirror_normal_cell`).
    """
    choices = np.array(decision_choices(num_nodes, num_ops), dtype=np.int32)
    if num_precisions >= 2:
        choices = np.concatenate([choices, np.full(4 * num_nodes, num_precisions, np.int32)])
    if not normal_cell:
        choices[undecided_positions(num_nodes, num_precisions)] = 1
    return choices


def undecided_positions(num_nodes: int, num_precisions: int = 1) -> np.ndarray:
    """int ``[6 * B]`` (``[4 * B]`` without searched precisions): the arc positions of the normal cell
    (its ``4 * B`` decisions and its ``2 * B`` precision slots), which a child without normal layers
    does not use."""
    positions = np.arange(4 * num_nodes)
    if num_precisions >= 2:
        positions = np.concatenate([positions, 8 * num_nodes + np.arange(2 * num_nodes)])
    return positions


def mirror_normal_cell(arc, num_nodes: int, num_precisions: int = 1):
    """``arc`` (int ``[8 * B]``, or ``[12 * B]`` with searched precisions; a tensor or an array) with
    its normal cell replaced by a copy of its reduction cell, decisions and precision slots: the
    one arc of a network without normal layers. Returns a tensor (int32)."""
    n, m = 4 * num_nodes, 2 * num_nodes
    arc = tf.reshape(tf.cast(arc, tf.int32), [-1])
    parts = [arc[n:2 * n], arc[n:2 * n]]
    if num_precisions >= 2:
        parts += [arc[2 * n + m:2 * n + 2 * m], arc[2 * n + m:2 * n + 2 * m]]
    return tf.concat(parts, axis=0)


def uniform_entropy(num_nodes: int, num_ops: int, num_precisions: int = 1, normal_cell: bool = True) -> float:
    """The entropy (nats) of the uniform distribution over the architectures: the most a sample's
    summed decision entropy can be, ``sum log(choices)`` over the arc's positions (the reduction
    cell's alone when ``normal_cell`` is False)."""
    return float(np.log(allowed_choices(num_nodes, num_ops, num_precisions, normal_cell)).sum())


class Controller(tf.Module):
    """Abstract base of architecture controllers.

    Subclasses implement :meth:`sample` and :meth:`log_prob_of`. Both must be traceable inside a
    :func:`tf.function` (Python control flow only over static quantities) and take their
    randomness from ``self.rng``, a :class:`tf.random.Generator` owned (and so checkpointed) by
    the controller.

    Args:
        num_nodes: ``B``, nodes per cell.
        num_ops: number of candidate ops (5 in the ENAS micro space).
        num_precisions: precisions an op with weights may take; two or more add ``4 * B``
            precision decisions after the ``8 * B`` (see :func:`allowed_choices`).
        seed: seeds ``self.rng`` (``tf.random.Generator.from_seed``); None for a
            non-deterministic state.
        normal_cell: False when the child has no normal layer
            (:attr:`enas.config.child_config.ChildConfig.has_normal_layer`): the normal half of every
            arc copies its reduction cell (:func:`mirror_normal_cell`): not decided, nothing in
            ``log_prob`` and ``entropy``.
    """

    #: Whether the controller has trainable parameters that REINFORCE can update.
    _LEARNS = False

    def __init__(self, num_nodes: int = 5, num_ops: int = 5, *, num_precisions: int = 1,
                 seed: int | None = None, name: str | None = None, normal_cell: bool = True):
        super().__init__(name=name)
        self.num_nodes = _check_positive_int(num_nodes, "num_nodes")
        self.num_ops = _check_positive_int(num_ops, "num_ops")
        self.num_precisions = _check_positive_int(num_precisions, "num_precisions")
        self.normal_cell = bool(normal_cell)
        self.seed = _check_seed(seed)
        if self.seed is None:
            self.rng = tf.random.Generator.from_non_deterministic_state()
        else:
            self.rng = tf.random.Generator.from_seed(self.seed)

    @property
    def arc_length(self) -> int:
        """``8 * num_nodes`` (``12 * num_nodes`` when the precision is searched)."""
        return (12 if self.num_precisions >= 2 else 8) * self.num_nodes

    @property
    def uniform_entropy(self) -> float:
        """The most a sample's entropy can be: the uniform distribution's over the decided positions."""
        return uniform_entropy(self.num_nodes, self.num_ops, self.num_precisions, self.normal_cell)

    @property
    def learns(self) -> bool:
        """True if the controller has parameters to train (False for :class:`RandomController`)."""
        return self._LEARNS

    def sample(self) -> ArcSample:
        """Samples one architecture; see :class:`ArcSample`. Advances ``self.rng``."""
        raise NotImplementedError

    def log_prob_of(self, arc) -> ArcSample:
        """Log-probability and entropy of a given arc (int ``[8 * B]``) under the controller.

        Returns an :class:`ArcSample` whose ``arc`` is the given arc. Does not touch ``self.rng``.
        """
        raise NotImplementedError

    def _given_arc(self, arc) -> tf.Tensor:
        """``arc`` as int32 ``[8 * B]``; checked (raising :class:`ArcError`) if it is concrete. Without
        a normal cell its normal half becomes a copy of its reduction cell (whatever it held: the
        network does not use it)."""
        if not (tf.is_tensor(arc) and tf.is_symbolic_tensor(arc)):
            values = np.asarray(arc)
            if values.size != self.arc_length:
                raise ArcError(f"bad architecture: expected {self.arc_length} integers "
                               f"(2 cells x {self.num_nodes} nodes x {self.arc_length // (2 * self.num_nodes)}), "
                               f"got {values.size}")
            values = values.reshape(-1)
            if not np.issubdtype(values.dtype, np.integer):
                raise ArcError("bad architecture: the values must be integers")
            limits = allowed_choices(self.num_nodes, self.num_ops, self.num_precisions)
            bad = np.flatnonzero((values < 0) | (values >= limits))
            if bad.size:
                k = int(bad[0])
                raise ArcError(f"bad architecture: value {int(values[k])} at position {k} is "
                               f"outside 0..{int(limits[k]) - 1}")
        arc = tf.reshape(tf.cast(arc, tf.int32), [self.arc_length])
        if not self.normal_cell:
            arc = mirror_normal_cell(arc, self.num_nodes, self.num_precisions)
        return arc


class RandomController(Controller):
    """Uniform distribution over valid architectures (random search; does not learn).

    Every input id of node ``j`` is uniform over ``0 .. j + 1`` and every op uniform over
    ``0 .. num_ops - 1``, independently, so every valid arc has the same probability

        log p = -2 * sum_{j=0}^{B-1} 2 * (log(j + 2) + log(num_ops))

    (2 cells, 2 inputs and 2 ops per node; half of it with ``normal_cell=False``, whose normal half
    copies the reduction cell), and the entropy of the distribution is ``-log p``.
    """

    _LEARNS = False

    def __init__(self, num_nodes: int = 5, num_ops: int = 5, *, num_precisions: int = 1,
                 seed: int | None = None, name: str = "random_controller", normal_cell: bool = True):
        super().__init__(num_nodes, num_ops, num_precisions=num_precisions, seed=seed, name=name,
                         normal_cell=normal_cell)
        self._limits = allowed_choices(self.num_nodes, self.num_ops, self.num_precisions, self.normal_cell)
        self.uniform_log_prob = -float(np.sum(np.log(self._limits.astype(np.float64))))

    @tf.autograph.experimental.do_not_convert
    def sample(self) -> ArcSample:
        """Samples a uniformly random valid arc (one ``rng.uniform`` draw of ``8 * B`` floats)."""
        limits = tf.constant(self._limits, tf.int32)
        u = self.rng.uniform([self.arc_length], dtype=tf.float64)
        arc = tf.cast(tf.floor(u * tf.cast(limits, tf.float64)), tf.int32)
        arc = tf.minimum(arc, limits - 1)
        if not self.normal_cell:
            arc = mirror_normal_cell(arc, self.num_nodes, self.num_precisions)
        return ArcSample(arc, tf.constant(self.uniform_log_prob, tf.float32),
                         tf.constant(-self.uniform_log_prob, tf.float32))

    @tf.autograph.experimental.do_not_convert
    def log_prob_of(self, arc) -> ArcSample:
        """The constant uniform log-probability (and entropy) for any valid ``arc``."""
        arc = self._given_arc(arc)
        return ArcSample(arc, tf.constant(self.uniform_log_prob, tf.float32),
                         tf.constant(-self.uniform_log_prob, tf.float32))


class _Callable:
    """Holds a callable out of sight of TensorFlow's object tracking (not checkpointed)."""

    def __init__(self, fn):
        self.fn = fn


class ReinforceTrainer(tf.Module):
    """REINFORCE with a moving-average baseline for a learning :class:`Controller` (ENAS).

    One :meth:`train_step` draws ``num_aggregate`` architectures ``a_n ~ p_theta``; for each

        R_n = reward_fn(a_n) + entropy_weight * H_n            (H_n: summed decision entropies)
        b  <- b - (1 - baseline_decay) * (b - R_n)             (baseline, updated before use)
        L_n = -log p_theta(a_n) * stop_gradient(R_n - b)

    and then applies ``g = (1 / num_aggregate) * sum_n grad_theta L_n`` with Adam
    (``beta_1 = 0``, ``epsilon = 1e-3``, as ENAS), after clipping ``g`` to global norm
    ``grad_bound`` if given. Minimising ``L_n`` raises ``log p(a_n)`` when ``R_n > b``: this is
    the ENAS loss ``sample_log_prob * (reward - baseline)``, whose ``sample_log_prob`` is the
    cross-entropy, i.e. the negative log-probability (Pham et al. 2018, Sec. 2.2; Williams 1992).

    The whole update (including the loop over the ``num_aggregate`` samples, a
    :func:`tf.while_loop`) is one :func:`tf.function` traced once: all state lives in
    tf.Variables (``baseline``, ``step``, the optimizer's slots, the controller's weights and
    RNG state), so a :class:`tf.distribute.Strategy` could wrap :meth:`_update` later.
    ``trace_count`` counts its traces (tests assert it stays 1).

    Args:
        controller: a controller with ``learns == True``.
        reward_fn: ``reward_fn(arc: int32 [arc_length]) -> float32 scalar`` (the accuracy of the
            child network on a validation minibatch), or a pair ``(accuracy, reward)`` when the
            reward is not the accuracy (the cost-aware search: accuracy times a cost factor;
            ``R_n`` then uses the reward, ``accuracy`` in the logs stays the accuracy); traced into the compiled step, so it must be
            TensorFlow-traceable (it may call Keras models and iterate tf.data iterators). Unless
            it already is a :func:`tf.function`, it is wrapped in one (with autograph), so its
            Python code runs once, at the single trace of the step.
        learning_rate: Adam learning rate.
        entropy_weight: weight of the sample entropy added to the reward (None or 0: none).
        baseline_decay: decay of the exponential moving-average baseline.
        num_aggregate: samples whose gradients are averaged into one update.
        grad_bound: clip the averaged gradient to this global norm (None: no clipping).

    Checkpoint with ``tf.train.Checkpoint(controller=controller, trainer=trainer)``.
    """

    def __init__(self, controller: Controller, reward_fn: Callable[[tf.Tensor], tf.Tensor], *,
                 learning_rate: float = 0.0035, entropy_weight: float | None = 1e-4,
                 baseline_decay: float = 0.99, num_aggregate: int = 10,
                 grad_bound: float | None = None, name: str = "reinforce_trainer"):
        super().__init__(name=name)
        if not isinstance(controller, Controller):
            raise ConfigError(f"controller must be a Controller, got {type(controller).__name__}")
        if not controller.learns:
            raise ConfigError(f"{type(controller).__name__} does not learn; REINFORCE needs a "
                              "learning controller such as MicroController")
        if not callable(reward_fn):
            raise ConfigError("reward_fn must be callable")
        if not learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
        if not 0.0 <= baseline_decay <= 1.0:
            raise ConfigError(f"baseline_decay must be in [0, 1], got {baseline_decay!r}")
        if grad_bound is not None and not grad_bound > 0:
            raise ConfigError(f"grad_bound must be > 0 or None, got {grad_bound!r}")
        self.controller = controller
        if not isinstance(reward_fn, tf.types.experimental.GenericFunction):
            # Autograph for the user's code only; the controller graph is built without it.
            reward_fn = tf.function(reward_fn)
        self._reward = _Callable(reward_fn)
        self.learning_rate = float(learning_rate)
        self.entropy_weight = float(entropy_weight or 0.0)
        self.baseline_decay = float(baseline_decay)
        self.num_aggregate = _check_positive_int(num_aggregate, "num_aggregate")
        self.grad_bound = None if grad_bound is None else float(grad_bound)

        self._train_vars = _Callable(tuple(controller.trainable_variables))
        if not self._train_vars.fn:
            raise ConfigError(f"{type(controller).__name__} has no trainable variables")
        self.optimizer = keras.optimizers.Adam(self.learning_rate, beta_1=0.0, epsilon=1e-3)
        self.optimizer.build(list(self._train_vars.fn))
        self.baseline = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="baseline")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.trace_count = 0
        self._compiled = _Callable(tf.function(self._update, autograph=False))

    def train_step(self) -> dict[str, tf.Tensor]:
        """One controller update (``num_aggregate`` samples); returns scalars for logging.

        Keys: ``loss`` (mean ``L_n``), ``entropy`` (mean ``H_n``), ``grad_norm`` (global norm of
        the averaged gradient, before clipping), ``accuracy`` (mean ``reward_fn``), ``reward``
        (mean ``R_n``), ``baseline`` (after the update) and ``arc`` (the last sampled arc,
        int32 ``[8 * B]``).
        """
        return self._compiled.fn()

    def _sample_and_grads(self):
        """Per-sample work: sample, reward, baseline update, gradient of ``L_n``."""
        variables = self._train_vars.fn
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            sample = self.controller.sample()
            with tape.stop_recording():
                accuracy, shaped = _accuracy_and_reward(self._reward.fn(sample.arc))
                reward = shaped + self.entropy_weight * sample.entropy
                self.baseline.assign_sub(
                    (1.0 - self.baseline_decay) * (self.baseline - reward))
                advantage = tf.stop_gradient(reward - self.baseline)
            loss = -sample.log_prob * advantage
        grads = tape.gradient(loss, variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                 for g, v in zip(grads, variables)]
        return grads, loss, sample.entropy, accuracy, reward, sample.arc

    def _update(self):
        """The compiled body of :meth:`train_step` (traced once)."""
        self.trace_count += 1
        variables = self._train_vars.fn
        n = self.num_aggregate
        inv_n = 1.0 / n

        def body(i, grad_sums, loss_sum, ent_sum, acc_sum, reward_sum, _):
            grads, loss, entropy, accuracy, reward, arc = self._sample_and_grads()
            grad_sums = [s + g * inv_n for s, g in zip(grad_sums, grads)]
            return (i + 1, grad_sums, loss_sum + loss, ent_sum + entropy, acc_sum + accuracy,
                    reward_sum + reward, arc)

        zero = tf.constant(0.0, tf.float32)
        loop_vars = (tf.constant(0, tf.int32), [tf.zeros_like(v) for v in variables],
                     zero, zero, zero, zero,
                     tf.zeros([self.controller.arc_length], tf.int32))
        _, grads, loss_sum, ent_sum, acc_sum, reward_sum, arc = tf.while_loop(
            lambda i, *_: i < n, body, loop_vars, parallel_iterations=1)

        grad_norm = tf.linalg.global_norm(grads)
        if self.grad_bound is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_bound, use_norm=grad_norm)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.step.assign_add(1)
        return {
            "loss": loss_sum * inv_n,
            "entropy": ent_sum * inv_n,
            "grad_norm": grad_norm,
            "accuracy": acc_sum * inv_n,
            "reward": reward_sum * inv_n,
            "baseline": tf.identity(self.baseline.read_value()),
            "arc": arc,
        }


def _accuracy_and_reward(out):
    """``reward_fn``'s result as float32 scalars ``(accuracy, reward)``: a scalar is both; a pair is
    ``(accuracy, reward)`` (e.g. the accuracy and the accuracy times a cost factor)."""
    if isinstance(out, (tuple, list)):
        accuracy, reward = out
    else:
        accuracy = reward = out
    return (tf.reshape(tf.cast(accuracy, tf.float32), []), tf.reshape(tf.cast(reward, tf.float32), []))


__all__ = ["ArcSample", "Controller", "RandomController", "ReinforceTrainer", "allowed_choices", "mirror_normal_cell",
           "undecided_positions",
           "uniform_entropy"]
