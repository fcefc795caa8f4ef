"""PNG diagrams of ENAS micro cells (matplotlib, Agg; no display and no graphviz needed).

A cell is drawn left to right by depth: the two cell inputs ``c_{k-2}`` (id 0) and ``c_{k-1}``
(id 1) in the first column, node ``j`` (id ``j + 2``) in column ``1 + max(depth of its two
inputs)``, and a final ``concat`` box fed by the unused ids (the cell output). Each node box reads
``node j`` with a ``+``: it sums ``op(x) + op(y)``. Every one of the ``2 * B`` op edges is an
arrow coloured by its op and labelled with the op's short name; the legend repeats the colours.

:func:`cell_layout` computes the picture (box positions, edge curvatures, label positions) without
drawing; :func:`draw_cell` draws one cell, :func:`draw_arc` both cells of an architecture::

    from enas.space.arc import parse_arc
    from enas.viz.draw import draw_arc
    draw_arc(parse_arc("0 2 1 4 ..."), "cells")   # -> ["cells_normal.png", "cells_reduce.png"]
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from enas.space.arc import Arc, Cell, parse_arc
from enas.space.search_space import DEFAULT as SPACE
from enas.viz.figures import save_figure

OP_LABELS = tuple(op.label for op in SPACE.ops)
OP_COLORS = tuple(op.color for op in SPACE.ops)
OUTPUT = "output"  # key of the concat box in CellLayout.boxes

# Geometry, in data units; one data unit is SCALE inches in the saved figure (equal aspect).
SCALE = 0.62
BOX_W, BOX_H = 1.35, 0.62
OUT_W = 1.2
COL_DX = 3.3  # between column centres; more where many labelled edges cross the gap
_GAP_EDGES = 2  # labelled edges a gap of COL_DX holds; each one more widens it by _GAP_PER_EDGE
_GAP_PER_EDGE = 0.45
ROW_DY = 1.3
LABEL_FONT = 8.5
BOX_FONT = 10
DPI = 110
_LABEL_PAD_PT = 2.0
_BOX_MARGIN = 0.15  # clearance of an edge from the boxes it passes
_LONG_MARGIN = 0.35  # same, for edges skipping a column: around the boxes, not squeezed between
_MIN_WIDTH = 12.5  # data units, so the title and the one-row legend fit
_TITLE_SPACE = 1.1
_LEGEND_SPACE = 0.8


@dataclasses.dataclass(frozen=True)
class Box:
    """A box centred at ``(x, y)``; ``kind`` is "input", "node" or "output"."""

    x: float
    y: float
    w: float
    h: float
    text: str
    kind: str

    def contains(self, px, py, margin=0.0):
        return (abs(px - self.x) <= self.w / 2 + margin) & (abs(py - self.y) <= self.h / 2 + margin)


@dataclasses.dataclass(frozen=True)
class Edge:
    """An arrow ``src -> dst`` (ids, or :data:`OUTPUT`) drawn as a quadratic Bezier curve.

    ``rad`` is matplotlib's ``arc3`` curvature between the two box centres; ``op`` is None for
    the unlabelled edges into the concat box; ``label_xy`` is the centre of the op label;
    ``precision`` the op's own precision in a mixed-precision arc (shown after the op's name).
    """

    src: int
    dst: int | str
    op: int | None
    slot: int | None
    rad: float
    label_xy: tuple[float, float] | None = None
    precision: str | None = None

    @property
    def label(self) -> str | None:
        if self.op is None:
            return None
        return OP_LABELS[self.op] if self.precision is None else f"{OP_LABELS[self.op]} \u00b7 {self.precision}"


@dataclasses.dataclass(frozen=True)
class CellLayout:
    """Everything :func:`draw_cell` draws, in data coordinates."""

    boxes: dict
    depth: dict
    edges: list  # the 2 * num_nodes op edges, node by node (x then y)
    output_edges: list  # unused id -> concat
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax of the drawing


@functools.lru_cache(maxsize=None)
def _label_size(text: str) -> tuple[float, float]:
    """(width, height) of an op label with its frame, in data units (measured with the font)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=LABEL_FONT, weight="bold")
    width_pt, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    width_pt += 2 * _LABEL_PAD_PT + 2
    height_pt = 1.2 * LABEL_FONT + 2 * _LABEL_PAD_PT + 1
    return width_pt / 72 / SCALE, height_pt / 72 / SCALE


