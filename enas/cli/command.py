"""The entry point of every script: a CONFIG dict, flags, one function, user errors as one line.

:func:`run_command` runs any function of the settings: ``--help`` prints the flags, the flags in
``argv`` override ``config``
(:func:`enas.cli.flags.parse`), and a :class:`~enas.errors.UserError` prints ``error: <message>`` on
stderr and returns its exit status (2) instead of a traceback.
"""

from __future__ import annotations

import sys

from enas.cli import flags, tf_log
from enas.errors import UserError

HELP_FLAGS = ("-h", "--help", "-help", "--helpfull")


def help_text(config, flag_help=None, description=None) -> str:
    """The flags' help; ``flag_help`` gives (or overrides) the help of some flags."""
    text = flags.help_text(config, flag_help)
    if description:
        text = description.strip() + "\n" + text
    return text


def run_command(config, argv, fn, *, flag_help=None, description=None, rebase=None) -> int:
    """Run ``fn(settings)`` with ``config`` overridden by the flags in ``argv`` (argv[0]: program).

    ``rebase(settings)`` may return other base settings (e.g. read from a file a flag names);
    the flags are then applied over those instead.

    Returns the exit status: 0 (or ``fn``'s int result), a UserError's status (2) after one
    ``error: ...`` line on stderr, or 130 on Ctrl-C. With ``argv=None`` (a script's own command
    line) TensorFlow's environment defaults are set and its C++ INFO/WARNING lines filtered off
    stderr first (:mod:`enas.cli.tf_log`), and the process ends here with that status
    (:func:`exit_now`) instead of returning.
    """
    if argv is None:  # a real command line: TensorFlow's defaults, its C++ banners off stderr
        tf_log.set_tensorflow_defaults()
        tf_log.filter_cpp_logs()
        exit_now(_run(config, sys.argv, fn, flag_help, description, rebase))
    return _run(config, argv, fn, flag_help, description, rebase)


def exit_now(status):
    """End the process with ``status``, skipping the interpreter's teardown: stdout and stderr are
    flushed and the ``atexit`` handlers run (the C++ log filter drains), then ``os._exit``. A
    finished run needs nothing from the teardown, which frees TensorFlow's graphs one by one: 2 s
    of a 20 s MNIST search on 2 CPU cores (measured)."""
    import atexit
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    atexit._run_exitfuncs()
    os._exit(status)


def _run(config, argv, fn, flag_help, description, rebase) -> int:
    argv = list(argv)
    if any(a in HELP_FLAGS for a in argv[1:]):
        print(help_text(config, flag_help, description))
        return 0
    try:
        settings = flags.parse(config, argv)
        new_base = rebase(settings) if rebase is not None else None
        if new_base is not None:
            settings = flags.parse(new_base, argv)
        result = fn(settings)
    except UserError as e:
        message = " ".join(str(e).split())
        print(f"error: {message}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerunning the same command resumes from the last completed epoch "
              "(if one was saved)", file=sys.stderr, flush=True)
        return 130
    return int(result) if isinstance(result, int) and not isinstance(result, bool) else 0
