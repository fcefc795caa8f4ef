"""Tests of the quantized Keras layers: output shapes, equivalence with the Keras parents, forward
passes with quantized kernels, latent-weight clipping, precision reporting, .keras round trips,
and a toy image task learned by binary, ternary and 4-bit conv nets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import binarize
import quantize
import ternarize
from binarize import SteSign
from quantize import (
    QuantConv2D,
    QuantDense,
    QuantDepthwiseConv2D,
    QuantSeparableConv2D,
    SteQuantize,
    WeightClip,
)
from ternarize import SteTern

KINDS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")
GENERIC = {
    "Conv2D": (QuantConv2D, keras.layers.Conv2D),
    "DepthwiseConv2D": (QuantDepthwiseConv2D, keras.layers.DepthwiseConv2D),
    "SeparableConv2D": (QuantSeparableConv2D, keras.layers.SeparableConv2D),
    "Dense": (QuantDense, keras.layers.Dense),
}
# (family name, factory of kind, extra kwargs, expected bits per weight/activation)
FAMILIES = [
    ("Binary", lambda kind: getattr(binarize, f"Binary{kind}"), {}, 1),
    ("Ternary", lambda kind: getattr(ternarize, f"Ternary{kind}"), {}, 2),
    ("Quantized4", lambda kind: getattr(quantize, f"Quantized{kind}"), {}, 4),
    ("Quantized2", lambda kind: getattr(quantize, f"Quantized{kind}"), {"bits": 2}, 2),
    ("Quantized8", lambda kind: getattr(quantize, f"Quantized{kind}"), {"bits": 8}, 8),
]
FAMILY_IDS = [f[0] for f in FAMILIES]

# kind -> (positional args, extra kwargs, input shape, expected output shape)
SHAPES = {
    "Conv2D": ((5, 3), {"padding": "same"}, (2, 8, 8, 3), (2, 8, 8, 5)),
    "DepthwiseConv2D": ((3,), {"depth_multiplier": 2}, (2, 8, 8, 3), (2, 6, 6, 6)),
    "SeparableConv2D": ((5, 3), {"strides": 2, "padding": "same"}, (2, 8, 8, 3), (2, 4, 4, 5)),
    "Dense": ((7,), {}, (2, 3, 10), (2, 3, 7)),
}


def _input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _kernel_attrs(layer):
    return [attr for attr, _, _ in layer._kernel_args]


def _sign(w):
    return np.where(w >= 0, 1.0, -1.0).astype(np.float32)


# --- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_generic_layer_shapes(kind):
    args, kwargs, in_shape, out_shape = SHAPES[kind]
    cls = GENERIC[kind][0]
    for quantizers in ({}, {"kernel_quantizer": "ste_sign", "input_quantizer": "ste_sign"}):
        layer = cls(*args, **kwargs, **quantizers)
        assert tuple(layer(_input(in_shape)).shape) == out_shape
        symbolic = cls(*args, **kwargs, **quantizers)(keras.Input(in_shape[1:]))
        assert tuple(symbolic.shape) == (None,) + out_shape[1:]


@pytest.mark.parametrize("family,factory,extra,bits", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_preset_shapes_and_types(kind, family, factory, extra, bits):
    args, kwargs, in_shape, out_shape = SHAPES[kind]
    layer = factory(kind)(*args, **kwargs, **extra)
    assert isinstance(layer, GENERIC[kind][0])
    assert isinstance(layer, GENERIC[kind][1])
    y = layer(_input(in_shape))
    assert tuple(y.shape) == out_shape and y.dtype == "float32"


@pytest.mark.parametrize("kind", KINDS)
def test_without_quantizers_equals_keras_parent(kind):
    args, kwargs, in_shape, _ = SHAPES[kind]
    cls, parent = GENERIC[kind]
    kwargs = {**kwargs, "activation": "relu", "bias_initializer": "random_normal"}
    layer, reference = cls(*args, **kwargs), parent(*args, **kwargs)
    layer.build(in_shape)
    reference.build(in_shape)
    reference.set_weights(layer.get_weights())
    assert layer.kernel_quantizer is None and layer.input_quantizer is None
    x = _input(in_shape, seed=1)
    np.testing.assert_array_equal(layer(x).numpy(), reference(x).numpy())
    for attr in _kernel_attrs(layer):
        assert getattr(layer, attr).constraint is None


# --- forward pass uses the quantized kernels ---------------------------------------------------
def test_dense_forward_is_input_times_sign_of_kernel():
    w = _input((6, 4), seed=2) * 0.5
    b = _input((4,), seed=3)
    x = _input((5, 6), seed=4)
    float_input = binarize.BinaryDense(4, input_quantizer=None)
    float_input.build((None, 6))
    float_input.set_weights([w, b])
    np.testing.assert_allclose(float_input(x).numpy(), x @ _sign(w) + b, rtol=1e-5, atol=1e-5)
    binary = binarize.BinaryDense(4)
    binary.build((None, 6))
    binary.set_weights([w, b])
    np.testing.assert_array_equal(binary(x).numpy(), _sign(x) @ _sign(w) + b)
    np.testing.assert_array_equal(binary.quantized_kernels["kernel"].numpy(), _sign(w))
    np.testing.assert_array_equal(binary.kernel.numpy(), w)  # latent weights untouched


def test_dense_channel_scaled_kernel():
    w = _input((6, 4), seed=5)
    layer = binarize.BinaryDense(4, kernel_quantizer=SteSign(channel_scale=True), use_bias=False)
    layer.build((None, 6))
    layer.set_weights([w])
    x = _input((3, 6), seed=6)
    expected = _sign(x) @ (_sign(w) * np.abs(w).mean(axis=0))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5)


def test_ternary_conv_forward_uses_twn_kernel_and_fixed_input():
    w = _input((3, 3, 2, 4), seed=7) * 0.3
    x = _input((2, 6, 6, 2), seed=8)
    layer = ternarize.TernaryConv2D(4, 3, use_bias=False)
    layer.build((None, 6, 6, 2))
    layer.set_weights([w])
    abs_w = np.abs(w.astype(np.float64))
    delta = 0.7 * abs_w.mean()
    w_q = np.where(abs_w > delta, np.sign(w) * abs_w[abs_w > delta].mean(), 0.0).astype(np.float32)
    x_q = np.where(np.abs(x) > 0.5, np.sign(x), 0.0).astype(np.float32)
    np.testing.assert_allclose(layer.quantized_kernels["kernel"].numpy(), w_q, rtol=1e-6)
    expected = tf.nn.conv2d(x_q, w_q, strides=1, padding="VALID").numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_kbit_depthwise_forward():
    w = np.random.default_rng(9).uniform(-1, 1, size=(3, 3, 3, 2)).astype(np.float32)
    x = _input((2, 7, 7, 3), seed=10) * 0.5
    layer = quantize.QuantizedDepthwiseConv2D(3, depth_multiplier=2, bits=4, use_bias=False)
    layer.build((None, 7, 7, 3))
    layer.set_weights([w])

    def q4(t):
        return np.clip(np.round(t * 8), -8, 7) / 8

    expected = tf.nn.depthwise_conv2d(q4(x), q4(w), strides=[1, 1, 1, 1], padding="VALID")
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_binary_separable_forward_quantizes_both_kernels():
    dw = _input((3, 3, 3, 1), seed=11)
    pw = _input((1, 1, 3, 4), seed=12)
    x = _input((2, 6, 6, 3), seed=13)
    layer = binarize.BinarySeparableConv2D(4, 3, use_bias=False)
    layer.build((None, 6, 6, 3))
    layer.set_weights([dw, pw])
    quantized = layer.quantized_kernels
    assert sorted(quantized) == ["depthwise_kernel", "pointwise_kernel"]
    np.testing.assert_array_equal(quantized["pointwise_kernel"].numpy(), _sign(pw))
    expected = tf.nn.separable_conv2d(_sign(x), _sign(dw), _sign(pw), [1, 1, 1, 1], "VALID")
    np.testing.assert_allclose(layer(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_activation_as_input_quantizer():
    layer = QuantDense(3, input_quantizer="relu", use_bias=False)
    layer.build((None, 4))
    w = _input((4, 3), seed=14)
    layer.set_weights([w])
    x = _input((2, 4), seed=15)
    np.testing.assert_allclose(layer(x).numpy(), np.maximum(x, 0) @ w, rtol=1e-5, atol=1e-6)


# --- latent weight clipping ---------------------------------------------------------------------
@pytest.mark.parametrize("family,factory,extra,bits", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", ["Dense", "SeparableConv2D"])
def test_latent_weights_clipped_after_optimizer_step(kind, family, factory, extra, bits):
    in_shape = (1, 2) if kind == "Dense" else (1, 1, 1, 2)
    layer = factory(kind)(3, *([] if kind == "Dense" else [1]), input_quantizer=None,
                          use_bias=False, **extra)
    layer.build(in_shape)
    # Inside the STE range, so the gradient passes: 0.99 (sign/ternary), below 1 - 1/m (k-bit).
    start = 0.99 if family in ("Binary", "Ternary") else 1.0 - 2.0 ** (1 - bits) - 0.01
    for attr in _kernel_attrs(layer):
        variable = getattr(layer, attr)
        assert isinstance(variable.constraint, WeightClip)
        assert variable.constraint.clip_value == _top_level(family, bits)
        value = np.full(variable.shape, start, np.float32)
        value[..., 1, :] = -start  # second input channel: pushed down
        variable.assign(value)
    x = np.array([1.0, -1.0], np.float32).reshape(in_shape)
    optimizer = keras.optimizers.SGD(learning_rate=10.0)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(layer(x))
    variables = [getattr(layer, attr) for attr in _kernel_attrs(layer)]
    gradients = tape.gradient(loss, variables)
    assert all(np.any(g.numpy() != 0) for g in gradients)
    optimizer.apply_gradients(zip(gradients, variables))
    kernel = variables[-1].numpy()  # the kernel that sees x directly for Dense, pointwise otherwise
    top = _top_level(family, bits)
    first = variables[0].numpy()
    assert np.any(first == top) or np.any(first == -1.0)  # the step hit a bound and stopped there
    if kind == "Dense":
        np.testing.assert_array_equal(kernel[0], _top_level(family, bits))
        np.testing.assert_array_equal(kernel[1], -1.0)
    for variable in variables:
        assert np.all((variable.numpy() >= -1.0) & (variable.numpy() <= top))


def _top_level(family, bits):
    """Upper latent clip: 1 for sign/ternary, the top k-bit level 1 - 2**(1-k) for k-bit."""
    return 1.0 if family in ("Binary", "Ternary") else 1.0 - 2.0 ** (1 - bits)


def test_dense_step_without_clip_leaves_range():
    layer = QuantDense(2, use_bias=False)
    layer.build((1, 2))
    layer.kernel.assign(np.full((2, 2), 0.99, np.float32))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(layer(np.ones((1, 2), np.float32)))
    grads = tape.gradient(loss, [layer.kernel])
    keras.optimizers.SGD(learning_rate=10.0).apply_gradients(zip(grads, [layer.kernel]))
    np.testing.assert_allclose(layer.kernel.numpy(), 10.99, rtol=1e-6)


@pytest.mark.parametrize("family,factory,extra,bits", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_constraint_default_for_quantized_kernels(kind, family, factory, extra, bits):
    args, kwargs, in_shape, _ = SHAPES[kind]
    layer = factory(kind)(*args, **kwargs, **extra)
    layer.build(in_shape)
    for attr in _kernel_attrs(layer):
        constraint = getattr(layer, attr).constraint
        assert isinstance(constraint, WeightClip)
        assert (constraint.min_value, constraint.clip_value) == (-1.0, _top_level(family, bits))
    if layer.use_bias:
        assert layer.bias.constraint is None


@pytest.mark.parametrize("kind", KINDS)
def test_no_constraint_for_float_kernels_and_explicit_constraint_kept(kind):
    args, kwargs, in_shape, _ = SHAPES[kind]
    cls = GENERIC[kind][0]
    layer = cls(*args, **kwargs, input_quantizer="ste_sign")
    layer.build(in_shape)
    for attr in _kernel_attrs(layer):
        assert getattr(layer, attr).constraint is None
    constraint_args = {arg: keras.constraints.NonNeg() for _, _, arg in cls._kernel_args}
    layer = cls(*args, **kwargs, kernel_quantizer="ste_sign", **constraint_args)
    layer.build(in_shape)
    for attr in _kernel_attrs(layer):
        assert isinstance(getattr(layer, attr).constraint, keras.constraints.NonNeg)


def test_clip_follows_quantizer_clip_value():
    layer = QuantDense(2, kernel_quantizer=SteSign(clip_value=0.5))
    layer.build((None, 3))
    assert layer.kernel.constraint.clip_value == 0.5


def test_shared_quantizer_instance_gives_independent_initial_kernels():
    shared = SteQuantize(4)
    first = QuantConv2D(4, 3, kernel_quantizer=shared)
    second = QuantConv2D(4, 3, kernel_quantizer=shared)
    first.build((None, 8, 8, 4))
    second.build((None, 8, 8, 4))
    assert not np.array_equal(first.kernel.numpy(), second.kernel.numpy())
    sep = quantize.QuantizedSeparableConv2D(4, 1, depth_multiplier=4)
    sep.build((None, 8, 8, 1))
    depthwise, pointwise = sep.depthwise_kernel.numpy().ravel(), sep.pointwise_kernel.numpy().ravel()
    assert not np.array_equal(depthwise, pointwise)
    # k-bit kernels start spread over the whole fixed range.
    assert np.abs(first.kernel.numpy()).max() > 0.8 and np.abs(first.kernel.numpy()).max() <= 1.0


# --- precision reporting ------------------------------------------------------------------------
@pytest.mark.parametrize("family,factory,extra,bits", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("kind", KINDS)
def test_bits_reporting_presets(kind, family, factory, extra, bits):
    args, kwargs, _, _ = SHAPES[kind]
    layer = factory(kind)(*args, **kwargs, **extra)
    assert layer.bits_per_weight == bits and layer.activation_bits == bits


@pytest.mark.parametrize("bits", [3, 5, 6, 7, 16])
def test_bits_reporting_kbit(bits):
    layer = quantize.QuantizedConv2D(4, 3, bits=bits)
    assert layer.bits_per_weight == bits and layer.activation_bits == bits


def test_bits_reporting_mixed_and_float():
    assert QuantDense(3).bits_per_weight == 32 and QuantDense(3).activation_bits == 32
    layer = binarize.BinaryConv2D(4, 3, input_quantizer=None)
    assert layer.bits_per_weight == 1 and layer.activation_bits == 32
    layer = QuantDense(3, input_quantizer="relu", kernel_quantizer=SteTern())
    assert layer.bits_per_weight == 2 and layer.activation_bits == 32
    layer = quantize.QuantizedDense(3, bits=8, input_quantizer=SteQuantize(4))
    assert layer.bits_per_weight == 8 and layer.activation_bits == 4


def test_bad_bits_in_preset_raises():
    with pytest.raises(ValueError, match="bits=9"):
        quantize.QuantizedConv2D(4, 3, bits=9)


# --- serialization ------------------------------------------------------------------------------
def _quantizer_configs(model):
    return {
        layer.name: (
            quantize.serialize(layer.kernel_quantizer),
            quantize.serialize(layer.input_quantizer),
        )
        for layer in model.layers
        if isinstance(layer, quantize.QuantizedLayerBase)
    }


def test_layer_config_round_trip():
    layer = ternarize.TernarySeparableConv2D(4, 3, kernel_quantizer=SteTern(twn_factor=0.6))
    restored = QuantSeparableConv2D.from_config(layer.get_config())
    assert restored.kernel_quantizer == SteTern(twn_factor=0.6)
    assert restored.input_quantizer == SteTern(rule="fixed")
    assert restored.get_config() == layer.get_config()


def test_model_save_and_reload(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = binarize.BinaryConv2D(8, 3, padding="same", input_quantizer=None)(inputs)
    h = keras.layers.BatchNormalization()(h)
    h = ternarize.TernarySeparableConv2D(8, 3, padding="same")(h)
    h = keras.layers.BatchNormalization()(h)
    h = quantize.QuantizedDepthwiseConv2D(3, bits=4)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = binarize.BinaryDense(4, kernel_quantizer=SteSign(channel_scale=True))(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _input((32, 8, 8, 3), seed=16)
    model.fit(x, np.arange(32) % 4, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "quantized.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert _quantizer_configs(reloaded) == _quantizer_configs(model)
    assert len(_quantizer_configs(model)) == 4
    for before, after in zip(model.layers, reloaded.layers):
        assert type(before) is type(after)
        if isinstance(before, quantize.QuantizedLayerBase):
            assert after.kernel_quantizer == before.kernel_quantizer
            assert after.input_quantizer == before.input_quantizer
            assert after.bits_per_weight == before.bits_per_weight
            for attr in _kernel_attrs(before):
                after_clip = getattr(after, attr).constraint.get_config()
                assert after_clip == getattr(before, attr).constraint.get_config()


def test_sequential_save_and_reload(tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        quantize.QuantizedConv2D(4, 3, bits=3, input_quantizer="relu"),
        keras.layers.Flatten(),
        ternarize.TernaryDense(3, input_quantizer=None),
    ])
    x = _input((5, 6, 6, 2), seed=17)
    path = tmp_path / "sequential.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    assert _quantizer_configs(reloaded) == _quantizer_configs(model)
    assert reloaded.layers[0].activation_bits == 32 and reloaded.layers[0].bits_per_weight == 3


# --- learning a toy task ------------------------------------------------------------------------
def _bars(n, seed):
    """8x8x1 images of 4 classes: horizontal bar, vertical bar, diagonal, blank; plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    images = rng.normal(0.0, 0.3, size=(n, 8, 8, 1)).astype(np.float32)
    index = np.arange(8)
    for image, label in zip(images, labels):
        k = rng.integers(1, 7)
        if label == 0:
            image[k, :, 0] += 1.0
        elif label == 1:
            image[:, k, 0] += 1.0
        elif label == 2:
            column = index + rng.integers(-2, 3)
            keep = (column >= 0) & (column < 8)
            image[index[keep], column[keep], 0] += 1.0
    return images, labels.astype(np.int32)


