"""Property tests of the quantizers: value sets, idempotence, STE gradient masks, dtypes and
shapes, the registry (quantize.get / serialize), argument validation and config round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import quantize
from binarize import SteSign, binarize
from quantize import (
    SUPPORTED_BITS,
    SteQuantize,
    WeightClip,
    precision_of,
    quantize_uniform,
)
from ternarize import SteTern, ternarize

ALL_BITS = (2, 3, 4, 5, 6, 7, 8, 16)

QUANTIZERS = [
    SteSign(),
    SteSign(channel_scale=True),
    SteSign(clip_value=0.5),
    SteTern(),
    SteTern(rule="fixed"),
    SteTern(rule="fixed", threshold_value=0.3, clip_value=2.0),
    SteTern(twn_factor=0.5),
] + [SteQuantize(bits) for bits in ALL_BITS]


def _ids(quantizers):
    return [repr(q) for q in quantizers]


def _random(shape, seed=0, scale=1.0, dtype=np.float32):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(dtype)


def _grad(fn, x):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x).numpy()


def _twn_reference(x, twn_factor=0.7):
    abs_x = np.abs(x.astype(np.float64))
    delta = twn_factor * abs_x.mean()
    above = abs_x > delta
    a = abs_x[above].mean() if above.any() else 0.0
    return np.where(above, np.sign(x) * a, 0.0), delta, a


def _kbit_reference(x, bits):
    m = np.float32(2 ** (bits - 1))
    return (np.clip(np.round(x.astype(np.float32) * m), -m, m - 1) / m).astype(np.float32)


# --- output value sets -----------------------------------------------------------------------
def test_sign_values_are_exactly_plus_minus_one():
    x = np.concatenate([_random(1000), [0.0, -0.0, 1e-30, -1e-30, 5.0, -5.0]]).astype(np.float32)
    q = SteSign()(x).numpy()
    assert set(np.unique(q)) == {-1.0, 1.0}
    np.testing.assert_array_equal(q, np.where(x >= 0, 1.0, -1.0))
    assert SteSign()(0.0).numpy() == 1.0 and binarize(tf.constant(0.0)).numpy() == 1.0
    assert binarize(tf.constant(-0.0)).numpy() == 1.0


@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (5, 7)])
def test_sign_channel_scale_is_per_last_axis_mean_abs(shape):
    w = _random(shape, seed=1)
    q = SteSign(channel_scale=True)(w).numpy()
    alpha = np.abs(w).reshape(-1, shape[-1]).mean(axis=0)
    np.testing.assert_allclose(q, np.where(w >= 0, 1.0, -1.0) * alpha, rtol=1e-6)
    for c in range(shape[-1]):
        values = np.unique(q[..., c])
        assert len(values) <= 2
        np.testing.assert_allclose(np.abs(values), alpha[c], rtol=1e-6)


@pytest.mark.parametrize("shape,scale", [((1000,), 1.0), ((3, 3, 8, 16), 0.05), ((7,), 3.0)])
def test_ternary_twn_matches_numpy_reference(shape, scale):
    x = _random(shape, seed=2, scale=scale)
    q = SteTern()(x).numpy()
    ref, delta, a = _twn_reference(x)
    assert 0 < delta < a
    np.testing.assert_allclose(np.unique(q), [-a, 0.0, a], rtol=1e-6)
    np.testing.assert_allclose(q, ref, rtol=1e-6)
    np.testing.assert_array_equal(q == 0, np.abs(x) <= delta)
    # The same through the functional op, with another threshold factor.
    q5 = ternarize(tf.constant(x), twn_factor=0.5).numpy()
    np.testing.assert_allclose(q5, _twn_reference(x, 0.5)[0], rtol=1e-6)


def test_ternary_twn_all_zero_input_gives_zero():
    np.testing.assert_array_equal(SteTern()(np.zeros((4, 4), np.float32)).numpy(), 0.0)


def test_ternary_fixed_rule_threshold_half():
    x = np.array([-2.0, -0.51, -0.5, -0.2, 0.0, 0.2, 0.5, 0.5001, 0.9, 3.0], np.float32)
    q = SteTern(rule="fixed")(x).numpy()
    np.testing.assert_array_equal(q, [-1, -1, 0, 0, 0, 0, 0, 1, 1, 1])
    big = _random(10000, seed=3)
    assert set(np.unique(SteTern(rule="fixed")(big).numpy())) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(
        SteTern(rule="fixed", threshold_value=0.25)(x).numpy(), [-1, -1, -1, 0, 0, 0, 1, 1, 1, 1]
    )


@pytest.mark.parametrize("threshold", [0.5, 0.25, 0.3])
def test_ternary_export_form_equals_the_fixed_rule_inside_the_export_block(threshold):
    """Inside ``saturated_inputs`` (the TensorFlow Lite export) the fixed rule is traced as
    multiply / round / min / max; its values are the rule's, at the thresholds too."""
    from quantize.base import saturated_inputs

    quantizer = SteTern(rule="fixed", threshold_value=threshold)
    x = np.concatenate([_random(20000, seed=4) * 2, np.float32([-threshold, threshold, 0.0, -1.0, 1.0])])
    with saturated_inputs():
        np.testing.assert_array_equal(quantizer(x).numpy(), SteTern(rule="fixed", threshold_value=threshold)
                                      .call(tf.constant(x)).numpy())
        graph = tf.function(quantizer).get_concrete_function(tf.TensorSpec([None], tf.float32)).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "Round" in kinds and not kinds & {"Abs", "Sign", "Select", "SelectV2"}


