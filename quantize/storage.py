"""How quantized weights are stored: :class:`Storage` records, bit packing, and the codecs of
the packed export.

Every quantizer declares the storage of the kernels it quantizes (``quantizer.storage(shape)``)
and registers the codec of its storage codes here (:func:`register_codec`); raw float32 (``f32``)
and other raw dtypes (``raw:<dtype>``) are built in. Codes (bits per weight, float32 scales)::

    f32          32, 0     raw float32 (batch norm, float layers, statistics)
    raw:<dtype>  itemsize  raw bytes of another dtype
    b1           1, 0      binary {-1, +1}                         (binarize.SteSign)
    b1c          1, C      per-output-channel scales, then b1     (SteSign(channel_scale=True))
    t2           2, 0      ternary {-1, 0, +1}                     (ternarize.SteTern, fixed rule)
    t2s          2, 1      one scale a, then t2 codes for {-a, 0, +a}  (SteTern, TWN rule)
    q<k>         k, 0      k-bit levels c / 2**(k-1)               (quantize.SteQuantize)

Codes are packed most significant bit first, flattened in C order, each tensor padded to a
whole byte. Numpy only: no TensorFlow here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FLOAT_BITS = 32


@dataclasses.dataclass(frozen=True)
class Storage:
    """How one variable is stored: its ``code``, ``bits`` per element and the number of float32
    ``scales`` stored before the packed elements."""

    code: str
    bits: int
    scales: int = 0

    def total_bits(self, size):
        """Bits of a variable of ``size`` elements."""
        return int(size) * self.bits + FLOAT_BITS * self.scales


def raw_storage(dtype="float32"):
    """Storage of a variable kept as it is: ``f32``, or ``raw:<dtype>`` for another dtype."""
    dtype = np.dtype(str(getattr(dtype, "name", dtype)))
    if dtype == np.float32:
        return Storage("f32", FLOAT_BITS)
    return Storage(f"raw:{dtype.str}", dtype.itemsize * 8)


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


def encoded_length(storage, shape):
    """Bytes a variable of ``shape`` takes in the packed export's data section."""
    count = int(np.prod(shape, dtype=np.int64))
    return (count * storage.bits + 7) // 8 + 4 * storage.scales


# --------------------------------------------------------------------------------------------
# Codecs
# --------------------------------------------------------------------------------------------
class RawCodec:
    """``f32`` and ``raw:<dtype>``: the variable's bytes as they are."""

    @staticmethod
    def storage_from_code(code, shape):
        return raw_storage("float32" if code == "f32" else code[4:])

    @staticmethod
    def encode(value, storage):
        dtype = "<f4" if storage.code == "f32" else storage.code[4:]
        return np.asarray(value).astype(np.dtype(dtype)).tobytes()

    @staticmethod
    def decode(data, storage, shape):
        count = int(np.prod(shape, dtype=np.int64))
        if storage.code == "f32":
            return np.frombuffer(data, dtype="<f4", count=count).astype(np.float32).reshape(shape)
        return np.frombuffer(data, dtype=np.dtype(storage.code[4:]), count=count).copy().reshape(shape)


_CODECS = {"f32": RawCodec}


def register_codec(codes, codec):
    """Register ``codec`` (an object or class with ``storage_from_code(code, shape)``,
    ``encode(value, storage) -> bytes`` and ``decode(data, storage, shape) -> array``) for each
    storage code in ``codes``."""
    for code in codes:
        _CODECS[code] = codec


def codec_of(code):
    """The codec of ``code``; ``ValueError`` for a code no imported quantizer registered."""
    if code.startswith("raw:"):
        return RawCodec
    if code not in _CODECS:
        raise ValueError(f"unknown encoding {code!r}")
    return _CODECS[code]


def storage_from_code(code, shape):
    """The :class:`Storage` of a variable of ``shape`` stored under ``code``."""
    return codec_of(code).storage_from_code(code, shape)


def encode(value, code, shape=None):
    """Bytes of ``value`` (the quantized kernel, or the raw variable) under ``code``."""
    value = np.asarray(value)
    codec = codec_of(code)
    return codec.encode(value, codec.storage_from_code(code, value.shape if shape is None else shape))


def decode(data, code, shape):
    """Inverse of :func:`encode`: a numpy array of ``shape`` (float32 unless ``raw``)."""
    codec = codec_of(code)
    return codec.decode(data, codec.storage_from_code(code, shape), shape)
