"""Train one quantized ENAS micro architecture on CIFAR-10 from scratch (ENAS final settings).

    python train_arc_cifar.py -fixed_arc "0 2 0 0 ..." --data_path ./data/cifar10 >> cifar_arc.txt
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (data in ./data/<dataset>, output
# in ./output-<dataset>-<arc|search>); edit it, or override any setting with a flag (--help).
CONFIG = dict(
    # num_valid=0 trains on all 50,000 images, as ENAS's final run
    batch_size=144,
    num_epochs=630,
    # architecture: the ENAS paper's final CIFAR-10 cell
    child_fixed_arc="0 2 0 0 0 4 0 1 0 4 1 1 1 0 0 1 0 2 1 1 1 0 1 0 0 3 0 2 1 1 3 1 1 0 0 4 0 3 1 1",
    child_num_layers=15,
    child_out_filters=36,
    child_keep_prob=0.8,
    child_drop_path_keep_prob=0.6,
    child_use_aux_heads=True,
    child_l2_reg=2e-4,
    child_augment=True,
    # child_cutout_size=16 for ENAS's cutout result
)


def cli():
    """The command `train_arc_cifar` (installed by pip) and `python train_arc_cifar.py`."""
    return script.main(CONFIG, dataset="cifar10", mode="train")


if __name__ == "__main__":
    raise SystemExit(cli())
