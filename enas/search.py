"""ENAS micro architecture search (``search_arc_mnist.py``, ``search_arc_cifar.py``).

Each epoch:

1. train the shared-weight child for one epoch, a freshly sampled architecture per minibatch
   (one compiled step for all architectures, see :mod:`enas.child_trainer`);
2. train the controller ``controller_train_steps`` times with REINFORCE, the reward being the
   child's accuracy on a validation minibatch (:class:`enas.controller.ReinforceTrainer`);
3. print ``Here are 10 architectures`` (each with its ``val_acc`` on a validation minibatch and
   as a ready-to-paste string), then ``Epoch N: Eval`` (valid and test accuracy of one sampled
   architecture);
4. append the architectures sampled for that report to ``arcs.jsonl``, update ``best_arc.txt``
   (the best arc string, ready for ``-fixed_arc``) and ``best_arc.json``, and checkpoint
   child, controller, both optimizers, baseline, epoch and RNG state.
"""

import json
import os
import time

import keras
import tensorflow as tf

from enas import data_utils, log_format, run_dir
from enas.arc import Arc
from enas.child_trainer import WithoutGrappler
from enas.controller import RandomController, ReinforceTrainer
from enas.errors import ConfigError
from enas.micro_child import MicroChild
from enas.micro_controller import MicroController
from enas.validate import CONTROLLER_TYPES, check_controller_type  # noqa: F401
from enas.runner import (EpochRunner, check_finite, check_positive, child_config, load_data,
                         make_child_trainer, run_identity, step_of)

ARCS_FILE = "arcs.jsonl"
BEST_FILE = "best_arc.txt"  # the arc string alone: -fixed_arc "$(cat best_arc.txt)"
BEST_RECORD = "best_arc.json"


def make_controller(s):
    kind = s["controller_type"]
    check_controller_type(kind)
    if kind == "random":
        return RandomController(s["child_num_cells"], seed=s["seed"])
    return MicroController(
        s["child_num_cells"], lstm_size=s["controller_lstm_size"],
        tanh_constant=s["controller_tanh_constant"] or None,
        op_tanh_reduce=s["controller_op_tanh_reduce"],
        temperature=s["controller_temperature"] or None, seed=s["seed"],
    )


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


