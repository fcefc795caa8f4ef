"""Print the bit-accurate summary of a fixed architecture: parameters, memory and MACs per layer
and precision, compression against float32, and OPs = FLOPs + BOPs/64.

    python summarize_arc.py -fixed_arc "0 2 1 4 ..." --child_quantization binary
    python summarize_arc.py -fixed_arc "..." --dataset cifar10 --child_num_layers 15 --child_out_filters 36

    python summarize_arc.py -fixed_arc "..." --image_shape 96,96,3 --num_classes 4
    python summarize_arc.py -fixed_arc "..." --data_path my_images/     # shape and classes of the data

The child flags are those of the training scripts, with the library's defaults (enas/config/run_config.py)
and train_arc_mnist.py's default architecture; --dataset only sets the image shape (mnist
28x28x1, cifar10 32x32x3), --image_shape and --num_classes give any other, and --data_path reads
them from the data (a folder of images, an .npz, MNIST or CIFAR-10). The stem's stride follows
the image size as in training (--child_stem_stride overrides it). See enas/cost/model_summary.py
for the conventions.

With --int8_memory (the default) it also converts the child to the full-integer TensorFlow Lite
file export_arc.py --int8 writes (random weights and calibration: the sizes do not depend on
them) and prints what a microcontroller needs for it: the flash (the file) and the tensor arena
TensorFlow Lite Micro plans (activations in the operator order that needs the least, plus its
bookkeeping; enas/deploy/tflm_memory.py). That takes a few seconds; --noint8_memory skips it.
"""

from enas.cli.command import run_command
from enas.config.run_config import child_settings

CONFIG = dict(
    dataset="mnist",
    image_shape="",
    num_classes=0,
    data_path="",
    image_size="",
    color_mode="auto",
    int8_memory=True,
    **child_settings(),
    child_fixed_arc="1 2 0 0 1 1 0 1 1 1 0 0 1 1 1 3 0 1 1 0 1 4 1 1 2 0 1 3 1 3 1 2 1 0 1 0 3 1 1 0",
)

FLAG_HELP = {
    "dataset": "mnist (28x28x1 images) or cifar10 (32x32x3); only the image shape is used.",
    "image_shape": "H,W,C of the input images (empty: --dataset's, or --data_path's).",
    "num_classes": "Classes of the classifier (0: 10, or --data_path's).",
    "data_path": "Take the image shape and class count from this data (folder, .npz, MNIST or CIFAR-10).",
    "image_size": "With --data_path: the H,W training resizes its images to.",
    "color_mode": "With --data_path: auto, grayscale, rgb or rgba, as in training.",
    "int8_memory": "Also print the int8 file's flash and the tensor arena TensorFlow Lite Micro plans for it.",
}


def input_of(settings):
    """``(image_shape, num_classes)`` the summary is made for."""
    from enas.config.run_config import parse_image_size
    from enas.cost.model_summary import dataset_image_shape
    from enas.errors import ConfigError

    if settings["data_path"]:
        from enas.data import sources
        from enas.data.formats import detect_source

        kind = detect_source(settings["data_path"])
        data = sources.load_source(kind, settings["data_path"], num_valid=0,
                                   image_size=parse_image_size(settings["image_size"]),
                                   color_mode=settings["color_mode"], max_train=256 if kind == "folder" else None,
                                   max_test=1, download=False)
        return data.image_shape, settings["num_classes"] or data.num_classes
    if settings["image_shape"]:
        try:
            shape = tuple(int(v) for v in settings["image_shape"].replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"bad --image_shape {settings['image_shape']!r}: give H,W,C, e.g. 96,96,3")
        return shape, settings["num_classes"] or 10
    return dataset_image_shape(settings["dataset"]), settings["num_classes"] or 10


def main(settings):
    import dataclasses

    from enas.child.micro_child import MicroChild
    from enas.config.run_config import RunConfig
    from enas.cost.model_summary import format_summary, summarize

    if settings["num_classes"] < 0 or settings["num_classes"] == 1:
        from enas.errors import ConfigError

        raise ConfigError(f"--num_classes must be 2 or more (0: the data's), got {settings['num_classes']}")
    image_shape, num_classes = input_of(settings)
    child_settings = {k: v for k, v in settings.items() if k not in ("image_shape", "num_classes", "image_size",
                                                                    "color_mode", "int8_memory")}
    run = RunConfig.from_settings({**child_settings, "data_path": settings["data_path"] or "./data"}, "train",
                                  "mnist" if settings["data_path"] or settings["image_shape"] else settings["dataset"])
    child = dataclasses.replace(run.child, num_classes=num_classes)
    model = MicroChild(child, fixed_arc=run.fixed_arc).build_for(image_shape)
    print(f"Architecture: {run.fixed_arc}")
    print(f"Precision: {run.child.policy.describe()}")
    print(f"Input: {'x'.join(map(str, image_shape))} images, {num_classes} classes, stem stride {model.stem_stride}")
    print(format_summary(summarize(model)))
    if settings["int8_memory"]:
        from enas.deploy.micro_table import memory_line

        print(memory_line(model, image_shape))


def cli():
    """The command `summarize_arc` (installed by pip) and `python summarize_arc.py`."""
    return run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