def _toy_model(conv, **kwargs):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)  # float stem
    h = keras.layers.BatchNormalization(momentum=0.9)(h)
    for _ in range(2):
        h = conv(32, 3, padding="same", use_bias=False, **kwargs)(h)
        h = keras.layers.BatchNormalization(momentum=0.9)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(4, activation="softmax")(h)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "conv,kwargs,bits",
    [(binarize.BinaryConv2D, {}, 1), (ternarize.TernaryConv2D, {}, 2),
     (quantize.QuantizedConv2D, {"bits": 4}, 4)],
    ids=["binary", "ternary", "4bit"],
)
def test_quantized_conv_net_learns_toy_task(conv, kwargs, bits):
    keras.utils.set_random_seed(0)
    x, y = _bars(1024, seed=0)
    x_test, y_test = _bars(400, seed=1)
    model = _toy_model(conv, **kwargs)
    quantized = [layer for layer in model.layers if isinstance(layer, quantize.QuantizedLayerBase)]
    assert len(quantized) == 2 and all(layer.bits_per_weight == bits for layer in quantized)
    kernels_before = [layer.quantized_kernels["kernel"].numpy() for layer in quantized]
    model.compile(
        keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    initial_loss = model.evaluate(x, y, batch_size=256, verbose=0)[0]
    history = model.fit(x, y, batch_size=64, epochs=4, verbose=0)
    final_loss, _ = model.evaluate(x, y, batch_size=256, verbose=0)
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert final_loss < 0.25 * initial_loss and final_loss < 0.3
    assert test_accuracy >= 0.8  # chance: 0.25
    for layer, before in zip(quantized, kernels_before):
        after = layer.quantized_kernels["kernel"].numpy()
        assert np.mean(after != before) > 0.05  # the quantized weights themselves were learned
        assert np.abs(layer.kernel.numpy()).max() <= 1.0
