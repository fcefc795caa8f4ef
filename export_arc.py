"""Export the trained child of a train_arc_*.py run: as a packed file (1-bit binary, 2-bit
ternary, k-bit weights; float32 for the rest), a float Keras .keras file, and TensorFlow Lite
(float, or full-integer int8 with --int8), checked against Keras on the run's test split.

    python export_arc.py --output_dir ./output-mnist-arc --packed model.qenas --keras model.keras
    python export_arc.py --output_dir ./output-mnist-arc --packed "" --tflite model.tflite [--int8]
    python export_arc.py --output_dir ./output-arc --packed "" --tflite m.tflite --int8 --tflite_io uint8

Every file takes raw input: the pixel values (0-255) of an image of the run's size and channels,
the network normalising them itself. With --int8 --tflite_io uint8 the input tensor is the image
bytes as they are; with --tflite_io int8 it is each byte minus 128 (zero point -128, scale 1).

Restores the run's latest checkpoint (its config.json gives the architecture, precision and
data), writes the files (paths relative to the current folder), checks that the packed model
reloads with identical predictions, and prints the sizes next to the summary's memory figure.
With --tflite (and --verify, the default) it also runs the TensorFlow Lite interpreter on the
test split: Keras' and the file's accuracy, how often they predict the same class, the file
size and the median latency per image. Load the packed file with
``enas.deploy.export.load_packed(path)``.
"""

from enas.cli.command import run_command

CONFIG = dict(
    output_dir="./output-mnist-arc",
    packed="model.qenas",
    keras="",
    tflite="",
    int8=False,
    tflite_io="float",
    representative_examples=200,
    verify=True,
    data_path="",
    max_test_examples=0,
)

FLAG_HELP = {
    "output_dir": "Folder of a finished (or running) train_arc_*.py run.",
    "packed": "Write the packed model here (empty: don't).",
    "keras": "Also write the float Keras model here (a .keras path); empty: don't.",
    "tflite": "Also write a TensorFlow Lite model here (a .tflite path); empty: don't.",
    "int8": "TensorFlow Lite: full-integer int8 (calibrated on the run's training images) instead of float.",
    "tflite_io": "TensorFlow Lite int8: input and output type: float, uint8 (the raw image bytes) or int8 (the "
                 "bytes minus 128).",
    "representative_examples": "TensorFlow Lite int8: training images used to calibrate the activations.",
    "verify": "TensorFlow Lite: run the interpreter on the test split and compare with Keras.",
    "data_path": "The run's data (folder, .npz or MNIST/CIFAR folder; empty: the run's own --data_path).",
    "max_test_examples": "TensorFlow Lite check: the first N test images (0: all).",
}


def main(settings):
    import os

    import numpy as np

    from enas.errors import ConfigError

    for flag, suffix in (("keras", ".keras"), ("tflite", ".tflite")):
        if settings[flag] and not settings[flag].endswith(suffix):
            raise ConfigError(f"--{flag} {settings[flag]!r} must end in {suffix}")
    if not (settings["packed"] or settings["keras"] or settings["tflite"]):
        raise ConfigError("nothing to write: pass --packed, --keras or --tflite")
    if settings["int8"] and not settings["tflite"]:
        raise ConfigError("--int8 is a TensorFlow Lite option: pass --tflite model.tflite")
    if settings["representative_examples"] < 1 or settings["max_test_examples"] < 0:
        raise ConfigError("--representative_examples must be >= 1 and --max_test_examples >= 0")

    from enas.cost.model_summary import summarize
    from enas.deploy.export import export_packed, load_packed
    from enas.run.restore import restore_run

    model, identity, checkpoint = restore_run(settings["output_dir"], settings["data_path"])
    print(f"Restored {checkpoint}")
    print(f"Architecture: {identity['arc']}")
    print(f"Precision: {identity['precision']}")
    summary = summarize(model)
    print(f"Summary memory: {summary.memory_bytes:,.0f} bytes (float32: {summary.float32_bytes:,} bytes, "
          f"{summary.compression:.1f}x smaller)")
    same = True
    if settings["packed"]:
        size = export_packed(model, settings["packed"])
        print(f"Packed model: {settings['packed']}: {size:,} bytes ({size / summary.memory_bytes:.3f}x the summary)")
        images = np.random.default_rng(0).uniform(0, 255, size=(4,) + tuple(model.input_image_shape)).astype("float32")
        same = np.array_equal(model(images, training=False), load_packed(settings["packed"])(images, training=False))
        print("Packed model reproduces the checkpoint's predictions: " + ("yes" if same else "NO"))
    if settings["keras"]:
        model.save(settings["keras"])
        print(f"Keras model: {settings['keras']}: {os.path.getsize(settings['keras']):,} bytes")
    if settings["tflite"]:
        export_tflite(model, identity, settings)
    return 0 if same else 1


