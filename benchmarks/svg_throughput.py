"""SVG throughput of `sketchprep convert` against the naive svgpathtools + rdp loop, same files, same run.

The naive loop is what the sketch-rnn README points people to: `svgpathtools.svg2paths` on each file,
every path's continuous subpaths sampled at a 1-unit step of the 0-255 frame (segment lengths from
svgpathtools), the `rdp` package at epsilon 2, then stroke-3. It ignores transforms, `<use>`, units and
visibility (see the README's "SVG input"), so it is fast for what it does not do; it is the baseline,
not a reference for the output.

Printed per corpus and in total, all measured in this run on the same files:
- convert: `sketchprep.convert.collect` in this process (1 worker): parse, sample, normalise, RDP,
  quantise, stroke-3 (what every worker of `sketchprep convert` does), files/s;
- naive: the loop above, files/s, and how many files it raised on;
- the ratio convert / naive (> 1: convert is faster);
- for scale, `svg2paths` alone (parsing, no sampling and no RDP) in files/s: most of the naive loop's time
  is the pure-Python `rdp` package.
Then the parser measurement behind the choice of svgelements: on resvg's conformance files, how many
files' geometry lies on what resvg's reference PNG draws (every sampled point within 2 px of ink; fill
outlines included), for `sketchprep.sources.svg` and for `svgpathtools.svg2paths`.
Each method runs --repeat times over the files; the best pass counts (the machine is shared and noisy).

    python benchmarks/svg_throughput.py                       # 150 files of each corpus
    python benchmarks/svg_throughput.py --limit 0 --repeat 1  # every file (the naive loop takes minutes)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, collect  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
CORPORA = ("kanjivg_svg", "lucide_icons_svg", "tabler_icons_svg", "tuberlin_sketch_svg", "resvg_svg_tests")


def naive_convert(path: str, size: float = 255.0, epsilon: float = 2.0) -> np.ndarray:
    """svg2paths -> sample each segment at ~1 unit of the final frame -> rdp -> stroke-3 (the naive loop)."""
    from rdp import rdp
    from svgpathtools import svg2paths

    paths, _ = svg2paths(path)
    boxes = [p.bbox() for p in paths if len(p)]
    if not boxes:
        raise ValueError("no paths")
    xmin, xmax = min(b[0] for b in boxes), max(b[1] for b in boxes)
    ymin, ymax = min(b[2] for b in boxes), max(b[3] for b in boxes)
    scale = size / max(xmax - xmin, ymax - ymin, 1e-9)
    strokes = []
    for p in paths:
        for sub in p.continuous_subpaths():
            pts = [sub[0].start]
            for seg in sub:
                n = max(1, math.ceil(seg.length() * scale))
                pts += list(seg.point(np.linspace(0, 1, n + 1)[1:]))
            xy = (np.array([[z.real, z.imag] for z in pts]) - [xmin, ymin]) * scale
            strokes.append(np.asarray(rdp(xy, epsilon=epsilon)))
    absolute = np.rint(np.concatenate(strokes))
    pen = np.concatenate([np.eye(1, len(s), len(s) - 1)[0] for s in strokes])
    return np.column_stack([np.diff(absolute, axis=0, prepend=0), pen]).astype(np.int16)


def time_convert(files: list[str]) -> tuple[float, int]:
    opts = ConvertOptions(workers=1)
    t = time.perf_counter()
    collected = collect(files, opts)
    return time.perf_counter() - t, collected.report.bad_input


def time_naive(files: list[str], parse_only: bool = False) -> tuple[float, int]:
    from svgpathtools import svg2paths

    errors = 0
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdp warns on every call with numpy >= 2
        for f in files:
            try:
                svg2paths(f) if parse_only else naive_convert(f)
            except Exception:  # the naive loop raises on units, missing attributes, odd path data...
                errors += 1
    return time.perf_counter() - t, errors


def resvg_agreement() -> dict[str, list[int]]:
    """{method: [files whose points all lie on resvg's ink, files with points off it, files it raised on]}."""
    from PIL import Image, ImageFilter
    from svgpathtools import svg2paths

    from sketchprep.sources.svg import parse_xml, svg_polylines

    def sketchprep_points(f: Path) -> np.ndarray:
        return np.concatenate(svg_polylines(f.read_bytes(), size=0, include_fills=True))

    def svgpathtools_points(f: Path) -> np.ndarray:
        paths, _ = svg2paths(str(f))
        t = np.linspace(0, 1, 20)
        return np.array([[z.real, z.imag] for p in paths for seg in p for z in seg.point(t)]).reshape(-1, 2)

    counts = {"sketchprep": [0, 0, 0], "svgpathtools": [0, 0, 0]}
    for f in sorted((SHARED / "resvg_svg_tests").rglob("*.svg")):
        png = Image.open(f.with_suffix(".png")).convert("RGBA")
        png = np.asarray(Image.alpha_composite(Image.new("RGBA", png.size, "white"), png).convert("RGB"))
        ink = Image.fromarray(((png.astype(int) < 200).any(axis=2) * 255).astype(np.uint8))
        ink = np.asarray(ink.filter(ImageFilter.MaxFilter(5))) > 0
        root = parse_xml(f.read_bytes())
        width = root.get("width", (root.get("viewBox") or "0 0 0").replace(",", " ").split()[2])
        try:
            scale = ink.shape[1] / float(width)
        except (ValueError, ZeroDivisionError):
            continue  # no size: the canvas is the renderer's choice
        for name, points in (("sketchprep", sketchprep_points), ("svgpathtools", svgpathtools_points)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pts = points(f) * scale
            except Exception:  # svgpathtools raises on units, missing attributes...; ours on files with no drawing
                counts[name][2] += 1
                continue
            ij = np.clip(np.floor(pts).astype(int), 0, [ink.shape[1] - 1, ink.shape[0] - 1])
            counts[name][0 if len(pts) and ink[ij[:, 1], ij[:, 0]].mean() > 0.99 else 1] += 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=150, help="files per corpus (0: all)")
    ap.add_argument("--repeat", type=int, default=2, help="passes per method; the best one counts")
    ap.add_argument("--corpus", action="append", choices=CORPORA, help="only these corpora (repeatable)")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the agreement with resvg's reference PNGs")
    args = ap.parse_args()
    rows = []
    for corpus in args.corpus or CORPORA:
        files = sorted(str(f) for f in (SHARED / corpus).rglob("*.svg"))
        if args.limit:
            files = files[: args.limit]
        if not files:
            print(f"{corpus}: no files under {SHARED / corpus}", file=sys.stderr)
            continue
        time_convert(files[:5])  # warm imports and caches for both
        time_naive(files[:5])
        ours = min((time_convert(files) for _ in range(args.repeat)), key=lambda r: r[0])
        naive = min((time_naive(files) for _ in range(args.repeat)), key=lambda r: r[0])
        parse = min((time_naive(files, parse_only=True) for _ in range(args.repeat)), key=lambda r: r[0])
        rows.append((corpus, len(files), ours, naive, parse))
    print(f"{'corpus':<22}{'files':>7}{'convert f/s':>13}{'skipped':>9}{'naive f/s':>11}{'raised':>8}{'ratio':>8}"
          f"{'svg2paths f/s':>15}")
    for corpus, n, (t_ours, bad), (t_naive, raised), (t_parse, _) in rows:
        print(f"{corpus:<22}{n:>7}{n / t_ours:>13.1f}{bad:>9}{n / t_naive:>11.1f}{raised:>8}{t_naive / t_ours:>7.2f}x"
              f"{n / t_parse:>15.1f}")
    n = sum(r[1] for r in rows)
    t_ours, t_naive, t_parse = (sum(r[k][0] for r in rows) for k in (2, 3, 4))
    print(f"{'total':<22}{n:>7}{n / t_ours:>13.1f}{sum(r[2][1] for r in rows):>9}{n / t_naive:>11.1f}"
          f"{sum(r[3][1] for r in rows):>8}{t_naive / t_ours:>7.2f}x{n / t_parse:>15.1f}")
    print("convert: sketchprep.convert.collect, 1 worker (parse, sample, normalise, RDP, stroke-3); naive: "
          "svgpathtools.svg2paths + 1-unit sampling + rdp package; 'skipped'/'raised': files without a drawing")
    if (SHARED / "resvg_svg_tests").is_dir() and not args.no_accuracy:
        print("\nresvg conformance files: geometry on resvg's reference rendering / off it / raised")
        for name, (on, off, raised) in resvg_agreement().items():
            print(f"  {name:<14}{on:>5}{off:>5}{raised:>5}")


if __name__ == "__main__":
    main()
