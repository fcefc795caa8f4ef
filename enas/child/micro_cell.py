"""One ENAS micro cell, for a fixed architecture or for any sampled one.

A cell with ``B`` nodes reads two inputs (ids 0 and 1: the outputs of the two previous layers,
calibrated to ``(batch, H, W, filters)``). Node ``j`` computes ``op_x(input x_id) + op_y(input
y_id)`` and becomes id ``j + 2``. The cell output combines every id no node used: ``activation ->
concat(unused) -> 1x1 conv (quantized) -> BN``, back to ``filters`` channels (ENAS search-mode
combine, used here in fixed mode too so one class serves both).

The architecture of the cell is either

* a :class:`enas.space.arc.Cell` given at construction (*fixed mode*): the choices are Python ints,
  only the chosen ops are created, and the graph contains exactly those ops; or
* an int32 tensor ``[4B]`` given at call time (*search mode*): every (node, slot, op) position has
  its own shared layer, the op choice is a ``tf.switch_case`` (only the chosen op runs) and the
  input is read from a :class:`NodeStates` at the sampled id, so one traced graph serves every
  architecture.

The same :func:`select` helper picks the op in both modes, so the two cannot drift apart.
"""

import keras
import tensorflow as tf
from keras import ops

from enas.child import micro_ops
from enas.child.common_ops import SharedLayers, create_weight
from enas.space.arc import Cell
from enas.space.precision import Precision
from enas.space.search_space import SearchSpace
from quantize.base import latent_clip_constraint, weights_are_real

SLOTS = ("x", "y")


SELECT_MODES = ("switch", "all")


def select(index, branches, mode="switch"):
    """``branches[index]()``: direct call for a Python int, ``tf.switch_case`` for a tensor
    (only the chosen branch runs). ``mode="all"`` runs every branch and gathers one, as the
    original ENAS code did; it exists for ``benchmarks/search_step.py`` to compare against."""
    if isinstance(index, int):
        return branches[index]()
    if len(branches) == 1:
        return branches[0]()
    if mode == "all":
        return tf.gather(tf.stack([branch() for branch in branches]), index)
    return tf.switch_case(index, branches)


def op_key(node, slot, op):
    return f"node{node}/{SLOTS[slot]}/op{op}"


class NodeStates:
    """The outputs of a search-mode cell's ids (``(batch, H, W, C)`` each), readable at an id
    known only at run time.

    Backed by a ``tf.TensorArray``: a read is one ``TensorListGetItem`` and its gradient reaches
    only the id that was read. Selecting with ``tf.switch_case`` instead makes the gradient of
    every selection materialise zeros for all the ids it did not pick (~30 activation-sized
    zero tensors per cell at B=5) and costs a branch function per id to trace.
    """

    def __init__(self, nodes, size):
        first = nodes[0]
        self.array = tf.TensorArray(first.dtype, size=size, clear_after_read=False,
                                    element_shape=first.shape)
        self.size = 0
        for node in nodes:
            self.append(node)

    def append(self, node):
        self.array = self.array.write(self.size, node)
        self.size += 1

    def read(self, index):
        """The id ``index`` (int32 scalar tensor); shape ``(batch, H, W, C)``."""
        return self.array.read(index)

    def gather(self, indices):
        """The ids ``indices`` (int32 ``[k]``) stacked: ``(k, batch, H, W, C)``."""
        return self.array.gather(indices)


