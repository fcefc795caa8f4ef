"""The bit-accurate model summary: parameters, memory, MACs by precision and OPs, checked against
counts done by hand on tiny models."""

import re
import keras
import pytest

import summarize_arc
from enas.child.micro_cell import CellCombine
from enas.child.micro_child import ChildConfig, MicroChild
from enas.cost.model_summary import format_summary, summarize
from enas.space.precision import PrecisionPolicy
from quantize.layers import QuantConv2D, QuantDense
from tests.conftest import TINY_ARC

# name -> (kernel quantizer, activation quantizer, bits, float32 scales per kernel tensor)
PRECISIONS = {
    "binary": ("ste_sign", "ste_sign", 1, 0),
    "ternary": ({"class_name": "SteTern", "config": {"rule": "twn"}},
                {"class_name": "SteTern", "config": {"rule": "fixed"}}, 2, 1),
    "4-bit": ({"class_name": "SteQuantize", "config": {"bits": 4}},
              {"class_name": "SteQuantize", "config": {"bits": 4}}, 4, 0),
}


def tiny_sequential(kernel_quantizer, input_quantizer, pre=()):
    """5x5x2 input -> conv 3x3 valid 2->4 (no bias) -> BN -> flatten -> float dense 36->10."""
    return keras.Sequential([
        keras.Input((5, 5, 2)), *pre,
        QuantConv2D(4, 3, use_bias=False, kernel_quantizer=kernel_quantizer,
                    input_quantizer=input_quantizer, name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Flatten(),
        QuantDense(10, name="dense"),
    ])


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_counts_by_hand_on_a_tiny_sequential(precision):
    kernel_q, input_q, bits, scales = PRECISIONS[precision]
    model = tiny_sequential(kernel_q, input_q)
    summary = summarize(model)

    conv_params = 3 * 3 * 2 * 4                   # 72 weights
    bn_params = 4 * 4                             # gamma, beta, moving mean, moving variance
    dense_params = 36 * 10 + 10                   # kernel + bias
    params = conv_params + bn_params + dense_params
    assert summary.params == params == model.count_params() == 458
    assert summary.quantized_params == conv_params
    memory_bits = conv_params * bits + 32 * scales + (bn_params + dense_params) * 32
    assert summary.memory_bits == memory_bits
    assert summary.memory_bytes == memory_bits / 8
    assert summary.float32_bytes == params * 4
    assert summary.compression == pytest.approx(params * 32 / memory_bits)

    conv_macs = (3 * 3) * (3 * 3 * 2 * 4)         # 3x3 outputs x (kh kw C_in C_out) = 648
    dense_macs = 36 * 10
    label = f"{bits}-bit"
    assert summary.macs == {label: conv_macs, "float": dense_macs}
    assert summary.bops == conv_macs * bits * bits     # binary 1x, ternary 4x, 4-bit 16x
    assert summary.flops == dense_macs
    assert summary.ops == dense_macs + conv_macs * bits * bits / 64

    rows = {row.path: row for row in summary.rows}
    assert set(rows) == {"conv", "bn", "dense"}
    assert (rows["conv"].params, rows["conv"].weight_bits, rows["conv"].activation_bits) == \
        (conv_params, (bits,), (bits,))
    assert rows["conv"].memory_bits == conv_params * bits + 32 * scales
    assert rows["conv"].macs == {label: conv_macs}
    assert (rows["bn"].params, rows["bn"].memory_bits, rows["bn"].macs) == (16, 16 * 32, {})
    assert rows["dense"].macs == {"float": dense_macs}

    text = format_summary(summary)
    assert f"{label} MACs" in text and "| conv " in text and "Total params: 458" in text
    assert f"{summary.compression:.1f}x smaller" in text


def test_quantized_kernel_on_float_input_counts_as_float():
    model = tiny_sequential("ste_sign", None)  # binary weights, raw (float) input
    summary = summarize(model)
    assert summary.macs == {"float": 648 + 360}
    assert summary.memory_bits == 72 + (16 + 370) * 32  # the weights are still 1 bit


def test_input_quantized_upstream_is_recognised():
    """No input quantizer on the conv, but its input is already sign()ed: binary MACs."""
    from binarize.binary_ops import SteSign

    model = tiny_sequential("ste_sign", None, pre=[keras.layers.Activation(SteSign())])
    assert summarize(model).macs == {"1-bit": 648, "float": 360}


def test_recording_restores_the_layer_classes():
    before = {cls: cls.__dict__.get("call") for cls in (QuantConv2D, QuantDense, CellCombine,
                                                          keras.layers.Dense, keras.layers.Conv2D)}
    summarize(tiny_sequential("ste_sign", "ste_sign"))
    after = {cls: cls.__dict__.get("call") for cls in before}
    assert after == before


def test_recording_touches_only_the_models_own_layers():
    """While one model records, no class is changed and another model of the same layers is
    not recorded; afterwards the layers hold no wrapper."""
    from enas.cost.model_summary import recording

    classes = (QuantConv2D, QuantDense, keras.layers.Dense, keras.layers.Conv2D)
    before = {cls: cls.__dict__.get("call") for cls in classes}
    model, other = tiny_sequential("ste_sign", "ste_sign"), tiny_sequential("ste_sign", "ste_sign")
    x = keras.ops.zeros((1,) + tuple(model.input_shape[1:]))
    with recording(model) as records:
        assert {cls: cls.__dict__.get("call") for cls in classes} == before
        other(x, training=False)
        assert records == {}  # the other model's calls are not recorded
        model(x, training=False)
        assert records and all(len(calls) == 1 for calls in records.values())
    assert not any("call" in vars(layer) for layer in model.layers)


def tiny_child(quantization="binary", **policy):
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=4,
                         policy=PrecisionPolicy.from_flags(quantization, **policy))
    return MicroChild(config, fixed_arc=TINY_ARC).build_for((28, 28, 1))


