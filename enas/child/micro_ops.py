"""The building blocks of an ENAS micro cell, in any precision.

Every convolution is ``activation -> conv -> batch norm`` (ENAS's ``relu -> conv -> bn``) where
the activation is the precision's quantizer (see :mod:`enas.space.precision`) and the conv kernel is
quantized by the same precision. Pools and identity are full precision, as in the original.

All layers here take NHWC tensors ``(batch, H, W, C)``. ``batch_stats=True`` makes batch norm
always use the batch statistics (ENAS search mode: shared weights have no meaningful moving
averages across architectures).
"""

import keras
import tensorflow as tf
from keras import ops

from enas.child import replicas
from enas.space.precision import Precision
from enas.space.search_space import DEFAULT as DEFAULT_SPACE
from quantize.base import inputs_saturated
from quantize.layers import QuantConv2D, QuantSeparableConv2D

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class BatchNorm(keras.layers.Layer):
    """Batch normalisation over the channel axis of NHWC tensors, on TensorFlow's fused kernel.

    Same maths as ``keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)`` (ENAS's
    values): ``gamma * (x - mean) / sqrt(var + epsilon) + beta`` with batch statistics in
    training (moving averages updated with ``momentum``) and the moving averages otherwise. The
    fused op traces into one node instead of a dozen, which matters when a search-mode cell holds
    hundreds of them. Input and output ``(batch, H, W, C)`` (or ``(batch, C)``).

    Under a ``tf.distribute`` strategy with two or more replicas, inside
    :func:`enas.child.replicas.synchronized_batch_norm`, training uses the mean and variance of the
    global batch (one all-reduce), so the replicas compute what one device would; the moving
    averages are then the same on every replica (their updates are averaged over replicas).
    """

    def __init__(self, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, track_moving_stats=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        # False in search mode: batch statistics are always used, so skip the update ops.
        self.track_moving_stats = track_moving_stats

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.gamma = self.add_weight(name="gamma", shape=channels, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=channels, initializer="zeros")
        self.moving_mean = self.add_weight(name="moving_mean", shape=channels, initializer="zeros",
                                           trainable=False, aggregation="mean")
        self.moving_variance = self.add_weight(name="moving_variance", shape=channels,
                                               initializer="ones", trainable=False, aggregation="mean")

    def call(self, x, training=None):
        rank4 = len(x.shape) == 4
        x4 = x if rank4 else x[:, None, None, :]
        sync = replicas.sync_context() if training else None
        if sync is not None:
            mean, variance, count = replicas.global_moments(x4, sync)
            y = tf.nn.batch_normalization(x4, mean, variance, self.beta, self.gamma, self.epsilon)
            variance = variance * count / tf.maximum(count - 1.0, 1.0)  # unbiased, as the fused op's
        elif training:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x4, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        if training:
            if self.track_moving_stats:
                decay = 1.0 - self.momentum
                self.moving_mean.assign_sub(decay * (self.moving_mean - mean))
                self.moving_variance.assign_sub(decay * (self.moving_variance - variance))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x4, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False)
        return y if rank4 else y[:, 0, 0, :]

    def inference_channels(self, x, start, stop):
        """Inference batch norm of channels ``start:stop`` alone: ``x`` ``(batch, H, W, stop - start)``
        is normalised with those channels' moving statistics, ``gamma`` and ``beta``. A batch norm
        after a concatenation is split this way in a TensorFlow Lite export, so that each part
        folds into the convolution that produced it (no separate multiply and add, each an int8
        rounding)."""
        part = slice(start, stop)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma[part], self.beta[part], mean=self.moving_mean[part],
            variance=self.moving_variance[part], epsilon=self.epsilon, is_training=False)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "track_moving_stats": self.track_moving_stats}


def batch_norm(name=None, batch_stats=False):
    """ENAS batch norm; ``batch_stats=True`` (search mode) skips the moving statistics."""
    return BatchNorm(name=name, track_moving_stats=not batch_stats)


