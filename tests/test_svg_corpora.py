"""SVG source on the real corpora in ../shared/data, and picture tests: the strokes lie where the SVG draws.

The default run takes a spread of files from each corpus (every k-th file, sorted); the `slow` test runs
`convert` over every SVG of all five corpora.
"""
import io
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sketchprep.convert import ConvertOptions, collect, process_batch
from sketchprep.sources import svg as svg_source
from sketchprep.sources.svg import read_files, svg_polylines
from sketchprep.strokes import stroke3_to_polylines

from conftest import shared_data

cairosvg = pytest.importorskip("cairosvg")
Image = pytest.importorskip("PIL.Image")
from PIL import ImageDraw, ImageFilter  # noqa: E402

CORPORA = ("kanjivg_svg", "lucide_icons_svg", "tabler_icons_svg", "tuberlin_sketch_svg", "resvg_svg_tests")
# resvg files that give no drawing, and why (a zero or negative root size: nothing is rendered)
RESVG_NO_DRAWING = {"structure/svg/negative-size.svg", "structure/svg/no-children.svg", "structure/svg/zero-size.svg"}


def spread(corpus: str, n: int) -> list[str]:
    files = sorted(str(f) for f in shared_data(corpus).rglob("*.svg"))
    return files[:: max(1, len(files) // n)][:n]


@pytest.mark.parametrize("corpus", CORPORA[:4])
def test_line_art_corpora_convert_without_problems(corpus):
    files = spread(corpus, 60)
    batch = read_files(list(enumerate(files)))
    assert [str(p) for p in batch.problems] == []
    assert batch.flat.n_drawings == len(files)


def test_every_resvg_test_file_converts_or_is_skipped_for_its_reason():
    root = shared_data("resvg_svg_tests")
    files = sorted(str(f) for f in root.rglob("*.svg"))
    for include_fills in (False, True):
        batch = read_files(list(enumerate(files)), include_fills=include_fills)
        skipped = {str(Path(p.path).relative_to(root)): p.reason for p in batch.problems}
        assert skipped == {name: "no_geometry" for name in RESVG_NO_DRAWING}
        assert batch.flat.n_drawings == len(files) - len(RESVG_NO_DRAWING)


def test_kanjivg_one_stroke_per_path_and_none_from_the_numbers():
    for f in spread("kanjivg_svg", 80):
        root = ET.parse(f).getroot()
        group = next(g for g in root.iter() if g.get("id", "").startswith("kvg:StrokePaths"))
        paths = [p.get("d") for p in group.iter() if p.tag.endswith("path")]
        numbers = [t for t in root.iter() if t.tag.endswith("text")]
        strokes = svg_polylines(open(f, "rb").read(), size=0)
        assert len(strokes) == len(paths) and numbers, f
        # each stroke starts where its path's moveto says
        for s, d in zip(strokes, paths):
            x, y = (float(v) for v in re.match(r"\s*M\s*([-\d.]+)[\s,]*([-\d.]+)", d).groups())
            assert np.allclose(s[0], [x, y]), f


def test_tabler_invisible_frame_is_skipped():
    for f in spread("tabler_icons_svg", 100):
        data = open(f, "rb").read()
        assert b'stroke="none" d="M0 0h24v24H0z"' in data, f
        for s in svg_polylines(data, size=0):
            box = np.ptp(s, axis=0)
            assert not (box[0] >= 24 - 1e-9 and box[1] >= 24 - 1e-9), f  # the 24x24 frame


@pytest.mark.slow
def test_every_corpus_file_converts_and_the_summary_names_each_skip():
    """All 2,430 files through `convert` (about 10 s of parsing)."""
    dirs = [str(shared_data(c)) for c in CORPORA]
    collected = collect(dirs, ConvertOptions(workers=1))
    report = collected.report
    assert report.read == len(collected.files)
    assert sorted(p.path.split("resvg_svg_tests/")[1] for p in report.problems) == sorted(RESVG_NO_DRAWING)
    assert all(p.reason == "no_geometry" for p in report.problems)


# ---------------------------------------------------------------------------------------------------
# Pictures: our strokes against a rendering of the same SVG


def ink(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[:, :, 3] > 127


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * radius + 1))) > 0


def stroked_as_svg(strokes: list[np.ndarray], width: float, height: float, stroke_width: float) -> bytes:
    """Our polylines as an SVG drawn like the source (round caps and joins) for cairosvg."""
    d = " ".join("M" + " L".join(f"{x:.3f} {y:.3f}" for x, y in (s if len(s) > 1 else np.vstack([s, s])))
                 for s in strokes)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"><path d="{d}" fill="none" '
            f'stroke="black" stroke-width="{stroke_width}" stroke-linecap="round" stroke-linejoin="round"/></svg>'
            ).encode()


# corpus, stroke width in px of the viewport, viewport size
LINE_ART = {"lucide_icons_svg": (2.0, 24), "tabler_icons_svg": (2.0, 24), "kanjivg_svg": (3.0, 109),
            "tuberlin_sketch_svg": (2.4194 * 1.24, 800)}


