"""Training and search curves of a run, from its TensorBoard scalars (see :mod:`enas.run.summaries`).

:func:`plot_run` writes ``<output_dir>/curves.png`` (child loss, train/valid/test accuracy,
learning rate, gradient norm) and, for a search run, ``<output_dir>/search_curves.png``
(controller reward and baseline, entropy, sampled architectures' validation accuracy, controller
loss and gradient norm).
"""

from __future__ import annotations

import math
import os

import numpy as np

from enas.errors import UserError
from enas.run.summaries import read_scalars, tensorboard_dir
from enas.viz.figures import save_figure

CURVES_FILE = "curves.png"
SEARCH_CURVES_FILE = "search_curves.png"

# (title, y label, [(tag, legend label)])
TRAIN_PANELS = (
    ("Child loss", "loss", [("child/loss", "train loss")]),
    ("Accuracy", "accuracy", [("child/train_accuracy", "train"), ("eval/valid_accuracy", "valid"),
                              ("eval/test_accuracy", "test")]),
    ("Learning rate", "lr", [("child/lr", "learning rate")]),
    ("Child gradient norm", "global norm", [("child/grad_norm", "grad norm")]),
)
SEARCH_PANELS = (
    ("Controller reward", "reward", [("controller/reward", "reward"),
                                     ("controller/baseline", "baseline")]),
    ("Controller entropy", "entropy", [("controller/entropy", "entropy")]),
    ("Sampled architectures", "validation accuracy",
     [("search/sampled_val_acc_mean", "sampled val_acc (mean)"),
      ("search/sampled_val_acc_best", "sampled val_acc (best)"),
      ("controller/accuracy", "controller batch accuracy")]),
    ("Controller loss", "loss", [("controller/loss", "loss")]),
    ("Controller gradient norm", "global norm", [("controller/grad_norm", "grad norm")]),
)
SEARCH_PREFIXES = ("controller/", "search/")
# Noisy per-step tags: drawn faintly with a smoothed line on top when there are many points.
SMOOTHED = {"child/loss", "child/train_accuracy", "child/grad_norm", "controller/loss",
            "controller/reward", "controller/accuracy", "controller/grad_norm"}


class NoScalarsError(UserError):
    """The run folder has no TensorBoard scalars to plot."""


def _smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style exponential moving average (debiased)."""
    out = np.empty_like(values)
    last, norm = 0.0, 0.0
    for i, v in enumerate(values):
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out[i] = last / norm
    return out


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 else f"{v:.3g}"


def _plot_panel(ax, scalars, title, ylabel, series):
    colors = ("#1f6fb4", "#d62728", "#2e9e44", "#8e44ad")
    for (tag, label), color in zip(series, colors):
        points = scalars.get(tag)
        if not points:
            continue
        steps = np.array([s for s, _ in points], dtype=float)
        values = np.array([v for _, v in points], dtype=float)
        text = f"{label} (last {_fmt(values[-1])})"
        if tag.startswith(("eval/", "search/")) and np.isfinite(values).any():
            text = f"{label} (last {_fmt(values[-1])}, best {_fmt(np.nanmax(values))})"
        if tag in SMOOTHED and len(points) > 30:
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, _smooth(values, 0.8), color=color, linewidth=1.6, label=text)
        else:
            ax.plot(steps, values, color=color, linewidth=1.6, label=text,
                    marker="o" if len(points) <= 60 else None, markersize=3)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def _plot_figure(scalars, panels, title, path):
    from matplotlib.figure import Figure

    panels = [p for p in panels if any(scalars.get(tag) for tag, _ in p[2])]
    if not panels:
        return None
    ncols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.2 * ncols, 3.8 * nrows + 0.5), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        _plot_panel(ax, scalars, *panel)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12, fontweight="bold")
    save_figure(fig, path, facecolor="white")
    return path


def no_scalars_message(output_dir: str) -> str:
    return (f"no TensorBoard scalars in {tensorboard_dir(output_dir)}: run train_arc_*.py or "
            f"search_arc_*.py with --output_dir {output_dir} first")


def plot_run(output_dir: str) -> list[str]:
    """Write the curves of the run in ``output_dir``; returns the paths of the PNGs written.

    Raises :class:`NoScalarsError` (a :class:`UserError`) if the run has no scalars.
    """
    scalars = {tag: points for tag, points in read_scalars(output_dir).items() if points}
    if not scalars:
        raise NoScalarsError(no_scalars_message(output_dir))
    name = os.path.basename(os.path.normpath(os.path.abspath(output_dir)))
    written = []
    path = _plot_figure(scalars, TRAIN_PANELS, f"Training curves: {name}",
                        os.path.join(output_dir, CURVES_FILE))
    if path:
        written.append(path)
    if any(tag.startswith(SEARCH_PREFIXES) for tag in scalars):
        path = _plot_figure(scalars, SEARCH_PANELS, f"Search curves: {name}",
                            os.path.join(output_dir, SEARCH_CURVES_FILE))
        if path:
            written.append(path)
    if not written:
        raise NoScalarsError(
            f"the scalars in {tensorboard_dir(output_dir)} have none of the tags this project "
            f"writes ({', '.join(sorted(scalars)[:3])} ...); nothing to plot")
    return written
