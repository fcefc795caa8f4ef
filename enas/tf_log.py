"""Keep TensorFlow's C++ start-up chatter off the user's stderr.

TensorFlow's C++ core writes banners straight to file descriptor 2, and some of them ignore
``TF_CPP_MIN_LOG_LEVEL`` (on CPUs where oneDNN is on, ``port.cc`` prints "oneDNN custom
operations are on ..." after absl's "WARNING: All log messages before absl::InitializeLog() ..."
whatever the level). A user error must still be exactly one line on stderr, so the scripts
call :func:`filter_cpp_logs` first: fd 2 is routed through a pipe whose reader drops lines in
TensorFlow/absl's log formats and forwards everything else unchanged, while Python's
``sys.stderr`` keeps writing to the real stderr directly.

A ``TF_CPP_MIN_LOG_LEVEL`` the user set is honoured for every C++ line, including those
TensorFlow itself does not filter: lines of severity >= the level are shown (0 INFO, 1 WARNING,
2 ERROR, 3 FATAL), the rest are dropped. Unset, only FATAL lines get through.
"""

import atexit
import os
import re
import sys
import threading

import enas

SEVERITIES = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
DEFAULT_THRESHOLD = 3  # the user did not set TF_CPP_MIN_LOG_LEVEL: FATAL only

_PATTERNS = (  # (regex, severity or None to read the letter of group 1)
    (re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"), 1),
    (re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w./-]+:\d+\] "), None),  # absl
    (re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) [\w./-]+:\d+\] "), None),  # TF < 2.16
    # the second line of cpu_feature_guard.cc's INFO message
    (re.compile(rb"^To enable the following instructions: .*rebuild TensorFlow with the appropriate"), 0),
    (re.compile(rb"^INFO: Created TensorFlow Lite (XNNPACK )?delegate for CPU\.$"), 0),  # the TFLite interpreter
)

_installed = False


def cpp_log_severity(line):
    """Severity (0 INFO .. 3 FATAL) of one line (bytes) of TensorFlow/absl C++ logging, or None
    when the line is not a log line."""
    for pattern, severity in _PATTERNS:
        match = pattern.match(line)
        if match:
            return SEVERITIES[match.group(1)] if severity is None else severity
    return None


def threshold(user_level=None):
    """Lowest severity shown: the user's ``TF_CPP_MIN_LOG_LEVEL`` (a digit), else FATAL only."""
    user_level = enas.USER_TF_CPP_MIN_LOG_LEVEL if user_level is None else user_level
    try:
        return min(max(int(user_level), 0), 3)
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


def keep_line(line, minimum):
    severity = cpp_log_severity(line)
    return severity is None or severity >= minimum


def filter_cpp_logs():
    """Route fd 2 through a filter that drops TensorFlow's C++ log lines (see module docstring).

    Idempotent; returns True when the filter is (already) installed.
    """
    global _installed
    if _installed:
        return True
    minimum = threshold()
    if minimum == 0:  # the user asked for everything
        return False
    try:
        sys.stderr.flush()
        real_stderr = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
    except OSError:
        return False
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(real_stderr, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                      closefd=False)

    def forward():
        with open(read_end, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if keep_line(line, minimum))
                if kept:
                    os.write(real_stderr, kept)
            if pending and keep_line(pending, minimum):
                os.write(real_stderr, pending)

    reader = threading.Thread(target=forward, name="tf-log-filter", daemon=True)
    reader.start()

    def restore():
        try:
            os.dup2(real_stderr, 2)  # closes the pipe's last write end: the reader drains and stops
        except OSError:
            return
        reader.join(timeout=2.0)

    atexit.register(restore)
    _installed = True
    return True
