"""Checks of a script's settings that need no TensorFlow, run before it is imported, so a
malformed architecture or a bad flag value is reported within a second.

The run loops (:mod:`enas.train_fixed`, :mod:`enas.search`) call the same checks again, so
code that calls them directly gets the same errors.
"""

from enas.arc import parse_arc
from enas.child_config import from_settings
from enas.errors import ConfigError

OPTIMIZERS = ("momentum", "sgd", "adam")
CONTROLLER_TYPES = ("micro", "random")
POSITIVE = {
    "train": ("batch_size", "eval_batch_size", "num_epochs", "log_every", "eval_every_epochs"),
    "search": ("batch_size", "eval_batch_size", "num_epochs", "log_every", "eval_every_epochs",
               "controller_train_steps", "controller_num_aggregate"),
}


def check_positive(s, *names):
    for name in names:
        if s[name] < 1:
            raise ConfigError(f"--{name} must be >= 1, got {s[name]}")


def check_optimizer(name):
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def check_controller_type(kind):
    if kind not in CONTROLLER_TYPES:
        raise ConfigError(f"unknown --controller_type {kind!r}: use one of {', '.join(CONTROLLER_TYPES)}")


def check_learning_rates(lr_max, lr_min, cosine=True, t_0=10, t_mul=2):
    if not lr_max > 0 or lr_min < 0 or lr_min > lr_max:
        raise ConfigError(f"need 0 <= lr_min <= lr_max and lr_max > 0, got lr_max={lr_max}, lr_min={lr_min}")
    if cosine and (t_0 < 1 or t_mul < 1):
        raise ConfigError(f"need lr_T_0 >= 1 and lr_T_mul >= 1, got {t_0} and {t_mul}")


def check_settings(s, mode):
    """Raise :class:`~enas.errors.UserError` for the first bad setting of ``mode`` ("train" or
    "search"); returns the settings with ``child_num_cells`` taken from the arc (train)."""
    check_positive(s, *POSITIVE[mode])
    if mode == "train":
        arc = parse_arc(s["child_fixed_arc"], s["child_num_cells"] or None)
        s = {**s, "child_num_cells": arc.num_nodes}
    else:
        check_controller_type(s["controller_type"])
    from_settings(s)  # child shape and precision
    check_optimizer(s["child_optimizer"])
    check_learning_rates(s["child_lr_max"], s["child_lr_min"], s["child_lr_cosine"],
                         s["child_lr_T_0"], s["child_lr_T_mul"])
    return s
