"""Print the bit-accurate summary of a fixed architecture: parameters, memory and MACs per layer
and precision, compression against float32, and OPs = FLOPs + BOPs/64.

    python summarize_arc.py -fixed_arc "0 2 1 4 ..." --child_quantization binary
    python summarize_arc.py -fixed_arc "..." --dataset cifar10 --child_num_layers 15 --child_out_filters 36

The child flags are train_arc_mnist.py's (same defaults); --dataset only sets the image shape
(mnist 28x28x1, cifar10 32x32x3). No data is read. See enas/model_summary.py for the conventions.
"""

import enas  # noqa: F401  (quiet TensorFlow start-up, as the other scripts)
from enas.command import run_command

import train_arc_mnist

_CHILD_KEYS = (
    "child_fixed_arc", "child_num_layers", "child_num_cells", "child_reduction_layers",
    "child_out_filters", "child_keep_prob",
    "child_drop_path_keep_prob", "child_use_aux_heads", "child_quantization", "child_bits",
    "child_quantize_stem", "child_quantize_classifier", "child_precision_overrides",
)

CONFIG = dict(dataset="mnist", **{key: train_arc_mnist.CONFIG[key] for key in _CHILD_KEYS
                                   if key in train_arc_mnist.CONFIG})

FLAG_HELP = {
    "dataset": "mnist (28x28x1 images) or cifar10 (32x32x3); only the image shape is used.",
}


def main(settings):
    from enas.arc import parse_arc
    from enas.micro_child import MicroChild
    from enas.model_summary import dataset_image_shape, format_summary, summarize
    from enas.runner import child_config

    image_shape = dataset_image_shape(settings["dataset"])
    arc = parse_arc(settings["child_fixed_arc"], settings["child_num_cells"] or None)
    config = child_config({**settings, "child_num_cells": arc.num_nodes})
    model = MicroChild(config, fixed_arc=arc).build_for(image_shape)
    print(f"Architecture: {arc}")
    print(f"Precision: {config.policy.describe()}")
    print(format_summary(summarize(model)))


if __name__ == "__main__":
    raise SystemExit(run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__))