class CellCombine(micro_ops.OpLayer):
    """``activation -> concat(unused ids) -> 1x1 conv -> BN``; with the precision's ``shortcut``,
    ``+ mean(unused ids)`` (the real-valued path of Bi-Real Net).

    The 1x1 kernel is stored per id, ``[num_ids, C, C]``, and the rows of the unused ids are
    gathered (ENAS ``final_conv``), so any subset works in one graph. In fixed mode only the
    unused ids' rows are created. Input: list of ``num_ids`` tensors ``(batch, H, W, C)``;
    output ``(batch, H, W, C)``.

    ``static_shapes=True`` (search mode for XLA, which needs every shape known when it compiles)
    concatenates *all* ids and zeroes the kernel rows of the used ones instead of gathering a
    variable number of them: the same output and gradients, at the cost of a 1x1 conv over all
    ``num_ids * C`` channels.
    """

    def __init__(self, num_ids, filters, fixed_unused=None, static_shapes=False, **kwargs):
        super().__init__(**kwargs)
        self.num_ids = num_ids
        self.filters = filters
        self.static_shapes = static_shapes
        self.fixed_unused = None if fixed_unused is None else tuple(fixed_unused)
        self.activation = self.precision.activation()
        self.kernel_quantizer = self.precision.kernel_quantizer()
        self.bn = micro_ops.batch_norm(batch_stats=self.batch_stats)
        self.after_norm = micro_ops.after_norm_for(self.precision)  # no RSign threshold: the concatenated ids vary with the arc

    def build(self, input_shape):
        rows = self.num_ids if self.fixed_unused is None else len(self.fixed_unused)
        self.kernel = create_weight(
            self, "kernel", (rows, self.filters, self.filters), initializer="he_normal",
            constraint=latent_clip_constraint(self.kernel_quantizer),
        )
        self.bn.build(tuple(input_shape[0][:-1]) + (self.filters,))
        if self.after_norm is not None:
            self.after_norm.build(tuple(input_shape[0][:-1]) + (self.filters,))

    def call(self, nodes, cell_arc=None, states=None, training=None):
        """``nodes``: ``num_ids`` tensors ``(batch, H, W, C)``; ``cell_arc``: int32 ``[4B]`` in
        search mode (the unused ids are derived from it), ``states``: the same nodes as
        :class:`NodeStates` (search mode without static shapes)."""
        if self.fixed_unused is not None:
            x = ops.concatenate([nodes[i] for i in self.fixed_unused], axis=-1)
            kernel = self.kernel
            mean = (lambda: ops.mean(ops.stack([nodes[i] for i in self.fixed_unused]), axis=0))
        elif self.static_shapes:  # all ids, the used ids' rows zeroed
            x = ops.concatenate(nodes, axis=-1)
            is_unused = tf.cast(unused_mask(cell_arc, self.num_ids - 2), self.kernel.dtype)
            kernel = self.kernel * is_unused[:, None, None]
            mean = (lambda: tf.tensordot(is_unused / tf.reduce_sum(is_unused), tf.stack(nodes), axes=1))
        else:  # dynamic subset: stack, gather, fold the ids into channels
            unused = unused_ids(cell_arc, self.num_ids - 2)
            if states is None:
                states = NodeStates(nodes, self.num_ids)
            picked = states.gather(unused)  # (k, N, H, W, C)
            shape = tf.shape(picked)
            x = tf.reshape(tf.transpose(picked, [1, 2, 3, 0, 4]),
                           [shape[1], shape[2], shape[3], shape[0] * self.filters])
            kernel = tf.gather(self.kernel, unused, axis=0)
            mean = (lambda: tf.reduce_mean(picked, axis=0))
        kernel = tf.reshape(kernel, [1, 1, -1, self.filters])
        if self.kernel_quantizer is not None and not weights_are_real():
            kernel = self.kernel_quantizer(kernel)
        out = tf.nn.conv2d(self.activation(x), kernel, strides=1, padding="SAME")
        out = micro_ops.apply_optional(self.after_norm, self.bn(out, training=self._bn_training(training)))
        return out + mean() if self.shortcut else out


