"""What fixed training and search share: settings -> child config and data, the per-epoch data
pipelines, child-step logging, evaluation, and the NaN guard."""

import math
import sys
import time

import keras

from enas import data_utils, log_format
from enas.child_trainer import ChildTrainer, learning_rate_schedule, make_optimizer
from enas.errors import ConfigError, UserError
from enas.child_config import from_settings as child_config  # noqa: F401  (used by the run loops)
from enas.summaries import RunSummaries
from enas.validate import check_positive  # noqa: F401  (used by the run loops)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""

    exit_code = 3


def make_child_trainer(s, model, num_train, search_mode, jit_compile=False):
    """Optimizer (with the cosine-restart schedule) and compiled steps for ``model``."""
    steps_per_epoch = max(num_train // s["batch_size"], 1)
    schedule = learning_rate_schedule(
        s["child_lr_max"], s["child_lr_min"], steps_per_epoch, s["child_lr_T_0"],
        s["child_lr_T_mul"], s["child_lr_cosine"],
    )
    return ChildTrainer(model, make_optimizer(s["child_optimizer"], schedule), s["batch_size"],
                        l2_reg=s["child_l2_reg"], grad_bound=s["child_grad_bound"],
                        search_mode=search_mode, jit_compile=jit_compile)


def load_data(s, dataset):
    return data_utils.load_dataset(
        dataset, s["data_path"], num_valid=s["num_valid"],
        max_train=s.get("max_train_examples") or None, max_test=s.get("max_test_examples") or None,
    )




def run_identity(s, dataset, arc, config):
    """The settings a checkpoint depends on (a mismatch refuses to resume)."""
    return {
        "dataset": dataset, "arc": str(arc) if arc is not None else None,
        "precision": config.policy.describe(), "num_layers": config.num_layers,
        "num_cells": config.num_nodes, "out_filters": config.out_filters,
        "use_aux_heads": config.use_aux_heads, "optimizer": s["child_optimizer"],
        "reduction_layers": list(config.reduction_layers),
    }


class EpochRunner:
    """Shared by fixed training and search: data pipelines per epoch, step logging (log lines
    and TensorBoard scalars in ``<output_dir>/tensorboard``), evaluation."""

    def __init__(self, s, data, trainer, log):
        self.s, self.data, self.trainer, self.log = s, data, trainer, log
        self.start = time.time()
        self.steps_per_epoch = max(len(data.x_train) // s["batch_size"], 1)
        self.summaries = RunSummaries(s.get("output_dir"))
        self.progbar = None

    def train_dataset(self, epoch):
        """The epoch's minibatches. Seeded per epoch, so a run resumed at an epoch boundary sees
        the same batches. Starts a progress bar when stdout is a terminal (never in a log file)."""
        if sys.stdout.isatty():
            self.progbar = keras.utils.Progbar(self.steps_per_epoch, stateful_metrics=["loss", "lr"])
        return data_utils.make_dataset(
            self.data.x_train, self.data.y_train, self.s["batch_size"], training=True,
            augment=self.s.get("child_augment", False), cutout_size=self.s.get("child_cutout_size") or None,
            seed=self.s["seed"] * 1000 + epoch,
        )

    def eval_dataset(self, split):
        x, y = (self.data.x_valid, self.data.y_valid) if split == "valid" else (self.data.x_test, self.data.y_test)
        return data_utils.make_dataset(x, y, self.s["eval_batch_size"], training=False)

    def after_step(self, out):
        """Advance the progress bar (terminal only)."""
        if self.progbar is not None:
            self.progbar.add(1, [("loss", float(out["loss"])), ("lr", self.trainer.learning_rate())])

    def log_step(self, epoch, step, out, batch_size):
        loss, lr, grad_norm, correct = (float(out["loss"]), self.trainer.learning_rate(),
                                        float(out["grad_norm"]), int(out["correct"]))
        self.log(log_format.child_step(epoch, step, loss, lr, grad_norm, correct, batch_size,
                                       (time.time() - self.start) / 60))
        self.summaries.scalars(step, {"child/loss": loss, "child/lr": lr, "child/grad_norm": grad_norm,
                                      "child/train_accuracy": correct / batch_size})

    def evaluate(self, step, splits, arc=None):
        accuracies = {}
        for split in splits:
            if split == "valid" and len(self.data.x_valid) == 0:
                continue
            correct, total = self.trainer.evaluate(self.eval_dataset(split), arc)
            self.log("\n".join(log_format.eval_block(step, split, correct, total)))
            accuracies[split] = correct / max(total, 1)
        self.summaries.scalars(step, {f"eval/{k}_accuracy": v for k, v in accuracies.items()})
        self.summaries.flush()
        return accuracies


def check_finite(value, epoch, step, checkpoints):
    if not math.isfinite(value):
        last = checkpoints.manager.latest_checkpoint or "none yet"
        raise TrainingDiverged(
            f"loss became {value} at epoch {epoch}, step {step}; stopped. Last good checkpoint: {last}. "
            "Lower --child_lr_max or set --child_grad_bound, then rerun to resume from it"
        )


def step_of(trainer):
    return int(trainer.optimizer.iterations.numpy())
