"""Drawing grids of stroke-3 sketches as SVG (no dependency) or PNG (Pillow).

Every sketch gets a square cell: it is scaled uniformly so the larger side of its bounding box
fills the cell less a margin (`PAD` of the cell on each side) and centred by its bounds (the
reference's `make_grid_svg` centres the same way). Cells are laid out row by row, `columns` per
row; an optional label line sits under each cell. SVG and PNG share the layout, so they match.
"""
from __future__ import annotations

import colorsys
import math
import os
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from .dataset import atomic_output
from .errors import OptionError
from .limits import GRID_PIXELS
from .strokes import stroke3_to_polylines

PAD = 0.08           # margin on each side of a drawing, as a fraction of the cell
SUPERSAMPLE = 3      # PNG: draw at 3x and downsample, which anti-aliases Pillow's hard-edged lines
INK = (0, 0, 0)
PAPER = (255, 255, 255)
LABEL_INK = (90, 90, 90)
BORDER = (200, 200, 200)
EMPTY_MARK = "empty"  # written in grey in the cell of a drawing with no point (a model that ended at once)


@dataclass
class Cell:
    """One laid-out drawing: its strokes in canvas coordinates and the label under it.

    strokes: list of (k, 2) float64 arrays (canvas pixels, y down); x0, y0: the cell's top-left corner.
    """

    strokes: list[np.ndarray]
    x0: float
    y0: float
    label: str | None


@dataclass
class Grid:
    """A laid-out grid: canvas size in pixels, cell size, label band height and the cells."""

    width: float
    height: float
    cell: float
    label_height: float
    cells: list[Cell]


def fit_to_cell(stroke3: np.ndarray, cell: float, pad: float = PAD) -> list[np.ndarray]:
    """The sketch's strokes as (k, 2) float64 arrays in a cell of side `cell` whose corner is (0, 0):
    scaled uniformly so the larger bounding-box side is `cell * (1 - 2 * pad)`, centred by its bounds.

    Points that are not finite are left out. A sketch of a single point (zero extent) is centred unscaled.
    """
    strokes = [p[np.isfinite(p).all(axis=1)] for p in stroke3_to_polylines(stroke3)]
    strokes = [p for p in strokes if len(p)]
    if not strokes:
        return []
    pts = np.concatenate(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float((hi - lo).max())
    scale = cell * (1 - 2 * pad) / extent if extent > 0 else 1.0
    centre = (lo + hi) / 2
    return [(p - centre) * scale + cell / 2 for p in strokes]


def layout_grid(sketches: list[np.ndarray], columns: int | None = None, cell: float = 128.0,
                labels: list[str] | None = None) -> Grid:
    """Place each stroke-3 sketch ((n, 3), int or float) in its cell; `columns` defaults to a square-ish grid."""
    n = len(sketches)
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} sketches")
    if cell <= 0:
        raise ValueError("cell must be > 0")
    columns = max(1, int(columns) if columns else math.ceil(math.sqrt(max(n, 1))))
    rows = max(1, math.ceil(n / columns))
    label_height = max(12.0, round(cell * 0.12)) if labels is not None else 0.0
    pitch = cell + label_height
    cells = []
    for i, sketch in enumerate(sketches):
        x0, y0 = (i % columns) * cell, (i // columns) * pitch
        strokes = [p + (x0, y0) for p in fit_to_cell(np.asarray(sketch), cell)]
        cells.append(Cell(strokes, x0, y0, None if labels is None else str(labels[i])))
    return Grid(columns * cell, rows * pitch, cell, label_height, cells)


def stroke_colors(n_strokes: int) -> list[tuple[int, int, int]]:
    """One colour per stroke, running through the hues from red (first) to violet (last), so order shows."""
    out = []
    for k in range(n_strokes):
        hue = 0.78 * k / max(n_strokes - 1, 1)
        r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 0.8)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


def _line_width(cell: float) -> float:
    return max(1.0, cell / 80)