@pytest.mark.parametrize("bits", ALL_BITS)
def test_kbit_levels_range_reference_and_error(bits):
    m = 2 ** (bits - 1)
    x = np.linspace(-2.0, 2.0, 2**19 + 1, dtype=np.float32)  # spacing 2**-17 < level step
    q = quantize_uniform(tf.constant(x), bits).numpy()
    levels = np.unique(q)
    assert len(levels) == 2**bits
    assert levels.min() == -1.0 and levels.max() == 1.0 - 2.0 ** (1 - bits)
    np.testing.assert_array_equal(levels, np.arange(-m, m, dtype=np.float64) / m)
    np.testing.assert_array_equal(q, _kbit_reference(x, bits))
    np.testing.assert_array_equal(SteQuantize(bits)(x).numpy(), q)
    inside = (x >= -1.0) & (x <= 1.0 - 1.0 / m)
    # At most half a step, 1/2**k, attained only at the exact midpoints between levels.
    error = np.abs(q[inside] - x[inside])
    assert error.max() <= 2.0**-bits
    midpoint = np.abs(x[inside] * m) % 1 == 0.5  # x * m is exact in float32
    assert np.all(error[~midpoint] < 2.0**-bits)


def test_kbit_rounds_half_to_even():
    x = np.array([0.0625, 0.1875, -0.0625, -0.1875, 0.3125], np.float32)  # 4-bit ties (2j+1)/16
    np.testing.assert_array_equal(SteQuantize(4)(x).numpy(), [0.0, 0.25, 0.0, -0.25, 0.25])
    np.testing.assert_array_equal(SteQuantize(4)(x).numpy(), _kbit_reference(x, 4))


# --- idempotence --------------------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=_ids(QUANTIZERS))
@pytest.mark.parametrize("shape,scale", [((1000,), 1.0), ((3, 3, 16, 32), 0.1), ((50, 40), 7.0)])
def test_idempotent(quantizer, shape, scale):
    x = _random(shape, seed=4, scale=scale)
    q = quantizer(x)
    np.testing.assert_array_equal(quantizer(q).numpy(), q.numpy())


