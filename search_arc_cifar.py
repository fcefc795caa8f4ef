"""ENAS micro architecture search over quantized networks on CIFAR-10 (ENAS micro-search settings).

    python search_arc_cifar.py --data_path ./data/cifar10 >> cifar_search.txt

Then train the best architecture it prints:  python train_arc_cifar.py -fixed_arc "..."
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (data in ./data/<dataset>, output
# in ./output-<dataset>-<arc|search>); edit it, or override any setting with a flag (--help).
CONFIG = dict(
    batch_size=160,
    num_epochs=150,
    # shared child (search space): ENAS micro search, 6 layers + 2 reductions, B = 5, 20 filters
    child_keep_prob=0.9,
    child_use_aux_heads=True,
    child_lr_min=5e-4,
    child_augment=True,
)


def cli():
    """The command `search_arc_cifar` (installed by pip) and `python search_arc_cifar.py`."""
    return script.main(CONFIG, dataset="cifar10", mode="search")


if __name__ == "__main__":
    raise SystemExit(cli())
