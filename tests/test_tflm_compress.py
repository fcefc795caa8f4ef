"""TensorFlow Lite Micro LUT compression of an int8 file (enas.deploy.tflm_compress), checked in TFLM.

The model is built here with known weight levels: a ternary CONV_2D kernel ({-a, 0, a} per output
channel, so 3 int8 values a channel once quantized per channel), a ternary DEPTHWISE_CONV_2D
kernel and a FULLY_CONNECTED kernel with 16 levels a channel. The kernels are larger than the
brief's 8-filter 3x3 example on purpose: a compressed tensor costs a few hundred bytes of file
overhead and a 4-bit table 16 bytes a channel, so a 72-byte kernel or a dense layer with 8 inputs
can only grow. The depthwise kernel (288 bytes) stays too small to gain and must be skipped.
"""

import dataclasses

import numpy as np
import pytest

from enas.deploy import int8_graph, tflm_compress
from enas.errors import UserError

FILTERS = 32


def _ternary(rng, shape, scale):
    """{-1, 0, 1} x scale along the last axis, every slice holding all three values."""
    values = rng.integers(-1, 2, shape).astype(np.float32)
    flat = values.reshape(-1, shape[-1])
    flat[:3] = np.array([-1, 0, 1], np.float32)[:, None]
    return flat.reshape(shape) * scale


def _build_int8():
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    conv = keras.layers.Conv2D(FILTERS, 5)
    depthwise = keras.layers.DepthwiseConv2D(3)
    dense = keras.layers.Dense(3)
    x = keras.layers.ReLU()(conv(inputs))
    x = keras.layers.Flatten()(depthwise(x))  # 6 x 6 x 32 = 1152 inputs per output channel
    model = keras.Model(inputs, dense(x))
    conv.set_weights([_ternary(rng, (5, 5, 1, FILTERS), rng.uniform(0.2, 1.0, FILTERS).astype(np.float32)),
                      rng.normal(0, 0.1, FILTERS).astype(np.float32)])
    depthwise.set_weights([_ternary(rng, (3, 3, FILTERS, 1), rng.uniform(0.2, 1.0, (FILTERS, 1)).astype(np.float32)),
                           rng.normal(0, 0.1, FILTERS).astype(np.float32)])
    levels = (np.arange(16) - 7.5) / 7.5  # 16 symmetric levels: 16 distinct int8 values per channel
    kernel = np.stack([rng.permutation(np.tile(levels, 1152 // 16)) for _ in range(3)], axis=1)
    dense.set_weights([(kernel * rng.uniform(0.01, 0.05, 3)).astype(np.float32), np.zeros(3, np.float32)])

    representative = rng.uniform(-1, 1, (32, 12, 12, 1)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None]] for image in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def blob():
    return _build_int8()


@pytest.fixture(scope="module")
def plan_and_skipped(blob):
    skipped = []
    return tflm_compress.compression_plan(blob, skipped=skipped), skipped


@pytest.fixture(scope="module")
def compressed(blob, plan_and_skipped):
    return tflm_compress.compress(blob, plan_and_skipped[0])


def _kernels(blob):
    """{operator name: kernel tensor index} of the file."""
    model = int8_graph.read(blob)
    return {int8_graph.operator_name(model, op): int(op.inputs[1])
            for op in model.subgraphs[0].operators if len(op.inputs) > 1}


def test_plan_picks_bits_from_the_levels_per_channel(blob, plan_and_skipped):
    plan, skipped = plan_and_skipped
    kernels = _kernels(blob)
    by_operator = {entry.operator: entry for entry in plan}
    assert set(by_operator) == {"CONV_2D", "FULLY_CONNECTED"}

    conv = by_operator["CONV_2D"]
    assert (conv.tensor, conv.shape, conv.axis, conv.levels, conv.bits) == (kernels["CONV_2D"], (FILTERS, 5, 5, 1), 0, 3, 2)
    assert conv.bytes_before == FILTERS * 25 and conv.bytes_after < conv.bytes_before

    dense = by_operator["FULLY_CONNECTED"]
    assert (dense.tensor, dense.shape, dense.axis, dense.levels, dense.bits) == (kernels["FULLY_CONNECTED"], (3, 1152), 0, 16, 4)
    assert dense.bytes_before == 3 * 1152 and dense.bytes_after < dense.bytes_before

    # The depthwise kernel (1, 3, 3, C) is quantized along axis 3; it would take 2 bits but is too small.
    assert [(index, reason.split(" (")[0]) for index, _, reason in skipped] == [(kernels["DEPTHWISE_CONV_2D"], "too small to gain")]


def test_plan_respects_max_bits(blob):
    skipped = []
    plan = tflm_compress.compression_plan(blob, max_bits=3, skipped=skipped)
    assert [entry.operator for entry in plan] == ["CONV_2D"]
    assert any(reason == "16 levels need more than 3 bits" for _, _, reason in skipped)
    with pytest.raises(tflm_compress.CompressionToolError, match="max_bits"):
        tflm_compress.compression_plan(blob, max_bits=8)


def test_compressed_file_is_smaller_and_decodes_in_the_graph(blob, compressed, plan_and_skipped):
    plan = plan_and_skipped[0]
    assert len(compressed) < len(blob) - sum(e.bytes_before - e.bytes_after for e in plan) // 2
    counts = int8_graph.operator_counts(compressed)
    assert counts.get("CUSTOM") == len(plan)  # one TFLM_DECODE before each compressed kernel's reader
    model, encoded = tflm_compress._encoded_tensors(compressed)
    assert len(encoded) == len(plan)
    for s, j in encoded:  # packed indices, quantization stripped
        tensor = model.subgraphs[s].tensors[j]
        assert tensor.quantization is None
        assert list(tensor.shape) == [len(model.buffers[tensor.buffer].data)]
    sizes = sorted(int(model.subgraphs[s].tensors[j].shape[0]) for s, j in encoded)
    assert sizes == [FILTERS * 25 * 2 // 8, 3 * 1152 * 4 // 8]


def test_tflm_outputs_are_bit_identical(blob, compressed):
    images = np.random.default_rng(5).uniform(-1, 1, (20, 12, 12, 1)).astype(np.float32)
    result = tflm_compress.check_compressed(blob, compressed, images)
    assert result.examples == 20
    assert result.identical == 1.0 and result.same_class == 1.0
    assert (result.bytes_before, result.bytes_after) == (len(blob), len(compressed))
    assert result.bytes_after < result.bytes_before
    assert result.arena_before > 0 and result.arena_after >= result.arena_before  # kernels decode into the arena
    outputs = tflm_compress.outputs(compressed, images, result.arena_after)
    assert outputs.shape == (20, 3) and outputs.dtype == np.int8
    assert len({row.tobytes() for row in outputs}) > 1  # the inputs reach the outputs: the identity means something
    assert any("identical outputs on 100.00%" in line for line in result.lines())


def test_tool_failures_are_one_line_user_errors(blob, plan_and_skipped):
    plan = plan_and_skipped[0]
    with pytest.raises(tflm_compress.CompressionToolError, match="nothing to compress"):
        tflm_compress.compress(blob, [])
    too_narrow = [dataclasses.replace(e, bits=2) if e.operator == "FULLY_CONNECTED" else e for e in plan]
    with pytest.raises(tflm_compress.CompressionToolError) as caught:
        tflm_compress.compress(blob, too_narrow)
    assert isinstance(caught.value, UserError)
    message = str(caught.value)
    assert "\n" not in message and "index_bitwidth too small" in message
