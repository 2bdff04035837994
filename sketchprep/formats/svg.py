"""SVG: one file per drawing, `OUT/SPLIT/WORD/ID.svg`.

Each stroke is one `<path>` of its points (`M x0 y0 L x1 y1 ...`; a one-point stroke is `M x y Z`, which
round caps draw as a dot) in the dataset's coordinates: the viewBox runs from (0, 0) to the `convert --size`
box, grown to the drawing's bounds where it does not hold them, with width and height equal to its size, so
one user unit is one px and no point moves (but a drawing with negative coordinates, which `convert` never
writes, is read back shifted by its minimum, the viewBox's corner). The drawing's id and word
are attributes of the root element (`sketchprep:id`, `sketchprep:word`; a control character, which XML cannot
hold, becomes U+FFFD), because a file or folder name can only hold a cleaned form of them: `convert OUT/SPLIT ... --epsilon 0 --size 0` reads them back, with every
drawing's stroke-3 unchanged.
"""
from __future__ import annotations

import re
from typing import Callable
from xml.sax.saxutils import quoteattr

import numpy as np

from ..dataset import SketchDataset
from ..outputs import atomic_folder
from ..sources.svg import EXPORT_NS
from .common import absolute_points, all_splits, dataset_box, drawing_stems, file_stems, stroke_offsets
from .export import ExportOptions, ExportSummary


# characters XML 1.0 cannot hold at all, not even escaped
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """`text` as an XML attribute value: quoted and escaped, a character XML cannot hold replaced by U+FFFD."""
    return quoteattr(_NOT_XML.sub("\ufffd", text))


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def document(xy: np.ndarray, strokes: list[tuple[int, int]], drawing_id: str, word: str, box: float) -> str:
    """One drawing's SVG. xy: (n, 2) absolute points; strokes: (start, end) rows of each stroke."""
    lo = np.minimum(xy.min(axis=0), 0.0) if len(xy) else np.zeros(2)  # below 0 only where the drawing goes
    hi = np.maximum(xy.max(axis=0), box) if len(xy) else np.full(2, box)
    w, h = np.maximum(hi - lo, 1.0)
    width = max(w, h) / 128  # about 2 px in a 255 box
    paths = []
    for a, b in strokes:
        pts = [f"{_number(x)} {_number(y)}" for x, y in xy[a:b]]
        d = f"M{pts[0]} Z" if len(pts) == 1 else f"M{pts[0]} L{' '.join(pts[1:])}"
        paths.append(f'<path d="{d}"/>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:sketchprep="{EXPORT_NS}" '
            f'sketchprep:id={_xml_text(drawing_id)} sketchprep:word={_xml_text(word)} '
            f'width="{_number(w)}" height="{_number(h)}" '
            f'viewBox="{_number(lo[0])} {_number(lo[1])} {_number(w)} {_number(h)}">\n'
            f'<g fill="none" stroke="black" stroke-width="{width:.3g}" stroke-linecap="round" '
            f'stroke-linejoin="round">\n' + "\n".join(paths) + "\n</g>\n</svg>\n")


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    box = dataset_box(ds)
    word_dirs = file_stems(parts[0].classes)
    with atomic_folder(out) as tmp:
        for part in parts:
            (tmp / part.name).mkdir()
            names = drawing_stems(part)
            for label in np.unique(part.labels):
                (tmp / part.name / word_dirs[label]).mkdir()
            for start, stop, block in part.blocks():
                xy = absolute_points(block.rows, block.row_offsets)
                so = stroke_offsets(block.rows, block.row_offsets)
                first = np.searchsorted(so, block.row_offsets)
                words = block.words
                for d in range(block.n):
                    strokes = [(so[s], so[s + 1]) for s in range(first[d], first[d + 1])]
                    a, b = block.row_offsets[d], block.row_offsets[d + 1]
                    text = document(xy[a:b] if b > a else xy[:0], [(s - a, e - a) for s, e in strokes],
                                    str(block.ids[d]), str(words[d]), box)
                    path = tmp / part.name / word_dirs[block.labels[d]] / f"{names[start + d]}.svg"
                    path.write_text(text, encoding="utf-8")
                progress(stop - start)
    return ExportSummary(out, "svg", {p.name: p.n for p in parts})

