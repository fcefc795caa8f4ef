"""The cost side of a search: the cost-aware reward, each reported architecture's cost, the choice of
the best architecture within the target and the accuracy-cost Pareto front (``pareto.json``,
``pareto.png``).

Used when the search chooses precisions (``--search_precisions``) or sets a target
(``--target_memory_kib``, ``--target_ops``, ``--target_ram_kib``, ``--target_flash_kib``); without
either the search's reward is the accuracy and its report keeps the original format. RAM and
flash (TensorFlow Lite Micro's tensor arena and the int8 file) come from a ``micro`` table (an
:class:`enas.deploy.micro_table.MicroTable`, fitted by converting children, which this layer
cannot do: the caller passes a builder, as ``search_arc.py`` does).
"""

from __future__ import annotations

import json
import os

from enas.cost.cost_table import CostTable, pareto_front
from enas.errors import ConfigError
from enas.run.atomic import atomic_write
from enas.space.arc import parse_arc
from enas.viz.figures import save_figure

PARETO_FILE = "pareto.json"
PARETO_PLOT = "pareto.png"


def format_ops(ops):
    """``1.23 MOPs``."""
    return f"{ops / 1e6:.2f} MOPs"


class SearchCost:
    """Costs of the architectures of one search.

    Args:
        table: the :class:`~enas.cost.cost_table.CostTable` of the search's child configuration.
        cost_config: the run's :class:`~enas.config.run_config.CostConfig` (targets, weight, constraint).
        default_precision: name of the layers' own precision (an op of an arc that names none).
    """

    def __init__(self, table: CostTable, cost_config, default_precision: str, micro=None):
        self.table = table
        self.config = cost_config
        self.default_precision = default_precision
        self.micro = micro

    @classmethod
    def build(cls, config, image_shape, micro_builder=None):
        """For a search :class:`~enas.config.run_config.RunConfig` and images of ``image_shape``;
        ``micro_builder(child_config, image_shape)`` gives the RAM and flash table (needed for a RAM
        or flash target; also used without one, to report them)."""
        table = CostTable.build(config.child, image_shape)
        micro = None
        if micro_builder is not None:
            micro = micro_builder(config.child, image_shape)
        elif config.cost.needs_micro:
            raise ConfigError("--target_ram_kib and --target_flash_kib need TensorFlow Lite Micro's cost tables: run "
                              "search_arc.py, or pass micro_builder=enas.deploy.micro_table.MicroTable.build")
        return cls(table, config.cost, config.child.policy.default.short_name(), micro)

    @property
    def precisions(self):
        return self.table.precisions if self.table.searches_precision else ()

    def describe(self):
        """Header line: what the reward is."""
        c = self.config
        targets = [f"(memory / {c.target_memory_kib:g} KiB)", f"(ops / {format_ops(c.target_ops)})",
                   f"(RAM / {c.target_ram_kib:g} KiB)", f"(flash / {c.target_flash_kib:g} KiB)"]
        terms = [t for t, value in zip(targets, c.target_values()) if value > 0]
        reward = "acc" + "".join(f" * {t} ** {c.cost_weight:g}" for t in terms)
        if terms and c.cost_constraint == "hard":
            reward += " (each factor 1 within its target)"
        searched = ", ".join(self.precisions) if self.precisions else f"{self.default_precision} (not searched)"
        text = f"Op precisions: {searched}; reward = {reward}"
        return text if self.micro is None else f"{text}\n{self.micro.describe()}"

    # --- compiled --------------------------------------------------------------------------------
    def tf_reward(self, accuracy, vector):
        """``accuracy * cost factor`` of the search vector ``vector`` (float32 scalar, traceable)."""
        costs = dict(zip(("memory_kib", "ops"), self.table.tf_cost(vector)))
        if self.micro is not None:
            costs.update(zip(("ram_kib", "flash_kib"), self.micro.tf_cost(vector)))
        return accuracy * self.config.tf_factor(costs)

    # --- host side -------------------------------------------------------------------------------
    def of(self, arc):
        """``{"memory_kib", "ops", "reward_factor", "meets_target"}`` of ``arc`` (Arc or string)."""
        cost = self.table.cost(parse_arc(arc), default=self.default_precision)
        costs = {"memory_kib": cost.memory_kib, "ops": cost.ops}
        if self.micro is not None:
            costs.update(self.micro.cost(parse_arc(arc), default=self.default_precision))
        return {**costs, "reward_factor": self.config.factor(costs), "meets_target": self.config.meets(costs)}

    def annotate(self, item):
        """``item`` (a dict with ``arc`` and ``val_acc``) with its cost and ``reward``."""
        item.update(self.of(item["arc"]))
        item["reward"] = item["val_acc"] * item["reward_factor"]
        return item

    def text(self, item):
        """``val_acc = 0.9531  memory = 12.34 KiB  ops = 1.23 MOPs  reward = 0.9412``."""
        within = "" if not self.config.has_target else ("  (within target)" if item["meets_target"] else
                                                        "  (over target)")
        micro = "" if "ram_kib" not in item else f"ram = {item['ram_kib']:.1f} KiB  flash = {item['flash_kib']:.1f} KiB  "
        return (f"val_acc = {item['val_acc']:<6.4f}  memory = {item['memory_kib']:.2f} KiB  "
                f"ops = {format_ops(item['ops'])}  {micro}reward = {item['reward']:<6.4f}{within}")

    def better(self, item, best):
        """Whether ``item`` beats ``best`` (None: nothing yet): within the targets beats over them;
        among those within, the higher accuracy; among those over, the higher reward."""
        if best is None:
            return True
        if item["meets_target"] != best.get("meets_target", True):
            return item["meets_target"]
        key = "val_acc" if item["meets_target"] else "reward"
        return item[key] > best[key]

    def choose(self, items):
        """The best of ``items`` by :meth:`better` (ties: the earlier)."""
        best = None
        for item in items:
            if self.better(item, best):
                best = item
        return best

    # --- Pareto front ----------------------------------------------------------------------------
    @property
    def axis(self):
        """The cost the front is drawn against: the first target set of RAM, flash, weight memory
        and OPs (``memory_kib`` without one)."""
        c = self.config
        for name, target in (("ram_kib", c.target_ram_kib), ("flash_kib", c.target_flash_kib),
                             ("memory_kib", c.target_memory_kib), ("ops", c.target_ops)):
            if target > 0:
                return name
        return "memory_kib"

    def write_pareto(self, output_dir, items, chosen=None):
        """``pareto.json`` (every distinct evaluated architecture with its accuracy and cost, the
        front's indices, the target and the ``chosen`` arc) and ``pareto.png``. An architecture
        evaluated more than once keeps its last record (the final pick's, on the whole validation
        split, when there is one). Returns the record."""
        latest = {}
        for item in items:
            latest[item["arc"]] = item
        points = [self.annotate(dict(item)) if "memory_kib" not in item else dict(item) for item in latest.values()]
        axis = self.axis
        front = pareto_front([(p[axis], p["val_acc"]) for p in points])
        target = dict(self.config.targets()).get(axis)
        record = {"axis": axis, "target": target or None, "points": points, "front": front,
                  "chosen": None if chosen is None else chosen["arc"]}
        atomic_write(os.path.join(output_dir, PARETO_FILE), json.dumps(record) + "\n")
        _plot_pareto(os.path.join(output_dir, PARETO_PLOT), record)
        return record


