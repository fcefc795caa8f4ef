"""Full-integer export for microcontrollers: every quantizer becomes integer operations whose int8
output equals the Keras quantizer on the int8 grid of its input (thresholds included), the file
holds no float operator, and TensorFlow Lite Micro runs it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from binarize.binary_ops import SteSign
from enas.deploy import int8_graph, tflite_export, tflm_check
from quantize.quantized_ops import SteQuantize
from ternarize.ternary_ops import SteTern

QUANTIZERS = {
    "binary": SteSign(),
    "ternary": SteTern.for_activation(),
    "ternary_threshold_0.3": SteTern(rule="fixed", threshold_value=0.3),
    "2-bit": SteQuantize(2),
    "4-bit": SteQuantize(4),
    "8-bit": SteQuantize(8),
}


class _Apply(keras.layers.Layer):
    def __init__(self, quantizer, **kwargs):
        super().__init__(**kwargs)
        self.quantizer = quantizer

    def call(self, x):
        return self.quantizer(x)


def _quantizer_file(quantizer):
    """An int8 file of ``input -> 1x1 conv (weight 1) -> 2x2 max pool (stride 1) -> quantizer ->
    1x1 conv (weight 1)``, calibrated on [-1, 1] (the pool keeps the converter from folding the
    quantizer's first multiply into the conv)."""
    inputs = keras.Input((16, 16, 1))
    ones = {"kernel_initializer": "ones", "use_bias": False}
    x = keras.layers.Conv2D(1, 1, **ones)(inputs)
    x = keras.layers.MaxPooling2D(2, strides=1, padding="same")(x)
    outputs = keras.layers.Conv2D(1, 1, **ones)(_Apply(quantizer)(x))
    model = keras.Model(inputs, outputs)
    representative = np.linspace(-1.0, 1.0, 4 * 256).reshape(4, 16, 16, 1).astype(np.float32)
    return tflite_export.convert(model, int8=True, representative=representative, io="int8")


def _grid_and_levels(blob):
    """``(x, y, y_scale, y_zero)``: the quantizer's int8 input and output tensors after one run on
    all 256 input values, each dequantized with its own scale and zero point, and the output's
    scale and zero point."""
    runner = tf.lite.Interpreter(model_content=blob, experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner.allocate_tensors()
    source = runner.get_input_details()[0]
    runner.set_tensor(source["index"], np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1))
    runner.invoke()
    model = int8_graph.read(blob)
    graph = model.subgraphs[0]
    ops = [(int8_graph.operator_name(model, op), op) for op in graph.operators]
    last = [op for name, op in ops if name == "CONV_2D"][-1]
    # The quantizer's input grid: what its first integer operation (MUL, or the binary's ADD) reads.
    first = next(op for name, op in ops if name in ("MUL", "ADD"))
    grid = next(j for j in first.inputs if not int8_graph.is_constant(model, graph.tensors[j]))

    def dequantized(index):
        tensor = graph.tensors[index]
        scale, zero = tensor.quantization.scale[0], tensor.quantization.zeroPoint[0]
        return scale * (runner.get_tensor(index).astype(np.float64) - zero), float(scale), int(zero)

    x, _, _ = dequantized(grid)
    y, y_scale, y_zero = dequantized(last.inputs[0])
    return x.astype(np.float32), y, y_scale, y_zero


@pytest.mark.parametrize("name", list(QUANTIZERS))
def test_the_int8_quantizer_equals_the_keras_quantizer_on_its_int8_grid(name):
    """For every int8 value the quantizer's input takes (all of its grid here, both sides of each
    threshold included), the int8 output, read with its scale and zero point, is exactly the Keras
    quantizer of the dequantized input; the output's int8 values are the levels' numerators (scale
    1 / m, zero point 0); and the file has no float operator."""
    quantizer = QUANTIZERS[name]
    blob = _quantizer_file(quantizer)
    x, y, y_scale, y_zero = _grid_and_levels(blob)
    expected = np.asarray(quantizer(tf.constant(x)), np.float64)
    assert np.array_equal(y, expected), (name, x[y != expected][:5], y[y != expected][:5], expected[y != expected][:5])
    assert y_zero == 0
    denominator = 2 ** (quantizer.bits - 1) if isinstance(quantizer, SteQuantize) else 1
    assert y_scale == pytest.approx(1.0 / denominator, rel=1e-6)
    distinct = np.unique(x)
    assert len(distinct) >= 180, len(distinct)  # most of the grid (2-bit saturates at 0.5: 192 values)
    if isinstance(quantizer, SteSign):  # 0 itself and the largest value below it
        assert 0.0 in distinct and distinct[distinct < 0].size
    if isinstance(quantizer, SteTern):  # values on both sides of +-threshold
        t = quantizer.threshold_value
        for side in (t, -t):
            assert (distinct > side).any() and (distinct < side).any()
        assert set(np.unique(expected)) == {-1.0, 0.0, 1.0}
    assert int8_graph.float_operators(blob) == []


@pytest.mark.parametrize("name", ["binary", "ternary", "4-bit"])
def test_tflm_runs_the_quantizer_file_bit_identically_to_tensorflow_lite(name):
    """TensorFlow Lite Micro loads the file (every operator registered) and its int8 outputs equal
    the TensorFlow Lite interpreter's on every input value."""
    blob = _quantizer_file(QUANTIZERS[name])
    arena = tflm_check.smallest_arena(blob)
    micro, _ = tflm_check.load(blob, arena)
    assert micro is not None
    assert tflm_check.load(blob, arena - 1)[0] is None  # the smallest: one byte less does not allocate
    lite = tflite_export.interpreter(blob)
    source, target = lite.get_input_details()[0], lite.get_output_details()[0]
    values = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    lite.set_tensor(source["index"], values)
    lite.invoke()
    micro.set_input(values, 0)
    micro.invoke()
    assert np.array_equal(micro.get_output(0), lite.get_tensor(target["index"]))


def test_a_tensorflow_lite_micro_failure_is_one_line():
    """An operator TFLM does not register (a stand-alone RELU_N1_TO_1 in a float file) is one
    :class:`TFLMError` line naming the operator."""
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0))(inputs))
    blob = tflite_export.convert(model)
    with pytest.raises(tflm_check.TFLMError) as error:
        tflm_check.smallest_arena(blob)
    message = str(error.value)
    assert "\n" not in message and "TensorFlow Lite Micro cannot run the file" in message


