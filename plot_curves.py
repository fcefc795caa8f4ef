"""Plot the training (and search) curves of a run from its TensorBoard scalars.

    python plot_curves.py --output_dir ./output-mnist-arc
    # -> ./output-mnist-arc/curves.png (+ search_curves.png for a search run)

Edit CONFIG below to change the defaults; any key is also a flag (--help lists them).
"""

from enas.cli.command import run_command

CONFIG = dict(
    output_dir="./output-mnist-arc",
)

FLAG_HELP = {
    "output_dir": "Folder of the run (its --output_dir); the PNGs are written there.",
}


def main(settings):
    from enas.viz.plots import plot_run

    for path in plot_run(settings["output_dir"]):
        print(path)


def cli():
    """The command `plot_curves` (installed by pip) and `python plot_curves.py`."""
    return run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
