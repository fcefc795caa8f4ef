"""One process per output folder, with no TensorFlow.

Two runs writing one folder would interleave their logs and overwrite each other's checkpoints.
A run (or a study) therefore holds an exclusive ``flock`` on ``<folder>/.lock`` for as long as it
writes there, and deletes the file when it is done. The kernel drops the lock when the process
ends, however it ends, so a run that was killed leaves no lock behind that could block the rerun
resuming it (its ``.lock`` file stays; only a live lock counts). The file holds the owner's
process id, host and start time, for the message the second run prints.

A second run asking for the folder gets :class:`FolderInUseError` (one line, exit status 2)
before it writes anything: it opens the existing lock file read-only and leaves it as it was.
``flock`` is advisory and local: processes on other hosts sharing the folder over NFS are only
excluded where the file system supports it.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket

from enas.errors import UserError

LOCK_FILE = ".lock"


class FolderInUseError(UserError):
    """Another live process holds the output folder."""


class FolderLock:
    """The exclusive lock of ``folder`` (which must exist); a context manager that releases it.

    ``acquire()`` raises :class:`FolderInUseError` when a live process holds it.
    """

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        if self._fd is not None:
            return self
        while True:
            try:  # an existing lock file is opened read-only: a refused run leaves it untouched
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FolderInUseError(f"{self.folder!r} is in use by {holder}; wait for it to end or stop it, "
                                       "or pass another --output_dir") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder deleted the file between our open and its release: again
        self._fd = fd
        started = datetime.datetime.now().isoformat(timespec="seconds")
        _write_holder(self.path, f"process {os.getpid()} on {socket.gethostname()}, started {started}\n")
        return self

    def release(self):
        """Delete the lock file and drop the lock (in that order: a process that opened the file
        before the deletion finds it gone once it gets the lock, and tries again)."""
        if self._fd is not None:
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self):
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __del__(self):
        self.release()


def _same_file(fd, path):
    """``path`` still names the file open as ``fd``."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_holder(fd):
    try:
        text = os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _write_holder(path, text):
    """Rewrite the lock file's content in place (the flock lives on the file's inode, so the file
    is not replaced)."""
    with open(path, "r+" if os.path.exists(path) else "w") as f:
        f.write(text)
        f.truncate()


def clear_folder(folder):
    """Delete everything in ``folder`` but its lock file (a reset run keeps holding its lock)."""
    import shutil

    for name in os.listdir(folder):
        if name == LOCK_FILE:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
