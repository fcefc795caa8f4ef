"""ENAS micro architecture search (``search_arc_mnist.py``, ``search_arc_cifar.py``).

Each epoch:

1. train the shared-weight child for one epoch, a freshly sampled architecture per minibatch
   (one compiled step for all architectures, see :mod:`enas.child.child_trainer`);
2. train the controller ``controller_train_steps`` times with REINFORCE, the reward being the
   child's accuracy on a validation minibatch (:class:`enas.controller.controller.ReinforceTrainer`), from
   the epoch after ``controller_warmup_epochs`` on;
3. print ``Here are 10 architectures`` (each with its ``val_acc`` on a validation minibatch and
   as a ready-to-paste string), then ``Epoch N: Eval`` (valid and test accuracy of one sampled
   architecture);
4. append the architectures sampled for that report to ``arcs.jsonl`` (and each controller update
   to ``controller.jsonl``: entropy, reward, accuracy), update ``best_arc.txt``
   (the best arc string, ready for ``-fixed_arc``) and ``best_arc.json``, and checkpoint
   child, controller, both optimizers, baseline, epoch and RNG state.

At the end, the final pick (:func:`final_pick`): ``final_pick_samples`` architectures sampled
from the final controller are ranked by their accuracy on the *whole* validation split with the
shared weights (not one minibatch); the best becomes ``best_arc.txt`` / ``best_arc.json``, and
``final_pick.json`` keeps the ranking and its ``final_pick_top`` best.

With ``--search_precisions`` or a target (``--target_memory_kib``, ``--target_ops``) the search is
cost-aware (:mod:`enas.search.search_cost`): the controller's reward is the accuracy times MnasNet's cost
factor, computed in the compiled reward from a per-op cost table (:mod:`enas.cost.cost_table`); the report
and ``arcs.jsonl`` give each architecture's memory, OPs and reward; the best is the most accurate
within the target; ``pareto.json`` / ``pareto.png`` hold the accuracy-cost front.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from enas.child.child_trainer import WithoutGrappler
from enas.child.micro_child import MicroChild
from enas.config.run_config import RunConfig
from enas.controller.controller import RandomController, ReinforceTrainer
from enas.controller.micro_controller import MicroController
from enas.data import data_utils
from enas.errors import ConfigError
from enas.run import log_format, run_dir, run_loop
from enas.run.atomic import atomic_write
from enas.search.ranking import rank_architectures
from enas.search.search_cost import PARETO_FILE, PARETO_PLOT, SearchCost
from enas.space.arc import Arc
from enas.space.search_space import SearchSpace

ARCS_FILE = "arcs.jsonl"
BEST_FILE = "best_arc.txt"  # the arc string alone: -fixed_arc "$(cat best_arc.txt)"
BEST_RECORD = "best_arc.json"
FINAL_PICK = "final_pick.json"
CONTROLLER_FILE = "controller.jsonl"  # one line per controller update: its entropy, reward, accuracy, gradient norm


def make_controller(config, space):
    """The controller of ``config.controller`` for the search space ``space`` (its cells'
    ``num_nodes``, and its precisions when they are searched)."""
    c, num_nodes, seed = config.controller, config.child.num_nodes, config.output.seed
    # A child of reduction layers only does not use the normal cell: no controller decides it.
    normal_cell = config.child.has_normal_layer
    if c.type == "random":
        return RandomController(num_nodes, num_precisions=space.num_precisions, seed=seed, normal_cell=normal_cell)
    return MicroController(num_nodes, lstm_size=c.lstm_size, tanh_constant=c.tanh_constant or None,
                           op_tanh_reduce=c.op_tanh_reduce, temperature=c.temperature or None, seed=seed,
                           num_precisions=space.num_precisions, weighted_ops=space.weighted_ops,
                           normal_cell=normal_cell)


def make_reinforce_trainer(config, controller, reward_fn):
    """The REINFORCE trainer of a learning ``controller`` with ``config.controller``'s settings
    (``grad_bound`` 0: no clipping)."""
    c = config.controller
    return ReinforceTrainer(controller, reward_fn, learning_rate=c.lr, entropy_weight=c.entropy_weight,
                            baseline_decay=c.bl_dec, num_aggregate=c.num_aggregate, grad_bound=c.grad_bound or None)


class RewardBatches:
    """Endless shuffled validation minibatches (no augmentation), read inside compiled code.

    Pass ``e`` of the validation split is ordered by a stateless shuffle keyed by ``(seed, e)``
    and the passes follow each other in one stream (a minibatch may span two), so the stream is a
    pure function of the seed and its position: the checkpointed iterator resumes exactly where it
    stopped. (A ``shuffle(reshuffle_each_iteration=True).repeat()`` pipeline does not: restored,
    it yields other batches from its first reshuffle on.) The split is held in memory as its raw
    images (decoded once for an image folder).
    """

    def __init__(self, data, batch_size, seed):
        if len(data.valid) == 0:
            raise ConfigError("architecture search needs a validation split: pass --num_valid > 0")
        images, labels = data_utils.split_arrays(data, "valid")
        count = len(labels)
        images, labels = tf.constant(images), tf.constant(np.asarray(labels, np.int32))
        key = tf.constant(int(seed or 0), tf.int64)

        def one_pass(e):
            order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([key, e]))
            return tf.data.Dataset.from_tensor_slices(order)

        dataset = (tf.data.Dataset.counter().flat_map(one_pass)
                   .batch(min(batch_size, count), drop_remainder=True)
                   .map(lambda i: (tf.cast(tf.gather(images, i), tf.float32), tf.gather(labels, i)))
                   .prefetch(1))
        self.iterator = iter(dataset)

    def next(self):
        return next(self.iterator)


def batch_accuracy(child, batches, count=1):
    """``reward_fn``: accuracy of ``child`` with ``arc`` on the next validation minibatch, or the
    mean of its accuracies on the next ``count`` minibatches (each its own forward pass: in search
    mode batch norm normalises with each minibatch's statistics, so this is the mean of ``count``
    one-minibatch rewards, not the accuracy on one larger batch). A ``tf.while_loop`` when
    ``count > 1``: the child's graph is traced once whatever ``count``."""

    def one(arc):
        images, labels = batches.next()
        logits = child(images, arc=arc, training=False)
        predictions = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        return tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))

    if count == 1:
        return one

    def mean_accuracy(arc):
        total = tf.constant(0.0, tf.float32)
        for _ in tf.range(count):
            total += one(arc)
        return total / count

    return mean_accuracy


