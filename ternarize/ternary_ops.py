"""Ternary quantization: values {-a, 0, +a} with a straight-through estimator.

Two rules:

* ``rule="twn"`` (default; Ternary Weight Networks, Li, Zhang & Liu 2016)::

      delta = twn_factor * mean(|x|)                   (twn_factor = 0.7)
      a     = mean(|x_i| for |x_i| > delta)            (a = 0 when no value exceeds delta)
      q(x)  = +a if x > delta,  -a if x < -delta,  0 otherwise

* ``rule="fixed"`` (the original repo)::

      q(x) = +1 if x > threshold_value,  -1 if x < -threshold_value,  0 otherwise   (threshold 0.5)

Backward: ``dq/dx = 1 if |x| <= clip_value else 0`` (``a`` is a constant in the backward pass).
Both rules are idempotent: ``q(q(x)) == q(x)``.
"""

import keras
import tensorflow as tf

from quantize.base import Quantizer, clipped_ste, register_quantizer

RULES = ("twn", "fixed")


def ternarize(x, rule="twn", threshold_value=0.5, twn_factor=0.7, clip_value=1.0):
    """Ternary values of ``x`` (see module docstring). Shape and dtype kept."""

    def forward(t):
        abs_t = tf.abs(t)
        if rule == "twn":
            # Statistics in float64: the sum of n copies of a float32/float16 ``a`` is then exact,
            # so ``a`` is reproduced bit for bit (idempotence) and float16 sums cannot overflow.
            abs64 = tf.cast(abs_t, tf.float64)
            delta = twn_factor * tf.reduce_mean(abs64)
            above = abs64 > delta
            count = tf.reduce_sum(tf.cast(above, tf.float64))
            total = tf.reduce_sum(tf.where(above, abs64, tf.zeros_like(abs64)))
            scale = tf.cast(tf.math.divide_no_nan(total, count), t.dtype)
        else:
            delta = tf.constant(threshold_value, t.dtype)
            above = abs_t > delta
            scale = tf.ones((), t.dtype)
        return tf.where(above, tf.sign(t) * scale, tf.zeros_like(t))

    return clipped_ste(forward, x, -clip_value, clip_value)


@register_quantizer("ste_tern")
class SteTern(Quantizer):
    """Ternary quantizer, values ``{-a, 0, +a}`` (2 bits per value).

    Args:
        rule: ``"twn"`` (threshold ``0.7 * mean|x|``, learned-free scale ``a``) or ``"fixed"``
            (threshold ``threshold_value``, ``a = 1``; use this for activations).
        threshold_value: threshold of the fixed rule (default 0.5).
        twn_factor: threshold factor of the TWN rule (default 0.7).
        clip_value: gradient passes where ``|x| <= clip_value``; latent weights clipped to it.
    """

    precision = 2

    def __init__(self, rule="twn", threshold_value=0.5, twn_factor=0.7, clip_value=1.0):
        if rule not in RULES:
            raise ValueError(f"SteTern rule must be one of {RULES}, got rule={rule!r}")
        if not clip_value > 0:
            raise ValueError(f"SteTern needs clip_value > 0, got clip_value={clip_value!r}")
        if not 0 < threshold_value < clip_value + 1e-12:
            raise ValueError(
                f"SteTern needs 0 < threshold_value <= clip_value, got threshold_value={threshold_value!r}"
            )
        self.rule = rule
        self.threshold_value = float(threshold_value)
        self.twn_factor = float(twn_factor)
        self.clip_value = float(clip_value)
        self.latent_clip = self.clip_value
        if rule == "fixed":
            # With a fixed threshold, small (Glorot-sized) weights would all round to 0.
            self.kernel_initializer = keras.initializers.RandomUniform(-self.clip_value, self.clip_value)

    def call(self, x):
        return ternarize(x, self.rule, self.threshold_value, self.twn_factor, self.clip_value)

    def get_config(self):
        return {
            "rule": self.rule,
            "threshold_value": self.threshold_value,
            "twn_factor": self.twn_factor,
            "clip_value": self.clip_value,
        }
