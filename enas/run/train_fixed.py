"""Train one fixed architecture from scratch (``train_arc_mnist.py``, ``train_arc_cifar.py``).

:class:`FixedTraining` is the :class:`enas.run.run_loop.Task` of a fixed architecture: the child
holds only the chosen ops, every epoch is evaluated on the validation and test splits (each
``eval_every_epochs``), and the run ends with the architecture string, the final test accuracy
and the bit-accurate summary, in the original log format.
"""

from __future__ import annotations

from enas.child.micro_child import MicroChild
from enas.config.run_config import RunConfig
from enas.errors import CheckpointError
from enas.run import run_loop
from enas.run.run_loop import TrainingDiverged

__all__ = ["FixedTraining", "run", "TrainingDiverged"]


class FixedTraining(run_loop.Task):
    """Train ``config.fixed_arc`` from scratch. ``final_lines``: a function of the trained model
    giving more lines for the end of the log (the scripts pass the int8 file's flash and peak
    RAM, from :mod:`enas.deploy`, which this package does not import)."""

    def __init__(self, final_lines=None):
        self.final_lines = final_lines

    def build(self, config, data):
        self.model = MicroChild(config.child, fixed_arc=config.fixed_arc).build_for(data.image_shape)
        run_loop.check_input_fits(self.model, config)
        self.teacher = load_teacher(config, data) if config.training.teacher_dir else None
        self.trainer = run_loop.make_child_trainer(config, self.model, len(data.train), search_mode=False,
                                                   teacher=self.teacher)

    def header(self, config, data):
        return [
            f"Training architecture: {self.model.fixed_arc}",
            f"Dataset: {run_loop.describe_data(config, data)}",
            f"Precision: {config.child.policy.describe()}",
            f"Parameters: {self.model.count_params_used()}",
        ] + run_loop.training_options(config) + (
            [f"Distillation from {config.training.teacher_dir} (weight {config.training.distill_weight}, "
             f"temperature {config.training.distill_temperature})"] if self.teacher is not None else [])

    def epoch_done(self, epoch, seconds, loop):
        loop.log(f"Epoch {epoch + 1}: {seconds:.1f} s")

    def finish(self, loop):
        if not loop.accuracies:  # resumed after the last epoch: evaluate the final weights
            loop.evaluate()
        from enas.cost.model_summary import (  # bit-accurate size and MACs
            format_summary,
            summarize,
        )

        log, arc = loop.log, self.model.fixed_arc
        log("-" * 80)
        log("Architecture String")
        log(str(arc))
        if "test" in loop.accuracies:
            log(f"Final test_accuracy: {loop.accuracies['test']:<6.4f}")
        else:  # a folder without test/, or arrays without a test split
            log(f"Final test_accuracy: none (no test split); valid_accuracy: {loop.accuracies.get('valid', float('nan')):.4f}")
        log(f"Parameters: {self.model.count_params_used()}")
        log("-" * 80)
        log(format_summary(summarize(self.model)))
        for line in self.final_lines(self.model) if self.final_lines else ():
            log(line)
        log("-" * 80)
        return {"arc": arc, "model": self.model, "accuracies": loop.accuracies}


def load_teacher(config, data):
    """The trained network of ``config.training.teacher_dir`` (a train run on the same dataset),
    for distillation. Raises :class:`CheckpointError` (one line) when it is unusable."""
    from enas.run.restore import restore_run

    teacher_dir = config.training.teacher_dir
    teacher, record, _ = restore_run(teacher_dir)
    dataset = (record.get("config") or {}).get("dataset", record.get("dataset"))
    shape = tuple(teacher.input_image_shape)
    if dataset != config.dataset or teacher.config.num_classes != config.child.num_classes or \
            shape != tuple(data.image_shape):
        raise CheckpointError(f"--child_teacher_dir {teacher_dir!r} is a network for {dataset} ({teacher.config.num_classes} "
                              f"classes, {'x'.join(map(str, shape))} images), not for {config.dataset} "
                              f"({config.child.num_classes} classes, {'x'.join(map(str, data.image_shape))}); "
                              "pass a train_arc run on the same data")
    teacher.trainable = False
    return teacher


def run(config, dataset=None, log=None, echo=True, data=None, final_lines=None):
    """Train the architecture of ``config`` (a :class:`RunConfig`, or a script's flat settings
    with ``dataset``); returns a dict with ``arc``, ``model``, ``accuracies`` and ``epochs``.
    ``data``: a :class:`~enas.data.data_common.DataSplits` from Python (:mod:`enas.data.sources`:
    ``from_arrays``, ``from_tf_dataset``) instead of ``config.data``'s files. ``final_lines``:
    see :class:`FixedTraining`."""
    if not isinstance(config, RunConfig):
        config = RunConfig.from_settings(config, "train", dataset)
    return run_loop.run(config, FixedTraining(final_lines), log=log, echo=echo, data=data)
