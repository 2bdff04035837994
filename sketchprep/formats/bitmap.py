"""bitmap: per split a `(N, S, S)` uint8 array of images drawn as Google drew its `numpy_bitmap` set.

Google's recipe (the `vector_to_raster` snippet its Quick, Draw! README links), done with cairo itself: the
drawing in Google's 0-255 frame (a `convert --size S` dataset is scaled by 255 / S; a dataset without a box
has each drawing aligned to 0 and its larger extent scaled to 255), centred by `(256 - max_xy) / 2` per
axis; an ARGB32 surface of side S, best antialiasing, round caps and joins, a line 16 units wide, scaled by
S / (256 + 2 * 16 + 16) and moved by 24 units (padding plus half a line); black background, white ink,
every stroke stroked on its own (`move_to` its first point, `line_to` every point, `stroke`); the image is
the first byte of each pixel. Keys: `<split>` (the images), `<split>_ids`, `<split>_labels`, `meta`.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .. import __version__
from ..dataset import SketchDataset
from ..outputs import atomic_output
from .common import (SplitArrays, SplitView, StreamedArray, absolute_points, all_splits, block_size, dataset_box,
                     stroke_offsets, write_members)
from .export import ExportOptions, ExportSummary

GOOGLE_SIDE = 256.0      # Google's original_side
LINE_DIAMETER = 16.0     # in the 256 frame
PADDING = 16.0


class Rasterizer:
    """One cairo surface of side `side`, reused for every drawing."""

    def __init__(self, side: int):
        import cairocffi as cairo

        self.side = side
        self.surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, side, side)
        ctx = cairo.Context(self.surface)
        ctx.set_antialias(cairo.ANTIALIAS_BEST)
        ctx.set_line_cap(cairo.LINE_CAP_ROUND)
        ctx.set_line_join(cairo.LINE_JOIN_ROUND)
        ctx.set_line_width(LINE_DIAMETER)
        total_padding = PADDING * 2.0 + LINE_DIAMETER
        scale = side / (GOOGLE_SIDE + total_padding)
        ctx.scale(scale, scale)
        ctx.translate(total_padding / 2.0, total_padding / 2.0)
        self.ctx = ctx

    def draw(self, strokes: list[np.ndarray]) -> np.ndarray:
        """(S, S) uint8 image of strokes ((k, 2) float arrays in Google's 0-255 frame)."""
        ctx = self.ctx
        ctx.set_source_rgb(0.0, 0.0, 0.0)
        ctx.paint()
        if strokes:
            bbox = np.concatenate(strokes).max(axis=0)
            offset = (GOOGLE_SIDE - bbox) / 2.0
            ctx.set_source_rgb(1.0, 1.0, 1.0)
            for stroke in strokes:
                pts = (stroke + offset).tolist()
                ctx.move_to(*pts[0])
                for x, y in pts:
                    ctx.line_to(x, y)
                ctx.stroke()
        self.surface.flush()
        stride = self.surface.get_stride()
        data = np.frombuffer(self.surface.get_data(), dtype=np.uint8).reshape(self.side, stride)
        return data[:, 0:self.side * 4:4].copy()


def google_frame(part: SplitArrays, box: float) -> np.ndarray:
    """(R, 2) absolute points of a block in Google's 0-255 frame."""
    xy = absolute_points(part.rows, part.row_offsets)
    if box > 0:
        return xy * (255.0 / box)
    lengths = np.diff(part.row_offsets)
    nonempty = lengths > 0
    if not nonempty.any():
        return xy
    starts = part.row_offsets[:-1][nonempty]
    lo = np.zeros((part.n, 2))
    hi = np.zeros((part.n, 2))
    lo[nonempty] = np.minimum.reduceat(xy, starts)
    hi[nonempty] = np.maximum.reduceat(xy, starts)
    extent = (hi - lo).max(axis=1)
    scale = np.where(extent > 0, 255.0 / np.where(extent > 0, extent, 1.0), 1.0)
    return (xy - np.repeat(lo, lengths, axis=0)) * np.repeat(scale, lengths)[:, None]


def images(part: SplitView, raster: Rasterizer, box: float, progress: Callable[[int], None]):
    """Yield (start, stop, (stop - start, S, S) uint8 images) block by block."""
    for start, stop, block in part.blocks(block_size(raster.side * raster.side)):
        xy = google_frame(block, box)
        so = stroke_offsets(block.rows, block.row_offsets)
        first = np.searchsorted(so, block.row_offsets)
        out = np.empty((block.n, raster.side, raster.side), dtype=np.uint8)
        for d in range(block.n):
            out[d] = raster.draw([xy[so[s]:so[s + 1]] for s in range(first[d], first[d + 1])])
        progress(stop - start)
        yield start, stop, out


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    raster = Rasterizer(opts.side)
    box = dataset_box(ds)
    meta = {"tool": "sketchprep", "version": __version__, "source": ds.path, "classes": parts[0].classes,
            "size": opts.side, "format": "uint8 images, white (255) ink on black (0), rendered as Google's "
            "numpy_bitmap (cairo; line diameter 16 and padding 16 in the 256 frame; each stroke on its own)",
            "dataset_meta": ds.meta}

    def members():
        for p in parts:
            stream = (block for _, _, block in images(p, raster, box, progress))
            yield p.name, StreamedArray((p.n, opts.side, opts.side), np.uint8, stream)
            yield f"{p.name}_ids", p.ids if p.n else np.zeros(0, "<U1")
            yield f"{p.name}_labels", p.labels
        yield "meta", np.array(json.dumps(meta, sort_keys=True))

    with atomic_output(out) as f:
        write_members(f, members())
    return ExportSummary(out, "bitmap", {p.name: p.n for p in parts})
