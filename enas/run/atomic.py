"""Atomic file writes, with no TensorFlow: a file is either its old self or its complete new self.

Every file the project writes that a killed process could leave half-written (config records,
results, checkpoints' companions, pictures, exported models) goes through :func:`atomic_file`:
the content is written to a temporary ``.tmp-*`` file in the target's folder (which a run
folder's reset recognises as a killed write's leftover), flushed to disk, and renamed over the
target in one step.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_file(path, mode="w", suffix=""):
    """A file object (``mode`` ``"w"`` or ``"wb"``) whose content replaces ``path`` when the block
    ends without an exception; on an exception ``path`` is untouched and the temporary file
    removed. The folder is created if needed; the file gets mode 0644."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path, data):
    """Write ``data`` (``str`` or ``bytes``) to ``path`` atomically; returns its length."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return len(data)
