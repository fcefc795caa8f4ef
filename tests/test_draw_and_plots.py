"""Tests of the cell diagrams (enas.viz.draw, draw_arc.py), the TensorBoard scalars
(enas.run.summaries) and the run curves (enas.viz.plots, plot_curves.py)."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from enas.errors import UserError
from enas.space.arc import Cell, parse_arc, random_arc
from enas.viz.draw import OUTPUT, _label_size, cell_layout, draw_arc, draw_cell

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARC5 = "0 2 1 4 1 3 0 1 1 0 1 0 1 2 0 4 0 0 0 1 1 3 1 4 0 1 1 1 1 2 1 4 3 2 0 2 1 1 0 3"
ARC3 = "0 2 1 4 1 3 0 1 2 0 1 0 1 1 0 3 2 4 0 2 3 0 2 1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run(script, *args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _check_png(path):
    import matplotlib.image

    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert image.shape[2] in (3, 4)
    return image


# --- cell diagrams ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, b", [(ARC5, 5), (ARC3, 3)])
def test_draw_arc_writes_two_pngs(tmp_path, text, b):
    paths = draw_arc(parse_arc(text), str(tmp_path / "sub" / "cells"))
    assert paths == [str(tmp_path / "sub" / "cells_normal.png"),
                     str(tmp_path / "sub" / "cells_reduce.png")]
    for path in paths:
        image = _check_png(path)
        assert image[..., :3].std() > 0.05  # not a blank canvas


def _rect(x, y, w, h):
    return (x - w / 2, x + w / 2, y - h / 2, y + h / 2)


def _overlap(a, b):
    return min(a[1], b[1]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[2], b[2])


def _check_layout(cell):
    b = cell.num_nodes
    layout = cell_layout(cell)
    assert set(layout.boxes) == set(range(b + 2)) | {OUTPUT}
    # every op edge is drawn once: 2 per node, in node order, with its op and label
    assert len(layout.edges) == 2 * b
    for j, node in enumerate(cell.nodes):
        x_edge, y_edge = layout.edges[2 * j], layout.edges[2 * j + 1]
        assert (x_edge.src, x_edge.dst, x_edge.op) == (node.x_id, j + 2, node.x_op)
        assert (y_edge.src, y_edge.dst, y_edge.op) == (node.y_id, j + 2, node.y_op)
        if node.x_id == node.y_id:
            assert x_edge.rad != y_edge.rad  # the two edges of a repeated input bend apart
    assert [e.src for e in layout.output_edges] == list(cell.unused_ids())
    assert all(e.dst == OUTPUT and e.op is None for e in layout.output_edges)
    # left to right by depth: every edge goes to a column further right
    for e in layout.edges + layout.output_edges:
        assert layout.boxes[e.dst].x > layout.boxes[e.src].x
    assert layout.depth[0] == layout.depth[1] == 0
    for j, node in enumerate(cell.nodes):
        assert layout.depth[j + 2] == 1 + max(layout.depth[i] for i in node.inputs)
    # boxes never overlap, labels overlap neither boxes nor each other
    boxes = [_rect(bx.x, bx.y, bx.w, bx.h) for bx in layout.boxes.values()]
    labels = [_rect(*e.label_xy, *_label_size(e.label)) for e in layout.edges]
    for r, s in itertools.combinations(boxes, 2):
        assert not _overlap(r, s)
    for r, s in itertools.combinations(labels, 2):
        assert not _overlap(r, s)
    for r in labels:
        assert not any(_overlap(r, s) for s in boxes)
    # everything lies inside the reported bounds
    xmin, xmax, ymin, ymax = layout.bounds
    for r in boxes + labels:
        assert xmin - 1e-9 <= r[0] and r[1] <= xmax + 1e-9 and ymin - 1e-9 <= r[2] and r[3] <= ymax + 1e-9
    return layout


@pytest.mark.parametrize("text", [ARC5, ARC3])
def test_cell_layout(text):
    arc = parse_arc(text)
    for cell in (arc.normal, arc.reduce):
        _check_layout(cell)


def test_cell_layout_depth_chain_and_repeated_inputs():
    # node j reads node j-1 twice: one column per node, the two edges of each node curved apart
    chain = Cell.from_list([0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 3, 0])
    layout = _check_layout(chain)
    assert [layout.depth[i] for i in range(5)] == [0, 0, 1, 2, 3]
    assert [e.src for e in layout.output_edges] == [4]


def test_random_cells_layout_and_draw(tmp_path):
    rng = np.random.default_rng(0)
    for b in (1, 2, 4, 5):
        arc = random_arc(b, rng)
        layout = cell_layout(arc.normal)
        assert len(layout.edges) == 2 * b
    returned = draw_cell(arc.reduce, "random", str(tmp_path / "r.png"))
    assert len(returned.edges) == 2 * arc.num_nodes
    _check_png(tmp_path / "r.png")


def test_draw_arc_script(tmp_path):
    result = _run("draw_arc.py", "-fixed_arc", ARC3, "--output_prefix", "out/cells", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["out/cells_normal.png", "out/cells_reduce.png"]
    for name in ("cells_normal.png", "cells_reduce.png"):
        _check_png(tmp_path / "out" / name)


@pytest.mark.parametrize("args", [("-fixed_arc", "0 2 1 9 " * 6),
                                  ("--child_fixed_arc", ARC3, "--child_num_cells", "5"),
                                  ()])
def test_draw_arc_script_bad_arc(tmp_path, args):
    result = _run("draw_arc.py", *args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad architecture: ")
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


# --- TensorBoard scalars ---------------------------------------------------------------------

def test_run_summaries_round_trip(tmp_path):
    from enas.run.summaries import RunSummaries, read_scalars

    out = str(tmp_path / "run")
    with RunSummaries(out) as summaries:
        assert summaries.enabled
        for step in range(5):
            summaries.scalars(step, {"child/loss": 2.0 - step / 4, "child/lr": np.float32(0.05),
                                     "eval/valid_accuracy": None if step % 2 else 0.5 + step / 10})
    assert not summaries.enabled
    scalars = read_scalars(out)
    assert set(scalars) == {"child/loss", "child/lr", "eval/valid_accuracy"}
    assert [s for s, _ in scalars["child/loss"]] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([v for _, v in scalars["child/loss"]], [2.0, 1.75, 1.5, 1.25, 1.0])
    np.testing.assert_allclose([v for _, v in scalars["child/lr"]], [0.05] * 5, rtol=1e-6)
    assert [s for s, _ in scalars["eval/valid_accuracy"]] == [0, 2, 4]

    # a resumed run: a second writer rewrites steps 3, 4 and appends 5, 6
    summaries = RunSummaries(out)
    for step in range(3, 7):
        summaries.scalars(step, {"child/loss": 100.0 + step})
    summaries.close()
    summaries.close()  # idempotent
    with pytest.raises(RuntimeError):
        summaries.scalars(7, {"child/loss": 1.0})
    # Files opened in the same second carry the same whole-second opening time; the order must
    # not fall back on their names: the second writer's file renamed to sort first.
    logdir = os.path.join(out, "tensorboard")
    first, second = sorted(os.listdir(logdir), key=lambda n: os.path.getmtime(os.path.join(logdir, n)))
    os.rename(os.path.join(logdir, second), os.path.join(logdir, "events.out.tfevents.0.a.0.v2"))
    scalars = read_scalars(out)
    assert [s for s, _ in scalars["child/loss"]] == list(range(7))
    np.testing.assert_allclose([v for _, v in scalars["child/loss"]],
                               [2.0, 1.75, 1.5, 103.0, 104.0, 105.0, 106.0])
    assert len(scalars["child/lr"]) == 5

    # a truncated event file (a run killed mid-write) still reads up to the damage
    files = sorted(os.listdir(os.path.join(out, "tensorboard")))
    assert len(files) == 2
    with open(os.path.join(out, "tensorboard", files[0]), "ab") as f:
        f.write(b"\x00\x01garbage")
    assert len(read_scalars(out)["child/loss"]) == 7


def test_run_summaries_disabled(tmp_path):
    from enas.run.summaries import RunSummaries, read_scalars

    with RunSummaries(None) as summaries:
        assert not summaries.enabled
        summaries.scalars(0, {"child/loss": 1.0})
        summaries.flush()
    assert read_scalars(str(tmp_path / "missing")) == {}


# --- curves ----------------------------------------------------------------------------------

def _fake_run(out, search):
    """Write a run's scalars (child tags every 10 steps, eval and search tags every 100); returns
    ``{tag: [(step, value), ...]}`` as written."""
    from enas.run.summaries import SEARCH_TAGS, TRAIN_TAGS, RunSummaries

    rng = np.random.default_rng(0)
    written = {}
    with RunSummaries(out) as summaries:
        for step in range(0, 400, 10):
            values = {tag: float(rng.random()) for tag in TRAIN_TAGS if tag.startswith("child/")}
            if step % 100 == 90:
                values.update({tag: float(rng.random()) for tag in TRAIN_TAGS
                               if tag.startswith("eval/")})
                if search:
                    values.update({tag: float(rng.random()) for tag in SEARCH_TAGS
                                   if tag not in TRAIN_TAGS})
            summaries.scalars(step, values)
            for tag, value in values.items():
                written.setdefault(tag, []).append((step, value))
    return written


def _check_panels(fig, panels, written, title):
    """``fig`` has one visible panel per entry of ``panels`` (title, y label), in order, each
    drawing every series' written points (x = steps, y = values; noisy tags with over 30 points
    as a faint raw line under a smoothed one) and a legend naming the last value."""
    from enas.viz.plots import SMOOTHED, _fmt

    assert fig._suptitle.get_text() == title
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [p[0] for p in panels]
    assert [ax.get_ylabel() for ax in visible] == [p[1] for p in panels]
    for ax, (_, _, series) in zip(visible, panels):
        lines = ax.get_lines()
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        smoothed = [tag for tag, _ in series if tag in SMOOTHED and len(written[tag]) > 30]
        assert len(lines) == len(series) + len(smoothed), ax.get_title()
        assert len(legend) == len(series)
        for (tag, label), text in zip(series, legend):
            steps, values = (np.array(v) for v in zip(*written[tag]))
            assert text.startswith(f"{label} (last {_fmt(np.float32(values[-1]))}")
            raw = [ln for ln in lines if len(ln.get_xdata()) == len(steps)
                   and np.allclose(ln.get_ydata(), values, rtol=1e-6)]
            assert len(raw) == 1, (tag, ax.get_title())  # the points themselves, once
            np.testing.assert_array_equal(raw[0].get_xdata(), steps)
            assert raw[0].get_ydata()[-1] == pytest.approx(values[-1], rel=1e-6)
            if tag in smoothed:  # a faint raw line, the labelled one smoothed (same steps)
                assert raw[0].get_alpha() == 0.25 and raw[0].get_label().startswith("_")
                smooth = [ln for ln in lines if ln.get_label() == text]
                assert len(smooth) == 1 and np.array_equal(smooth[0].get_xdata(), steps)
                assert np.ptp(smooth[0].get_ydata()) < np.ptp(values)  # smoother than the points
            else:
                assert raw[0].get_label() == text and raw[0].get_marker() == "o"


@pytest.mark.parametrize("search", [False, True])
def test_plot_run(tmp_path, search, monkeypatch):
    """plot_run draws the training figure (4 panels) and, for a search, the search figure (5
    panels, the sixth cell of the grid hidden) from the scalars written, and saves each as a PNG
    of the figure's size."""
    import matplotlib.image

    from enas.viz import plots

    out = str(tmp_path / "run")
    written = _fake_run(out, search)
    figures = {}
    real_save = plots.save_figure

    def capture(fig, path, **kwargs):  # keep the Figure plot_run builds, then save it as it would
        figures[path] = fig
        return real_save(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure", capture)
    paths = plots.plot_run(out)
    expected = ["curves.png"] + (["search_curves.png"] if search else [])
    assert paths == [os.path.join(out, name) for name in expected] == list(figures)
    assert sorted(n for n in os.listdir(out) if n.endswith(".png")) == expected
    _check_panels(figures[paths[0]], plots.TRAIN_PANELS, written, "Training curves: run")
    if search:
        _check_panels(figures[paths[1]], plots.SEARCH_PANELS, written, "Search curves: run")
        assert len(figures[paths[1]].axes) == 6
    for path, fig in figures.items():
        image = matplotlib.image.imread(path)
        width, height = fig.get_size_inches() * fig.dpi
        assert image.shape == (round(height), round(width), 4)
        assert image[..., :3].std() > 0.05  # not a blank canvas
    assert figures[paths[0]].get_size_inches()[1] * 100 == pytest.approx(2 * 380 + 50)  # 2 rows of panels


def test_plot_run_without_scalars(tmp_path):
    from enas.viz.plots import NoScalarsError, plot_run

    with pytest.raises(NoScalarsError) as info:
        plot_run(str(tmp_path))
    assert isinstance(info.value, UserError)
    assert "no TensorBoard scalars in" in str(info.value)


def test_plot_curves_script(tmp_path):
    out = tmp_path / "run"
    _fake_run(str(out), search=True)
    result = _run("plot_curves.py", "--output_dir", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / "curves.png"), str(out / "search_curves.png")]

    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("plot_curves.py", "--output_dir", str(empty), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: no TensorBoard scalars in {empty / 'tensorboard'}: run "
                     f"train_arc_*.py or search_arc_*.py with --output_dir {empty} first"]
    assert not list(empty.iterdir())


def test_mixed_precision_edges_name_their_precision(tmp_path):
    arc = parse_arc("0 0:binary 1 1:4bit 2 2 0 0:ternary 1 3 3 4 0 1:binary 1 0:4bit 2 1:ternary 1 4 3 2 0 0")
    layout = _check_layout(arc.normal)
    labels = [e.label for e in layout.edges]
    assert labels[:4] == ["sep 3x3 \u00b7 binary", "sep 5x5 \u00b7 4bit", "avg pool", "sep 3x3 \u00b7 ternary"]
    for path in draw_arc(arc, str(tmp_path / "mixed")):
        _check_png(path)
