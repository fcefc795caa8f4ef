"""Does the search beat random? One budget, one seed list, four groups of architectures, trained
from scratch and compared (``study_arc.py``).

Phases, each in its own folder under the study's ``output_dir`` (a killed study resumes where it
stopped; a phase whose ``result.json`` exists is never redone):

1. ``search_enas/``: the search with the ENAS controller, ending with its final pick
   (:func:`enas.search.search_task.final_pick`: ``final_pick_samples`` architectures ranked on the whole
   validation split with the shared weights; the best ``top_k`` are the group ``enas``);
2. ``search_random/``: the same search with the random controller (weight-sharing random search,
   Li & Talwalkar 2019); its final pick ranks uniform samples: the group ``random_search``;
3. ``random_group/``: ``top_k`` architectures drawn uniformly, no search: the group ``random``;
4. ``shared_eval/``: every picked architecture's accuracy on the whole validation split with
   the ENAS search's shared weights (one ranking model for all, for Kendall's tau);
5. ``train/<group>-<i>-seed<s>/``: each architecture trained from scratch with the same budget
   (``train_epochs``, the search's child and optimiser settings) for every seed of ``seeds``;
   every phase anneals its learning rate in one cosine period over its own epochs
   (``lr_T_0`` = the phase's epochs);
6. the report: ``study.json``, ``study.md`` and ``study.png`` (test accuracy against memory).

The study prints one line per phase and run (flushed: ``>> study.txt`` works); each phase's own
log goes only to its folder's ``stdout`` file. Settings are checked (:func:`from_settings`)
before TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics

import numpy as np

from enas.config.run_config import RunConfig, dataset_short_name, default_settings
from enas.errors import ConfigError
from enas.run.atomic import atomic_write
from enas.run.folder_lock import FolderLock, clear_folder
from enas.search.ranking import kendall_tau
from enas.space.arc import random_arc
from enas.viz.figures import save_figure

GROUPS = ("enas", "random_search", "random")
RESULT = "result.json"
STUDY_CONFIG = "study_config.json"
REPORT_FILES = ("study.json", "study.md", "study.png")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the study adds to the search settings."""

    seeds: tuple = (1, 2)  # seeds of the stand-alone trainings (S)
    top_k: int = 3  # architectures per group (k)
    train_epochs: int = 10  # the fixed-training budget of every picked architecture

    def __post_init__(self):
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--study_seeds must be distinct non-negative integers, got {self.seeds}")
        for name in ("top_k", "train_epochs"):
            if getattr(self, name) < 1:
                flag = "study_top_k" if name == "top_k" else name
                raise ConfigError(f"--{flag} must be >= 1, got {getattr(self, name)}")


STUDY_FLAGS = {"dataset": "mnist", "study_seeds": ",".join(str(s) for s in StudyConfig.seeds),
               "study_top_k": StudyConfig.top_k, "train_epochs": StudyConfig.train_epochs}


def settings_of(overrides=None):
    """The study's flat settings: the search's (defaults of :mod:`enas.config.run_config`) plus
    :data:`STUDY_FLAGS`, updated by ``overrides`` (the study script's CONFIG block)."""
    overrides = {"data_path": "", "output_dir": "", **(overrides or {})}  # "": from the dataset
    study = {k: overrides.pop(k, v) for k, v in STUDY_FLAGS.items()}
    return {**study, **default_settings("search", overrides)}


def from_settings(s):
    """``(StudyConfig, search RunConfig)`` from flat settings; one-line ConfigError if bad."""
    try:
        seeds = tuple(int(t) for t in str(s["study_seeds"]).replace(",", " ").split())
    except ValueError:
        raise ConfigError(f"bad --study_seeds {s['study_seeds']!r}: give seeds such as '1,2'") from None
    study = StudyConfig(seeds=seeds, top_k=s["study_top_k"], train_epochs=s["train_epochs"])
    dataset = s["dataset"]
    if dataset == "auto":  # what --data_path holds: an image folder, an .npz, MNIST or CIFAR-10
        if not s["data_path"]:
            raise ConfigError("--dataset auto needs --data_path (a folder of images, an .npz file, MNIST or CIFAR-10)")
        from enas.data.formats import detect_source

        dataset = detect_source(s["data_path"])
    search_settings = {k: v for k, v in s.items() if k not in STUDY_FLAGS}
    search_settings["data_path"] = s["data_path"] or f"./data/{dataset}"
    search_settings["output_dir"] = s["output_dir"] or f"./output-{dataset_short_name(dataset)}-study"
    search = RunConfig.from_settings(search_settings, "search", dataset)
    if search.distribute.distribution == "multi_worker":
        raise ConfigError("the study runs on one host (--distribution default or mirrored): its phases share one "
                          "folder; on a cluster run search_arc_*.py and train_arc_*.py with multi_worker instead")
    # Every phase anneals its learning rate in one cosine period over its own budget: a budget
    # shorter than the first period would end at a high learning rate, with moving statistics
    # of batch norm that lag the weights (stand-alone ternary accuracy then varies 0.12-0.75).
    search = search.replace(controller={"final_pick_top": study.top_k},
                            training={"lr_T_0": search.training.num_epochs})
    return study, search


