"""Packed export of a quantized model: each weight stored in the bits it really needs.

:func:`export_packed` writes one file; :func:`load_packed` rebuilds the model from it, with
predictions identical to the exported model (the stored values are the quantized weights ``q(w)``
that inference uses; loading assigns them as the latent weights, and every quantizer is
idempotent, ``q(q(w)) == q(w)``).

File layout (all integers little-endian)::

    magic      8 bytes  b"QENASPK\\0"
    version    uint16   1
    hlen       uint32   length of the compressed header
    header     hlen bytes, zlib-compressed JSON (compact, no spaces)
    data       the variable buffers, back to back, in header order

Header JSON: ``{"model": <keras.saving.serialize_keras_object(model)>, "data": [nbytes, crc32],
"vars": [[path, shape, code], ...]}``. ``model`` is everything needed to rebuild the model: for a
:class:`~enas.micro_child.MicroChild` the ChildConfig fields (precision policy included), the fixed
arc string and the image shape (see ``MicroChild.get_config``). A variable's offset is the sum of
the lengths before it and its length follows from its shape and code, so neither is stored
(:func:`read_header` returns them). Codes (:class:`enas.model_summary.Storage`)::

    f32     raw float32 (batch norm, float layers, non-trainable statistics)
    raw:<dtype>  raw bytes of another dtype
    b1      binary {-1, +1}: np.packbits(w >= 0), 8 weights per byte
    b1c     float32 scale per output channel (last axis) then the b1 bits (XNOR-Net weights)
    t2      ternary {-1, 0, +1}: 2-bit codes 0 -> 0, 1 -> +1, 2 -> -1, 4 per byte
    t2s     float32 scale a, then t2 codes with 1 -> +a, 2 -> -a (TWN)
    q<k>    k-bit levels c / 2**(k-1): unsigned codes c + 2**(k-1) packed k bits each

Bits are packed most significant first, flattened in C order, each tensor padded to a whole
byte. So the data section is the :mod:`enas.model_summary` memory figure rounded up per tensor,
and the file is that plus the header (a few hundred bytes for a MicroChild).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib

import keras
import numpy as np

from enas import micro_child  # noqa: F401  (registers MicroChild for deserialisation)
from enas.errors import CheckpointError
from enas.model_summary import Storage, variable_table

MAGIC = b"QENASPK\0"
VERSION = 1
_PREFIX = struct.Struct("<8sHI")


# --------------------------------------------------------------------------------------------
# Bit packing
# --------------------------------------------------------------------------------------------
def pack_codes(codes, bits):
    """Pack unsigned integer ``codes`` (< 2**bits) into bytes, ``bits`` per code, MSB first."""
    codes = np.asarray(codes, dtype=np.uint32).ravel()
    if bits == 8:
        return codes.astype(np.uint8).tobytes()
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    planes = ((codes[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(planes.ravel()).tobytes()


def unpack_codes(data, count, bits):
    """Inverse of :func:`pack_codes`: ``count`` unsigned codes (int64) from ``data``."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return raw[:count].astype(np.int64)
    planes = np.unpackbits(raw, count=count * bits).reshape(count, bits).astype(np.int64)
    return planes @ (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))


def _packed_len(count, bits):
    return (count * bits + 7) // 8


def encoded_length(storage, shape):
    """Bytes the variable of ``shape`` takes in the data section."""
    count = int(np.prod(shape, dtype=np.int64))
    return _packed_len(count, storage.bits) + 4 * storage.scales


def _storage_from_code(code, shape):
    if code == "f32":
        return Storage("f32", 32)
    if code.startswith("raw:"):
        return Storage(code, np.dtype(code[4:]).itemsize * 8)
    if code in ("b1", "t2"):
        return Storage(code, {"b1": 1, "t2": 2}[code])
    if code == "b1c":
        return Storage(code, 1, int(shape[-1]))
    if code == "t2s":
        return Storage(code, 2, 1)
    if code.startswith("q") and code[1:].isdigit():
        return Storage(code, int(code[1:]))
    raise ValueError(f"unknown encoding {code!r}")


