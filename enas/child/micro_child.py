"""The ENAS micro child network, fixed-architecture or shared-weight search mode.

Layout (ENAS micro, Pham et al. 2018)::

    raw image (batch, H, W, C_img)
      -> input normalisation: (x - mean) / std with the training split's statistics (constants)
      -> stem: 3x3 conv to 3 * out_filters (stride s: a (s+1)x(s+1) conv, stride s) -> BN
      -> num_layers + 2 layers; layers in ``reduction_layers`` double the filters and halve H, W:
             reduction layer: x = FactorizedReduce(prev); cell(reduce arc) on [prev, x]
             normal layer:    cell(normal arc) on [prev_prev, prev]
      -> activation -> global average pool -> dropout -> dense (num_classes logits)
    optional auxiliary head (weight 0.4 in the loss) on the layer after the last reduction.

The stem's stride ``s`` follows the input (:func:`enas.config.child_config.auto_stem_stride`: the
cells run at 24-47 pixels whatever the image size; 1 for MNIST and CIFAR-10) unless
``config.stem_stride`` fixes it. Reduction layers default to ENAS's ``[L // 3, 2 * (L // 3) + 1]`` for ``L = num_layers``
(1/3 and 2/3 of the depth). ``fixed_arc`` set: fixed mode (only the chosen ops exist);
``fixed_arc=None``: search mode, ``arc`` (int32 ``[8B]``: normal cell then reduction cell) is
passed at call time and every op position has one shared layer. With two or more
``config.search_precisions`` the search vector is ``[12B]``: the ``8B`` decisions, then one
precision index per op slot (normal cell's ``2B``, reduction cell's ``2B``), see
:meth:`enas.space.arc.Arc.to_vector`.
"""

import keras
import tensorflow as tf
from keras import ops

from enas.child import micro_ops
from enas.child.common_ops import InputNormalization
from enas.child.micro_cell import MicroCell
from enas.config.child_config import ChildConfig, default_reduction_layers  # noqa: F401  (re-exported)
from enas.space.arc import parse_arc
from enas.space.search_space import SearchSpace
from quantize.layers import QuantConv2D, QuantDense

AUX_LOSS_WEIGHT = 0.4


