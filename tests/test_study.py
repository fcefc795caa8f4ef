"""The search-vs-random study end to end at a tiny budget with two search seeds: the report's
structure, its numbers (per-search units, differences, intervals, p-values, tau) recomputed from
the recorded runs, the size-matched group within its tolerance, and a study killed after its
searches resuming without redoing them."""

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enas.search.ranking import kendall_tau
from enas.search.study_report import GROUP_TITLES, GROUPS
from tests.conftest import REPO, argv_from

TINY_STUDY = dict(
    max_train_examples=300, max_test_examples=100, num_valid=100, batch_size=32, eval_batch_size=100,
    num_epochs=1, log_every=5, seed=4, num_sampled_arcs=2, child_num_layers=0, child_num_cells=2,
    child_out_filters=4, controller_train_steps=2, controller_num_aggregate=2, controller_lstm_size=8,
    controller_warmup_epochs=0,
    final_pick_samples=4, study_top_k=1, study_seeds="1,2", study_search_seeds="1,2", train_epochs=1,
)
SEARCHES = ("search_enas-s1", "search_random-s1", "search_enas-s2", "search_random-s2")


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6 ** 0.5)  # tau-b with a tie
    assert math.isnan(kendall_tau([1], [2]))  # no pair
    assert math.isnan(kendall_tau([], []))
    assert math.isnan(kendall_tau([5, 5, 5], [1, 2, 3]))  # a constant sequence: no ranking
    assert math.isnan(kendall_tau([1, 2, 3], [0.5, 0.5, 0.5]))


