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


# --------------------------------------------------------------------------------------------------
# choosing drawings and the `render` command

from click.testing import CliRunner  # noqa: E402

from sketchprep.cli import main  # noqa: E402
from sketchprep.convert import ConvertOptions, collect  # noqa: E402
from sketchprep.dataset import save_dataset  # noqa: E402
from sketchprep.render import _simplify_in_place, choose, render_grid  # noqa: E402
from sketchprep.strokes import stroke3_to_polylines  # noqa: E402

from conftest import SAMPLE, shared_data  # noqa: E402


def test_choose_is_seeded_distinct_and_checks_indices():
    a = choose(300, 64, seed=1)
    assert len(set(a.tolist())) == 64 and (np.diff(a) > 0).all() and a.max() < 300
    assert choose(300, 64, seed=1).tolist() == a.tolist() and choose(300, 64, seed=2).tolist() != a.tolist()
    assert choose(5, 64, seed=0).tolist() == [0, 1, 2, 3, 4]
    assert choose(10, 3, seed=0, indices=[7, -1]).tolist() == [7, 9]
    with pytest.raises(OptionError, match="--index 10 is out of range"):
        choose(10, 3, seed=0, indices=[10])


def test_simplify_in_place_keeps_stroke_ends_and_float_values():
    zigzag = np.array([[0.5, 0, 0], [10, 0.25, 0], [10, -0.25, 0], [10, 0, 1], [3.25, 3, 1]])
    (out,) = _simplify_in_place([zigzag], 1.0, "line")
    polylines = stroke3_to_polylines(out)
    assert [p.tolist() for p in polylines] == [[[0.5, 0], [30.5, 0]], [[33.75, 3]]]
    assert _simplify_in_place([np.zeros((0, 3))], 1.0, "line")[0].shape == (0, 3)


def _tiny_dataset(path):
    square = SQUARE
    sketches = [square * (k + 1) for k in range(6)]
    save_dataset(path, {"train": sketches, "valid": sketches[:2], "test": sketches[:3]},
                 labels={"train": np.arange(6) % 2, "valid": np.zeros(2), "test": np.zeros(3)},
                 meta={"classes": ["cat", "dog"]})
    return str(path)


def test_render_grid_from_npz_draws_the_chosen_split(tmp_path):
    data = _tiny_dataset(tmp_path / "d.npz")
    result = render_grid([data], str(tmp_path / "g.svg"), split="train", n=4, seed=0, labels=True)
    assert result.available == 6 and len(result.indices) == 4 and "train split" in result.source
    texts = [el.text for el in ET.parse(tmp_path / "g.svg").getroot().iter() if el.tag.endswith("text")]
    assert texts == [f"{i} {['cat', 'dog'][i % 2]}: 5 pts" for i in result.indices]
    assert len(_svg_paths(tmp_path / "g.svg")) == 4


def test_cli_render_png_and_its_usage_errors(tmp_path):
    data = _tiny_dataset(tmp_path / "d.npz")
    runner = CliRunner()
    out = tmp_path / "g.png"
    result = runner.invoke(main, ["render", data, "-o", str(out), "--index", "0,2", "--index", "1", "--columns", "3",
                                  "--cell", "50"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {out}: 3 of 3 drawings from the test split of {data}\n"
    img = np.asarray(Image.open(out).convert("L"))
    assert img.shape == (50, 150)
    for k in range(3):  # every cell holds its square: ink on its left side, paper in its middle
        cell = img[:, 50 * k:50 * (k + 1)]
        assert cell[10:40, 3:6].min() < 128 and cell[25, 25] == 255
    assert runner.invoke(main, ["render", data, "-o", str(tmp_path / "x.png"), "--index", "3"]).exit_code == 2
    assert runner.invoke(main, ["render", data, "-o", str(tmp_path / "x.jpg")]).exit_code == 2
    assert runner.invoke(main, ["render", data, "-o", str(tmp_path / "x.png"), "--index", "a"]).exit_code == 2
    assert runner.invoke(main, ["render", data, "-o", str(tmp_path / "x.png"), "--size", "100"]).exit_code == 2
    assert runner.invoke(main, ["render", str(SAMPLE), "-o", str(tmp_path / "x.png"), "--split", "test"]).exit_code == 2
    assert not (tmp_path / "x.png").exists()


def test_render_raw_inputs_draws_what_convert_keeps(tmp_path):
    inputs = [str(shared_data("quickdraw_raw_ndjson", "axe.ndjson"))]
    opts = ConvertOptions(epsilon=2.0, max_len=60)
    result = render_grid(inputs, str(tmp_path / "g.svg"), n=5, seed=3, opts=opts)
    kept = collect(inputs, opts).kept
    assert result.available == kept.n
    # the drawn paths are the kept sketches chosen: same number of strokes, in the same order
    paths = _svg_paths(tmp_path / "g.svg")
    for el, i in zip(paths, result.indices):
        assert el.get("d").count("M") == len(stroke3_to_polylines(kept.sketch(i)))


def test_cli_render_compare_on_raw_input(tmp_path):
    inputs = str(shared_data("quickdraw_raw_ndjson", "cactus.ndjson"))
    out = tmp_path / "cmp.svg"
    result = CliRunner().invoke(main, ["render", inputs, "-o", str(out), "-n", "3", "--compare", "4"])
    assert result.exit_code == 0, result.output
    texts = [el.text for el in ET.parse(out).getroot().iter() if el.tag.endswith("text")]
    assert len(texts) == 6
    for before, after in zip(texts[::2], texts[1::2]):
        n_before = int(before.split(": ")[1].split()[0])
        n_after = int(after.split(": ")[1].split()[0])
        assert after.startswith("eps 4: ") and n_after < n_before
    grid = ET.parse(out).getroot()
    assert float(grid.get("width")) == 4 * 128  # 6 cells: ceil(sqrt(6)) = 3 columns, made even so pairs share a row


def test_compare_refuses_stdin_which_it_would_read_twice(tmp_path):
    result = CliRunner().invoke(main, ["render", "-", "-o", str(tmp_path / "g.svg"), "--compare", "2"],
                                input='{"word": "a", "drawing": [[[0, 5], [0, 5]]]}\n')
    assert result.exit_code == 2 and "stdin" in result.output
