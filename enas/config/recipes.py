"""Training recipes: how a child of a given precision is optimised unless a flag says otherwise.

A recipe fills the training settings left unset (``None`` in :class:`~enas.config.run_config.TrainingConfig`;
the flags ``--batch_size``, ``--child_optimizer``, ``--child_lr_max``, ``--child_lr_min``,
``--child_lr_T_0``, ``--child_l2_reg`` and ``--child_l2_latent``). ``--child_recipe auto`` (the default) takes the
recipe of the cells' precision (:data:`RECIPE_OF_PRECISION`); naming one applies it to any
precision. The resolved values, not the recipe, are what a run records in its ``config.json``.

==========  =====  ==========  ======  ======  ===========================  =======  ============
recipe      batch  optimizer   lr_max  lr_min  lr_T_0                       l2_reg   L2 on latent
                                                                                     quantized
                                                                                     weights
==========  =====  ==========  ======  ======  ===========================  =======  ============
``enas``    128    momentum    0.05    1e-4    10 (periods 10, 20, 40 ...)  1e-4     yes
``bnn``     128    adam        1e-2    0       0 (one period: the run)      1e-4     no
``lowbit``  32     adam        2e-2    0       0 (one period: the run)      1e-4     no
``binary``  64     adam        5e-2    0       0 (one period: the run)      1e-4     no
==========  =====  ==========  ======  ======  ===========================  =======  ============

``enas`` is ENAS's own (SGD with Nesterov momentum, cosine restarts). ``bnn`` is what the
binary-network papers train with (Bi-Real Net, ReActNet, "training tricks for BNNs"): Adam
annealed to zero over the whole run, and no weight decay on the latent weights of the binary
kernels (decay pulls them towards zero, where every update flips a sign); the full-precision
stem and classifier keep it. Its learning rate is higher than the papers' 1e-3 (for runs of
hundreds of epochs): on a 2-epoch MNIST run, 1e-3, 5e-3, 1e-2 and 2e-2 gave 0.710, 0.894, 0.948
and 0.931 test accuracy (docs/experiments.md). ``lowbit`` is the same at twice the learning rate, the best of
5e-3, 1e-2, 2e-2 and 4e-2 for ternary and 4-bit cells on that run, on batches of 32 (ternary
0.9871, 0.9891 and 0.9910 at batches of 128, 64 and 32; 4-bit 0.9903 and 0.9918 at 128 and 32).
``binary`` is what binary cells with real-valued shortcuts and a real-valued head (:class:`enas.space.precision.PrecisionPolicy`'s
``shortcuts`` and ``head_activation``, both on for binary cells by default) train best with on
that run: Adam at 5e-2 (of 5e-3 ... 1e-1) on batches of 64 (0.9810 at 128, 0.9740 at 32), 0.9827
against the 0.948 of ``bnn`` without them. Every precision's default beat ``enas`` there (float 0.995 against 0.983, ternary 0.991 against
0.973, 4-bit 0.992 against 0.968, binary 0.983 against 0.447).
"""

from __future__ import annotations

import dataclasses

from enas.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Training settings of one recipe (see the module's table). ``lr_T_0 = 0``: one cosine
    period as long as the run."""

    batch_size: int
    optimizer: str
    lr_max: float
    lr_min: float
    lr_T_0: int
    l2_reg: float
    l2_latent: bool


RECIPES = {
    "enas": Recipe(batch_size=128, optimizer="momentum", lr_max=0.05, lr_min=1e-4, lr_T_0=10, l2_reg=1e-4,
                   l2_latent=True),
    "bnn": Recipe(batch_size=128, optimizer="adam", lr_max=1e-2, lr_min=0.0, lr_T_0=0, l2_reg=1e-4, l2_latent=False),
    "lowbit": Recipe(batch_size=32, optimizer="adam", lr_max=2e-2, lr_min=0.0, lr_T_0=0, l2_reg=1e-4,
                     l2_latent=False),
    "binary": Recipe(batch_size=64, optimizer="adam", lr_max=5e-2, lr_min=0.0, lr_T_0=0, l2_reg=1e-4,
                     l2_latent=False),
}
# The recipe ``--child_recipe auto`` picks for the cells' precision kind.
RECIPE_OF_PRECISION = {"binary": "binary", "ternary": "lowbit", "quantized": "lowbit", "float": "bnn"}
RECIPE_CHOICES = ("auto",) + tuple(RECIPES)
# The TrainingConfig fields a recipe fills.
FIELDS = tuple(f.name for f in dataclasses.fields(Recipe))


def recipe_for(name, precision_kind):
    """The :class:`Recipe` called ``name`` (``"auto"``: the one of ``precision_kind``)."""
    if name not in RECIPE_CHOICES:
        raise ConfigError(f"unknown --child_recipe {name!r}: use one of {', '.join(RECIPE_CHOICES)}")
    return RECIPES[RECIPE_OF_PRECISION[precision_kind] if name == "auto" else name]


def describe(field):
    """``"enas: 0.05, bnn: 0.01"``: each recipe's value of ``field`` (for the flags' help)."""
    return ", ".join(f"{name}: {getattr(recipe, field)}" for name, recipe in RECIPES.items())
