"""Run a full-integer ``.tflite`` file in TensorFlow Lite Micro's interpreter (the ``tflite-micro``
package: a host build of TFLM's reference kernels, so it checks correctness and memory, not a
chip's speed), find the smallest tensor arena it allocates in, and compare its predictions with
Keras and with the TensorFlow Lite interpreter.

TFLM runs in a child process (:mod:`enas.deploy.tflm_worker`): its host interpreter aborts the
process on some files, which becomes one error line here. The arena figure is TFLM's own:
:func:`smallest_arena` bisects ``arena_size`` over "the interpreter allocates" (TFLM plans the tensors' lifetimes in the file's operator order and adds
its own bookkeeping), to the byte. The flash figure is the file size: TFLM runs the flatbuffer in
place, weights included.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile

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


def _operators(blob):
    try:
        from enas.deploy.int8_graph import operator_counts

        return ", ".join(operator_counts(blob))
    except Exception:  # noqa: BLE001 - only for the message
        return "?"


def _worker(blob, *arguments, images=None):
    """Run :mod:`enas.deploy.tflm_worker` on ``blob`` in a child process: its stdout, or a
    :class:`TFLMError` with its reason (TFLM's own message, or the signal that killed it)."""
    runtime()  # installed? (one line if not)
    with tempfile.TemporaryDirectory(prefix="qenas-tflm-") as folder:
        model = os.path.join(folder, "model.tflite")
        with open(model, "wb") as f:
            f.write(bytes(blob))
        extra = []
        if images is not None:
            np.save(os.path.join(folder, "images.npy"), np.asarray(images, np.float32))
            extra = [os.path.join(folder, "images.npy"), os.path.join(folder, "out.npy")]
        done = subprocess.run([sys.executable, "-m", "enas.deploy.tflm_worker", arguments[0], model,
                               *map(str, arguments[1:]), *extra], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": _PROJECT + os.pathsep + os.environ.get("PYTHONPATH", "")})
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            if done.returncode == 3 and lines:
                reason = lines[-1]
            else:
                reason = (f"its interpreter aborted (exit status {done.returncode}): an operator it cannot run in this "
                          f"form among {_operators(blob)}")
            raise TFLMError(f"TensorFlow Lite Micro cannot run the file: {reason}")
        return np.load(extra[1]) if images is not None else done.stdout


_PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(blob, arena_size):
    """A TFLM interpreter of ``blob`` in this process, allocated in ``arena_size`` bytes, or
    ``(None, reason)`` (for files known to load: TFLM aborts the process on some others)."""
    runtime()
    from enas.deploy import tflm_worker

    return tflm_worker.load(blob, arena_size)


def smallest_arena(blob):
    """The smallest ``arena_size`` (bytes) in which TFLM allocates ``blob``: a bisection over
    sizes, in a child process; a :class:`TFLMError` with TFLM's reason when it cannot (e.g. an
    operator TFLM does not register)."""
    return int(_worker(blob, "arena").strip())


def outputs(blob, images, arena_size):
    """The file's output vectors ``(N, K)`` in TFLM on raw ``images`` ``(N, H, W, C)``, one image per
    invocation, the input quantized with the file's own scale and zero point (a child process)."""
    return _worker(blob, "outputs", arena_size, images=images)


def predict(blob, images, arena_size):
    """Predicted classes ``[N]`` of the file on raw ``images`` ``(N, H, W, C)`` in TFLM."""
    found = outputs(blob, images, arena_size)
    return np.argmax(found, axis=1) if len(found) else np.zeros(0, int)


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
