"""TensorFlow Lite Micro's interpreter, run in a child process by :mod:`enas.deploy.tflm_check`.

TFLM's host interpreter aborts the whole process on some files (a kernel's assertion, e.g. an int8
SELECT_V2 it cannot prepare), which no ``try`` catches; in a child process that is an exit status,
turned into one error line. This module needs numpy and the ``tflite-micro`` package only (no
TensorFlow), so a child starts in a fraction of a second.

    python -m enas.deploy.tflm_worker arena MODEL.tflite
        prints the smallest arena (bytes) the model allocates in, by bisection
    python -m enas.deploy.tflm_worker outputs MODEL.tflite ARENA IMAGES.npy OUT.npy
        runs raw float32 images (N, H, W, C), one per invocation, the input quantized with the
        file's scale and zero point, and saves the output vectors (N, K)

On failure: exit status 3 and the reason on the last line of stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import numpy as np

CEILING = 64 << 20


@contextlib.contextmanager
def _stderr_captured():
    """TFLM prints its errors on file descriptor 2; capture them (the first line is the reason)."""
    sys.stderr.flush()
    saved = os.dup(2)
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
    """A TFLM interpreter of ``blob`` allocated in ``arena_size`` bytes, or ``(None, reason)``."""
    from tflite_micro.python.tflite_micro import runtime

    with _stderr_captured() as log:
        try:
            return runtime.Interpreter.from_bytes(bytes(blob), arena_size=int(arena_size)), ""
        except RuntimeError as e:
            error = str(e)
    lines = [line.strip() for line in (log[0] if log else "").splitlines() if line.strip()]
    return None, (lines[0] if lines else error)


def smallest_arena(blob, ceiling=CEILING):
    """The smallest arena (bytes) TFLM allocates ``blob`` in; raises ``RuntimeError(reason)``."""
    interpreter, reason = load(blob, ceiling)
    if interpreter is None:
        raise RuntimeError(reason)
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


def outputs(blob, images, arena_size):
    """The output vectors ``(N, K)`` of ``blob`` in TFLM on raw ``images`` ``(N, H, W, C)``."""
    interpreter, reason = load(blob, arena_size)
    if interpreter is None:
        raise RuntimeError(reason)
    detail = interpreter.get_input_details(0)
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization_parameters"]["scales"], detail["quantization_parameters"]["zero_points"]
    found = []
    for image in np.asarray(images, np.float32):
        value = image[None]
        if dtype.kind in "iu":
            value = quantize_input(value, float(scale[0]), int(zero[0]), dtype)
        interpreter.set_input(value, 0)
        interpreter.invoke()
        found.append(np.array(interpreter.get_output(0)).reshape(-1))
    return np.stack(found) if found else np.zeros((0, 0))


def main(argv):
    task, path = argv[1], argv[2]
    with open(path, "rb") as f:
        blob = f.read()
    try:
        if task == "arena":
            print(smallest_arena(blob))
        elif task == "outputs":
            np.save(argv[5], outputs(blob, np.load(argv[4]), int(argv[3])))
        else:
            raise RuntimeError(f"unknown task {task!r}")
    except (RuntimeError, ValueError) as e:
        print(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