class LearnedShift(keras.layers.Layer):
    """``x - b_c``: a learned per-channel threshold ``b`` (zeros at first), placed before a binary
    activation it makes ReActNet's RSign, ``sign(x - b_c)``. Input and output ``(batch, ..., C)``."""

    def build(self, input_shape):
        self.threshold = self.add_weight(name="threshold", shape=(input_shape[-1],), initializer="zeros")

    def call(self, x):
        return x - self.threshold

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class RPReLU(keras.layers.Layer):
    """ReActNet's RPReLU: ``y = x - gamma_c`` then ``y`` where positive, ``beta_c * y`` elsewhere,
    then ``+ zeta_c``; per channel, shifts start at 0 and the slope at 0.25. Input and output
    ``(batch, ..., C)``."""

    def build(self, input_shape):
        channels = (input_shape[-1],)
        self.shift_in = self.add_weight(name="shift_in", shape=channels, initializer="zeros")
        self.slope = self.add_weight(name="slope", shape=channels,
                                     initializer=keras.initializers.Constant(0.25))
        self.shift_out = self.add_weight(name="shift_out", shape=channels, initializer="zeros")

    def call(self, x):
        y = x - self.shift_in
        if inputs_saturated():  # a TensorFlow Lite export: RELU, MINIMUM, MUL and ADD, which int8 TFLM runs (not GREATER + SELECT_V2)
            return tf.nn.relu(y) + self.slope * tf.minimum(y, 0.0) + self.shift_out
        return ops.where(y > 0, y, self.slope * y) + self.shift_out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


def threshold_for(precision, name=None):
    """The learned threshold before a binary activation (``precision.rsign``), or ``None``."""
    return LearnedShift(name=name) if precision.rsign else None


def after_norm_for(precision, name=None):
    """The RPReLU after a binary conv's batch norm (``precision.rprelu``), or ``None``."""
    return RPReLU(name=name) if precision.rprelu else None


def apply_optional(layer, x):
    """``layer(x)``, or ``x`` when there is no layer."""
    return x if layer is None else layer(x)


