"""The typed configuration of a run, with its defaults, its validation and its JSON form.

A run (``train_arc_*.py``: mode ``"train"``, ``search_arc_*.py``: mode ``"search"``) is one
:class:`RunConfig`, made of one typed section per concern:

==============  ==========================  ===================================================
section         class                       flags (``--help`` of a script lists them)
==============  ==========================  ===================================================
``data``        :class:`DataConfig`         ``data_path``, ``num_valid``, ``max_*_examples``,
                                            ``child_augment``, ``child_cutout_size``
``child``       :class:`ChildConfig`        ``child_num_layers`` ... ``child_precision_overrides``
``training``    :class:`TrainingConfig`     ``batch_size``, ``num_epochs``, ``child_lr_*``, ...
``controller``  :class:`ControllerConfig`   ``controller_*``, ``num_sampled_arcs`` (search only)
``cost``        :class:`CostConfig`         ``target_memory_kib``, ``target_ops``, ``target_ram_kib``, ``target_flash_kib``, ``cost_*``
                                            (search only)
``output``      :class:`OutputConfig`       ``output_dir``, ``log_every``, ``seed``, ...
``distribute``  :class:`DistributeConfig`   ``distribution``, ``num_devices``,
                                            ``sync_batch_norm``
==============  ==========================  ===================================================

plus ``mode``, ``dataset`` and ``fixed_arc`` (train mode). The dataclass fields hold the
library's defaults, the only place defaults are written; a script's CONFIG block holds only what
it changes. The flat flag names are the bridge to the command line: :func:`default_settings`
gives them for a mode, :meth:`RunConfig.from_settings` validates flat settings (every check a bad
flag can fail, with a one-line :class:`~enas.errors.ConfigError`) and :meth:`RunConfig.to_settings`
is its inverse. :meth:`RunConfig.to_json` / :meth:`RunConfig.from_json` are the one JSON round
trip, written whole into a run folder's ``config.json`` so that the folder alone reproduces the
run (``--from_config <folder>/config.json``).

No TensorFlow is imported here: the scripts validate their settings before it loads.
"""

from __future__ import annotations

import dataclasses
import json

from enas.config import recipes
from enas.config.child_config import ChildConfig, parse_layer_list, parse_precision_list
from enas.errors import ConfigError
from enas.space.arc import parse_arc
from enas.space.precision import PrecisionPolicy

MODES = ("train", "search")
DATASETS = ("mnist", "cifar10", "npz", "folder", "arrays")  # enas.data.formats.SOURCES
BUILTIN_SHAPES = {"mnist": (28, 28, 1), "cifar10": (32, 32, 3)}
COLOR_MODES = ("auto", "grayscale", "rgb", "rgba")
OPTIMIZERS = ("momentum", "sgd", "adam")
CONTROLLER_TYPES = ("micro", "random")
DISTRIBUTIONS = ("default", "mirrored", "multi_worker")
CONFIG_VERSION = 1


def parse_image_size(text):
    """``"96,96"`` or ``"49x10"`` -> ``(96, 96)``; ``""`` -> ``None`` (keep the images' size)."""
    text = str(text or "").strip()
    if not text:
        return None
    parts = [p for p in text.lower().replace("x", ",").replace(" ", ",").split(",") if p]
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"bad --image_size {text!r}: give the height and width, e.g. 96,96 or 49,10")
    return size


