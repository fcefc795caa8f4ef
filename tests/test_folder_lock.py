"""One process per run folder: a second run on a folder a live run holds is refused with one
line naming the holder, touches nothing, and the first run finishes unharmed; a killed run's lock
does not block its rerun (tests/test_cli_errors.py::test_kill_mid_epoch_then_resume)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import study_arc
import train_arc_mnist
from enas.cli.script import main as script_main
from enas.errors import UserError
from enas.run.folder_lock import LOCK_FILE, FolderInUseError, FolderLock, clear_folder
from tests.conftest import REPO, argv_from


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path):
    first = FolderLock(str(tmp_path)).acquire()
    holder = (tmp_path / LOCK_FILE).read_text()
    assert holder.startswith(f"process {os.getpid()} on ")
    with pytest.raises(FolderInUseError) as info:
        FolderLock(str(tmp_path)).acquire()
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    assert f"is in use by process {os.getpid()} on " in str(info.value) and "--output_dir" in str(info.value)
    assert (tmp_path / LOCK_FILE).read_text() == holder  # the refused one changed nothing
    first.release()
    assert not (tmp_path / LOCK_FILE).exists()  # a run that ends deletes its lock file
    with FolderLock(str(tmp_path)) as again:
        assert again.held and (tmp_path / LOCK_FILE).exists()
    assert not again.held and not (tmp_path / LOCK_FILE).exists()


def test_clear_folder_keeps_only_the_lock(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_text("x")
    (tmp_path / "config.json").write_text("{}")
    with FolderLock(str(tmp_path)):
        clear_folder(str(tmp_path))
        assert os.listdir(tmp_path) == [LOCK_FILE]


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(Path(folder).rglob("*"))}


def _start_and_pause(command, folder, ready):
    """Start ``command``; once ``ready(folder)`` holds, stop the process (SIGSTOP: it keeps its lock
    and writes nothing more) and return it."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    deadline = time.time() + 240
    while not ready(folder):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the first run never got going: {proc.communicate()[1][-1500:]}")
        time.sleep(0.1)
    proc.send_signal(signal.SIGSTOP)
    return proc


def test_second_run_on_a_live_runs_folder_is_one_line_and_the_first_finishes(train_config, capsys):
    folder = Path(train_config["output_dir"])
    config = {**train_config, "num_epochs": 2}
    first = _start_and_pause(
        [sys.executable, str(REPO / "train_arc_mnist.py")] + argv_from(config)[1:], folder,
        lambda f: (f / "stdout").exists() and "epoch = 0 " in (f / "stdout").read_text())
    try:
        before = _snapshot(folder)
        for extra in ([], ["--reset_output_dir"]):  # resetting a live run's folder is refused too
            code = script_main(train_arc_mnist.CONFIG, "mnist", "train", argv_from(config) + extra)
            out, err = capsys.readouterr()
            assert code == 2 and out == "", out
            assert err.count("\n") == 1 and err.startswith(f"error: {str(folder)!r} is in use by process {first.pid} ")
        assert _snapshot(folder) == before  # nothing written, nothing deleted
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err[-2000:]
    assert "Epoch 2: Eval" in out and "Final test_accuracy" in out and (folder / "ckpt-2.index").exists()
    assert not (folder / LOCK_FILE).exists()
    # Once the first has ended, the folder is free again: the same command resumes (nothing to do).
    assert script_main(train_arc_mnist.CONFIG, "mnist", "train", argv_from(config)) == 0
    assert "Resuming from" in capsys.readouterr().out


def test_second_study_on_a_live_study_folder_is_refused(tmp_path, mnist_path):
    folder = tmp_path / "study"
    folder.mkdir()
    lock = FolderLock(str(folder)).acquire()  # a live study holds it
    settings = {**study_arc.CONFIG, "data_path": mnist_path, "output_dir": str(folder), "max_train_examples": 300,
                "max_test_examples": 100, "num_valid": 100}
    result = subprocess.run([sys.executable, str(REPO / "study_arc.py")] + argv_from(settings)[1:],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                            timeout=240)
    assert os.listdir(folder) == [LOCK_FILE]  # the refused study wrote nothing
    lock.release()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {str(folder)!r} is in use by process {os.getpid()} on ")