def _random_child_file(seed, precision, filters=8, num_nodes=3):
    """The int8 file of a random architecture of a small MNIST child at ``precision`` with that
    precision's recipe (random weights and calibration: sizes do not depend on them)."""
    from enas.child.micro_child import MicroChild
    from enas.config.run_config import RunConfig
    from enas.space.arc import random_arc

    arc = random_arc(num_nodes, np.random.default_rng(seed))
    run = RunConfig.from_settings({"data_path": "./data", "child_fixed_arc": str(arc), "child_num_layers": 1,
                                   "child_out_filters": filters, "child_quantization": precision, "child_bits": 4,
                                   "child_use_aux_heads": False}, "train", "mnist")
    from enas.deploy.micro_table import sized_int8_file

    model = MicroChild(run.child, fixed_arc=arc).build_for((28, 28, 1))
    return sized_int8_file(model, (28, 28, 1), seed=seed)


@pytest.mark.parametrize("seed,precision", [(0, "ternary"), (1, "binary"), (2, "quantized"), (3, "ternary"),
                                            (4, "binary")])
def test_planned_peak_ram_is_within_10_percent_of_the_arena_tflm_needs(seed, precision):
    """The arena :mod:`enas.deploy.tflm_memory` plans for a random child's int8 file (activations
    packed as TFLM's greedy planner does, plus its bookkeeping) is within 10% of the smallest arena
    TensorFlow Lite Micro allocates the file in (measured: within 1%); the export's operator order
    needs no more activation memory than the converter's, and TFLM runs it."""
    from enas.deploy import tflm_memory

    blob = _random_child_file(seed, precision)
    activations, bookkeeping, planned = tflm_memory.peak_ram(blob)
    measured = tflm_check.smallest_arena(blob)
    assert abs(planned - measured) <= 0.10 * measured, (planned, measured)
    g = tflm_memory.graph_of(blob)
    assert activations == tflm_memory.planned_activations(g, tflm_memory.better_order(g))
    assert int8_graph.float_operators(blob) == []


