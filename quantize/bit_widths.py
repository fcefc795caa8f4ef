"""The bit widths k-bit quantization supports (no TensorFlow needed, so flags are checked
before it is imported)."""

SUPPORTED_BITS = (2, 3, 4, 5, 6, 7, 8, 16)
