"""What a search's controller has learned, decision by decision.

Restores the controller of a finished (or running) search from its latest checkpoint and prints,
along one architecture (the search's ``best_arc.txt`` unless ``--arc`` is given), the distribution
of every decision given the earlier ones: the probabilities, the entropy, and whether the decision
is *frozen* (every logit where ``tanh_constant * tanh(.)`` passes less than 1% of its gradient,
so REINFORCE can hardly move it any more). The entropy is split into input ids, ops and
precisions: the controller's summed entropy (the ``ent`` of the ``ctrl_step`` lines) can stay
high because the controller is indifferent between equally good choices (two cell inputs that
carry the same tensor), because a decision is frozen at a tie, or because it has not learned.

    python benchmarks/controller_policy.py ./output-mnist-search
    python benchmarks/controller_policy.py STUDY_DIR/search_enas-s2 --arc "0 1 0 1 ..."
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from enas.cli import tf_log  # noqa: E402

tf_log.set_tensorflow_defaults()  # TensorFlow's environment defaults, before TensorFlow is imported
tf_log.filter_cpp_logs()  # its C++ start-up banners stay off stderr: an error is one line

from enas.controller.controller import uniform_entropy  # noqa: E402
from enas.errors import UserError  # noqa: E402
from enas.search import search_task  # noqa: E402
from enas.space.arc import parse_arc  # noqa: E402
from enas.space.search_space import DEFAULT as SPACE  # noqa: E402

SLOTS = ("x input", "x op", "y input", "y op")


def label(decision):
    """``x input`` / ``x op`` / ``y input`` / ``y op`` / ``x precision`` / ``y precision``."""
    if decision.kind == "precision":
        return ("x", "y")[decision.position % 2] + " precision"
    return SLOTS[decision.position % 4]


def chosen(decision, precisions):
    if decision.kind == "op":
        return SPACE.ops[decision.choice].name
    if decision.kind == "precision":
        return precisions[decision.choice]
    return f"id {decision.choice}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a search run folder (config.json and a checkpoint)")
    parser.add_argument("--arc", default="", help="the architecture to follow (default: the run's best_arc.txt)")
    args = parser.parse_args(argv)
    try:
        config, controller = search_task.restore_controller(args.run)
        if not controller.learns:
            raise UserError(f"{args.run!r} searched with the random controller: uniform, nothing learned")
        text = args.arc
        if not text:
            best = os.path.join(args.run, search_task.BEST_FILE)
            if not os.path.exists(best):
                raise UserError(f"{args.run!r} has no {search_task.BEST_FILE} yet; pass --arc")
            with open(best) as f:
                text = f.read()
        precisions = config.child.search_precisions
        arc = parse_arc(text, config.child.num_nodes)
        vector = arc.to_vector(precisions, config.child.policy.default.short_name())
        decisions = controller.decisions(vector)
    except (OSError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    c = config.controller
    steps = int(controller_steps(args.run))
    uniform = uniform_entropy(config.child.num_nodes, SPACE.num_ops, len(precisions) or 1, config.child.has_normal_layer)
    total = sum(d.entropy for d in decisions)
    by_kind = {kind: sum(d.entropy for d in decisions if d.kind == kind) for kind in ("input", "op", "precision")}
    frozen = [d for d in decisions if d.frozen]
    print(f"search run: {args.run} (cells of {config.child.num_nodes} nodes; controller lstm {c.lstm_size}, "
          f"tanh constant {c.tanh_constant:g} / ops {c.tanh_constant / c.op_tanh_reduce:g}; {steps} updates recorded)")
    print(f"architecture: {arc}")
    print(f"entropy along it: {total:.2f} nats of the uniform {uniform:.2f} ({total / uniform:.0%}): "
          + ", ".join(f"{kind} decisions {value:.2f}" for kind, value in by_kind.items()
                      if kind != "precision" or precisions))
    if not config.child.has_normal_layer:
        print("no normal layers: the normal cell is not decided (a copy of the reduction cell); the rows are the reduction cell's")
    print(f"frozen decisions (every logit where tanh passes < 1% of its gradient): {len(frozen)} of {len(decisions)}")
    print("| cell | node | decision | chosen | probabilities | entropy | frozen |")
    print("|---|---|---|---|---|---|---|")
    for d in decisions:
        probabilities = " ".join(f"{p:.3f}" for p in d.probabilities)
        print(f"| {d.cell} | {d.node} | {label(d)} | {chosen(d, precisions)} | {probabilities} | "
              f"{d.entropy:.3f} | {'yes' if d.frozen else ''} |")
    return 0


def controller_steps(run):
    """How many controller updates the run's ``controller.jsonl`` records."""
    return len(search_task.read_controller(run))


if __name__ == "__main__":
    sys.exit(main())
