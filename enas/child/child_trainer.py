"""Compiled one-batch steps of a child network: train (loss, gradients, update) and evaluate.

One ``tf.function`` serves every architecture: in search mode the architecture is an int32
tensor argument (``[8B]``), so sampling a new one per minibatch never retraces.

Under a ``tf.distribute`` strategy (:mod:`enas.run.distribute`; the model and the optimizer are
created by the caller under its scope) each compiled step runs once per replica
(``strategy.run``) on its part of the global batch and returns the values of the global batch:
the loss is averaged over the *global* batch (``tf.nn.compute_average_loss``), regularisation
scaled per replica (``tf.nn.scale_regularization_loss``), the gradients summed over the replicas
before their norm is clipped, and batch norm uses the global batch's statistics
(``sync_batch_norm``). The step keeps no Python-side state (counters are optimizer/tf
variables). Without a strategy the steps are exactly the single-device ones.

Parameter sharing note: ops a step did not use get a zero gradient (not ``None``) through
``tf.switch_case``. Plain SGD leaves them unchanged (but for the optimizer's weight clip, e.g. a
binary kernel's [-1, 1], which applies to every variable after every step: a latent kernel
initialised beyond it is clipped at the first step, used or not); with momentum (or Adam) their weights keep
moving along their previous update direction, decaying by the momentum factor per step, exactly
as in official ENAS, where unused ops also received zero gradients. L2 decay is applied to every
kernel each step (``l2_latent=False``: only to the full-precision ones).
"""

import keras
import tensorflow as tf

from enas.child import replicas
from enas.child.micro_child import AUX_LOSS_WEIGHT
from enas.config.run_config import OPTIMIZERS, check_learning_rates
from enas.errors import ConfigError
from quantize.base import real_weights


def learning_rate_schedule(lr_max, lr_min, steps_per_epoch, t_0=10, t_mul=2, cosine=True):
    """Cosine decay with warm restarts (SGDR): from ``lr_max`` to ``lr_min`` over ``t_0`` epochs,
    then periods ``t_mul`` times longer, as ENAS; or the constant ``lr_max``."""
    check_learning_rates(lr_max, lr_min, cosine, t_0, t_mul)
    if not cosine:
        return lr_max
    return keras.optimizers.schedules.CosineDecayRestarts(
        initial_learning_rate=lr_max, first_decay_steps=int(t_0 * steps_per_epoch),
        t_mul=float(t_mul), m_mul=1.0, alpha=lr_min / lr_max,
    )