def _bezier(p0, p2, rad, t):
    """Points of matplotlib's arc3 curve from p0 to p2 at parameters ``t`` (array)."""
    p0, p2 = np.asarray(p0, float), np.asarray(p2, float)
    d = p2 - p0
    c = (p0 + p2) / 2 + rad * np.array([d[1], -d[0]])
    t = np.asarray(t, float)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * c + t ** 2 * p2


def _spread(desired, min_gap):
    """Positions near ``desired`` (already sorted) at least ``min_gap`` apart, same mean offset."""
    pos = list(desired)
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + min_gap)
    shift = float(np.mean(np.array(desired) - np.array(pos)))
    return [p + shift for p in pos]


def _rect_overlap(a, b):
    """Overlap area of two rectangles (cx, cy, w, h)."""
    ox = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    oy = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    return max(ox, 0.0) * max(oy, 0.0)


_T = np.linspace(0.0, 1.0, 81)
_RADS = (0.0, 0.15, -0.15, 0.3, -0.3, 0.45, -0.45, 0.6, -0.6, 0.8, -0.8)
_PAIR_RADS = (0.2, 0.3, 0.45, 0.6, 0.8)
_LABEL_T0 = 0.6  # preferred label position along an edge (0: source, 1: destination)
_LABEL_TS = tuple(np.round(np.arange(0.12, 0.89, 0.025), 3))


def _route(boxes, src, dst, rads, taken):
    """The first curvature in ``rads`` whose curve avoids the other boxes (else the best one)."""
    a, b = boxes[src], boxes[dst]
    others = [box for key, box in boxes.items() if key not in (src, dst)]
    margin = _BOX_MARGIN if b.x - a.x < 1.5 * COL_DX else _LONG_MARGIN
    best = None
    for rad in rads:
        pts = _bezier((a.x, a.y), (b.x, b.y), rad, _T)
        inside_ends = a.contains(pts[:, 0], pts[:, 1]) | b.contains(pts[:, 0], pts[:, 1])
        pts = pts[~inside_ends]
        hits = sum(int(np.count_nonzero(box.contains(pts[:, 0], pts[:, 1], margin)))
                   for box in others)
        cost = hits * 10 + (5 if (src, dst, round(rad, 3)) in taken else 0)
        if best is None or cost < best[0]:
            best = (cost, rad)
        if cost == 0:
            break
    return best[1]


def _curve(boxes, edge, t=_T):
    a, b = boxes[edge.src], boxes[edge.dst]
    return _bezier((a.x, a.y), (b.x, b.y), edge.rad, t)


def _arrow_tip(boxes, edge):
    """Where ``edge``'s curve enters its destination box (its arrowhead)."""
    pts = _curve(boxes, edge)
    inside = np.flatnonzero(boxes[edge.dst].contains(pts[:, 0], pts[:, 1]))
    k = max(int(inside[0]) - 1, 0) if inside.size else len(pts) - 1
    return float(pts[k, 0]), float(pts[k, 1])


def _place_label(boxes, edge, placed, curves, tips):
    """Centre of ``edge``'s label: along its curve, clear of the boxes, the arrowheads (``tips``)
    and the ``placed`` labels and, as far as possible, of the other edges (``curves``)."""
    w, h = _label_size(edge.label)
    best = None
    for t, (x, y) in zip(_LABEL_TS, _curve(boxes, edge, _LABEL_TS)):
        rect = (x, y, w, h)
        overlap = sum(_rect_overlap(rect, (bx.x, bx.y, bx.w + 0.16, bx.h + 0.12))
                      for bx in boxes.values())
        overlap += sum(_rect_overlap(rect, (tx, ty, 0.45, 0.45)) for tx, ty in tips)
        overlap += sum(_rect_overlap(rect, (px, py, pw + 0.08, ph + 0.06))
                       for px, py, pw, ph in placed)
        crossing = sum(np.count_nonzero((abs(pts[:, 0] - x) <= w / 2) & (abs(pts[:, 1] - y) <= h / 2))
                       for pts in curves)
        cost = (1000 if overlap > 0 else 0) + 100 * overlap + 0.5 * crossing + 2 * abs(t - _LABEL_T0)
        if best is None or cost < best[0]:
            best = (cost, (float(x), float(y)))
    placed.append((*best[1], w, h))
    return best[1]


