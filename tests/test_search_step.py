"""The fast search step: it computes exactly what the fixed network of the same architecture
computes, its pieces (run-time id reads, recomputed max-pool gradient, masked combine) match the
plain ops, and the XLA variant compiles once for every architecture and gives the same loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from enas.child.child_trainer import ChildTrainer, WithoutGrappler, make_optimizer
from enas.child.micro_cell import CellCombine, NodeStates
from enas.child.micro_child import ChildConfig, MicroChild
from enas.child.micro_ops import FactorizedReduce, max_pool_3x3_recomputed
from enas.space.arc import parse_arc, random_arc
from enas.space.precision import Precision, PrecisionPolicy

# Every op appears in each cell: sep 3x3, sep 5x5, avg, max, identity (B = 3).
ARC = "0 0 1 1 2 2 1 3 3 4 0 0 1 3 0 2 2 4 1 1 0 0 3 3"


def _images(n=6, shape=(28, 28, 1), seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=(n,) + shape).astype("float32"))


def test_max_pool_recomputed_matches_max_pool():
    x = _images(4, (9, 9, 3), seed=1)
    upstream = _images(4, (9, 9, 3), seed=2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = max_pool_3x3_recomputed(x)
        plain = tf.nn.max_pool2d(x, 3, 1, "SAME")
        loss_ours, loss_plain = tf.reduce_sum(ours * upstream), tf.reduce_sum(plain * upstream)
    np.testing.assert_array_equal(ours.numpy(), plain.numpy())
    np.testing.assert_allclose(tape.gradient(loss_ours, x).numpy(), tape.gradient(loss_plain, x).numpy(),
                               rtol=1e-6, atol=1e-6)


def test_node_states_read_and_gather_at_run_time_ids():
    nodes = [tf.fill((2, 3, 3, 4), float(i)) for i in range(5)]

    @tf.function(autograph=False)
    def pick(index, indices):
        states = NodeStates(nodes[:2], 5)
        for node in nodes[2:]:
            states.append(node)
        return states.read(index), states.gather(indices)

    one, some = pick(tf.constant(3), tf.constant([0, 2, 4]))
    assert float(one[0, 0, 0, 0]) == 3.0
    assert some.shape == (3, 2, 3, 3, 4)
    assert some[:, 0, 0, 0, 0].numpy().tolist() == [0.0, 2.0, 4.0]


def _transplant(search, fixed):
    """Copy the search child's weights of ``fixed``'s architecture into ``fixed``."""
    fixed.stem.set_weights(search.stem.get_weights())
    fixed.stem_bn.set_weights(search.stem_bn.get_weights())
    fixed.classifier.set_weights(search.classifier.get_weights())
    for s_red, f_red in zip(search.reducers, fixed.reducers):
        if s_red is not None:
            f_red.set_weights(s_red.get_weights())
    for s_cell, f_cell in zip(search.cells, fixed.cells):
        for s_cal, f_cal in zip(s_cell.calibrations, f_cell.calibrations):
            f_cal.set_weights(s_cal.get_weights())
        for key in f_cell.ops_bank.keys():
            f_cell.ops_bank[key].set_weights(s_cell.ops_bank[key].get_weights())
        kernel, *bn = s_cell.combine.get_weights()
        f_cell.combine.set_weights([kernel[list(f_cell.fixed_cell.unused_ids())], *bn])


@pytest.mark.parametrize("precision", ["float", "binary"])
def test_search_child_computes_the_fixed_network(precision):
    arc = parse_arc(ARC)
    config = ChildConfig(num_layers=1, num_nodes=3, out_filters=4,
                         policy=PrecisionPolicy.from_flags(precision))
    search = MicroChild(config).build_for((28, 28, 1))
    fixed = MicroChild(config, fixed_arc=arc).build_for((28, 28, 1))
    _transplant(search, fixed)
    x = _images()
    arc_tensor = tf.constant(arc.to_list(), tf.int32)
    with tf.GradientTape(persistent=True) as tape:
        ours = search(x, arc=arc_tensor, training=True)
        theirs = fixed(x, training=True)
        loss_ours, loss_theirs = tf.reduce_sum(ours ** 2), tf.reduce_sum(theirs ** 2)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)
    grad_ours = tape.gradient(loss_ours, search.stem.kernel)
    grad_theirs = tape.gradient(loss_theirs, fixed.stem.kernel)
    np.testing.assert_allclose(grad_ours.numpy(), grad_theirs.numpy(), rtol=1e-3, atol=1e-4)


def test_static_shapes_combine_matches_the_gathered_one():
    config = ChildConfig(num_layers=0, num_nodes=3, out_filters=4,
                         policy=PrecisionPolicy.from_flags("float"))
    model = MicroChild(config).build_for((28, 28, 1))
    x = _images()
    rng = np.random.default_rng(4)
    for _ in range(3):
        arc = tf.constant(random_arc(3, rng).to_list(), tf.int32)
        outputs = []
        for static in (False, True):
            for cell in model.cells:
                cell.combine.static_shapes = static
            outputs.append(model(x, arc=arc, training=True).numpy())
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


def test_xla_search_step_compiles_once_and_gives_the_same_loss():
    """The XLA path (``jit_compile=True`` with ``static_shapes=True``) from the same weights
    gives the default path's loss for several architectures, tracing once. The learning rate is
    0 so every step starts from the same weights: after an update the two paths may differ
    legitimately (max pooling's gradient picks among tied maxima differently under XLA)."""
    config = ChildConfig(num_layers=0, num_nodes=2, out_filters=2,
                         policy=PrecisionPolicy.from_flags("float"))
    rng = np.random.default_rng(0)
    arcs = [tf.constant(random_arc(2, rng).to_list(), tf.int32) for _ in range(2)]
    x = _images(4)
    y = tf.constant([0, 1, 2, 3], tf.int32)
    keras.utils.set_random_seed(0)
    plain = MicroChild(config).build_for((28, 28, 1))
    compiled = MicroChild(config, static_shapes=True).build_for((28, 28, 1))
    compiled.set_weights(plain.get_weights())
    losses = []
    for model, jit in ((plain, False), (compiled, True)):
        trainer = ChildTrainer(model, make_optimizer("sgd", 0.0), 4, search_mode=True, jit_compile=jit)
        losses.append([float(trainer.train_step(x, y, arc)["loss"]) for arc in arcs])
        assert trainer.trace_count == 1
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4, atol=1e-5)


