"""Tests of the architecture controllers (enas.controller.controller, enas.controller.micro_controller)."""

import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from enas.controller.controller import (  # noqa: E402
    ArcSample,
    RandomController,
    ReinforceTrainer,
    allowed_choices,
)
from enas.controller.micro_controller import MicroController  # noqa: E402
from enas.errors import ArcError, ConfigError  # noqa: E402
from enas.space.arc import random_arc, validate_arc_array  # noqa: E402

REWARDED_OP = 2


def sample_many(controller, n):
    """``n`` consecutive ``controller.sample()`` in one compiled loop -> numpy arrays."""

    @tf.function(autograph=False)
    def run():
        def body(i, arcs, log_probs, entropies):
            s = controller.sample()
            return (i + 1, arcs.write(i, s.arc), log_probs.write(i, s.log_prob),
                    entropies.write(i, s.entropy))

        loop_vars = (tf.constant(0), tf.TensorArray(tf.int32, n),
                     tf.TensorArray(tf.float32, n), tf.TensorArray(tf.float32, n))
        _, arcs, log_probs, entropies = tf.while_loop(
            lambda i, *_: i < n, body, loop_vars, parallel_iterations=1)
        return arcs.stack(), log_probs.stack(), entropies.stack()

    return tuple(t.numpy() for t in run())


def mean_op_probability_fn(controller, n, op):
    """A compiled fn: mean over ``n`` sampled arcs and their op decisions of p(op | before)."""

    @tf.function(autograph=False)
    def run():
        def body(i, total):
            arc = controller.sample().arc
            return i + 1, total + tf.reduce_mean(controller.op_probabilities(arc)[:, op])

        _, total = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), tf.constant(0.0)),
                                 parallel_iterations=1)
        return total / n

    return run


def op_reward(arc):
    """Toy reward: the fraction of the 4B op decisions (both cells) that chose REWARDED_OP."""
    return tf.reduce_mean(tf.cast(tf.equal(arc[1::2], REWARDED_OP), tf.float32))


@pytest.fixture(scope="module")
def micro_samples():
    """300 samples of MicroController for B=3 and B=5 (shared by several tests)."""
    out = {}
    for b in (3, 5):
        controller = MicroController(num_nodes=b, seed=10 + b)
        out[b] = (controller, *sample_many(controller, 300))
    return out


@pytest.mark.parametrize("kind", ["micro", "random"])
@pytest.mark.parametrize("num_nodes", [3, 5])
def test_samples_are_valid_and_cover_the_space(kind, num_nodes, micro_samples):
    if kind == "micro":
        _, arcs, log_probs, entropies = micro_samples[num_nodes]
    else:
        arcs, log_probs, entropies = sample_many(RandomController(num_nodes, seed=3), 300)
    assert arcs.shape == (300, 8 * num_nodes) and arcs.dtype == np.int32
    for arc in arcs:
        validate_arc_array(arc, num_nodes)
    limits = allowed_choices(num_nodes, 5)
    for k in range(8 * num_nodes):  # every allowed id / op appears at every position
        assert set(np.unique(arcs[:, k])) == set(range(limits[k])), k
    assert np.all(np.isfinite(log_probs)) and np.all(log_probs < 0)
    assert np.all(entropies > 0)
    assert len({tuple(a) for a in arcs}) > 290  # no collapse: almost all distinct
    if kind == "random":  # uniform: every value's count within 5 sigma of n / limit
        for k in range(8 * num_nodes):
            counts = np.bincount(arcs[:, k], minlength=limits[k])
            p = 1.0 / limits[k]
            assert np.all(np.abs(counts - 300 * p) < 5 * np.sqrt(300 * p * (1 - p))), k


