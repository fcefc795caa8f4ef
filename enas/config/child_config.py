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


#: The stem's stride brings the shorter image side down to at most this many pixels (see
#: :func:`auto_stem_stride`); MNIST and CIFAR-10 (28, 32) keep stride 1.
STEM_TARGET_SIDE = 47
STEM_STRIDES = (1, 2, 4, 8)


def auto_stem_stride(image_shape):
    """The stem's stride for images of ``image_shape`` (H, W[, C]): the smallest of 1, 2, 4, 8 that
    brings the shorter side to at most :data:`STEM_TARGET_SIDE` pixels, so the cells run at MNIST /
    CIFAR-10 resolution (24-47 pixels) whatever the input: 28 and 40x30 keep 1, 64 -> 2 (32),
    96 -> 4 (24), 224 -> 8 (28). ``--child_stem_stride`` overrides it."""
    if not image_shape:
        return 1
    side = min(int(image_shape[0]), int(image_shape[1]))
    for stride in STEM_STRIDES:
        if -(-side // stride) <= STEM_TARGET_SIDE:
            return stride
    return STEM_STRIDES[-1]


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
    # The input, set from the data when a run starts (empty: not known yet / the network takes
    # already-normalised images): image shape (H, W, C), per-channel mean and std of the training
    # split's x / input_scale (the network's first layer computes (x / input_scale - mean) / std;
    # input_scale 255 for pixels, 1 for float data).
    image_shape: tuple = ()
    input_mean: tuple = ()
    input_std: tuple = ()
    input_scale: float = 1.0
    stem_stride: int = 0  # 0: auto_stem_stride(image_shape)

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
        for name in ("image_shape", "input_mean", "input_std"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        object.__setattr__(self, "input_mean", tuple(float(v) for v in self.input_mean))
        object.__setattr__(self, "input_std", tuple(float(v) for v in self.input_std))
        if self.image_shape and (len(self.image_shape) != 3 or min(self.image_shape) < 1):
            raise ConfigError(f"child image_shape must be (H, W, C), got {self.image_shape}")
        if len(self.input_mean) != len(self.input_std) or (
                self.input_mean and self.image_shape and len(self.input_mean) != self.image_shape[-1]):
            raise ConfigError("child input_mean and input_std need one value per image channel")
        if any(v <= 0 for v in self.input_std) or not self.input_scale > 0:
            raise ConfigError("child input_std values and input_scale must be > 0")
        object.__setattr__(self, "input_scale", float(self.input_scale))
        if self.stem_stride not in (0,) + STEM_STRIDES:
            raise ConfigError(f"--child_stem_stride must be 0 (auto) or one of {', '.join(map(str, STEM_STRIDES))}, "
                              f"got {self.stem_stride!r}")
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

    @property
    def has_normal_layer(self):
        """True if some layer is not a reduction layer, i.e. the network uses the arc's normal cell.
        False for the MNIST scripts' ``num_layers=0`` (two reduction layers only): the normal half
        of an arc then means nothing and a search does not decide it."""
        return len(set(self.reduction_layers)) < self.num_layers + 2

    def to_json(self):
        """Plain-JSON dict of every field, the precision policy included (inverse: :meth:`from_json`).
        Used by ``config.json``, ``MicroChild.get_config`` and the packed export."""
        return {
            "num_layers": self.num_layers, "num_nodes": self.num_nodes, "out_filters": self.out_filters,
            "num_classes": self.num_classes, "keep_prob": self.keep_prob,
            "drop_path_keep_prob": self.drop_path_keep_prob, "use_aux_heads": self.use_aux_heads,
            "reduction_layers": [int(r) for r in self.reduction_layers], "precision": self.policy.to_json(),
            "search_precisions": list(self.search_precisions),
            "image_shape": list(self.image_shape), "input_mean": list(self.input_mean),
            "input_std": list(self.input_std), "input_scale": self.input_scale, "stem_stride": self.stem_stride,
        }

    def stride_for(self, image_shape=None):
        """The stem's stride: ``stem_stride``, or :func:`auto_stem_stride` of the image shape."""
        return self.stem_stride or auto_stem_stride(image_shape or self.image_shape)

    def for_data(self, image_shape, num_classes, mean, std, scale=255.0):
        """A copy for a dataset: its image shape, class count and training statistics (of
        ``x / scale``)."""
        return dataclasses.replace(self, image_shape=tuple(int(d) for d in image_shape), num_classes=int(num_classes),
                                   input_mean=tuple(float(v) for v in mean), input_std=tuple(float(v) for v in std),
                                   input_scale=float(scale))

    @classmethod
    def from_json(cls, data):
        data = dict(data)
        policy = PrecisionPolicy.from_json(data.pop("precision"))
        data["search_precisions"] = tuple(data.get("search_precisions", ()))  # absent: recorded before it existed
        for name in ("image_shape", "input_mean", "input_std"):  # absent: recorded before they existed
            data[name] = tuple(data.get(name) or ())
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