def _positive(section, *names):
    for name in names:
        value = getattr(section, name)
        if value < 1:
            raise ConfigError(f"--{_FLAG_OF[(type(section), name)]} must be >= 1, got {value!r}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which images, how they are split, read and augmented (see :mod:`enas.data.sources`)."""

    data_path: str = "./data"
    # Held out of the training images: a count, or a fraction below 1 (0: none). MNIST and
    # CIFAR-10: the last ones, as ENAS; other sources: drawn per class (unless they have their own).
    num_valid: float = 5000.0
    max_train_examples: int = 0  # 0: all
    max_test_examples: int = 0
    augment: bool = False  # pad 4, random crop, flip (natural images)
    cutout_size: int = 0  # 0: off
    image_size: str = ""  # "H,W": resize every image; "": keep their size (all must be equal)
    color_mode: str = "auto"  # auto (grayscale when every image is) | grayscale | rgb | rgba
    cache: str = ""  # image folders: keep decoded uint8 images after the first epoch ("memory" or a file path)

    def __post_init__(self):
        for name in ("num_valid", "max_train_examples", "max_test_examples", "cutout_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_FLAG_OF[(DataConfig, name)]} must be >= 0, got {getattr(self, name)}")
        if self.num_valid >= 1:
            if float(self.num_valid) != int(self.num_valid):
                raise ConfigError(f"--num_valid must be a count or a fraction below 1, got {self.num_valid}")
            object.__setattr__(self, "num_valid", int(self.num_valid))
        if self.color_mode not in COLOR_MODES:
            raise ConfigError(f"unknown --color_mode {self.color_mode!r}: use one of {', '.join(COLOR_MODES)}")
        if self.image_size:
            object.__setattr__(self, "image_size", ",".join(map(str, parse_image_size(self.image_size))))

    def image_size_tuple(self):
        """``(H, W)`` of ``--image_size``, or ``None``."""
        return tuple(int(v) for v in self.image_size.split(",")) if self.image_size else None


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How the child's weights are trained: batches, epochs, optimizer, schedule, regularisation.

    The fields defaulting to ``None`` come from the ``recipe`` (:mod:`enas.config.recipes`; ``"auto"``:
    the recipe of the cells' precision) when the run's :class:`RunConfig` is made; set one to
    override its recipe value. ``lr_T_0 = 0``: one cosine period as long as the run."""

    batch_size: int | None = None  # the recipe's (enas, bnn: 128; lowbit: 32; binary: 64)
    eval_batch_size: int = 100
    num_epochs: int = 10
    recipe: str = "auto"  # auto (the precision's) | enas | bnn | lowbit | binary
    optimizer: str | None = None  # momentum (SGD Nesterov 0.9) | sgd | adam
    lr_max: float | None = None
    lr_min: float | None = None
    lr_T_0: int | None = None  # epochs of the first cosine period (0: the whole run)
    lr_T_mul: int = 2
    lr_cosine: bool = True
    l2_reg: float | None = None
    l2_latent: bool | None = None  # the L2 decay also acts on the latent weights of quantized kernels
    real_weight_epochs: int = 0  # two-stage training: epochs with float kernels (activations quantized) first
    teacher_dir: str = ""  # distillation (train mode): a trained train_arc run of the same dataset
    distill_weight: float = 1.0  # loss = (1 - w) * cross-entropy + w * T^2 * KL(teacher || student)
    distill_temperature: float = 1.0
    grad_bound: float = 5.0  # 0: no clipping
    xla: bool = False  # search: compile the step with XLA (static shapes; for GPUs)

    def __post_init__(self):
        _positive(self, "eval_batch_size", "num_epochs")
        if self.batch_size is not None:
            _positive(self, "batch_size")
        if self.recipe not in recipes.RECIPE_CHOICES:
            raise ConfigError(f"unknown --child_recipe {self.recipe!r}: use one of {', '.join(recipes.RECIPE_CHOICES)}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if self.l2_reg is not None and self.l2_reg < 0:
            raise ConfigError(f"--child_l2_reg must be >= 0, got {self.l2_reg}")
        if self.lr_T_0 is not None and self.lr_T_0 < 0:
            raise ConfigError(f"--child_lr_T_0 must be >= 0 (0: the whole run), got {self.lr_T_0}")
        if not 0 <= self.real_weight_epochs < self.num_epochs:
            raise ConfigError(f"--child_real_weight_epochs must be >= 0 and below --num_epochs ({self.num_epochs}), "
                              f"got {self.real_weight_epochs}")
        if not 0 <= self.distill_weight <= 1 or not self.distill_temperature > 0:
            raise ConfigError(f"need 0 <= --child_distill_weight <= 1 and --child_distill_temperature > 0, "
                              f"got {self.distill_weight} and {self.distill_temperature}")
        if self.is_resolved():
            check_learning_rates(self.lr_max, self.lr_min, self.lr_cosine, self.first_period(), self.lr_T_mul)

    def is_resolved(self):
        """Every recipe field set."""
        return all(getattr(self, name) is not None for name in recipes.FIELDS)

    def resolved(self, precision_kind):
        """A copy with the unset recipe fields taken from the recipe (``auto``: that of
        ``precision_kind``), validated."""
        recipe = recipes.recipe_for(self.recipe, precision_kind)
        missing = {name: getattr(recipe, name) for name in recipes.FIELDS if getattr(self, name) is None}
        return dataclasses.replace(self, **missing) if missing else self

    def first_period(self):
        """Epochs of the first cosine period (``lr_T_0``, or the whole run when it is 0)."""
        return self.lr_T_0 or self.num_epochs

    def steps_per_epoch(self, num_train):
        return max(int(num_train) // self.batch_size, 1)


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    """The search's controller (ENAS's LSTM with REINFORCE, or uniform random sampling)."""

    type: str = "micro"  # micro | random
    lr: float = 0.03  # the original: 0.0035 (learned nothing in a 6-epoch MNIST search; docs/experiments.md)
    lstm_size: int = 64
    # Logits bounded by tanh_constant * tanh(.) (ops: / op_tanh_reduce). The original's 1.10 and 2.5 keep
    # every sample's entropy above 79% of the uniform distribution's (B = 3): the controller cannot
    # concentrate; 2.5 and 1.0 allow 9% (docs/search.md).
    tanh_constant: float = 2.5  # 0: none; the original: 1.10
    op_tanh_reduce: float = 1.0  # the original: 2.5
    temperature: float = 0.0  # 0: none
    entropy_weight: float = 1e-4
    bl_dec: float = 0.99
    # Clip the averaged REINFORCE gradient to this global norm before Adam (0: none, as the original).
    # The MNIST study's two entropy jumps each followed one gradient 12-45x the median (docs/search.md).
    grad_bound: float = 0.0
    train_steps: int = 50  # controller updates per epoch (the original: 30)
    warmup_epochs: int = 2  # epochs of shared-weight training before the controller's first update (the original: 0)
    num_aggregate: int = 10  # architectures per update
    reward_batch_size: int = 128  # validation images per reward minibatch (independent of the training batch)
    reward_batches: int = 4  # the reward: mean accuracy over this many validation minibatches (the original: 1)
    num_sampled_arcs: int = 10  # printed with their val_acc after each epoch
    final_pick_samples: int = 100  # sampled at the end, ranked on the whole validation split
    final_pick_top: int = 3  # of those, kept in final_pick.json's "top"

    def __post_init__(self):
        if self.type not in CONTROLLER_TYPES:
            raise ConfigError(f"unknown --controller_type {self.type!r}: use one of {', '.join(CONTROLLER_TYPES)}")
        _positive(self, "train_steps", "num_aggregate", "reward_batch_size", "reward_batches")
        for name in ("num_sampled_arcs", "final_pick_samples", "warmup_epochs", "grad_bound"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_FLAG_OF[(ControllerConfig, name)]} must be >= 0, got {getattr(self, name)}")
        _positive(self, "final_pick_top")


COST_CONSTRAINTS = ("soft", "hard")


COST_METRICS = ("memory_kib", "ops", "ram_kib", "flash_kib")


@dataclasses.dataclass(frozen=True)
class CostConfig:
    """The cost term of the search's reward (MnasNet's, Tan et al. 2019):

        reward = accuracy * prod over targets T of (cost_T / T) ** w

    with ``w = cost_weight`` (default -0.07). ``cost_constraint="hard"`` applies ``w`` only above
    the target (a factor 1 within it). A target of 0 is not used; without targets the reward is
    the accuracy. The costs (:data:`COST_METRICS`): weight memory and OPs as the summary counts
    them, and, for a microcontroller, the tensor arena TensorFlow Lite Micro needs for the int8
    file (``ram_kib``) and the file itself (``flash_kib``)."""

    target_memory_kib: float = 0.0
    target_ops: float = 0.0
    target_ram_kib: float = 0.0
    target_flash_kib: float = 0.0
    cost_weight: float = -0.07
    cost_constraint: str = "soft"

    def __post_init__(self):
        if min(self.target_values()) < 0:
            raise ConfigError("--target_memory_kib, --target_ops, --target_ram_kib and --target_flash_kib must be "
                              ">= 0 (0: no target)")
        if self.cost_weight > 0:
            raise ConfigError(f"--cost_weight must be <= 0 (a penalty for cost), got {self.cost_weight}")
        if self.cost_constraint not in COST_CONSTRAINTS:
            raise ConfigError(f"unknown --cost_constraint {self.cost_constraint!r}: use one of "
                              f"{', '.join(COST_CONSTRAINTS)}")

    def target_values(self):
        return (self.target_memory_kib, self.target_ops, self.target_ram_kib, self.target_flash_kib)

    @property
    def has_target(self):
        return any(t > 0 for t in self.target_values())

    @property
    def needs_micro(self):
        """A RAM or flash target: the search needs TensorFlow Lite Micro's cost tables."""
        return self.target_ram_kib > 0 or self.target_flash_kib > 0

    def targets(self):
        """``[(metric name, target)]`` of the targets set (names of :data:`COST_METRICS`)."""
        return [(name, t) for name, t in zip(COST_METRICS, self.target_values()) if t > 0]

    @staticmethod
    def _costs(values):
        """``{metric name: value}`` from one dict or the values in :data:`COST_METRICS` order."""
        return dict(values[0]) if len(values) == 1 and isinstance(values[0], dict) else dict(zip(COST_METRICS, values))

    def meets(self, *costs):
        """Within every target set (``costs``: a dict metric name -> value, or the values in
        :data:`COST_METRICS` order)."""
        costs = self._costs(costs)
        return all(costs[name] <= t for name, t in self.targets())

    def factor(self, *costs):
        """The reward's cost factor (Python floats; ``costs`` as :meth:`meets`)."""
        costs = self._costs(costs)
        out = 1.0
        for name, target in self.targets():
            value = costs[name]
            if self.cost_constraint == "soft" or value > target:
                out *= (value / target) ** self.cost_weight
        return out

    def tf_factor(self, *costs):
        """The reward's cost factor of float32 scalar tensors (traceable; ``costs`` as :meth:`meets`)."""
        import tensorflow as tf

        costs = self._costs(costs)
        out = tf.constant(1.0, tf.float32)
        for name, target in self.targets():
            value = costs[name]
            factor = tf.pow(value / target, self.cost_weight)
            if self.cost_constraint == "hard":
                factor = tf.where(value > target, factor, 1.0)
            out = out * factor
        return out


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where the run writes, how often it reports, and its seed."""

    output_dir: str = "./output"
    reset_output_dir: bool = False
    log_every: int = 50  # steps between child step lines
    eval_every_epochs: int = 1
    seed: int = 1
    micro_memory: bool = True  # train: end with the int8 file's flash and TFLM peak RAM (a conversion, seconds)

    def __post_init__(self):
        _positive(self, "log_every", "eval_every_epochs")


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """Where the steps run (:mod:`enas.run.distribute`): ``default``, one device;
    ``mirrored``, ``tf.distribute.MirroredStrategy`` over ``num_devices`` GPUs of this host (0:
    all), or, with no GPU, the CPU split into ``num_devices`` logical devices; ``multi_worker``,
    ``MultiWorkerMirroredStrategy`` over the hosts of the ``TF_CONFIG`` environment variable.
    ``batch_size`` stays the *global* batch. ``sync_batch_norm``: batch statistics over the global
    batch (as one device computes them) rather than per replica. Not part of a run's identity: a
    run resumes under another distribution or replica count."""

    distribution: str = "default"
    num_devices: int = 0
    sync_batch_norm: bool = True

    def __post_init__(self):
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(f"unknown --distribution {self.distribution!r}: use one of {', '.join(DISTRIBUTIONS)}")
        if isinstance(self.num_devices, bool) or not isinstance(self.num_devices, int) or self.num_devices < 0:
            raise ConfigError(f"--num_devices must be an integer >= 0 (0: every GPU), got {self.num_devices!r}")
        if self.num_devices and self.distribution != "mirrored":
            raise ConfigError(f"--num_devices is a setting of --distribution mirrored, not {self.distribution}; "
                              "a multi_worker run uses each worker's GPUs (set CUDA_VISIBLE_DEVICES) or its CPU")


def check_learning_rates(lr_max, lr_min, cosine=True, t_0=10, t_mul=2):
    """Raise :class:`ConfigError` unless ``0 <= lr_min <= lr_max``, ``lr_max > 0`` (and, for the
    cosine schedule, ``t_0, t_mul >= 1``)."""
    if not lr_max > 0 or lr_min < 0 or lr_min > lr_max:
        raise ConfigError(f"need 0 <= lr_min <= lr_max and lr_max > 0, got lr_max={lr_max}, lr_min={lr_min}")
    if cosine and (t_0 < 1 or t_mul < 1):
        raise ConfigError(f"need lr_T_0 >= 1 and lr_T_mul >= 1, got {t_0} and {t_mul}")


# --------------------------------------------------------------------------------------------
# Flat flag names <-> typed fields
# --------------------------------------------------------------------------------------------
# flag -> (section, field); the child's shape and precision flags are read by ChildConfig /
# PrecisionPolicy (see _child_from_settings), the others map one to one.
_FLAT = {
    "data_path": ("data", "data_path"), "num_valid": ("data", "num_valid"),
    "max_train_examples": ("data", "max_train_examples"), "max_test_examples": ("data", "max_test_examples"),
    "child_augment": ("data", "augment"), "child_cutout_size": ("data", "cutout_size"),
    "image_size": ("data", "image_size"), "color_mode": ("data", "color_mode"), "data_cache": ("data", "cache"),
    "batch_size": ("training", "batch_size"), "eval_batch_size": ("training", "eval_batch_size"),
    "num_epochs": ("training", "num_epochs"), "child_recipe": ("training", "recipe"),
    "child_optimizer": ("training", "optimizer"),
    "child_lr_max": ("training", "lr_max"), "child_lr_min": ("training", "lr_min"),
    "child_lr_T_0": ("training", "lr_T_0"), "child_lr_T_mul": ("training", "lr_T_mul"),
    "child_lr_cosine": ("training", "lr_cosine"), "child_l2_reg": ("training", "l2_reg"),
    "child_l2_latent": ("training", "l2_latent"),
    "child_real_weight_epochs": ("training", "real_weight_epochs"),
    "child_teacher_dir": ("training", "teacher_dir"), "child_distill_weight": ("training", "distill_weight"),
    "child_distill_temperature": ("training", "distill_temperature"),
    "child_grad_bound": ("training", "grad_bound"), "child_xla": ("training", "xla"),
    "output_dir": ("output", "output_dir"), "reset_output_dir": ("output", "reset_output_dir"),
    "log_every": ("output", "log_every"), "eval_every_epochs": ("output", "eval_every_epochs"),
    "seed": ("output", "seed"), "micro_memory": ("output", "micro_memory"),
    **{f.name: ("distribute", f.name) for f in dataclasses.fields(DistributeConfig)},
    **{f"controller_{f.name}": ("controller", f.name) for f in dataclasses.fields(ControllerConfig)
       if f.name not in ("num_sampled_arcs", "final_pick_samples", "final_pick_top", "reward_batch_size")},
    "reward_batch_size": ("controller", "reward_batch_size"),
    "num_sampled_arcs": ("controller", "num_sampled_arcs"),
    "final_pick_samples": ("controller", "final_pick_samples"),
    "final_pick_top": ("controller", "final_pick_top"),
    **{f.name: ("cost", f.name) for f in dataclasses.fields(CostConfig)},
}
_SECTIONS = {"data": DataConfig, "training": TrainingConfig, "controller": ControllerConfig,
             "output": OutputConfig, "cost": CostConfig, "distribute": DistributeConfig}
_SEARCH_SECTIONS = ("controller", "cost")
_FLAG_OF = {(_SECTIONS[section], name): flag for flag, (section, name) in _FLAT.items()}
_CHILD_FLAGS = {  # flag -> default
    "child_num_layers": ChildConfig.num_layers, "child_num_cells": ChildConfig.num_nodes,
    "child_reduction_layers": "", "child_out_filters": ChildConfig.out_filters,
    "child_keep_prob": ChildConfig.keep_prob, "child_drop_path_keep_prob": ChildConfig.drop_path_keep_prob,
    "child_use_aux_heads": ChildConfig.use_aux_heads, "child_stem_stride": ChildConfig.stem_stride,
    **PrecisionPolicy.FLAG_DEFAULTS,
    "search_precisions": "",
}
_SEARCH_ONLY = {"child_xla", "num_sampled_arcs", "final_pick_samples", "final_pick_top", "search_precisions"} | \
    {k for k, (section, _) in _FLAT.items() if section in _SEARCH_SECTIONS}


_TYPES = {"str | None": str, "int | None": int, "float | None": float, "bool | None": bool}


def is_flag(name):
    """``name`` is a flag of a typed section (not a child shape or precision flag)."""
    return name in _FLAT


def flag_type(name):
    """The Python type of flag ``name`` (for flags whose default is ``None``: set by a recipe)."""
    section, field = _FLAT[name]
    return _TYPES.get(_SECTIONS[section].__dataclass_fields__[field].type)


_TRAIN_ONLY = {"child_teacher_dir", "child_distill_weight", "child_distill_temperature"}


def flag_names(mode):
    """The flags of ``mode`` ("train" or "search"), in help order."""
    _check_mode(mode)
    only_other = _SEARCH_ONLY if mode == "train" else _TRAIN_ONLY
    names = [k for k in _FLAT if k not in only_other]
    names += [k for k in _CHILD_FLAGS if k not in only_other]
    if mode == "train":
        names.append("child_fixed_arc")
    return names


def flag_section(name):
    """The :class:`RunConfig` section flag ``name`` sets (``"child"`` for the child's shape, precision and
    architecture flags, which :class:`ChildConfig` and :class:`PrecisionPolicy` read)."""
    if name in _FLAT:
        return _FLAT[name][0]
    if name in _CHILD_FLAGS or name == "child_fixed_arc":
        return "child"
    raise KeyError(f"{name!r} is not a setting of RunConfig")


def section_doc(section):
    """The docstring of section ``section``'s class (``"child"``: :class:`ChildConfig`'s), dedented."""
    import inspect

    cls = ChildConfig if section == "child" else _SECTIONS[section]
    return inspect.cleandoc(cls.__doc__ or "")


def default_output_dir(mode, dataset):
    """``./output-mnist-arc``, ``./output-cifar-search`` ...: where a run writes by default."""
    return f"./output-{dataset_short_name(dataset)}-{'arc' if mode == 'train' else 'search'}"


def dataset_short_name(dataset):
    """``mnist``, ``cifar``, ``folder`` ... (for folder names)."""
    return "cifar" if dataset == "cifar10" else dataset


def default_settings(mode, overrides=None, dataset=None):
    """Flat settings of ``mode``: the defaults (with ``dataset``, its data folder
    ``./data/<dataset>`` and :func:`default_output_dir`), updated by ``overrides`` (a script's
    CONFIG block). An override naming no flag of the mode is a :class:`ConfigError`."""
    defaults = {}
    for name in flag_names(mode):
        if name in _FLAT:
            section, field = _FLAT[name]
            defaults[name] = _SECTIONS[section].__dataclass_fields__[field].default
        elif name in _CHILD_FLAGS:
            defaults[name] = _CHILD_FLAGS[name]
        else:
            defaults[name] = ""  # child_fixed_arc: the script names one
    if mode == "train":
        defaults["child_num_cells"] = 0  # from the arc's length
    if dataset is not None:
        _check_dataset(dataset)
        defaults.update(data_path=f"./data/{dataset}", output_dir=default_output_dir(mode, dataset))
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(f"CONFIG key {unknown[0]!r} is not a setting of {mode} runs (see --help)")
    for name, value in overrides.items():  # keep the flag's type: 5 for a float setting is 5.0
        if isinstance(defaults[name], float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[name] = float(value)
    return {**defaults, **overrides}


def child_settings():
    """The default child shape and precision settings (flags ``child_num_layers`` ...
    ``child_precision_overrides``; ``child_num_cells`` 0: from the arc's length)."""
    return {**_CHILD_FLAGS, "child_num_cells": 0}


def _check_mode(mode):
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")


def _check_dataset(dataset):
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: use one of auto, {', '.join(DATASETS)}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. ``controller`` is ``None`` in train mode; ``fixed_arc`` (the
    architecture string) is ``None`` in search mode."""

    mode: str
    dataset: str
    data: DataConfig = DataConfig()
    child: ChildConfig = ChildConfig()
    training: TrainingConfig = TrainingConfig()
    output: OutputConfig = OutputConfig()
    controller: ControllerConfig | None = None
    fixed_arc: str | None = None
    cost: CostConfig | None = None
    distribute: DistributeConfig = DistributeConfig()

    def __post_init__(self):
        _check_mode(self.mode)
        _check_dataset(self.dataset)
        object.__setattr__(self, "training", self.training.resolved(self.child.policy.default.kind))
        if self.mode == "train":
            if self.fixed_arc is None:
                raise ConfigError("a training run needs an architecture: pass -fixed_arc \"0 2 1 4 ...\"")
            arc = parse_arc(self.fixed_arc, self.child.num_nodes)
            object.__setattr__(self, "fixed_arc", str(arc))
            object.__setattr__(self, "controller", None)
            object.__setattr__(self, "cost", None)
            if self.child.search_precisions:
                raise ConfigError("search_precisions is a search setting; a training run's ops name their "
                                  "precision in the architecture (\"0 0:binary ...\")")
        else:
            object.__setattr__(self, "fixed_arc", None)
            if self.controller is None:
                object.__setattr__(self, "controller", ControllerConfig())
            if self.cost is None:
                object.__setattr__(self, "cost", CostConfig())

    # --- flat settings (flags) -----------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, mode, dataset):
        """Validate flat ``settings`` (every flag of ``mode``; missing ones take the defaults)
        and build the config. Raises :class:`ConfigError` / :class:`~enas.errors.ArcError`
        (one line) for the first bad value."""
        if not isinstance(settings, dict):
            raise TypeError(f"settings must be a dict of flag values, got {type(settings).__name__}")
        names = set(flag_names(mode))
        s = default_settings(mode, {k: v for k, v in settings.items() if k in names}, dataset)
        sections = {}
        for name, section_cls in _SECTIONS.items():
            if name in _SEARCH_SECTIONS and mode == "train":
                continue
            fields = {field: s[flag] for flag, (section, field) in _FLAT.items()
                      if section == name and flag in s}
            sections[name] = section_cls(**fields)
        num_nodes = s["child_num_cells"]
        fixed_arc = None
        if mode == "train":
            # B comes from the arc's length unless --child_num_cells says otherwise (then they agree).
            fixed_arc = parse_arc(s["child_fixed_arc"], num_nodes or None)
            num_nodes = fixed_arc.num_nodes
        child = ChildConfig(
            num_layers=s["child_num_layers"], num_nodes=num_nodes, out_filters=s["child_out_filters"],
            keep_prob=s["child_keep_prob"], drop_path_keep_prob=s["child_drop_path_keep_prob"],
            use_aux_heads=s["child_use_aux_heads"], stem_stride=s["child_stem_stride"],
            reduction_layers=parse_layer_list(s["child_reduction_layers"]),
            policy=PrecisionPolicy.from_settings(s),
            search_precisions=parse_precision_list(s.get("search_precisions", "")),
        )
        return cls(mode=mode, dataset=dataset, child=child, fixed_arc=None if fixed_arc is None else str(fixed_arc),
                   **sections)

    def to_settings(self):
        """The flat settings (flag -> value) that :meth:`from_settings` turns back into this config."""
        s, names = {}, set(flag_names(self.mode))
        for flag, (section, field) in _FLAT.items():
            obj = getattr(self, section)
            if obj is not None and flag in names:
                s[flag] = getattr(obj, field)
        c = self.child
        s.update({
            "child_num_layers": c.num_layers, "child_num_cells": c.num_nodes,
            "child_reduction_layers": ",".join(str(r) for r in c.reduction_layers),
            "child_out_filters": c.out_filters, "child_keep_prob": c.keep_prob,
            "child_drop_path_keep_prob": c.drop_path_keep_prob, "child_use_aux_heads": c.use_aux_heads,
            "child_stem_stride": c.stem_stride, **c.policy.to_settings(),
        })
        if self.mode == "train":
            s["child_fixed_arc"] = self.fixed_arc
        else:
            s["search_precisions"] = ",".join(c.search_precisions)
        return s

    # --- JSON ----------------------------------------------------------------------------------
    def to_json(self):
        """Plain-JSON dict of the whole configuration (inverse: :meth:`from_json`)."""
        out = {"version": CONFIG_VERSION, "mode": self.mode, "dataset": self.dataset}
        for name in ("data", "training", "output", "controller", "cost", "distribute"):
            section = getattr(self, name)
            if section is not None:
                out[name] = dataclasses.asdict(section)
        out["child"] = self.child.to_json()
        if self.fixed_arc is not None:
            out["fixed_arc"] = self.fixed_arc
        return out

    @classmethod
    def from_json(cls, data):
        """The config :meth:`to_json` wrote. Raises :class:`ConfigError` for anything else."""
        try:
            if not isinstance(data, dict) or data.get("version") != CONFIG_VERSION:
                raise ValueError(f"not a version-{CONFIG_VERSION} run configuration")
            data = dict(data)
            if isinstance(data.get("training"), dict) and "l2_latent" not in data["training"]:
                data["training"] = {**data["training"], "l2_latent": True}  # recorded before recipes
            sections = {name: _SECTIONS[name](**data[name]) for name in _SECTIONS if data.get(name) is not None}
            return cls(mode=data["mode"], dataset=data["dataset"], child=ChildConfig.from_json(data["child"]),
                       fixed_arc=data.get("fixed_arc"), **sections)
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            reason = f"missing {e}" if isinstance(e, KeyError) else str(e)
            raise ConfigError(f"cannot read the run configuration ({reason})") from None

    def identity(self):
        """The settings a checkpoint depends on: resuming with any of them changed is refused.
        (The same keys and values as run folders written before the full config was recorded.)"""
        identity = {
            "dataset": self.dataset, "arc": self.fixed_arc, "precision": self.child.policy.describe(),
            "num_layers": self.child.num_layers, "num_cells": self.child.num_nodes,
            "out_filters": self.child.out_filters, "use_aux_heads": self.child.use_aux_heads,
            "optimizer": self.training.optimizer, "reduction_layers": list(self.child.reduction_layers),
        }
        c = self.child
        if c.image_shape and (BUILTIN_SHAPES.get(self.dataset) != c.image_shape or c.num_classes != 10):
            identity.update(image_shape=list(c.image_shape), num_classes=c.num_classes)  # not on MNIST / CIFAR-10:
        if c.stem_stride:                                                               # older folders stay resumable
            identity["stem_stride"] = c.stem_stride
        if self.mode == "search":
            identity.update(controller_type=self.controller.type, seed=self.output.seed)
            if self.child.search_precisions:  # absent otherwise: older run folders stay resumable
                identity["search_precisions"] = list(self.child.search_precisions)
        return identity

    def with_data(self, data):
        """A copy whose child fits ``data`` (a :class:`~enas.data.data_common.DataSplits`): its image
        shape, class count and training statistics (the network's input normalisation)."""
        child = self.child.for_data(data.image_shape, data.num_classes, data.mean, data.std, data.scale)
        return dataclasses.replace(self, child=child)

    def replace(self, **sections):
        """A copy with some sections (or ``fixed_arc``) replaced; fields of a section by dict:
        ``config.replace(output={"output_dir": "b"})``."""
        changes = {}
        for name, value in sections.items():
            if isinstance(value, dict):
                value = dataclasses.replace(getattr(self, name), **value)
            changes[name] = value
        return dataclasses.replace(self, **changes)


def read_config_file(path):
    """The flat settings recorded in a run folder's ``config.json`` (``--from_config``), with its
    mode and dataset: ``(settings, mode, dataset)``. Raises :class:`ConfigError` (one line)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read --from_config {path!r} ({e.strerror or e.__class__.__name__})") from None
    except ValueError:
        raise ConfigError(f"--from_config {path!r} is not JSON; pass a run folder's config.json") from None
    if isinstance(data, dict) and "config" in data:
        data = data["config"]
    elif isinstance(data, dict) and "arc" in data and "version" not in data:
        raise ConfigError(f"{path!r} was written before runs recorded their whole configuration; "
                          "rerun the original command instead")
    config = RunConfig.from_json(data)
    return config.to_settings(), config.mode, config.dataset