@keras.saving.register_keras_serializable(package="qenas")
class MicroChild(keras.Model):
    """ENAS micro child (see module docstring).

    Args:
        config: :class:`ChildConfig`.
        fixed_arc: architecture (an :class:`enas.space.arc.Arc` or anything :func:`parse_arc` reads)
            for fixed mode, or ``None`` for search mode.
        op_selection: search mode only: ``"switch"`` runs the chosen op of each node,
            ``"all"`` runs all five and gathers one (the original's method, for benchmarks).
        static_shapes: search mode only: no tensor of a run-time size, so the step compiles
            with XLA (see :class:`enas.child.micro_cell.CellCombine`).

    Call: ``child(images, arc=None, training=False)`` with raw images ``(batch, H, W, C_img)``
    (uint8 pixels or float; normalised by the first layer with ``config.input_mean/input_std``) and, in search mode, ``arc`` an int32 tensor ``[8B]``. Returns logits
    ``(batch, num_classes)``; with ``return_aux=True`` a tuple ``(logits, aux_logits or None)``.
    """

    def __init__(self, config=ChildConfig(), fixed_arc=None, op_selection="switch", static_shapes=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.fixed_arc = None if fixed_arc is None else parse_arc(fixed_arc, config.num_nodes)
        self.search_mode = self.fixed_arc is None
        self.static_shapes = bool(static_shapes)
        policy = config.policy
        search_precisions = tuple(policy.with_options(p) for p in config.search_precisions) \
            if self.search_mode else ()
        self.space = SearchSpace(config.num_nodes, precisions=tuple(p.short_name() for p in search_precisions))
        self.drop_path_scale = self.add_weight(
            name="drop_path_scale", shape=(), initializer="ones", trainable=False, aggregation="only_first_replica"
        )
        self.input_norm = InputNormalization(config.input_mean, config.input_std, config.input_scale, name="input_norm")
        self.stem = self._make_stem(config.stride_for()) if config.image_shape or config.stem_stride else None
        self.stem_bn = micro_ops.batch_norm(name="stem_bn", batch_stats=self.search_mode)
        self.reducers, self.cells = [], []
        filters = config.out_filters
        num_total = config.num_layers + 2
        for layer_id in range(num_total):
            precision = policy.for_part(f"layer_{layer_id}")
            kw = dict(precision=precision, batch_stats=self.search_mode)
            is_reduction = layer_id in config.reduction_layers
            if is_reduction:
                filters *= 2
                self.reducers.append(micro_ops.FactorizedReduce(filters, name=f"layer_{layer_id}_reduce", **kw))
            else:
                self.reducers.append(None)
            fixed_cell = None
            if self.fixed_arc is not None:
                fixed_cell = self.fixed_arc.reduce if is_reduction else self.fixed_arc.normal
            self.cells.append(MicroCell(
                config.num_nodes, filters, fixed_cell=fixed_cell,
                drop_path_keep_prob=self._layer_keep_prob(layer_id), op_selection=op_selection,
                static_shapes=static_shapes, name=f"layer_{layer_id}", op_precision=policy.with_options,
                search_precisions=search_precisions, **kw,
            ))
        self.aux_layer = max(config.reduction_layers) + 1 if config.reduction_layers else None
        self.aux_head = None
        if config.use_aux_heads and self.aux_layer is not None and self.aux_layer < num_total:
            self.aux_head = AuxHead(config.num_classes, policy.for_part("aux_head"), name="aux_head")
        head_part = "classifier" if policy.head() == "classifier" else f"layer_{num_total - 1}"
        self.final_activation = policy.for_part(head_part).activation()
        self.dropout = keras.layers.Dropout(1.0 - config.keep_prob)
        classifier_precision = policy.for_part("classifier")
        self.classifier = QuantDense(
            config.num_classes, kernel_quantizer=classifier_precision.kernel_quantizer(),
            name="classifier",
        )

    def _make_stem(self, stride):
        """The stem conv: 3x3 at stride 1 or 2, else (s+1)x(s+1) at stride s (every pixel read)."""
        self.stem_stride = int(stride)
        return QuantConv2D(
            3 * self.config.out_filters, max(3, stride + 1), strides=stride, padding="same", use_bias=False,
            kernel_initializer="he_normal", kernel_quantizer=self.config.policy.for_part("stem").kernel_quantizer(),
            name="stem_conv",
        )

    @property
    def uses_drop_path(self):
        """True when training drops paths (``drop_path_keep_prob < 1``)."""
        return self.config.drop_path_keep_prob < 1

    def _layer_keep_prob(self, layer_id):
        """ENAS drop path: deeper layers drop more, ``1 - (l+1)/(L+2) * (1 - keep)``."""
        keep = self.config.drop_path_keep_prob
        if keep >= 1:
            return None
        return 1.0 - (layer_id + 1) / (self.config.num_layers + 2) * (1.0 - keep)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.input_image_shape = tuple(input_shape[1:])
        if self.stem is None:
            self.stem = self._make_stem(self.config.stride_for(self.input_image_shape))
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(input_shape)
        self.stem_bn.build(shape)
        prev_prev = prev = shape
        for layer_id, (reducer, cell) in enumerate(zip(self.reducers, self.cells)):
            if reducer is not None:
                reducer.build(prev)
                reduced = reducer.compute_output_shape(prev)
                prev_prev, prev = prev, reduced
            cell.build([prev_prev, prev])
            prev_prev, prev = prev, cell.compute_output_shape([prev_prev, prev])
            if self.aux_head is not None and layer_id == self.aux_layer:
                self.aux_head.build(prev)
        self.classifier.build((input_shape[0], prev[-1]))

    def split_arc(self, arc):
        """``(normal, reduce)`` halves of an int32 ``[8B]`` arc tensor (of its first ``8B``
        entries for a ``[12B]`` mixed-precision vector)."""
        half = self.space.cell_length
        arc = tf.convert_to_tensor(arc, tf.int32)
        return arc[:half], arc[half:2 * half]

    def split_precisions(self, arc):
        """``(normal, reduce)`` precision indices (``[2B]`` each) of a ``[12B]`` search vector,
        or ``(None, None)`` when the precision is not searched."""
        if not self.space.searches_precision:
            return None, None
        start, slots = self.space.arc_length, self.space.cell_length // 2
        arc = tf.convert_to_tensor(arc, tf.int32)
        return arc[start:start + slots], arc[start + slots:]

    def call(self, images, arc=None, training=False, return_aux=False):
        if self.search_mode:
            if arc is None:
                raise ValueError("a search-mode MicroChild needs `arc` (int32 tensor [8B]) at call time")
            normal_arc, reduce_arc = self.split_arc(arc)
            normal_precisions, reduce_precisions = self.split_precisions(arc)
        else:
            normal_arc = reduce_arc = normal_precisions = reduce_precisions = None
        x = self.stem_bn(self.stem(self.input_norm(images)), training=True if self.search_mode else training)
        prev_prev = prev = x
        aux_logits = None
        for layer_id, (reducer, cell) in enumerate(zip(self.reducers, self.cells)):
            cell_arc, cell_precisions = normal_arc, normal_precisions
            if reducer is not None:
                prev_prev, prev = prev, reducer(prev, training=training)
                cell_arc, cell_precisions = reduce_arc, reduce_precisions
            out = cell([prev_prev, prev], arc=cell_arc, training=training,
                       drop_path_scale=self.drop_path_scale, precisions=cell_precisions)
            prev_prev, prev = prev, out
            if self.aux_head is not None and layer_id == self.aux_layer and training:
                aux_logits = self.aux_head(prev, training=training)
        x = ops.mean(self.final_activation(prev), axis=(1, 2))
        logits = self.classifier(self.dropout(x, training=training))
        return (logits, aux_logits) if return_aux else logits

    def build_for(self, image_shape=None):
        """Create every variable for images of ``image_shape`` (H, W, C; default the config's);
        returns ``self``."""
        image_shape = image_shape or self.config.image_shape
        if not image_shape:
            raise ValueError("build_for needs the image shape (H, W, C): pass it or set ChildConfig.image_shape")
        self.build((None,) + tuple(image_shape))
        return self

    def count_params_used(self):
        """Trainable parameters (the whole search space in search mode)."""
        return int(sum(int(ops.size(w)) for w in self.trainable_weights))

    # --- Keras serialisation (``model.save("m.keras")``, ``keras.models.load_model``) ----------
    def get_config(self):
        """Plain-JSON config: ``ChildConfig.to_json()`` (precision policy included), the fixed
        arc as its string (``None``: search mode) and the image shape (``None`` before the model
        is built)."""
        image_shape = getattr(self, "input_image_shape", None)
        return {
            **super().get_config(),
            "child": self.config.to_json(),
            "fixed_arc": None if self.fixed_arc is None else str(self.fixed_arc),
            "image_shape": None if image_shape is None else [int(d) for d in image_shape],
        }

    @classmethod
    def from_config(cls, config):
        """Inverse of :meth:`get_config`; the model comes back built when the config has an
        image shape (so Keras can load the weights into it)."""
        config = dict(config)
        child = ChildConfig.from_json(config.pop("child"))
        fixed_arc = config.pop("fixed_arc", None)
        image_shape = config.pop("image_shape", None)
        model = cls(child, fixed_arc=fixed_arc, **config)
        if image_shape is not None:
            model.build_for(image_shape)
        return model


class AuxHead(keras.layers.Layer):
    """ENAS auxiliary classifier: ``act -> 5x5 avg pool stride 3 -> 1x1 conv 128 -> BN -> act ->
    conv (whole map) 768 -> BN -> act -> dense``. Input ``(batch, H, W, C)``; a side below 5 pools
    over its whole length instead."""

    def __init__(self, num_classes, precision, **kwargs):
        super().__init__(**kwargs)
        self.activation = precision.activation()
        self.pool = keras.layers.AveragePooling2D(5, strides=3, padding="valid")
        self.conv1 = micro_ops.ConvBN(128, 1, precision=precision, activate=False, shortcut=False)
        self.conv2 = None
        self.precision = precision
        self.dense = keras.layers.Dense(num_classes)

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is not None and width is not None and min(height, width) < 5:  # small inputs (e.g. 49x10)
            self.pool = keras.layers.AveragePooling2D((min(5, height), min(5, width)), strides=3, padding="valid")
        pooled = self.pool.compute_output_shape(input_shape)
        self.conv1.build(pooled)
        shape = self.conv1.compute_output_shape(pooled)
        self.conv2 = micro_ops.ConvBN(768, tuple(shape[1:3]), precision=self.precision, padding="valid",
                                      shortcut=False)
        self.conv2.build(shape)
        self.dense.build((input_shape[0], 768))

    def call(self, x, training=None):
        x = self.conv1(self.pool(self.activation(x)), training=training)
        x = self.conv2(x, training=training)
        return self.dense(ops.reshape(self.activation(x), (ops.shape(x)[0], -1)))