class Study:
    """One study in ``search.output.output_dir`` (see the module docstring)."""

    def __init__(self, study, search, echo=None):
        self.study, self.search = study, search
        self.folder = search.output.output_dir
        self.say = echo  # None: stdout and <output_dir>/stdout, once the folder is prepared

    # --- folders -------------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.folder, *parts)

    def prepare(self):
        """Create (or reopen, refusing other settings) the study folder and lock it for this
        process (:mod:`enas.run.folder_lock`); returns the held lock."""
        record = {"study": dataclasses.asdict(self.study), "search": self.search.to_json()}
        record["search"]["output"].pop("reset_output_dir")
        marker = self.path(STUDY_CONFIG)
        if self.search.output.reset_output_dir and os.path.isdir(self.folder):
            if not os.path.exists(marker):
                raise ConfigError(f"refusing to reset {self.folder!r}: it holds no study; choose another folder")
        os.makedirs(self.folder, exist_ok=True)
        lock = FolderLock(self.folder).acquire()
        if self.search.output.reset_output_dir:
            clear_folder(self.folder)
        if os.path.exists(marker):
            with open(marker) as f:
                previous = json.load(f)
            if previous != json.loads(json.dumps(record)):
                lock.release()
                raise ConfigError(f"{self.folder!r} holds a study with other settings; pass --reset_output_dir "
                                  "to start over or use another --output_dir")
        else:
            atomic_write(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
        return lock

    def phase(self, title, folder, work, has_log=True):
        """Run ``work()`` (returning the phase's result, a JSON-able dict, and a summary line)
        unless ``folder/result.json`` records it already; then record it. Returns the result.
        ``has_log``: the phase writes a run log into ``folder``."""
        path = os.path.join(folder, RESULT)
        if os.path.exists(path):
            self.say(f"{title}: done, skipped")
            with open(path) as f:
                return json.load(f)
        self.say(f"{title}: running" + (f", its log in {os.path.join(folder, 'stdout')}" if has_log else ""))
        result, summary = work()
        os.makedirs(folder, exist_ok=True)
        atomic_write(path, json.dumps(result, indent=2) + "\n")
        self.say(f"{title}: {summary}")
        return result

    # --- phases --------------------------------------------------------------------------------
    def run_search(self, number, kind):
        from enas.search import search_task

        folder = self.path(f"search_{'enas' if kind == 'micro' else 'random'}")

        def work():
            config = self.search.replace(controller={"type": kind},
                                         output={"output_dir": folder, "reset_output_dir": False})
            pick = search_task.run(config, echo=False)["final_pick"]
            result = {"top": pick["top"], "samples": pick["samples"], "distinct": pick["distinct"]}
            return result, f"best val_acc {pick['top'][0]['val_acc']:.4f} on the whole validation split"

        return self.phase(f"Phase {number}/6: {'ENAS' if kind == 'micro' else 'random'} search", folder, work)

    def random_group(self):
        def work():
            rng = np.random.default_rng(self.search.output.seed)
            child = self.search.child
            arcs = [str(random_arc(child.num_nodes, rng, child.search_precisions)) for _ in range(self.study.top_k)]
            return {"arcs": arcs}, f"{len(arcs)} drawn uniformly"

        return self.phase("Phase 3/6: random architectures", self.path("random_group"), work, has_log=False)["arcs"]

    def shared_accuracies(self, arcs):
        """Accuracy of each arc on the whole validation split with the ENAS search's weights."""
        from enas.data import data_utils
        from enas.search import search_task
        from enas.search.ranking import rank_architectures

        def work():
            _, trainer, data = search_task.restore_shared_child(self.path("search_enas"))
            dataset = data_utils.split_dataset(data, "valid", self.search.training.eval_batch_size, training=False)
            child = self.search.child
            ranked = rank_architectures(trainer, dataset, arcs, trainer.model.space.precisions,
                                        child.policy.default.short_name())
            return {"val_acc": {item["arc"]: item["val_acc"] for item in ranked}}, f"{len(ranked)} architectures"

        title = "Phase 4/6: shared-weight accuracies (the ENAS search's weights, whole validation split)"
        return self.phase(title, self.path("shared_eval"), work, has_log=False)["val_acc"]

    def train_config(self, arc, seed, folder):
        s = self.search
        return RunConfig(
            mode="train", dataset=s.dataset, data=s.data, child=dataclasses.replace(s.child, search_precisions=()),
            fixed_arc=arc,
            training=dataclasses.replace(s.training, num_epochs=self.study.train_epochs, xla=False,
                                         lr_T_0=self.study.train_epochs),
            output=dataclasses.replace(s.output, output_dir=folder, seed=seed, reset_output_dir=False),
            distribute=s.distribute,
        )

    def train(self, groups):
        from enas.cost.model_summary import summarize
        from enas.run import train_fixed

        runs = [(group, i, arc, seed) for group in GROUPS for i, arc in enumerate(groups[group])
                for seed in self.study.seeds]
        results = []
        for n, (group, i, arc, seed) in enumerate(runs, start=1):
            folder = self.path("train", f"{group}-{i}-seed{seed}")

            def work(group=group, i=i, arc=arc, seed=seed, folder=folder):
                out = train_fixed.run(self.train_config(arc, seed, folder), echo=False)
                summary = summarize(out["model"])
                result = {"group": group, "index": i, "arc": arc, "seed": seed,
                          "valid": out["accuracies"].get("valid"), "test": out["accuracies"].get("test"),
                          "params": summary.params, "memory_kib": summary.memory_bytes / 1024, "ops": summary.ops}
                return result, f"valid {result['valid']:.4f}, test {result['test']:.4f}"

            results.append(self.phase(f"Phase 5/6: training {n}/{len(runs)}: {group} #{i}, seed {seed}", folder, work))
        return results

    def run(self):
        """All phases; returns the report dict."""
        from enas.run.run_loop import load_data

        load_data(self.search)  # missing or corrupt data: one line, before the folder is made
        with self.prepare():
            return self._run_phases()

    def _run_phases(self):
        if self.say is None:
            from enas.run.run_dir import RunLog

            self.say = RunLog(self.folder)
        enas_pick = self.run_search(1, "micro")
        random_pick = self.run_search(2, "random")
        groups = {
            "enas": [item["arc"] for item in enas_pick["top"]],
            "random_search": [item["arc"] for item in random_pick["top"]],
            "random": self.random_group(),
        }
        own = {("enas", item["arc"]): item["val_acc"] for item in enas_pick["top"]}
        own.update({("random_search", item["arc"]): item["val_acc"] for item in random_pick["top"]})
        shared = self.shared_accuracies([arc for group in GROUPS for arc in groups[group]])
        results = self.train(groups)
        self.say("Phase 6/6: report")
        report = build_report(results, shared, own, self.study, self.search)
        write_report(self.folder, report)
        for name in REPORT_FILES:
            self.say(f"  {self.path(name)}")
        return report


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def build_report(results, shared, own, study, search):
    """The report dict from the recorded numbers: ``results`` (one per trained run), ``shared``
    (arc -> accuracy with the ENAS search's weights) and ``own`` ((group, arc) -> accuracy in
    its own search's final pick)."""
    archs = []
    for group in GROUPS:
        picked = []
        for r in results:
            if r["group"] == group and (r["index"], r["arc"]) not in picked:
                picked.append((r["index"], r["arc"]))
        for index, arc in picked:
            runs = [r for r in results if r["group"] == group and r["index"] == index]
            valid_mean, valid_std = _mean_std([r["valid"] for r in runs])
            test_mean, test_std = _mean_std([r["test"] for r in runs])
            archs.append({
                "group": group, "index": index, "arc": arc, "shared_val_acc": shared.get(arc),
                "own_search_val_acc": own.get((group, arc)), "seeds": [r["seed"] for r in runs],
                "valid": [r["valid"] for r in runs], "test": [r["test"] for r in runs],
                "valid_mean": valid_mean, "valid_std": valid_std, "test_mean": test_mean, "test_std": test_std,
                "params": runs[0]["params"], "memory_kib": runs[0]["memory_kib"], "ops": runs[0]["ops"],
            })
    groups = {}
    for group in GROUPS:
        rows = [a for a in archs if a["group"] == group]
        groups[group] = {key: _mean_std([a[key] for a in rows])[0] for key in
                         ("shared_val_acc", "valid_mean", "test_mean", "params", "memory_kib", "ops")}
        groups[group]["architectures"] = len(rows)
    ranked = [a for a in archs if a["shared_val_acc"] is not None and a["valid_mean"] is not None]
    tau = {
        "valid": kendall_tau([a["shared_val_acc"] for a in ranked], [a["valid_mean"] for a in ranked]),
        "test": kendall_tau([a["shared_val_acc"] for a in ranked], [a["test_mean"] for a in ranked]),
        "architectures": len(ranked),
    }
    return {"dataset": search.dataset, "study": dataclasses.asdict(study),
            "search_epochs": search.training.num_epochs, "final_pick_samples": search.controller.final_pick_samples,
            "architectures": archs, "groups": groups, "kendall_tau": tau}


def _pm(mean, std):
    return "–" if mean is None else f"{mean:.4f} ± {std:.4f}"


def _num(value, fmt="{:.4f}"):
    return "–" if value is None or (isinstance(value, float) and value != value) else fmt.format(value)


def report_markdown(report):
    s = report["study"]
    lines = [
        f"# Search vs random: {report['dataset']}",
        "",
        f"Search: {report['search_epochs']} epoch{'' if report['search_epochs'] == 1 else 's'} each (ENAS controller, random controller); final pick "
        f"of {report['final_pick_samples']} sampled architectures ranked on the whole validation split; top "
        f"{s['top_k']} per group; every architecture trained from scratch for {s['train_epochs']} "
        f"epoch{'' if s['train_epochs'] == 1 else 's'} with "
        f"seeds {', '.join(str(x) for x in s['seeds'])}. Shared-weight accuracy: whole validation split with "
        "the ENAS search's weights (own search's final pick in brackets).",
        "",
        "| group | # | architecture | shared-weight val acc | valid (mean ± std) | test (mean ± std) | "
        "params | memory KiB | OPs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in report["architectures"]:
        own = "" if a["own_search_val_acc"] is None else f" ({a['own_search_val_acc']:.4f})"
        lines.append(f"| {a['group']} | {a['index']} | `{a['arc']}` | {_num(a['shared_val_acc'])}{own} | "
                     f"{_pm(a['valid_mean'], a['valid_std'])} | {_pm(a['test_mean'], a['test_std'])} | "
                     f"{a['params']:,} | {a['memory_kib']:.2f} | {a['ops']:,.0f} |")
    lines += ["", "| group | architectures | shared-weight val acc | valid | test | params | memory KiB | OPs |",
              "|---|---|---|---|---|---|---|---|"]
    for group, g in report["groups"].items():
        lines.append(f"| {group} | {g['architectures']} | {_num(g['shared_val_acc'])} | {_num(g['valid_mean'])} | "
                     f"{_num(g['test_mean'])} | {_num(g['params'], '{:,.0f}')} | {_num(g['memory_kib'], '{:.2f}')} | "
                     f"{_num(g['ops'], '{:,.0f}')} |")
    tau = report["kendall_tau"]
    lines += ["", f"Kendall's tau, shared-weight vs stand-alone accuracy over {tau['architectures']} "
              f"architectures: valid {_num(tau['valid'], '{:.3f}')}, test {_num(tau['test'], '{:.3f}')}", ""]
    return "\n".join(lines)


def write_report(folder, report):
    """``study.json``, ``study.md`` and ``study.png`` (test accuracy against memory) in ``folder``."""
    from matplotlib.figure import Figure

    atomic_write(os.path.join(folder, "study.json"), json.dumps(report, indent=2) + "\n")
    atomic_write(os.path.join(folder, "study.md"), report_markdown(report))
    fig = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = {"enas": "#1f6fb4", "random_search": "#d62728", "random": "#7f7f7f"}
    for group in GROUPS:
        rows = [a for a in report["architectures"] if a["group"] == group and a["test_mean"] is not None]
        if rows:
            ax.errorbar([a["memory_kib"] for a in rows], [a["test_mean"] for a in rows],
                        yerr=[a["test_std"] for a in rows], fmt="o", capsize=3, color=colors[group], label=group)
    ax.set_xlabel("memory (KiB, bit-accurate)")
    ax.set_ylabel("stand-alone test accuracy")
    ax.set_title(f"Search vs random ({report['dataset']})")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, os.path.join(folder, "study.png"))
