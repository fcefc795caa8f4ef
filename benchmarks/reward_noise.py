"""How much of the controller's reward is signal: the one-minibatch reward against the spread of
the architectures' true (whole-validation) accuracies, for a finished search.

The ENAS controller's reward for a sampled architecture is its accuracy on ONE validation
minibatch (``batch_size`` images) with the shared weights. This script restores a search run's
shared-weight child, takes the architectures of its ``final_pick.json`` (the N sampled from the
final controller) and records, per architecture, which of the whole validation split's images it
classifies correctly. From those vectors it computes, exactly or by drawing minibatches the way the
search does (without replacement, one fresh minibatch per architecture):

  * ``between``: the standard deviation of the whole-validation accuracies over architectures
    (the signal the controller should learn from);
  * ``within``: the mean standard deviation of one architecture's reward over minibatches
    (``sqrt(p (1 - p) / b * (N - b) / (N - 1))`` for accuracy p, batch b, split N);
  * the probability that one reward orders a random pair of architectures the way their
    whole-validation accuracies do, and Kendall's tau between rewards and those accuracies, for
    rewards averaged over 1, 4 and 16 minibatches.

    python benchmarks/reward_noise.py STUDY_DIR/search_enas-s1          # a study's search phase
    python benchmarks/reward_noise.py ./output --draws 500 --batch_size 256
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # TensorFlow's environment defaults, before TensorFlow is imported

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from enas.data import data_utils  # noqa: E402
from enas.search import search_task  # noqa: E402
from enas.search.ranking import kendall_tau  # noqa: E402
from enas.space.arc import parse_arc  # noqa: E402


def make_predict(model):
    """A compiled ``(images (B, H, W, C), arc (8 B,) int32) -> (B,) int32`` class prediction of the
    shared-weight ``model`` in inference mode (the reward's and the final pick's setting)."""

    @tf.function
    def predict(images, arc):
        return tf.argmax(model(images, arc=arc, training=False), axis=-1, output_type=tf.int32)

    return predict


def correctness(predict, x, y, arc, batch_size=500):
    """``(N,)`` bool: which of the images ``x`` (N, H, W, C) ``predict`` with ``arc`` classifies as ``y``."""
    arc_tensor = tf.constant(arc.to_list(), tf.int32)
    dataset = data_utils.make_dataset(x, y, batch_size, training=False)
    return np.concatenate([predict(images, arc_tensor).numpy() == labels.numpy() for images, labels in dataset])


def minibatch_rewards(hits, batch_size, averaged, draws, rng):
    """``(draws, A)`` rewards: per architecture (rows of ``hits``, (A, N)) its accuracy on
    ``averaged`` fresh minibatches of ``batch_size`` images (drawn together without replacement,
    as consecutive batches of a shuffled split; at most the whole split)."""
    num_arcs, num_images = hits.shape
    size = min(batch_size * averaged, num_images)
    rewards = np.zeros((draws, num_arcs))
    for a in range(num_arcs):
        idx = np.argsort(rng.random((draws, num_images)), axis=1)[:, :size]
        rewards[:, a] = hits[a][idx].mean(axis=1)
    return rewards


def pair_agreement(rewards, truth):
    """Fraction of (draw, pair of architectures with different true accuracy) where the rewards
    order the pair as ``truth`` does (ties in the rewards count one half)."""
    agree = total = 0.0
    for i in range(len(truth)):
        for j in range(i + 1, len(truth)):
            sign = np.sign(truth[i] - truth[j])
            if sign == 0:
                continue
            d = np.sign(rewards[:, i] - rewards[:, j]) * sign
            agree += float((d > 0).sum() + 0.5 * (d == 0).sum())
            total += len(d)
    return agree / total if total else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a finished search run folder (with final_pick.json and a checkpoint)")
    parser.add_argument("--arcs", type=int, default=0, help="how many of the final pick's arcs (0: all)")
    parser.add_argument("--batch_size", type=int, default=0, help="reward minibatch (0: the search's batch size)")
    parser.add_argument("--draws", type=int, default=200, help="minibatch draws per architecture")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        with open(os.path.join(args.run, search_task.FINAL_PICK)) as f:
            ranked = json.load(f)["ranked"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: {args.run!r} has no readable {search_task.FINAL_PICK} ({e}); run the search to its end first")
    if args.arcs:
        ranked = ranked[:: max(1, len(ranked) // args.arcs)][: args.arcs]
    config, trainer, data = search_task.restore_shared_child(args.run)
    batch = args.batch_size or config.training.batch_size
    predict = make_predict(trainer.model)
    hits = np.stack([correctness(predict, data.x_valid, data.y_valid, parse_arc(item["arc"]))
                     for item in ranked])
    truth = hits.mean(axis=1)
    n = hits.shape[1]
    analytic = np.sqrt(truth * (1 - truth) / batch * (n - batch) / max(n - 1, 1))
    rng = np.random.default_rng(args.seed)

    print(f"search run: {args.run} ({config.child.policy.describe()}, {config.child.out_filters} filters, "
          f"{config.training.num_epochs} epoch{'s' if config.training.num_epochs != 1 else ''})")
    print(f"{len(ranked)} architectures of the final pick; whole validation split: {n} images; "
          f"reward minibatch: {batch} images; {args.draws} draws per architecture")
    print(f"whole-validation accuracy over architectures: mean {truth.mean():.4f}, "
          f"between-arc std {truth.std(ddof=1):.4f}, min {truth.min():.4f}, max {truth.max():.4f}")
    print(f"one-minibatch reward std within an architecture: mean {analytic.mean():.4f} (exact), ", end="")
    one = minibatch_rewards(hits, batch, 1, args.draws, rng)
    print(f"{statistics.fmean(one.std(axis=0, ddof=1)):.4f} (drawn)")
    print(f"signal-to-noise (between / within): {truth.std(ddof=1) / analytic.mean():.2f}")
    print("| minibatches averaged per reward | reward std within an arc | pairs ordered right | Kendall tau |")
    print("|---|---|---|---|")
    for averaged in (1, 4, 16):
        rewards = one if averaged == 1 else minibatch_rewards(hits, batch, averaged, args.draws, rng)
        taus = [kendall_tau(list(r), list(truth)) for r in rewards[: min(args.draws, 50)]]
        images = f"{averaged * batch} images" if averaged * batch < n else f"the whole split, {n} images"
        print(f"| {averaged} ({images}) | {statistics.fmean(rewards.std(axis=0, ddof=1)):.4f} | "
              f"{pair_agreement(rewards, truth):.3f} | {statistics.fmean(taus):.3f} |")


if __name__ == "__main__":
    main()
