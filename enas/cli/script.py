"""Entry point of the run scripts: ``main(CONFIG, dataset, mode)``.

``dataset="mnist"`` / ``"cifar10"``: the original's four scripts (presets). ``dataset=None``: the
generic ``search_arc.py`` / ``train_arc.py``, whose ``--dataset`` flag (default ``auto``: what
``--data_path`` holds, :func:`enas.data.formats.detect_source`) picks any source: an image
folder, an ``.npz`` file, MNIST or CIFAR-10.

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
from enas.config.run_config import DATASETS, MODES, RunConfig, default_settings, read_config_file
from enas.errors import ConfigError

FROM_CONFIG = "from_config"
DATASET = "dataset"
GENERIC_DEFAULTS = {"data_path": "./data", "num_valid": 0.1}


def settings_of(config, mode, dataset):
    """The flat settings of a script: the defaults of ``mode`` on ``dataset`` updated by its
    CONFIG block, plus the ``--from_config`` flag (and ``--dataset`` for a generic script,
    ``dataset=None``)."""
    if dataset is not None:
        return {**default_settings(mode, config, dataset), FROM_CONFIG: ""}
    config = dict(config or {})
    chosen = config.pop(DATASET, "auto")
    base = default_settings(mode, {"output_dir": f"./output-{'arc' if mode == 'train' else 'search'}",
                                   **GENERIC_DEFAULTS, **config})
    return {DATASET: chosen, **base, FROM_CONFIG: ""}


def resolve_dataset(settings):
    """The data source of a generic script's settings: ``--dataset``, or with ``auto`` what
    ``--data_path`` holds. Raises a one-line DataError / ConfigError."""
    from enas.data.formats import detect_source

    chosen = settings[DATASET]
    if chosen == "auto":
        return detect_source(settings["data_path"])
    if chosen not in DATASETS or chosen == "arrays":
        raise ConfigError(f"unknown --dataset {chosen!r}: use auto, mnist, cifar10, npz or folder")
    return chosen


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
        if recorded_mode != mode or (dataset is not None and recorded_dataset != dataset):
            raise ConfigError(f"--from_config {path!r} is a {recorded_mode} run on {recorded_dataset}; "
                              f"this script runs {mode} on {dataset or 'any dataset'}")
        if dataset is None:
            return {DATASET: recorded_dataset, **recorded, FROM_CONFIG: path}
        return {**recorded, FROM_CONFIG: path}

    def run(settings):
        # No TensorFlow yet: a bad flag or architecture fails within a second.
        source = dataset or resolve_dataset(settings)
        run_config = RunConfig.from_settings({k: v for k, v in settings.items() if k != DATASET}, mode, source)
        if mode == "train":
            from enas.run import train_fixed

            final_lines = None
            if run_config.output.micro_memory:
                from enas.deploy.micro_table import memory_lines as final_lines
            train_fixed.run(run_config, final_lines=final_lines)
        else:
            from enas.search import search_task

            micro_builder = None
            if run_config.cost.needs_micro:
                from enas.deploy.micro_table import MicroTable

                def micro_builder(child_config, image_shape):
                    print("Fitting TensorFlow Lite Micro's RAM and flash tables (converting random children to int8; "
                          "about a minute)", flush=True)
                    return MicroTable.build(child_config, image_shape)

            search_task.run(run_config, micro_builder=micro_builder)

    script_doc = getattr(sys.modules.get("__main__"), "__doc__", None)
    return run_command(base, argv, run, description=script_doc or f"{mode} ({dataset})", rebase=rebase)