def export_tflite(model, record, settings):
    from enas.config.run_config import RunConfig
    from enas.data import data_utils, sources
    from enas.deploy import tflite_export
    from enas.errors import DataError

    config = RunConfig.from_json(record["config"]) if "config" in record else None
    dataset = config.dataset if config else record.get("dataset", "mnist")
    data_path = settings["data_path"] or (config.data.data_path if config else f"./data/{dataset}")
    needs_data = settings["int8"] or settings["verify"]
    data = None
    if needs_data:
        d = config.data if config else None
        data = sources.load_source(dataset, data_path, num_valid=d.num_valid if d else 5000,
                                   image_size=d.image_size_tuple() if d else None,
                                   color_mode=d.color_mode if d else "auto",
                                   max_train=(d.max_train_examples or None) if d else None,
                                   max_test=settings["max_test_examples"] or None)
        if tuple(data.image_shape) != tuple(model.input_image_shape) or data.num_classes != model.config.num_classes:
            raise DataError(f"the data at {data_path!r} ({'x'.join(map(str, data.image_shape))} images, "
                            f"{data.num_classes} classes) is not what the run was trained on "
                            f"({'x'.join(map(str, model.input_image_shape))}, {model.config.num_classes} classes); "
                            "pass the run's --data_path")
    deploy = tflite_export.deployable(model)
    kind = "int8" if settings["int8"] else "float"
    representative = data_utils.split_arrays(data, "train", settings["representative_examples"])[0] \
        if settings["int8"] else None
    blob = tflite_export.convert(deploy, int8=settings["int8"], representative=representative,
                                 io=settings["tflite_io"], pixels=data.pixels if data is not None else None)
    tflite_export.write(settings["tflite"], blob)
    io = f", {settings['tflite_io']} input and output" if settings["int8"] else ""
    print(f"TFLite model ({kind}{io}): {settings['tflite']}: {len(blob):,} bytes")
    shape = "x".join(map(str, model.input_image_shape))
    if settings["int8"] and settings["tflite_io"] != "float" and data.pixels == "uint8":
        scale, zero = tflite_export.input_quantization(blob)
        what = "the raw image bytes" if settings["tflite_io"] == "uint8" else "the image bytes minus 128"
        print(f"TFLite input: {settings['tflite_io']} (1, {shape.replace('x', ', ')}): {what} (scale {scale:g}, "
              f"zero point {zero})")
    else:
        print(f"TFLite input: float32 (1, {shape.replace('x', ', ')}): raw values (0-255 for pixels), not normalised")
    if settings["verify"]:
        split = "test" if len(data.test) else "valid"
        images, labels = data_utils.split_arrays(data, split, settings["max_test_examples"] or None)
        result = tflite_export.check(blob, deploy, images, labels)
        lines = result.lines(f"TFLite {kind}")[1:]
        if split != "test":
            lines = [line.replace("test accuracy", "validation accuracy") for line in lines]
        for line in lines:
            print(line)


if __name__ == "__main__":
    raise SystemExit(run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__))
