"""Entry point of the four ENAS scripts: ``main(CONFIG, dataset, mode)``.

A script's CONFIG block holds only what it changes from the library's defaults
(:mod:`enas.config.run_config`); every setting of the mode is a flag. ``--from_config <folder>/config.json``
starts from a run folder's recorded configuration instead (flags given next to it still
override it), so a folder alone reproduces its run.

A :class:`enas.errors.UserError` (bad flag, bad architecture, missing data, unreadable
checkpoint ...) prints ``error: <message>`` on stderr and exits with its status (2), no
traceback (see :func:`enas.cli.command.run_command`).
"""

import sys

from enas.cli.command import run_command
from enas.config.run_config import MODES, RunConfig, default_settings, read_config_file
from enas.errors import ConfigError

FROM_CONFIG = "from_config"


def settings_of(config, mode, dataset):
    """The flat settings of a script: the defaults of ``mode`` on ``dataset`` updated by its
    CONFIG block, plus the ``--from_config`` flag."""
    return {**default_settings(mode, config, dataset), FROM_CONFIG: ""}


def main(config, dataset, mode, argv=None):
    """Run ``mode`` ("train" or "search") on ``dataset`` with ``config`` (a script's CONFIG
    block) overridden by the flags in ``argv``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    try:
        base = settings_of(config, mode, dataset)
    except ConfigError as e:  # a CONFIG block naming no setting
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.exit_code

    def rebase(settings):
        """The settings recorded in ``--from_config``, if given (flags are applied over them)."""
        path = settings[FROM_CONFIG]
        if not path:
            return None
        recorded, recorded_mode, recorded_dataset = read_config_file(path)
        if (recorded_mode, recorded_dataset) != (mode, dataset):
            raise ConfigError(f"--from_config {path!r} is a {recorded_mode} run on {recorded_dataset}; "
                              f"this script runs {mode} on {dataset}")
        return {**recorded, FROM_CONFIG: path}

    def run(settings):
        # No TensorFlow yet: a bad flag or architecture fails within a second.
        run_config = RunConfig.from_settings(settings, mode, dataset)
        if mode == "train":
            from enas.run import train_fixed

            train_fixed.run(run_config)
        else:
            from enas.search import search_task

            search_task.run(run_config)

    script_doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    return run_command(base, argv, run, description=script_doc or f"{mode} ({dataset})", rebase=rebase)
