"""Does the search beat random, at equal size? Repeated searches per method, five groups of
picked architectures, all trained from scratch and compared with error bars (``study_arc.py``).

Phases, each in its own folder under the study's ``output_dir`` (a killed study resumes where it
stopped; a phase whose ``result.json`` exists is never redone):

1. ``search_enas-s<k>/`` and ``search_random-s<k>/`` for each search seed ``k`` of
   ``search_seeds``: the search with the ENAS controller and the same search with the random
   controller (weight-sharing random search, Li & Talwalkar 2019), each ending with its final
   pick (:func:`enas.search.search_task.final_pick`: ``final_pick_samples`` architectures ranked on
   the whole validation split with the shared weights); the best ``top_k`` of each are the groups
   ``enas`` and ``random_search`` (the picks of search ``k``);
2. ``random_group/``: per search seed, ``top_k`` architectures drawn uniformly, no search: ``random``;
3. ``size_matched/``: per ENAS pick, one architecture drawn uniformly among those whose weight
   memory is within ``size_tolerance`` (5%) of the pick's: ``size_matched`` (the controller's picks
   against random ones of the same size, so that "bigger scores higher" cannot explain a win);
4. ``shared_eval/``: every picked architecture's accuracy on the whole validation split with the
   shared weights of the ENAS search of its seed (the ranking Kendall's tau is computed on);
5. ``train/<group>-s<k>-<i>-seed<s>/``: each architecture trained from scratch with the same
   budget (``train_epochs``; the search's child, and the training recipe of its precision as
   ``train_arc_*.py`` applies it: the recipe's batch, optimizer, learning rates and L2 decay, not
   the search's, such as the study script's ``child_lr_min`` and batch, unless
   ``train_batch_size`` says otherwise) for every seed of ``seeds``; every phase anneals its
   learning rate in one cosine period over its own epochs (``lr_T_0`` = the phase's epochs);
6. the report (:mod:`enas.search.study_report`): ``study.json``, ``study.md`` and ``study.png``.

Reopened with another ``train_epochs``, ``train_batch_size`` or other ``seeds``
(:data:`RETRAINABLE`), a study reuses its searches, draws and shared-weight accuracies and only
trains: a budget (epochs, batch) other than the one it began with trains into
``train-e<E>-b<B>/``, and the report describes the budget of the last run. Trainings optimised
otherwise than the study's first ones (a study recorded before its trainings followed the recipe
trained with the search's learning rates) go to ``train-e<E>-b<B>-<optimizer>-lr<max>-<min>/``.
Any other setting differing from ``study_config.json`` is refused.

The unit of comparison is a search (and, for ``random`` and ``size_matched``, the draw that goes
with it): its value is the mean stand-alone accuracy of its picks over the training seeds; what
the report holds is in :mod:`enas.search.study_report`.

The study prints one line per phase and run (flushed: ``>> study.txt`` works); each phase's own
log goes only to its folder's ``stdout`` file. Settings are checked (:func:`from_settings`)
before TensorFlow is imported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics as stats
import time

import numpy as np

from enas.config import recipes
from enas.config.run_config import RunConfig, dataset_short_name, default_settings
from enas.errors import ConfigError
from enas.run.atomic import atomic_write
from enas.run.folder_lock import FolderLock, clear_folder
from enas.search.study_report import GROUPS, REPORT_FILES, build_report, write_report
from enas.space.arc import random_arc

RESULT = "result.json"
STUDY_CONFIG = "study_config.json"
SIZE_DRAWS = 200_000  # uniform draws tried per size-matched architecture before giving up


def _seed_list(text, flag):
    try:
        return tuple(int(t) for t in str(text).replace(",", " ").split())
    except ValueError:
        raise ConfigError(f"bad --{flag} {text!r}: give seeds such as '1,2'") from None


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """What the study adds to the search settings."""

    seeds: tuple = (1, 2)  # seeds of the stand-alone trainings (S)
    search_seeds: tuple = (1, 2, 3)  # each search (ENAS and random controller) runs once per seed
    top_k: int = 1  # architectures picked per search (k): the best k of its final pick
    train_epochs: int = 10  # the fixed-training budget of every picked architecture
    train_batch_size: int = 0  # its batch (0: the recipe's for the cells' precision, as train_arc_*.py)
    size_tolerance: float = 0.05  # a size-matched architecture's memory is within this fraction of its pick's

    def __post_init__(self):
        for name, flag in (("seeds", "study_seeds"), ("search_seeds", "study_search_seeds")):
            seeds = getattr(self, name)
            if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
                raise ConfigError(f"--{flag} must be distinct non-negative integers, got {seeds}")
        for name in ("top_k", "train_epochs"):
            if getattr(self, name) < 1:
                flag = "study_top_k" if name == "top_k" else name
                raise ConfigError(f"--{flag} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.train_batch_size, bool) or not isinstance(self.train_batch_size, int) \
                or self.train_batch_size < 0:
            raise ConfigError(f"--study_train_batch_size must be >= 0 (0: the recipe's), got {self.train_batch_size!r}")
        if not 0 < self.size_tolerance < 1:
            raise ConfigError(f"--study_size_tolerance must be between 0 and 1, got {self.size_tolerance}")


STUDY_FLAGS = {"dataset": "mnist", "study_seeds": ",".join(str(s) for s in StudyConfig.seeds),
               "study_search_seeds": ",".join(str(s) for s in StudyConfig.search_seeds),
               "study_top_k": StudyConfig.top_k, "train_epochs": StudyConfig.train_epochs,
               "study_train_batch_size": StudyConfig.train_batch_size,
               "study_size_tolerance": StudyConfig.size_tolerance}


def settings_of(overrides=None):
    """The study's flat settings: the search's (defaults of :mod:`enas.config.run_config`) plus
    :data:`STUDY_FLAGS`, updated by ``overrides`` (the study script's CONFIG block)."""
    overrides = {"data_path": "", "output_dir": "", **(overrides or {})}  # "": from the dataset
    study = {k: overrides.pop(k, v) for k, v in STUDY_FLAGS.items()}
    return {**study, **default_settings("search", overrides)}


def from_settings(s):
    """``(StudyConfig, search RunConfig)`` from flat settings; one-line ConfigError if bad."""
    study = StudyConfig(seeds=_seed_list(s["study_seeds"], "study_seeds"),
                        search_seeds=_seed_list(s["study_search_seeds"], "study_search_seeds"),
                        top_k=s["study_top_k"], train_epochs=s["train_epochs"],
                        train_batch_size=s["study_train_batch_size"],
                        size_tolerance=float(s["study_size_tolerance"]))
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
        self.phase_seconds = []  # each phase's wall time as recorded (None: recorded before it was)
        self.train_folder = "train"  # set by prepare(): train-e<E>-b<B> for a budget the study did not begin with

    # --- folders -------------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.folder, *parts)

    def search_folder(self, kind, seed):
        return self.path(f"search_{'enas' if kind == 'micro' else 'random'}-s{seed}")

    def prepare(self):
        """Create (or reopen, refusing other settings) the study folder and lock it for this
        process (:mod:`enas.run.folder_lock`); returns the held lock."""
        record = {"study": dataclasses.asdict(self.study), "search": self.search.to_json(),
                  "trainings": self.optimisation()}
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
            try:
                with open(marker) as f:
                    previous = json.load(f)
                same = _searched(previous) == _searched(json.loads(json.dumps(record)))
                # A study recorded before its trainings followed the recipe trained with the search's optimisation.
                searched_training = RunConfig.from_json(previous["search"]).training
                first_optimisation = previous.get("trainings") or {k: getattr(searched_training, k)
                                                                   for k in OPTIMISATION}
            except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
                lock.release()
                reason = e if isinstance(e, ConfigError) else e.__class__.__name__
                raise ConfigError(f"{marker!r} cannot be read ({reason}); pass --reset_output_dir to start the "
                                  "study over or use another --output_dir") from None
            if not same:
                lock.release()
                raise ConfigError(f"{self.folder!r} holds a study with other settings; pass --reset_output_dir "
                                  "to start over or use another --output_dir (only --train_epochs, "
                                  "--study_train_batch_size and --study_seeds may change: its picks are then "
                                  "trained again)")
            first = previous["study"]
            # A study begun before train_batch_size existed trained on the search's batch.
            first_batch = first.get("train_batch_size", self.search.training.batch_size) or self.recipe_batch()
            first_budget = (first["train_epochs"], first_batch)
        else:
            atomic_write(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
            first_budget, first_optimisation = self.budget(), record["trainings"]
        self.train_folder = train_folder_name(self.budget(), self.optimisation(), first_budget, first_optimisation)
        return lock

    def recipe_batch(self):
        """The training batch of the recipe of the search child's precision (what ``train_arc_*.py`` uses)."""
        return recipes.recipe_for(self.search.training.recipe, self.search.child.policy.default.kind).batch_size

    def budget(self):
        """``(epochs, batch)`` of every stand-alone training."""
        return self.study.train_epochs, self.study.train_batch_size or self.recipe_batch()

    def optimisation(self):
        """How every stand-alone training optimises (:data:`OPTIMISATION`): the recipe's for the
        search child's precision, as ``train_arc_*.py`` applies it, whatever the search overrode."""
        recipe = recipes.recipe_for(self.search.training.recipe, self.search.child.policy.default.kind)
        return {k: getattr(recipe, k) for k in OPTIMISATION}

    def phase(self, title, folder, work, has_log=True):
        """Run ``work()`` (returning the phase's result, a JSON-able dict, and a summary line)
        unless ``folder/result.json`` records it already; then record it with its ``seconds``: this
        sitting's wall time plus the result's ``resumed_seconds`` (a resumed run's earlier sittings,
        :func:`enas.run.run_loop.run`). Returns the result.
        ``has_log``: the phase writes a run log into ``folder``."""
        path = os.path.join(folder, RESULT)
        if os.path.exists(path):
            self.say(f"{title}: done, skipped")
            with open(path) as f:
                result = json.load(f)
            self.phase_seconds.append(result.get("seconds"))
            return result
        self.say(f"{title}: running" + (f", its log in {os.path.join(folder, 'stdout')}" if has_log else ""))
        start = time.monotonic()
        result, summary = work()
        # This sitting's wall time plus the run's time in the sittings before it (a resumed run).
        earlier = result.pop("resumed_seconds", 0.0)
        result = {**result, "seconds": round(time.monotonic() - start + earlier, 1)}
        self.phase_seconds.append(result["seconds"])
        os.makedirs(folder, exist_ok=True)
        atomic_write(path, json.dumps(result, indent=2) + "\n")
        self.say(f"{title}: {summary}")
        return result

    # --- phases --------------------------------------------------------------------------------
    def run_search(self, kind, seed):
        """Phase 1 for one method and seed: the search, its final pick, its controller's entropy."""
        from enas.search import search_task

        folder = self.search_folder(kind, seed)

        def work():
            config = self.search.replace(controller={"type": kind},
                                         output={"output_dir": folder, "reset_output_dir": False, "seed": seed})
            out = search_task.run(config, echo=False)
            pick = out["final_pick"]
            updates = search_task.read_controller(folder)
            result = {"resumed_seconds": out["resumed_seconds"],
                      "top": pick["top"], "samples": pick["samples"], "distinct": pick["distinct"],
                      "sample_val_acc_mean": stats.fmean(item["val_acc"] for item in pick["ranked"]),
                      "entropy": [u["entropy"] for u in updates], "controller_steps": [u["step"] for u in updates],
                      "uniform_entropy": _uniform_entropy(config)}
            entropy = "" if not updates else (f", entropy {updates[0]['entropy']:.2f} -> {updates[-1]['entropy']:.2f} "
                                              f"of {result['uniform_entropy']:.2f}")
            return result, (f"best val_acc {pick['top'][0]['val_acc']:.4f} on the whole validation split, samples' "
                            f"mean {result['sample_val_acc_mean']:.4f}{entropy}")

        name = "ENAS" if kind == "micro" else "random"
        return self.phase(f"Phase 1/6: {name} search, seed {seed}", folder, work)

    def random_group(self):
        """Phase 2: per search seed, ``top_k`` architectures drawn uniformly."""
        def work():
            child = self.search.child
            arcs = {}
            for seed in self.study.search_seeds:
                rng = np.random.default_rng(seed)
                arcs[str(seed)] = [str(random_arc(child.num_nodes, rng, child.search_precisions,
                                                  child.has_normal_layer))
                                   for _ in range(self.study.top_k)]
            return {"arcs": arcs}, f"{sum(len(v) for v in arcs.values())} drawn uniformly"

        return self.phase("Phase 2/6: random architectures", self.path("random_group"), work, has_log=False)["arcs"]

    def size_matched_group(self, enas_picks):
        """Phase 3: for each ENAS pick, one uniform architecture within ``size_tolerance`` of its memory."""
        def work():
            from enas.cost.cost_table import CostTable

            table = CostTable.build(self.search.child, self.image_shape())
            default = self.search.child.policy.default
            matched, tries = {}, []
            for seed, picks in enas_picks.items():
                rng = np.random.default_rng(10_000 + int(seed))
                matched[seed] = []
                for arc in picks:
                    target = table.cost(arc, default).memory_kib
                    found, count = draw_size_matched(table, default, target, self.study.size_tolerance, rng,
                                                     self.search.child)
                    tries.append(count)
                    if found is None:
                        raise ConfigError(f"no architecture within {self.study.size_tolerance:.0%} of {target:.2f} KiB "
                                          f"in {SIZE_DRAWS:,} uniform draws; pass a larger --study_size_tolerance")
                    matched[seed].append({"arc": found, "target_kib": target,
                                          "memory_kib": table.cost(found, default).memory_kib})
            return {"arcs": matched}, f"{len(tries)} drawn (uniform draws per match: {min(tries)}-{max(tries)})"

        result = self.phase("Phase 3/6: size-matched random architectures", self.path("size_matched"), work,
                            has_log=False)
        return {seed: [item["arc"] for item in items] for seed, items in result["arcs"].items()}

    def image_shape(self):
        from enas.run.run_loop import load_data

        return load_data(self.search).image_shape

    def shared_accuracies(self, arcs_by_seed):
        """Phase 4: accuracy of each arc on the whole validation split with the shared weights of
        the ENAS search of its seed: ``{seed: {arc: val_acc}}``."""
        from enas.data import data_utils
        from enas.search import search_task
        from enas.search.ranking import rank_architectures

        def work():
            out = {}
            for seed, arcs in arcs_by_seed.items():
                _, trainer, data = search_task.restore_shared_child(self.search_folder("micro", seed))
                dataset = data_utils.split_dataset(data, "valid", self.search.training.eval_batch_size, training=False)
                child = self.search.child
                ranked = rank_architectures(trainer, dataset, arcs, trainer.model.space.precisions,
                                            child.policy.default.short_name())
                out[str(seed)] = {item["arc"]: item["val_acc"] for item in ranked}
            return {"val_acc": out}, f"{sum(len(v) for v in out.values())} architectures"

        title = "Phase 4/6: shared-weight accuracies (each seed's ENAS search's weights, whole validation split)"
        return self.phase(title, self.path("shared_eval"), work, has_log=False)["val_acc"]

    def train_config(self, arc, seed, folder):
        s = self.search
        return RunConfig(
            mode="train", dataset=s.dataset, data=s.data, child=dataclasses.replace(s.child, search_precisions=()),
            fixed_arc=arc,
            training=dataclasses.replace(s.training, num_epochs=self.study.train_epochs, xla=False,
                                         lr_T_0=self.study.train_epochs, batch_size=self.budget()[1],
                                         **self.optimisation()),
            output=dataclasses.replace(s.output, output_dir=folder, seed=seed, reset_output_dir=False,
                                       micro_memory=False),
            distribute=s.distribute,
        )

    def train(self, groups):
        """Phase 5: every picked architecture trained from scratch for every training seed. Seed by
        seed, and within a seed search seed by search seed, every group in turn: a study stopped
        part way (trainings take hours) has trained the groups evenly."""
        from enas.cost.model_summary import summarize
        from enas.run import train_fixed

        runs = [(group, search_seed, i, arc, seed) for seed in self.study.seeds
                for search_seed in self.study.search_seeds for group in GROUPS
                for i, arc in enumerate(groups[group][str(search_seed)])]
        results = []
        for n, (group, search_seed, i, arc, seed) in enumerate(runs, start=1):
            folder = self.path(self.train_folder, f"{group}-s{search_seed}-{i}-seed{seed}")

            def work(group=group, search_seed=search_seed, i=i, arc=arc, seed=seed, folder=folder):
                out = train_fixed.run(self.train_config(arc, seed, folder), echo=False)
                summary = summarize(out["model"])
                result = {"resumed_seconds": out["resumed_seconds"],
                          "group": group, "search_seed": search_seed, "index": i, "arc": arc, "seed": seed,
                          "valid": out["accuracies"].get("valid"), "test": out["accuracies"].get("test"),
                          "params": summary.params, "memory_kib": summary.memory_bytes / 1024, "ops": summary.ops}
                return result, f"valid {result['valid']:.4f}, test {result['test']:.4f}"

            title = f"Phase 5/6: training {n}/{len(runs)}: {group}, search seed {search_seed} #{i}, seed {seed}"
            results.append(self.phase(title, folder, work))
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
        self.phase_seconds = []
        searches = {}
        for seed in self.study.search_seeds:
            for kind, group in (("micro", "enas"), ("random", "random_search")):
                searches[(group, str(seed))] = self.run_search(kind, seed)
        groups = {group: {str(seed): [item["arc"] for item in searches[(group, str(seed))]["top"]]
                          for seed in self.study.search_seeds} for group in ("enas", "random_search")}
        groups["random"] = self.random_group()
        groups["size_matched"] = self.size_matched_group(groups["enas"])
        own = {(group, seed, item["arc"]): item["val_acc"] for (group, seed), result in searches.items()
               for item in result["top"]}
        shared = self.shared_accuracies({seed: sorted({arc for g in GROUPS for arc in groups[g][seed]})
                                         for seed in groups["enas"]})
        results = self.train(groups)
        self.say("Phase 6/6: report")
        report = build_report(results, shared, own, searches, self.study, self.search, self.phase_seconds,
                              train_batch_size=self.budget()[1], trainings=self.optimisation())
        # The newest report in the study's folder; each training budget's kept in its own folder.
        for folder in (self.folder, self.path(self.train_folder)):
            write_report(folder, report)
        for name in REPORT_FILES:
            self.say(f"  {self.path(name)} (also in {self.path(self.train_folder, name)})")
        return report


RETRAINABLE = ("seeds", "train_epochs", "train_batch_size")  # a reopened study may change these: they only add trainings
# The training settings a recipe gives the stand-alone trainings besides their batch.
OPTIMISATION = ("optimizer", "lr_max", "lr_min", "l2_reg", "l2_latent")


def train_folder_name(budget, optimisation, first_budget, first_optimisation):
    """The folder of the trainings at ``budget`` ``(epochs, batch)`` optimised by ``optimisation``
    in a study whose first trainings had ``first_budget`` and ``first_optimisation``: ``train``
    for the first's, ``train-e<E>-b<B>`` for another budget, with
    ``-<optimizer>-lr<lr_max>-<lr_min>`` when the optimisation differs from the first's."""
    if (tuple(budget), optimisation) == (tuple(first_budget), first_optimisation):
        return "train"
    name = "train-e{}-b{}".format(*budget)
    if optimisation != first_optimisation:
        name += f"-{optimisation['optimizer']}-lr{optimisation['lr_max']:g}-{optimisation['lr_min']:g}"
    return name


def _searched(record):
    """A study record without :data:`RETRAINABLE` and without the folder's own path (a study may
    be moved or copied): what its searches, draws and picks depend on. The search's settings are
    read back through :class:`RunConfig`, so that a setting added since the study was recorded
    counts at its default (which keeps the earlier behaviour)."""
    search = RunConfig.from_json(record["search"]).to_json()
    search["output"] = {k: v for k, v in search["output"].items() if k not in ("output_dir", "reset_output_dir")}
    return {"study": {k: v for k, v in record["study"].items() if k not in RETRAINABLE}, "search": search}


def _uniform_entropy(config):
    from enas.controller.controller import uniform_entropy
    from enas.space.search_space import DEFAULT as SPACE

    return uniform_entropy(config.child.num_nodes, SPACE.num_ops, len(config.child.search_precisions) or 1,
                           config.child.has_normal_layer)


def draw_size_matched(table, default, target_kib, tolerance, rng, child):
    """``(arc string, draws)``: the first uniform architecture whose weight memory (``table``) is
    within ``tolerance`` (a fraction) of ``target_kib``, and how many draws it took; ``(None,
    SIZE_DRAWS)`` when none of :data:`SIZE_DRAWS` draws is."""
    for count in range(1, SIZE_DRAWS + 1):
        arc = random_arc(child.num_nodes, rng, child.search_precisions, child.has_normal_layer)
        if abs(table.cost(arc, default).memory_kib - target_kib) <= tolerance * target_kib:
            return str(arc), count
    return None, SIZE_DRAWS