def test_sampled_log_prob_equals_teacher_forced(micro_samples):
    controller, arcs, log_probs, entropies = micro_samples[5]
    for arc, log_prob, entropy in zip(arcs[:20], log_probs[:20], entropies[:20]):
        forced = controller.log_prob_of(arc)
        assert isinstance(forced, ArcSample)
        np.testing.assert_array_equal(forced.arc.numpy(), arc)
        np.testing.assert_allclose(forced.log_prob.numpy(), log_prob, rtol=1e-5)
        np.testing.assert_allclose(forced.entropy.numpy(), entropy, rtol=1e-5)
    # Arbitrary valid arcs (not sampled) have a finite log-probability.
    rng = np.random.default_rng(0)
    for _ in range(3):
        arc = random_arc(5, rng).to_list()
        assert np.isfinite(controller.log_prob_of(arc).log_prob.numpy())
    # The op distributions are distributions; the normal cell's carry b_soft_no_learn.
    probs = controller.op_probabilities(arcs[0]).numpy()
    assert probs.shape == (20, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ArcError):
        controller.log_prob_of(np.zeros(39, np.int32))
    bad = arcs[0].copy()
    bad[0] = 2  # node 0 may only take inputs 0 and 1
    with pytest.raises(ArcError):
        controller.log_prob_of(bad)


def test_micro_controller_is_a_normalised_distribution_matching_its_sampler():
    """B=1, 2 ops: 256 arcs; exp(log_prob_of) sums to 1 and matches the sampled marginals."""
    controller = MicroController(num_nodes=1, num_ops=2, lstm_size=16, tanh_constant=None,
                                 seed=5)
    limits = allowed_choices(1, 2)
    all_arcs = np.array(list(itertools.product(*[range(v) for v in limits])), np.int32)
    assert len(all_arcs) == 256
    probs = np.array([np.exp(controller.log_prob_of(a).log_prob.numpy()) for a in all_arcs])
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-4)
    arcs, log_probs, _ = sample_many(controller, 1000)
    for k in range(8):  # marginal of each decision: exact vs. empirical (binomial, 4.5 sigma)
        exact = probs[all_arcs[:, k] == 1].sum()
        empirical = np.mean(arcs[:, k] == 1)
        assert abs(exact - empirical) < 4.5 * np.sqrt(exact * (1 - exact) / 1000) + 1e-3, k
    # Mean sampled log-prob ~ -H (exact entropy of the whole distribution).
    exact_neg_entropy = float(np.sum(probs * np.log(probs)))
    assert abs(np.mean(log_probs) - exact_neg_entropy) < 0.1


def test_random_controller_log_prob_is_the_uniform_value():
    for num_nodes, num_ops in [(3, 5), (5, 5), (2, 3)]:
        controller = RandomController(num_nodes, num_ops, seed=1)
        analytic = -4 * sum(np.log(j + 2) + np.log(num_ops) for j in range(num_nodes))
        sample = controller.sample()
        assert sample.arc.shape == (8 * num_nodes,)
        np.testing.assert_allclose(sample.log_prob.numpy(), analytic, rtol=1e-6)
        np.testing.assert_allclose(sample.entropy.numpy(), -analytic, rtol=1e-6)
        forced = controller.log_prob_of(sample.arc)
        np.testing.assert_allclose(forced.log_prob.numpy(), analytic, rtol=1e-6)
    assert not RandomController(3).learns and MicroController(3).learns
    with pytest.raises(ConfigError):
        ReinforceTrainer(RandomController(3), op_reward)
    with pytest.raises(ConfigError):
        MicroController(num_nodes=0)


@pytest.fixture(scope="module")
def trained():
    """A B=3 MicroController trained 50 steps on the toy op reward."""
    controller = MicroController(num_nodes=3, seed=0)
    mean_op_probability = mean_op_probability_fn(controller, 100, REWARDED_OP)
    before = float(mean_op_probability())
    trainer = ReinforceTrainer(controller, op_reward, learning_rate=0.03, num_aggregate=4,
                               baseline_decay=0.9)
    history = [trainer.train_step() for _ in range(50)]
    history = {k: np.array([h[k].numpy() for h in history]) for k in history[0]}
    after = float(mean_op_probability())
    return controller, trainer, before, after, history


def test_reinforce_raises_probability_of_rewarded_op(trained):
    controller, trainer, before, after, history = trained
    # Initially ~0.14 (b_soft = [10, 10, 0, 0, 0]); the tanh squashing caps it near 0.23.
    assert 0.12 < before < 0.17
    assert after > before + 0.03, (before, after)
    for key in ("loss", "entropy", "grad_norm", "accuracy", "baseline", "reward"):
        assert history[key].shape == (50,) and np.all(np.isfinite(history[key])), key
    assert history["arc"].shape == (50, 24)
    assert history["accuracy"][-15:].mean() > history["accuracy"][:15].mean()
    # The baseline (from 0) tracks the rewards.
    assert history["baseline"][0] < 0.1
    assert abs(history["baseline"][-10:].mean() - history["reward"][-20:].mean()) < 0.05
    assert int(trainer.step.numpy()) == 50
    assert int(trainer.optimizer.iterations.numpy()) == 50


