"""Train one fixed architecture from scratch (``train_arc_mnist.py``, ``train_arc_cifar.py``).

``run(settings)`` takes the flat settings dict of a script (its CONFIG block after flags),
loads the data, builds the fixed child, trains with per-epoch checkpoints (resuming a killed run
from the last one), evaluates each ``eval_every_epochs`` and prints the original log format.
"""

import time

import keras

from enas import run_dir
from enas.arc import parse_arc
from enas.micro_child import MicroChild
from enas.runner import (EpochRunner, TrainingDiverged, check_finite, check_positive, child_config,
                         load_data, make_child_trainer, run_identity, step_of)

__all__ = ["run", "TrainingDiverged"]


def run(s, dataset, log=None):
    """Train the architecture ``s["child_fixed_arc"]``; returns a result dict."""
    check_positive(s, "batch_size", "eval_batch_size", "num_epochs", "log_every", "eval_every_epochs")
    # B comes from the arc's length unless --child_num_cells says otherwise (then they must agree).
    arc = parse_arc(s["child_fixed_arc"], s["child_num_cells"] or None)
    s = {**s, "child_num_cells": arc.num_nodes}
    config = child_config(s)
    data = load_data(s, dataset)
    keras.utils.set_random_seed(s["seed"])
    model = MicroChild(config, fixed_arc=arc).build_for(data.image_shape)
    trainer = make_child_trainer(s, model, len(data.x_train), search_mode=False)
    # Only now, with every setting validated, touch the output folder.
    run_dir.prepare(s["output_dir"], run_identity(s, dataset, arc, config), s["reset_output_dir"])
    log = log or run_dir.RunLog(s["output_dir"])
    epoch_var = keras.Variable(0, dtype="int64", trainable=False, name="epoch")
    checkpoints = run_dir.Checkpoints(s["output_dir"], model=model, optimizer=trainer.optimizer,
                                      epoch=epoch_var)
    restored = checkpoints.restore_latest()

    log("-" * 80)
    log(f"Training architecture: {arc}")
    log(f"Dataset: {dataset} ({len(data.x_train)} train, {len(data.x_valid)} valid, {len(data.x_test)} test)")
    log(f"Precision: {config.policy.describe()}")
    log(f"Parameters: {model.count_params_used()}")
    if restored:
        log(f"Resuming from {restored} at epoch {int(epoch_var.numpy())}, "
            f"step {int(trainer.optimizer.iterations.numpy())}")
    log("-" * 80)

    runner = EpochRunner(s, data, trainer, log)
    accuracies = {}
    for epoch in range(int(epoch_var.numpy()), s["num_epochs"]):
        epoch_start = time.time()
        for images, labels in runner.train_dataset(epoch):
            out = trainer.train_step(images, labels)
            step = int(trainer.optimizer.iterations.numpy())
            check_finite(float(out["loss"]), epoch, step, checkpoints)
            runner.after_step(out)
            if step % s["log_every"] == 0:
                runner.log_step(epoch, step, out, s["batch_size"])
        epoch_var.assign(epoch + 1)
        checkpoints.save()
        seconds = time.time() - epoch_start
        if (epoch + 1) % s["eval_every_epochs"] == 0 or epoch + 1 == s["num_epochs"]:
            log(f"Epoch {epoch + 1}: Eval")
            accuracies = runner.evaluate(step_of(trainer), ("valid", "test"))
        log(f"Epoch {epoch + 1}: {seconds:.1f} s")
    if not accuracies:  # resumed after the last epoch: evaluate the final weights
        accuracies = runner.evaluate(step_of(trainer), ("valid", "test"))
    log("-" * 80)
    log("Architecture String")
    log(str(arc))
    log(f"Final test_accuracy: {accuracies.get('test', float('nan')):<6.4f}")
    log(f"Parameters: {model.count_params_used()}")
    log("-" * 80)
    from enas.model_summary import format_summary, summarize  # bit-accurate size and MACs

    log(format_summary(summarize(model)))
    log("-" * 80)
    return {"arc": arc, "model": model, "accuracies": accuracies, "epochs": int(epoch_var.numpy())}
