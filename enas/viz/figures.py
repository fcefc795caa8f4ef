"""Writing a matplotlib figure atomically.

A run killed while a picture is being written must not leave a truncated ``curves.png`` (or
diagram, Pareto or study plot) behind: :func:`save_figure` renders through
:func:`enas.run.atomic.atomic_file`.
"""

from __future__ import annotations

import os

from enas.run.atomic import atomic_file


def save_figure(fig, path, **savefig_kwargs):
    """Write ``fig`` (a ``matplotlib.figure.Figure``) to ``path`` atomically; the format is the
    path's suffix (``.png``, ``.pdf``, ``.svg``), the keyword arguments ``Figure.savefig``'s.
    Returns ``path``."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_file(path, "wb", suffix=f".{fmt}") as f:
        fig.savefig(f, format=fmt, **savefig_kwargs)
    return path
