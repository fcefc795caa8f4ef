"""Precision settings of a child network: which quantizers each layer uses.

A precision is written as a short string:

==================  ======================================  ===========================
spec                kernel quantizer                        activation (input quantizer)
==================  ======================================  ===========================
``binary``          ``SteSign`` ({-1,+1})                   ``SteSign``
``ternary``         ``SteTern(rule="twn")`` ({-a,0,+a})     ``SteTern(rule="fixed")``
``quantized:K``     ``SteQuantize(K)`` (2**K levels)        ``SteQuantize(K)``
``float``           none                                    ReLU
==================  ======================================  ===========================

The quantized activation takes the place of ENAS's ReLU (a ReLU before sign() would make the
output constant). :class:`PrecisionPolicy` assigns a precision to every part of the child:
``stem``, ``layer_<i>``, ``aux_head`` and ``classifier``; stem and classifier stay full precision
unless asked otherwise.
"""

import dataclasses
import importlib
import re

from enas.errors import ConfigError
from quantize.bit_widths import SUPPORTED_BITS

KINDS = ("binary", "ternary", "quantized", "float")
# kind -> (module, class) of its quantizer; the class owns the precision's facts.
QUANTIZER_CLASSES = {
    "binary": ("binarize.binary_ops", "SteSign"),
    "ternary": ("ternarize.ternary_ops", "SteTern"),
    "quantized": ("quantize.quantized_ops", "SteQuantize"),
}


@dataclasses.dataclass(frozen=True)
class Precision:
    """One precision: ``kind`` in KINDS, ``bits`` used only by ``quantized``."""

    kind: str = "ternary"
    bits: int = 4

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown precision {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind == "quantized" and self.bits not in SUPPORTED_BITS:
            raise ConfigError(
                f"bad bit width {self.bits!r} for quantized precision: use one of {SUPPORTED_BITS}"
            )

    @classmethod
    def parse(cls, spec, bits=4):
        """``"binary"``, ``"ternary"``, ``"float"``, ``"quantized"`` (with ``bits``),
        ``"quantized:4"`` or ``"4bit"``."""
        if isinstance(spec, Precision):
            return spec
        text = str(spec).strip().lower()
        match = re.fullmatch(r"(?:quantized|kbit)[:=]?(\d+)|(\d+)-?bits?", text)
        if match:
            return cls("quantized", int(match.group(1) or match.group(2)))
        if text in ("fp32", "full"):
            text = "float"
        return cls(text, int(bits))

    def quantizer_class(self):
        """The :class:`quantize.base.Quantizer` subclass of this precision (``None``: float).
        Imported on first use: TensorFlow is not needed to parse a precision."""
        if self.kind == "float":
            return None
        module, name = QUANTIZER_CLASSES[self.kind]
        return getattr(importlib.import_module(module), name)

    def kernel_quantizer(self):
        """A new kernel quantizer for this precision (``None`` for float)."""
        cls = self.quantizer_class()
        return None if cls is None else cls.for_kernel(self.bits)

    def activation(self):
        """The activation placed where ENAS has a ReLU: the precision's activation quantizer,
        or ReLU for float."""
        cls = self.quantizer_class()
        if cls is None:
            import keras

            return keras.activations.relu
        return cls.for_activation(self.bits)

    def __str__(self):
        return f"quantized:{self.bits}" if self.kind == "quantized" else self.kind


FLOAT = Precision("float")

# The original repo's mix: 4-bit stem and first layer, ternary everywhere else.
ORIGINAL_OVERRIDES = "stem=quantized:4,layer_0=quantized:4"


@dataclasses.dataclass(frozen=True)
class PrecisionPolicy:
    """Precision of every part of a child network.

    Args:
        default: precision of the cells (and everything not named otherwise).
        quantize_stem: give the stem conv the default precision instead of float (its input,
            the image, is never quantized).
        quantize_classifier: give the final dense layer the default precision.
        overrides: ``{"stem" | "layer_<i>" | "aux_head" | "classifier": Precision}``.
    """

    default: Precision = Precision()
    quantize_stem: bool = False
    quantize_classifier: bool = False
    overrides: tuple = ()

    # The precision flags of the scripts and their defaults (see from_settings).
    FLAG_DEFAULTS = {"child_quantization": "ternary", "child_bits": 4, "child_quantize_stem": False,
                     "child_quantize_classifier": False, "child_precision_overrides": ""}

    @classmethod
    def from_settings(cls, s):
        """From the ``child_quantization``, ``child_bits``, ``child_quantize_stem``,
        ``child_quantize_classifier`` and ``child_precision_overrides`` settings."""
        return cls.from_flags(s["child_quantization"], s["child_bits"], s["child_quantize_stem"],
                              s["child_quantize_classifier"], s["child_precision_overrides"])

    def to_settings(self):
        """Inverse of :meth:`from_settings`."""
        return {"child_quantization": self.default.kind, "child_bits": self.default.bits,
                "child_quantize_stem": self.quantize_stem,
                "child_quantize_classifier": self.quantize_classifier,
                "child_precision_overrides": ",".join(f"{name}={p}" for name, p in self.overrides)}

    def to_json(self):
        """Plain-JSON dict (inverse: :meth:`from_json`)."""
        return {"default": str(self.default), "bits": self.default.bits, "quantize_stem": self.quantize_stem,
                "quantize_classifier": self.quantize_classifier,
                "overrides": ",".join(f"{name}={p}" for name, p in self.overrides)}

    @classmethod
    def from_json(cls, data):
        return cls.from_flags(data["default"], data["bits"], data["quantize_stem"],
                              data["quantize_classifier"], data["overrides"])

    @classmethod
    def from_flags(cls, quantization="ternary", bits=4, quantize_stem=False,
                   quantize_classifier=False, overrides=""):
        """Build from flag values; ``overrides`` like ``"stem=quantized:4,layer_0=binary"``
        or ``"original"`` (the original repo's mix)."""
        if str(overrides).strip() == "original":
            overrides = ORIGINAL_OVERRIDES
        parsed = []
        for item in filter(None, (s.strip() for s in str(overrides or "").split(","))):
            name, sep, spec = item.partition("=")
            name = name.strip()
            if not sep or not re.fullmatch(r"stem|classifier|aux_head|layer_\d+", name):
                raise ConfigError(
                    f"bad precision override {item!r}: write NAME=PRECISION with NAME one of "
                    "stem, classifier, aux_head, layer_<i> (e.g. 'stem=quantized:4,layer_0=binary')"
                )
            parsed.append((name, Precision.parse(spec, bits)))
        return cls(Precision.parse(quantization, bits), bool(quantize_stem),
                   bool(quantize_classifier), tuple(parsed))

    def for_part(self, name):
        """Precision of the part ``name`` (``stem``, ``layer_3``, ``aux_head``, ``classifier``)."""
        for part, precision in self.overrides:
            if part == name:
                return precision
        if name == "stem" and not self.quantize_stem:
            return FLOAT
        if name == "classifier" and not self.quantize_classifier:
            return FLOAT
        return self.default

    def describe(self):
        parts = [f"default={self.default}", f"stem={self.for_part('stem')}",
                 f"classifier={self.for_part('classifier')}"]
        parts += [f"{name}={p}" for name, p in self.overrides if name not in ("stem", "classifier")]
        return ", ".join(parts)