def cost_aware_reward(accuracy_fn, costing):
    """``reward_fn`` of the cost-aware search: ``(accuracy, accuracy * cost factor)`` of ``arc``,
    the cost computed from its vector in the same compiled step (:meth:`SearchCost.tf_reward`)."""

    def reward(arc):
        accuracy = accuracy_fn(arc)
        return accuracy, costing.tf_reward(accuracy, arc)

    return reward


class Search(run_loop.Task):
    """ENAS search: a shared-weight child trained on one sampled architecture per step, then the
    controller phase, the sampled-architecture report and ``best_arc.txt`` after each epoch."""

    def build(self, config, data):
        self.config = config
        xla = config.training.xla
        self.model = MicroChild(config.child, static_shapes=xla).build_for(data.image_shape)
        run_loop.check_input_fits(self.model, config)
        self.trainer = run_loop.make_child_trainer(config, self.model, len(data.train), search_mode=True)

    def build_unreplicated(self, config, data):
        """The controller, its trainer and the reward, once per process (not replicated): every
        worker samples the same architectures from the same seed, and a distributed search step
        trains all replicas on the first one's. The reward reads the shared child's weights
        (replicated or not) on one device, over a whole validation minibatch."""
        self.controller = make_controller(config, self.model.space)
        c = config.controller
        self.reward_batches = RewardBatches(data, c.reward_batch_size, config.output.seed)
        accuracy_fn = batch_accuracy(self.model, self.reward_batches, c.reward_batches)
        self.costing = None
        if self.model.space.searches_precision or config.cost.has_target:
            self.costing = SearchCost.build(config, data.image_shape, getattr(self, "micro_builder", None))
        reward_fn = tf.function(accuracy_fn if self.costing is None else cost_aware_reward(accuracy_fn, self.costing))
        self.ctrl_trainer = None
        if self.controller.learns:
            self.ctrl_trainer = make_reinforce_trainer(config, self.controller, reward_fn)
            self.controller_step = WithoutGrappler(self.ctrl_trainer.train_step)
        self.accuracy_fn = WithoutGrappler(tf.function(accuracy_fn))  # for the arcs reported each epoch

    def trackables(self):
        trackables = dict(child=self.model, child_optimizer=self.trainer.optimizer, controller=self.controller,
                          reward_data=self.reward_batches.iterator)
        if self.ctrl_trainer is not None:
            trackables["controller_trainer"] = self.ctrl_trainer
        return trackables

    def header(self, config, data):
        c = config.child
        self.best = read_best(config.output.output_dir)
        return [
            f"Architecture search on {run_loop.describe_data(config, data)}",
            f"Controller: {config.controller.type}; cells of {c.num_nodes} nodes; "
            f"{c.num_layers} layers + 2 reductions; {c.out_filters} filters",
            f"Precision: {c.policy.describe()}",
        ] + ([] if c.has_normal_layer else [
            "Note: every layer is a reduction cell (no normal layers): only the reduction cell is searched; "
            "the normal cell is a copy of it"
        ]) + ([] if self.costing is None else [self.costing.describe()]) + [
            f"Shared parameters: {self.model.count_params_used()}",
        ] + run_loop.training_options(config)

    def step_args(self):
        return (self.controller.sample().arc,)

    def eval_arc(self):
        return self.controller.sample().arc

    def after_epoch(self, epoch, loop):
        c = self.config.controller
        if self.ctrl_trainer is not None and epoch < c.warmup_epochs:
            loop.log(f"Epoch {epoch + 1}: controller warm-up ({epoch + 1}/{c.warmup_epochs}), not trained")
        elif self.ctrl_trainer is not None:
            loop.log(f"Epoch {epoch + 1}: Training controller")
            updates = []
            for _ in range(c.train_steps):
                out = self.controller_step()
                ctrl_step = int(self.ctrl_trainer.step.numpy())
                updates.append({"epoch": epoch + 1, "step": ctrl_step,
                                **{k: float(out[k]) for k in ("entropy", "reward", "accuracy", "baseline", "grad_norm")}})
                loop.summaries.scalars(ctrl_step, {
                    f"controller/{k}": float(out[k])
                    for k in ("loss", "entropy", "reward", "accuracy", "baseline", "grad_norm")
                })
                if ctrl_step % self.config.output.log_every == 0:
                    loop.log(log_format.controller_step(
                        ctrl_step, float(out["loss"]), float(out["entropy"]), c.lr, float(out["grad_norm"]),
                        float(out["accuracy"]), float(out["baseline"]), loop.minutes(),
                    ))
            record_controller(self.config.output.output_dir, updates)
            uniform = self.controller.uniform_entropy
            entropy = sum(u["entropy"] for u in updates) / len(updates)
            loop.log(f"Controller: entropy {entropy:.2f} nats ({entropy / uniform:.0%} of the uniform distribution's "
                     f"{uniform:.2f}), accuracy {sum(u['accuracy'] for u in updates) / len(updates):.4f}, "
                     f"mean of this epoch's {len(updates)} updates")
        sampled = sample_and_report(self.controller, self.accuracy_fn, c.num_sampled_arcs, epoch + 1, loop.log,
                                    self.costing)
        self.best = record(self.config.output.output_dir, sampled, self.best, self.costing)
        accuracies = [item["val_acc"] for item in sampled]
        if accuracies:
            # Same x axis as the controller scalars (controller steps), child steps for random.
            x = int(self.ctrl_trainer.step.numpy()) if self.ctrl_trainer is not None else loop.step()
            loop.summaries.scalars(x, {"search/sampled_val_acc_mean": sum(accuracies) / len(accuracies),
                                       "search/sampled_val_acc_best": max(accuracies)})

    def finish(self, loop):
        c = self.config.controller
        pick = None
        if c.final_pick_samples > 0:
            pick = final_pick(self.controller, self.trainer, loop, c.final_pick_samples, c.final_pick_top,
                              self.config.training.num_epochs, self.costing)
            self.best = pick["best"]
            write_best(self.config.output.output_dir, self.best)
        best = self.best
        pareto = None
        if self.costing is not None:
            output_dir = self.config.output.output_dir
            evaluated = read_arcs(output_dir) + ([] if pick is None else pick["ranked"])
            pareto = self.costing.write_pareto(output_dir, evaluated, best)
            loop.log(f"Pareto front: {len(pareto['front'])} of {len(pareto['points'])} evaluated architectures "
                     f"({os.path.join(output_dir, PARETO_FILE)}, {PARETO_PLOT})")
        if best is not None:
            loop.log("-" * 80)
            within = "" if self.costing is None or not self.config.cost.has_target else (
                " within the target" if best["meets_target"] else " (none meets the target: the best reward)")
            if pick is not None:
                loop.log(f"Best architecture of the final pick{within} (val_acc = {best['val_acc']:<6.4f} on the "
                         "whole validation split):")
            else:
                loop.log(f"Best sampled architecture{within} (val_acc = {best['val_acc']:<6.4f}, "
                         f"epoch {best['epoch']}):")
            if self.costing is not None:
                loop.log(self.costing.text(best))
            loop.log(best["arc"])
            loop.log("-" * 80)
        return {"best": best, "final_pick": pick, "pareto": pareto}