def test_train_step_traced_once(trained):
    _, trainer, *_ = trained
    for _ in range(3):
        trainer.train_step()
    assert trainer.trace_count == 1


def test_grad_bound_clips_the_averaged_gradient_before_adam():
    """``grad_bound``: the same samples and rewards give the same reported (unclipped) gradient
    norm, but the clipped update is scaled down. Adam divides by the gradient's root mean square
    plus epsilon (1e-3), so a gradient clipped far below epsilon barely moves the weights."""
    moved, norms = {}, {}
    for bound in (None, 1e-7):
        controller = MicroController(num_nodes=3, seed=5)
        trainer = ReinforceTrainer(controller, op_reward, learning_rate=0.03, num_aggregate=4, grad_bound=bound)
        before = [v.numpy().copy() for v in controller.trainable_variables]
        out = trainer.train_step()
        norms[bound] = float(out["grad_norm"])
        moved[bound] = max(float(np.abs(v.numpy() - b).max()) for v, b in zip(controller.trainable_variables, before))
    assert norms[None] == pytest.approx(norms[1e-7], rel=1e-5) and norms[None] > 1e-3
    assert moved[None] > 0.01 and moved[1e-7] < 1e-5, moved
    with pytest.raises(ConfigError):
        ReinforceTrainer(MicroController(num_nodes=3), op_reward, grad_bound=-1.0)


def test_same_seed_same_arcs_and_checkpoint_continues_sequence(tmp_path):
    a, b = MicroController(num_nodes=3, seed=7), MicroController(num_nodes=3, seed=7)
    arcs_a = [a.sample().arc.numpy() for _ in range(4)]
    arcs_b = [b.sample().arc.numpy() for _ in range(4)]
    np.testing.assert_array_equal(arcs_a, arcs_b)
    other = MicroController(num_nodes=3, seed=8)
    assert not np.array_equal(arcs_a, [other.sample().arc.numpy() for _ in range(4)])

    for controller, make in ((a, lambda seed: MicroController(num_nodes=3, seed=seed)),
                             (RandomController(3, seed=7),
                              lambda seed: RandomController(3, seed=seed))):
        for _ in range(3):
            controller.sample()
        path = tf.train.Checkpoint(controller=controller).save(str(tmp_path / "c"))
        expected = [controller.sample().arc.numpy() for _ in range(3)]
        fresh = make(99)
        tf.train.Checkpoint(controller=fresh).restore(path).assert_consumed()
        np.testing.assert_array_equal([fresh.sample().arc.numpy() for _ in range(3)], expected)


def test_checkpoint_restores_trainer_state(trained, tmp_path):
    controller, trainer, *_ = trained
    path = tf.train.Checkpoint(controller=controller, trainer=trainer).save(
        str(tmp_path / "t"))
    expected = trainer.train_step()
    expected_vars = [v.numpy() for v in controller.trainable_variables]

    fresh = MicroController(num_nodes=3, seed=123)
    fresh_trainer = ReinforceTrainer(fresh, op_reward, learning_rate=0.03, num_aggregate=4,
                                     baseline_decay=0.9)
    status = tf.train.Checkpoint(controller=fresh, trainer=fresh_trainer).restore(path)
    status.assert_existing_objects_matched()
    assert int(fresh_trainer.step.numpy()) == int(trainer.step.numpy()) - 1
    got = fresh_trainer.train_step()
    np.testing.assert_array_equal(got["arc"].numpy(), expected["arc"].numpy())
    for key in ("loss", "baseline", "reward", "grad_norm"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-5,
                                   atol=1e-7)
    for v, e in zip(fresh.trainable_variables, expected_vars):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7)
    assert int(fresh_trainer.optimizer.iterations.numpy()) == \
        int(trainer.optimizer.iterations.numpy())


