"""Throughput of the search step: dynamic op selection vs a fixed network vs all-ops-and-gather.

For each precision (binary, float) and shape (MNIST 28x28x1, CIFAR 32x32x3), in ONE process:

  (a) search: the shared-weight child, a random architecture every step, ``tf.switch_case``
      running only the chosen op per node (what ``search_arc_*.py`` does);
  (b) fixed:  the fixed-architecture network of one architecture (each of the same few arcs (a)
      draws from, built as its own fixed child), i.e. the cost floor of a single network;
  (c) all-ops: the search child computing all five ops per node and gathering one (the
      original ENAS method);
  (m) mixed (``--mixed binary,ternary,4bit``): the search child that also chooses each op's
      precision among those (``search_arc_*.py --search_precisions``), on (a)'s architectures
      (same inputs and ops) with a uniformly random precision per op with weights; ``m/a`` is
      its speed over the single-precision search step (a). The two run the same ops, so the
      ratio is the price of searching the precision, not of a different op mix (a step's cost
      depends mostly on how many separable convs its architecture has: two independently drawn
      pairs of architectures differ by 20% and more);
  (m=) the same mixed child with every op at the row's precision (when it is one of
      ``--mixed``): ``m=/a`` is the overhead of the precision choice alone.

Each measurement is images/second of full training steps (forward, backward, SGD update) after
a warm-up; the repeats of (a), (b), (c) are interleaved so machine noise hits all alike, and the
table reports medians over repeats and the ratios a/b and a/c of those medians. ``first (a)`` is
the time from nothing to the end of the search child's first two steps (build the child, trace,
instantiate, run), ``first (b)`` the same for one fixed network and one step.

Rows (``--datasets`` picks among them): ``mnist`` (search_arc_mnist.py's child), ``cifar`` (a
smaller CIFAR child) and ``enas`` (ENAS's own CIFAR-10 search child: 6 layers + 2 reductions,
B=5, 20 filters, batch 128, 32x32x3).

    python benchmarks/search_step.py                 # all rows: ~25 minutes on 2 cores
    python benchmarks/search_step.py --quick         # the mnist rows, 1 repeat: about a minute
    python benchmarks/search_step.py --datasets enas --precisions float binary --skip-all-ops
    python benchmarks/search_step.py --datasets mnist enas --precisions ternary --skip-all-ops \
        --mixed binary,ternary,4bit
"""

import argparse
import dataclasses
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # TensorFlow's environment defaults, before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from enas.child.child_trainer import ChildTrainer, make_optimizer  # noqa: E402
from enas.child.micro_child import ChildConfig, MicroChild  # noqa: E402
from enas.space.arc import random_arc, with_random_precisions  # noqa: E402
from enas.space.precision import PrecisionPolicy  # noqa: E402

SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3), "enas": (32, 32, 3)}


def make_trainer(config, image_shape, batch, fixed_arc=None, op_selection="switch"):
    model = MicroChild(config, fixed_arc=fixed_arc, op_selection=op_selection).build_for(image_shape)
    return ChildTrainer(model, make_optimizer("sgd", 0.01), batch, search_mode=fixed_arc is None)


def first_steps(make, step, steps):
    """Seconds from nothing to the end of ``steps`` steps of a new trainer; returns the trainer."""
    start = time.perf_counter()
    trainer = make()
    for i in range(steps):
        out = step(trainer, i)
    float(out["loss"])
    return trainer, time.perf_counter() - start


def timed_steps(step, steps):
    start = time.perf_counter()
    for i in range(steps):
        out = step(i)
    float(out["loss"])  # wait for the last step
    return time.perf_counter() - start


