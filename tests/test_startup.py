"""What a user sees first: bad input reported before TensorFlow is imported, exactly one line on
stderr even on a machine whose TensorFlow prints C++ banners, while TensorFlow's own C++ ERROR
lines still reach the user; and importing the library leaves the environment alone.

``TF_ENABLE_ONEDNN_OPTS=1`` makes TensorFlow print its oneDNN banner through absl on any x86
machine, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: the tests use it to be a "fresh machine".
"""

import gzip
import os
import subprocess
import sys

import pytest

from enas.cli import tf_log
from tests.conftest import REPO, argv_from

FRESH_MACHINE = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
FRESH_MACHINE.update(TF_ENABLE_ONEDNN_OPTS="1", PYTHONPATH=str(REPO))

BANNER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796219116.758422    2170 port.cc:153] oneDNN custom operations are on. You may "
    b"see slightly different numerical results",
    b"I0000 00:00:1796219096.282752    2148 cpu_feature_guard.cc:227] This TensorFlow binary is "
    b"optimized to use available CPU instructions in performance-critical operations.",
    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with "
    b"the appropriate compiler flags.",
    b"2023-01-01 12:00:00.123456: I tensorflow/core/platform/cpu_feature_guard.cc:182] This ...",
    b"E0000 00:00:1796219096.282752    2148 cuda_dnn.cc:8310] Unable to register cuDNN factory",
]


def test_cpp_log_lines_are_recognised_with_their_severity():
    assert [tf_log.cpp_log_severity(line) for line in BANNER] == [1, 0, 0, 0, 0, 2]
    for line in (b"error: bad architecture: ...", b"epoch = 0     ch_step = 50", b"Traceback (most recent"):
        assert tf_log.cpp_log_severity(line) is None


@pytest.mark.parametrize("user_level,shown", [(None, [5]), ("3", [5]), ("2", [5]), ("1", [0, 5]),
                                              ("0", [0, 1, 2, 3, 4, 5])])
def test_user_log_level_is_honoured_and_errors_always_shown(user_level, shown):
    minimum = tf_log.threshold(user_level if user_level is not None else "unset")
    assert [i for i, line in enumerate(BANNER) if tf_log.keep_line(line, minimum)] == shown
    assert tf_log.keep_line(b"error: something the user must read", minimum)


def _script(args, env=FRESH_MACHINE, script="train_arc_mnist.py"):
    return subprocess.run([sys.executable, str(REPO / script)] + list(args), capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_malformed_arc_is_reported_before_tensorflow_is_imported(tmp_path):
    code = (
        "import sys\n"
        "sys.argv = ['train_arc_mnist.py', '-fixed_arc', '0 1 2', '--output_dir', sys.argv[1]]\n"
        "import train_arc_mnist\n"
        "from enas.cli import script\n"
        "status = script.main(train_arc_mnist.CONFIG, 'mnist', 'train')\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True,
                            text=True, env=FRESH_MACHINE, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: bad architecture") and result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def _without_tensorflow(script, args):
    """Run ``script`` with ``args`` as ``__main__`` in a fresh interpreter that exits 97 if the
    script imported TensorFlow (validation that fails within a second must not wait for it)."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{script!r}] + sys.argv[1:]\n"
            "try:\n"
            f"    runpy.run_path({str(REPO / script)!r}, run_name='__main__')\n"
            "finally:\n"
            "    if 'tensorflow' in sys.modules:\n"
            "        sys.stderr.write('TensorFlow was imported\\n')\n"
            "        sys.exit(97)\n")
    return subprocess.run([sys.executable, "-c", code] + list(args), capture_output=True, text=True,
                          env=FRESH_MACHINE, cwd=REPO, timeout=300)


def test_malformed_arc_from_the_real_script_is_one_line_without_tensorflow(tmp_path):
    result = _without_tensorflow("train_arc_mnist.py", ["-fixed_arc", "0 1 2", "--output_dir", str(tmp_path / "run")])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: bad architecture") and result.stderr.count("\n") == 1


def test_error_after_tensorflow_is_one_line_on_a_fresh_machine(train_config, tmp_path):
    """Corrupt data is found after TensorFlow started (and printed its banners to fd 2)."""
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    config = {**train_config, "data_path": str(folder)}
    result = _script(argv_from(config)[1:])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "idx" in result.stderr
    assert result.stdout == ""


def test_search_script_bad_flag_is_one_line(tmp_path):
    result = _script(["--controller_type=genetic", "--output_dir", str(tmp_path / "run")],
                        script="search_arc_mnist.py")
    assert result.returncode == 2
    assert result.stderr == "error: unknown --controller_type 'genetic': use one of micro, random\n"


def test_study_errors_are_one_line_and_leave_no_folder(tmp_path):
    result = _without_tensorflow("study_arc.py", ["--study_seeds=1,x", "--output_dir", str(tmp_path / "s")])
    assert result.returncode == 2, result.stderr
    assert result.stderr == "error: bad --study_seeds '1,x': give seeds such as '1,2'\n"
    # Missing data is found (after TensorFlow started) before the study folder is made.
    result = _script(["--data_path", str(tmp_path / "none"), "--output_dir", str(tmp_path / "s")],
                        script="study_arc.py")
    assert result.returncode == 2 and result.stderr.startswith("error: MNIST not found")
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "s").exists()


FORCED_ERROR = """
from enas.cli.command import run_command


def log_from_tensorflow(settings):
    import tensorflow as tf

    tf.print("forced-error-line", output_stream=tf.compat.v1.logging.error)  # C++ LOG(ERROR)
    tf.print("forced-warning-line", output_stream=tf.compat.v1.logging.warning)  # C++ LOG(WARNING)
    print("done", flush=True)


raise SystemExit(run_command({}, None, log_from_tensorflow))
"""


def test_tensorflow_cpp_error_lines_reach_stderr_through_the_scripts_filter(tmp_path):
    """The scripts' entry point hides TensorFlow's C++ INFO/WARNING lines but passes its ERROR
    lines (a CUDA or out-of-memory failure must be visible)."""
    script = tmp_path / "forced_error.py"
    script.write_text(FORCED_ERROR)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=FRESH_MACHINE,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    errors = [line for line in result.stderr.splitlines() if "forced-error-line" in line]
    assert len(errors) == 1 and tf_log.cpp_log_severity(errors[0].encode()) == tf_log.ERROR, result.stderr
    assert "forced-warning-line" not in result.stderr and "oneDNN" not in result.stderr, result.stderr


def test_importing_the_library_leaves_the_environment_alone():
    """``import enas`` and every module of the library set no environment variable (TensorFlow's
    defaults are the scripts' entry point's)."""
    env = {k: v for k, v in FRESH_MACHINE.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    quick = subprocess.run([sys.executable, "-c", "import enas, os; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert quick.stdout == "None\n", quick.stderr
    code = ("import os, pkgutil, importlib, enas\n"
            "import tensorflow, keras, matplotlib  # they set variables of their own at import\n"
            "before = dict(os.environ)\n"
            "names = [m.name for m in pkgutil.walk_packages(enas.__path__, 'enas.')]\n"
            "for name in names:\n"
            "    importlib.import_module(name)\n"
            "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
            "print(len(names), sorted(changed))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=300)
    count, changed = result.stdout.split(" ", 1)
    assert result.returncode == 0 and int(count) > 40, result.stderr[-2000:]
    assert changed.strip() == "[]"