def final_pick(controller, trainer, loop, count, top, epoch, costing=None):
    """ENAS's final pick, made reliable: ``count`` architectures sampled from the final controller
    (uniform for the random controller), each evaluated on the whole validation split with the
    shared weights; writes ``final_pick.json`` (every distinct one, best first, the ``top`` and the
    ``best``: the most accurate, or with a ``costing`` the most accurate within the target, see
    :meth:`SearchCost.better`) and logs the best ``top``. Returns that record."""
    samples = [controller.sample().arc.numpy().tolist() for _ in range(count)]
    precisions = () if costing is None else costing.precisions
    default = None if costing is None else costing.default_precision
    ranked = rank_architectures(trainer, loop.eval_dataset("valid"), samples, precisions, default)
    for item in ranked:
        item.update(epoch=epoch, source="final pick")
        if costing is not None:
            costing.annotate(item)
    best = ranked[0] if costing is None else costing.choose(ranked)
    record_ = {"samples": count, "distinct": len(ranked), "valid_examples": len(loop.data.valid),
               "top": ranked[:top], "best": best, "ranked": ranked}
    atomic_write(os.path.join(loop.config.output.output_dir, FINAL_PICK), json.dumps(record_) + "\n")
    loop.log("-" * 80)
    loop.log(f"Final pick: {count} architectures sampled from the final controller ({len(ranked)} distinct), "
             f"ranked by accuracy on the whole validation split ({len(loop.data.valid)} images)")
    for rank, item in enumerate(ranked[:top], start=1):
        text = f"val_acc = {item['val_acc']:<6.4f}" if costing is None else costing.text(item)
        loop.log(f"{rank}. {text}  arc = {item['arc']}")
    return record_


