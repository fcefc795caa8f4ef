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
    """One precision: ``kind`` in KINDS, ``bits`` used only by ``quantized``; the options of a
    binary part (:data:`BINARY_OPTIONS`, set by :class:`PrecisionPolicy` on every binary part):

    * ``scale``: binary kernels are ``alpha_c * sign(W)`` with ``alpha_c`` the mean ``|W|`` of
      output channel ``c`` (XNOR-Net) instead of ``sign(W)``;
    * ``rsign``: the binary activation is ``sign(x - b_c)`` with a learned threshold ``b_c`` per
      channel (ReActNet's RSign) instead of ``sign(x)``;
    * ``rprelu``: each binary convolution's batch norm is followed by ReActNet's RPReLU,
      ``prelu_c(y - gamma_c) + zeta_c`` (learned per-channel shifts and negative slope).

    and, for any quantized kind (set by :class:`PrecisionPolicy` on every quantized part):

    * ``shortcut``: each quantized convolution of a cell gets a real-valued shortcut, ``y =
      BN(conv(q(x))) + s(x)`` (Bi-Real Net), ``s`` the identity or, where the shapes differ,
      :func:`enas.child.micro_ops.real_shortcut`; the cell's combine adds the mean of the ids it
      concatenates. No weights: the memory and the MACs are unchanged.
    """

    kind: str = "ternary"
    bits: int = 4
    scale: bool = False
    rsign: bool = False
    rprelu: bool = False
    shortcut: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown precision {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.kind != "binary" and any(getattr(self, name) for name in BINARY_OPTIONS):
            raise ConfigError(f"{', '.join(BINARY_OPTIONS)} are options of the binary precision, not of {self}")
        if self.kind == "quantized" and self.bits not in SUPPORTED_BITS:
            raise ConfigError(
                f"bad bit width {self.bits!r} for quantized precision: use one of {SUPPORTED_BITS}"
            )
        if self.kind == "float" and self.shortcut:
            raise ConfigError("real-valued shortcuts are an option of the quantized precisions, not of float")

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
        if cls is None:
            return None
        return cls.for_kernel(self.bits, scale=True) if self.scale else cls.for_kernel(self.bits)

    def activation(self):
        """The activation placed where ENAS has a ReLU: the precision's activation quantizer,
        or ReLU for float."""
        cls = self.quantizer_class()
        if cls is None:
            import keras

            return keras.activations.relu
        return cls.for_activation(self.bits)

    def short_name(self):
        """``binary``, ``ternary``, ``4bit``, ``float``: how an architecture string names it."""
        return f"{self.bits}bit" if self.kind == "quantized" else self.kind

    def __str__(self):
        return f"quantized:{self.bits}" if self.kind == "quantized" else self.kind


BINARY_OPTIONS = ("scale", "rsign", "rprelu")
HEAD_ACTIVATIONS = ("auto", "cells", "classifier")
SHORTCUTS = ("binary", "quantized", "none")
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
        binary: the binary options (:data:`BINARY_OPTIONS`) every binary part gets, as a tuple
            of the names set, e.g. ``("scale",)``.
        head_activation: the activation before the global pool and the classifier: ``"cells"``,
            that of the last layer's precision (ENAS's ReLU in float, the quantizer otherwise),
            ``"classifier"``, that of the classifier's precision (ReLU for the float classifier:
            the pooled features stay real-valued, as in Bi-Real Net and ReActNet), or ``"auto"``
            (the default): ``"classifier"`` when the cells are binary, ``"cells"`` otherwise
            (:meth:`head`).
        shortcuts: which parts get real-valued shortcuts around their convolutions
            (:attr:`Precision.shortcut`): ``"binary"`` (the binary parts: they gain most, see
            the README's recipe table), ``"quantized"`` (every binary, ternary and k-bit part) or
            ``"none"``; float parts never do.
    """

    default: Precision = Precision()
    quantize_stem: bool = False
    quantize_classifier: bool = False
    overrides: tuple = ()
    binary: tuple = ()
    head_activation: str = "auto"
    shortcuts: str = "binary"

    # The precision flags of the scripts and their defaults (see from_settings).
    FLAG_DEFAULTS = {"child_quantization": "ternary", "child_bits": 4, "child_quantize_stem": False,
                     "child_quantize_classifier": False, "child_precision_overrides": "",
                     "child_binary_scale": False, "child_binary_rsign": False, "child_binary_rprelu": False,
                     "child_head_activation": "auto", "child_real_shortcuts": "binary"}

    def __post_init__(self):
        unknown = set(self.binary) - set(BINARY_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown binary option(s) {sorted(unknown)}: use {', '.join(BINARY_OPTIONS)}")
        object.__setattr__(self, "binary", tuple(name for name in BINARY_OPTIONS if name in self.binary))
        if self.binary and not self.has_binary_part():
            raise ConfigError(f"--child_binary_{self.binary[0]} needs a binary part: pass --child_quantization binary "
                              "or a binary --child_precision_overrides entry")
        if self.shortcuts not in SHORTCUTS:
            raise ConfigError(f"unknown --child_real_shortcuts {self.shortcuts!r}: use one of {', '.join(SHORTCUTS)}")
        if self.head_activation not in HEAD_ACTIVATIONS:
            raise ConfigError(f"unknown --child_head_activation {self.head_activation!r}: use one of "
                              f"{', '.join(HEAD_ACTIVATIONS)}")

    @classmethod
    def from_settings(cls, s):
        """From the ``child_quantization``, ``child_bits``, ``child_quantize_stem``,
        ``child_quantize_classifier``, ``child_precision_overrides`` and ``child_binary_*`` settings."""
        binary = tuple(name for name in BINARY_OPTIONS if s.get(f"child_binary_{name}", False))
        return cls.from_flags(s["child_quantization"], s["child_bits"], s["child_quantize_stem"],
                              s["child_quantize_classifier"], s["child_precision_overrides"], binary,
                              s.get("child_head_activation", "cells"), s.get("child_real_shortcuts", "none"))

    def to_settings(self):
        """Inverse of :meth:`from_settings`."""
        return {"child_quantization": self.default.kind, "child_bits": self.default.bits,
                "child_quantize_stem": self.quantize_stem,
                "child_quantize_classifier": self.quantize_classifier,
                "child_precision_overrides": ",".join(f"{name}={p}" for name, p in self.overrides),
                **{f"child_binary_{name}": name in self.binary for name in BINARY_OPTIONS},
                "child_head_activation": self.head_activation, "child_real_shortcuts": self.shortcuts}

    def to_json(self):
        """Plain-JSON dict (inverse: :meth:`from_json`)."""
        return {"default": str(self.default), "bits": self.default.bits, "quantize_stem": self.quantize_stem,
                "quantize_classifier": self.quantize_classifier,
                "overrides": ",".join(f"{name}={p}" for name, p in self.overrides),
                "binary": list(self.binary), "head_activation": self.head_activation,
                "shortcuts": self.shortcuts}

    @classmethod
    def from_json(cls, data):
        # "binary", "head_activation", "shortcuts" absent: recorded before they existed (none;
        # "cells"; "none").
        return cls.from_flags(data["default"], data["bits"], data["quantize_stem"],
                              data["quantize_classifier"], data["overrides"], tuple(data.get("binary", ())),
                              data.get("head_activation", "cells"), data.get("shortcuts", "none"))

    @classmethod
    def from_flags(cls, quantization="ternary", bits=4, quantize_stem=False,
                   quantize_classifier=False, overrides="", binary=(), head_activation="auto", shortcuts="binary"):
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
                   bool(quantize_classifier), tuple(parsed), tuple(binary), str(head_activation), str(shortcuts))

    def for_part(self, name):
        """Precision of the part ``name`` (``stem``, ``layer_3``, ``aux_head``, ``classifier``),
        with the binary options when it is binary and the shortcuts when it is quantized."""
        return self._with_options(self._kind_of_part(name))

    def _kind_of_part(self, name):
        for part, precision in self.overrides:
            if part == name:
                return precision
        if name == "stem" and not self.quantize_stem:
            return FLOAT
        if name == "classifier" and not self.quantize_classifier:
            return FLOAT
        return self.default

    def with_options(self, precision):
        """``precision`` (a :class:`Precision` or its name) with this policy's binary options
        when it is binary and its shortcuts when it is quantized."""
        return self._with_options(Precision.parse(precision, self.default.bits))

    def _with_options(self, precision):
        options = {}
        if precision.kind == "binary":
            options.update({name: True for name in self.binary})
        if self.shortcuts == "quantized" and precision.kind != "float" or \
                self.shortcuts == "binary" and precision.kind == "binary":
            options["shortcut"] = True
        return dataclasses.replace(precision, **options) if options else precision

    def head(self):
        """``head_activation`` resolved: ``"cells"`` or ``"classifier"``."""
        if self.head_activation == "auto":
            return "classifier" if self.default.kind == "binary" else "cells"
        return self.head_activation

    def has_binary_part(self):
        """Some part of the network is binary."""
        return self.default.kind == "binary" or any(p.kind == "binary" for _, p in self.overrides)

    def describe(self):
        parts = [f"default={self.default}", f"stem={self._kind_of_part('stem')}",
                 f"classifier={self._kind_of_part('classifier')}"]
        parts += [f"{name}={p}" for name, p in self.overrides if name not in ("stem", "classifier")]
        if self.binary and self.has_binary_part():
            parts.append(f"binary options={'+'.join(self.binary)}")
        if self.head() != "cells":
            parts.append(f"head activation={self.head()}")
        if self.shortcuts == "quantized" or self.shortcuts == "binary" and self.has_binary_part():
            parts.append(f"real shortcuts ({self.shortcuts} parts)")
        return ", ".join(parts)
