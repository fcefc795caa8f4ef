"""Quantizers whose precision is picked at run time by an int32 scalar tensor.

A mixed-precision search runs each op at the precision its sampled architecture names, inside one
compiled step. Making the precision one more ``tf.switch_case`` branch multiplies the branches of
every op slot, and TensorFlow's gradient of a ``switch_case`` has each branch also produce (as
zeros) the intermediates of every other branch, so the step slows down with every precision
added. Here the precision is data instead:

* activations: the binary, ternary (fixed threshold) and k-bit quantizers are all one formula,
  their *floor form* (:meth:`quantize.base.Quantizer.floor_form`)::

      q(x) = clip(floor(m * x + b), lo, hi) * s + t,      dq/dx = 1 on [g_lo, g_hi], else 0

  with the constants ``(m, b, lo, hi, s, t, g_lo, g_hi)`` of the picked precision gathered from a
  table: one pass over the activation, whatever the precision;
* kernels (a few hundred values per op): quantized at every precision, the picked one gathered
  (its gradient reaches the latent kernel through that precision's straight-through estimator).

The floor form equals each quantizer's own output except where the input lies exactly on a
rounding tie (the ternary threshold itself; half a k-bit step), a set of measure zero.
"""

import numpy as np
import tensorflow as tf


def floor_forms(quantizers):
    """The ``[P, 8]`` float32 table of the quantizers' floor forms, or ``None`` when one of them
    has none (e.g. a float ReLU or a statistics-dependent rule)."""
    forms = [getattr(q, "floor_form", lambda: None)() for q in quantizers]
    if any(form is None for form in forms):
        return None
    return np.array(forms, np.float32)


class SwitchableActivation:
    """The activation quantizer of ``quantizers[index]`` (``index``: int32 scalar tensor) in one
    formula (module docstring). ``x``: any shape; output: same shape and dtype."""

    def __init__(self, quantizers):
        self.table = floor_forms(quantizers)
        if self.table is None:
            raise ValueError("every quantizer needs a floor form to be switchable")

    def __call__(self, x, index):
        x = tf.convert_to_tensor(x)
        m, b, lo, hi, s, t, grad_lo, grad_hi = tf.unstack(tf.gather(tf.constant(self.table, x.dtype), index))

        @tf.custom_gradient
        def quantize(v):
            def grad(dy):
                return dy * tf.cast(tf.logical_and(v >= grad_lo, v <= grad_hi), dy.dtype)

            return tf.clip_by_value(tf.floor(v * m + b), lo, hi) * s + t, grad

        return quantize(x)


class SwitchableKernel:
    """The kernel quantizer of ``quantizers[index]``: every quantizer applied to the kernel, the
    picked one gathered. Kernel: any shape; output: same shape."""

    def __init__(self, quantizers):
        self.quantizers = list(quantizers)

    def __call__(self, kernel, index):
        return tf.gather(tf.stack([q(kernel) for q in self.quantizers]), index)