def test_the_untrained_controller_samples_what_enas_does_under_any_tanh_constant():
    """ENAS's b_soft = 10 for the separable convs squashes to 0.44 under its constants (1.10 / 2.5);
    under wider bounds the initial bias is rescaled to the same squashed logit, so the untrained
    controller's op frequencies and entropy are ENAS's (tanh 2.5 with b = 10 would prefer the
    separable convs 93% of the time)."""
    import math

    from enas.controller.controller import uniform_entropy

    enas = MicroController(num_nodes=3, tanh_constant=1.10, op_tanh_reduce=2.5, seed=3)
    wide = MicroController(num_nodes=3, tanh_constant=2.5, op_tanh_reduce=1.0, seed=3)
    assert float(enas.b_soft[0, 0]) == 10.0
    assert 2.5 * math.tanh(float(wide.b_soft[0, 0])) == pytest.approx(0.44 * math.tanh(10.0), rel=1e-6)
    uniform = uniform_entropy(3, 5)
    stats = []
    for controller in (enas, wide):
        samples = [controller.sample() for _ in range(60)]
        ops = np.concatenate([s.arc.numpy()[1::2] for s in samples])
        stats.append((np.mean([float(s.entropy) for s in samples]) / uniform, np.mean(ops <= 1)))
    (h_enas, sep_enas), (h_wide, sep_wide) = stats
    assert h_wide == pytest.approx(h_enas, abs=0.01) and h_enas > 0.95
    assert sep_wide == pytest.approx(sep_enas, abs=0.05) and sep_enas < 0.7