def run(config, dataset=None, log=None, echo=True, data=None, micro_builder=None):
    """Search with ``config`` (a :class:`RunConfig`, or a script's flat settings with ``dataset``);
    returns a dict with the best architecture (``best``), the ``final_pick`` record and ``epochs``.
    ``data``: a :class:`~enas.data.data_common.DataSplits` from Python (:mod:`enas.data.sources`)
    instead of ``config.data``'s files. ``micro_builder(child_config, image_shape)``: TensorFlow
    Lite Micro's RAM and flash table (:meth:`enas.deploy.micro_table.MicroTable.build`), needed by
    ``--target_ram_kib`` and ``--target_flash_kib``."""
    if not isinstance(config, RunConfig):
        config = RunConfig.from_settings(config, "search", dataset)
    task = Search()
    task.micro_builder = micro_builder
    return run_loop.run(config, task, log=log, echo=echo, data=data)


def restore_shared_child(output_dir):
    """The shared-weight child of the search run in ``output_dir`` with its latest checkpoint, and
    a search-mode trainer to evaluate it: ``(config, trainer, data)``."""
    with open(os.path.join(output_dir, run_dir.CONFIG_FILE)) as f:
        record = json.load(f)
    if "config" not in record:
        raise ConfigError(f"{output_dir!r} records no whole configuration; rerun its search first")
    config = RunConfig.from_json(record["config"])
    if config.mode != "search":
        raise ConfigError(f"{output_dir!r} holds a {config.mode} run, not a search")
    data = run_loop.load_data(config)
    config = config.with_data(data)
    model = MicroChild(config.child, static_shapes=config.training.xla).build_for(data.image_shape)
    trainer = run_loop.make_child_trainer(config, model, len(data.train), search_mode=True)
    if run_dir.Checkpoints(output_dir, child=model).restore_latest(partial=True) is None:
        raise ConfigError(f"{output_dir!r} has no checkpoint of its search")
    return config, trainer, data


