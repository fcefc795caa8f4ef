"""Throughput of the search step: dynamic op selection vs a fixed network vs all-ops-and-gather.

For each precision (binary, float) and shape (MNIST 28x28x1, CIFAR 32x32x3), in ONE process:

  (a) search: the shared-weight child, a random architecture every step, ``tf.switch_case``
      running only the chosen op per node (what ``search_arc_*.py`` does);
  (b) fixed:  the fixed-architecture network of one architecture (each of the same few arcs (a)
      draws from, built as its own fixed child), i.e. the cost floor of a single network;
  (c) all-ops: the search child computing all five ops per node and gathering one (the
      original ENAS method).

Each measurement is images/second of full training steps (forward, backward, SGD update) after
a warm-up; the repeats of (a), (b), (c) are interleaved so machine noise hits all alike, and the
table reports medians over repeats and the ratios a/b and a/c of those medians.

    python benchmarks/search_step.py                 # defaults: a few minutes on 2 cores
    python benchmarks/search_step.py --repeats 7 --steps 20
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from enas.arc import random_arc  # noqa: E402
from enas.child_trainer import ChildTrainer, make_optimizer  # noqa: E402
from enas.micro_child import ChildConfig, MicroChild  # noqa: E402
from enas.precision import PrecisionPolicy  # noqa: E402

SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3)}


def make_trainer(config, image_shape, batch, fixed_arc=None, op_selection="switch"):
    model = MicroChild(config, fixed_arc=fixed_arc, op_selection=op_selection).build_for(image_shape)
    return ChildTrainer(model, make_optimizer("sgd", 0.01), batch, search_mode=fixed_arc is None)


def timed_steps(step, steps):
    start = time.perf_counter()
    for i in range(steps):
        out = step(i)
    float(out["loss"])  # wait for the last step
    return time.perf_counter() - start


def bench(args, dataset, precision):
    image_shape = SHAPES[dataset]
    layers, nodes, filters, batch = (args.mnist if dataset == "mnist" else args.cifar)
    config = ChildConfig(num_layers=layers, num_nodes=nodes, out_filters=filters,
                         policy=PrecisionPolicy.from_flags(precision))
    rng = np.random.default_rng(0)
    arcs = [random_arc(nodes, rng) for _ in range(args.arcs)]
    arc_tensors = [tf.constant(a.to_list(), tf.int32) for a in arcs]
    x = tf.constant(rng.normal(size=(batch,) + image_shape).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch).astype("int32"))
    keras.utils.set_random_seed(0)
    search = make_trainer(config, image_shape, batch)
    gather = make_trainer(config, image_shape, batch, op_selection="all")
    fixed = [make_trainer(config, image_shape, batch, fixed_arc=a) for a in arcs]
    step_of = {
        "a": lambda i: search.train_step(x, y, arc_tensors[i % len(arcs)]),
        "c": lambda i: gather.train_step(x, y, arc_tensors[i % len(arcs)]),
    }
    for k, trainer in enumerate(fixed):
        step_of[f"b{k}"] = lambda i, t=trainer: t.train_step(x, y)
    for step in step_of.values():  # warm-up: trace and first runs
        timed_steps(step, 2)
    rates = {key: [] for key in step_of}
    for _ in range(args.repeats):
        for key, step in step_of.items():
            n = args.steps if not key.startswith("b") else max(args.steps // len(arcs), 1)
            rates[key].append(n * batch / timed_steps(step, n))
    median = {key: statistics.median(v) for key, v in rates.items()}
    # (b): one fixed network per arc; the harmonic mean matches (a)'s per-step mix of the arcs.
    fixed_rate = len(arcs) / sum(1.0 / median[f"b{k}"] for k in range(len(arcs)))
    traces = (search.trace_count, gather.trace_count)
    return median["a"], fixed_rate, median["c"], traces, (layers, nodes, filters, batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--arcs", type=int, default=2, help="architectures (a) and (c) cycle through")
    parser.add_argument("--mnist", type=int, nargs=4, default=[0, 3, 8, 128],
                        metavar=("LAYERS", "NODES", "FILTERS", "BATCH"),
                        help="MNIST child (default: search_arc_mnist.py's)")
    parser.add_argument("--cifar", type=int, nargs=4, default=[2, 5, 16, 64],
                        metavar=("LAYERS", "NODES", "FILTERS", "BATCH"),
                        help="CIFAR child (default: ENAS search cell, fewer layers and filters)")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar"], choices=list(SHAPES))
    parser.add_argument("--precisions", nargs="+", default=["binary", "float"])
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"median of {args.repeats} repeats x {args.steps} steps", flush=True)
    header = f"{'dataset':8} {'precision':9} {'L,B,F,batch':14} {'(a) search':>11} {'(b) fixed':>10} " \
             f"{'(c) all-ops':>11} {'a/b':>6} {'a/c':>6}  traces(a,c)"
    print(header)
    print("-" * len(header))
    for dataset in args.datasets:
        for precision in args.precisions:
            a, b, c, traces, shape = bench(args, dataset, precision)
            print(f"{dataset:8} {precision:9} {','.join(map(str, shape)):14} {a:11.1f} {b:10.1f} "
                  f"{c:11.1f} {a / b:6.2f} {a / c:6.2f}  {traces}", flush=True)
    print("units: images/second (training steps: forward + backward + update)")


if __name__ == "__main__":
    main()
