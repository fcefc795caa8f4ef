"""Architectures ranked by their accuracy on a whole split with a search's shared weights, and
Kendall's rank correlation (used by the final pick of a search and by the study)."""

from __future__ import annotations

import itertools

from enas.space.arc import Arc


def rank_architectures(trainer, dataset, arcs, precisions=(), default_precision=None):
    """``[{"arc": str, "val_acc": float}]`` of the distinct ``arcs`` (Arc, an arc string or a
    search vector), best first (ties keep the sampling order). Each is evaluated on every batch of
    the finite ``dataset`` with the search-mode ``trainer``'s shared weights. ``precisions``: the
    searched precision names when the search vectors carry precision indices (an op without a
    precision then has ``default_precision``)."""
    import tensorflow as tf  # here: the study reads its settings before TensorFlow loads

    ranked, seen = [], set()
    for arc in arcs:
        if not isinstance(arc, Arc):
            arc = Arc.from_list(arc) if isinstance(arc, str) else Arc.from_vector(arc, precisions)
        if str(arc) in seen:
            continue
        seen.add(str(arc))
        vector = arc.to_vector(precisions, default_precision)
        correct, total = trainer.evaluate(dataset, tf.constant(vector, tf.int32))
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