class MicroCell(keras.layers.Layer):
    """An ENAS micro cell (normal or reduction: a reduction cell is the same cell run after the
    child has halved its inputs, see :class:`enas.child.micro_child.MicroChild`).

    Args:
        num_nodes: B, nodes per cell.
        filters: C, channels of every node and of the output.
        precision: :class:`enas.space.precision.Precision` of the convolutions.
        fixed_cell: :class:`enas.space.arc.Cell` for fixed mode, ``None`` for search mode.
        drop_path_keep_prob: keep probability of each non-identity op output during training
            (``None`` or 1: no drop path). Scaled by ``drop_path_scale`` (a scalar tensor/variable
            in [0, 1] the trainer sets, ENAS's layer-depth x progress ratio).
        batch_stats: always normalise with batch statistics (search mode).
        op_selection: ``"switch"`` (default: run only the chosen op) or ``"all"`` (run all five
            and gather one, the original's method; for benchmarks).
        static_shapes: search mode only: every tensor shape is known at trace time (the combine
            masks instead of gathering; needed to compile the step with XLA).
        op_precision: fixed mode: ``op_precision(name)`` is the :class:`Precision` of an op that
            names its precision in ``fixed_cell`` (default :meth:`Precision.parse`).
        search_precisions: search mode: the precisions (two or more) an op with weights may
            take; its choice is an int32 ``[2B]`` tensor at call time. Each such op keeps one
            set of latent weights for all of them (:class:`enas.child.micro_ops.SepConv`).

    Call: ``cell([prev_prev, prev], arc=None, precisions=None, training=None)`` with inputs
    ``(batch, H_i, W_i, C_i)``; ``arc`` an int32 tensor ``[4B]`` in search mode and, when the
    precision is searched, ``precisions`` int32 ``[2B]`` (an index into ``search_precisions``
    per op slot, in arc order). Output ``(batch, H, W, filters)`` where ``H, W`` are ``prev``'s.
    """

    def __init__(self, num_nodes, filters, precision=Precision(), fixed_cell=None,
                 drop_path_keep_prob=None, batch_stats=False, op_selection="switch",
                 static_shapes=False, op_precision=None, search_precisions=(), **kwargs):
        super().__init__(**kwargs)
        if op_selection not in SELECT_MODES:
            raise ValueError(f"op_selection must be one of {SELECT_MODES}, got {op_selection!r}")
        self.op_selection = op_selection
        if fixed_cell is not None and not isinstance(fixed_cell, Cell):
            raise TypeError(f"fixed_cell must be an enas.space.arc.Cell, got {type(fixed_cell).__name__}")
        if fixed_cell is not None and fixed_cell.num_nodes != num_nodes:
            raise ValueError(f"fixed_cell has {fixed_cell.num_nodes} nodes, expected {num_nodes}")
        self.num_nodes = num_nodes
        self.space = SearchSpace(num_nodes)
        self.filters = filters
        self.precision = Precision.parse(precision)
        self.fixed_cell = fixed_cell
        self.drop_path_keep_prob = drop_path_keep_prob
        self.batch_stats = batch_stats
        self._op_kw = dict(precision=self.precision, batch_stats=batch_stats)
        self.op_precision = op_precision or Precision.parse
        self.search_precisions = tuple(search_precisions) if fixed_cell is None and len(search_precisions) >= 2 else ()
        self.ops_bank = SharedLayers(name="ops")
        self.combine = CellCombine(
            self.space.num_ids, filters,
            fixed_unused=None if fixed_cell is None else fixed_cell.unused_ids(),
            static_shapes=static_shapes, **self._op_kw,
        )
        self.seed_generator = keras.random.SeedGenerator(seed=None)

    def _positions(self):
        """(node, slot, op) positions this cell needs: all of them in search mode."""
        if self.fixed_cell is not None:
            return sorted(self.fixed_cell.used_ops())
        return self.space.positions()

    def build(self, input_shapes):
        prev_prev_shape, prev_shape = (tuple(s) for s in input_shapes)
        target_hw = prev_shape[1:3]
        self.calibrations = [
            micro_ops.calibration(shape, target_hw, self.filters, **self._op_kw)
            for shape in (prev_prev_shape, prev_shape)
        ]
        for layer, shape in zip(self.calibrations, (prev_prev_shape, prev_shape)):
            layer.build(shape)
        node_shape = (prev_shape[0],) + tuple(target_hw) + (self.filters,)
        for node, slot, op in self._positions():
            layer = self.ops_bank.get_or_create(
                op_key(node, slot, op),
                lambda: micro_ops.make_op(op, self.filters, in_switch=self.fixed_cell is None, space=self.space,
                                          alternatives=self.search_precisions,
                                          **self._op_kw_of(node, slot)),
            )
            layer.build(node_shape)
        self.combine.build([node_shape] * self.space.num_ids)

    def _op_kw_of(self, node, slot):
        """The op layer's precision: the one its node names (fixed mode) or the cell's; in a
        mixed-precision search, the first searched precision owns the latent weights."""
        if self.search_precisions:
            return {**self._op_kw, "precision": self.search_precisions[0]}
        if self.fixed_cell is not None:
            name = self.fixed_cell.nodes[node].precisions[slot]
            if name is not None:
                return {**self._op_kw, "precision": self.op_precision(name)}
        return self._op_kw

    def keep_probability(self, drop_path_scale=1.0):
        """Drop-path keep probability of this cell's op outputs at training progress
        ``drop_path_scale`` (0 at the start of a run, 1 from its end): ENAS's
        ``1 - scale * (1 - keep_l)``, ``keep_l`` being this layer's depth-scaled keep probability."""
        if self.drop_path_keep_prob is None or self.drop_path_keep_prob >= 1:
            return 1.0
        return 1.0 - (1.0 - self.drop_path_keep_prob) * drop_path_scale

    def _drop_path(self, x, training, drop_path_scale):
        """Zero each example's ``x`` with probability ``1 - keep`` (and scale the kept ones by
        ``1 / keep``) in training; ``x`` unchanged otherwise. ``x``: ``(batch, H, W, C)``."""
        if not training or self.drop_path_keep_prob is None or self.drop_path_keep_prob >= 1:
            return x
        keep = self.keep_probability(drop_path_scale)
        mask = keras.random.uniform((ops.shape(x)[0], 1, 1, 1), seed=self.seed_generator) < keep
        return ops.where(mask, x / keep, ops.zeros_like(x))

    def _apply_op(self, node, slot, op, x, training, drop_path_scale, precision_index=None):
        layer = self.ops_bank[op_key(node, slot, op)]
        if precision_index is None:
            y = layer(x, training=training)
        else:
            y = layer(x, training=training, precision_index=precision_index)
        if op != self.space.identity_op:
            y = self._drop_path(y, training, drop_path_scale)
        return y

    def _branches(self, node, slot, x, training, drop_path_scale):
        """The op branches of a slot: one per op, or, in a mixed-precision search, one per
        (op with weights, precision) pair and one per op without weights."""
        branches = []
        for o in range(self.space.num_ops):
            precisions = range(len(self.search_precisions)) if self.search_precisions and \
                self.space.ops[o].has_weights else [None]
            for p in precisions:
                branches.append(lambda o=o, p=p: self._apply_op(node, slot, o, x, training, drop_path_scale, p))
        return branches

    def _branch_index(self, op_id, precision_id):
        """Index of (op, precision) among :meth:`_branches` (int32 scalar tensors)."""
        weighted = [int(op.has_weights) for op in self.space.ops]
        count = len(self.search_precisions)
        offsets = [sum(count if w else 1 for w in weighted[:o]) for o in range(self.space.num_ops)]
        return tf.gather(tf.constant(offsets, tf.int32), op_id) + \
            tf.gather(tf.constant(weighted, tf.int32), op_id) * precision_id

    def call(self, inputs, arc=None, training=None, drop_path_scale=1.0, precisions=None):
        if self.fixed_cell is not None:
            choices = self.fixed_cell.to_list()
        elif arc is None:
            raise ValueError("a search-mode MicroCell needs `arc` (int32 tensor [4B]) at call time")
        else:
            choices = [arc[i] for i in range(self.space.cell_length)]
            if self.search_precisions and precisions is None:
                raise ValueError("a mixed-precision search cell needs `precisions` (int32 tensor [2B]) at call time")
        nodes = [layer(x, training=training) for layer, x in zip(self.calibrations, inputs)]
        states = None if self.fixed_cell is not None else NodeStates(nodes, self.space.num_ids)
        for node in range(self.num_nodes):
            out = 0
            for slot in range(2):
                position = self.space.input_position(node, slot)
                input_id, op_id = choices[position], choices[position + 1]
                x = nodes[input_id] if states is None else states.read(input_id)
                if self.search_precisions:
                    index = self._branch_index(op_id, precisions[2 * node + slot])
                else:
                    index = op_id
                out = out + select(index, self._branches(node, slot, x, training, drop_path_scale),
                                   self.op_selection)
            nodes.append(out)
            if states is not None:
                states.append(out)
        if self.fixed_cell is not None:
            return self.combine(nodes, training=training)
        return self.combine(nodes, cell_arc=arc, states=states, training=training)

    def compute_output_shape(self, input_shapes):
        prev = tuple(input_shapes[1])
        return prev[:3] + (self.filters,)


def unused_mask(cell_arc, num_nodes):
    """Bool tensor ``[B + 2]``: True for the ids no node of ``cell_arc`` ([4B] int tensor) uses."""
    cell_arc = tf.reshape(tf.convert_to_tensor(cell_arc, tf.int32), [num_nodes, 4])
    inputs = tf.concat([cell_arc[:, 0], cell_arc[:, 2]], axis=0)
    return tf.equal(tf.reduce_sum(tf.one_hot(inputs, num_nodes + 2, dtype=tf.int32), axis=0), 0)


def unused_ids(cell_arc, num_nodes):
    """Int32 tensor ``[k]`` of the ids in ``0..B+1`` that no node of ``cell_arc`` ([4B] int
    tensor) uses (``k`` is known only at run time)."""
    return tf.reshape(tf.cast(tf.where(unused_mask(cell_arc, num_nodes)), tf.int32), [-1])
