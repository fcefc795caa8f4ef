"""Export the trained child of a train_arc_*.py run as a packed file (1-bit binary, 2-bit
ternary, k-bit weights; float32 for the rest), and optionally as a float Keras .keras file.

    python export_arc.py --output_dir ./output-mnist-arc --packed model.qenas --keras model.keras

Restores the run's latest checkpoint (its config.json gives the architecture and precision),
writes the files (paths relative to the current folder), checks that the packed model reloads
with identical predictions, and prints the sizes next to the summary's memory figure. Load the
packed file with ``enas.export.load_packed(path)``.
"""

import enas  # noqa: F401  (quiet TensorFlow start-up, as the other scripts)
from enas.command import run_command

CONFIG = dict(
    output_dir="./output-mnist-arc",
    packed="model.qenas",
    keras="",
)

FLAG_HELP = {
    "output_dir": "Folder of a finished (or running) train_arc_*.py run.",
    "packed": "Write the packed model here.",
    "keras": "Also write the float Keras model here (a .keras path); empty: don't.",
}


def main(settings):
    import os

    import numpy as np

    from enas.errors import ConfigError
    from enas.export import export_packed, load_packed, restore_run
    from enas.model_summary import summarize

    if not settings["packed"]:
        raise ConfigError("--packed needs a file name")
    if settings["keras"] and not settings["keras"].endswith(".keras"):
        raise ConfigError(f"--keras {settings['keras']!r} must end in .keras")
    model, identity, checkpoint = restore_run(settings["output_dir"])
    print(f"Restored {checkpoint}")
    print(f"Architecture: {identity['arc']}")
    print(f"Precision: {identity['precision']}")
    summary = summarize(model)
    size = export_packed(model, settings["packed"])
    print(f"Packed model: {settings['packed']}: {size:,} bytes")
    print(f"Summary memory: {summary.memory_bytes:,.0f} bytes (float32: {summary.float32_bytes:,} bytes, "
          f"{summary.compression:.1f}x smaller); packed file is {size / summary.memory_bytes:.3f}x that")
    if settings["keras"]:
        model.save(settings["keras"])
        print(f"Keras model: {settings['keras']}: {os.path.getsize(settings['keras']):,} bytes")
    images = np.random.default_rng(0).normal(size=(4,) + tuple(model.input_image_shape)).astype("float32")
    same = np.array_equal(model(images, training=False), load_packed(settings["packed"])(images, training=False))
    print("Packed model reproduces the checkpoint's predictions: " + ("yes" if same else "NO"))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(run_command(CONFIG, None, main, flag_help=FLAG_HELP, description=__doc__))