def bench(args, dataset, precision):
    image_shape = SHAPES[dataset]
    layers, nodes, filters, batch = getattr(args, dataset)
    config = ChildConfig(num_layers=layers, num_nodes=nodes, out_filters=filters,
                         policy=PrecisionPolicy.from_flags(precision))
    rng = np.random.default_rng(0)
    arcs = [random_arc(nodes, rng) for _ in range(args.arcs)]
    arc_tensors = [tf.constant(a.to_list(), tf.int32) for a in arcs]
    x = tf.constant(rng.normal(size=(batch,) + image_shape).astype("float32"))
    y = tf.constant(rng.integers(0, 10, batch).astype("int32"))
    keras.utils.set_random_seed(0)
    search, first_a = first_steps(lambda: make_trainer(config, image_shape, batch),
                                  lambda t, i: t.train_step(x, y, arc_tensors[i % len(arcs)]), 2)
    mixed = first_m = None
    if args.mixed:
        mixed_config = dataclasses.replace(config, search_precisions=tuple(args.mixed))
        precisions = MicroChild(mixed_config).space.precisions
        vectors = [tf.constant(with_random_precisions(arc, precisions, rng).to_vector(precisions), tf.int32)
                   for arc in arcs]
        own = config.policy.default.short_name()
        own_vectors = [tf.constant(arc.to_vector(precisions, default=own), tf.int32)
                       for arc in arcs] if own in precisions else None
        mixed, first_m = first_steps(lambda: make_trainer(mixed_config, image_shape, batch),
                                     lambda t, i: t.train_step(x, y, vectors[i % len(vectors)]), 2)
    fixed = []
    for k, arc in enumerate(arcs):
        trainer, seconds = first_steps(lambda a=arc: make_trainer(config, image_shape, batch, fixed_arc=a),
                                       lambda t, i: t.train_step(x, y), 1)
        fixed.append(trainer)
        if k == 0:
            first_b = seconds
    step_of = {"a": lambda i: search.train_step(x, y, arc_tensors[i % len(arcs)])}
    gather = None
    if not args.skip_all_ops:
        gather = make_trainer(config, image_shape, batch, op_selection="all")
        step_of["c"] = lambda i: gather.train_step(x, y, arc_tensors[i % len(arcs)])
    if mixed is not None:
        step_of["m"] = lambda i: mixed.train_step(x, y, vectors[i % len(vectors)])
        if own_vectors is not None:
            step_of["m="] = lambda i: mixed.train_step(x, y, own_vectors[i % len(own_vectors)])
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
    traces = (search.trace_count, gather.trace_count if gather else 0, mixed.trace_count if mixed else 0)
    mixed_rates = (median.get("m", float("nan")), median.get("m=", float("nan")))
    return (median["a"], fixed_rate, median.get("c", float("nan")), mixed_rates, traces,
            (layers, nodes, filters, batch), (first_a, first_b, first_m))


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
    parser.add_argument("--enas", type=int, nargs=4, default=[6, 5, 20, 128],
                        metavar=("LAYERS", "NODES", "FILTERS", "BATCH"),
                        help="ENAS's CIFAR-10 search child (official search script's size)")
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar", "enas"], choices=list(SHAPES))
    parser.add_argument("--precisions", nargs="+", default=["binary", "float"])
    parser.add_argument("--skip-all-ops", action="store_true", help="do not build/time (c)")
    parser.add_argument("--mixed", type=lambda text: [t for t in text.split(",") if t], default=[],
                        help="also time (m): the search over each op's precision among these, e.g. "
                             "binary,ternary,4bit")
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute check: mnist rows only, 1 repeat of 4 steps, no (c)")
    args = parser.parse_args()
    tf_log.filter_cpp_logs()  # TensorFlow's C++ banners off the table's stderr
    if args.quick:
        args.datasets, args.repeats, args.steps, args.skip_all_ops = ["mnist"], 1, 4, True
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"median of {args.repeats} repeats x {args.steps} steps", flush=True)
    header = f"{'dataset':8} {'precision':9} {'L,B,F,batch':14} {'(a) search':>11} {'(b) fixed':>10} " \
             f"{'(c) all-ops':>11} {'a/b':>6} {'a/c':>6} {'first (a)':>10} {'first (b)':>10}"
    if args.mixed:
        header += f" {'(m) mixed':>10} {'m/a':>6} {'(m=) own':>9} {'m=/a':>6} {'first (m)':>10}"
    header += "  traces(a,c,m)"
    print(header)
    print("-" * len(header))
    for dataset in args.datasets:
        for precision in args.precisions:
            a, b, c, (m, m_own), traces, shape, (first_a, first_b, first_m) = bench(args, dataset, precision)
            row = (f"{dataset:8} {precision:9} {','.join(map(str, shape)):14} {a:11.1f} {b:10.1f} "
                   f"{c:11.1f} {a / b:6.2f} {a / c:6.2f} {first_a:9.1f}s {first_b:9.1f}s")
            if args.mixed:
                row += f" {m:10.1f} {m / a:6.2f} {m_own:9.1f} {m_own / a:6.2f} {first_m:9.1f}s"
            print(f"{row}  {traces}", flush=True)
    print("units: images/second (training steps: forward + backward + update); first: seconds")


if __name__ == "__main__":
    main()