def _plot_pareto(path, record):
    from matplotlib.figure import Figure

    axis, points = record["axis"], record["points"]
    scale, label = {"ops": (1e6, "MOPs per image"), "ram_kib": (1.0, "TFLM tensor arena (KiB)"),
                    "flash_kib": (1.0, "int8 file, flash (KiB)")}.get(axis, (1.0, "weight memory (KiB)"))
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for source, style in (("sampled", dict(color="0.6", s=14, label="sampled (one validation minibatch)")),
                          ("final pick", dict(color="tab:blue", s=22, label="final pick (whole validation split)"))):
        chosen = [p for p in points if (p.get("source") == "final pick") == (source == "final pick")]
        if chosen:
            ax.scatter([p[axis] / scale for p in chosen], [p["val_acc"] for p in chosen], **style)
    front = [points[i] for i in record["front"]]
    ax.step([p[axis] / scale for p in front], [p["val_acc"] for p in front], where="post", color="tab:red",
            label="Pareto front")
    if record["target"]:
        ax.axvline(record["target"] / scale, color="k", linestyle="--", linewidth=1, label="target")
    if record["chosen"] is not None:
        best = next(p for p in points if p["arc"] == record["chosen"])
        star = "best" if not record["target"] else (
            "best within the target" if best.get("meets_target") else "best reward (none within the target)")
        ax.scatter([best[axis] / scale], [best["val_acc"]], marker="*", s=160, color="tab:orange", zorder=3,
                   label=star)
    ax.set_xlabel(label)
    ax.set_ylabel("validation accuracy (shared weights)")
    ax.set_title("Accuracy and cost of the evaluated architectures")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


__all__ = ["SearchCost", "PARETO_FILE", "PARETO_PLOT", "format_ops"]
