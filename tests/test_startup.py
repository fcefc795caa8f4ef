"""What a user sees first: bad input reported before TensorFlow is imported (within a second),
and exactly one line on stderr even on a machine whose TensorFlow prints C++ banners.

``TF_ENABLE_ONEDNN_OPTS=1`` makes TensorFlow print its oneDNN banner through absl on any x86
machine, whatever ``TF_CPP_MIN_LOG_LEVEL`` says: the tests use it to be a "fresh machine".
"""

import gzip
import os
import subprocess
import sys
import time

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


@pytest.mark.parametrize("user_level,shown", [(None, []), ("2", [5]), ("1", [0, 5]), ("0", [0, 1, 2, 3, 4, 5])])
def test_user_log_level_is_honoured(user_level, shown):
    minimum = tf_log.threshold(user_level if user_level is not None else "unset")
    assert [i for i, line in enumerate(BANNER) if tf_log.keep_line(line, minimum)] == shown
    assert tf_log.keep_line(b"error: something the user must read", minimum)


def _script(args, env=FRESH_MACHINE, script="train_arc_mnist.py"):
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / script)] + list(args), capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=300)
    return result, time.perf_counter() - start


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


def test_malformed_arc_fails_within_a_second_or_two(tmp_path):
    result, seconds = _script(["-fixed_arc", "0 1 2", "--output_dir", str(tmp_path / "run")])
    assert result.returncode == 2
    assert result.stderr.startswith("error: bad architecture") and result.stderr.count("\n") == 1
    assert seconds < 3.0, seconds  # ~0.5 s idle; generous for a loaded CI machine


def test_error_after_tensorflow_is_one_line_on_a_fresh_machine(train_config, tmp_path):
    """Corrupt data is found after TensorFlow started (and printed its banners to fd 2)."""
    folder = tmp_path / "corrupt"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (folder / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03garbage"))
    config = {**train_config, "data_path": str(folder)}
    result, _ = _script(argv_from(config)[1:])
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "idx" in result.stderr
    assert result.stdout == ""


def test_search_script_bad_flag_is_one_line(tmp_path):
    result, _ = _script(["--controller_type=genetic", "--output_dir", str(tmp_path / "run")],
                        script="search_arc_mnist.py")
    assert result.returncode == 2
    assert result.stderr == "error: unknown --controller_type 'genetic': use one of micro, random\n"


def test_study_errors_are_one_line_and_leave_no_folder(tmp_path):
    result, seconds = _script(["--study_seeds=1,x", "--output_dir", str(tmp_path / "s")], script="study_arc.py")
    assert result.returncode == 2 and seconds < 3.0, (result.stderr, seconds)
    assert result.stderr == "error: bad --study_seeds '1,x': give seeds such as '1,2'\n"
    # Missing data is found (after TensorFlow started) before the study folder is made.
    result, _ = _script(["--data_path", str(tmp_path / "none"), "--output_dir", str(tmp_path / "s")],
                        script="study_arc.py")
    assert result.returncode == 2 and result.stderr.startswith("error: MNIST not found")
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "s").exists()
