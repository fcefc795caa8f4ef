"""A finished ``train_arc_*.py`` run folder -> its trained Keras model.

:func:`restore_run` rebuilds the fixed child from the folder's ``config.json`` and restores its
latest checkpoint; the exports (:mod:`enas.deploy`), distillation from a teacher run and the
benchmarks start from it. Folders written before whole configurations were recorded hold only
the network's identity; :func:`policy_from_description` reads their precision.
"""

from __future__ import annotations

import json
import os

from enas.child.micro_child import MicroChild
from enas.config.child_config import ChildConfig
from enas.config.run_config import RunConfig
from enas.cost.model_summary import dataset_image_shape
from enas.errors import CheckpointError, ConfigError, DataError
from enas.run import run_dir
from enas.run.run_dir import CONFIG_FILE
from enas.space.precision import Precision, PrecisionPolicy


def policy_from_description(text):
    """The :class:`~enas.space.precision.PrecisionPolicy` whose ``describe()`` is ``text`` (as run folders
    written before whole configurations were recorded hold it in config.json): every named part other than the default becomes an override, which
    builds the same network."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    parts = dict(item.split("=", 1) for item in items if "=" in item)
    if len(parts) != len(items) or "default" not in parts:
        raise ValueError(f"cannot read precision {text!r}")
    default = Precision.parse(parts["default"])
    overrides = tuple((name, Precision.parse(spec, default.bits))
                      for name, spec in parts.items() if name != "default")
    policy = PrecisionPolicy(default, overrides=overrides, head_activation="cells", shortcuts="none")  # as then
    if policy.describe() != text:
        raise ValueError(f"cannot read precision {text!r}")
    return policy


def with_input_statistics(child, config, dataset, data_path=""):
    """``child`` with the input statistics of its run's training data, for runs recorded before
    the network held them (it then took images normalised by the data pipeline): the data is read
    again (``data_path``, else the run's own) and its training split measured, as that run did."""
    from enas.data import sources

    if config is not None:
        d = config.data
        data = sources.load_source(dataset, data_path or d.data_path, num_valid=d.num_valid,
                                   image_size=d.image_size_tuple(), color_mode=d.color_mode,
                                   max_train=d.max_train_examples or None, max_test=1, download=False)
    else:
        data = sources.load_source(dataset, data_path or f"./data/{dataset}", num_valid=5000, max_test=1,
                                   download=False)
    return child.for_data(data.image_shape, data.num_classes, data.mean, data.std, data.scale)


def restore_run(output_dir, data_path=""):
    """Rebuild the fixed child of a ``train_arc_*.py`` run in ``output_dir`` and restore its
    latest checkpoint. Returns ``(model, record, checkpoint_path)``, ``record`` being the run's
    ``config.json`` (its ``arc`` and ``precision`` at the top level).

    The network takes raw pixels: its input statistics are in the recorded configuration; a run
    recorded before they were gets them from its training data again (``data_path``, else the
    run's own folder; :func:`with_input_statistics`), and a :class:`~enas.errors.DataError` says so
    when that data is missing.

    The network comes from the recorded configuration (``"config"``); a run folder written
    before whole configurations were recorded has only the network's identity (dataset, arc,
    precision, shape), and the dropout and drop-path rates, which have no variables and do not
    act at inference, then take the library defaults. Raises CheckpointError (one line) when
    there is no usable run.
    """
    config_path = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.isdir(output_dir):
        raise CheckpointError(f"no run folder {output_dir!r}; pass the --output_dir of a train_arc_*.py run")
    try:
        with open(config_path) as f:
            record = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{output_dir!r} has no {CONFIG_FILE}; pass the --output_dir of a "
                              "train_arc_*.py run") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {config_path} ({e.__class__.__name__})") from None
    if not isinstance(record, dict) or not record.get("arc"):
        raise CheckpointError(f"{output_dir!r} holds a search run, not a fixed architecture; "
                              "export a train_arc_*.py run")
    if run_dir.Checkpoints.latest(output_dir) is None:
        raise CheckpointError(f"{output_dir!r} has no checkpoint yet; train at least one epoch first")
    try:
        run_config = None
        if "config" in record:
            run_config = RunConfig.from_json(record["config"])
            dataset, child, arc = run_config.dataset, run_config.child, run_config.fixed_arc
        else:  # written before the whole configuration was recorded
            dataset, arc = record.get("dataset", "mnist"), record["arc"]
            child = ChildConfig(
                num_layers=record["num_layers"], num_nodes=record["num_cells"],
                out_filters=record["out_filters"], use_aux_heads=record["use_aux_heads"],
                policy=policy_from_description(record["precision"]),
                reduction_layers=(None if record.get("reduction_layers") is None
                                  else tuple(record["reduction_layers"])),
            )
        if not child.input_mean:  # recorded before the network normalised its input
            try:
                child = with_input_statistics(child, run_config, dataset, data_path)
            except DataError as e:
                raise DataError(f"{output_dir!r} was trained before networks stored their input statistics, so they "
                                f"are measured on its training data again, which failed: {e}") from None
        model = MicroChild(child, fixed_arc=arc).build_for(child.image_shape or dataset_image_shape(dataset))
    except (KeyError, TypeError, ValueError, ConfigError) as e:
        reason = str(e) if not isinstance(e, KeyError) else f"missing {e}"
        raise CheckpointError(f"cannot rebuild the network of {config_path} ({reason})") from None
    checkpoints = run_dir.Checkpoints(output_dir, model=model)
    # The optimizer's slots and the epoch counter in the checkpoint are not needed here.
    path = checkpoints.restore_latest(partial=True)
    if path is None:
        raise CheckpointError(f"{output_dir!r} has no checkpoint yet; train at least one epoch first")
    return model, record, path
