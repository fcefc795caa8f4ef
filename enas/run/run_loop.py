"""The one run loop of fixed training and search: data, seed, network, run folder, checkpoints,
epochs of compiled child steps, evaluation, and the log.

:func:`run` does everything both kinds of run share; a :class:`Task` adds what differs (which
network, which architecture each step trains, the search's controller phase after each epoch,
the final report)::

    run(config, task)
      strategy = the --distribution's (none by default); this worker's role
      data = load_data(config); seed
      with strategy.scope(): task.build(config, data)          # network, trainer, extra state
      task.build_unreplicated(config, data)                    # search: the controller
      prepare the output folder (config.json), open the log, restore the newest checkpoint
      log the task's header
      for each remaining epoch:
          for each minibatch: trainer.train_step(images, labels, *task.step_args())
          task.after_epoch(...)                                # search: controller, report
          evaluate (every eval_every_epochs), save the checkpoint
      return task.finish(...)

Scale-out (:mod:`enas.run.distribute`): under a ``tf.distribute`` strategy the network, its optimizer
and the task's replicated variables are created under ``strategy.scope()``, the steps run per
replica on the global batch split over them (:mod:`enas.child.child_trainer`), the datasets are
distributed, and only the chief writes the run folder (the other workers write to a folder of
their own and resume from the chief's checkpoints). The loop itself keeps no state outside
checkpointed variables, so a run resumes under another replica count.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time

import keras

from enas.child import replicas
from enas.child.child_trainer import (
    ChildTrainer,
    learning_rate_schedule,
    make_optimizer,
)
from enas.data import data_utils, sources
from enas.errors import UserError
from enas.run import distribute, log_format, run_dir
from enas.run.summaries import RunSummaries


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""

    exit_code = 3


class Task:
    """What a kind of run adds to :func:`run`. Subclasses set ``model`` and ``trainer`` in
    :meth:`build` and may override the other hooks."""

    model = None
    trainer = None

    def build(self, config, data):
        """Create the network, its trainer and any other state (under the strategy's scope)."""
        raise NotImplementedError

    def build_unreplicated(self, config, data):
        """Create what lives once per process, outside the strategy's scope (the search's
        controller: every worker samples the same architectures from the same seed)."""

    def trackables(self):
        """Objects the checkpoint holds besides the epoch counter (default: model and optimizer)."""
        return dict(model=self.model, optimizer=self.trainer.optimizer)

    def header(self, config, data):
        """Lines printed between the rules at the start of the run."""
        return []

    def step_args(self):
        """Extra arguments of this step's ``train_step`` (the search: the sampled arc)."""
        return ()

    def after_epoch(self, epoch, loop):
        """Runs after the epoch's child steps, before its evaluation and checkpoint."""

    def eval_arc(self):
        """The architecture to evaluate (``None``: the fixed network)."""
        return None

    def epoch_done(self, epoch, seconds, loop):
        """Runs after the epoch's checkpoint; ``seconds`` of child steps."""

    def finish(self, loop):
        """The run's result (a dict), after the last epoch."""
        return {}


def load_data(config):
    """The run's :class:`~enas.data.data_common.DataSplits` (any source, :mod:`enas.data.sources`)."""
    d = config.data
    return sources.load_source(config.dataset, d.data_path, num_valid=d.num_valid, image_size=d.image_size_tuple(),
                               color_mode=d.color_mode, max_train=d.max_train_examples or None,
                               max_test=d.max_test_examples or None)


def describe_data(config, data):
    """``"<dataset> (N train, V valid, T test)"`` and, for other data than the original's MNIST and
    CIFAR-10, the image shape, classes, stem stride and source."""
    h, w, c = data.image_shape
    text = f"{config.dataset} ({len(data.train)} train, {len(data.valid)} valid, {len(data.test)} test)"
    if config.dataset in ("mnist", "cifar10") and not config.data.image_size and config.data.color_mode == "auto":
        return text
    stride = config.child.stride_for(data.image_shape)
    return (f"{text}; {h}x{w}x{c} images, {data.num_classes} classes, stem stride {stride}"
            f"{' (auto)' if not config.child.stem_stride else ''}; {data.description}")


def check_input_fits(model, config):
    """Raise :class:`~enas.errors.ArcError` (one line) when the input is too small for the
    architecture's reductions (every reduction halves the image; the last needs at least 1x1)."""
    from enas.errors import ArcError

    h, w = model.input_image_shape[:2]
    stride = model.stem_stride * 2 ** len(config.child.reduction_layers)
    if min(h, w) < stride:
        fix = ("--child_stem_stride 1, or " if model.stem_stride > 1 else "") + \
            f"--image_size with sides of at least {stride}"
        raise ArcError(f"{h}x{w} images are too small for this network: its stem (stride {model.stem_stride}) and "
                       f"{len(config.child.reduction_layers)} reductions divide them by {stride}; pass {fix}")


def training_options(config):
    """Header lines naming how the child is trained: its recipe's resolved values and, when set,
    the two-stage schedule."""
    t = config.training
    schedule = ("one cosine period over the run" if not t.lr_T_0 else
                f"cosine restarts every {t.lr_T_0} x {t.lr_T_mul}^k epochs") if t.lr_cosine else "constant"
    decay = f"L2 {t.l2_reg:g}" + ("" if t.l2_latent or not t.l2_reg else " (not on latent quantized weights)")
    lines = [f"Training: recipe {t.recipe}: batch {t.batch_size}, {t.optimizer}, lr {t.lr_max:g} -> {t.lr_min:g} "
             f"({schedule}), {decay}"]
    if t.real_weight_epochs:
        first = "epoch 1" if t.real_weight_epochs == 1 else f"epochs 1-{t.real_weight_epochs}"
        lines.append(f"Two-stage training: real-valued kernels for {first}, quantized from epoch "
                     f"{t.real_weight_epochs + 1}")
    return lines


def make_child_trainer(config, model, num_train, search_mode, teacher=None):
    """Optimizer (with the cosine-restart schedule) and compiled steps for ``model``; the
    drop-path rate grows over the run's ``num_epochs`` (see :class:`ChildTrainer`)."""
    t = config.training
    steps_per_epoch = t.steps_per_epoch(num_train)
    schedule = learning_rate_schedule(t.lr_max, t.lr_min, steps_per_epoch, t.first_period(), t.lr_T_mul,
                                      t.lr_cosine)
    return ChildTrainer(model, make_optimizer(t.optimizer, schedule), t.batch_size, l2_reg=t.l2_reg,
                        l2_latent=t.l2_latent, real_weight_steps=t.real_weight_epochs * steps_per_epoch,
                        grad_bound=t.grad_bound, search_mode=search_mode,
                        jit_compile=search_mode and t.xla, drop_path_steps=steps_per_epoch * t.num_epochs,
                        teacher=teacher, distill_weight=t.distill_weight, distill_temperature=t.distill_temperature,
                        sync_batch_norm=config.distribute.sync_batch_norm)


class Loop:
    """The state of a running :func:`run`, handed to the task's hooks: ``config``, ``data``,
    ``trainer``, ``log``, ``summaries`` (TensorBoard scalars), ``start`` (this sitting's wall
    time), ``resumed_seconds`` (the run's time in earlier sittings, up to the checkpoint it resumed
    from) and ``strategy`` (``None`` on the default single-device path)."""

    def __init__(self, config, data, trainer, log, strategy=None):
        self.config, self.data, self.trainer, self.log = config, data, trainer, log
        self.strategy = strategy
        self.start = time.time()
        self.resumed_seconds = 0.0
        self.steps_per_epoch = config.training.steps_per_epoch(len(data.train))
        self.summaries = RunSummaries(config.output.output_dir)
        self.progbar = None
        self.accuracies = {}  # of the last evaluation in this process

    def seconds(self):
        """The run's time so far, over all its sittings."""
        return self.resumed_seconds + time.time() - self.start

    def minutes(self):
        return self.seconds() / 60

    def step(self):
        return int(self.trainer.optimizer.iterations.numpy())

    def train_dataset(self, epoch):
        """The epoch's minibatches. Seeded per epoch, so a run resumed at an epoch boundary sees
        the same batches. Starts a progress bar when stdout is a terminal (never in a log file)."""
        if sys.stdout.isatty():
            self.progbar = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=["loss", "lr"])
        d = self.config.data
        return replicas.distribute_dataset(self.strategy, data_utils.split_dataset(
            self.data, "train", self.config.training.batch_size, training=True,
            augment=d.augment, cutout_size=d.cutout_size or None, seed=self.config.output.seed * 1000 + epoch,
            cache=d.cache,
        ))

    def eval_dataset(self, split):
        return replicas.distribute_dataset(self.strategy, data_utils.split_dataset(
            self.data, split, self.config.training.eval_batch_size, training=False))

    def scope(self):
        """The strategy's scope (to change replicated variables outside the steps), or none."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def after_step(self, epoch, out, checkpoints):
        """NaN guard, progress bar (terminal only) and the step line every ``log_every`` steps."""
        step, loss = self.step(), float(out["loss"])
        if not math.isfinite(loss):
            last = checkpoints.manager.latest_checkpoint or "none yet"
            raise TrainingDiverged(
                f"loss became {loss} at epoch {epoch}, step {step}; stopped. Last good checkpoint: {last}. "
                "Lower --child_lr_max or set --child_grad_bound, then rerun to resume from it"
            )
        if self.progbar is not None:
            self.progbar.add(1, [("loss", loss), ("lr", self.trainer.learning_rate())])
        if step % self.config.output.log_every == 0:
            batch = self.config.training.batch_size
            lr, grad_norm, correct = self.trainer.learning_rate(), float(out["grad_norm"]), int(out["correct"])
            self.log(log_format.child_step(epoch, step, loss, lr, grad_norm, correct, batch, self.minutes()))
            self.summaries.scalars(step, {"child/loss": loss, "child/lr": lr, "child/grad_norm": grad_norm,
                                          "child/train_accuracy": correct / batch})

    def evaluate(self, splits=("valid", "test"), arc=None):
        """Accuracy on each split (an empty validation split is skipped), logged as the original."""
        accuracies, step = {}, self.step()
        for split in splits:
            if len(self.data.split(split)) == 0:  # no validation split, or a folder without test/
                continue
            correct, total = self.trainer.evaluate(self.eval_dataset(split), arc)
            self.log("\n".join(log_format.eval_block(step, split, correct, total)))
            accuracies[split] = correct / max(total, 1)
        self.summaries.scalars(step, {f"eval/{k}_accuracy": v for k, v in accuracies.items()})
        self.summaries.flush()
        self.accuracies = accuracies
        return accuracies


def run(config, task, log=None, strategy=None, echo=True, data=None):
    """Run ``task`` with ``config`` (a :class:`enas.config.run_config.RunConfig`); returns
    ``task.finish(loop)`` plus ``epochs`` (the epochs completed), ``seconds`` (the run's time over
    all its sittings) and ``resumed_seconds`` (the part of it before this sitting). The log goes to stdout and the
    run folder's ``stdout`` file (only the file with ``echo=False``) unless ``log`` is given.
    ``strategy``: a ``tf.distribute`` strategy to run under instead of ``config.distribute``'s.
    ``data``: a :class:`~enas.data.data_common.DataSplits` to use instead of reading
    ``config.data`` (arrays or ``tf.data`` from Python, :mod:`enas.data.sources`)."""
    if strategy is None:  # first: a CPU split or a cluster must be set up before TensorFlow runs
        strategy = distribute.make_strategy(config.distribute)
    worker = distribute.Worker(strategy, config.output.output_dir)
    fresh_start = config.output.reset_output_dir
    data = load_data(config) if data is None else data
    config = config.with_data(data)  # the network's input: shape, classes, normalisation
    if not worker.is_chief:  # the chief checks and writes the run folder; the others only read it
        if not fresh_start:
            run_dir.check_identity(worker.read_dir, config)
        config = config.replace(output={"output_dir": worker.write_dir, "reset_output_dir": True})
    keras.utils.set_random_seed(config.output.seed)
    # No scope without a strategy: even the default strategy's scope changes Keras' initial
    # weights for the same seed, and runs must stay reproducible across versions.
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        task.build(config, data)
        epoch_var = keras.Variable(0, dtype="int64", trainable=False, name="epoch")
    task.build_unreplicated(config, data)
    out = config.output
    # Only now, with every setting validated and the network built, touch the output folder.
    with run_dir.prepare(out.output_dir, config, out.reset_output_dir):  # this process's until the end
        log = log or run_dir.RunLog(out.output_dir, echo=echo)
        checkpoints = run_dir.Checkpoints(out.output_dir, epoch=epoch_var, **task.trackables())
        if worker.is_chief:
            restored = checkpoints.restore_latest()
        else:  # from the chief's folder, unless the chief is starting it over
            restored = None if fresh_start else checkpoints.restore_latest(directory=worker.read_dir)
        worker.check_same_epoch(int(epoch_var.numpy()))
        run_dir.update_record(out.output_dir, config)
        loop = Loop(config, data, task.trainer, log, strategy)
        if restored:
            loop.resumed_seconds = checkpoints.seconds_at(restored)

        log("-" * 80)
        for line in task.header(config, data):
            log(line)
        if strategy is not None:
            log(distribute.describe(strategy, config.distribute, config.training.batch_size, worker))
        if restored:
            log(f"Resuming from {restored} at epoch {int(epoch_var.numpy())}, step {loop.step()}")
        log("-" * 80)

        num_epochs = config.training.num_epochs
        for epoch in range(int(epoch_var.numpy()), num_epochs):
            epoch_start = time.time()
            for images, labels in loop.train_dataset(epoch):
                step_out = task.trainer.train_step(images, labels, *task.step_args())
                loop.after_step(epoch, step_out, checkpoints)
            seconds = time.time() - epoch_start
            task.after_epoch(epoch, loop)
            if (epoch + 1) % out.eval_every_epochs == 0 or epoch + 1 == num_epochs:
                log(f"Epoch {epoch + 1}: Eval")
                loop.evaluate(arc=task.eval_arc())
            with loop.scope():
                epoch_var.assign(epoch + 1)
            checkpoints.save(loop.seconds())
            task.epoch_done(epoch, seconds, loop)
        result = task.finish(loop)
        loop.summaries.close()
        if not worker.is_chief:  # its folder only served TensorFlow's rule that every worker writes
            getattr(log, "close", lambda: None)()
            shutil.rmtree(worker.write_dir, ignore_errors=True)
        return {**result, "epochs": int(epoch_var.numpy()), "seconds": round(loop.seconds(), 1),
                "resumed_seconds": round(loop.resumed_seconds, 1)}
