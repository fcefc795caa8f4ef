"""The micro child: fixed mode builds only the chosen ops, search mode shares one layer per
(layer, node, slot, op) across all architectures, and one compiled step serves every arc."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from enas.child.child_trainer import ChildTrainer, make_optimizer
from enas.child.common_ops import SharedLayers, create_weight
from enas.child.micro_cell import op_key
from enas.child.micro_child import ChildConfig, MicroChild, default_reduction_layers
from enas.child.micro_ops import FactorizedReduce
from enas.errors import ConfigError
from enas.space.arc import parse_arc, random_arc
from enas.space.precision import Precision, PrecisionPolicy
from quantize.base import precision_of
from quantize.layers import QuantizedLayerBase

B = 2
SMALL = dict(num_layers=1, num_nodes=B, out_filters=4)
ARC_A = "0 0 1 2 2 3 0 4 1 1 0 3 2 4 0 0"   # normal node 0 uses x = input 0 with op 0 (sep 3x3)
ARC_B = "0 0 0 3 1 4 2 1 0 2 1 1 0 0 2 3"   # shares normal node0/x/op0 with ARC_A


def images(n=8, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(n, 28, 28, 1)).astype("float32"))


def arc_tensor(text):
    return tf.constant(parse_arc(text).to_list(), tf.int32)


def test_reduction_layers_follow_enas():
    assert default_reduction_layers(6) == (2, 5)
    assert default_reduction_layers(15) == (5, 11)
    assert ChildConfig(num_layers=2).reduction_layers == (0, 1)


def test_fixed_child_builds_only_chosen_ops():
    arc = parse_arc(ARC_A)
    model = MicroChild(ChildConfig(**SMALL), fixed_arc=arc).build_for((28, 28, 1))
    assert model(images(), training=False).shape == (8, 10)
    for layer_id, cell in enumerate(model.cells):
        cell_arc = arc.reduce if layer_id in model.config.reduction_layers else arc.normal
        expected = {op_key(n, s, o) for n, s, o in cell_arc.used_ops()}
        assert set(cell.ops_bank.keys()) == expected
    search = MicroChild(ChildConfig(**SMALL)).build_for((28, 28, 1))
    assert model.count_params_used() < search.count_params_used()


@pytest.fixture(scope="module")
def search_trainer():
    """One search-mode child with a plain-SGD compiled step, shared by the tests below (tracing
    the step is the expensive part)."""
    keras.utils.set_random_seed(1)
    model = MicroChild(ChildConfig(**SMALL)).build_for((28, 28, 1))
    return ChildTrainer(model, make_optimizer("sgd", 0.5), 8, search_mode=True)


def test_search_child_one_trace_for_every_arc_and_only_shared_variables(search_trainer):
    trainer, model = search_trainer, search_trainer.model
    variable_ids = {id(v) for v in model.variables}
    rng = np.random.default_rng(0)
    x, y = images(), tf.constant(np.arange(8) % 10, tf.int32)
    outputs = set()
    for _ in range(4):
        arc = tf.constant(random_arc(B, rng).to_list(), tf.int32)
        out = trainer.train_step(x, y, arc)
        assert np.isfinite(float(out["loss"]))
        outputs.add(round(float(out["loss"]), 5))
    assert trainer.trace_count == 1
    assert {id(v) for v in model.variables} == variable_ids  # nothing created anew
    assert len(outputs) > 1


def test_weight_sharing_between_architectures(search_trainer):
    """ARC_A and ARC_B place sep-conv-3x3 at normal-cell node 0, slot x: they read the same
    variables; a step on ARC_A changes them (and so what ARC_B computes), while an op only ARC_B
    uses is left untouched by plain SGD."""
    trainer, model = search_trainer, search_trainer.model
    normal_cell = model.cells[-1]  # layer 2 of 3 is normal (reductions at 0 and 1)
    assert 2 not in model.config.reduction_layers
    shared = normal_cell.ops_bank[op_key(0, 0, 0)]
    only_b = normal_cell.ops_bank[op_key(1, 1, 1)]  # ARC_B normal node 1, slot y, sep 5x5
    assert 1 not in {o for n, s, o in parse_arc(ARC_A).normal.used_ops() if (n, s) == (1, 1)}
    x, y = images(), tf.constant(np.arange(8) % 10, tf.int32)
    before_b = model(x, arc=arc_tensor(ARC_B), training=True).numpy()
    shared_before = [w.numpy().copy() for w in shared.trainable_weights]
    only_b_before = [w.numpy().copy() for w in only_b.trainable_weights]
    trainer.train_step(x, y, arc_tensor(ARC_A))
    assert trainer.trace_count == 1
    assert any(not np.array_equal(w.numpy(), b) for w, b in zip(shared.trainable_weights, shared_before))
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(only_b.trainable_weights, only_b_before))
    after_b = model(x, arc=arc_tensor(ARC_B), training=True).numpy()
    assert not np.allclose(before_b, after_b)


def test_shared_layers_and_create_weight_get_or_create():
    bank = SharedLayers()
    first = bank.get_or_create("node0/x/op0", lambda: keras.layers.Dense(2))
    assert bank.get_or_create("node0/x/op0", lambda: pytest.fail("made twice")) is first
    owner = keras.layers.Layer()
    w = create_weight(owner, "w", (3, 3))
    assert create_weight(owner, "w", (3, 3)) is w and len(owner.weights) == 1
    with pytest.raises(ValueError, match="exists with shape"):
        create_weight(owner, "w", (2, 3))


def _quantized_layers(layer):
    """Every quantized Keras layer (conv, separable conv, dense) inside ``layer``."""
    return [sub for sub in layer._flatten_layers() if isinstance(sub, QuantizedLayerBase)]


@pytest.mark.parametrize("precision", ["binary", "ternary", "quantized:4", "float"])
def test_precision_reaches_every_conv(precision):
    """Every quantized conv of layer 0 (its cell and its factorized reduction) stores 2 bits (the
    override), every one of layers 1 and 2 the default's bits, stem and classifier stay float;
    and the convs checked are all of them: two separable convs per sep-conv op the arc uses, two
    1x1 convs per factorized reduction."""
    policy = PrecisionPolicy.from_flags(precision, overrides="layer_0=quantized:2")
    model = MicroChild(ChildConfig(**SMALL, policy=policy), fixed_arc=ARC_A).build_for((28, 28, 1))
    arc = parse_arc(ARC_A)
    expected_bits = {"binary": 1, "ternary": 2, "quantized:4": 4, "float": 32}[precision]
    assert model.stem.kernel_quantizer is None and model.classifier.kernel_quantizer is None
    assert model.stem.bits_per_weight == model.classifier.bits_per_weight == 32
    assert model.config.reduction_layers == (0, 1) and len(model.cells) == 3
    checked = [model.stem, model.classifier]
    for layer_id, (reducer, cell) in enumerate(zip(model.reducers, model.cells)):
        bits = 2 if layer_id == 0 else expected_bits
        cell_arc = arc.reduce if layer_id in model.config.reduction_layers else arc.normal
        sep_ops = [key for key in cell_arc.used_ops() if model.space.ops[key[2]].has_weights]
        reductions = [r for r in [reducer, *cell.calibrations] if isinstance(r, FactorizedReduce)]
        assert (reducer is not None) == (layer_id in model.config.reduction_layers)
        convs = _quantized_layers(cell) + ([] if reducer is None else _quantized_layers(reducer))
        assert sorted(type(c).__name__ for c in convs) == sorted(
            ["QuantSeparableConv2D"] * 2 * len(sep_ops) + ["QuantConv2D"] * 2 * len(reductions)), layer_id
        assert sep_ops and {c.bits_per_weight for c in convs} == {bits}, (layer_id, [c.bits_per_weight for c in convs])
        # the convs that quantize their input (the sep convs) read activations of the same width
        assert {c.activation_bits for c in convs if c.input_quantizer is not None} == {bits}
        assert precision_of(cell.combine.kernel_quantizer) == bits  # the cell's output 1x1 conv
        checked += convs
    # nothing quantized escaped the walk above
    assert sorted(id(c) for c in checked) == sorted(id(c) for c in _quantized_layers(model))


def test_quantize_stem_and_classifier_flags():
    policy = PrecisionPolicy.from_flags("binary", quantize_stem=True, quantize_classifier=True)
    model = MicroChild(ChildConfig(**SMALL, policy=policy), fixed_arc=ARC_A).build_for((28, 28, 1))
    assert model.stem.bits_per_weight == 1 and model.stem.input_quantizer is None
    assert model.classifier.bits_per_weight == 1


def test_original_mix_preset():
    policy = PrecisionPolicy.from_flags("ternary", overrides="original")
    assert policy.for_part("stem") == Precision("quantized", 4)
    assert policy.for_part("layer_0") == Precision("quantized", 4)
    assert policy.for_part("layer_1") == Precision("ternary")
    assert policy.for_part("classifier") == Precision("float")


@pytest.mark.parametrize("kwargs,fragment", [
    (dict(num_nodes=0), "num_nodes"),
    (dict(keep_prob=0.0), "keep_prob"),
    (dict(num_layers=2, reduction_layers=(7,)), "out of range"),
])
def test_child_config_validation(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ChildConfig(**kwargs)


def test_aux_head_and_drop_path_in_training_only():
    config = ChildConfig(num_layers=3, num_nodes=B, out_filters=4, use_aux_heads=True,
                         drop_path_keep_prob=0.5)
    model = MicroChild(config, fixed_arc=ARC_A).build_for((28, 28, 1))
    logits, aux = model(images(), training=True, return_aux=True)
    assert aux.shape == (8, 10)
    _, aux_eval = model(images(), training=False, return_aux=True)
    assert aux_eval is None
    x = images()
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    # Training drops paths: two training-mode passes differ (batch norm uses the batch either
    # way), while the same network without drop path gives the same output twice.
    assert not np.allclose(model(x, training=True), model(x, training=True))
    keep_all = MicroChild(ChildConfig(num_layers=3, num_nodes=B, out_filters=4), fixed_arc=ARC_A)
    keep_all.build_for((28, 28, 1))
    np.testing.assert_allclose(keep_all(x, training=True), keep_all(x, training=True), rtol=1e-5, atol=1e-6)


def test_drop_path_rate_follows_depth_and_progress():
    config = ChildConfig(num_layers=4, num_nodes=B, out_filters=4, drop_path_keep_prob=0.6)
    model = MicroChild(config, fixed_arc=ARC_A).build_for((28, 28, 1))
    total = config.num_layers + 2
    for layer_id, cell in enumerate(model.cells):  # ENAS: deeper layers drop more
        layer_keep = 1 - (layer_id + 1) / total * 0.4
        assert cell.keep_probability(1.0) == pytest.approx(layer_keep)
        assert cell.keep_probability(0.5) == pytest.approx(1 - 0.5 * (1 - layer_keep))
        assert cell.keep_probability(0.0) == 1.0
    # The measured drop rate of the last cell at full progress matches its keep probability.
    cell = model.cells[-1]
    ones = tf.ones((4000, 1, 1, 1))
    kept = np.asarray(cell._drop_path(ones, training=True, drop_path_scale=1.0)).ravel()
    keep = cell.keep_probability(1.0)
    assert abs(np.mean(kept > 0) - keep) < 0.03
    np.testing.assert_allclose(kept[kept > 0], 1 / keep, rtol=1e-6)  # kept paths are rescaled
    np.testing.assert_array_equal(cell._drop_path(ones, training=False, drop_path_scale=1.0), ones)
    # The trainer advances the progress each step: min(1, (step + 1) / drop_path_steps).
    trainer = ChildTrainer(model, make_optimizer("sgd", 0.0), 8, drop_path_steps=4)
    labels = tf.zeros((8,), tf.int32)
    seen = []
    for _ in range(6):
        trainer.train_step(images(), labels)
        seen.append(float(model.drop_path_scale.numpy()))
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    no_drop = MicroChild(ChildConfig(num_layers=0, num_nodes=B, out_filters=4), fixed_arc=ARC_A)
    no_drop.build_for((28, 28, 1))
    ChildTrainer(no_drop, make_optimizer("sgd", 0.0), 8, drop_path_steps=4).train_step(images(), labels)
    assert float(no_drop.drop_path_scale.numpy()) == 1.0  # without drop path it is left alone
