"""The search-vs-random study's report (:mod:`enas.search.study`): the numbers recomputed from
the recorded runs (:func:`build_report`), ``study.md`` (:func:`report_markdown`), and
``study.json``, ``study.md`` and ``study.png`` written together (:func:`write_report`).

The unit of comparison is a search (and, for ``random`` and ``size_matched``, the draw that goes
with it): its value is the mean stand-alone test accuracy of its picks over the training seeds.
Per group: mean and standard deviation over searches and training seeds, the std of the search
means and the training-seed std; ENAS minus each other group with a 95% bootstrap interval and
Welch's t-test (:mod:`enas.search.statistics`); Kendall's tau between shared-weight and
stand-alone accuracy with its interval; the training-seed noise the differences must beat (the
pooled std of an architecture's test accuracy over its training seeds); per search the
controller's entropy at its first and last update (from the search's ``controller.jsonl``) and
the mean whole-validation accuracy of its final pick's samples; and the phases' wall time (each
``result.json`` records its phase's ``seconds``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics as stats

import numpy as np

from enas.cost.cost_table import pareto_front
from enas.run.atomic import atomic_write
from enas.search import statistics
from enas.viz.figures import save_figure

GROUPS = ("enas", "random_search", "random", "size_matched")
BASELINES = GROUPS[1:]
GROUP_TITLES = {"enas": "ENAS controller", "random_search": "weight-sharing random search",
                "random": "random, no search", "size_matched": "random, size-matched to ENAS"}
REPORT_FILES = ("study.json", "study.md", "study.png")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return stats.fmean(values), (stats.stdev(values) if len(values) > 1 else 0.0)


def _nan_to_none(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def build_report(results, shared, own, searches, study, search, phase_seconds=(), train_batch_size=None,
                 trainings=None):
    """The report dict from the recorded numbers: ``results`` (one per trained run), ``shared``
    (search seed -> arc -> accuracy with that seed's ENAS search's weights), ``own`` ((group,
    search seed, arc) -> accuracy in its own search's final pick), ``searches`` ((group, search
    seed) -> the search phase's result) and ``phase_seconds`` (each phase's recorded wall time,
    None where the phase ran before times were recorded); ``train_batch_size``: the trainings'
    batch; ``trainings``: their optimisation (:data:`OPTIMISATION`)."""
    archs = []
    for group in GROUPS:
        keys = []
        for r in results:
            key = (r["search_seed"], r["index"], r["arc"])
            if r["group"] == group and key not in keys:
                keys.append(key)
        for search_seed, index, arc in keys:
            runs = [r for r in results if r["group"] == group and (r["search_seed"], r["index"]) == (search_seed, index)]
            valid_mean, valid_std = _mean_std([r["valid"] for r in runs])
            test_mean, test_std = _mean_std([r["test"] for r in runs])
            archs.append({
                "group": group, "search_seed": search_seed, "index": index, "arc": arc,
                "shared_val_acc": shared.get(str(search_seed), {}).get(arc),
                "own_search_val_acc": own.get((group, str(search_seed), arc)), "seeds": [r["seed"] for r in runs],
                "valid": [r["valid"] for r in runs], "test": [r["test"] for r in runs],
                "valid_mean": valid_mean, "valid_std": valid_std, "test_mean": test_mean, "test_std": test_std,
                "params": runs[0]["params"], "memory_kib": runs[0]["memory_kib"], "ops": runs[0]["ops"],
            })
    units = {group: {} for group in GROUPS}  # group -> search seed -> mean test accuracy of its picks
    for r in results:
        if r["test"] is not None:
            units[r["group"]].setdefault(r["search_seed"], []).append(r["test"])
    units = {g: {seed: stats.fmean(v) for seed, v in sorted(by_seed.items())} for g, by_seed in units.items()}
    groups = {}
    for group in GROUPS:
        rows = [a for a in archs if a["group"] == group]
        tests = [t for a in rows for t in a["test"] if t is not None]
        valids = [v for a in rows for v in a["valid"] if v is not None]
        test_mean, test_std = _mean_std(tests)
        valid_mean, valid_std = _mean_std(valids)
        per_search = list(units[group].values())
        groups[group] = {
            "architectures": len(rows), "runs": len(tests), "test_mean": test_mean, "test_std": test_std,
            "valid_mean": valid_mean, "valid_std": valid_std,
            "search_means": per_search, "search_std": _mean_std(per_search)[1],
            **{key: _mean_std([a[key] for a in rows])[0] for key in ("shared_val_acc", "params", "memory_kib", "ops")},
            "seed_std": _nan_to_none(statistics.pooled_std([[t for t in a["test"] if t is not None] for a in rows])),
        }
    comparisons = {}
    for baseline in BASELINES:
        a, b = list(units["enas"].values()), list(units[baseline].values())
        diff, low, high = statistics.bootstrap_difference(a, b)
        t, df, p = statistics.welch_t_test(a, b)
        comparisons[baseline] = {"difference": _nan_to_none(diff), "ci_low": _nan_to_none(low),
                                 "ci_high": _nan_to_none(high), "t": _nan_to_none(t), "df": _nan_to_none(df),
                                 "p": _nan_to_none(p), "searches": [len(a), len(b)]}
    ranked = [a for a in archs if a["shared_val_acc"] is not None and a["valid_mean"] is not None]
    tau = {"architectures": len(ranked)}
    for split in ("valid", "test"):
        value, low, high = statistics.kendall_tau_interval([a["shared_val_acc"] for a in ranked],
                                                           [a[f"{split}_mean"] for a in ranked])
        tau[split], tau[f"{split}_ci"] = value, [_nan_to_none(low), _nan_to_none(high)]
    search_rows = []
    for (group, seed), result in sorted(searches.items(), key=lambda kv: (GROUPS.index(kv[0][0]), int(kv[0][1]))):
        entropy = result.get("entropy") or []
        search_rows.append({"group": group, "seed": int(seed), "best_val_acc": result["top"][0]["val_acc"],
                            "sample_val_acc_mean": result.get("sample_val_acc_mean"),
                            "entropy_start": entropy[0] if entropy else None,
                            "entropy_end": entropy[-1] if entropy else None,
                            "uniform_entropy": result.get("uniform_entropy"),
                            "entropy": entropy, "controller_steps": result.get("controller_steps") or []})
    return {"dataset": search.dataset, "study": dataclasses.asdict(study),
            "search_epochs": search.training.num_epochs, "final_pick_samples": search.controller.final_pick_samples,
            "train_batch_size": train_batch_size, "trainings": trainings,
            "target_memory_kib": search.cost.target_memory_kib if search.cost is not None else 0.0,
            "architectures": archs, "groups": groups, "comparisons": comparisons, "kendall_tau": tau,
            # The noise a difference must beat: an architecture's test accuracy over its training seeds.
            "training_seed_std": _nan_to_none(statistics.pooled_std([[t for t in a["test"] if t is not None] for a in archs])),
            "searches": search_rows,
            "wall_seconds": sum(t for t in phase_seconds if t is not None),
            "phases": len(phase_seconds), "phases_timed": sum(t is not None for t in phase_seconds)}


def _pm(mean, std):
    return "–" if mean is None else f"{mean:.4f} ± {std:.4f}"


def _num(value, fmt="{:.4f}"):
    return "–" if value is None or (isinstance(value, float) and value != value) else fmt.format(value)


def report_markdown(report):
    s = report["study"]
    searches = len(s["search_seeds"])
    target = report.get("target_memory_kib") or 0.0
    lines = [
        f"# Search vs random: {report['dataset']}",
        "",
        f"{searches} search{'es' if searches != 1 else ''} per method (seeds {', '.join(map(str, s['search_seeds']))}), "
        f"{report['search_epochs']} epoch{'' if report['search_epochs'] == 1 else 's'} each"
        + (f", memory target {target:g} KiB" if target else "") + "; final pick "
        f"of {report['final_pick_samples']} sampled architectures ranked on the whole validation split; top "
        f"{s['top_k']} per search; every architecture trained from scratch for {s['train_epochs']} "
        f"epoch{'' if s['train_epochs'] == 1 else 's'}"
        + (f" on batches of {report['train_batch_size']}" if report.get("train_batch_size") else "")
        + (", {optimizer} at {lr_max:g} annealed to {lr_min:g}".format(**report["trainings"])
           if report.get("trainings") else "")
        + f" with seeds {', '.join(str(x) for x in s['seeds'])}. "
        f"Size-matched: uniform architectures within {s['size_tolerance']:.0%} of an ENAS pick's weight memory. "
        "Shared-weight accuracy: whole validation split with the weights of the ENAS search of the same seed "
        "(own search's final pick in brackets).",
        "",
        "| group | test acc (mean ± std over searches x seeds) | std of the search means | training-seed std | "
        "valid acc | memory KiB | params | shared-weight val acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for group, g in report["groups"].items():
        lines.append(f"| {GROUP_TITLES[group]} | {_pm(g['test_mean'], g['test_std'])} | {_num(g['search_std'])} | "
                     f"{_num(g.get('seed_std'))} | "
                     f"{_pm(g['valid_mean'], g['valid_std'])} | {_num(g['memory_kib'], '{:.2f}')} | "
                     f"{_num(g['params'], '{:,.0f}')} | {_num(g['shared_val_acc'])} |")
    lines += ["", "| ENAS minus | difference of the search means | 95% bootstrap interval | Welch's t | p |",
              "|---|---|---|---|---|"]
    for baseline, c in report["comparisons"].items():
        lines.append(f"| {GROUP_TITLES[baseline]} | {_num(c['difference'], '{:+.4f}')} | "
                     f"[{_num(c['ci_low'], '{:+.4f}')}, {_num(c['ci_high'], '{:+.4f}')}] | {_num(c['t'], '{:.2f}')} | "
                     f"{_num(c['p'], '{:.3f}')} |")
    noise = report.get("training_seed_std")
    if noise is not None:
        ratios = ", ".join(f"{GROUP_TITLES[b]} {abs(c['difference']) / noise:.1f}x" for b, c in report["comparisons"].items()
                           if c["difference"] is not None and noise > 0)
        lines += ["", f"Training-seed noise: the pooled std of an architecture's test accuracy over its training seeds is "
                  f"{noise:.4f}" + (f"; the differences ENAS minus each group, in units of it: {ratios}." if ratios else ".")]
    tau = report["kendall_tau"]
    lines += ["", f"Kendall's tau, shared-weight vs stand-alone accuracy over {tau['architectures']} architectures: "
              f"valid {_num(tau['valid'], '{:.3f}')} [{_num(tau['valid_ci'][0], '{:.3f}')}, "
              f"{_num(tau['valid_ci'][1], '{:.3f}')}], test {_num(tau['test'], '{:.3f}')} "
              f"[{_num(tau['test_ci'][0], '{:.3f}')}, {_num(tau['test_ci'][1], '{:.3f}')}] (95% bootstrap)", "",
              "| search | seed | best val acc | final pick's samples: mean val acc | controller entropy, first -> last "
              "update (uniform) |", "|---|---|---|---|---|"]
    for row in report["searches"]:
        entropy = ("– (uniform)" if row["entropy_start"] is None else
                   f"{row['entropy_start']:.2f} -> {row['entropy_end']:.2f} ({_num(row['uniform_entropy'], '{:.2f}')})")
        lines.append(f"| {GROUP_TITLES[row['group']]} | {row['seed']} | {_num(row['best_val_acc'])} | "
                     f"{_num(row['sample_val_acc_mean'])} | {entropy} |")
    lines += ["", "| group | search seed | # | architecture | shared-weight val acc | valid (mean ± std) | "
              "test (mean ± std) | params | memory KiB | OPs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a in report["architectures"]:
        own = "" if a["own_search_val_acc"] is None else f" ({a['own_search_val_acc']:.4f})"
        lines.append(f"| {a['group']} | {a['search_seed']} | {a['index']} | `{a['arc']}` | {_num(a['shared_val_acc'])}{own} | "
                     f"{_pm(a['valid_mean'], a['valid_std'])} | {_pm(a['test_mean'], a['test_std'])} | "
                     f"{a['params']:,} | {a['memory_kib']:.2f} | {a['ops']:,.0f} |")
    if report.get("phases_timed"):
        lines += ["", f"Wall time of the phases: {report['wall_seconds'] / 3600:.2f} h"
                  + ("" if report["phases_timed"] == report["phases"] else
                     f" ({report['phases_timed']} of the {report['phases']} phases recorded theirs)") + "."]
    elif report.get("phases"):
        lines += ["", "Wall time of the phases: not recorded (they ran on code that did not record it)."]
    return "\n".join(lines) + "\n"


def write_report(folder, report):
    """``study.json``, ``study.md`` and ``study.png`` (test accuracy against memory with each
    group's Pareto front; the controllers' entropy over their updates) in ``folder``."""
    from matplotlib.figure import Figure

    atomic_write(os.path.join(folder, "study.json"), json.dumps(report, indent=2) + "\n")
    atomic_write(os.path.join(folder, "study.md"), report_markdown(report))
    fig = Figure(figsize=(11, 4.4), dpi=100, layout="constrained")
    ax, ax_entropy = fig.subplots(1, 2)
    colors = {"enas": "#1f6fb4", "random_search": "#d62728", "random": "#7f7f7f", "size_matched": "#2ca02c"}
    for group in GROUPS:
        rows = [a for a in report["architectures"] if a["group"] == group and a["test_mean"] is not None]
        if not rows:
            continue
        ax.errorbar([a["memory_kib"] for a in rows], [a["test_mean"] for a in rows],
                    yerr=[a["test_std"] for a in rows], fmt="o", capsize=3, color=colors[group],
                    label=GROUP_TITLES[group], alpha=0.8)
        front = [rows[i] for i in pareto_front([(a["memory_kib"], a["test_mean"]) for a in rows])]
        ax.step([a["memory_kib"] for a in front], [a["test_mean"] for a in front], where="post",
                color=colors[group], alpha=0.6)
    ax.set_xlabel("weight memory (KiB, bit-accurate)")
    ax.set_ylabel("stand-alone test accuracy")
    ax.set_title(f"Search vs random ({report['dataset']}): picks and Pareto fronts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    for row in report["searches"]:
        if row["entropy"]:
            ax_entropy.plot(row["controller_steps"], np.asarray(row["entropy"]) / row["uniform_entropy"],
                            label=f"ENAS search, seed {row['seed']}")
    ax_entropy.set_xlabel("controller update")
    ax_entropy.set_ylabel("entropy / uniform")
    ax_entropy.set_title("Controller entropy")
    ax_entropy.grid(alpha=0.3)
    if any(row["entropy"] for row in report["searches"]):
        ax_entropy.legend(fontsize=8)
    save_figure(fig, os.path.join(folder, "study.png"))
