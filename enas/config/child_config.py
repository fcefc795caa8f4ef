"""Shape, regularisation and precision of a child network (:class:`ChildConfig`), with its JSON
form. No TensorFlow: the scripts check these settings before importing it (see
:mod:`enas.config.run_config`, which builds it from the flags)."""

import dataclasses

from enas.errors import ConfigError
from enas.space.precision import Precision, PrecisionPolicy


def default_reduction_layers(num_layers):
    """ENAS rule: reductions at ``L // 3`` and ``2 * (L // 3) + 1`` (of ``L + 2`` layers)."""
    distance = num_layers // 3
    return (distance, 2 * distance + 1)


@dataclasses.dataclass(frozen=True)
class ChildConfig:
    """Shape and regularisation of a child network (the ``child_*`` flags)."""

    num_layers: int = 6
    num_nodes: int = 5
    out_filters: int = 20
    num_classes: int = 10
    keep_prob: float = 1.0
    drop_path_keep_prob: float = 1.0
    use_aux_heads: bool = False
    reduction_layers: tuple = None  # None: default_reduction_layers(num_layers)
    policy: PrecisionPolicy = PrecisionPolicy()
    # Search mode: the precisions an op with weights may take (names, e.g. ("binary", "4bit"));
    # fewer than two: not searched, every op has the policy's precision.
    search_precisions: tuple = ()

    def __post_init__(self):
        for name in ("num_layers", "num_nodes", "out_filters", "num_classes"):
            value = getattr(self, name)
            minimum = 0 if name == "num_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"child {name} must be an integer >= {minimum}, got {value!r}")
        for name in ("keep_prob", "drop_path_keep_prob"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(f"child {name} must be in (0, 1], got {value!r}")
        names = tuple(Precision.parse(p, self.policy.default.bits).short_name() for p in self.search_precisions)
        if len(set(names)) != len(names):
            raise ConfigError(f"--search_precisions names a precision twice: {','.join(names)}")
        if len(names) == 1:
            raise ConfigError(f"--search_precisions needs two or more precisions to choose from, got {names[0]}; "
                              "for one precision everywhere use --child_quantization")
        object.__setattr__(self, "search_precisions", names)
        if self.reduction_layers is None:
            object.__setattr__(self, "reduction_layers", default_reduction_layers(self.num_layers))
        total = self.num_layers + 2
        for part, _ in self.policy.overrides:
            if part.startswith("layer_") and int(part[6:]) >= total:
                raise ConfigError(
                    f"precision override {part!r} names no layer: layers are layer_0..layer_{total - 1} "
                    "(num_layers + 2)"
                )
        bad = [r for r in self.reduction_layers if not 0 <= r < total]
        if bad:
            raise ConfigError(
                f"reduction layer(s) {bad} out of range: layers are 0..{total - 1} (num_layers + 2)"
            )

    def to_json(self):
        """Plain-JSON dict of every field, the precision policy included (inverse: :meth:`from_json`).
        Used by ``config.json``, ``MicroChild.get_config`` and the packed export."""
        return {
            "num_layers": self.num_layers, "num_nodes": self.num_nodes, "out_filters": self.out_filters,
            "num_classes": self.num_classes, "keep_prob": self.keep_prob,
            "drop_path_keep_prob": self.drop_path_keep_prob, "use_aux_heads": self.use_aux_heads,
            "reduction_layers": [int(r) for r in self.reduction_layers], "precision": self.policy.to_json(),
            "search_precisions": list(self.search_precisions),
        }

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        policy = PrecisionPolicy.from_json(data.pop("precision"))
        data["search_precisions"] = tuple(data.get("search_precisions", ()))  # absent: recorded before it existed
        return cls(**{**data, "reduction_layers": tuple(data["reduction_layers"])}, policy=policy)


def parse_precision_list(text):
    """``"binary,ternary,4bit"`` -> ``("binary", "ternary", "4bit")``; empty -> ``()``."""
    items = [t.strip() for t in str(text or "").replace(" ", ",").split(",") if t.strip()]
    try:
        return tuple(Precision.parse(t).short_name() for t in items)
    except ConfigError as e:
        raise ConfigError(f"bad --search_precisions {text!r}: {e}; e.g. 'binary,ternary,4bit'") from None


def parse_layer_list(text):
    """``"2,5"`` or ``"2 5"`` -> ``(2, 5)``; empty -> ``None`` (the ENAS default)."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        return tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise ConfigError(
            f"bad --child_reduction_layers {text!r}: give layer indices such as '2,5' (empty: ENAS default)"
        ) from None