def cell_layout(cell: Cell) -> CellLayout:
    """Positions of the boxes, curvatures of the edges and positions of the op labels."""
    if not isinstance(cell, Cell):
        cell = Cell.from_list(cell)
    num_nodes = cell.num_nodes
    depth = {0: 0, 1: 0}
    for j, node in enumerate(cell.nodes):
        depth[j + 2] = 1 + max(depth[node.x_id], depth[node.y_id])
    out_col = max(depth.values()) + 1

    # Column 0: the inputs, c_{k-2} above c_{k-1}; later columns: each node near the mean height
    # of its inputs (barycentre ordering keeps edges from crossing), spread ROW_DY apart.
    # The inputs feed most edges: they sit further apart when the columns are tall.
    tallest = max(sum(1 for d in depth.values() if d == col) for col in range(1, out_col))
    half = max(0.75 * ROW_DY, (tallest - 1) * ROW_DY / 4)
    ys = {0: half, 1: -half}
    for col in range(1, out_col):
        ids = [i for i in range(2, num_nodes + 2) if depth[i] == col]
        node_inputs = {i: cell.nodes[i - 2].inputs for i in ids}
        desired = {i: float(np.mean([ys[k] for k in node_inputs[i]])) for i in ids}
        ids.sort(key=lambda i: (-desired[i], i))  # top to bottom
        spread = _spread([-desired[i] for i in ids], ROW_DY)
        for i, neg_y in zip(ids, spread):
            ys[i] = -neg_y
    # Column x positions: a gap crossed by many op edges (whose labels sit in it) is wider.
    spans = [(depth[src], depth[j + 2]) for j, node in enumerate(cell.nodes) for src in node.inputs]
    col_x = [0.0]
    for col in range(out_col):
        crossing = sum(1 for a, b in spans if a <= col < b)
        col_x.append(col_x[-1] + COL_DX + _GAP_PER_EDGE * max(0, crossing - _GAP_EDGES))
    unused = cell.unused_ids()
    boxes = {}
    for i in range(num_nodes + 2):
        x = col_x[depth[i]]
        if i < 2:
            text = ("$c_{k-2}$", "$c_{k-1}$")[i] + f"\nid {i}"
            boxes[i] = Box(x, ys[i], BOX_W, BOX_H, text, "input")
        else:
            boxes[i] = Box(x, ys[i], BOX_W, BOX_H, f"node {i - 2}\nid {i}:  x + y", "node")
    out_y = float(np.mean([ys[i] for i in unused]))
    boxes[OUTPUT] = Box(col_x[out_col], out_y, OUT_W, BOX_H, "concat\n= output", "output")

    # Curvatures: straight where nothing is in the way; the two edges of a node that reads the
    # same input twice bend apart; edges that would cross a box bend around it.
    taken = set()
    routed = []
    for j, node in enumerate(cell.nodes):
        dst = j + 2
        for slot, (src, op, precision) in enumerate(((node.x_id, node.x_op, node.x_precision),
                                                      (node.y_id, node.y_op, node.y_precision))):
            if node.x_id == node.y_id:
                sign = 1 if slot == 0 else -1
                rads = tuple(sign * r for r in _PAIR_RADS)
            else:
                rads = _RADS
            rad = _route(boxes, src, dst, rads, taken)
            taken.add((src, dst, round(rad, 3)))
            routed.append(Edge(src, dst, op, slot, rad, precision=precision))
    output_edges = [Edge(i, OUTPUT, None, None, _route(boxes, i, OUTPUT, _RADS, taken))
                    for i in unused]

    # Labels: longest edges first (they have the most room to slide along).
    placed = []
    order = sorted(range(len(routed)),
                   key=lambda k: -abs(boxes[routed[k].dst].x - boxes[routed[k].src].x))
    labelled = list(routed)
    all_edges = routed + output_edges
    tips = [_arrow_tip(boxes, e) for e in all_edges]
    for k in order:
        e = routed[k]
        curves = [_curve(boxes, other) for other in all_edges if other is not e]
        labelled[k] = dataclasses.replace(e, label_xy=_place_label(boxes, e, placed, curves, tips))

    # Extent of everything drawn: boxes, curves and labels.
    xs, ys_all = [], []
    for box in boxes.values():
        xs += [box.x - box.w / 2, box.x + box.w / 2]
        ys_all += [box.y - box.h / 2, box.y + box.h / 2]
    for e in labelled + output_edges:
        a, b = boxes[e.src], boxes[e.dst]
        pts = _bezier((a.x, a.y), (b.x, b.y), e.rad, _T)
        xs += pts[:, 0].tolist()
        ys_all += pts[:, 1].tolist()
    for px, py, pw, ph in placed:
        xs += [px - pw / 2, px + pw / 2]
        ys_all += [py - ph / 2, py + ph / 2]
    bounds = (min(xs), max(xs), min(ys_all), max(ys_all))
    return CellLayout(boxes, depth, labelled, output_edges, bounds)


