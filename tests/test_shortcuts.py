"""Real-valued shortcuts around the quantized convolutions (Bi-Real Net, ``--child_real_shortcuts``):
each op adds exactly the path it claims, only quantized parts get them, and they add no weights."""

import numpy as np
import pytest
import tensorflow as tf

from enas.child import micro_ops
from enas.child.micro_cell import CellCombine
from enas.child.micro_child import MicroChild
from enas.config.child_config import ChildConfig
from enas.config.run_config import RunConfig
from enas.errors import ConfigError
from enas.space.precision import Precision, PrecisionPolicy
from tests.conftest import TINY, TINY_ARC

BINARY_SHORTCUT = Precision("binary", shortcut=True)


def _silence_branches(layer):
    """Zero every batch norm's scale and shift inside ``layer``: each quantized conv's branch
    then outputs exactly 0, and only the shortcuts are left."""
    for sub in layer._flatten_layers():
        if isinstance(sub, micro_ops.BatchNorm):
            sub.gamma.assign(tf.zeros_like(sub.gamma))
            sub.beta.assign(tf.zeros_like(sub.beta))


def _inputs(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype("float32"))


def test_real_shortcut_keeps_equal_shapes_pools_halved_ones_and_fits_channels():
    x = _inputs((2, 4, 4, 3))
    np.testing.assert_array_equal(micro_ops.real_shortcut(x, (2, 4, 4, 3)).numpy(), x.numpy())
    pooled = x.numpy().reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))  # 2x2 blocks
    np.testing.assert_allclose(micro_ops.real_shortcut(x, (None, 2, 2, 5)).numpy(),
                               pooled[..., [0, 1, 2, 0, 1]], rtol=1e-6)
    np.testing.assert_array_equal(micro_ops.real_shortcut(x, (None, 4, 4, 2)).numpy(), x.numpy()[..., :2])
    odd = micro_ops.real_shortcut(_inputs((1, 7, 7, 2)), (None, 4, 4, 2))
    assert odd.shape == (1, 4, 4, 2)


def test_sep_conv_shortcut_adds_the_input_around_each_of_its_two_convs():
    x = _inputs((2, 6, 6, 4))
    op = micro_ops.SepConv(4, 3, precision=BINARY_SHORTCUT)
    op.build(x.shape)
    x1 = x
    for _, conv, bn, _ in op.stack:  # Bi-Real: x_{i+1} = x_i + BN(conv(sign(x_i)))
        x1 = x1 + bn(conv(x1), training=False)
    np.testing.assert_allclose(op(x, training=False).numpy(), x1.numpy(), rtol=1e-5, atol=1e-5)
    _silence_branches(op)
    np.testing.assert_allclose(op(x, training=False).numpy(), x.numpy(), atol=1e-6)
    plain = micro_ops.SepConv(4, 3, precision=Precision("binary"))
    plain.build(x.shape)
    _silence_branches(plain)
    np.testing.assert_allclose(plain(x, training=False).numpy(), 0.0, atol=1e-6)


def test_sep_conv_shortcut_in_a_mixed_precision_search_op():
    x = _inputs((2, 6, 6, 4))
    op = micro_ops.SepConv(4, 3, precision=BINARY_SHORTCUT, batch_stats=True,
                           alternatives=(BINARY_SHORTCUT, Precision("ternary", shortcut=True)))
    op.build(x.shape)
    _silence_branches(op)
    for index in (0, 1):
        np.testing.assert_allclose(op(x, training=True, precision_index=index).numpy(), x.numpy(), atol=1e-6)


def test_factorized_reduce_shortcut_is_the_average_pooled_input():
    x = _inputs((2, 6, 6, 4))
    reduce = micro_ops.FactorizedReduce(8, precision=BINARY_SHORTCUT)
    reduce.build(x.shape)
    _silence_branches(reduce)
    expected = x.numpy().reshape(2, 3, 2, 3, 2, 4).mean(axis=(2, 4))
    np.testing.assert_allclose(reduce(x, training=False).numpy(), np.concatenate([expected] * 2, -1),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["fixed", "search", "static"])
