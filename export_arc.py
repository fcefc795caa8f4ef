"""Export the trained child of a train_arc_*.py run: as a packed file (1-bit binary, 2-bit
ternary, k-bit weights; float32 for the rest), a float Keras .keras file, and TensorFlow Lite
(float, or full-integer int8 with --int8), checked against Keras on the run's test split.

    python export_arc.py --output_dir ./output-mnist-arc --packed model.qenas --keras model.keras
    python export_arc.py --output_dir ./output-mnist-arc --packed "" --tflite model.tflite [--int8]
    python export_arc.py --output_dir ./output-arc --packed "" --tflite m.tflite --int8 --tflite_io uint8
    python export_arc.py --output_dir ./output-arc --packed "" --tflite m.tflite --int8 --tflite_io int8 --tflm

Every file takes raw input: the pixel values (0-255) of an image of the run's size and channels,
the network normalising them itself. With --int8 --tflite_io uint8 the input tensor is the image
bytes as they are; with --tflite_io int8 it is each byte minus 128 (zero point -128, scale 1).

Restores the run's latest checkpoint (its config.json gives the architecture, precision and
data), writes the files (paths relative to the current folder), checks that the packed model
reloads with identical predictions, and prints the sizes next to the summary's memory figure.
With --tflite (and --verify, the default) it also runs the TensorFlow Lite interpreter on the
test split: Keras' and the file's accuracy, how often they predict the same class, the file
size and the median latency per image. With --tflm (int8 only) it also runs the file in TensorFlow
Lite Micro's interpreter: its accuracy, its agreement with Keras and with TensorFlow Lite, the
flash (file bytes) and the smallest tensor arena that allocates. Load the packed file with
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
    tflm=False,
    lut="",
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
    "tflm": "TensorFlow Lite int8: also run the file in TensorFlow Lite Micro's interpreter (accuracy, agreement, flash, "
            "tensor arena).",
    "lut": "TensorFlow Lite int8: also write TensorFlow Lite Micro's LUT-compressed file here (binary weights at 1 "
           "bit, ternary at 2, up to 16 levels at 4; only TFLM reads it) and check it gives the same outputs in TFLM.",
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
    if settings["lut"] and not settings["lut"].endswith(".tflite"):
        raise ConfigError(f"--lut {settings['lut']!r} must end in .tflite")
    if (settings["tflm"] or settings["lut"]) and not settings["int8"]:
        raise ConfigError("--tflm and --lut are for the full-integer file: pass --int8 (TensorFlow Lite Micro runs int8 "
                          "models)")
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
        same = export_tflite(model, identity, settings) and same
    return 0 if same else 1


def export_tflite(model, record, settings):
    from enas.config.run_config import RunConfig
    from enas.data import data_utils, sources
    from enas.deploy import tflite_export
    from enas.errors import DataError

    config = RunConfig.from_json(record["config"]) if "config" in record else None
    dataset = config.dataset if config else record.get("dataset", "mnist")
    data_path = settings["data_path"] or (config.data.data_path if config else f"./data/{dataset}")
    needs_data = settings["int8"] or settings["verify"] or settings["tflm"] or settings["lut"]
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
    if settings["int8"]:
        from enas.deploy.int8_graph import float_operators, operator_counts

        counts = operator_counts(blob)
        floating = float_operators(blob)
        print("TFLite operators: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
        print("TFLite integer only: " + ("yes (no float tensor between input and output)" if not floating else
                                         "NO: " + ", ".join(f"{name} (operator {i})" for i, name in floating[:5])))
        from enas.deploy import tflm_memory

        activations, bookkeeping, total = tflm_memory.peak_ram(blob)
        print(f"TFLM arena, planned: {total:,} bytes ({total / 1024:.1f} KiB): activations {activations:,} (operators in "
              f"the order that needs the least), bookkeeping {bookkeeping:,}; flash: {len(blob):,} bytes (the file)")
    if not (settings["verify"] or settings["tflm"] or settings["lut"]):
        return True
    split = "test" if len(data.test) else "valid"
    images, labels = data_utils.split_arrays(data, split, settings["max_test_examples"] or None)
    identical = write_lut(blob, settings["lut"], images[:1000]) if settings["lut"] else True
    lines = []
    if settings["verify"]:
        lines += tflite_export.check(blob, deploy, images, labels).lines(f"TFLite {kind}")[1:]
    if settings["tflm"]:
        from enas.deploy import tflm_check

        lines += tflm_check.check(blob, deploy, images, labels).lines()
    for line in lines:
        print(line if split == "test" else line.replace("test accuracy", "validation accuracy"))
    return identical


def write_lut(blob, path, images):
    """TFLM's LUT-compressed copy of the int8 file at ``path``, checked in TFLM on ``images``."""
    from enas.deploy import tflite_export, tflm_compress

    plan = tflm_compress.compression_plan(blob)
    if not plan:
        print(f"TFLM LUT compression: nothing to gain (every int8 kernel is too small or has too many levels); "
              f"{path} not written")
        return True
    by_bits = {}
    for entry in plan:
        by_bits[entry.bits] = by_bits.get(entry.bits, 0) + 1
    compressed = tflm_compress.compress(blob, plan)
    result = tflm_compress.check_compressed(blob, compressed, images)
    tflite_export.write(path, compressed)
    kinds = ", ".join(f"{n} at {bits} bit{'s' if bits > 1 else ''}" for bits, n in sorted(by_bits.items()))
    print(f"TFLM LUT-compressed model: {path}: {len(compressed):,} bytes ({len(compressed) / 1024:.1f} KiB; "
          f"{len(blob):,} uncompressed), weight tensors {kinds}")
    print(f"TFLM LUT-compressed: tensor arena {result.arena_after:,} bytes (uncompressed {result.arena_before:,}; "
          f"weights are decoded into it), identical outputs on {result.identical:.2%} of {result.examples:,} images")
    return result.identical == 1.0


def cli():
    """The command `export_arc` (installed by pip) and `python export_arc.py`."""
    return run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