def test_xla_refuses_a_dynamic_shape_child():
    model = MicroChild(ChildConfig(num_layers=0, num_nodes=2, out_filters=2)).build_for((28, 28, 1))
    with pytest.raises(ValueError, match="static_shapes"):
        ChildTrainer(model, make_optimizer("sgd", 0.1), 4, search_mode=True, jit_compile=True)


def test_without_grappler_restores_the_option():
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    seen = []

    def probe(value):
        seen.append(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))
        return value * 2

    assert float(WithoutGrappler(tf.function(probe))(tf.constant(3.0))) == 6.0
    assert seen == [True]
    assert tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False) == before


@pytest.mark.parametrize("size", [5, 7, 8, 14, 28])
def test_factorized_reduce_equals_the_strided_slice_form(size):
    """The stride-2 convs compute ENAS's ``conv(x[::2, ::2]) ++ conv(pad(x)[1:, 1:][::2, ::2])``."""
    layer = FactorizedReduce(6, precision=Precision("float"))
    layer.build((None, size, size, 3))
    x = _images(2, (size, size, 3), seed=size)
    a = layer.activation(x)
    even = a[:, ::2, ::2, :]
    odd = tf.pad(a, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :][:, ::2, ::2, :]
    ref = tf.concat([tf.nn.conv2d(even, layer.paths[0].kernel, 1, "SAME"),
                     tf.nn.conv2d(odd, layer.paths[1].kernel, 1, "SAME")], axis=-1)
    ref, _, _ = tf.compat.v1.nn.fused_batch_norm(ref, layer.bn.gamma, layer.bn.beta, epsilon=layer.bn.epsilon,
                                                 is_training=True)
    out = layer(x, training=True)
    assert tuple(out.shape) == tuple(layer.compute_output_shape((2, size, size, 3)))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def _arc_weight_pairs(search, fixed):
    """``(search variable, fixed variable, rows)`` for every trainable weight of ``fixed``: the
    shared weight of ``search`` it was copied from (``rows``: the combine kernel's rows of the
    unused ids, else ``None``), as :func:`_transplant` copies them."""
    layers = [(search.stem, fixed.stem), (search.stem_bn, fixed.stem_bn), (search.classifier, fixed.classifier)]
    layers += [(s, f) for s, f in zip(search.reducers, fixed.reducers) if s is not None]
    for s_cell, f_cell in zip(search.cells, fixed.cells):
        layers += list(zip(s_cell.calibrations, f_cell.calibrations))
        layers += [(s_cell.ops_bank[key], f_cell.ops_bank[key]) for key in f_cell.ops_bank.keys()]
        layers.append((s_cell.combine, f_cell.combine))
    pairs = []
    for s_layer, f_layer in layers:
        assert len(s_layer.trainable_weights) == len(f_layer.trainable_weights)
        for s_var, f_var in zip(s_layer.trainable_weights, f_layer.trainable_weights):
            rows = None
            if isinstance(s_layer, CellCombine) and s_var is s_layer.kernel:
                rows = list(f_layer.fixed_unused)
            assert tuple(s_var.shape[1:] if rows else s_var.shape) == tuple(f_var.shape[1:] if rows else f_var.shape)
            pairs.append((s_var, f_var, rows))
    assert sorted(id(f) for _, f, _ in pairs) == sorted(id(v) for v in fixed.trainable_weights)
    return pairs