@pytest.fixture(scope="module")
def study_run(tmp_path_factory, mnist_path):
    """A study killed once its four searches are done (at phase 2), then rerun to the end."""
    folder = tmp_path_factory.mktemp("study") / "study"
    config = {**TINY_STUDY, "data_path": mnist_path, "output_dir": str(folder)}
    command = [sys.executable, str(REPO / "study_arc.py")] + argv_from(config)[1:]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            cwd=REPO)
    first, deadline = [], time.time() + 400
    while time.time() < deadline:
        line = proc.stdout.readline()
        first.append(line)
        if not line or line.startswith("Phase 2/6"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    searched = {name: (folder / name / "result.json").stat().st_mtime_ns for name in SEARCHES}
    logs = {name: (folder / name / "stdout").read_text() for name in searched}
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    return folder, "".join(first), rerun, searched, logs


def test_study_resumes_after_kill_without_redoing_phases(study_run):
    folder, first, rerun, searched, logs = study_run
    assert first.splitlines()[-1].startswith("Phase 2/6"), first
    assert rerun.returncode == 0, rerun.stderr
    out = rerun.stdout.splitlines()
    for seed in (1, 2):
        assert f"Phase 1/6: ENAS search, seed {seed}: done, skipped" in out
        assert f"Phase 1/6: random search, seed {seed}: done, skipped" in out
    for name, mtime in searched.items():  # the searches untouched: same record, no new log lines
        assert (folder / name / "result.json").stat().st_mtime_ns == mtime
        assert (folder / name / "stdout").read_text() == logs[name]
    assert any(line.startswith("Phase 5/6: training 16/16") for line in out)
    # Seed by seed, search seed by search seed, every group in turn: a study stopped part way
    # has trained the groups evenly.
    trained = [line.split(": ")[2] for line in out if line.startswith("Phase 5/6: training") and ": running" in line]
    assert trained[:4] == [f"{group}, search seed 1 #0, seed 1" for group in GROUPS]
    assert trained[-1] == f"{GROUPS[-1]}, search seed 2 #0, seed 2"
    # The phases' own logs stayed in their folders.
    assert not any(line.startswith("epoch = ") for line in out)
    assert "Final pick: 4 architectures" in logs["search_enas-s2"]
    # Each search ran with its own seed.
    for name in SEARCHES:
        seed = json.loads((folder / name / "config.json").read_text())["config"]["output"]["seed"]
        assert seed == int(name[-1])


def _runs(folder):
    return [json.loads(p.read_text()) for p in sorted((folder / "train").glob("*/result.json"))]


def test_study_report_is_computed_from_the_recorded_runs(study_run):
    from enas.search import statistics

    folder = study_run[0]
    report = json.loads((folder / "study.json").read_text())
    assert (folder / "study.png").stat().st_size > 1000
    for name in ("study.json", "study.md"):  # the budget's own copy
        assert (folder / "train" / name).read_text() == (folder / name).read_text()
    markdown = (folder / "study.md").read_text()
    assert "| group | search seed | # | architecture |" in markdown and "Kendall's tau" in markdown
    assert "95% bootstrap interval" in markdown and "Welch" in markdown
    runs = _runs(folder)
    assert len(runs) == 4 * 2 * 1 * 2 and {r["group"] for r in runs} == set(GROUPS)
    assert all(r["seconds"] > 0 and "resumed_seconds" not in r for r in runs)  # folded into seconds
    shared = json.loads((folder / "shared_eval" / "result.json").read_text())["val_acc"]
    archs = report["architectures"]
    assert [a["group"] for a in archs] == [g for g in GROUPS for _ in (1, 2)]
    for arch in archs:
        mine = [r for r in runs if (r["group"], r["search_seed"], r["index"]) ==
                (arch["group"], arch["search_seed"], arch["index"])]
        assert arch["valid"] == [r["valid"] for r in mine] and arch["seeds"] == [1, 2]
        assert arch["test_mean"] == pytest.approx(sum(r["test"] for r in mine) / 2)
        assert arch["shared_val_acc"] == shared[str(arch["search_seed"])][arch["arc"]]
        assert arch["memory_kib"] > 0 and arch["params"] > 0 and arch["ops"] > 0
    # The unit is a search: its picks' mean test accuracy over the training seeds.
    units = {g: [statistics_mean([r["test"] for r in runs if r["group"] == g and r["search_seed"] == k])
                 for k in (1, 2)] for g in GROUPS}
    for group, numbers in report["groups"].items():
        tests = [r["test"] for r in runs if r["group"] == group]
        assert numbers["test_mean"] == pytest.approx(sum(tests) / len(tests))
        assert numbers["search_means"] == pytest.approx(units[group])
    for baseline, c in report["comparisons"].items():
        diff, low, high = statistics.bootstrap_difference(units["enas"], units[baseline])
        assert (c["difference"], c["ci_low"], c["ci_high"]) == pytest.approx((diff, low, high))
        p = statistics.welch_t_test(units["enas"], units[baseline])[2]
        assert (c["p"] is None) == math.isnan(p) and (c["p"] is None or c["p"] == pytest.approx(p))
    assert archs[0]["own_search_val_acc"] is not None and archs[-1]["own_search_val_acc"] is None
    # The noise the differences must beat: each architecture's test accuracies over its seeds, pooled.
    assert report["training_seed_std"] == pytest.approx(statistics.pooled_std([a["test"] for a in archs]))
    for group, numbers in report["groups"].items():
        mine = [a["test"] for a in archs if a["group"] == group]
        assert numbers["seed_std"] == pytest.approx(statistics.pooled_std(mine))
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {GROUP_TITLES[group]} |"))
        assert row.split(" | ")[3] == f"{numbers['seed_std']:.4f}", row
    assert f"pooled std of an architecture's test accuracy over its training seeds is " \
           f"{report['training_seed_std']:.4f}" in markdown
    # Every phase recorded its wall time (the searches in the killed first run): 4 searches, the
    # random and size-matched draws, the shared-weight evaluation, 16 trainings.
    seconds = [json.loads(p.read_text())["seconds"] for p in folder.glob("**/result.json")]
    assert report["phases"] == report["phases_timed"] == len(seconds) == 4 + 3 + 16
    assert report["wall_seconds"] == pytest.approx(sum(seconds)) and all(s >= 0 for s in seconds)
    assert f"Wall time of the phases: {report['wall_seconds'] / 3600:.2f} h." in markdown
    # Kendall's tau of both splits, recomputed from the recorded runs (NaN exactly when the data
    # leave it undefined); at least one must be defined, or the comparison would prove nothing.
    assert report["kendall_tau"]["architectures"] == len(archs) == 8
    defined = []
    for split in ("valid", "test"):
        means = [statistics_mean([r[split] for r in runs if (r["group"], r["search_seed"], r["index"]) ==
                                  (a["group"], a["search_seed"], a["index"])]) for a in archs]
        tau = kendall_tau([a["shared_val_acc"] for a in archs], means)
        recorded = report["kendall_tau"][split]
        assert math.isnan(recorded) == math.isnan(tau), (split, recorded, tau)
        if not math.isnan(tau):
            assert recorded == pytest.approx(tau), split
            defined.append(split)
    assert defined, f"tau undefined on both splits: shared {[a['shared_val_acc'] for a in archs]}"
    # Each picked architecture of a search is its final pick's best.
    for seed in (1, 2):
        enas_pick = json.loads((folder / f"search_enas-s{seed}" / "result.json").read_text())
        assert archs[seed - 1]["arc"] == enas_pick["top"][0]["arc"]
        assert Path(folder / f"search_enas-s{seed}" / "best_arc.txt").read_text().strip() == enas_pick["top"][0]["arc"]
    # The controller's entropy per ENAS search, from its controller.jsonl; none for the random ones.
    rows = {(r["group"], r["seed"]): r for r in report["searches"]}
    for seed in (1, 2):
        enas = rows[("enas", seed)]
        lines = (folder / f"search_enas-s{seed}" / "controller.jsonl").read_text().splitlines()
        assert len(enas["entropy"]) == len(lines) == 2  # 1 epoch x 2 updates
        assert enas["entropy_start"] == json.loads(lines[0])["entropy"] <= enas["uniform_entropy"]
        assert rows[("random_search", seed)]["entropy"] == []
        assert 0 < enas["sample_val_acc_mean"] <= 1


def statistics_mean(values):
    return sum(values) / len(values)


def test_size_matched_architectures_are_within_the_tolerance_of_their_enas_pick(study_run):
    """Each size-matched architecture's weight memory, as its stand-alone training summarised it,
    is within 5% of the ENAS pick it matches, and it was drawn, not copied."""
    folder = study_run[0]
    runs = _runs(folder)
    recorded = json.loads((folder / "size_matched" / "result.json").read_text())["arcs"]
    for seed in (1, 2):
        pick = next(r for r in runs if (r["group"], r["search_seed"]) == ("enas", seed))
        matched = next(r for r in runs if (r["group"], r["search_seed"]) == ("size_matched", seed))
        assert abs(matched["memory_kib"] - pick["memory_kib"]) <= 0.05 * pick["memory_kib"]
        item = recorded[str(seed)][0]
        assert item["arc"] == matched["arc"] and item["target_kib"] == pytest.approx(pick["memory_kib"])
        assert item["memory_kib"] == pytest.approx(matched["memory_kib"])
    # No normal layers (child_num_layers 0): every group's arcs copy their reduction cell into
    # the normal half, so one network is one arc whichever group it comes from.
    from enas.space.arc import parse_arc

    for run in runs:
        arc = parse_arc(run["arc"], TINY_STUDY["child_num_cells"])
        assert arc.normal == arc.reduce, (run["group"], run["arc"])


def test_every_phase_anneals_over_its_own_budget(study_run):
    """A budget shorter than the first cosine period (10 epochs by default) would end at a high
    learning rate; the study makes each phase one cosine period long."""
    folder = study_run[0]
    search = json.loads((folder / "search_enas-s1" / "config.json").read_text())["config"]["training"]
    assert search["num_epochs"] == TINY_STUDY["num_epochs"] and search["lr_T_0"] == TINY_STUDY["num_epochs"]
    for path in (folder / "train").glob("*/config.json"):
        training = json.loads(path.read_text())["config"]["training"]
        assert training["num_epochs"] == training["lr_T_0"] == TINY_STUDY["train_epochs"]


def test_the_trainings_follow_the_recipe_not_the_search(study_run):
    """The stand-alone trainings optimise as train_arc_*.py would (the ternary cells' recipe,
    annealed to 0), not with the search's settings (the study script's lr_min 5e-4)."""
    from enas.config import recipes

    folder = study_run[0]
    recipe = recipes.RECIPES["lowbit"]
    search = json.loads((folder / "search_enas-s1" / "config.json").read_text())["config"]["training"]
    assert search["lr_min"] == 5e-4 and recipe.lr_min == 0.0
    trainings = sorted((folder / "train").glob("*/config.json"))
    assert len(trainings) == 16
    for path in trainings:
        training = json.loads(path.read_text())["config"]["training"]
        assert (training["optimizer"], training["lr_max"], training["lr_min"], training["l2_reg"],
                training["l2_latent"]) == (recipe.optimizer, recipe.lr_max, recipe.lr_min, recipe.l2_reg,
                                           recipe.l2_latent)
    report = json.loads((folder / "study.json").read_text())
    assert report["trainings"]["lr_min"] == 0.0
    assert "adam at 0.02 annealed to 0" in (folder / "study.md").read_text()


def study_settings(mnist_path, folder, **flags):
    """The flat settings ``study_arc.py`` would run with TINY_STUDY and ``flags``."""
    import study_arc
    from enas.search.study import settings_of

    return {**settings_of(study_arc.CONFIG), **TINY_STUDY, "data_path": mnist_path, "output_dir": str(folder),
            **flags}


def test_reset_output_dir_starts_a_study_over_and_refuses_other_folders(tmp_path, mnist_path, capsys, monkeypatch):
    """--reset_output_dir deletes a study's folder and starts over; a folder holding no study is
    refused with one line, untouched. (No training: the study's folder handling and its cheapest
    phase, the random architectures.)"""
    import study_arc
    from enas.cli.command import run_command
    from enas.search.study import STUDY_CONFIG, Study, from_settings, settings_of

    folder, said = tmp_path / "study", []

    def study(reset):
        s = Study(*from_settings(study_settings(mnist_path, folder, reset_output_dir=reset)), echo=said.append)
        lock = s.prepare()  # the folder's lock, if prepare takes one: let the next Study open it
        getattr(lock, "release", lambda: None)()
        return s

    # A partial study: phase 2 done (and a phase's leftovers); reopened, phase 2 is skipped.
    arcs = study(reset=False).random_group()
    (folder / "search_enas-s1").mkdir()
    (folder / "search_enas-s1" / "stdout").write_text("epoch = 0\n")
    said.clear()
    assert study(reset=False).random_group() == arcs and said == ["Phase 2/6: random architectures: done, skipped"]

    said.clear()
    fresh = study(reset=True)
    assert [name for name in os.listdir(folder) if not name.startswith(".")] == [STUDY_CONFIG]  # not: .lock
    assert fresh.random_group() == arcs and said == ["Phase 2/6: random architectures: running",
                                                     "Phase 2/6: random architectures: 2 drawn uniformly"]

    # A folder without a study (here: a user's file) is refused, through the script's entry point.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    config = {**TINY_STUDY, "data_path": mnist_path, "output_dir": str(other), "reset_output_dir": True}

    def no_search(*args):  # were the folder accepted, fail here instead of running a whole study
        raise AssertionError(f"the study started in {other}")

    monkeypatch.setattr(Study, "run_search", no_search)
    code = run_command(settings_of(study_arc.CONFIG), argv_from(config, "study_arc.py"), study_arc.main)
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: refusing to reset") and "holds no study" in err, err
    assert err.count("\n") == 1 and out == ""
    assert os.listdir(other) == ["notes.txt"] and (other / "notes.txt").read_text() == "mine\n"


def test_a_memory_target_makes_both_searches_of_a_seed_cost_aware(tmp_path, mnist_path, monkeypatch):
    """``--target_memory_kib`` reaches the ENAS and the random-controller search alike (same cost
    settings, same seed), so that their picks are compared at equal cost."""
    import study_arc
    from enas.search import search_task
    from enas.search.study import Study, from_settings, settings_of

    settings = {**settings_of(study_arc.CONFIG), **TINY_STUDY, "data_path": mnist_path,
                "output_dir": str(tmp_path / "study"), "target_memory_kib": 14.0, "cost_constraint": "hard"}
    study, search = from_settings(settings)
    seen = []

    class Stop(Exception):
        pass

    def record(config, echo=False):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(search_task, "run", record)
    runner = Study(study, search, echo=lambda line: None)
    for kind in ("micro", "random"):
        with pytest.raises(Stop):
            runner.run_search(kind, 2)
    assert [config.controller.type for config in seen] == ["micro", "random"]
    assert [config.output.seed for config in seen] == [2, 2]
    assert seen[0].cost == seen[1].cost and seen[0].cost.target_memory_kib == 14.0
    assert seen[0].cost.cost_constraint == "hard" and seen[0].cost.has_target


def test_a_study_reopened_with_another_budget_reuses_its_searches_and_trains_again(study_run, tmp_path, mnist_path,
                                                                                   capsys, monkeypatch):
    """Another --train_epochs and --study_train_batch_size (and other --study_seeds) on a finished
    study reduced to its records: phases 1-4 are skipped, every pick is trained at the new budget into train-e<E>-b<B>/
    (the first budget's runs untouched) and the report describes the new budget. Any other change
    is refused with one line."""
    import shutil

    import study_arc
    from enas.cli.command import run_command
    from enas.search.study import Study, settings_of

    # Only the study's records (study_config.json and every phase's result.json), without the
    # searches' checkpoints and logs: enough to reopen it and train again.
    folder = tmp_path / "study"
    shutil.copytree(study_run[0], folder,
                    ignore=lambda d, names: [n for n in names if not (os.path.isdir(os.path.join(d, n))
                                                                      or n in ("result.json", "study_config.json"))])
    assert not list(folder.glob("search_enas-s1/ckpt*")) and (folder / "search_enas-s1" / "result.json").exists()
    first = {p: p.stat().st_mtime_ns for p in (folder / "train").glob("*/result.json")}
    config = {**TINY_STUDY, "data_path": mnist_path, "output_dir": str(folder), "train_epochs": 2, "study_seeds": "3",
              "study_train_batch_size": 16}
    command = [sys.executable, str(REPO / "study_arc.py")] + argv_from(config)[1:]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.endswith(": done, skipped") for line in lines) == 4 + 3  # searches, draws, shared accuracies
    assert any(line.startswith("Phase 5/6: training 8/8:") for line in lines)
    runs = sorted((folder / "train-e2-b16").glob("*/result.json"))
    assert len(runs) == 4 * 2 and all(json.loads(p.read_text())["seed"] == 3 for p in runs)
    for path in (folder / "train-e2-b16").glob("*/config.json"):
        training = json.loads(path.read_text())["config"]["training"]
        assert (training["num_epochs"], training["batch_size"]) == (2, 16)
    assert {p: p.stat().st_mtime_ns for p in (folder / "train").glob("*/result.json")} == first
    report = json.loads((folder / "study.json").read_text())
    assert report["study"]["train_epochs"] == 2 and report["study"]["seeds"] == [3] and report["train_batch_size"] == 16
    assert all(a["seeds"] == [3] for a in report["architectures"])
    assert json.loads((folder / "train-e2-b16" / "study.json").read_text()) == report  # kept with its budget

    # What the searches depend on may not change: refused before anything runs.
    monkeypatch.setattr(Study, "run_search", lambda *a: pytest.fail("the study ran"))
    code = run_command(settings_of(study_arc.CONFIG), argv_from({**config, "study_top_k": 2}, "study_arc.py"),
                       study_arc.main)
    err = capsys.readouterr().err
    assert code == 2 and "holds a study with other settings" in err and err.count("\n") == 1, err


