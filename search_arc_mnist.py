"""ENAS micro architecture search over quantized networks on MNIST.

    python search_arc_mnist.py --data_path ../shared/data/mnist >> mnist_search.txt

Then train the best architecture it prints:  python train_arc_mnist.py -fixed_arc "..."
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (data in ./data/<dataset>, output
# in ./output-<dataset>-<arc|search>); edit it, or override any setting with a flag (--help).
CONFIG = dict(
    log_every=25,
    # shared child (search space): small, so a default search fits 2 CPU cores
    child_num_layers=0,  # two reduction cells only (28 -> 14 -> 7)
    child_num_cells=3,
    child_out_filters=8,
    child_lr_min=5e-4,
    # the shared weights train on batches of 128 (the reward has its own: --reward_batch_size);
    # the recipes' smaller batches (32 for ternary and k-bit) were tuned on fixed arcs
    batch_size=128,
    # e.g. controller_type="random",  (micro: ENAS's REINFORCE controller, the default | random)
)


def cli():
    """The command `search_arc_mnist` (installed by pip) and `python search_arc_mnist.py`."""
    return script.main(CONFIG, dataset="mnist", mode="search")


if __name__ == "__main__":
    raise SystemExit(cli())
