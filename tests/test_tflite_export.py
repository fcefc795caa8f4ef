"""TensorFlow Lite export (``export_arc.py --tflite [--int8]``, :mod:`enas.deploy.tflite_export`): the
file computes what Keras computes, int8 weights of a ternary child are its levels exactly, and a
layer TensorFlow Lite cannot convert is one line naming it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from enas.data.data_utils import load_dataset
from enas.deploy import tflite_export
from enas.run.restore import restore_run
from tests.conftest import TINY, TINY_ARC, write_learnable_mnist
from tests.test_train_fixed import run_main


def _train(folder, precision):
    data_path = write_learnable_mnist(folder / "data", n_train=1200, n_test=300)
    settings = {**TINY, "data_path": str(data_path), "output_dir": str(folder / precision), "child_fixed_arc": TINY_ARC,
                "max_train_examples": 1200, "max_test_examples": 300, "num_epochs": 3,
                "child_quantization": precision}

    class Capture:  # run_main reads capsys; a module fixture has none
        def readouterr(self):
            return "", ""

    code, _, _ = run_main(settings, Capture())
    assert code == 0
    model, _, _ = restore_run(settings["output_dir"])
    data = load_dataset("mnist", str(data_path), num_valid=100, max_train=1200, max_test=300)
    return model, data, settings


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ternary child trained to high accuracy on learnable synthetic digits, its data and
    run settings."""
    return _train(tmp_path_factory.mktemp("tflite"), "ternary")


@pytest.fixture(scope="module")
def trained_float(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("tflite_float"), "float")


def test_deployable_copy_holds_the_quantized_kernels_and_predicts_the_same(trained):
    model, data, _ = trained
    deploy = tflite_export.deployable(model)
    images = data.x_test[:50]
    np.testing.assert_array_equal(deploy(images, training=False).numpy(), model(images, training=False).numpy())
    originals = {layer.path: layer for layer in model._flatten_layers() if getattr(layer, "kernel_quantizer", None)}
    folded = [layer for layer in deploy._flatten_layers() if layer.path in originals]
    assert folded and all(layer.kernel_quantizer is None for layer in folded)
    for layer in folded:
        source = originals[layer.path]
        for attribute, value in (source.quantized_kernels.items() if hasattr(source, "quantized_kernels")
                                 else [("kernel", source.kernel_quantizer(source.kernel))]):
            np.testing.assert_array_equal(getattr(layer, attribute).numpy(), value.numpy())
            assert len(np.unique(value.numpy())) <= 3  # ternary levels, not latent weights


def test_float_file_predicts_exactly_what_keras_predicts(trained):
    model, data, _ = trained
    deploy = tflite_export.deployable(model)
    blob = tflite_export.convert(deploy)
    result = tflite_export.check(blob, deploy, data.x_test, data.y_test)
    assert result.agreement == 1.0 and result.tflite_accuracy == result.keras_accuracy
    assert result.keras_accuracy > 0.5 and result.median_ms > 0 and result.file_bytes == len(blob)


@pytest.mark.parametrize("io", ["float", "int8"])
def test_int8_file_of_a_float_child_predicts_what_keras_predicts(trained_float, io):
    model, data, _ = trained_float
    deploy = tflite_export.deployable(model)
    blob = tflite_export.convert(deploy, int8=True, representative=data.x_train[:200], io=io)
    runner = tflite_export.interpreter(blob)
    assert runner.get_input_details()[0]["dtype"] == (np.int8 if io == "int8" else np.float32)
    result = tflite_export.check(blob, deploy, data.x_test, data.y_test)
    assert result.agreement >= 0.99, result


def test_int8_file_of_a_ternary_child_stores_its_levels_exactly(trained):
    model, data, _ = trained
    deploy = tflite_export.deployable(model)
    blob = tflite_export.convert(deploy, int8=True, representative=data.x_train[:200])
    levels = tflite_export.int8_weight_levels(blob)
    cells = {name: values for name, values in levels.items() if "/layer_" in name}  # stem, classifier: float
    assert len(cells) >= 6 and all(set(values) <= {-127, 0, 127} for values in cells.values()), levels
    assert any(len(values) > 3 for name, values in levels.items() if "classifier" in name)
    # Quantized activations are thresholds: int8 rounding of what feeds them flips a few, so the
    # agreement is high but not perfect (0.97 here; the README gives MNIST's).
    result = tflite_export.check(blob, deploy, data.x_test, data.y_test)
    assert result.agreement >= 0.95, result


def test_export_arc_writes_and_checks_a_tflite_file(trained, tmp_path, capsys):
    import export_arc
    from enas.cli.command import run_command

    _, _, settings = trained
    path = tmp_path / "m.tflite"
    argv = ["export_arc.py", f"--output_dir={settings['output_dir']}", "--packed=", f"--tflite={path}", "--int8",
            "--representative_examples=50"]
    code = run_command(export_arc.CONFIG, argv, export_arc.main, flag_help=export_arc.FLAG_HELP)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert path.stat().st_size > 0
    assert f"TFLite model (int8, float input and output): {path}: {path.stat().st_size:,} bytes" in out
    assert "TFLite int8: test accuracy" in out and "same prediction as Keras on" in out and "median latency" in out

    code = run_command(export_arc.CONFIG, argv[:-2] + ["--tflite=m.onnx"], export_arc.main)
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "must end in .tflite" in err


def test_a_layer_tensorflow_lite_cannot_convert_is_named_in_one_line():
    class Incomplete(keras.layers.Layer):
        def call(self, x):
            return tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 2.0)

    inputs = keras.Input((4, 4, 1))
    x = Incomplete(name="my_special_layer")(keras.layers.Conv2D(2, 3, padding="same")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    with pytest.raises(tflite_export.TFLiteExportError) as caught:
        tflite_export.convert(model)
    message = str(caught.value)
    assert "'my_special_layer'" in message and "Igamma" in message and "\n" not in message
