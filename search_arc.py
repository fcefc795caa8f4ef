"""ENAS micro architecture search over quantized networks on your own data.

    python search_arc.py --data_path my_images/ >> search.txt        # one sub-folder per class
    python search_arc.py --data_path my_data.npz --image_size 48,48    # x_train, y_train, x_test, y_test

--data_path is read as what it holds (--dataset auto): a folder of images (PNG, JPEG, BMP, GIF)
with one sub-folder per class, optionally split into train/, test/ (and valid/) folders; an .npz
file; or the MNIST / CIFAR-10 folder. Images of any size and channel count, two or more classes.
Then train the best architecture it prints:  python train_arc.py --data_path my_images/ -fixed_arc "..."
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (output in ./output-search,
# 10% of the training images held out per class for the reward); edit it, or use flags (--help).
CONFIG = dict(
    dataset="auto",  # auto | folder | npz | mnist | cifar10
    log_every=25,
    # shared child (search space): small, so a default search fits 2 CPU cores
    child_num_layers=0,  # two reduction cells only; the stem's stride follows the image size
    child_num_cells=3,
    child_out_filters=8,
    child_lr_min=5e-4,
    batch_size=128,  # the shared weights' training batch (the reward has its own: --reward_batch_size)
)


def cli():
    """The command `search_arc` (installed by pip) and `python search_arc.py`."""
    return script.main(CONFIG, dataset=None, mode="search")


if __name__ == "__main__":
    raise SystemExit(cli())
