"""Print the bit-accurate summary of a fixed architecture: parameters, memory and MACs per layer
and precision, compression against float32, and OPs = FLOPs + BOPs/64.

    python summarize_arc.py -fixed_arc "0 2 1 4 ..." --child_quantization binary
    python summarize_arc.py -fixed_arc "..." --dataset cifar10 --child_num_layers 15 --child_out_filters 36

The child flags are those of the training scripts, with the library's defaults (enas/config/run_config.py)
and train_arc_mnist.py's default architecture; --dataset only sets the image shape (mnist
28x28x1, cifar10 32x32x3). No data is read. See enas/cost/model_summary.py for the conventions.
"""

from enas.cli.command import run_command
from enas.config.run_config import child_settings

CONFIG = dict(
    dataset="mnist",
    **child_settings(),
    child_fixed_arc="1 2 0 0 1 1 0 1 1 1 0 0 1 1 1 3 0 1 1 0 1 4 1 1 2 0 1 3 1 3 1 2 1 0 1 0 3 1 1 0",
)

FLAG_HELP = {
    "dataset": "mnist (28x28x1 images) or cifar10 (32x32x3); only the image shape is used.",
}


def main(settings):
    from enas.child.micro_child import MicroChild
    from enas.config.run_config import RunConfig
    from enas.cost.model_summary import dataset_image_shape, format_summary, summarize

    image_shape = dataset_image_shape(settings["dataset"])
    run = RunConfig.from_settings(settings, "train", settings["dataset"])
    model = MicroChild(run.child, fixed_arc=run.fixed_arc).build_for(image_shape)
    print(f"Architecture: {run.fixed_arc}")
    print(f"Precision: {run.child.policy.describe()}")
    print(format_summary(summarize(model)))


if __name__ == "__main__":
    raise SystemExit(run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__))