def restore_controller(output_dir):
    """The controller of the search run in ``output_dir`` with the weights of its latest
    checkpoint: ``(config, controller)`` (no data, no child). A random controller is returned as
    it is: it has nothing to restore."""
    try:
        with open(os.path.join(output_dir, run_dir.CONFIG_FILE)) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{output_dir!r} is not a search run folder (its {run_dir.CONFIG_FILE} cannot be read: "
                          f"{e.__class__.__name__}); pass the --output_dir of a search") from None
    if "config" not in record:
        raise ConfigError(f"{output_dir!r} records no whole configuration; rerun its search first")
    config = RunConfig.from_json(record["config"])
    if config.mode != "search":
        raise ConfigError(f"{output_dir!r} holds a {config.mode} run, not a search")
    child = config.child
    space = SearchSpace(child.num_nodes,  # as the child builds it (enas.child.micro_child)
                        precisions=tuple(child.policy.with_options(p).short_name() for p in child.search_precisions))
    controller = make_controller(config, space)
    if controller.learns and run_dir.Checkpoints(output_dir, controller=controller).restore_latest(partial=True) is None:
        raise ConfigError(f"{output_dir!r} has no checkpoint of its search")
    return config, controller


def sample_and_report(controller, accuracy_fn, count, epoch, log, costing=None):
    """Sample ``count`` architectures, print them in the original block format (with a
    ``costing``, the ``val_acc`` line also gives the cost and reward), return them."""
    log(f"Here are {count} architectures")
    sampled = []
    precisions = () if costing is None else costing.precisions
    for _ in range(count):
        vector = controller.sample().arc
        arc = Arc.from_vector(vector.numpy(), precisions)
        item = {"epoch": epoch, "arc": str(arc), "val_acc": float(accuracy_fn(vector)), "source": "sampled"}
        if costing is not None:
            costing.annotate(item)
        lines = log_format.sampled_arc(arc.normal, arc.reduce, item["val_acc"])[:-1]
        if costing is not None:
            lines[-1] = costing.text(item)
        for line in lines:
            log(line)
        log(f"arc = {arc}")
        log("-" * 80)
        sampled.append(item)
    return sampled


def record_controller(output_dir, updates):
    """Append the controller updates (step, entropy, reward, accuracy, baseline) to
    ``controller.jsonl`` (a resumed epoch appends its steps again: :func:`read_controller` keeps
    the last record of each step)."""
    with open(os.path.join(output_dir, CONTROLLER_FILE), "a") as f:
        for update in updates:
            f.write(json.dumps(update) + "\n")


def read_controller(output_dir):
    """The records of ``controller.jsonl``, one per controller step (the last written), in step order."""
    by_step = {}
    for item in _read_jsonl(os.path.join(output_dir, CONTROLLER_FILE)):
        by_step[item["step"]] = item
    return [by_step[k] for k in sorted(by_step)]


def _read_jsonl(path):
    """The records of a JSON-lines file (a torn last line, from a kill, is skipped)."""
    items = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    items.append(json.loads(line))
                except ValueError:
                    continue
    return items


def read_best(output_dir):
    path = os.path.join(output_dir, BEST_RECORD)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None


def read_arcs(output_dir):
    """The records of ``arcs.jsonl`` (every architecture reported so far; a torn last line, from
    a kill, is skipped)."""
    return _read_jsonl(os.path.join(output_dir, ARCS_FILE))


def record(output_dir, sampled, best, costing=None):
    """Append ``sampled`` to arcs.jsonl; keep best_arc.txt (the arc string) and best_arc.json
    (its epoch and val_acc, and with a ``costing`` its cost) current: the highest val_acc, or with
    a ``costing`` the best by :meth:`SearchCost.better` (within the target first)."""
    with open(os.path.join(output_dir, ARCS_FILE), "a") as f:
        for item in sampled:
            f.write(json.dumps(item) + "\n")
    for item in sampled:
        if costing is not None:
            if costing.better(item, best):
                best = item
        elif best is None or item["val_acc"] > best["val_acc"]:
            best = item
    if best is not None:
        write_best(output_dir, best)
    return best


def write_best(output_dir, best):
    """``best_arc.txt`` (the arc string, for ``-fixed_arc``) and ``best_arc.json`` (its record)."""
    atomic_write(os.path.join(output_dir, BEST_RECORD), json.dumps(best) + "\n")
    atomic_write(os.path.join(output_dir, BEST_FILE), best["arc"] + "\n")