@pytest.mark.parametrize("num_precisions", [1, 3])
def test_decisions_explain_an_arc_decision_by_decision(num_precisions):
    """``decisions(arc)``: one distribution per position in arc order, each over its allowed
    values and summing to 1; the chosen values are the arc's, their log-probabilities add up to
    ``log_prob_of``, the entropies to its entropy; the op rows are ``op_probabilities``."""
    controller = MicroController(3, lstm_size=16, num_precisions=num_precisions, seed=5)  # ops 0, 1 have weights
    arc = controller.sample().arc.numpy()
    decisions = controller.decisions(arc)
    limits = allowed_choices(3, 5, num_precisions)
    assert [d.position for d in decisions] == list(range(len(arc))) == list(range(len(limits)))
    for d in decisions:
        assert d.probabilities.shape == d.logits.shape == (limits[d.position],)
        assert d.probabilities.sum() == pytest.approx(1.0, abs=1e-5) and d.choice == arc[d.position]
    forced = controller.log_prob_of(arc)
    log_prob = sum(np.log(d.probabilities[d.choice]) * d.weight for d in decisions)
    assert log_prob == pytest.approx(forced.log_prob.numpy(), abs=1e-4)
    assert sum(d.entropy for d in decisions) == pytest.approx(forced.entropy.numpy(), abs=1e-4)
    ops = [d for d in decisions if d.kind == "op"]
    np.testing.assert_allclose(np.stack([d.probabilities for d in ops]),
                               controller.op_probabilities(arc).numpy(), atol=1e-6)
    # Node j of a cell is x_id x_op y_id y_op; ids of node j choose among j + 2 values.
    assert [(d.cell, d.node, d.kind) for d in decisions[:4]] == [("normal", 0, "input"), ("normal", 0, "op")] * 2
    assert (decisions[12].cell, decisions[12].node) == ("reduction", 0)
    assert all(d.probabilities.size == d.node + 2 for d in decisions if d.kind == "input")
    if num_precisions > 1:
        precision = [d for d in decisions if d.kind == "precision"]
        assert len(precision) == 12 and precision[0].position == 24
        # Slot s = 6 * cell + 2 * j + i follows op x (i = 0) or y (i = 1) of node j; an op
        # without weights (2, 3, 4 here) makes its precision decision count for nothing.
        for d in precision:
            cell, within = divmod(d.position - 24, 6)
            op = arc[12 * cell + 4 * (within // 2) + 2 * (within % 2) + 1]
            assert (d.cell, d.node) == (("normal", "reduction")[cell], within // 2)
            assert d.weight == (1.0 if op < 2 else 0.0)
    # Fresh weights U(-0.1, 0.1) are far from saturating tanh: nothing is frozen.
    assert not any(d.frozen for d in decisions)


def test_a_saturated_decision_is_reported_frozen():
    """A tiny temperature multiplies every logit by 10^8 before the tanh squashing: every decision
    then sits where tanh passes less than 1% of its gradient."""
    controller = MicroController(2, lstm_size=8, tanh_constant=2.5, temperature=1e-8, seed=1)
    decisions = controller.decisions(controller.sample().arc)
    assert len(decisions) == 16 and all(d.frozen for d in decisions)
    with pytest.raises(RuntimeError, match="eagerly"):
        tf.function(lambda: controller.decisions(tf.zeros([16], tf.int32)))()


@pytest.mark.parametrize("num_precisions", [1, 3])
def test_without_a_normal_cell_only_the_reduction_cell_is_decided(num_precisions):
    """A child of reduction layers only (``normal_cell=False``): every sampled arc's normal cell
    (and its precision slots) is a copy of its reduction cell; the log-probability, entropy and
    decisions are the reduction cell's alone, whatever a given arc's normal half; the uniform
    maximum halves."""
    from enas.config.child_config import ChildConfig
    from enas.controller.controller import undecided_positions, uniform_entropy

    controller = MicroController(3, lstm_size=16, num_precisions=num_precisions, seed=5, normal_cell=False)
    arcs, log_probs, entropies = sample_many(controller, 200)
    unused = undecided_positions(3, num_precisions)
    assert len(unused) == (18 if num_precisions > 1 else 12)
    reduction = np.setdiff1d(np.arange(arcs.shape[1]), unused)
    np.testing.assert_array_equal(arcs[:, unused], arcs[:, reduction[:len(unused)]])
    assert all(len(np.unique(arcs[:, k])) > 1 for k in reduction[:12])  # ids and ops of the reduction cell vary
    assert controller.uniform_entropy == pytest.approx(uniform_entropy(3, 5, num_precisions) / 2)
    assert entropies.max() <= controller.uniform_entropy + 1e-4 and entropies.min() > 0

    arc = arcs[0].copy()
    forced = controller.log_prob_of(arc)
    assert forced.log_prob.numpy() == pytest.approx(log_probs[0], abs=1e-4)
    other = arc.copy()
    other[:12] = random_arc(3, np.random.default_rng(1)).to_list()[:12]  # any normal cell: same network
    assert other[:12].any()
    assert controller.log_prob_of(other).log_prob.numpy() == pytest.approx(log_probs[0], abs=1e-4)
    decisions = controller.decisions(arc)
    assert [d.position for d in decisions] == list(reduction)
    assert {d.cell for d in decisions} == {"reduction"}
    assert sum(d.entropy for d in decisions) == pytest.approx(forced.entropy.numpy(), abs=1e-4)
    op_rows = controller.op_probabilities(arc).numpy()
    np.testing.assert_array_equal(op_rows[:6], np.eye(5)[arc[13:24:2]])  # the normal cell's ops: the copied ones, certain

    # The uniform baselines: the normal cell copied, its decisions out of the probability.
    randoms = RandomController(3, num_precisions=num_precisions, seed=2, normal_cell=False)
    sample = randoms.sample().arc.numpy()
    np.testing.assert_array_equal(sample[unused], sample[reduction[:len(unused)]])
    sample = randoms.sample()
    assert -sample.log_prob.numpy() == pytest.approx(randoms.uniform_entropy, rel=1e-6)
    drawn = random_arc(3, np.random.default_rng(3), ("binary", "4bit") if num_precisions > 1 else (),
                       normal_cell=False)
    assert drawn.normal == drawn.reduce and any(drawn.reduce.to_list())

    # Which children have a normal layer: any layer that is not a reduction layer.
    assert not ChildConfig(num_layers=0).has_normal_layer
    assert ChildConfig(num_layers=0, reduction_layers=(1,)).has_normal_layer
    assert ChildConfig(num_layers=1).has_normal_layer


def test_without_a_normal_cell_the_controller_is_a_normalised_distribution():
    """B=1, 2 ops, no normal cell: the 16 reduction cells' probabilities sum to 1."""
    controller = MicroController(num_nodes=1, num_ops=2, lstm_size=16, tanh_constant=None, seed=5,
                                 normal_cell=False)
    limits = allowed_choices(1, 2, normal_cell=False)
    assert list(limits) == [1, 1, 1, 1, 2, 2, 2, 2]
    all_arcs = np.array(list(itertools.product(*[range(v) for v in limits])), np.int32)
    probs = np.array([np.exp(controller.log_prob_of(a).log_prob.numpy()) for a in all_arcs])
    assert len(all_arcs) == 16 and probs.sum() == pytest.approx(1.0, rel=1e-4)
