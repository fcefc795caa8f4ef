"""Stable paths of the layers and weights of a Keras model, the same in every process.

A path joins the layer names from the model down: a name chosen explicitly (``layer_3``), else the
attribute or dict key holding the sublayer (``ops/node0/x/op1``), else the class name numbered
like Keras' automatic names. Keras' own variable paths use process-global counters
(``conv2d_17``), which differ between a run and its resumption, so checkpoints
(:mod:`enas.run.run_dir`), the summary (:mod:`enas.cost.model_summary`) and the packed export key
weights by these paths instead.
"""

from __future__ import annotations

import dataclasses
import re

import keras


def _snake_case(name):
    # Keras' own rule for automatic layer names (keras.src.utils.naming.to_snake_case).
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_auto_name(layer):
    return re.fullmatch(re.escape(_snake_case(type(layer).__name__)) + r"(_\d+)?", layer.name) is not None


def _attribute_labels(layer):
    """``id(sublayer) -> label`` from the public attributes holding it (lists: ``attr[i]``,
    dicts: the key)."""
    labels = {}

    def visit(value, label, depth=0):
        if isinstance(value, keras.layers.Layer):
            labels.setdefault(id(value), label)
        elif depth < 2 and isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, f"{label}[{i}]", depth + 1)
        elif depth < 2 and isinstance(value, dict):
            for key, item in value.items():
                visit(item, str(key), depth + 1)

    for attr, value in vars(layer).items():
        if not attr.startswith("_"):
            visit(value, attr)
    return labels


def _children(layer):
    """``[(label, sublayer)]`` in creation order with labels unique among siblings: the layer's
    name when it was chosen explicitly, else the attribute (or dict key) holding it, else the
    class name numbered like Keras' automatic names."""
    attr_labels = _attribute_labels(layer)
    used, class_counts, out = set(), {}, []
    for child in layer._flatten_layers(include_self=False, recursive=False):
        if not _is_auto_name(child):
            label = child.name
        elif id(child) in attr_labels:
            label = attr_labels[id(child)]
        else:
            stem = _snake_case(type(child).__name__)
            n = class_counts.get(stem, 0)
            class_counts[stem] = n + 1
            label = stem if n == 0 else f"{stem}_{n}"
        unique, k = label, 1
        while unique in used:
            unique, k = f"{label}_{k}", k + 1
        used.add(unique)
        out.append((unique, child))
    return out


def walk_layers(model):
    """Yield ``(path, layer, ancestors)`` for the model (path ``""``) and every sublayer, depth
    first in creation order; each layer once."""
    seen = set()

    def visit(path, layer, ancestors):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        yield path, layer, ancestors
        for label, child in _children(layer):
            yield from visit(f"{path}/{label}" if path else label, child, ancestors + (layer,))

    yield from visit("", model, ())


def _own_weights(layer, all_weight_ids):
    """Variables of ``layer`` itself (not of its sublayers) that are model weights."""
    below = set()
    for child in layer._flatten_layers(include_self=False, recursive=False):
        below.update(id(w) for w in child.weights)
    return [w for w in layer.weights if id(w) not in below and id(w) in all_weight_ids]


@dataclasses.dataclass
class WeightPath:
    """One model weight: ``path`` (``<layer path>/<variable name>``), its owner ``layer`` (``None``
    for a weight no layer owns) at ``layer_path``."""

    path: str
    layer_path: str
    layer: object
    variable: object


def weights_by_path(model):
    """Every weight of ``model`` as a :class:`WeightPath`, in :func:`walk_layers` order. Weights no
    layer owns directly (should not happen) come last under ``(other)/``. Raises ``ValueError``
    if two weights would share a path."""
    all_ids = {id(w) for w in model.weights}
    entries, covered = [], set()
    for path, layer, _ in walk_layers(model):
        for variable in _own_weights(layer, all_ids):
            if id(variable) in covered:
                continue
            covered.add(id(variable))
            name = f"{path}/{variable.name}" if path else variable.name
            entries.append(WeightPath(name, path, layer, variable))
    for variable in model.weights:
        if id(variable) not in covered:
            covered.add(id(variable))
            entries.append(WeightPath(f"(other)/{variable.name}", "(other)", None, variable))
    paths = [e.path for e in entries]
    if len(set(paths)) != len(paths):
        dup = next(p for p in paths if paths.count(p) > 1)
        raise ValueError(f"two variables share the path {dup!r}; give the layers distinct names")
    return entries
