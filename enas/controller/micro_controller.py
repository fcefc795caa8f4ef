"""The ENAS micro-search controller: an LSTM with attention over earlier nodes.

A TensorFlow 2 port of ``MicroController`` of the official ENAS code (``melodyguan/enas``,
``src/cifar10/micro_controller.py``; Pham et al., "Efficient Neural Architecture Search via
Parameter Sharing", ICML 2018, Sec. 2.4 / Appendix). Notation: ``S`` = ``lstm_size``,
``B`` = ``num_nodes``, ``K`` = ``num_ops``; every tensor below has a leading batch dim of 1.

Parameters (all initialised U(-0.1, 0.1) except ``b_soft``):

* ``w_lstm[l]`` ``[2S, 4S]`` -- LSTM layer ``l`` (no bias), gates ``i, f, o, g`` from
  ``[x, h_prev] @ w_lstm[l]``: ``c' = sig(i) * tanh(g) + sig(f) * c``, ``h' = sig(o) * tanh(c')``;
* ``g_emb`` ``[1, S]`` -- the "go" input;
* ``w_emb`` ``[K, S]`` -- op embeddings (the input after an op decision);
* ``w_soft`` ``[S, K]``, ``b_soft`` ``[1, K]`` initialised ``[b, b, 0, ...]`` (ENAS: b = 10; see
  :meth:`MicroController._op_prior`) -- op logits;
* ``w_attn_1``, ``w_attn_2`` ``[S, S]``, ``v_attn`` ``[S, 1]`` -- attention over anchors;
* ``b_soft_no_learn`` (constant) ``[0.25, 0.25, -0.25, ...]``, added to the op logits of the
  normal cell only.

Sampling one cell (ENAS ``_build_sampler``). Two LSTM steps on ``g_emb`` stand for the two cell
inputs (ids 0, 1): their anchors are zeros and their attention keys ``h @ w_attn_1``. For node
``j`` (id ``j + 2``), with ``A`` the anchors and ``W1 = [a @ w_attn_1 for a in A]`` (``j + 2``
rows):

* two input ids: ``h = LSTM(x)``; ``logits = (tanh(W1 + h @ w_attn_2) @ v_attn)^T`` ``[1, j+2]``,
  ``logits /= temperature`` (if set), ``logits = tanh_constant * tanh(logits)`` (if set); the
  next LSTM input is the chosen anchor ``A[id]``;
* two ops: ``h = LSTM(x)``; ``logits = h @ w_soft + b_soft`` ``[1, K]``, ``/= temperature``,
  ``logits = (tanh_constant / op_tanh_reduce) * tanh(logits)`` (if ``tanh_constant`` set),
  ``+= b_soft_no_learn`` in the normal cell; the next input is ``w_emb[op]``;
* one more LSTM step on the last op embedding gives the node's anchor ``h``, appended to ``A``
  (and ``h @ w_attn_1`` to ``W1``); the next node starts again from input ``g_emb``.

Each decision is categorical over ``softmax(logits)``; its log-probability is
``-sparse_softmax_cross_entropy(logits, choice)`` and its entropy
``-sum softmax(logits) * log_softmax(logits)`` (under ``stop_gradient``, as ENAS). The arc
stores node ``j`` as ``[x_id, x_op, y_id, y_op]`` (decision order ``x_id, y_id, x_op, y_op``). The
reduction cell continues from the normal cell's final LSTM state. ``log_prob`` and ``entropy``
of an :class:`~enas.controller.controller.ArcSample` are summed over both cells. Without a normal
cell (``normal_cell=False``: the child has reduction layers only) the normal cell is not sampled:
the reduction cell starts from the zero LSTM state, the normal half of the arc is a copy of it
(its op rows one-hot at the copied ops), and ``log_prob`` and ``entropy`` are the reduction
cell's alone.

Precision decisions (``num_precisions = P >= 2``, a mixed-precision search): after each op
decision, one more LSTM step on ``w_emb[op]``, ``logits = h @ w_prec + b_prec`` ``[1, P]``
(squashed with the ids' ``tanh_constant``, not the ops' reduced one, so that a budget of low
precisions can be reached with high probability), a categorical choice stored at position ``8B + 2B * cell + 2j +
slot`` of the ``[12B]`` vector, and the next input ``w_prec_emb[precision]``. The choice of an op
without weights means nothing: its log-probability and entropy are multiplied by 0.

Randomness: one ``self.rng.make_seeds(8B)`` per arc gives each decision its own stateless seed
(``tf.random.stateless_categorical``), so a seeded controller reproduces its sequence of arcs,
also after restoring a checkpoint (the generator state is a checkpointed variable).
:meth:`MicroController.log_prob_of` runs the same computation with the decisions taken from a
given arc (teacher forcing) instead of sampled.
"""

