"""Rendering grids: layout, SVG structure, and PNG pixels actually drawn where the strokes are."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from sketchprep.errors import OptionError
from sketchprep.render import PAD, fit_to_cell, layout_grid, save_grid

# a 100 x 100 square drawn in one stroke from the origin, clockwise (y down)
SQUARE = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0], [-100, 0, 0], [0, -100, 1]], dtype=np.int16)
DOT_AND_LINE = np.array([[5, 5, 1], [10, 0, 0], [20, 0, 1]], dtype=np.int16)


def test_fit_to_cell_scales_the_larger_side_and_centres():
    wide = np.array([[0, 0, 0], [200, 0, 0], [0, 50, 1]], dtype=np.float64)
    (stroke,) = fit_to_cell(wide, 100.0)
    lo, hi = stroke.min(axis=0), stroke.max(axis=0)
    assert hi[0] - lo[0] == pytest.approx(100 * (1 - 2 * PAD))
    assert hi[1] - lo[1] == pytest.approx(100 * (1 - 2 * PAD) / 4)
    assert (lo + hi) / 2 == pytest.approx([50, 50])


def test_fit_to_cell_keeps_dots_and_centres_a_single_point():
    strokes = fit_to_cell(DOT_AND_LINE, 100.0)
    assert [len(s) for s in strokes] == [1, 2]
    (single,) = fit_to_cell(np.array([[7, 3, 1]]), 64.0)
    assert single.tolist() == [[32.0, 32.0]]


def test_fit_to_cell_ignores_non_finite_points():
    bad = np.array([[0, 0, 0], [np.nan, 1, 0], [10, 10, 1]], dtype=np.float64)
    strokes = fit_to_cell(bad, 10.0)
    assert all(np.isfinite(s).all() for s in strokes)


def test_layout_columns_and_canvas_size():
    grid = layout_grid([SQUARE] * 5, columns=2, cell=50.0)
    assert (grid.width, grid.height) == (100.0, 150.0)
    assert [(c.x0, c.y0) for c in grid.cells] == [(0, 0), (50, 0), (0, 50), (50, 50), (0, 100)]
    square_ish = layout_grid([SQUARE] * 10, cell=10.0)
    assert (square_ish.width, square_ish.height) == (40.0, 30.0)  # ceil(sqrt(10)) = 4 columns
    labelled = layout_grid([SQUARE] * 2, cell=100.0, labels=["a", "b"])
    assert labelled.height == 100.0 + labelled.label_height and labelled.label_height > 0
    with pytest.raises(ValueError):
        layout_grid([SQUARE] * 2, labels=["only one"])


def _svg_paths(path):
    root = ET.parse(path).getroot()
    return [el for el in root.iter() if el.tag.endswith("path")]


def test_svg_square_coordinates(tmp_path):
    out = tmp_path / "g.svg"
    save_grid([SQUARE, SQUARE], out, columns=2, cell=100.0)
    paths = _svg_paths(out)
    assert len(paths) == 2
    lo, hi = 100 * PAD, 100 * (1 - PAD)
    numbers = [float(v) for v in re.findall(r"-?[\d.]+", paths[1].get("d"))]
    points = np.array(numbers).reshape(-1, 2)
    expected = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi], [lo, lo]]) + [100, 0]  # second cell
    assert points == pytest.approx(expected, abs=0.01)


def test_svg_colour_by_stroke_and_labels_are_escaped(tmp_path):
    out = tmp_path / "g.svg"
    save_grid([DOT_AND_LINE], out, color_by_stroke=True, labels=["<cat & dog>"])
    paths = _svg_paths(out)
    assert len(paths) == 2 and paths[0].get("stroke") != paths[1].get("stroke")
    # the dot is a zero-length segment (round caps make it visible)
    assert re.fullmatch(r"M(\S+ \S+) L\1", paths[0].get("d"))
    texts = [el.text for el in ET.parse(out).getroot().iter() if el.tag.endswith("text")]
    assert texts == ["<cat & dog>"]


def test_png_square_covers_the_expected_pixels(tmp_path):
    out = tmp_path / "g.png"
    save_grid([SQUARE], out, cell=100.0, line_width=2.0)
    img = np.asarray(Image.open(out).convert("L"), dtype=np.int32)
    assert img.shape == (100, 100)
    dark = img < 128
    lo, hi = 100 * PAD, 100 * (1 - PAD)  # 8 and 92: where the square's sides must be
    ys, xs = np.nonzero(dark)
    # every dark pixel is on the outline (within the line's half width plus a pixel of anti-aliasing)
    dist_to_outline = np.minimum(np.minimum(abs(xs - lo), abs(xs - hi)), np.minimum(abs(ys - lo), abs(ys - hi)))
    inside_box = (xs >= lo - 2) & (xs <= hi + 2) & (ys >= lo - 2) & (ys <= hi + 2)
    assert inside_box.all() and (dist_to_outline <= 2).all()
    # ... and the whole outline is inked: each side is dark along its full length
    span = np.arange(int(lo) + 2, int(hi) - 1)
    for side in (dark[int(lo) - 1:int(lo) + 2, span], dark[int(hi) - 1:int(hi) + 2, span],
                 dark[span, int(lo) - 1:int(lo) + 2].T, dark[span, int(hi) - 1:int(hi) + 2].T):
        assert side.any(axis=0).all()
    assert img[50, 50] == 255 and img[2, 50] == 255 and img[97, 97] == 255


def test_png_colour_by_stroke_uses_several_colours(tmp_path):
    out = tmp_path / "g.png"
    two_lines = np.array([[0, 0, 0], [100, 0, 1], [-100, 50, 0], [100, 0, 1]], dtype=np.int16)
    save_grid([two_lines], out, cell=64.0, color_by_stroke=True, labels=["x"])
    rgb = np.asarray(Image.open(out).convert("RGB")).reshape(-1, 3)
    saturated = rgb[(rgb.max(axis=1) - rgb.min(axis=1)) > 100]
    hues = {tuple(c) for c in saturated // 64}
    assert len(hues) >= 2


def test_png_of_float_sketches_and_empty_list(tmp_path):
    floats = SQUARE.astype(np.float64) / 7.3
    save_grid([floats, SQUARE], tmp_path / "f.png", columns=1, cell=32.0)
    assert Image.open(tmp_path / "f.png").size == (32, 64)
    save_grid([], tmp_path / "empty.png")
    assert Image.open(tmp_path / "empty.png").size == (128, 128)


def test_unknown_extension_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(OptionError, match=r"\.svg or \.png"):
        save_grid([SQUARE], tmp_path / "g.jpg")
    assert list(tmp_path.iterdir()) == []