def grid_svg(grid: Grid, color_by_stroke: bool = False, line_width: float | None = None,
             borders: bool = False) -> str:
    """The grid as an SVG document (absolute coordinates, one path per drawing or per stroke)."""
    lw = _line_width(grid.cell) if line_width is None else line_width
    w, h = grid.width, grid.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(w)}" height="{_num(h)}" '
           f'viewBox="0 0 {_num(w)} {_num(h)}">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<g fill="none" stroke="black" stroke-width="{_num(lw)}" stroke-linecap="round" stroke-linejoin="round">']
    for c in grid.cells:
        if not c.strokes:
            continue
        if color_by_stroke:
            for p, rgb in zip(c.strokes, stroke_colors(len(c.strokes))):
                out.append(f'<path stroke="#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}" d="{_path_data([p])}"/>')
        else:
            out.append(f'<path d="{_path_data(c.strokes)}"/>')
    out.append("</g>")
    if borders:
        out.append('<g fill="none" stroke="#c8c8c8" stroke-width="1">')
        out += [f'<rect x="{_num(c.x0 + 0.5)}" y="{_num(c.y0 + 0.5)}" width="{_num(grid.cell - 1)}" '
                f'height="{_num(grid.cell - 1)}"/>' for c in grid.cells]
        out.append("</g>")
    out += [f'<text x="{_num(c.x0 + grid.cell / 2)}" y="{_num(c.y0 + grid.cell / 2)}" font-family="sans-serif" '
            f'font-size="{_num(grid.cell / 8)}" fill="#a0a0a0" text-anchor="middle">{EMPTY_MARK}</text>'
            for c in grid.cells if not c.strokes]
    if grid.label_height:
        size = grid.label_height * 0.75
        out.append(f'<g font-family="sans-serif" font-size="{_num(size)}" fill="#5a5a5a" text-anchor="middle">')
        for c in grid.cells:
            if c.label:
                out.append(f'<text x="{_num(c.x0 + grid.cell / 2)}" y="{_num(c.y0 + grid.cell + size)}">'
                           f'{escape(c.label)}</text>')
        out.append("</g>")
    out.append("</svg>\n")
    return "\n".join(out)