from __future__ import annotations

import types
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from enas.controller.controller import ArcSample, Controller, _check_positive_int
from enas.errors import ConfigError

# The graph is plain TensorFlow with static Python loops: no autograph conversion needed (it
# would only slow down tracing when a caller's tf.function has autograph on).
_do_not_convert = tf.autograph.experimental.do_not_convert


class _Unrolled(NamedTuple):
    arc: tf.Tensor  # int32 [8B]
    log_prob: tf.Tensor  # float32 []
    entropy: tf.Tensor  # float32 []
    op_probs: tf.Tensor  # float32 [4B, K]: softmax of each op decision, in arc order
    decisions: list  # (position, logits before squashing [1, n], probabilities [1, n], weight), call order


class Decision(NamedTuple):
    """One decision of an architecture under the controller (:meth:`MicroController.decisions`).

    Attributes:
        position: index in the arc vector (``8B + ..`` for a precision decision).
        kind: ``"input"``, ``"op"`` or ``"precision"``.
        cell: ``"normal"`` or ``"reduction"``.
        node: ``j``, the node of the cell (its id is ``j + 2``).
        choice: the value the arc holds at ``position``.
        probabilities: float32 ``[n]`` (``n`` = ``j + 2`` ids, ``K`` ops or ``P`` precisions), the
            distribution the choice is drawn from given the earlier decisions; sums to 1.
        logits: float32 ``[n]``, the logits before the ``tanh_constant * tanh(.)`` squashing
            (after the temperature); a logit with ``|x| >= 3`` passes less than 1% of its gradient
            (``1 - tanh(x)^2``).
        weight: 1, or 0 for the precision of an op without weights (it counts for nothing).
    """

    position: int
    kind: str
    cell: str
    node: int
    choice: int
    probabilities: np.ndarray
    logits: np.ndarray
    weight: float

    @property
    def entropy(self) -> float:
        """``-sum p log p`` of :attr:`probabilities` (nats), times :attr:`weight`."""
        p = self.probabilities.astype(np.float64)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() * self.weight)

    @property
    def frozen(self) -> bool:
        """Every logit is squashed where ``tanh`` passes less than 1% of its gradient (``|x| >= 3``):
        REINFORCE can hardly move this decision any more."""
        return bool(np.all(np.abs(self.logits) >= 3.0))


