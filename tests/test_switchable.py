"""Quantizers whose precision is a run-time tensor (:mod:`quantize.switchable`): each precision's
floor form is that quantizer, values and gradients, and a mixed-precision search cell uses them
to keep one branch per op."""

import numpy as np
import pytest
import tensorflow as tf

from binarize.binary_ops import SteSign
from enas.micro_cell import MicroCell
from enas.precision import Precision
from quantize.quantized_ops import SteQuantize
from quantize.switchable import SwitchableActivation, SwitchableKernel, floor_forms
from ternarize.ternary_ops import SteTern

QUANTIZERS = [SteSign(), SteTern(rule="fixed"), SteTern(rule="fixed", threshold_value=0.3), SteQuantize(4),
              SteQuantize(2), SteQuantize(8)]


def _inputs():
    values = np.random.default_rng(0).normal(size=20000) * 2
    edges = [0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30, 1e30, -1e30, 1.0, -1.0, 0.875, 3.0, -3.0]
    return tf.constant(np.concatenate([values, edges]).astype("float32"))


@pytest.mark.parametrize("index", range(len(QUANTIZERS)))
def test_floor_form_is_the_quantizer_values_and_gradient(index):
    x = _inputs()
    switched = SwitchableActivation(QUANTIZERS)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        own, shared = QUANTIZERS[index](x), switched(x, tf.constant(index))
    np.testing.assert_array_equal(shared.numpy(), own.numpy())
    np.testing.assert_array_equal(tape.gradient(shared, x).numpy(), tape.gradient(own, x).numpy())


def test_quantizers_without_a_floor_form_are_not_switchable():
    assert SteTern(rule="twn").floor_form() is None and SteSign(channel_scale=True).floor_form() is None
    assert floor_forms([SteSign(), SteTern(rule="twn")]) is None
    with pytest.raises(ValueError):
        SwitchableActivation([SteSign(), lambda x: tf.nn.relu(x)])


def test_switchable_kernel_is_the_picked_precisions_kernel():
    kernels = [SteSign(), SteTern(rule="twn"), SteQuantize(4)]
    w = tf.constant(np.random.default_rng(1).uniform(-1, 0.8, size=(3, 3, 4, 5)).astype("float32"))
    switched = SwitchableKernel(kernels)
    for i, q in enumerate(kernels):
        np.testing.assert_array_equal(switched(w, tf.constant(i)).numpy(), q(w).numpy())


def _cell(precisions):
    cell = MicroCell(2, 4, precision=Precision.parse(precisions[0]), batch_stats=True,
                     search_precisions=tuple(Precision.parse(p) for p in precisions))
    cell.build([(None, 8, 8, 4), (None, 8, 8, 4)])
    return cell


def test_a_searched_precision_is_data_of_one_branch_per_op():
    switched = _cell(["binary", "ternary", "4bit"])
    assert switched.switched_precision
    x = tf.zeros((2, 8, 8, 4))
    assert len(switched._branches(0, 0, x, True, 1.0, tf.constant(1))) == switched.space.num_ops
    # A precision without a floor form (float: a ReLU) keeps one branch per (op, precision).
    branched = _cell(["ternary", "float"])
    assert not branched.switched_precision
    weighted = sum(op.has_weights for op in branched.space.ops)
    assert len(branched._branches(0, 0, x, True, 1.0)) == branched.space.num_ops + weighted
