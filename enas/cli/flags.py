"""Command-line flags of the scripts, defined from their flat settings.

A run script's settings are the defaults of :mod:`enas.config.run_config` updated by its ``CONFIG`` block
(:func:`enas.cli.script.settings_of`); the other tools keep a whole ``CONFIG`` dict. :func:`parse`
defines one absl flag per key (type and help from :data:`FLAG_HELP`), so ``-flag value``,
``--flag value`` and ``--flag=value`` all override it. ``-fixed_arc`` is an alias of the original's
``--child_fixed_arc``. Parse errors and bad values exit with status 2 and one line on stderr.
"""

import sys

from absl import flags as absl_flags

from enas.config import recipes, run_config
from enas.errors import ConfigError

FLAG_HELP = {
    # mixed precision and cost (search)
    "search_precisions": "Search the precision of each separable conv too, among these "
                         "(e.g. 'binary,ternary,4bit'); empty: every op has --child_quantization's.",
    "target_memory_kib": "Weight-memory target in KiB (as summarize_arc.py counts it); 0: none. "
                         "reward = acc * (memory / target) ** cost_weight.",
    "target_ops": "OPs target (FLOPs + BOPs / 64, as summarize_arc.py counts it); 0: none.",
    "target_ram_kib": "RAM target in KiB: TensorFlow Lite Micro's tensor arena for the int8 file (as export_arc.py "
                      "--tflm measures it; per-op tables fitted at the start of the search); 0: none.",
    "target_flash_kib": "Flash target in KiB: the int8 .tflite file (as export_arc.py --int8 writes it); 0: none.",
    "cost_weight": "MnasNet's exponent w of the cost factor (cost / target) ** w; <= 0.",
    "cost_constraint": "soft: the factor applies everywhere; hard: only above the target.",
    # data and run
    "data_path": "The data: a folder of images with one sub-folder per class (optionally under train/, test/, "
                 "valid/), an .npz file (x_train, y_train, x_test, y_test), or the MNIST / CIFAR-10 folder "
                 "(downloaded there when absent and online).",
    "dataset": "auto (what --data_path holds), folder, npz, mnist or cifar10.",
    "image_size": "Resize every image to H,W (e.g. 96,96); empty: keep their size (all images must have it).",
    "color_mode": "auto (grayscale when every image is, else rgb), grayscale, rgb or rgba.",
    "data_cache": "Image folders: keep the decoded uint8 images after the first epoch: 'memory' or a file path "
                  "(empty: decode every epoch).",
    "child_stem_stride": "Stride of the stem conv: 1, 2, 4 or 8; 0: from the image size (the shorter side brought "
                         "to at most 47 pixels: 28 or 32 -> 1, 64 -> 2, 96 -> 4, 224 -> 8).",
    "output_dir": "Folder for checkpoints, logs and results; a rerun resumes from it.",
    "reset_output_dir": "Delete output_dir's previous run first instead of resuming.",
    "num_valid": "Validation examples held out of the training set: a count, or a fraction below 1 (0: none). "
                 "MNIST/CIFAR-10: the last ones, as ENAS; other data: drawn per class (a valid/ folder or "
                 "x_valid in an .npz is used as given).",
    "max_train_examples": "Use only the first N training examples (0: all). For quick runs.",
    "max_test_examples": "Use only the first N test examples (0: all). For quick runs.",
    "batch_size": f"Training minibatch size (unset: {recipes.describe('batch_size')}).",
    "eval_batch_size": "Evaluation batch size.",
    "num_epochs": "Number of training epochs.",
    "log_every": "Print a child step line every N steps.",
    "eval_every_epochs": "Evaluate every N epochs.",
    "seed": "Random seed (data order, initialisation, sampled architectures).",
    "micro_memory": "Train: end with the flash and peak RAM (tensor arena) of the child's int8 TensorFlow Lite "
                    "Micro file, next to the weight memory (converts the child once, a few seconds).",
    # scale-out (tf.distribute)
    "distribution": "default: one device; mirrored: MirroredStrategy over this host's GPUs (or the CPU split into "
                    "--num_devices logical devices); multi_worker: MultiWorkerMirroredStrategy over the hosts "
                    "of the TF_CONFIG environment variable. --batch_size stays the global batch.",
    "num_devices": "mirrored: replicas on this host (0: every GPU; with no GPU, the CPU split in this many devices).",
    "sync_batch_norm": "Under a strategy, batch statistics over the global batch (the single-device result); "
                       "off: per-replica statistics (no all-reduce per batch norm).",
    # child network
    "child_fixed_arc": "Architecture: 8*num_cells integers, normal cell then reduction cell.",
    "child_num_layers": "Number of normal-cell layers (two reduction layers are added).",
    "child_num_cells": "Nodes per cell (B); 0 (training): from the architecture string's length.",
    "child_reduction_layers": "Indices of the reduction layers, e.g. '2,5' (empty: L//3 and 2*(L//3)+1).",
    "child_out_filters": "Filters of the first cells (doubled at each reduction).",
    "child_keep_prob": "Keep probability of dropout before the classifier.",
    "child_drop_path_keep_prob": "Drop-path keep probability (1: off).",
    "child_use_aux_heads": "Train with an auxiliary head (loss weight 0.4).",
    "child_quantization": "Precision of the cells: binary, ternary, quantized or float.",
    "child_bits": "Bit width for --child_quantization=quantized (2..8 or 16).",
    "child_quantize_stem": "Quantize the stem conv too (full precision by default).",
    "child_quantize_classifier": "Quantize the final dense layer too (full precision by default).",
    "child_precision_overrides": "Per-part precision, e.g. 'stem=quantized:4,layer_0=quantized:4', or 'original'.",
    "child_binary_scale": "Binary kernels scaled per output channel by mean |W| (XNOR-Net).",
    "child_binary_rsign": "Binary activation sign(x - b) with a learned per-channel threshold b (ReActNet RSign).",
    "child_binary_rprelu": "Learned per-channel shift and slope after each binary conv's batch norm (ReActNet RPReLU).",
    "child_real_shortcuts": "Real-valued shortcuts around the cells' quantized convs, y = BN(conv(q(x))) + x "
                            "(Bi-Real Net; no weights added): on the binary parts, on every quantized part, "
                            "or none.",
    "child_head_activation": "Activation before the global pool: cells (the last layer's precision's), "
                             "classifier (the classifier's: ReLU when it is float, keeping the pooled features real), "
                             "or auto: classifier for binary cells, cells otherwise.",
    # child optimisation
    "child_recipe": "Training recipe filling the unset batch, optimizer, learning-rate and L2 flags: auto (the "
                    "cells' precision's: binary for binary, bnn for float, lowbit for ternary and k-bit), enas, bnn, "
                    "lowbit or binary.",
    "child_optimizer": "momentum (SGD Nesterov 0.9), sgd or adam (unset: the recipe's; "
                       f"{recipes.describe('optimizer')}).",
    "child_lr_max": f"Maximum (initial) learning rate of the cosine schedule (unset: {recipes.describe('lr_max')}).",
    "child_lr_min": f"Minimum learning rate of the cosine schedule (unset: {recipes.describe('lr_min')}).",
    "child_lr_T_0": "Epochs of the first cosine period, 0: one period as long as the run "
                    f"(unset: {recipes.describe('lr_T_0')}).",
    "child_lr_T_mul": "Period multiplier at each warm restart.",
    "child_lr_cosine": "Use cosine decay with warm restarts (else constant lr_max).",
    "child_l2_reg": f"L2 weight decay on convolution and dense kernels (unset: {recipes.describe('l2_reg')}).",
    "child_l2_latent": "The L2 decay also acts on the latent float weights of quantized kernels "
                       f"(unset: {recipes.describe('l2_latent')}).",
    "child_real_weight_epochs": "Two-stage training: the first N epochs keep the kernels in float (activations "
                                "quantized), then both are quantized (0: one stage).",
    "child_teacher_dir": "Distillation: the --output_dir of a trained train_arc_*.py run on the same dataset "
                         "(e.g. the float network of the same arc) whose logits the child learns ('': off).",
    "child_distill_weight": "Distillation: loss = (1 - w) * cross-entropy + w * T^2 * KL(teacher || child).",
    "child_distill_temperature": "Distillation: softmax temperature T of both logits.",
    "child_grad_bound": "Clip the gradient global norm to this value (0: no clipping).",
    "child_xla": "Compile the search step with XLA (static shapes; for GPUs, slower on CPU).",
    "child_augment": "Pad-4, random-crop and flip augmentation (natural images such as CIFAR-10; not digits).",
    "child_cutout_size": "Cutout square size (0: off).",
    # controller (search)
    "controller_type": "micro (ENAS LSTM controller, REINFORCE) or random (uniform baseline).",
    "controller_lr": "Controller Adam learning rate.",
    "controller_lstm_size": "Controller LSTM units.",
    "controller_tanh_constant": "Tanh constant of the controller logits.",
    "controller_op_tanh_reduce": "Op logits use tanh_constant / op_tanh_reduce.",
    "controller_temperature": "Logit temperature (0: none).",
    "controller_entropy_weight": "Entropy bonus weight in the reward.",
    "controller_bl_dec": "Decay of the moving-average reward baseline.",
    "controller_grad_bound": "Clip the controller's gradient to this global norm before Adam (0: no clipping).",
    "controller_train_steps": "Controller updates per epoch.",
    "controller_warmup_epochs": "Epochs of shared-weight training (architectures from the untrained controller) "
                                "before the controller's first update.",
    "controller_num_aggregate": "Architectures sampled per controller update.",
    "reward_batch_size": "Validation images per reward minibatch (independent of --batch_size).",
    "controller_reward_batches": "The controller's reward (and each reported val_acc): the mean accuracy over "
                                 "this many validation minibatches (less noise, more evaluation per sample).",
    "num_sampled_arcs": "Architectures printed (with val_acc) after each epoch.",
    "final_pick_samples": "At the end, architectures sampled from the controller and ranked on the whole "
                          "validation split; the best is best_arc.txt (0: best printed one instead).",
    "final_pick_top": "How many of the final pick's best are kept in final_pick.json's top list.",
    "from_config": "Start from a run folder's config.json (the run it records); other flags override it.",
}

