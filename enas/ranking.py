"""Architectures ranked by their accuracy on a whole split with a search's shared weights, and
Kendall's rank correlation (used by the final pick of a search and by the study)."""

from __future__ import annotations

import itertools

from enas.arc import Arc


def rank_architectures(trainer, dataset, arcs):
    """``[{"arc": str, "val_acc": float}]`` of the distinct ``arcs`` (Arc or anything
    :meth:`Arc.from_list` reads), best first (ties keep the sampling order). Each is evaluated on
    every batch of the finite ``dataset`` with the search-mode ``trainer``'s shared weights."""
    import tensorflow as tf  # here: the study reads its settings before TensorFlow loads

    ranked, seen = [], set()
    for arc in arcs:
        arc = arc if isinstance(arc, Arc) else Arc.from_list(arc)
        if str(arc) in seen:
            continue
        seen.add(str(arc))
        correct, total = trainer.evaluate(dataset, tf.constant(arc.to_list(), tf.int32))
        ranked.append({"arc": str(arc), "val_acc": correct / max(total, 1)})
    return sorted(ranked, key=lambda item: -item["val_acc"])


def kendall_tau(xs, ys):
    """Kendall's tau-b of two equally long sequences (``nan`` for fewer than two pairs or a
    constant sequence): ``(concordant - discordant) / sqrt((n0 - ties_x) * (n0 - ties_y))``."""
    if len(xs) != len(ys):
        raise ValueError(f"need sequences of the same length, got {len(xs)} and {len(ys)}")
    concordant = discordant = ties_x = ties_y = pairs = 0
    for (x1, y1), (x2, y2) in itertools.combinations(zip(xs, ys), 2):
        pairs += 1
        dx, dy = x1 - x2, y1 - y2
        if dx == 0:
            ties_x += 1
        if dy == 0:
            ties_y += 1
        if dx * dy > 0:
            concordant += 1
        elif dx * dy < 0:
            discordant += 1
    denominator = ((pairs - ties_x) * (pairs - ties_y)) ** 0.5
    return (concordant - discordant) / denominator if denominator else float("nan")