def test_combine_shortcut_is_the_mean_of_the_ids_it_concatenates(mode):
    nodes = [_inputs((2, 3, 3, 4), seed=i) for i in range(4)]  # B = 2: ids 0..3
    cell_arc = tf.constant([0, 0, 1, 0, 2, 0, 0, 0], tf.int32)  # uses ids 0, 1, 2: id 3 unused
    unused = [3]
    combine = CellCombine(4, 4, precision=BINARY_SHORTCUT, fixed_unused=unused if mode == "fixed" else None,
                          static_shapes=mode == "static", batch_stats=mode != "fixed")
    combine.build([n.shape for n in nodes])
    _silence_branches(combine)
    arc = None if mode == "fixed" else cell_arc
    out = combine(nodes, cell_arc=arc, training=False)
    np.testing.assert_allclose(out.numpy(), np.mean([nodes[i].numpy() for i in unused], axis=0), atol=1e-6)
    two_unused = tf.constant([0, 0, 0, 0, 1, 0, 0, 0], tf.int32)  # ids 2 and 3 unused
    if mode != "fixed":
        out = combine(nodes, cell_arc=two_unused, training=False)
        np.testing.assert_allclose(out.numpy(), (nodes[2].numpy() + nodes[3].numpy()) / 2, atol=1e-6)


def test_shortcuts_go_to_the_parts_the_setting_names_and_round_trip():
    overrides = "layer_0=float,layer_2=ternary"
    binary = PrecisionPolicy.from_flags("binary", overrides=overrides)  # the default: "binary"
    assert binary.shortcuts == "binary" and binary.for_part("layer_1").shortcut
    assert not binary.for_part("layer_2").shortcut and not binary.for_part("layer_0").shortcut
    assert not binary.for_part("stem").shortcut and "real shortcuts (binary parts)" in binary.describe()
    everywhere = PrecisionPolicy.from_flags("binary", overrides=overrides, shortcuts="quantized")
    assert everywhere.for_part("layer_2").shortcut and everywhere.with_options("4bit").shortcut
    assert not everywhere.for_part("layer_0").shortcut
    none = PrecisionPolicy.from_flags("binary", shortcuts="none")
    assert not none.for_part("layer_1").shortcut and "shortcuts" not in none.describe()
    assert "shortcuts" not in PrecisionPolicy.from_flags("ternary").describe()  # nothing binary: unchanged
    for policy in (binary, everywhere, none):
        assert PrecisionPolicy.from_json(policy.to_json()) == policy
    recorded_before = {k: v for k, v in binary.to_json().items() if k != "shortcuts"}
    assert PrecisionPolicy.from_json(recorded_before).shortcuts == "none"  # older runs had none
    with pytest.raises(ConfigError, match="quantized"):
        Precision("float", shortcut=True)
    with pytest.raises(ConfigError, match="--child_real_shortcuts"):
        PrecisionPolicy.from_flags("binary", shortcuts="all")


def test_the_flag_sets_the_policy_of_a_run():
    base = {**TINY, "child_fixed_arc": TINY_ARC, "child_quantization": "binary"}
    default = RunConfig.from_settings(base, "train", "mnist")
    off = RunConfig.from_settings({**base, "child_real_shortcuts": "none"}, "train", "mnist")
    assert default.child.policy.shortcuts == "binary" and off.child.policy.shortcuts == "none"


def test_shortcuts_add_no_weights_and_change_the_function():
    def child(shortcuts):
        config = ChildConfig(num_layers=1, num_nodes=2, out_filters=4,
                             policy=PrecisionPolicy.from_flags("binary", shortcuts=shortcuts))
        tf.keras.utils.set_random_seed(0)
        return MicroChild(config, fixed_arc=TINY_ARC).build_for((28, 28, 1))

    with_shortcuts, without = child("binary"), child("none")
    assert with_shortcuts.count_params_used() == without.count_params_used()
    for a, b in zip(with_shortcuts.weights, without.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    images = _inputs((2, 28, 28, 1))
    assert not np.allclose(with_shortcuts(images).numpy(), without(images).numpy())


@pytest.mark.parametrize("odd", [False, True])
def test_factorized_reduce_export_form_splits_its_batch_norm_per_half_with_the_same_output(odd):
    """In a TensorFlow Lite export (saturated inputs) the batch norm after the two halves'
    concatenation runs on each half (so each folds into its convolution): same output."""
    from quantize.base import saturated_inputs

    x = _inputs((2, 7 if odd else 6, 6, 4))
    reduce = micro_ops.FactorizedReduce(10, precision=BINARY_SHORTCUT)
    reduce.build(x.shape)
    rng = np.random.default_rng(0)
    for variable in (reduce.bn.gamma, reduce.bn.beta, reduce.bn.moving_mean):
        variable.assign(rng.normal(size=variable.shape).astype(np.float32))
    reduce.bn.moving_variance.assign(rng.uniform(0.5, 2.0, reduce.bn.moving_variance.shape).astype(np.float32))
    expected = reduce(x, training=False).numpy()
    with saturated_inputs():
        got = reduce(x, training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
