"""Draw the normal and reduction cells of an ENAS micro architecture as two PNG diagrams.

    python draw_arc.py -fixed_arc "0 2 1 4 1 3 0 1 ..." --output_prefix cells
    # -> cells_normal.png, cells_reduce.png

Edit CONFIG below to change the defaults; any key is also a flag (--help lists them).
"""

from enas.cli.command import run_command

CONFIG = dict(
    child_fixed_arc="",  # normal cell then reduction cell, 4 integers per node
    child_num_cells=0,  # nodes per cell (B); 0: infer from the number of integers
    output_prefix="cells",
)

FLAG_HELP = {
    "child_num_cells": "Nodes per cell (B); 0 infers it from the number of integers (8*B).",
    "output_prefix": "Write <output_prefix>_normal.png and <output_prefix>_reduce.png.",
}


def main(settings):
    from enas.space.arc import parse_arc
    from enas.viz.draw import draw_arc

    arc = parse_arc(settings["child_fixed_arc"], settings["child_num_cells"] or None)
    for path in draw_arc(arc, settings["output_prefix"]):
        print(path)


def cli():
    """The command `draw_arc` (installed by pip) and `python draw_arc.py`."""
    return run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