def test_a_study_recorded_before_a_setting_existed_reopens(tmp_path, mnist_path):
    """A study recorded before a search setting was added (here --controller_grad_bound) compares
    equal to today's at that setting's default, and unequal at another value."""
    from enas.search.study import RETRAINABLE, Study, _searched, from_settings

    def record(**flags):
        study = Study(*from_settings(study_settings(mnist_path, tmp_path / "study", **flags)))
        return json.loads(json.dumps({"study": dataclasses.asdict(study.study), "search": study.search.to_json()}))

    old = record()
    del old["search"]["controller"]["grad_bound"]
    del old["search"]["output"]["reset_output_dir"]
    assert _searched(old) == _searched(record())
    assert _searched(old) != _searched(record(controller_grad_bound=0.05))
    assert _searched(old) == _searched(record(**{"train_epochs": 7, "study_seeds": "5"}))
    assert {"seeds", "train_epochs", "train_batch_size"} == set(RETRAINABLE)


def test_a_corrupt_study_record_is_one_line_and_leaves_the_folder_usable(tmp_path, mnist_path, capsys):
    """An unreadable study_config.json: one stderr line, exit status 2, the file untouched and the
    folder's lock released (so that --reset_output_dir can then start the study over)."""
    import study_arc
    from enas.cli.command import run_command
    from enas.search.study import STUDY_CONFIG, Study, from_settings, settings_of

    folder = tmp_path / "study"
    folder.mkdir()
    for text in ("{not json", json.dumps({"study": {}, "search": {"version": -1}})):
        (folder / STUDY_CONFIG).write_text(text)
        config = {**TINY_STUDY, "data_path": mnist_path, "output_dir": str(folder)}
        code = run_command(settings_of(study_arc.CONFIG), argv_from(config, "study_arc.py"), study_arc.main)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and "cannot be read" in err and err.count("\n") == 1, err
        assert (folder / STUDY_CONFIG).read_text() == text
        lock = Study(*from_settings(study_settings(mnist_path, folder, reset_output_dir=True))).prepare()
        lock.release()
        assert json.loads((folder / STUDY_CONFIG).read_text())["study"]["train_epochs"] == TINY_STUDY["train_epochs"]