def test_compiled_search_step_trains_with_real_shortcuts():
    """The compiled search step with real-valued shortcuts around every binary conv (the binary
    default; their inputs are read from the cell's node states inside the ``switch_case``'s
    gradient) traces once for several architectures, and for each one computes the fixed
    network's step: its loss is the fixed network's loss with the same weights, every weight of
    the architecture moves by the fixed network's gradient step, and every op it did not sample
    (and the combine rows of the ids its nodes consume) keeps its weights (plain SGD)."""
    policy = PrecisionPolicy.from_flags("binary")
    assert policy.for_part("layer_0").shortcut and policy.for_part("layer_2").shortcut
    config = ChildConfig(num_layers=1, num_nodes=3, out_filters=4, policy=policy)
    keras.utils.set_random_seed(0)
    search = MicroChild(config).build_for((28, 28, 1))
    lr = 0.01
    trainer = ChildTrainer(search, make_optimizer("sgd", lr), 4, search_mode=True)
    # The optimizer clips every latent binary weight to [-1, 1] after each step, sampled or not;
    # he_normal starts some beyond it, so clip them first: unsampled ops then stay exactly put.
    for v in search.trainable_weights:
        if v.constraint is not None:
            v.assign(v.constraint(v))
    x, y = _images(4), tf.constant([0, 1, 2, 3], tf.int32)
    rng = np.random.default_rng(1)
    for arc in [parse_arc(ARC)] + [random_arc(3, rng) for _ in range(2)]:
        fixed = MicroChild(config, fixed_arc=arc).build_for((28, 28, 1))
        _transplant(search, fixed)
        with tf.GradientTape() as tape:
            logits = fixed(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        grads = dict(zip([id(v) for v in fixed.trainable_weights], tape.gradient(loss, fixed.trainable_weights)))
        pairs = _arc_weight_pairs(search, fixed)
        before = {id(v): v.numpy().copy() for v in search.trainable_weights}

        out = trainer.train_step(x, y, tf.constant(arc.to_list(), tf.int32))

        assert float(out["loss"]) == pytest.approx(float(loss), rel=1e-4), str(arc)
        moved = 0
        for s_var, f_var, rows in pairs:
            expected = before[id(s_var)].copy()
            step = -lr * grads[id(f_var)].numpy()
            if rows is None:
                expected += step
            else:
                expected[rows] += step
            if s_var.constraint is not None:  # the latent clip, as the optimizer applies it
                expected = s_var.constraint(expected).numpy()
            np.testing.assert_allclose(s_var.numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=s_var.path)
            moved += not np.array_equal(s_var.numpy(), before[id(s_var)])
        assert moved > 0.8 * len(pairs)  # the check above compared real updates, not zeros
        in_arc = {id(s_var) for s_var, _, _ in pairs}
        others = [v for v in search.trainable_weights if id(v) not in in_arc]
        assert others and all(np.array_equal(v.numpy(), before[id(v)]) for v in others)
        for s_var, _, rows in pairs:
            if rows is not None:
                used = [i for i in range(len(before[id(s_var)])) if i not in rows]
                np.testing.assert_array_equal(s_var.numpy()[used], before[id(s_var)][used])
    assert trainer.trace_count == 1