def make_optimizer(name, learning_rate):
    """``momentum``: SGD Nesterov 0.9 (ENAS final training); ``sgd``; ``adam``: beta_1 0,
    epsilon 1e-3 (ENAS/original search) (one of ``OPTIMIZERS``)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    return keras.optimizers.Adam(learning_rate, beta_1=0.0, epsilon=1e-3)


class WithoutGrappler:
    """A ``tf.function`` run with Grappler (TensorFlow's graph optimizer) switched off.

    For the search-mode steps: Grappler took 45 of the 83 s of the first call of the ENAS-size
    search step (6 layers, B=5, 20 filters, 32x32x3) and made the step no faster (2.20 vs 2.18 s
    per batch of 128, 2 CPU cores, oneDNN on). The option is process-wide and part of the key
    under which TensorFlow caches the instantiated graph, so it is switched off around every
    call and restored at once: other functions keep Grappler.
    """

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        previous = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
        try:
            return self.function(*args)
        finally:
            tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": previous})

    def get_concrete_function(self, *args):
        return self.function.get_concrete_function(*args)


def distillation_loss(logits, teacher_logits, temperature=1.0):
    """``(batch,)`` knowledge-distillation loss (Hinton et al. 2015): ``T^2 * KL(softmax(t / T) ||
    softmax(s / T))`` of student logits ``s`` and teacher logits ``t``, both ``(batch, classes)``;
    zero exactly when the two distributions agree."""
    t = float(temperature)
    teacher_log_p = tf.nn.log_softmax(teacher_logits / t, axis=-1)
    student_log_p = tf.nn.log_softmax(logits / t, axis=-1)
    return t * t * tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)


def with_real_weights(function):
    """``function`` run (and so traced) inside :func:`quantize.base.real_weights`."""

    def run(*args):
        with real_weights():
            return function(*args)

    return run


class TwoStage:
    """A step that runs ``first`` while ``iterations < switch_at`` and ``second`` afterwards
    (the optimizer's step counter decides, so a resumed run is in the right stage)."""

    def __init__(self, first, second, iterations, switch_at):
        self.first, self.second = first, second
        self.iterations, self.switch_at = iterations, int(switch_at)

    def current(self):
        return self.first if int(self.iterations.numpy()) < self.switch_at else self.second

    def __call__(self, *args):
        return self.current()(*args)

    def get_concrete_function(self, *args):
        return self.current().get_concrete_function(*args)


def decayed_kernels(model, latent=True):
    """The weights the L2 decay acts on: every kernel (rank >= 2) of ``model``; with
    ``latent=False`` not the latent float weights of quantized kernels (the kernels of a layer
    with a ``kernel_quantizer``: the quantized convs and the cells' output combines), only the
    full-precision ones."""
    skip = set()
    if not latent:
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if getattr(layer, "kernel_quantizer", None) is not None:
                skip.update(id(w) for w in layer._trainable_variables)  # its own, not its sublayers'
    return [w for w in model.trainable_weights if len(w.shape) >= 2 and id(w) not in skip]


class ChildTrainer:
    """Train/eval steps of a built :class:`enas.child.micro_child.MicroChild`.

    Args:
        model: the child, already built (all variables exist).
        optimizer: a Keras optimizer (built here on the model's trainable variables, so the first
            compiled step does not create variables or trace twice).
        global_batch_size: examples per step over all replicas (loss scaling).
        l2_reg: L2 weight decay on kernels.
        l2_latent: the decay also acts on the latent weights of quantized kernels
            (:func:`decayed_kernels`).
        grad_bound: clip the global gradient norm to this (``None``/0: no clipping).
        search_mode: steps take an ``arc`` int32 ``[8B]`` argument.
        jit_compile: compile the steps with XLA (a search-mode child must then be built with
            ``static_shapes=True``). Off by default: on CPU XLA made the fixed step ~10x slower;
            on GPUs it is usually faster.
        drop_path_steps: the steps of the whole run. ENAS's drop-path schedule: each train step
            first sets ``model.drop_path_scale = min(1, (step + 1) / drop_path_steps)``, so a
            layer's drop rate grows from 0 to ``(l + 1) / (L + 2) * (1 - drop_path_keep_prob)``
            over the run (:meth:`enas.child.micro_cell.MicroCell`). ``None``: the scale stays as it is.
        real_weight_steps: two-stage training: for the first this many optimizer steps the
            kernels are not quantized (latent float weights, quantized activations), then both
            are. Each stage has its own compiled step (one retrace at the switch).
        teacher: a trained model of the same inputs and classes (inference mode, not trained):
            the loss becomes ``(1 - distill_weight) * cross-entropy + distill_weight *
            distillation_loss(logits, teacher logits, distill_temperature)``.
        sync_batch_norm: under a strategy of two or more replicas, batch norm normalises with the
            statistics of the global batch (:func:`enas.child.replicas.synchronized_batch_norm`).

    Built under a strategy's scope, the steps take distributed batches (from
    :func:`enas.child.replicas.distribute_dataset`) and return the reduced values.
    """

    def __init__(self, model, optimizer, global_batch_size, l2_reg=0.0, grad_bound=None,
                 search_mode=False, jit_compile=False, drop_path_steps=None, l2_latent=True,
                 real_weight_steps=0, teacher=None, distill_weight=1.0, distill_temperature=1.0,
                 sync_batch_norm=True):
        self.model = model
        self.strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
        self.num_replicas = replicas.num_replicas(self.strategy) if self.strategy is not None else 1
        if int(global_batch_size) % self.num_replicas:
            raise ConfigError(f"--batch_size {global_batch_size} does not split evenly over {self.num_replicas} "
                              "replicas; pass a multiple of the replica count")
        self.optimizer = optimizer
        self.global_batch_size = int(global_batch_size)
        self.l2_reg = float(l2_reg)
        self.teacher = teacher
        self.distill_weight, self.distill_temperature = float(distill_weight), float(distill_temperature)
        self.decayed = decayed_kernels(model, latent=l2_latent) if self.l2_reg else []
        self.grad_bound = float(grad_bound) if grad_bound else None
        self.drop_path_steps = int(drop_path_steps) if drop_path_steps else None
        self.variables = list(model.trainable_variables)
        self.optimizer.build(self.variables)
        self.trace_count = 0
        image_shape = (None,) + tuple(model.input_image_shape)
        specs = [tf.TensorSpec(image_shape, tf.float32), tf.TensorSpec([None], tf.int32)]
        if search_mode:
            specs.append(tf.TensorSpec([model.space.vector_length], tf.int32))
        if jit_compile and search_mode and not getattr(model, "static_shapes", False):
            raise ConfigError("XLA needs a search child built with static_shapes=True")
        if jit_compile or self.strategy is not None:  # one trace per batch shape (not per arc)
            specs = None

        def compile_step(function, reductions):
            if self.strategy is not None:
                function = self._replicated(function, reductions, sync_batch_norm)
            step = tf.function(function, input_signature=specs, jit_compile=jit_compile)
            return WithoutGrappler(step) if search_mode and not jit_compile else step

        train_reductions = {"loss": "SUM", "grad_norm": "MEAN", "correct": "SUM"}
        eval_reductions = {"correct": "SUM", "count": "SUM"}
        self.train_step = compile_step(self._train_step, train_reductions)
        self.eval_step = compile_step(self._eval_step, eval_reductions)
        self.real_weight_steps = int(real_weight_steps or 0)
        if self.real_weight_steps:
            iterations, steps = self.optimizer.iterations, self.real_weight_steps
            self.train_step = TwoStage(compile_step(with_real_weights(self._train_step), train_reductions),
                                       self.train_step, iterations, steps)
            self.eval_step = TwoStage(compile_step(with_real_weights(self._eval_step), eval_reductions),
                                      self.eval_step, iterations, steps)

    def _replicated(self, function, reductions, sync_batch_norm):
        """``function`` run on every replica of the strategy (the search's ``arc``: the first
        replica's, so that all train the same architecture), its outputs reduced over the replicas
        (``reductions``: output name -> ``"SUM"`` or ``"MEAN"``)."""
        strategy = self.strategy

        def per_replica(images, labels, arc=None):
            with replicas.synchronized_batch_norm(sync_batch_norm):
                replicas.capture_ordering_token()
                if arc is None:
                    return function(images, labels)
                return function(images, labels, replicas.first_replica_value(arc))

        def step(*args):
            out = strategy.run(per_replica, args=args)
            return {name: strategy.reduce(getattr(tf.distribute.ReduceOp, op), out[name], axis=None)
                    for name, op in reductions.items()}

        return step

    def _loss(self, labels, logits):
        per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    def _train_step(self, images, labels, arc=None):
        """One update. Returns ``loss`` (cross-entropy incl. aux), ``grad_norm`` (before
        clipping), ``correct`` (int32, this batch)."""
        self.trace_count += 1
        if self.drop_path_steps and getattr(self.model, "uses_drop_path", False):
            progress = tf.cast(self.optimizer.iterations + 1, tf.float32) / float(self.drop_path_steps)
            self.model.drop_path_scale.assign(tf.minimum(1.0, progress))
        with tf.GradientTape() as tape:
            logits, aux_logits = self.model(images, arc=arc, training=True, return_aux=True)
            loss = self._loss(labels, logits)
            if self.teacher is not None:
                teacher_logits = tf.stop_gradient(self.teacher(images, training=False))
                distill = distillation_loss(logits, teacher_logits, self.distill_temperature)
                loss = (1.0 - self.distill_weight) * loss + self.distill_weight * tf.nn.compute_average_loss(
                    distill, global_batch_size=self.global_batch_size)
            if aux_logits is not None:
                loss += AUX_LOSS_WEIGHT * self._loss(labels, aux_logits)
            total = loss
            if self.decayed:
                l2 = tf.add_n([tf.reduce_sum(tf.square(w)) for w in self.decayed])
                total += tf.nn.scale_regularization_loss(self.l2_reg * l2)
        grads = tape.gradient(total, self.variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables)]
        replica_context = replicas.in_replicas()
        if replica_context is not None:  # the global batch's gradient, on every replica
            # (dense: a gathered kernel's IndexedSlices, e.g. the combine's rows, are small, and
            # the all-reduce and the division below then see plain tensors)
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
            grads = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grad_norm = tf.linalg.global_norm(grads)
        if self.grad_bound:
            grads, _ = tf.clip_by_global_norm(grads, self.grad_bound, use_norm=grad_norm)
        if replica_context is not None:  # the optimizer sums over the replicas again
            grads = [g / replica_context.num_replicas_in_sync for g in grads]
        self.optimizer.apply(grads, self.variables)
        return {"loss": loss, "grad_norm": grad_norm, "correct": _correct(labels, logits)}

    def _eval_step(self, images, labels, arc=None):
        """``correct`` predictions and ``count`` of examples in the batch (int32)."""
        return {"correct": _correct(labels, self.model(images, arc=arc, training=False)),
                "count": tf.shape(labels)[0]}

    def learning_rate(self):
        return float(self.optimizer.learning_rate)

    def evaluate(self, dataset, arc=None):
        """``(correct, total)`` over a finite dataset."""
        correct = total = 0
        for images, labels in dataset:
            args = (images, labels) if arc is None else (images, labels, arc)
            out = self.eval_step(*args)
            correct += int(out["correct"])
            total += int(out["count"])
        return correct, total


def _correct(labels, logits):
    predictions = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.int32))