ALIASES = {"fixed_arc": "child_fixed_arc"}


def _define(name, default, flag_values, extra_help=None):
    help_text = (extra_help or {}).get(name) or FLAG_HELP.get(name, name)
    if default is None and run_config.is_flag(name):  # a recipe sets it: the type is the field's
        kind = run_config.flag_type(name)
        define = {bool: absl_flags.DEFINE_bool, int: absl_flags.DEFINE_integer,
                  float: absl_flags.DEFINE_float}.get(kind, absl_flags.DEFINE_string)
        define(name, None, help_text, flag_values=flag_values)
    elif isinstance(default, bool):
        absl_flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
    elif isinstance(default, int):
        absl_flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
    elif isinstance(default, float):
        absl_flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
    elif isinstance(default, str) or default is None:
        absl_flags.DEFINE_string(name, default, help_text, flag_values=flag_values)
    else:
        raise TypeError(f"CONFIG[{name!r}] has unsupported type {type(default).__name__}")


def _flag_values(config, extra_help=None):
    flag_values = absl_flags.FlagValues()
    for name, default in config.items():
        _define(name, default, flag_values, extra_help)
    for alias, target in ALIASES.items():
        if target in config:
            absl_flags.DEFINE_alias(alias, target, flag_values=flag_values)
    return flag_values


def parse(config, argv, program=None):
    """Return ``config`` updated by the flags in ``argv`` (argv[0] is the program name).

    Raises :class:`ConfigError` (one line) for unknown flags or unparsable values.
    """
    flag_values = _flag_values(config)
    program = program or (argv[0] if argv else sys.argv[0])
    try:
        rest = flag_values([program] + list(argv[1:]))
    except absl_flags.Error as e:
        message = str(e).splitlines()[0]
        raise ConfigError(f"{message} (see --help for the flags)") from None
    if len(rest) > 1:
        raise ConfigError(
            f"unexpected argument {rest[1]!r}: flags are written -name value or --name=value "
            "(quote the architecture: -fixed_arc \"0 2 1 4 ...\")"
        )
    return {name: flag_values[name].value for name in config}


def help_text(config, extra_help=None):
    """Flag help for --help (``extra_help`` adds or overrides the help of some flags)."""
    text = _flag_values(config, extra_help).get_help()
    return text.replace("enas.cli.flags:\n", "flags (-name value or --name=value):\n", 1)
