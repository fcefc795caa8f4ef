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
:class:`~enas.child.micro_child.MicroChild` the ChildConfig fields (precision policy included), the fixed
arc string and the image shape (see ``MicroChild.get_config``). A variable's offset is the sum of
the lengths before it and its length follows from its shape and code, so neither is stored
(:func:`read_header` returns them). The codes and their codecs are the quantizers' own
(:mod:`quantize.storage`: ``f32``, ``b1``, ``b1c``, ``t2``, ``t2s``, ``q<k>`` ...). So the data section is the :mod:`enas.cost.model_summary` memory figure rounded up per tensor,
and the file is that plus the header (a few hundred bytes for a MicroChild).
"""

from __future__ import annotations

import json
import struct
import zlib

import keras

from enas.child import micro_child  # noqa: F401  (registers MicroChild for deserialisation)
from enas.cost.model_summary import variable_table
from enas.errors import CheckpointError
from enas.run.atomic import atomic_write
from quantize.base import import_all_precisions
from quantize.storage import (  # noqa: F401  (encode, decode and the packing are part of this API)
    decode,
    encode,
    encoded_length,
    pack_codes,
    storage_from_code,
    unpack_codes,
)

MAGIC = b"QENASPK\0"
VERSION = 1
_PREFIX = struct.Struct("<8sHI")


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
    return atomic_write(path, payload)


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
    import_all_precisions()  # their codecs read the stored codes
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
            length = encoded_length(storage_from_code(code, shape), shape)
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