def test_tflm_aborting_the_process_is_one_line(tmp_path, monkeypatch):
    """TFLM's host interpreter aborts the whole process on some files (an assertion in a kernel);
    it runs in a child process, so that is one :class:`TFLMError` line naming the file's
    operators, and this process goes on. (A stand-in interpreter that aborts plays TFLM here.)"""
    import os
    import signal

    blob = _quantizer_file(QUANTIZERS["ternary"])
    aborting = tmp_path / "python"
    aborting.write_text("#!/bin/sh\nkill -ABRT $$\n")
    aborting.chmod(0o755)
    monkeypatch.setattr(tflm_check.sys, "executable", str(aborting))
    with pytest.raises(tflm_check.TFLMError) as error:
        tflm_check.smallest_arena(blob)
    message = str(error.value)
    assert "\n" not in message and f"aborted (exit status {-signal.SIGABRT})" in message and "CONV_2D" in message
    assert os.getpid()  # still here


def test_a_quantizer_without_an_integer_form_is_one_line():
    """16-bit activations have no int8 form: the int8 export is one TFLiteExportError line saying
    so (and what to do), not a traceback."""
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1)(_Apply(SteQuantize(16))(inputs)))
    images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    with pytest.raises(tflite_export.TFLiteExportError) as error:
        tflite_export.convert(model, int8=True, representative=images)
    message = str(error.value)
    assert "\n" not in message and "SteQuantize" in message and "no integer (int8) form" in message
    assert "drop --int8" in message


def test_a_sign_reads_its_convolution_on_the_fine_grid_not_the_shared_coarse_one():
    """A convolution whose output feeds a binary activation and a real-valued path (a pool) is
    stored on a coarse int8 grid (its whole range); the sign's input is recomputed by a second
    convolution straight into the sign's fine [-1, 1] grid, so that outputs smaller than half a
    coarse step keep their sign (here every one at least two fine steps from 0)."""
    inputs = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer=keras.initializers.Constant(10.0),
                            bias_initializer=keras.initializers.Constant(0.05))(inputs)
    signs = keras.layers.Conv2D(1, 1, kernel_initializer="ones", use_bias=False)(_Apply(SteSign())(y))
    pooled = keras.layers.AveragePooling2D(2)(y)
    model = keras.Model(inputs, [signs, pooled])
    # Calibrated on [-1, 1]: y spans +-90, a coarse step of ~0.7; tested on inputs of a few steps.
    representative = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype(np.float32)
    representative[0, 0, 0, 0], representative[0, 0, 1, 0] = -1.0, 1.0
    blob = tflite_export.convert(model, int8=True, representative=representative, io="int8")
    lite = tflite_export.interpreter(blob)
    source = lite.get_input_details()[0]
    target = next(d for d in lite.get_output_details() if tuple(d["shape"]) == (1, 8, 8, 1))
    scale, zero = source["quantization"]
    levels = np.random.default_rng(1).integers(-1, 2, (20, 8, 8, 1)) + zero
    test = (scale * (levels - zero)).astype(np.float32)  # on the input's int8 grid
    expected = np.asarray(model(test)[0])
    y_float = np.asarray(keras.Model(inputs, y)(test))
    checked = np.abs(y_float) > 2 * 2 / 255
    assert checked.mean() > 0.5 and (y_float[checked] < 0).any()
    assert (np.abs(y_float) < 0.35).mean() > 0.8  # most within half a coarse step of 0
    for q, want, mask in zip(levels.astype(np.int8), expected, checked):
        lite.set_tensor(source["index"], q[None])
        lite.invoke()
        got = lite.get_tensor(target["index"])[0].astype(np.float32) - target["quantization"][1]
        assert np.array_equal(np.sign(got[mask]), np.sign(want[mask]))
    assert int8_graph.operator_counts(blob)["CONV_2D"] == 3  # the convolution, its fine twin, the 1x1


def test_the_int8_file_keeps_no_inner_tensor_names_and_tflm_still_runs_it():
    """The inner tensors' names are dropped (flash), the graph's input and output keep theirs."""
    blob = _quantizer_file(QUANTIZERS["ternary"])
    model = int8_graph.read(blob)
    graph = model.subgraphs[0]
    ends = set(graph.inputs) | set(graph.outputs)
    assert all(not t.name for j, t in enumerate(graph.tensors) if j not in ends)
    assert all(graph.tensors[j].name for j in ends)
    assert tflm_check.smallest_arena(blob) > 0