# --- straight-through gradient masks --------------------------------------------------------
@pytest.mark.parametrize(
    "quantizer", [SteSign(), SteSign(channel_scale=True), SteTern(), SteTern(rule="fixed")],
    ids=["sign", "sign_scaled", "twn", "fixed"],
)
def test_sign_and_ternary_gradient_mask(quantizer):
    x = np.array([-5.0, -1.0001, -1.0, -0.999, -0.3, 0.0, 0.3, 0.999, 1.0, 1.0001, 5.0], np.float32)
    x = x[:, None]  # one channel (last axis) of 11 weights
    expected = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0], np.float32)[:, None]
    if quantizer.get_config().get("channel_scale"):
        expected = expected * np.abs(x).mean()  # alpha is a constant in the backward pass
    np.testing.assert_allclose(_grad(quantizer, x), expected, rtol=1e-6)


def test_gradient_mask_follows_clip_value():
    x = np.array([-2.5, -2.0, -1.5, 1.5, 2.0, 2.0001], np.float32)
    np.testing.assert_array_equal(_grad(SteSign(clip_value=2.0), x), [0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(_grad(SteSign(clip_value=0.5), x[2:4]), [0, 0])


def test_gradient_scales_upstream():
    x = tf.constant([0.5, -0.5, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(SteSign()(x) * tf.constant([2.0, -3.0, 4.0]))
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [2.0, -3.0, 0.0])


@pytest.mark.parametrize("bits", ALL_BITS)
def test_kbit_gradient_mask(bits):
    top = 1.0 - 2.0 ** (1 - bits)
    x = np.array([-1.0001, -1.0, -0.5, 0.0, top - 1e-3, top, top + 1e-3, 1.0, 1.0001], np.float32)
    np.testing.assert_array_equal(_grad(SteQuantize(bits), x), [0, 1, 1, 1, 1, 1, 0, 0, 0])


# --- dtype and shape ---------------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=_ids(QUANTIZERS))
@pytest.mark.parametrize("shape", [(), (3,), (2, 3, 4, 5)])
def test_shape_and_float32_dtype_preserved(quantizer, shape):
    x = tf.constant(_random(shape, seed=5))
    y = quantizer(x)
    assert y.dtype == tf.float32 and tuple(y.shape) == shape


@pytest.mark.parametrize(
    "quantizer",
    [SteSign(), SteSign(channel_scale=True), SteTern(), SteTern(rule="fixed"), SteQuantize(4)],
    ids=["sign", "sign_scaled", "twn", "fixed", "4bit"],
)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3, 4, 5)])
def test_float16_preserved(quantizer, shape):
    x32 = _random(shape, seed=6).astype(np.float16).astype(np.float32)
    y16 = quantizer(tf.constant(x32, tf.float16))
    assert y16.dtype == tf.float16 and tuple(y16.shape) == shape
    np.testing.assert_allclose(y16.numpy().astype(np.float32), quantizer(x32).numpy(), rtol=1e-3)
    g = _grad(quantizer, tf.constant(x32, tf.float16))
    assert g.dtype == np.float16 and g.shape == shape


def test_sign_float16_exact_values_and_gradient():
    x = tf.constant([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 1.001], tf.float16)
    np.testing.assert_array_equal(SteSign()(x).numpy(), [-1, -1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(_grad(SteSign(), x), [0, 1, 1, 1, 1, 1, 0])


# --- registry ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,cls", [("ste_sign", SteSign), ("ste_tern", SteTern), ("ste_quantize", SteQuantize),
                 ("SteSign", SteSign), ("SteTern", SteTern), ("SteQuantize", SteQuantize)],
)
def test_get_by_name(name, cls):
    q = quantize.get(name)
    assert type(q) is cls and q == cls()


@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=_ids(QUANTIZERS))
def test_get_from_serialized_dict(quantizer):
    config = quantize.serialize(quantizer)
    assert isinstance(config, dict) and config["class_name"] == type(quantizer).__name__
    restored = quantize.get(config)
    assert restored == quantizer and restored is not quantizer
    assert restored.get_config() == quantizer.get_config()
    x = _random((4, 5), seed=7)
    np.testing.assert_array_equal(restored(x).numpy(), quantizer(x).numpy())


