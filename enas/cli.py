"""Entry point of the four ENAS scripts: ``main(CONFIG, dataset, mode)``.

A :class:`enas.errors.UserError` (bad flag, bad architecture, missing data, unreadable
checkpoint ...) prints ``error: <message>`` on stderr and exits with its status (2), no
traceback (see :func:`enas.command.run_command`).
"""

import sys

from enas.command import run_command

MODES = ("train", "search")


def main(config, dataset, mode, argv=None):
    """Run ``mode`` ("train" or "search") on ``dataset`` with ``config`` overridden by flags."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")

    def run(settings):
        from enas.validate import check_settings  # no TensorFlow yet: bad input fails fast

        check_settings(settings, mode)
        if mode == "train":
            from enas import train_fixed

            train_fixed.run(settings, dataset)
        else:
            from enas import search

            search.run(settings, dataset)

    script_doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    return run_command(config, argv, run, description=script_doc or f"{mode} ({dataset})")