def test_stand_alone_trainings_use_the_recipes_batch_not_the_searchs(tmp_path, mnist_path):
    """The search trains its shared weights on batches of 128 (the MNIST scripts' pin); the picks
    are trained as train_arc_*.py would, on the recipe's batch (ternary: 32), unless
    --study_train_batch_size says otherwise."""
    from enas.search.study import Study, from_settings

    arc = "0 1 0 1 1 1 0 1 1 1 0 1 1 1 1 1 1 1 0 1 1 1 1 1"
    for flags, batch in (({}, 32), ({"study_train_batch_size": 64}, 64)):
        study = Study(*from_settings(study_settings(mnist_path, tmp_path / "study", batch_size=128, child_num_cells=3,
                                                    **flags)))
        assert study.search.training.batch_size == 128
        config = study.train_config(arc, 1, str(tmp_path / "run"))
        assert config.training.batch_size == batch and config.training.num_epochs == TINY_STUDY["train_epochs"]


def test_a_bad_training_batch_is_one_line(tmp_path, mnist_path, capsys):
    """A negative --study_train_batch_size: one line on stderr, exit status 2, no folder made."""
    import study_arc
    from enas.cli.command import run_command
    from enas.search.study import settings_of

    config = {**TINY_STUDY, "data_path": mnist_path, "output_dir": str(tmp_path / "study"),
              "study_train_batch_size": -4}
    code = run_command(settings_of(study_arc.CONFIG), argv_from(config, "study_arc.py"), study_arc.main)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --study_train_batch_size must be >= 0") and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()