def compare(path: str, corpus: str, shift: float = 0.0):
    """(IoU of the source strokes' picture with the SVG's, fraction of the converted drawing's ink off the
    SVG's ink, fraction of the SVG's ink off the converted drawing's), rendered at 300 px by cairosvg."""
    width, side = LINE_ART[corpus]
    data = open(path, "rb").read()
    reference = re.sub(rb"<text[^>]*>.*?</text>", b"", data, flags=re.S)  # text is skipped by design
    scale = 300 / side
    theirs = ink(cairosvg.svg2png(bytestring=reference, scale=scale))
    batch = read_files([(0, path)])
    source = [s + shift for s in batch.flat.drawing(0)]
    ours = ink(cairosvg.svg2png(bytestring=stroked_as_svg(source, side, side, width), scale=scale))
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    # the converted drawing (normalised to 255, RDP at 2, rounded), mapped back to the SVG's frame
    pts = batch.flat.points
    lo, extent = pts.min(axis=0), np.ptp(pts, axis=0).max()
    result = process_batch(batch, ConvertOptions())
    converted = [s / 255 * extent + lo + shift for s in stroke3_to_polylines(result.kept.sketch(0).astype(float))]
    drawn = ink(cairosvg.svg2png(bytestring=stroked_as_svg(converted, side, side, width), scale=scale))
    tolerance = int(np.ceil((2.0 + 0.5) / 255 * extent * scale)) + 1  # epsilon + rounding, in pixels
    extra = (drawn & ~dilate(theirs, tolerance)).sum() / drawn.sum()
    missing = (theirs & ~dilate(drawn, tolerance)).sum() / theirs.sum()
    return iou, extra, missing


@pytest.mark.parametrize("corpus, n", [("lucide_icons_svg", 12), ("tabler_icons_svg", 12), ("kanjivg_svg", 12),
                                       ("tuberlin_sketch_svg", 3)])
def test_picture_strokes_lie_where_the_svg_draws_them(corpus, n):
    for f in spread(corpus, n):
        iou, extra, missing = compare(f, corpus)
        # KanjiVG draws a few dots as filled circles, which outlines do not fill
        assert iou > (0.85 if corpus == "kanjivg_svg" else 0.93), (f, iou)
        assert extra < 0.005 and missing < 0.005, (f, extra, missing)


def test_picture_comparison_notices_a_shift_of_half_a_stroke_width():
    f = spread("lucide_icons_svg", 1)[0]
    iou, extra, missing = compare(f, "lucide_icons_svg", shift=1.0)
    assert iou < 0.7


# resvg's reference PNGs: what resvg draws for each test; outlines of fills included (--include-fills)
RESVG_NOT_COMPARABLE = {
    # the gradient starts white, so part of the rect's outline lies on white pixels
    "structure/svg/funcIRI-parsing.svg", "structure/svg/funcIRI-with-invalid-characters.svg",
    # no size and no viewBox: the canvas size is the renderer's choice
    "structure/svg/no-size.svg",
}


def test_picture_resvg_reference_pngs():
    root = shared_data("resvg_svg_tests")
    checked = recalled = 0
    for f in sorted(root.rglob("*.svg")):
        name = str(f.relative_to(root))
        if name in RESVG_NO_DRAWING or name in RESVG_NOT_COMPARABLE:
            continue
        data = f.read_bytes()
        png = Image.open(f.with_suffix(".png")).convert("RGBA")
        png = np.asarray(Image.alpha_composite(Image.new("RGBA", png.size, "white"), png).convert("RGB"))
        theirs = (png.astype(int) < 200).any(axis=2)
        height, width = theirs.shape
        strokes = svg_polylines(data, size=0, include_fills=True)
        root_el = svg_source.parse_xml(data)
        box = [float(v) for v in root_el.get("viewBox", "0 0 0 0").replace(",", " ").split()]
        w = float(root_el.get("width", box[2]))
        scale = width / w  # resvg renders the viewport at a fixed width
        pts = np.concatenate(strokes) * scale
        ij = np.clip(np.floor(pts).astype(int), 0, [width - 1, height - 1])
        on_ink = dilate(theirs, 2)[ij[:, 1], ij[:, 0]].mean()
        assert on_ink > 0.99, (name, on_ink)  # nothing where resvg draws nothing
        checked += 1
        if data.count(b"<svg") > 1:
            continue  # a nested viewport cuts fills along its border, which no outline traces
        # every edge resvg draws (of a fill or of a stroke) is near our strokes; edges on the image border
        # are where the viewport cuts, which our strokes do not trace
        pad = np.pad(theirs, 1)
        edges = theirs & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
        edges[[0, -1], :] = edges[:, [0, -1]] = False
        lines = Image.new("L", (width, height), 0)
        for s in strokes:
            s = s * scale
            ImageDraw.Draw(lines).line([tuple(p) for p in (s if len(s) > 1 else np.vstack([s, s]))], fill=255)
        widths = [float(w) for w in re.findall(rb'stroke-width="([\d.]+)"', data)] or [1.0]
        covered = dilate(np.asarray(lines) > 0, int(np.ceil(max(widths) * scale / 2)) + 2)
        missing = (edges & ~covered).sum() / edges.sum()
        assert missing < 0.01, (name, missing)
        recalled += 1
    assert checked >= 110 and recalled >= 100
