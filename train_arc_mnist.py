"""Train one quantized ENAS micro architecture on MNIST from scratch.

    python train_arc_mnist.py -fixed_arc "0 2 1 4 ..." --data_path ../shared/data/mnist >> mnist_arc.txt
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (data in ./data/<dataset>, output
# in ./output-<dataset>-<arc|search>); edit it, or override any setting with a flag (--help).
CONFIG = dict(
    num_epochs=30,  # one cosine period over the 30 with the recipes (the enas recipe: two, 10 + 20 epochs)
    # architecture: normal cell then reduction cell, 4 integers per node (x_id x_op y_id y_op)
    child_fixed_arc="1 2 0 0 1 1 0 1 1 1 0 0 1 1 1 3 0 1 1 0 1 4 1 1 2 0 1 3 1 3 1 2 1 0 1 0 3 1 1 0",
    child_out_filters=16,
    child_keep_prob=0.9,
    child_use_aux_heads=True,
    # e.g. child_quantization="binary",  (binary | ternary, the default | quantized with child_bits | float)
)


def cli():
    """The command `train_arc_mnist` (installed by pip) and `python train_arc_mnist.py`."""
    return script.main(CONFIG, dataset="mnist", mode="train")


if __name__ == "__main__":
    raise SystemExit(cli())