def test_a_report_of_phases_without_times_says_so():
    """Phases recorded before they timed themselves: the report says the wall time is unknown
    instead of summing nothing to 0 h; partly timed phases are counted."""
    from enas.search.study_report import report_markdown

    base = {"dataset": "mnist", "search_epochs": 1, "final_pick_samples": 4, "groups": {}, "comparisons": {},
            "kendall_tau": {"architectures": 0, "valid": None, "valid_ci": [None, None], "test": None,
                            "test_ci": [None, None]}, "searches": [], "architectures": [],
            "study": {"search_seeds": [1], "seeds": [1], "top_k": 1, "train_epochs": 1, "size_tolerance": 0.05}}
    none = report_markdown({**base, "wall_seconds": 0, "phases": 5, "phases_timed": 0})
    assert "Wall time of the phases: not recorded" in none and "0.00 h" not in none
    some = report_markdown({**base, "wall_seconds": 5400, "phases": 5, "phases_timed": 2})
    assert "Wall time of the phases: 1.50 h (2 of the 5 phases recorded theirs)." in some


def test_train_folder_names():
    from enas.search.study import train_folder_name

    adam = {"optimizer": "adam", "lr_max": 0.02, "lr_min": 0.0, "l2_reg": 1e-4, "l2_latent": False}
    searched = {**adam, "lr_min": 5e-4}
    assert train_folder_name((3, 32), adam, (3, 32), adam) == "train"
    assert train_folder_name((6, 32), adam, (3, 32), adam) == "train-e6-b32"
    assert train_folder_name((3, 32), adam, (3, 32), searched) == "train-e3-b32-adam-lr0.02-0"
    assert train_folder_name((3, 32), searched, (3, 32), searched) == "train"