def encode(value, code):
    """Bytes of ``value`` (the quantized kernel, or the raw variable) under ``code``."""
    value = np.asarray(value)
    if code == "f32":
        return value.astype("<f4").tobytes()
    if code.startswith("raw:"):
        return value.astype(np.dtype(code[4:])).tobytes()
    if code in ("b1", "b1c"):
        signs = pack_codes(~np.signbit(value.ravel()), 1)  # q(w) >= 0, i.e. w >= 0
        if code == "b1":
            return signs
        scales = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
        return scales.astype("<f4").tobytes() + signs
    if code in ("t2", "t2s"):
        flat = value.ravel()
        codes = np.where(flat > 0, 1, np.where(flat < 0, 2, 0))
        packed = pack_codes(codes, 2)
        if code == "t2":
            return packed
        scale = np.float32(np.abs(flat).max()) if flat.size else np.float32(0)
        return np.array([scale], "<f4").tobytes() + packed
    if code.startswith("q"):
        bits = int(code[1:])
        half = 2 ** (bits - 1)
        levels = np.rint(value.ravel().astype(np.float64) * half).astype(np.int64)
        return pack_codes(levels + half, bits)
    raise ValueError(f"unknown encoding {code!r}")


def decode(data, code, shape):
    """Inverse of :func:`encode`: a numpy array of ``shape`` (float32 unless ``raw``)."""
    count = int(np.prod(shape, dtype=np.int64))
    if code == "f32":
        return np.frombuffer(data, dtype="<f4", count=count).astype(np.float32).reshape(shape)
    if code.startswith("raw:"):
        return np.frombuffer(data, dtype=np.dtype(code[4:]), count=count).copy().reshape(shape)
    if code == "b1":
        return np.where(unpack_codes(data, count, 1) == 1, 1.0, -1.0).astype(np.float32).reshape(shape)
    if code == "b1c":
        channels = int(shape[-1])
        scales = np.frombuffer(data, dtype="<f4", count=channels).astype(np.float32)
        signs = unpack_codes(data[4 * channels:], count, 1).reshape(-1, channels)
        return np.where(signs == 1, scales, -scales).astype(np.float32).reshape(shape)
    if code in ("t2", "t2s"):
        scale = np.float32(1.0)
        if code == "t2s":
            scale = np.frombuffer(data, dtype="<f4", count=1)[0]
            data = data[4:]
        codes = unpack_codes(data, count, 2)
        if codes.size and codes.max() > 2:
            raise ValueError("ternary code 3 does not exist")
        levels = np.array([0.0, scale, -scale], dtype=np.float32)
        return levels[codes].reshape(shape)
    if code.startswith("q"):
        bits = int(code[1:])
        half = 2 ** (bits - 1)
        levels = (unpack_codes(data, count, bits) - half).astype(np.float32)
        return (levels / np.float32(half)).astype(np.float32).reshape(shape)
    raise ValueError(f"unknown encoding {code!r}")


# --------------------------------------------------------------------------------------------
# Writing and reading
# --------------------------------------------------------------------------------------------
def _header_bytes(header):
    text = json.dumps(header, separators=(",", ":"), sort_keys=True)
    return zlib.compress(text.encode("utf-8"), 9)


def export_packed(model, path):
    """Write ``model`` (built) to ``path`` in the packed format; returns the file size in bytes."""
    entries = variable_table(model)
    blobs, specs = [], []
    for entry in entries:
        shape = [int(d) for d in entry.variable.shape]
        blob = encode(entry.stored_value(), entry.storage.code)
        expected = encoded_length(entry.storage, shape)
        if len(blob) != expected:  # a bug, not a user error
            raise AssertionError(f"{entry.path}: encoded {len(blob)} bytes, expected {expected}")
        blobs.append(blob)
        specs.append([entry.path, shape, entry.storage.code])
    data = b"".join(blobs)
    header = {
        "model": keras.saving.serialize_keras_object(model),
        "data": [len(data), zlib.crc32(data)],
        "vars": specs,
    }
    compressed = _header_bytes(header)
    payload = _PREFIX.pack(MAGIC, VERSION, len(compressed)) + compressed + data
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return len(payload)