@pytest.mark.parametrize("quantize_stem", [False, True])
def test_micro_child_totals_and_float_split(quantize_stem):
    model = tiny_child("binary", quantize_stem=quantize_stem)
    summary = summarize(model)
    assert summary.params == model.count_params()
    assert sum(row.params for row in summary.rows) == summary.params
    assert sum(row.memory_bits for row in summary.rows) == summary.memory_bits
    # binary kernels: 1 bit, no scale; everything else 32 bits
    assert summary.memory_bits == summary.quantized_params + 32 * summary.float_params
    stem_macs = 28 * 28 * 3 * 3 * 1 * 12          # 3x3 conv, 1 -> 3 * out_filters, same padding
    classifier_macs = 16 * 10                     # 4 filters doubled by the two reductions
    # The stem reads the raw image: float MACs even with a binary stem kernel.
    assert summary.macs["float"] == stem_macs + classifier_macs
    assert set(summary.macs) == {"1-bit", "float"} and summary.macs["1-bit"] > 0
    stem = next(row for row in summary.rows if row.path == "stem_conv")
    assert stem.weight_bits == ((1,) if quantize_stem else (32,))
    assert stem.macs == {"float": stem_macs}


def test_summarize_arc_command(capsys):
    flags = ["--child_num_layers=0", "--child_num_cells=2", "--child_out_filters=4", "--child_reduction_layers=1",
             "--nochild_use_aux_heads", "--child_quantization=ternary", f"-fixed_arc={TINY_ARC}"]
    code = summarize_arc.run_command(summarize_arc.CONFIG, ["summarize_arc.py"] + flags, summarize_arc.main)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2-bit MACs" in out and "OPs = FLOPs + BOPs/64" in out and "stem_conv" in out
    # The int8 file's flash and the tensor arena TensorFlow Lite Micro plans for it (tests/test_int8_micro.py
    # compares that plan with TFLM's own arena).
    match = re.search(r"Int8 for TensorFlow Lite Micro: flash ([0-9,]+) bytes .* peak RAM ([0-9,]+) bytes", out)
    assert match, out
    flash, ram = (int(v.replace(",", "")) for v in match.groups())
    assert 10_000 < flash < 200_000 and 1_000 < ram < 100_000, (flash, ram)

    code = summarize_arc.run_command(summarize_arc.CONFIG, ["summarize_arc.py", "-fixed_arc", "0 1 2"],
                                     summarize_arc.main)
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: bad architecture") and len(err.strip().splitlines()) == 1