def run(s, dataset, log=None):
    """Search; returns a dict with the best sampled architecture and its val_acc."""
    check_positive(s, "batch_size", "eval_batch_size", "num_epochs", "log_every",
                   "eval_every_epochs", "controller_train_steps", "controller_num_aggregate")
    config = child_config(s)
    controller = make_controller(s)
    data = load_data(s, dataset)
    keras.utils.set_random_seed(s["seed"])
    xla = bool(s.get("child_xla", False))
    child = MicroChild(config, static_shapes=xla).build_for(data.image_shape)
    child_trainer = make_child_trainer(s, child, len(data.x_train), search_mode=True, jit_compile=xla)
    reward_batches = RewardBatches(data, s["batch_size"], s["seed"])
    # Only now, with every setting validated, touch the output folder.
    identity = {**run_identity(s, dataset, None, config), "controller_type": s["controller_type"],
                "seed": s["seed"]}
    run_dir.prepare(s["output_dir"], identity, s["reset_output_dir"])
    log = log or run_dir.RunLog(s["output_dir"])
    reward_fn = tf.function(batch_accuracy(child, reward_batches))
    ctrl_trainer = None
    if controller.learns:
        ctrl_trainer = ReinforceTrainer(
            controller, reward_fn, learning_rate=s["controller_lr"],
            entropy_weight=s["controller_entropy_weight"], baseline_decay=s["controller_bl_dec"],
            num_aggregate=s["controller_num_aggregate"],
        )
        controller_step = WithoutGrappler(ctrl_trainer.train_step)
    reward_fn = WithoutGrappler(reward_fn)  # for the arcs reported each epoch
    epoch_var = keras.Variable(0, dtype="int64", trainable=False, name="epoch")
    trackables = dict(child=child, child_optimizer=child_trainer.optimizer, controller=controller,
                      epoch=epoch_var, reward_data=reward_batches.iterator)
    if ctrl_trainer is not None:
        trackables["controller_trainer"] = ctrl_trainer
    checkpoints = run_dir.Checkpoints(s["output_dir"], **trackables)
    restored = checkpoints.restore_latest()

    log("-" * 80)
    log(f"Architecture search on {dataset} ({len(data.x_train)} train, {len(data.x_valid)} valid, "
        f"{len(data.x_test)} test)")
    log(f"Controller: {s['controller_type']}; cells of {config.num_nodes} nodes; "
        f"{config.num_layers} layers + 2 reductions; {config.out_filters} filters")
    log(f"Precision: {config.policy.describe()}")
    log(f"Shared parameters: {child.count_params_used()}")
    if restored:
        log(f"Resuming from {restored} at epoch {int(epoch_var.numpy())}, step {step_of(child_trainer)}")
    log("-" * 80)

    runner = EpochRunner(s, data, child_trainer, log)
    best = read_best(s["output_dir"])
    for epoch in range(int(epoch_var.numpy()), s["num_epochs"]):
        for images, labels in runner.train_dataset(epoch):
            arc = controller.sample().arc
            out = child_trainer.train_step(images, labels, arc)
            step = step_of(child_trainer)
            check_finite(float(out["loss"]), epoch, step, checkpoints)
            runner.after_step(out)
            if step % s["log_every"] == 0:
                runner.log_step(epoch, step, out, s["batch_size"])
        if ctrl_trainer is not None:
            log(f"Epoch {epoch + 1}: Training controller")
            for _ in range(s["controller_train_steps"]):
                out = controller_step()
                ctrl_step = int(ctrl_trainer.step.numpy())
                runner.summaries.scalars(ctrl_step, {
                    f"controller/{k}": float(out[k])
                    for k in ("loss", "entropy", "reward", "accuracy", "baseline", "grad_norm")
                })
                if ctrl_step % s["log_every"] == 0:
                    log(log_format.controller_step(
                        ctrl_step, float(out["loss"]), float(out["entropy"]), s["controller_lr"],
                        float(out["grad_norm"]), float(out["accuracy"]), float(out["baseline"]),
                        (time.time() - runner.start) / 60,
                    ))
        sampled = sample_and_report(controller, reward_fn, s["num_sampled_arcs"], epoch + 1, log)
        best = record(s["output_dir"], sampled, best)
        accuracies = [item["val_acc"] for item in sampled]
        if accuracies:
            # Same x axis as the controller scalars (controller steps), child steps for random.
            x = int(ctrl_trainer.step.numpy()) if ctrl_trainer is not None else step_of(child_trainer)
            runner.summaries.scalars(x, {"search/sampled_val_acc_mean": sum(accuracies) / len(accuracies),
                                                 "search/sampled_val_acc_best": max(accuracies)})
        if (epoch + 1) % s["eval_every_epochs"] == 0 or epoch + 1 == s["num_epochs"]:
            log(f"Epoch {epoch + 1}: Eval")
            runner.evaluate(step_of(child_trainer), ("valid", "test"), arc=controller.sample().arc)
        epoch_var.assign(epoch + 1)
        checkpoints.save()
    if best is not None:
        log("-" * 80)
        log(f"Best sampled architecture (val_acc = {best['val_acc']:<6.4f}, epoch {best['epoch']}):")
        log(best["arc"])
        log("-" * 80)
    return {"best": best, "epochs": int(epoch_var.numpy())}


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
        run_dir.atomic_write(os.path.join(output_dir, BEST_RECORD), json.dumps(best) + "\n")
        run_dir.atomic_write(os.path.join(output_dir, BEST_FILE), best["arc"] + "\n")
    return best