def real_shortcut(x, output_shape):
    """The real-valued shortcut of a quantized conv whose input is ``x`` ``(batch, H, W, C)``
    and whose output has ``output_shape`` ``(batch, H', W', C')`` (Bi-Real Net; ReActNet for the
    reductions): ``x`` itself when the shapes agree; a 2 x 2 average pool (stride 2, same
    padding: ``H' = ceil(H / 2)``) when the output is half the size; the channels repeated
    ``ceil(C' / C)`` times and cut to ``C'`` when they differ. No weights."""
    if tuple(x.shape[1:3]) != tuple(output_shape[1:3]):
        x = tf.nn.avg_pool2d(x, 2, 2, "SAME")
    channels, wanted = x.shape[-1], output_shape[-1]
    if channels != wanted:
        x = ops.concatenate([x] * -(-wanted // channels), axis=-1)[..., :wanted]
    return x


def shortcut_sum(x, y):
    """``x + y`` for two tensors of one shape, written as ``tf.add_n``: the gradient of ``x + y``
    asks for the shape of ``x`` at run time, a value the gradient branch of a search cell's
    ``tf.switch_case`` cannot read when ``x`` comes from the cell's ``TensorArray``
    ("You must feed a value for placeholder tensor"); ``add_n``'s gradient needs no shape. In a
    TensorFlow Lite export (no gradient) it is a plain ADD, which the int8 conversion keeps integer
    (it leaves ``ADD_N`` in float)."""
    if inputs_saturated():
        return x + y
    return tf.add_n([x, y])


class OpLayer(keras.layers.Layer):
    """Base of the cell ops: builds its sublayers from the input shape (no lazy building, so a
    search-mode child can be traced with ``tf.switch_case`` once all positions exist)."""

    def __init__(self, precision=Precision(), batch_stats=False, **kwargs):
        super().__init__(**kwargs)
        self.precision = Precision.parse(precision)
        self.batch_stats = batch_stats
        self.shortcut = self.precision.shortcut

    def _bn_training(self, training):
        return True if self.batch_stats else training

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


class ConvBN(OpLayer):
    """``activation -> k x k conv (quantized) -> BN``. Output ``(batch, H/stride, W/stride, filters)``.

    With the precision's ``shortcut`` (and ``shortcut`` not ``False``), ``+ real_shortcut(x)``.
    """

    def __init__(self, filters, kernel_size=1, strides=1, activate=True, padding="same", shortcut=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.shortcut = self.shortcut and shortcut is not False
        self.filters = filters
        self.conv = QuantConv2D(
            filters, kernel_size, strides=strides, padding=padding, use_bias=False,
            kernel_initializer="he_normal",
            kernel_quantizer=self.precision.kernel_quantizer(),
            input_quantizer=self.precision.activation() if activate else None,
        )
        self.bn = batch_norm(batch_stats=self.batch_stats)
        self.threshold = threshold_for(self.precision) if activate else None
        self.after_norm = after_norm_for(self.precision)

    def build(self, input_shape):
        if self.threshold is not None:
            self.threshold.build(input_shape)
        self.conv.build(input_shape)
        output_shape = self.conv.compute_output_shape(input_shape)
        self.bn.build(output_shape)
        if self.after_norm is not None:
            self.after_norm.build(output_shape)

    def call(self, x, training=None):
        y = self.conv(apply_optional(self.threshold, x))
        y = apply_optional(self.after_norm, self.bn(y, training=self._bn_training(training)))
        return y + real_shortcut(x, y.shape) if self.shortcut else y

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)


class SepConv(OpLayer):
    """ENAS separable-conv op: twice ``activation -> separable k x k conv -> BN``; C channels kept.
    With the precision's ``shortcut``, each of the two is ``x + BN(sep_conv(q(x)))`` (Bi-Real Net).

    ``alternatives`` (mixed-precision search): the precisions this op may run at, on the same
    latent kernels and batch norms; ``call(..., precision_index=i)`` (a Python int) runs it at
    ``alternatives[i]``: that precision's activation and kernel quantizers (and RSign / RPReLU /
    shortcut when that precision has them). The kernels' initializer and latent clip are those
    of ``precision``.
    """

    def __init__(self, filters, kernel_size, alternatives=(), **kwargs):
        super().__init__(**kwargs)
        self.alternatives = tuple(Precision.parse(p) for p in alternatives) or (self.precision,)
        self.quantizer_sets = [(p.kernel_quantizer(), p.activation()) for p in self.alternatives]
        rsign = next((p for p in self.alternatives if p.rsign), None)
        rprelu = next((p for p in self.alternatives if p.rprelu), None)
        self.stack = []
        for i in range(2):
            conv = QuantSeparableConv2D(
                filters, kernel_size, padding="same", use_bias=False,
                depthwise_initializer="he_normal", pointwise_initializer="he_normal",
                kernel_quantizer=self.precision.kernel_quantizer(),
                input_quantizer=self.precision.activation(), name=f"sep_conv_{i}",
            )
            self.stack.append((None if rsign is None else threshold_for(rsign, f"threshold_{i}"), conv,
                               batch_norm(name=f"bn_{i}", batch_stats=self.batch_stats),
                               None if rprelu is None else after_norm_for(rprelu, f"rprelu_{i}")))

    def build(self, input_shape):
        for threshold, conv, bn, after_norm in self.stack:
            if threshold is not None:
                threshold.build(input_shape)
            conv.build(input_shape)
            input_shape = conv.compute_output_shape(input_shape)
            bn.build(input_shape)
            if after_norm is not None:
                after_norm.build(input_shape)

    def call(self, x, training=None, precision_index=None):
        precision = None if precision_index is None else self.alternatives[precision_index]
        for threshold, conv, bn, after_norm in self.stack:
            if precision is None:
                y = bn(conv(apply_optional(threshold, x)), training=self._bn_training(training))
                y = apply_optional(after_norm, y)
                x = shortcut_sum(x, y) if self.shortcut else y
                continue
            kernel_quantizer, activation = self.quantizer_sets[precision_index]
            y = threshold(x) if precision.rsign else x
            y = bn(conv.call_with(y, kernel_quantizer, activation), training=self._bn_training(training))
            if precision.rprelu:
                y = after_norm(y)
            x = shortcut_sum(x, y) if precision.shortcut else y
        return x


@tf.custom_gradient
def max_pool_3x3_recomputed(x):
    """3 x 3 max pool, stride 1, same padding, whose gradient recomputes the pool beside it.

    Inside a ``tf.switch_case`` branch the forward pool and its gradient land in different
    branch functions, so oneDNN cannot hand the forward's workspace to the gradient and TensorFlow
    falls back to the generic ``MaxPoolGrad`` kernel (measured 5x slower on 2 CPU cores at
    ``(128, 32, 32, 20)``). Recomputing the cheap forward next to the gradient keeps the fast
    kernel. Input and output ``(batch, H, W, C)``; same values and gradient as ``max_pool2d``.
    """

    def grad(dy):
        pooled = tf.nn.max_pool2d(x, 3, 1, "SAME")
        return tf.raw_ops.MaxPoolGrad(orig_input=x, orig_output=pooled, grad=dy, ksize=[1, 3, 3, 1],
                                      strides=[1, 1, 1, 1], padding="SAME")

    return tf.nn.max_pool2d(x, 3, 1, "SAME"), grad


class Pool(OpLayer):
    """3 x 3 average or max pooling, stride 1, same padding (full precision).

    ``recompute_max_grad=True`` (set for the ops of a search-mode cell, which run inside
    ``tf.switch_case``): see :func:`max_pool_3x3_recomputed`.
    """

    def __init__(self, kind, recompute_max_grad=False, **kwargs):
        super().__init__(**kwargs)
        pool_cls = {"avg": keras.layers.AveragePooling2D, "max": keras.layers.MaxPooling2D}[kind]
        self.pool = pool_cls(pool_size=3, strides=1, padding="same")
        self.recompute_max_grad = recompute_max_grad and kind == "max"

    def call(self, x, training=None):
        if self.recompute_max_grad:
            return max_pool_3x3_recomputed(x)
        return self.pool(x)


class Identity(OpLayer):
    def call(self, x, training=None):
        return x


def make_op(op_id, filters, precision, batch_stats, in_switch=False, space=DEFAULT_SPACE, alternatives=()):
    """Layer of op ``op_id`` of ``space`` (ENAS: 0 sep 3x3, 1 sep 5x5, 2 avg pool, 3 max pool,
    4 identity), built from the op's family (the pools are 3x3).
    ``in_switch``: the op runs inside a ``tf.switch_case`` branch (search mode);
    ``alternatives``: the precisions an op with weights may run at (mixed-precision search)."""
    op = space.ops[op_id]
    kw = dict(precision=precision, batch_stats=batch_stats)
    if op.family == "sep_conv":
        return SepConv(filters, op.kernel_size, alternatives=alternatives, **kw)
    if op.family == "avg_pool":
        return Pool("avg", **kw)
    if op.family == "max_pool":
        return Pool("max", recompute_max_grad=in_switch, **kw)
    if op.family == "identity":
        return Identity(**kw)
    raise ValueError(f"op {op.name!r}: unknown family {op.family!r}")


class FactorizedReduce(OpLayer):
    """Halve H and W, set channels to ``filters`` (ENAS factorized reduction).

    ``activation ->`` two paths: 1x1 conv on the even pixels, and 1x1 conv on the odd pixels
    (input shifted by one, zero-padded), each to half the filters; concatenate; BN; with the
    precision's ``shortcut``, ``+ real_shortcut(x)`` (ReActNet's reduction: the average-pooled
    input). Input ``(batch, H, W, C)``; output ``(batch, ceil(H/2), ceil(W/2), filters)``.

    The even/odd pixels are taken by the convs' stride 2, not by ``x[:, ::2, ::2]``: the
    gradient of a strided slice (``StridedSliceGrad``) took ~40% of a small MNIST child's
    training step on 2 CPU cores. The shift is a ``tf.slice`` (its gradient is a pad).
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        halves = (filters // 2, filters - filters // 2)
        self.activation = self.precision.activation()
        self.paths = [
            QuantConv2D(f, 1, strides=2, padding="valid", use_bias=False, kernel_initializer="he_normal",
                        kernel_quantizer=self.precision.kernel_quantizer(), name=f"path_{i}")
            for i, f in enumerate(halves)
        ]
        self.bn = batch_norm(batch_stats=self.batch_stats)
        self.threshold = threshold_for(self.precision)
        self.after_norm = after_norm_for(self.precision)

    def build(self, input_shape):
        if self.threshold is not None:
            self.threshold.build(input_shape)
        for conv in self.paths:
            conv.build(input_shape)
        self.bn.build(self.compute_output_shape(input_shape))
        if self.after_norm is not None:
            self.after_norm.build(self.compute_output_shape(input_shape))

    def call(self, x, training=None):
        real = x
        x = self.activation(apply_optional(self.threshold, x))
        shifted = tf.slice(x, [0, 1, 1, 0], [-1, -1, -1, -1])  # (N, H-1, W-1, C)
        # An odd (or unknown) size needs the zero row/column the original pads with; an even one
        # never reads it (stride 2 from 0), so it is left out and the input stays fixed-point.
        pad_h, pad_w = (1 if d is None else d % 2 for d in x.shape[1:3])
        if pad_h or pad_w:
            shifted = tf.pad(shifted, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
        halves = [self.paths[0](x), self.paths[1](shifted)]
        if inputs_saturated() and not self._bn_training(training):
            # A TensorFlow Lite export: each half's batch norm folds into its convolution.
            split = halves[0].shape[-1]
            halves = [self.bn.inference_channels(halves[0], 0, split),
                      self.bn.inference_channels(halves[1], split, self.filters)]
            out = ops.concatenate(halves, axis=-1)
        else:
            out = self.bn(ops.concatenate(halves, axis=-1), training=self._bn_training(training))
        out = apply_optional(self.after_norm, out)
        return out + real_shortcut(real, out.shape) if self.shortcut else out

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        half = lambda d: None if d is None else (d + 1) // 2  # noqa: E731
        return (n, half(h), half(w), self.filters)


def calibration(input_shape, target_hw, filters, **kw):
    """Layer that brings an input of ``input_shape`` to ``target_hw`` and ``filters`` channels:
    factorized reduce if the spatial size differs, 1x1 ConvBN if only channels differ, else identity."""
    if tuple(input_shape[1:3]) != tuple(target_hw):
        return FactorizedReduce(filters, **kw)
    if input_shape[-1] != filters:
        return ConvBN(filters, 1, **kw)
    return Identity(**kw)
