"""ENAS parameter sharing without patching Keras.

ENAS trains one set of weights for the whole search space: the op at a given position (layer,
node, input slot, op id) owns its variables, and every sampled architecture that places that op
there reads the *same* variables. Official ENAS did this with ``tf.get_variable`` scopes, and the
original quantized port patched Keras' ``add_weight`` inside site-packages to reuse them.

Here the position owns a Keras layer instead: a :class:`SharedLayers` container creates the
layer of a position once (:meth:`SharedLayers.get_or_create`) and returns that same object on
every later request, so all architectures share its variables by construction, and the
quantized layers (``quantize.layers``) are used unchanged. For weights that are gathered rather
than called (the cell-output 1x1 conv), :func:`create_weight` gives the same get-or-create
behaviour on a single variable.
"""

import keras


class SharedLayers(keras.layers.Layer):
    """A get-or-create registry of layers keyed by search-space position.

    Keys are strings such as ``"node2/y/op0"``. The registry is a Keras layer so that the
    layers it holds are tracked (weights, checkpoints, saving) by its owner.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.layers_by_key = {}

    def get_or_create(self, key, factory):
        """The layer stored under ``key``; ``factory()`` makes it on the first request only."""
        if key not in self.layers_by_key:
            self.layers_by_key[key] = factory()
        return self.layers_by_key[key]

    def __getitem__(self, key):
        return self.layers_by_key[key]

    def __contains__(self, key):
        return key in self.layers_by_key

    def keys(self):
        return list(self.layers_by_key)


def create_weight(owner, name, shape, initializer="he_normal", trainable=True, constraint=None):
    """Get-or-create variable ``name`` of layer ``owner`` (``owner.add_weight`` the first time).

    A second call with the same name returns the existing variable (and checks the shape), so
    code that runs once per sampled architecture never creates variables anew.
    """
    shared = owner.__dict__.setdefault("_shared_weights", {})
    if name in shared:
        variable = shared[name]
        if tuple(variable.shape) != tuple(shape):
            raise ValueError(
                f"shared weight {name!r} exists with shape {tuple(variable.shape)}, requested {tuple(shape)}"
            )
        return variable
    variable = owner.add_weight(
        name=name, shape=tuple(shape), initializer=initializer, trainable=trainable,
        constraint=constraint,
    )
    shared[name] = variable
    return variable



@keras.saving.register_keras_serializable(package="qenas")
class InputNormalization(keras.layers.Layer):
    """The network's first layer: raw images in, normalised images out.

    ``y = (float32(x) / scale - mean) / std`` per channel, with ``mean`` and ``std`` the training
    split's statistics of ``x / scale`` (``scale`` 255 for pixels: ENAS's ``x / 255`` statistics,
    computed in the same float32 operations, so MNIST and CIFAR-10 train exactly as when the data
    pipeline normalised them). They are constants of the layer (its config), so the ``.keras``,
    packed and TensorFlow Lite files take the raw values a camera or a sensor gives. ``folded``
    (set on the deployment copy, :func:`enas.deploy.tflite_export.deployable`) computes the same
    as one multiply-add, ``x * a + b`` (a MUL and an ADD in TensorFlow Lite; equal up to float
    rounding). Empty ``mean`` / ``std``: only the cast (the input is already normalised).
    Input ``(batch, H, W, C)`` of any real dtype; output float32 of the same shape.
    """

    def __init__(self, mean=(), std=(), scale=1.0, folded=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.scale = float(scale)
        self.folded = bool(folded)
        if len(self.mean) != len(self.std):
            raise ValueError("InputNormalization needs as many std values as mean values")

    def call(self, images):
        import numpy as np
        from keras import ops

        x = ops.cast(images, "float32")
        if not self.mean:
            return x
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if self.folded:
            a = 1.0 / (self.scale * np.asarray(self.std, np.float64))
            b = -np.asarray(self.mean, np.float64) / np.asarray(self.std, np.float64)
            return x * a.astype(np.float32) + b.astype(np.float32)
        # divide_no_nan: a division TensorFlow's graph optimiser leaves alone (it turns "/ constant"
        # into "* (1 / constant)", one float32 rounding off numpy's on 9% of MNIST's pixels).
        if self.scale != 1.0:
            x = ops.divide_no_nan(x, np.full(std.shape, self.scale, np.float32))
        return ops.divide_no_nan(x - mean, std)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std), "scale": self.scale,
                "folded": self.folded}
