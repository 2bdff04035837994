"""How close `export --format bitmap` comes to Google's own 28x28 Quick, Draw! bitmaps, and a picture of it.

Google's `numpy_bitmap` files hold, in row i, the image of line i of the simplified ndjson of the class. The
shared fixtures have rows 0-24 of four classes (../shared/fixtures/numpy_bitmap) and the data folder the
matching 25 lines of each class. This converts those 100 drawings (at the defaults, which leave Google's
simplified drawings unchanged), exports them as bitmaps and compares every image with Google's: mean
absolute error in grey levels, share of identical pixels, and the largest single-pixel error.

    python benchmarks/bitmap_match.py [--figure docs/export_bitmaps.png]

The figure shows, per class, the vector drawing (as `render` draws it), Google's bitmap and ours.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, run  # noqa: E402
from sketchprep.dataset import load_dataset  # noqa: E402
from sketchprep.formats.export import ExportOptions, export_dataset  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = Path(os.environ.get("SKETCHPREP_SHARED_FIXTURES", SHARED.parent / "fixtures")) / "numpy_bitmap"
CLASSES = ("bicycle", "cat", "diamond", "eye")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figure", default=None, help="write the comparison picture here (.png)")
    args = ap.parse_args()
    files = [str(SHARED / "quickdraw_simplified_ndjson" / f"{c}.ndjson") for c in CLASSES]
    with tempfile.TemporaryDirectory() as tmp:
        data, out = os.path.join(tmp, "four.npz"), os.path.join(tmp, "bitmaps.npz")
        run(files, ConvertOptions(split=(1, 0, 0), multiple=1), data)
        ds = load_dataset(data)
        export_dataset(ds, out, ExportOptions("bitmap"))
        got = np.load(out)
        ours = dict(zip(got["train_ids"], got["train"]))
        sketches = dict(zip(ds.ids["train"], ds.splits["train"]))
    errors, same, worst, pairs = [], [], 0, []
    for c, f in zip(CLASSES, files):
        google = np.load(FIXTURES / f"{c}.npy").reshape(-1, 28, 28)
        for row, text in enumerate(Path(f).read_text().splitlines()):
            key = json.loads(text)["key_id"]
            a, b = ours[key].astype(int), google[row].astype(int)
            errors.append(np.abs(a - b).mean())
            same.append((a == b).mean())
            worst = max(worst, int(np.abs(a - b).max()))
            if row < 3:
                pairs.append((c, sketches[key], google[row], ours[key]))
    print(f"{len(errors)} drawings of {', '.join(CLASSES)}: mean absolute error {np.mean(errors):.3f} grey levels "
          f"(worst drawing {np.max(errors):.3f}), identical pixels {100 * np.mean(same):.2f}% (worst drawing "
          f"{100 * np.min(same):.2f}%), largest pixel error {worst}")
    if args.figure:
        figure(pairs, args.figure)
        print(f"wrote {args.figure}")


def figure(pairs, path: str) -> None:
    """Rows of (vector drawing, Google's bitmap, ours), three drawings per class, enlarged 4x."""
    from PIL import Image, ImageDraw

    from sketchprep.render import layout_grid, grid_png

    cell, gap, label = 112, 8, 18
    width = 3 * (3 * cell + gap) + 2 * gap
    height = len(CLASSES) * (cell + gap) + label + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for k, title in enumerate(("vector", "Google's 28x28", "export --format bitmap")):
        for j in range(3):
            x = gap + j * (3 * cell + gap) + k * cell
            draw.text((x + 4, 2), title if k else f"{title}", fill="black")
    for i, (c, sketch, google, ours) in enumerate(pairs):
        row, col = divmod(i, 3)
        x = gap + col * (3 * cell + gap)
        y = label + row * (cell + gap)
        vector = grid_png(layout_grid([sketch], columns=1, cell=cell))
        canvas.paste(vector.resize((cell, cell)), (x, y))
        for k, img in enumerate((google, ours)):
            big = Image.fromarray(np.asarray(img, dtype=np.uint8)).resize((cell, cell), Image.NEAREST).convert("RGB")
            canvas.paste(big, (x + (k + 1) * cell, y))
    canvas.save(path)


if __name__ == "__main__":
    main()
