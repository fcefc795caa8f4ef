"""Is a trained child's evaluation gap caused by its batch-norm statistics? Evaluate one
``train_arc_*.py`` run three ways, same weights:

  * ``moving``: inference mode, the batch norms' moving averages (what the run reports);
  * ``batch``: every batch norm normalises with the statistics of the evaluation batch itself
    (dropout and drop-path still off), i.e. what the network saw in training;
  * ``recalibrated``: the moving averages re-estimated after training as the exact mean of
    ``--batches`` training batches' statistics (no weight changes), then inference mode.

If ``batch`` matches the training accuracy and ``moving`` does not, the moving averages are stale
(they trail weights that changed faster than their momentum follows); if ``recalibrated`` then
closes the gap they were merely stale, otherwise the network depends on per-batch normalisation.

    python benchmarks/bn_eval_modes.py ./output-mnist-arc --data_path ../shared/data/mnist
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # TensorFlow's environment defaults, before TensorFlow is imported

import tensorflow as tf  # noqa: E402

from enas.child.micro_ops import BatchNorm  # noqa: E402
from enas.data import data_utils  # noqa: E402
from enas.run.restore import restore_run  # noqa: E402


def batch_norms(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, BatchNorm)]


def force_batch_statistics(norms, update):
    """Make every batch norm in ``norms`` normalise with batch statistics whatever ``training``
    says (``update``: also fold them into the moving averages); returns an undo function."""
    originals = []
    for bn in norms:
        original, tracked = bn.call, bn.track_moving_stats
        bn.track_moving_stats = update
        bn.call = (lambda call: lambda x, training=None: call(x, training=True))(original)
        originals.append((bn, original, tracked))

    def undo():
        for bn, original, tracked in originals:
            bn.call, bn.track_moving_stats = original, tracked

    return undo


def accuracy(model, dataset):
    correct = total = 0
    for images, labels in dataset:
        logits = model(images, training=False)
        correct += int(tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels),
                                             tf.int32)))
        total += int(labels.shape[0])
    return correct / total


def recalibrate(model, norms, dataset, batches):
    """Moving averages := the mean of the batch statistics of ``batches`` batches of ``dataset``."""
    for bn in norms:
        bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
        bn.moving_variance.assign(tf.ones_like(bn.moving_variance))
    undo = force_batch_statistics(norms, update=True)
    momenta = [bn.momentum for bn in norms]
    try:
        for k, (images, _) in enumerate(dataset.take(batches), start=1):
            for bn in norms:  # moving += (batch - moving) / k: the running mean of the batches
                bn.momentum = 1.0 - 1.0 / k
            model(images, training=False)
    finally:
        undo()
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a train_arc_*.py output folder")
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[100], help="training batches to recalibrate on")
    parser.add_argument("--batch_size", type=int, default=100)
    args = parser.parse_args()

    model, record, path = restore_run(args.run)
    config = record["config"]
    data = data_utils.load_dataset(config["dataset"], args.data_path, num_valid=config["data"]["num_valid"])
    norms = batch_norms(model)
    test = data_utils.make_dataset(data.x_test, data.y_test, args.batch_size, training=False)
    train = data_utils.make_dataset(data.x_train, data.y_train, args.batch_size, training=True, seed=0)
    print(f"run: {args.run} ({record['precision']}), checkpoint {os.path.basename(path)}, {len(norms)} batch norms")
    print(f"test accuracy, moving statistics: {accuracy(model, test):.4f}")
    undo = force_batch_statistics(norms, update=False)
    print(f"test accuracy, batch statistics (batches of {args.batch_size}): {accuracy(model, test):.4f}")
    big = data_utils.make_dataset(data.x_test, data.y_test, 1000, training=False)
    print(f"test accuracy, batch statistics (batches of 1000): {accuracy(model, big):.4f}")
    undo()
    for batches in args.batches:
        recalibrate(model, norms, train, batches)
        print(f"test accuracy, statistics recalibrated on {batches} training batches: {accuracy(model, test):.4f}")


if __name__ == "__main__":
    main()