def _num(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _path_data(strokes: list[np.ndarray]) -> str:
    parts = []
    for p in strokes:
        coords = [f"{_num(x)} {_num(y)}" for x, y in p]
        if len(coords) == 1:  # a dot: a zero-length segment, which round caps draw as a disc
            coords.append(coords[0])
        parts.append("M" + coords[0] + " L" + " ".join(coords[1:]))
    return " ".join(parts)


def grid_png(grid: Grid, color_by_stroke: bool = False, line_width: float | None = None, borders: bool = False):
    """The grid as a Pillow RGB image (anti-aliased by drawing at SUPERSAMPLE x and downsampling)."""
    from PIL import Image, ImageDraw

    lw = _line_width(grid.cell) if line_width is None else line_width
    ss = SUPERSAMPLE
    width, height = max(1, math.ceil(grid.width)), max(1, math.ceil(grid.height))
    if width * height > GRID_PIXELS:   # drawn at ss x ss that size: checked before Pillow allocates it
        raise OptionError(f"a PNG grid of {width} x {height} pixels is over the bound of {GRID_PIXELS:,} pixels: "
                          "draw fewer or smaller cells (-n, --columns, --cell), or write an .svg")
    img = Image.new("RGB", (width * ss, height * ss), PAPER)
    draw = ImageDraw.Draw(img)
    w = max(1, round(lw * ss))
    r = w / 2
    for c in grid.cells:
        colors = stroke_colors(len(c.strokes)) if color_by_stroke else [INK] * len(c.strokes)
        for p, color in zip(c.strokes, colors):
            q = p * ss
            if len(q) > 1:
                draw.line([tuple(v) for v in q], fill=color, width=w, joint="curve")
            # Pillow lines have square ends: round caps (and dots) are discs at the ends
            for x, y in (q[0], q[-1]):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
    img = img.reduce(ss) if ss > 1 else img
    draw = ImageDraw.Draw(img)
    for c in grid.cells:
        if borders:
            draw.rectangle((c.x0, c.y0, c.x0 + grid.cell - 1, c.y0 + grid.cell - 1), outline=BORDER)
        if not c.strokes:
            draw.text((c.x0 + grid.cell / 2, c.y0 + grid.cell / 2), EMPTY_MARK, fill=BORDER,
                      font=_font(max(8, round(grid.cell / 8))), anchor="mm")
    if grid.label_height:
        draw = ImageDraw.Draw(img)
        font = _font(round(grid.label_height * 0.75))
        for c in grid.cells:
            if c.label:
                draw.text((c.x0 + grid.cell / 2, c.y0 + grid.cell + grid.label_height / 2), c.label,
                          fill=LABEL_INK, font=font, anchor="mm")
    return img


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def save_grid(sketches: list[np.ndarray], path: str | os.PathLike, *, columns: int | None = None,
              cell: float = 128.0, color_by_stroke: bool = False, labels: list[str] | None = None,
              line_width: float | None = None, borders: bool = False) -> None:
    """Write a grid of stroke-3 sketches (each (n, 3), int or float) to `path`, atomically.

    The format follows the extension: `.svg` (plain text, no dependency) or `.png` (Pillow).
    `columns` defaults to a square-ish grid; `cell` is the side of each cell in pixels;
    `color_by_stroke` colours strokes from red (first) to violet (last); `labels` (one per sketch)
    are written under the cells; `line_width` defaults to cell / 80 (at least 1 pixel); `borders`
    outlines every cell in grey. A drawing with no point gets a grey "empty" mark in its cell.
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in (".svg", ".png"):
        raise OptionError(f"{path}: the output must end in .svg or .png")
    grid = layout_grid(list(sketches), columns, cell, labels)
    if ext == ".svg":
        text = grid_svg(grid, color_by_stroke, line_width, borders)
        with atomic_output(path) as f:
            f.write(text.encode("utf-8"))
    else:
        img = grid_png(grid, color_by_stroke, line_width, borders)
        with atomic_output(path) as f:
            img.save(f, format="PNG")


# ---------------------------------------------------------------------------------------------------
# `sketchprep render`: pick drawings from a dataset or from raw inputs and draw them


@dataclass
class RenderResult:
    """What `render_grid` drew: `indices` into the `available` drawings of `source`."""

    path: str
    source: str
    available: int
    indices: list[int]
    compare: float | None


def choose(available: int, n: int, seed: int, indices: list[int] | None = None) -> np.ndarray:
    """Indices to draw: the given ones (checked), else min(n, available) distinct ones drawn with `seed`, ascending."""
    if indices:
        bad = [i for i in indices if not -available <= i < available]
        if bad:
            raise OptionError(f"--index {bad[0]} is out of range: there are {available} drawings (0..{available - 1})")
        return np.array([i % available for i in indices], dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(available, size=min(n, available), replace=False))


def render_grid(inputs: list[str], output: str, *, split: str | None = None, n: int = 64, seed: int = 0,
                indices: list[int] | None = None, compare: float | None = None, opts=None,
                columns: int | None = None, cell: float = 128.0, color_by_stroke: bool = False,
                labels: bool = False, progress=None) -> RenderResult:
    """Draw `n` sketches (or those at `indices`) of one `.npz` split, or of raw inputs as `convert` with
    `opts` (a ConvertOptions) would keep them, into `output` (.svg or .png).

    `compare=EPS`: each drawing beside its RDP simplification at EPS, labelled with both point counts.
    For raw inputs the left one is the drawing before RDP (normalised, resampled, rounded); for a
    `.npz` it is the stored sketch and the right one is it simplified in its own units (not rounded).
    """
    from .convert import ConvertOptions
    from .stats import npz_input

    opts = opts if opts is not None else ConvertOptions()
    path = npz_input(inputs)
    if path is None and split is not None:
        raise OptionError("--split applies to a DATA.npz input, not to raw drawings")
    if compare is not None and compare <= 0:
        raise OptionError("--compare needs an epsilon > 0")
    if path is not None:
        originals, names, source = _npz_sketches(path, split or "test")
        chosen = choose(len(originals), n, seed, indices)
        left = [np.asarray(originals[i]) for i in chosen]
        right = _simplify_in_place(left, compare, opts.distance) if compare is not None else None
    else:
        originals, names, source, right_all = _input_sketches(inputs, opts, compare, progress)
        chosen = choose(len(originals), n, seed, indices)
        left = [originals[i] for i in chosen]
        right = [right_all[i] for i in chosen] if compare is not None else None
    texts = None
    if labels or compare is not None:
        texts = [f"{i}" + (f" {names[i]}" if names is not None else "") + f": {len(s)} pts"
                 for i, s in zip(chosen, left)]
    if compare is None:
        save_grid(left, output, columns=columns, cell=cell, color_by_stroke=color_by_stroke, labels=texts)
    else:
        pairs = [s for pair in zip(left, right) for s in pair]
        pair_texts = []
        for text, s in zip(texts, right):
            over = " (over --max-len)" if path is None and len(s) > opts.max_len else ""
            pair_texts += [text, f"eps {compare:g}: {len(s)} pts{over}"]
        if columns is None:
            columns = math.ceil(math.sqrt(len(pairs)))
        columns += columns % 2  # a drawing and its simplification share a row
        save_grid(pairs, output, columns=columns, cell=cell, color_by_stroke=color_by_stroke, labels=pair_texts)
    return RenderResult(str(output), source, len(originals), [int(i) for i in chosen], compare)


def _npz_sketches(path: str, split: str):
    from .dataset import load_dataset

    ds = load_dataset(path)
    sketches = ds.splits[split]
    names = None
    if split in ds.labels and ds.classes:
        names = [ds.classes[i] if 0 <= i < len(ds.classes) else f"#{i}" for i in np.asarray(ds.labels[split])]
    return sketches, names, f"from the {split} split of {path}"


def _input_sketches(inputs: list[str], opts, compare: float | None, progress):
    """Raw inputs through the converter: the kept sketches (or, with compare, every drawing before RDP and
    at epsilon `compare`, matched by position in the input stream)."""
    from dataclasses import replace

    from .convert import collect
    from .stats import NO_LIMIT

    if compare is None:
        kept = collect(inputs, opts, progress).kept
        sketches = [kept.sketch(i) for i in range(kept.n)]
        labelled = len(set(kept.labels.tolist())) > 1
        return sketches, kept.labels.tolist() if labelled else None, "from the inputs, as convert keeps them", None
    if "-" in inputs:
        raise OptionError("--compare reads the inputs twice, and '-' (stdin) can be read only once: save it to a file")
    unlimited = replace(opts, max_len=NO_LIMIT, fit=False)
    before = collect(inputs, replace(unlimited, epsilon=0.0), progress).kept
    after = collect(inputs, replace(unlimited, epsilon=compare)).kept
    _, ib, ia = np.intersect1d(before.order, after.order, return_indices=True)
    labelled = len(set(before.labels.tolist())) > 1
    names = before.labels[ib].tolist() if labelled else None
    return ([before.sketch(i) for i in ib], names, "from the inputs", [after.sketch(i) for i in ia])


def _simplify_in_place(sketches: list[np.ndarray], epsilon: float, distance: str) -> list[np.ndarray]:
    """RDP each stroke-3 sketch at `epsilon` in its own units; float stroke-3 out (a stored sketch is not
    re-rounded, so float datasets show the simplification alone). Empty sketches stay empty."""
    from .simplify import simplify_flat
    from .strokes import flatten

    out = [np.zeros((0, 3)) for _ in sketches]
    todo = [i for i, s in enumerate(sketches) if len(s)]
    if not todo:
        return out
    flat = simplify_flat(flatten([stroke3_to_polylines(sketches[i]) for i in todo]), epsilon, distance)
    # strokes.polylines_to_stroke3 rounds to int16; here the points are differenced as they are
    for j, i in enumerate(todo):
        strokes = flat.drawing(j)
        points = np.concatenate(strokes)
        rows = np.zeros((len(points), 3))
        rows[:, :2] = np.diff(points, axis=0, prepend=np.zeros((1, 2)))
        rows[np.cumsum([len(s) for s in strokes]) - 1, 2] = 1
        out[i] = rows
    return out