def _fail(path, reason):
    return CheckpointError(f"cannot read packed model {path}: {reason}")


def read_header(path):
    """``(header, data, header_bytes)`` of a packed file; ``header["vars"]`` gains each
    variable's ``[path, shape, code, offset, length]``. Raises CheckpointError (one line)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise _fail(path, e.strerror or e.__class__.__name__) from None
    if len(raw) < _PREFIX.size or raw[:len(MAGIC)] != MAGIC:
        raise _fail(path, "not a packed qenas model (bad magic)")
    _, version, hlen = _PREFIX.unpack_from(raw)
    if version != VERSION:
        raise _fail(path, f"format version {version}, this program reads version {VERSION}")
    start = _PREFIX.size + hlen
    if len(raw) < start:
        raise _fail(path, "file is truncated (header incomplete)")
    try:
        header = json.loads(zlib.decompress(raw[_PREFIX.size:start]).decode("utf-8"))
        nbytes, crc = header["data"]
        specs = header["vars"]
        model_config = header["model"]
        if not isinstance(model_config, dict) or not isinstance(specs, list):
            raise ValueError("bad header fields")
        offset, table = 0, []
        for var_path, shape, code in specs:
            length = encoded_length(_storage_from_code(code, shape), shape)
            table.append([var_path, [int(d) for d in shape], code, offset, length])
            offset += length
    except (zlib.error, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise _fail(path, f"corrupt header ({e.__class__.__name__})") from None
    data = raw[start:]
    if len(data) < nbytes:
        raise _fail(path, f"file is truncated ({len(data)} of {nbytes} data bytes)")
    if len(data) > nbytes:
        raise _fail(path, f"{len(data) - nbytes} unexpected bytes after the data")
    if offset != nbytes:
        raise _fail(path, f"header lists {offset} data bytes but the file has {nbytes}")
    if zlib.crc32(data) != crc:
        raise _fail(path, "data checksum mismatch (the file is corrupt)")
    header["vars"] = table
    return header, data, hlen


def load_packed(path):
    """Rebuild the model saved by :func:`export_packed` and assign its weights.

    Returns the built ``keras.Model`` (a MicroChild for a child network). Any unreadable,
    corrupt, truncated or mismatching file raises :class:`~enas.errors.CheckpointError`.
    """
    header, data, _ = read_header(path)
    try:
        model = keras.saving.deserialize_keras_object(header["model"])
    except Exception as e:  # noqa: BLE001 - any failure to rebuild is the same user-facing problem
        reason = (str(e).strip().splitlines() or [e.__class__.__name__])[0][:160]
        raise _fail(path, f"cannot rebuild the model ({reason})") from None
    if not getattr(model, "built", False):
        raise _fail(path, "the rebuilt model has no variables (no input shape in the header)")
    entries = {entry.path: entry for entry in variable_table(model)}
    listed = {spec[0] for spec in header["vars"]}
    missing = sorted(set(entries) - listed)
    if missing:
        raise _fail(path, f"no stored value for variable {missing[0]}")
    for var_path, shape, code, offset, length in header["vars"]:
        entry = entries.get(var_path)
        if entry is None:
            raise _fail(path, f"stored variable {var_path} does not exist in the rebuilt model")
        if list(entry.variable.shape) != shape:
            raise _fail(path, f"variable {var_path} has shape {list(entry.variable.shape)}, "
                              f"stored {shape}")
        if entry.storage.code != code:
            raise _fail(path, f"variable {var_path} is {entry.storage.code} in the rebuilt model, "
                              f"stored as {code}")
        try:
            value = decode(data[offset:offset + length], code, shape)
        except ValueError as e:
            raise _fail(path, f"cannot decode {var_path} ({e})") from None
        entry.variable.assign(value)
    return model


# --------------------------------------------------------------------------------------------
# A finished training run -> model
# --------------------------------------------------------------------------------------------
def policy_from_description(text):
    """The :class:`~enas.precision.PrecisionPolicy` whose ``describe()`` is ``text`` (as recorded
    in a run's config.json): every named part other than the default becomes an override, which
    builds the same network."""
    from enas.precision import Precision, PrecisionPolicy

    items = [item.strip() for item in str(text).split(",") if item.strip()]
    parts = dict(item.split("=", 1) for item in items if "=" in item)
    if len(parts) != len(items) or "default" not in parts:
        raise ValueError(f"cannot read precision {text!r}")
    default = Precision.parse(parts["default"])
    overrides = tuple((name, Precision.parse(spec, default.bits))
                      for name, spec in parts.items() if name != "default")
    policy = PrecisionPolicy(default, overrides=overrides)
    if policy.describe() != text:
        raise ValueError(f"cannot read precision {text!r}")
    return policy


def restore_run(output_dir):
    """Rebuild the fixed child of a ``train_arc_*.py`` run in ``output_dir`` and restore its
    latest checkpoint. Returns ``(model, identity, checkpoint_path)``.

    The network comes from the run's ``config.json`` (dataset, arc, precision, shape); dropout and
    drop-path rates, which have no variables and do not act at inference, are the training
    script's defaults. Raises CheckpointError (one line) when there is no usable run.
    """
    from enas import run_dir
    from enas.micro_child import ChildConfig, MicroChild
    from enas.model_summary import dataset_image_shape
    from enas.run_dir import CONFIG_FILE

    config_path = os.path.join(output_dir, CONFIG_FILE)
    if not os.path.isdir(output_dir):
        raise CheckpointError(f"no run folder {output_dir!r}; pass the --output_dir of a train_arc_*.py run")
    try:
        with open(config_path) as f:
            identity = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{output_dir!r} has no {CONFIG_FILE}; pass the --output_dir of a "
                              "train_arc_*.py run") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {config_path} ({e.__class__.__name__})") from None
    if not isinstance(identity, dict) or not identity.get("arc"):
        raise CheckpointError(f"{output_dir!r} holds a search run, not a fixed architecture; "
                              "export a train_arc_*.py run")
    dataset = identity.get("dataset")
    try:
        import train_arc_cifar
        import train_arc_mnist

        script = {"mnist": train_arc_mnist, "cifar10": train_arc_cifar}[dataset].CONFIG
        config = ChildConfig(
            num_layers=identity["num_layers"], num_nodes=identity["num_cells"],
            out_filters=identity["out_filters"], use_aux_heads=identity["use_aux_heads"],
            keep_prob=script["child_keep_prob"], drop_path_keep_prob=script["child_drop_path_keep_prob"],
            policy=policy_from_description(identity["precision"]),
            reduction_layers=(None if identity.get("reduction_layers") is None
                              else tuple(identity["reduction_layers"])),
        )
        model = MicroChild(config, fixed_arc=identity["arc"]).build_for(dataset_image_shape(dataset))
    except (KeyError, TypeError, ValueError) as e:
        reason = str(e) if not isinstance(e, KeyError) else f"missing {e}"
        raise CheckpointError(f"cannot rebuild the network of {config_path} ({reason})") from None
    checkpoints = run_dir.Checkpoints(output_dir, model=model)
    # The optimizer's slots and the epoch counter in the checkpoint are not needed here.
    path = checkpoints.restore_latest(partial=True)
    if path is None:
        raise CheckpointError(f"{output_dir!r} has no checkpoint yet; train at least one epoch first")
    return model, identity, path