class MicroController(Controller):
    """ENAS micro controller (see the module docstring for the exact computation).

    Args:
        num_nodes: ``B``, nodes per cell (ENAS: 5).
        num_ops: ``K``, candidate ops (5).
        lstm_size: ``S``, LSTM width (ENAS CIFAR-10 micro search: 64).
        lstm_num_layers: stacked LSTM layers (1).
        tanh_constant: ``C`` in ``C * tanh(logits)`` for every decision (None: no squashing).
        op_tanh_reduce: op logits use ``C / op_tanh_reduce`` instead of ``C``.
        temperature: divides all logits before squashing (None: 1).
        seed: seeds both the weight initialisation and the sampling generator ``self.rng``;
            same seed -> same weights and the same sequence of sampled arcs.
        normal_cell: False when the child has no normal layer: only the reduction cell is decided.
    """

    _LEARNS = True
    # ENAS initialises ``b_soft`` at 10 for the two separable convs: under its constants (1.10 and
    # 2.5) their squashed logit starts at 0.44 * tanh(10) = 0.44 (63% of the op choices).
    ORIGINAL_OP_PRIOR = 1.10 / 2.5 * float(np.tanh(10.0))

    def _op_prior(self):
        """The initial ``b_soft`` of the separable convs: 10 (ENAS) under ENAS's constants, and
        under others the value whose squashed logit is ENAS's, so that the untrained controller
        samples what ENAS's does (same op frequencies and entropy) whatever ``tanh_constant``
        (which then only bounds how far it can concentrate)."""
        if self.tanh_constant is None:
            return 10.0
        op_bound = self.tanh_constant / self.op_tanh_reduce
        scale = 1.0 if self.temperature is None else self.temperature
        if op_bound <= self.ORIGINAL_OP_PRIOR / np.tanh(10.0) + 1e-9:
            return 10.0
        return float(np.arctanh(self.ORIGINAL_OP_PRIOR / op_bound) * scale)

    def __init__(self, num_nodes: int = 5, num_ops: int = 5, lstm_size: int = 64,
                 lstm_num_layers: int = 1, tanh_constant: float | None = 1.10,
                 op_tanh_reduce: float = 2.5, temperature: float | None = None,
                 seed: int | None = None, name: str = "micro_controller", num_precisions: int = 1,
                 weighted_ops=(1, 1, 0, 0, 0), normal_cell: bool = True):
        super().__init__(num_nodes, num_ops, num_precisions=num_precisions, seed=seed, name=name,
                         normal_cell=normal_cell)
        # 1 for the ops with weights (whose precision decision counts), in op order.
        self.weighted_ops = tuple(int(w) for w in weighted_ops)[:num_ops]
        self.lstm_size = _check_positive_int(lstm_size, "lstm_size")
        self.lstm_num_layers = _check_positive_int(lstm_num_layers, "lstm_num_layers")
        if tanh_constant is not None and not tanh_constant > 0:
            raise ConfigError(f"tanh_constant must be > 0 or None, got {tanh_constant!r}")
        if not op_tanh_reduce > 0:
            raise ConfigError(f"op_tanh_reduce must be > 0, got {op_tanh_reduce!r}")
        if temperature is not None and not temperature > 0:
            raise ConfigError(f"temperature must be > 0 or None, got {temperature!r}")
        self.tanh_constant = None if tanh_constant is None else float(tanh_constant)
        self.op_tanh_reduce = float(op_tanh_reduce)
        self.temperature = None if temperature is None else float(temperature)

        size, k = self.lstm_size, self.num_ops
        # Weight init from its own stream, independent of the sampling generator.
        init_rng = np.random.default_rng(
            None if self.seed is None else np.random.SeedSequence([self.seed, 0x5EED]))

        def uniform(shape, name):
            value = init_rng.uniform(-0.1, 0.1, size=shape).astype(np.float32)
            return tf.Variable(value, name=name)

        with self.name_scope:
            self.w_lstm = [uniform([2 * size, 4 * size], f"w_lstm_{layer}")
                           for layer in range(self.lstm_num_layers)]
            self.g_emb = uniform([1, size], "g_emb")
            self.w_emb = uniform([k, size], "w_emb")
            self.w_soft = uniform([size, k], "w_soft")
            b_init = np.array(([self._op_prior()] * 2 + [0.0] * k)[:k], np.float32).reshape(1, k)
            self.b_soft = tf.Variable(b_init, name="b_soft")
            self.w_attn_1 = uniform([size, size], "w_attn_1")
            self.w_attn_2 = uniform([size, size], "w_attn_2")
            self.v_attn = uniform([size, 1], "v_attn")
            if self.num_precisions >= 2:
                p = self.num_precisions
                self.w_prec = uniform([size, p], "w_prec")
                self.b_prec = tf.Variable(np.zeros([1, p], np.float32), name="b_prec")
                self.w_prec_emb = uniform([p, size], "w_prec_emb")
        self._b_soft_no_learn = np.array(
            ([0.25, 0.25] + [-0.25] * k)[:k], np.float32).reshape(1, k)

        arc_spec = tf.TensorSpec([self.arc_length], tf.int32)
        # Compiled entry points for eager callers (each traced once); inside a caller's
        # tf.function the graph bodies are called directly.
        self._sample_fn = tf.function(self._sample_graph, autograph=False)
        self._teacher_fn = tf.function(self._teacher_graph, input_signature=[arc_spec],
                                       autograph=False)

    @property
    def b_soft_no_learn(self) -> tf.Tensor:
        """Constant ``[1, K]`` bias added to the normal cell's op logits."""
        return tf.constant(self._b_soft_no_learn)

    # ----------------------------------------------------------------------------------------
    # Public API

    @_do_not_convert
    def sample(self) -> ArcSample:
        """Samples an arc (int32 ``[8B]``) with its summed log-probability and entropy.

        Traceable; called eagerly it runs a compiled graph (traced once). Advances ``self.rng``.
        """
        if tf.executing_eagerly():
            return self._sample_fn()
        return self._sample_graph()

    @_do_not_convert
    def log_prob_of(self, arc) -> ArcSample:
        """Teacher-forced log-probability and entropy of ``arc`` (int ``[8B]``).

        Runs the sampler's computation with the decisions of ``arc`` instead of sampled ones, so
        ``log_prob_of(s.arc).log_prob == s.log_prob`` for a sample ``s`` (same weights).
        Differentiable with respect to the weights. Does not use ``self.rng``.
        """
        arc = self._given_arc(arc)
        if tf.executing_eagerly():
            return self._teacher_fn(arc)[0]
        return self._teacher_graph(arc)[0]

    @_do_not_convert
    def op_probabilities(self, arc) -> tf.Tensor:
        """float32 ``[4B, K]``: the op distribution of every op decision along ``arc``.

        Row ``2 * j + s`` is slot ``s`` (0: x, 1: y) of node ``j`` of the normal cell, rows
        ``2B ..`` the reduction cell; each row is ``softmax(logits)`` given the earlier
        decisions of ``arc`` (teacher forcing).
        """
        arc = self._given_arc(arc)
        if tf.executing_eagerly():
            return self._teacher_fn(arc)[1]
        return self._teacher_graph(arc)[1]

    # ----------------------------------------------------------------------------------------
    # Graph bodies

    def _sample_graph(self) -> ArcSample:
        out = self._unroll(None)
        return ArcSample(out.arc, out.log_prob, out.entropy)

    def _teacher_graph(self, arc) -> tuple[ArcSample, tf.Tensor]:
        out = self._unroll(arc)
        return ArcSample(out.arc, out.log_prob, out.entropy), out.op_probs

    def decisions(self, arc) -> list[Decision]:
        """Every decision along ``arc`` (int ``[8B]``, or ``[12B]`` with precisions) under the
        current weights, in arc order: what the controller has learned, decision by decision.

        Eager only (an analysis tool: see ``benchmarks/controller_policy.py``); teacher forcing as
        :meth:`log_prob_of`, whose entropy is the sum of the decisions' :attr:`Decision.entropy`.
        Without a normal cell, only the reduction cell's decisions (the others are not made).
        Does not touch ``self.rng``.
        """
        if not tf.executing_eagerly():
            raise RuntimeError("MicroController.decisions runs eagerly, not inside a tf.function")
        arc = self._given_arc(arc)
        values = arc.numpy()
        per_cell = 4 * self.num_nodes
        out = []
        for position, logits, probs, weight in self._unroll(arc).decisions:
            if position < 2 * per_cell:  # node j of a cell: x_id x_op y_id y_op
                cell, within = divmod(position, per_cell)
                node, kind = within // 4, ("input" if position % 2 == 0 else "op")
            else:  # precision slot 2B * cell + 2j + s
                cell, within = divmod(position - 2 * per_cell, 2 * self.num_nodes)
                node, kind = within // 2, "precision"
            out.append(Decision(int(position), kind, ("normal", "reduction")[cell], int(node), int(values[position]),
                                probs.numpy().reshape(-1), logits.numpy().reshape(-1),
                                1.0 if weight is None else float(weight.numpy())))
        return sorted(out, key=lambda d: d.position)

    def _unroll(self, given) -> _Unrolled:
        """Both cells; samples if ``given`` is None, else teacher-forces int32 ``[8B]``.

        The graph is unrolled in Python (``B`` is static). Variables are read and constants
        created once per trace to keep the graph (and so the tracing time) small.
        """
        n = self.arc_length
        if given is None:
            seeds = self.rng.make_seeds(n)  # int64 [2, 8B]: one stateless seed per decision
            # 8B x [2]; no transpose: oneDNN's int64 transpose logs a (harmless) C++ ERROR line
            choices = tf.unstack(seeds, num=n, axis=1)
        else:
            choices = tf.unstack(tf.reshape(given, [n, 1]), num=n)  # 8B x int32 [1]
        ctx = _Context(
            sample=given is None,
            choices=choices,
            axis1=tf.constant(1, tf.int32),
            one=tf.constant(1.0, tf.float32),
            zero=tf.constant(0.0, tf.float32),
            w_lstm=[tf.convert_to_tensor(w) for w in self.w_lstm],
            g_emb=tf.convert_to_tensor(self.g_emb),
            w_emb=tf.convert_to_tensor(self.w_emb),
            w_soft=tf.convert_to_tensor(self.w_soft),
            b_soft=tf.convert_to_tensor(self.b_soft),
            w_attn_1=tf.convert_to_tensor(self.w_attn_1),
            w_attn_2=tf.convert_to_tensor(self.w_attn_2),
            v_attn_row=tf.reshape(self.v_attn, [1, self.lstm_size]),
            inv_temperature=(None if self.temperature is None
                             else tf.constant(1.0 / self.temperature, tf.float32)),
            attn_tanh=(None if self.tanh_constant is None
                       else tf.constant(self.tanh_constant, tf.float32)),
            op_tanh=(None if self.tanh_constant is None
                     else tf.constant(self.tanh_constant / self.op_tanh_reduce, tf.float32)),
            b_soft_no_learn=tf.constant(self._b_soft_no_learn),
            log_probs=[], entropies=[], op_probs=[], decisions=[])
        if self.num_precisions >= 2:
            ctx.w_prec = tf.convert_to_tensor(self.w_prec)
            ctx.b_prec = tf.convert_to_tensor(self.b_prec)
            ctx.w_prec_emb = tf.convert_to_tensor(self.w_prec_emb)
            ctx.weighted = tf.constant(self.weighted_ops, tf.float32)
            ctx.precisions = [None] * (4 * self.num_nodes)
        zeros = tf.zeros([1, self.lstm_size], tf.float32)
        state = ([zeros] * self.lstm_num_layers, [zeros] * self.lstm_num_layers)
        if self.normal_cell:
            arc_n, state = self._cell(ctx, state, 0, use_bias=True)
        arc_r, _ = self._cell(ctx, state, 4 * self.num_nodes, use_bias=False)
        if not self.normal_cell:  # not used by the child: a copy of the reduction cell, not decided
            arc_n = list(arc_r)
            ctx.op_probs.insert(0, tf.one_hot(tf.concat(arc_r[1::2], axis=0), self.num_ops))
            if self.num_precisions >= 2:
                ctx.precisions[:2 * self.num_nodes] = ctx.precisions[2 * self.num_nodes:]
        arc = tf.concat(arc_n + arc_r, axis=0)
        if self.num_precisions >= 2:
            arc = tf.concat([arc] + ctx.precisions, axis=0)
        log_prob = tf.reshape(tf.add_n(ctx.log_probs), [])
        entropy = tf.stop_gradient(tf.add_n(ctx.entropies))
        return _Unrolled(arc, log_prob, entropy, tf.concat(ctx.op_probs, axis=0), ctx.decisions)

    def _lstm(self, ctx, x, state):
        """Stacked LSTM step (ENAS ``stack_lstm``); ``state`` = (c list, h list), ``[1, S]``."""
        prev_c, prev_h = state
        next_c, next_h = [], []
        for layer, (c, h, w) in enumerate(zip(prev_c, prev_h, ctx.w_lstm)):
            inputs = x if layer == 0 else next_h[-1]
            ifog = tf.matmul(tf.concat([inputs, h], axis=ctx.axis1), w)
            i, f, o, g = tf.split(ifog, 4, axis=ctx.axis1)
            c = tf.sigmoid(i) * tf.tanh(g) + tf.sigmoid(f) * c
            h = tf.sigmoid(o) * tf.tanh(c)
            next_c.append(c)
            next_h.append(h)
        return next_c, next_h

    @staticmethod
    def _decide(ctx, logits, position, raw, counts=None):
        """One categorical decision over ``softmax(logits)`` (``[1, n]``) at arc ``position``.

        Sampled with the per-decision stateless seed, or read from the given arc. Records
        ``log p(choice)`` (= ``-sparse_softmax_cross_entropy``) and the entropy
        ``-sum p log p`` in ``ctx`` (both times ``counts``, a float ``[]``, when given), and for
        :meth:`decisions` the logits before squashing (``raw``) and the probabilities (unused
        tensors of a traced graph are pruned); returns the choice, int32 ``[1]``.
        """
        if ctx.sample:
            choice = tf.random.stateless_categorical(
                logits, 1, seed=ctx.choices[position], dtype=tf.int32)  # [1, 1]
            choice = tf.squeeze(choice, axis=[1])
        else:
            choice = ctx.choices[position]
        log_prob = -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=choice, logits=logits)  # [1]
        log_p = tf.nn.log_softmax(tf.stop_gradient(logits))
        probs = tf.exp(log_p)
        entropy = -tf.reduce_sum(probs * log_p)
        ctx.decisions.append((position, raw, probs, counts))
        if counts is not None:
            log_prob, entropy = log_prob * counts, entropy * counts
        ctx.log_probs.append(log_prob)
        ctx.entropies.append(entropy)
        return choice

    @staticmethod
    def _select(ctx, choice, table):
        """``table[choice]`` (``[1, S]``) as a one-hot matmul: a gather with a cheap gradient."""
        depth = table.shape[0]
        one_hot = tf.one_hot(choice, depth, on_value=ctx.one, off_value=ctx.zero)  # [1, depth]
        return tf.matmul(one_hot, table)

    def _cell(self, ctx, state, offset, use_bias):
        """ENAS ``_build_sampler`` for one cell, decisions at arc positions ``offset + ..``.

        Returns the ``4B`` decisions (int32 ``[1]`` each, arc order) and the final LSTM state.
        """
        decisions = []
        inputs = ctx.g_emb
        anchors, anchors_w_1 = [], []
        for _ in range(2):  # the two cell inputs (ids 0 and 1)
            state = self._lstm(ctx, inputs, state)
            h = state[1][-1]
            anchors.append(tf.zeros_like(h))
            anchors_w_1.append(tf.matmul(h, ctx.w_attn_1))

        for j in range(self.num_nodes):
            keys = tf.concat(anchors_w_1, axis=0)  # [j + 2, S]
            values = tf.concat(anchors, axis=0)  # [j + 2, S]
            node = [None] * 4
            for i in range(2):  # x_id, y_id
                state = self._lstm(ctx, inputs, state)
                query = tf.tanh(keys + tf.matmul(state[1][-1], ctx.w_attn_2))  # [j + 2, S]
                logits = tf.matmul(ctx.v_attn_row, query, transpose_b=True)  # [1, j + 2]
                if ctx.inv_temperature is not None:
                    logits = logits * ctx.inv_temperature
                raw = logits
                if ctx.attn_tanh is not None:
                    logits = ctx.attn_tanh * tf.tanh(logits)
                index = self._decide(ctx, logits, offset + 4 * j + 2 * i, raw)
                node[2 * i] = index
                inputs = self._select(ctx, index, values)  # anchors[index], [1, S]
            for i in range(2):  # x_op, y_op
                state = self._lstm(ctx, inputs, state)
                logits = tf.matmul(state[1][-1], ctx.w_soft) + ctx.b_soft  # [1, K]
                if ctx.inv_temperature is not None:
                    logits = logits * ctx.inv_temperature
                raw = logits
                if ctx.op_tanh is not None:
                    logits = ctx.op_tanh * tf.tanh(logits)
                if use_bias:
                    logits = logits + ctx.b_soft_no_learn
                op = self._decide(ctx, logits, offset + 4 * j + 2 * i + 1, raw)
                node[2 * i + 1] = op
                ctx.op_probs.append(tf.nn.softmax(logits))
                inputs = self._select(ctx, op, ctx.w_emb)  # w_emb[op], [1, S]
                if self.num_precisions >= 2:
                    inputs, state = self._precision(ctx, inputs, state, op, offset // 2 + 2 * j + i)

            state = self._lstm(ctx, inputs, state)  # the node's anchor
            h = state[1][-1]
            anchors.append(h)
            anchors_w_1.append(tf.matmul(h, ctx.w_attn_1))
            inputs = ctx.g_emb
            decisions += node
        return decisions, state


    def _precision(self, ctx, inputs, state, op, slot):
        """The precision decision of op slot ``slot`` (0 .. 4B - 1) after op ``op``: returns the
        next LSTM input ``w_prec_emb[precision]`` and state."""
        state = self._lstm(ctx, inputs, state)
        logits = tf.matmul(state[1][-1], ctx.w_prec) + ctx.b_prec  # [1, P]
        if ctx.inv_temperature is not None:
            logits = logits * ctx.inv_temperature
        raw = logits
        if ctx.attn_tanh is not None:  # the ids' C, not the ops' C / op_tanh_reduce: a budget must be reachable
            logits = ctx.attn_tanh * tf.tanh(logits)
        counts = tf.reshape(tf.gather(ctx.weighted, op), [])
        precision = self._decide(ctx, logits, 8 * self.num_nodes + slot, raw, counts)
        ctx.precisions[slot] = precision
        return self._select(ctx, precision, ctx.w_prec_emb), state


class _Context(types.SimpleNamespace):
    """Per-trace tensors (variable reads, constants) and the accumulated decision terms."""


__all__ = ["Decision", "MicroController"]