def test_a_study_whose_trainings_used_the_search_settings_trains_the_recipe_apart(tmp_path, mnist_path):
    """A study recorded before its trainings followed the recipe (no "trainings" in its record:
    they were trained with the search's lr_min 5e-4) reopens, and trains into a folder of its own
    instead of reusing those runs as the recipe's."""
    from enas.search.study import STUDY_CONFIG, Study, from_settings

    folder = tmp_path / "study"

    def reopen():
        study = Study(*from_settings(study_settings(mnist_path, folder)), echo=lambda line: None)
        study.prepare().release()
        return study

    assert reopen().train_folder == "train"
    record = json.loads((folder / STUDY_CONFIG).read_text())
    assert record["trainings"]["lr_min"] == 0.0 and record["search"]["training"]["lr_min"] == 5e-4
    assert reopen().train_folder == "train"  # reopened as recorded
    del record["trainings"]
    (folder / STUDY_CONFIG).write_text(json.dumps(record))
    assert reopen().train_folder == "train-e1-b32-adam-lr0.02-0"


def test_a_phase_records_the_earlier_sittings_of_a_resumed_run(tmp_path):
    """A phase's recorded seconds are this sitting's wall time plus the run's ``resumed_seconds``
    (its sittings before a kill), which is folded in, not stored."""
    from enas.search.study import Study

    study = Study.__new__(Study)  # only what phase() uses
    study.say, study.phase_seconds = (lambda line: None), []
    result = study.phase("Phase 5/6: a training", str(tmp_path / "run"),
                         lambda: ({"resumed_seconds": 3600.0, "test": 0.5}, "done"))
    recorded = json.loads((tmp_path / "run" / "result.json").read_text())
    assert recorded == result and "resumed_seconds" not in recorded
    assert 3600.0 <= recorded["seconds"] < 3660.0 and study.phase_seconds == [recorded["seconds"]]
    fresh = study.phase("Phase 5/6: another", str(tmp_path / "fresh"), lambda: ({"test": 0.5}, "done"))
    assert 0.0 <= fresh["seconds"] < 60.0
