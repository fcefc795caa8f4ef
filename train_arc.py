"""Train one quantized ENAS micro architecture from scratch on your own data.

    python train_arc.py --data_path my_images/ -fixed_arc "0 2 1 4 ..." >> arc.txt
    python export_arc.py --output_dir ./output-arc --packed "" --tflite model.tflite --int8 --tflite_io uint8

--data_path: a folder of images with one sub-folder per class (optionally train/, test/, valid/),
an .npz file (x_train, y_train, x_test, y_test), or the MNIST / CIFAR-10 folder (--dataset auto
tells them apart). The trained network takes raw pixels: its first layer normalises them with the
training split's per-channel mean and std, so its exports do too.
"""

from enas.cli import script

# What this script changes from the defaults of enas/config/run_config.py (output in ./output-arc,
# 10% of the training images held out per class); edit it, or override any setting with a flag (--help).
CONFIG = dict(
    dataset="auto",  # auto | folder | npz | mnist | cifar10
    num_epochs=30,
    # architecture: normal cell then reduction cell, 4 integers per node (x_id x_op y_id y_op)
    child_fixed_arc="1 2 0 0 1 1 0 1 1 1 0 0 1 1 1 3 0 1 1 0 1 4 1 1 2 0 1 3 1 3 1 2 1 0 1 0 3 1 1 0",
    child_out_filters=16,
    child_keep_prob=0.9,
    child_use_aux_heads=True,
    # e.g. image_size="96,96", color_mode="rgb", child_quantization="binary", child_augment=True
)


def cli():
    """The command `train_arc` (installed by pip) and `python train_arc.py`."""
    return script.main(CONFIG, dataset=None, mode="train")


if __name__ == "__main__":
    raise SystemExit(cli())
