"""Run a full-integer ``.tflite`` file in TensorFlow Lite Micro's interpreter (the ``tflite-micro``
package: a host build of TFLM's reference kernels, so it checks correctness and memory, not a
chip's speed), find the smallest tensor arena it allocates in, and compare its predictions with
Keras and with the TensorFlow Lite interpreter.

The arena figure is TFLM's own: :func:`smallest_arena` bisects ``arena_size`` over "the
interpreter allocates" (TFLM plans the tensors' lifetimes in the file's operator order and adds
its own bookkeeping), to the byte. The flash figure is the file size: TFLM runs the flatbuffer in
place, weights included.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

import numpy as np

from enas.errors import UserError


class TFLMError(UserError):
    """The file does not load or run in TensorFlow Lite Micro (one line, exit status 2)."""


def runtime():
    """TFLM's Python runtime module, or a :class:`TFLMError` saying how to install it."""
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError:
        raise TFLMError("TensorFlow Lite Micro is not installed: run ./setup.sh (it pins the tflite-micro package) "
                        "or pip install -r requirements.txt") from None
    return tflm


@contextlib.contextmanager
def _stderr_captured():
    """TFLM prints its errors (a missing operator, an arena too small) on file descriptor 2;
    capture them (the last line becomes the error message)."""
    sys.stderr.flush()
    saved = os.dup(2)
    import tempfile

    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        box = []
        try:
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            box.append(sink.read().decode("utf-8", "replace"))


def load(blob, arena_size):
    """A TFLM interpreter of ``blob`` allocated in ``arena_size`` bytes, or ``(None, message)``."""
    tflm = runtime()
    with _stderr_captured() as log:
        try:
            return tflm.Interpreter.from_bytes(bytes(blob), arena_size=int(arena_size)), ""
        except RuntimeError as e:
            error = str(e)
    text = log[0] if log else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return None, (lines[0] if lines else error)


def smallest_arena(blob, ceiling=64 << 20):
    """The smallest ``arena_size`` (bytes) in which TFLM allocates ``blob``: a bisection over
    sizes; a :class:`TFLMError` with TFLM's own message when even ``ceiling`` bytes fail (e.g. an
    operator TFLM does not register)."""
    interpreter, message = load(blob, ceiling)
    if interpreter is None:
        raise TFLMError(f"TensorFlow Lite Micro cannot run the file: {message}")
    del interpreter
    low, high = 0, ceiling  # low fails (or is 0), high allocates
    while high - low > 1:
        middle = (low + high) // 2
        interpreter, _ = load(blob, middle)
        if interpreter is None:
            low = middle
        else:
            high = middle
        del interpreter
    return high


def quantize_input(images, scale, zero, dtype):
    """Raw float ``images`` as the file's integer input (``round(x / scale) + zero``, saturated)."""
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(images, np.float32) / scale + zero), info.min, info.max).astype(dtype)


def predict(blob, images, arena_size):
    """Predicted classes ``[N]`` of the file on raw ``images`` ``(N, H, W, C)`` in TFLM, one image per
    invocation (the input quantized with the file's own scale and zero point)."""
    interpreter, message = load(blob, arena_size)
    if interpreter is None:
        raise TFLMError(f"TensorFlow Lite Micro cannot run the file: {message}")
    detail = interpreter.get_input_details(0)
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization_parameters"]["scales"], detail["quantization_parameters"]["zero_points"]
    classes = []
    for image in np.asarray(images, np.float32):
        value = image[None]
        if dtype.kind in "iu":
            value = quantize_input(value, float(scale[0]), int(zero[0]), dtype)
        interpreter.set_input(value, 0)
        interpreter.invoke()
        classes.append(int(np.argmax(interpreter.get_output(0).reshape(-1))))
    return np.array(classes)


@dataclasses.dataclass
class MicroCheck:
    """What :func:`check` measured."""

    examples: int
    accuracy: float
    keras_accuracy: float
    agreement_keras: float  # fraction of images where TFLM predicts Keras' class
    agreement_tflite: float  # ... the TensorFlow Lite interpreter's class
    flash_bytes: int  # the file: TFLM runs the flatbuffer in place
    arena_bytes: int  # the smallest tensor arena that allocates

    def lines(self):
        return [
            f"TFLM: flash {self.flash_bytes:,} bytes ({self.flash_bytes / 1024:.1f} KiB, the file), tensor arena "
            f"{self.arena_bytes:,} bytes ({self.arena_bytes / 1024:.1f} KiB, the smallest that allocates)",
            f"TFLM: test accuracy {self.accuracy:.4f} (Keras {self.keras_accuracy:.4f}), same prediction as Keras on "
            f"{self.agreement_keras:.2%} and as TensorFlow Lite on {self.agreement_tflite:.2%} of {self.examples:,} images",
        ]


def check(blob, model, images, labels):
    """:class:`MicroCheck` of the int8 ``.tflite`` bytes against ``model`` (Keras) and the
    TensorFlow Lite interpreter on ``images`` / ``labels``."""
    from enas.deploy import tflite_export

    labels = np.asarray(labels).reshape(-1)
    arena = smallest_arena(blob)
    micro = predict(blob, images, arena)
    reference = tflite_export.keras_classes(model, images)
    lite, _ = tflite_export.predict(blob, images)
    return MicroCheck(examples=len(labels), accuracy=float(np.mean(micro == labels)),
                      keras_accuracy=float(np.mean(reference == labels)),
                      agreement_keras=float(np.mean(micro == reference)), agreement_tflite=float(np.mean(micro == lite)),
                      flash_bytes=len(blob), arena_bytes=arena)
