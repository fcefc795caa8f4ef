"""Entry points of the four scripts: flags -> settings -> run, with user errors as one line.

A :class:`enas.errors.UserError` (bad flag, bad architecture, missing data, unreadable
checkpoint ...) prints ``error: <message>`` on stderr and exits with its status (2), no
traceback.
"""

import sys

from enas import flags
from enas.errors import UserError


def main(config, dataset, mode, argv=None):
    """Run ``mode`` ("train" or "search") on ``dataset`` with ``config`` overridden by flags."""
    argv = list(sys.argv if argv is None else argv)
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv[1:]):
        print(flags.help_text(config))
        return 0
    try:
        settings = flags.parse(config, argv)
        if mode == "train":
            from enas import train_fixed

            train_fixed.run(settings, dataset)
        elif mode == "search":
            from enas import search

            search.run(settings, dataset)
        else:
            raise ValueError(f"unknown mode {mode!r}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0
