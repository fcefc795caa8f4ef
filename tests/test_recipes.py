"""Training recipes and the binary-network options: each changes what it claims."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from enas.child import micro_ops
from enas.child.child_trainer import ChildTrainer, decayed_kernels, distillation_loss
from enas.child.micro_child import MicroChild
from enas.cli import flags
from enas.config import recipes
from enas.config.child_config import ChildConfig
from enas.config.run_config import RunConfig
from enas.errors import ConfigError
from enas.space.precision import Precision, PrecisionPolicy
from quantize.base import real_weights, weights_are_real
from tests.conftest import TINY, TINY_ARC
from tests.test_train_fixed import run_main


def _child(policy):
    return MicroChild(ChildConfig(num_layers=0, num_nodes=2, out_filters=4, policy=policy),
                      fixed_arc=TINY_ARC).build_for((28, 28, 1))


def _latent_and_quantized(model):
    """``[(latent kernel variable, its quantized value)]`` of every quantized conv/dense layer."""
    return [(getattr(layer, attr), value) for layer in model._flatten_layers()
            if getattr(layer, "kernel_quantizer", None) is not None and hasattr(layer, "quantized_kernels")
            for attr, value in layer.quantized_kernels.items()]


def _config(mode="train", **settings):
    base = {**TINY, "child_fixed_arc": TINY_ARC} if mode == "train" else dict(TINY)
    return RunConfig.from_settings({**base, **settings}, mode, "mnist")


# --- recipes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "search"])
@pytest.mark.parametrize("precision, recipe", [("binary", "binary"), ("ternary", "lowbit"),
                                               ("quantized", "lowbit"), ("float", "bnn")])
def test_auto_recipe_is_the_precisions(mode, precision, recipe):
    t = _config(mode, child_quantization=precision, batch_size=None).training  # every field unset
    expected = recipes.RECIPES[recipe]
    assert {name: getattr(t, name) for name in recipes.FIELDS} == dataclass_dict(expected)


def dataclass_dict(recipe):
    return {name: getattr(recipe, name) for name in recipes.FIELDS}


def test_explicit_flags_override_the_recipe_and_a_named_recipe_applies_to_any_precision():
    t = _config(child_quantization="binary", child_lr_max=0.01, child_l2_latent=True).training
    assert (t.optimizer, t.lr_max, t.lr_min, t.l2_latent) == ("adam", 0.01, 0.0, True)
    t = _config(child_quantization="binary", child_recipe="enas").training
    assert (t.optimizer, t.lr_max, t.lr_T_0, t.l2_latent) == ("momentum", 0.05, 10, True)
    with pytest.raises(ConfigError, match="--child_recipe"):
        _config(child_recipe="fancy")


def test_recorded_config_holds_resolved_values_and_round_trips():
    config = _config(child_quantization="binary")
    again = RunConfig.from_json(config.to_json())
    assert again.training == config.training and again.training.optimizer == "adam"


def test_one_period_schedule_when_lr_T_0_is_zero():
    t = _config(child_quantization="binary", num_epochs=7).training
    assert t.lr_T_0 == 0 and t.first_period() == 7


def test_help_shows_each_recipes_default():
    text = flags.FLAG_HELP["child_lr_max"]
    assert "enas: 0.05" in text and "bnn: 0.01" in text
    assert "bnn: adam" in flags.FLAG_HELP["child_optimizer"]


# --- per-channel scale --------------------------------------------------------------------------
def test_binary_scale_is_per_output_channel_mean_abs_in_the_child():
    pairs = _latent_and_quantized(_child(PrecisionPolicy.from_flags("binary", binary=("scale",))))
    assert pairs
    for latent, quantized in pairs:
        w = latent.numpy()
        alpha = np.abs(w).reshape(-1, w.shape[-1]).mean(axis=0)
        np.testing.assert_allclose(quantized.numpy(), np.where(w >= 0, 1.0, -1.0) * alpha, rtol=1e-6)
    for _, quantized in _latent_and_quantized(_child(PrecisionPolicy.from_flags("binary"))):
        assert set(np.unique(quantized.numpy())) <= {-1.0, 1.0}


def test_binary_options_belong_to_binary_parts_only():
    policy = PrecisionPolicy.from_flags("binary", binary=("scale", "rsign"),
                                        overrides="layer_0=quantized:4")
    assert policy.for_part("layer_1").scale and policy.for_part("layer_1").rsign
    assert not policy.for_part("layer_0").scale and policy.for_part("stem").kind == "float"
    assert "binary options=scale+rsign" in policy.describe()
    with pytest.raises(ConfigError, match="binary"):
        Precision(kind="ternary", scale=True)
    with pytest.raises(ConfigError, match="--child_binary_scale needs a binary part"):
        _config(child_quantization="ternary", child_binary_scale=True)


# --- RSign and RPReLU ---------------------------------------------------------------------------
def test_rsign_threshold_and_rprelu_formulas():
    x = np.array([[-2.0, -0.5, 0.3, 1.5]], np.float32)
    shift = micro_ops.LearnedShift()
    shift.build(x.shape)
    shift.threshold.assign([0.0, -1.0, 0.5, 1.0])
    np.testing.assert_allclose(shift(x).numpy(), x - [[0.0, -1.0, 0.5, 1.0]])

    rprelu = micro_ops.RPReLU()
    rprelu.build(x.shape)
    gamma, beta, zeta = np.array([0.1, -0.2, 0.3, 0.0]), np.array([0.25, 0.5, 0.1, 2.0]), np.array([1.0, 0, -1, 0.5])
    rprelu.shift_in.assign(gamma), rprelu.slope.assign(beta), rprelu.shift_out.assign(zeta)
    y = x - gamma
    np.testing.assert_allclose(rprelu(x).numpy(), np.where(y > 0, y, beta * y) + zeta, rtol=1e-6)


def test_rsign_and_rprelu_are_in_the_binary_child_and_train():
    model = _child(PrecisionPolicy.from_flags("binary", binary=("rsign", "rprelu")))
    kinds = {type(layer).__name__ for layer in model._flatten_layers()}
    assert {"LearnedShift", "RPReLU"} <= kinds
    names = [w.path for w in model.trainable_weights]
    assert any("threshold" in n for n in names) and any("slope" in n for n in names)
    plain = _child(PrecisionPolicy.from_flags("binary"))
    assert not {"LearnedShift", "RPReLU"} & {type(layer).__name__ for layer in plain._flatten_layers()}


# --- head activation ----------------------------------------------------------------------------
def test_head_activation_follows_the_float_classifier_when_asked():
    def head(option, cells="binary"):
        policy = PrecisionPolicy.from_flags(cells, head_activation=option)
        return _child(policy).final_activation

    x = tf.constant([[-1.5, -0.2, 0.0, 0.7]])
    np.testing.assert_allclose(head("classifier")(x).numpy(), [[0.0, 0.0, 0.0, 0.7]])
    assert set(np.unique(head("cells")(x).numpy())) <= {-1.0, 1.0}
    # auto (the default): the classifier's ReLU for binary cells, the cells' quantizer otherwise
    np.testing.assert_allclose(head("auto")(x).numpy(), [[0.0, 0.0, 0.0, 0.7]])
    np.testing.assert_allclose(head("auto", "ternary")(x).numpy(), [[-1.0, 0.0, 0.0, 1.0]])
    assert PrecisionPolicy.from_flags("binary").describe().endswith("head activation=classifier, "
                                                                    "real shortcuts (binary parts)")
    assert "head activation" not in PrecisionPolicy.from_flags("ternary").describe()


# --- L2 on latent weights -----------------------------------------------------------------------
def test_l2_latent_false_decays_only_the_full_precision_kernels():
    model = _child(PrecisionPolicy.from_flags("binary"))
    everything = decayed_kernels(model, latent=True)
    full = decayed_kernels(model, latent=False)
    quantized = {id(latent) for latent, _ in _latent_and_quantized(model)}
    assert quantized and full and len(full) < len(everything)
    assert not quantized & {id(w) for w in full}
    assert quantized <= {id(w) for w in everything}
    assert {id(model.classifier.kernel)} <= {id(w) for w in full}


# --- two-stage training -------------------------------------------------------------------------
def test_real_weights_block_skips_the_kernel_quantizer():
    model = _child(PrecisionPolicy.from_flags("binary"))
    conv = next(layer for layer in model._flatten_layers()
                if getattr(layer, "kernel_quantizer", None) is not None and hasattr(layer, "quantized_kernels"))
    latent = getattr(conv, next(iter(conv.quantized_kernels)))
    assert not weights_are_real()
    with real_weights():
        assert weights_are_real()
        np.testing.assert_array_equal(conv.quantize_kernel(latent).numpy(), latent.numpy())
    assert not weights_are_real()
    assert set(np.unique(conv.quantize_kernel(latent).numpy())) <= {-1.0, 1.0}


def test_two_stage_switches_at_the_configured_step():
    model = _child(PrecisionPolicy.from_flags("binary"))
    trainer = ChildTrainer(model, keras.optimizers.SGD(0.01), 8, real_weight_steps=3)
    images = tf.random.uniform((8, 28, 28, 1))
    labels = tf.zeros((8,), tf.int32)
    stages = []
    for _ in range(5):
        stages.append(trainer.train_step.current() is trainer.train_step.first)
        trainer.train_step(images, labels)
    assert stages == [True, True, True, False, False]
    # The stages compute different things: real kernels give other logits than binary ones.
    quantized = model(images, training=False)
    with real_weights():
        real = model(images, training=False)
    assert not np.allclose(quantized.numpy(), real.numpy())


def test_real_weight_epochs_is_validated_and_set_in_steps():
    with pytest.raises(ConfigError, match="--child_real_weight_epochs"):
        _config(num_epochs=2, child_real_weight_epochs=2)
    assert _config(num_epochs=2, child_real_weight_epochs=1).training.real_weight_epochs == 1


# --- distillation -------------------------------------------------------------------------------
def test_distillation_loss_is_zero_for_equal_logits_and_kl_otherwise():
    logits = tf.constant([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    np.testing.assert_allclose(distillation_loss(logits, logits, 2.0).numpy(), 0.0, atol=1e-6)
    teacher = tf.constant([[0.0, 1.0, 2.0], [2.0, 0.0, 0.0]])
    t = 2.0
    p = tf.nn.softmax(teacher / t).numpy()
    q = tf.nn.softmax(logits / t).numpy()
    expected = t * t * (p * (np.log(p) - np.log(q))).sum(axis=-1)
    np.testing.assert_allclose(distillation_loss(logits, teacher, t).numpy(), expected, rtol=1e-5)
    assert (expected > 0).all()


def test_distillation_from_a_trained_run_end_to_end(train_config, tmp_path, capsys):
    teacher = {**train_config, "num_epochs": 1, "child_quantization": "float",
               "output_dir": str(tmp_path / "teacher")}
    code, _, err = run_main(teacher, capsys)
    assert code == 0, err
    student = {**train_config, "num_epochs": 2, "child_quantization": "binary",
               "child_real_weight_epochs": 1, "child_teacher_dir": teacher["output_dir"],
               "child_distill_weight": 0.5}
    code, out, err = run_main(student, capsys)
    assert code == 0, err
    assert f"Distillation from {teacher['output_dir']} (weight 0.5, temperature 1.0)" in out
    assert re.search(r"^Two-stage training: real-valued kernels for epoch 1, quantized from epoch 2$", out, re.M)
    assert "Final test_accuracy" in out

    code, _, err = run_main({**student, "output_dir": str(tmp_path / "s2"),
                             "child_teacher_dir": str(tmp_path / "nothing")}, capsys)
    assert code == 2 and err.count("\n") == 1 and "no run folder" in err


@pytest.mark.parametrize("precision", ["ternary", "quantized", "binary"])
def test_mnist_search_and_study_keep_batches_of_128_for_the_reward(precision):
    """The search's reward is the accuracy on one validation minibatch of the training batch's
    size: the MNIST search and the study pin 128 whatever the precision's recipe says."""
    import search_arc_mnist
    import study_arc
    from enas.search.study import from_settings, settings_of

    search = RunConfig.from_settings({**search_arc_mnist.CONFIG, "child_quantization": precision}, "search", "mnist")
    _, study_search = from_settings({**settings_of(study_arc.CONFIG), "child_quantization": precision})
    assert search.training.batch_size == study_search.training.batch_size == 128
    assert search.training.optimizer == recipes.recipe_for("auto", search.child.policy.default.kind).optimizer
