"""ENAS micro architecture search (``search_arc_mnist.py``, ``search_arc_cifar.py``).

Each epoch:

1. train the shared-weight child for one epoch, a freshly sampled architecture per minibatch
   (one compiled step for all architectures, see :mod:`enas.child_trainer`);
2. train the controller ``controller_train_steps`` times with REINFORCE, the reward being the
   child's accuracy on a validation minibatch (:class:`enas.controller.ReinforceTrainer`), from
   the epoch after ``controller_warmup_epochs`` on;
3. print ``Here are 10 architectures`` (each with its ``val_acc`` on a validation minibatch and
   as a ready-to-paste string), then ``Epoch N: Eval`` (valid and test accuracy of one sampled
   architecture);
4. append the architectures sampled for that report to ``arcs.jsonl``, update ``best_arc.txt``
   (the best arc string, ready for ``-fixed_arc``) and ``best_arc.json``, and checkpoint
   child, controller, both optimizers, baseline, epoch and RNG state.

At the end, the final pick (:func:`final_pick`): ``final_pick_samples`` architectures sampled
from the final controller are ranked by their accuracy on the *whole* validation split with the
shared weights (not one minibatch); the best becomes ``best_arc.txt`` / ``best_arc.json``, and
``final_pick.json`` keeps the ranking and its ``final_pick_top`` best.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from enas import data_utils, log_format, run_dir, run_loop
from enas.arc import Arc
from enas.child_trainer import WithoutGrappler
from enas.config import RunConfig
from enas.controller import RandomController, ReinforceTrainer
from enas.errors import ConfigError
from enas.micro_child import MicroChild
from enas.micro_controller import MicroController
from enas.ranking import rank_architectures

ARCS_FILE = "arcs.jsonl"
BEST_FILE = "best_arc.txt"  # the arc string alone: -fixed_arc "$(cat best_arc.txt)"
BEST_RECORD = "best_arc.json"
FINAL_PICK = "final_pick.json"


def make_controller(config):
    """The controller of ``config.controller`` for cells of ``config.child.num_nodes`` nodes."""
    c, num_nodes, seed = config.controller, config.child.num_nodes, config.output.seed
    if c.type == "random":
        return RandomController(num_nodes, seed=seed)
    return MicroController(num_nodes, lstm_size=c.lstm_size, tanh_constant=c.tanh_constant or None,
                           op_tanh_reduce=c.op_tanh_reduce, temperature=c.temperature or None, seed=seed)


class RewardBatches:
    """Endless shuffled validation minibatches (no augmentation), read inside compiled code."""

    def __init__(self, data, batch_size, seed):
        if len(data.x_valid) == 0:
            raise ConfigError("architecture search needs a validation split: pass --num_valid > 0")
        dataset = data_utils.make_dataset(
            data.x_valid, data.y_valid, min(batch_size, len(data.x_valid)), training=True, seed=seed,
        ).repeat()
        self.iterator = iter(dataset)

    def next(self):
        return next(self.iterator)


def batch_accuracy(child, batches):
    """``reward_fn``: accuracy of ``child`` with ``arc`` on the next validation minibatch."""

    def accuracy(arc):
        images, labels = batches.next()
        logits = child(images, arc=arc, training=False)
        predictions = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        return tf.reduce_mean(tf.cast(tf.equal(predictions, labels), tf.float32))

    return accuracy


class Search(run_loop.Task):
    """ENAS search: a shared-weight child trained on one sampled architecture per step, then the
    controller phase, the sampled-architecture report and ``best_arc.txt`` after each epoch."""

    def build(self, config, data):
        self.config = config
        self.controller = make_controller(config)
        xla = config.training.xla
        self.model = MicroChild(config.child, static_shapes=xla).build_for(data.image_shape)
        self.trainer = run_loop.make_child_trainer(config, self.model, len(data.x_train), search_mode=True)
        self.reward_batches = RewardBatches(data, config.training.batch_size, config.output.seed)
        reward_fn = tf.function(batch_accuracy(self.model, self.reward_batches))
        self.ctrl_trainer = None
        if self.controller.learns:
            c = config.controller
            self.ctrl_trainer = ReinforceTrainer(
                self.controller, reward_fn, learning_rate=c.lr, entropy_weight=c.entropy_weight,
                baseline_decay=c.bl_dec, num_aggregate=c.num_aggregate,
            )
            self.controller_step = WithoutGrappler(self.ctrl_trainer.train_step)
        self.reward_fn = WithoutGrappler(reward_fn)  # for the arcs reported each epoch

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
            f"Architecture search on {config.dataset} ({len(data.x_train)} train, {len(data.x_valid)} valid, "
            f"{len(data.x_test)} test)",
            f"Controller: {config.controller.type}; cells of {c.num_nodes} nodes; "
            f"{c.num_layers} layers + 2 reductions; {c.out_filters} filters",
            f"Precision: {c.policy.describe()}",
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
            for _ in range(c.train_steps):
                out = self.controller_step()
                ctrl_step = int(self.ctrl_trainer.step.numpy())
                loop.summaries.scalars(ctrl_step, {
                    f"controller/{k}": float(out[k])
                    for k in ("loss", "entropy", "reward", "accuracy", "baseline", "grad_norm")
                })
                if ctrl_step % self.config.output.log_every == 0:
                    loop.log(log_format.controller_step(
                        ctrl_step, float(out["loss"]), float(out["entropy"]), c.lr, float(out["grad_norm"]),
                        float(out["accuracy"]), float(out["baseline"]), loop.minutes(),
                    ))
        sampled = sample_and_report(self.controller, self.reward_fn, c.num_sampled_arcs, epoch + 1, loop.log)
        self.best = record(self.config.output.output_dir, sampled, self.best)
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
                              self.config.training.num_epochs)
            self.best = pick["top"][0]
            write_best(self.config.output.output_dir, self.best)
        best = self.best
        if best is not None:
            loop.log("-" * 80)
            if pick is not None:
                loop.log(f"Best architecture of the final pick (val_acc = {best['val_acc']:<6.4f} on the whole "
                         "validation split):")
            else:
                loop.log(f"Best sampled architecture (val_acc = {best['val_acc']:<6.4f}, epoch {best['epoch']}):")
            loop.log(best["arc"])
            loop.log("-" * 80)
        return {"best": best, "final_pick": pick}


def final_pick(controller, trainer, loop, count, top, epoch):
    """ENAS's final pick, made reliable: ``count`` architectures sampled from the final controller
    (uniform for the random controller), each evaluated on the whole validation split with the
    shared weights; writes ``final_pick.json`` (every distinct one, best first, and the ``top``)
    and logs the best ``top``. Returns that record."""
    samples = [controller.sample().arc.numpy().tolist() for _ in range(count)]
    ranked = rank_architectures(trainer, loop.eval_dataset("valid"), samples)
    for item in ranked:
        item.update(epoch=epoch, source="final pick")
    record_ = {"samples": count, "distinct": len(ranked), "valid_examples": len(loop.data.x_valid),
               "top": ranked[:top], "ranked": ranked}
    run_dir.atomic_write(os.path.join(loop.config.output.output_dir, FINAL_PICK), json.dumps(record_) + "\n")
    loop.log("-" * 80)
    loop.log(f"Final pick: {count} architectures sampled from the final controller ({len(ranked)} distinct), "
             f"ranked by accuracy on the whole validation split ({len(loop.data.x_valid)} images)")
    for rank, item in enumerate(ranked[:top], start=1):
        loop.log(f"{rank}. val_acc = {item['val_acc']:<6.4f}  arc = {item['arc']}")
    return record_


def run(config, dataset=None, log=None, echo=True):
    """Search with ``config`` (a :class:`RunConfig`, or a script's flat settings with ``dataset``);
    returns a dict with the best architecture (``best``), the ``final_pick`` record and ``epochs``."""
    if not isinstance(config, RunConfig):
        config = RunConfig.from_settings(config, "search", dataset)
    return run_loop.run(config, Search(), log=log, echo=echo)


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
    model = MicroChild(config.child, static_shapes=config.training.xla).build_for(data.image_shape)
    trainer = run_loop.make_child_trainer(config, model, len(data.x_train), search_mode=True)
    if run_dir.Checkpoints(output_dir, child=model).restore_latest(partial=True) is None:
        raise ConfigError(f"{output_dir!r} has no checkpoint of its search")
    return config, trainer, data


def sample_and_report(controller, reward_fn, count, epoch, log):
    """Sample ``count`` architectures, print them in the original block format, return them."""
    log(f"Here are {count} architectures")
    sampled = []
    for _ in range(count):
        arc = Arc.from_list(controller.sample().arc.numpy().tolist())
        val_acc = float(reward_fn(tf.constant(arc.to_list(), tf.int32)))
        for line in log_format.sampled_arc(arc.normal, arc.reduce, val_acc)[:-1]:
            log(line)
        log(f"arc = {arc}")
        log("-" * 80)
        sampled.append({"epoch": epoch, "arc": str(arc), "val_acc": val_acc})
    return sampled


def read_best(output_dir):
    path = os.path.join(output_dir, BEST_RECORD)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None


def record(output_dir, sampled, best):
    """Append ``sampled`` to arcs.jsonl; keep best_arc.txt (the arc string) and best_arc.json
    (its epoch and val_acc) current."""
    with open(os.path.join(output_dir, ARCS_FILE), "a") as f:
        for item in sampled:
            f.write(json.dumps(item) + "\n")
    for item in sampled:
        if best is None or item["val_acc"] > best["val_acc"]:
            best = item
    if best is not None:
        write_best(output_dir, best)
    return best


def write_best(output_dir, best):
    """``best_arc.txt`` (the arc string, for ``-fixed_arc``) and ``best_arc.json`` (its record)."""
    run_dir.atomic_write(os.path.join(output_dir, BEST_RECORD), json.dumps(best) + "\n")
    run_dir.atomic_write(os.path.join(output_dir, BEST_FILE), best["arc"] + "\n")