def _cell_summary(cell: Cell) -> str:
    return " | ".join(" ".join(node.tokens()) for node in cell.nodes)


def draw_cell(cell: Cell, title: str, path: str) -> CellLayout:
    """Write a PNG diagram of ``cell`` to ``path``; returns the :class:`CellLayout` drawn."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    layout = cell_layout(cell)
    xmin, xmax, ymin, ymax = layout.bounds
    pad = 0.35
    xmin, xmax = xmin - pad, xmax + pad
    if xmax - xmin < _MIN_WIDTH:
        extra = (_MIN_WIDTH - (xmax - xmin)) / 2
        xmin, xmax = xmin - extra, xmax + extra
    ymin, ymax = ymin - pad - _LEGEND_SPACE, ymax + pad + _TITLE_SPACE
    width, height = xmax - xmin, ymax - ymin

    fig = Figure(figsize=(width * SCALE, height * SCALE), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.axis("off")

    styles = {"input": ("#fff3cd", "#b8860b"), "node": ("#e8f0fe", "#34495e"),
              "output": ("#e6f4ea", "#1e7b34")}
    patches = {}
    for key, box in layout.boxes.items():
        face, edge = styles[box.kind]
        patch = FancyBboxPatch((box.x - box.w / 2, box.y - box.h / 2), box.w, box.h,
                               boxstyle="round,pad=0,rounding_size=0.12", facecolor=face,
                               edgecolor=edge, linewidth=1.4, zorder=3)
        ax.add_patch(patch)
        patches[key] = patch
        first, _, second = box.text.partition("\n")
        ax.text(box.x, box.y + 0.12, first, ha="center", va="center", fontsize=BOX_FONT,
                fontweight="bold", zorder=4)
        ax.text(box.x, box.y - 0.16, second, ha="center", va="center",
                fontsize=BOX_FONT - 2.5, color="#444444", zorder=4)

    def arrow(e, color, lw, style, z):
        a, b = layout.boxes[e.src], layout.boxes[e.dst]
        ax.add_patch(FancyArrowPatch((a.x, a.y), (b.x, b.y), patchA=patches[e.src],
                                     patchB=patches[e.dst], connectionstyle=f"arc3,rad={e.rad}",
                                     arrowstyle="-|>,head_length=6,head_width=3.5",
                                     color=color, linewidth=lw, linestyle=style, zorder=z,
                                     shrinkA=1, shrinkB=1))

    for e in layout.output_edges:
        arrow(e, "#9a9a9a", 1.2, (0, (4, 3)), 1)
    for e in layout.edges:
        arrow(e, OP_COLORS[e.op], 1.8, "-", 2)
    for e in layout.edges:
        ax.text(*e.label_xy, e.label, ha="center", va="center", fontsize=LABEL_FONT,
                color=OP_COLORS[e.op], fontweight="bold", zorder=5,
                bbox=dict(boxstyle=f"round,pad={_LABEL_PAD_PT / LABEL_FONT:.2f}",
                          facecolor="white", edgecolor=OP_COLORS[e.op], linewidth=0.8))

    ax.text((xmin + xmax) / 2, ymax - 0.42, title, ha="center", va="center", fontsize=12,
            fontweight="bold")
    ax.text((xmin + xmax) / 2, ymax - 0.88, "nodes (x_id x_op y_id y_op): " + _cell_summary(cell),
            ha="center", va="center", fontsize=8, color="#444444", family="monospace")
    handles = [Line2D([], [], color=OP_COLORS[i], linewidth=2.2, label=OP_LABELS[i])
               for i in range(SPACE.num_ops)]
    handles.append(Line2D([], [], color="#9a9a9a", linewidth=1.4, linestyle=(0, (4, 3)),
                          label="unused -> concat"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
              fontsize=8.5, frameon=False, handlelength=1.8, columnspacing=1.2,
              borderaxespad=0.3)
    save_figure(fig, path, dpi=DPI, facecolor="white")
    return layout


def draw_arc(arc: Arc, out_prefix: str) -> list[str]:
    """Draw both cells of ``arc``; returns ``[<out_prefix>_normal.png, <out_prefix>_reduce.png]``."""
    arc = parse_arc(arc)
    folder = os.path.dirname(out_prefix)
    if folder:
        os.makedirs(folder, exist_ok=True)
    paths = []
    for cell, name, title in ((arc.normal, "normal", "Normal cell"),
                              (arc.reduce, "reduce", "Reduction cell")):
        path = f"{out_prefix}_{name}.png"
        draw_cell(cell, f"{title} (B={cell.num_nodes})", path)
        paths.append(path)
    return paths