def test_get_passthrough_none_instance_and_activations():
    assert quantize.get(None) is None and quantize.serialize(None) is None
    q = SteTern(rule="fixed")
    assert quantize.get(q) is q
    relu = quantize.get("relu")
    assert callable(relu) and not isinstance(relu, quantize.Quantizer)
    np.testing.assert_array_equal(relu(tf.constant([-1.0, 2.0])).numpy(), [0.0, 2.0])
    assert quantize.get(quantize.serialize(relu)) is relu
    assert quantize.get(keras.activations.tanh) is keras.activations.tanh
    assert precision_of(None) == 32 and precision_of(relu) == 32


@pytest.mark.parametrize("name", ["ste_nope", "binary", "SteSignn"])
def test_get_unknown_name_raises_naming_it(name):
    with pytest.raises(ValueError, match=repr(name)):
        quantize.get(name)


def test_get_uninterpretable_raises():
    with pytest.raises(ValueError, match="42"):
        quantize.get(42)


def test_precision():
    assert SteSign.precision == 1 and SteSign(channel_scale=True).precision == 1
    assert SteTern().precision == 2 and SteTern(rule="fixed").precision == 2
    for bits in ALL_BITS:
        assert SteQuantize(bits).precision == bits == precision_of(SteQuantize(bits))
    assert SUPPORTED_BITS == ALL_BITS


# --- argument validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,text",
    [
        (lambda: SteQuantize(bits=9), "bits=9"),
        (lambda: SteQuantize(bits=1), "bits=1"),
        (lambda: SteQuantize(bits=True), "bits=True"),
        (lambda: SteQuantize(bits=4.0), "bits=4.0"),
        (lambda: SteQuantize(bits="4"), "bits='4'"),
        (lambda: quantize_uniform(tf.constant(0.5), bits=0), "bits=0"),
        (lambda: SteTern(rule="x"), "rule='x'"),
        (lambda: SteTern(clip_value=0), "clip_value=0"),
        (lambda: SteTern(threshold_value=0), "threshold_value=0"),
        (lambda: SteTern(rule="fixed", threshold_value=1.5), "threshold_value=1.5"),
        (lambda: SteSign(clip_value=0), "clip_value=0"),
        (lambda: SteSign(clip_value=-1.0), "clip_value=-1.0"),
        (lambda: WeightClip(clip_value=0), "clip_value=0"),
    ],
    ids=lambda arg: arg if isinstance(arg, str) else "",
)
def test_bad_arguments_raise_value_error_quoting_value(make, text):
    with pytest.raises(ValueError) as info:
        make()
    assert text in str(info.value)


# --- config round trip --------------------------------------------------------------------------
@pytest.mark.parametrize("quantizer", QUANTIZERS, ids=_ids(QUANTIZERS))
def test_config_round_trip(quantizer):
    config = quantizer.get_config()
    restored = type(quantizer).from_config(config)
    assert restored == quantizer and restored.get_config() == config
    assert hash(restored) == hash(quantizer)
    assert restored.latent_clip == quantizer.latent_clip
    assert restored.precision == quantizer.precision


def test_equality_distinguishes_configs():
    assert SteSign() != SteSign(channel_scale=True)
    assert SteTern() != SteTern(rule="fixed")
    assert SteQuantize(4) != SteQuantize(8)
    assert SteSign() != SteTern()


def test_weight_clip_round_trip_and_values():
    clip = WeightClip(0.5)
    assert WeightClip.from_config(clip.get_config()).get_config() == {"clip_value": 0.5}
    clipped = clip(tf.constant([-2.0, -0.5, 0.1, 0.7])).numpy()
    np.testing.assert_array_equal(clipped, np.float32([-0.5, -0.5, 0.1, 0.5]))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(clip))
    assert isinstance(restored, WeightClip) and restored.clip_value == 0.5
