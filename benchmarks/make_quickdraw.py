"""A Quick, Draw!-sized input for benchmarks: millions of real simplified drawings in class files.

The test data folder holds 25 real simplified drawings of each of 200 words. This writes `--classes`
files `<word>.ndjson` (the first words in sorted order) with `--drawings` lines in all, each line one of
its word's 25 drawings moved by (dx, dy) = (0..63, 0..63) pixels (for more than 4096 copies of a drawing,
its strokes are also reversed), with its own `key_id`. Moving a drawing changes only the first stroke-3
row (the offset from the origin), so every line is a different drawing after conversion (none is a
duplicate) while the rows after it stay the real ones; the moved points may reach 255 + 63.

    python benchmarks/make_quickdraw.py /tmp/quickdraw --drawings 3000000 --classes 30
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
SHIFTS = 64  # dx and dy each take this many values


def base_drawings() -> dict[str, list[dict]]:
    """word -> the real simplified drawings of that word in the test data folder."""
    words: dict[str, list[dict]] = {}
    for f in sorted((SHARED / "quickdraw_simplified_ndjson").glob("*.ndjson")):
        for line in open(f, "rb"):
            rec = orjson.loads(line)
            words.setdefault(rec["word"], []).append(rec)
    if not words:
        sys.exit(f"no simplified ndjson found in {SHARED / 'quickdraw_simplified_ndjson'} (set SKETCHPREP_SHARED_DATA)")
    return words


def write_class(path: Path, word_index: int, records: list[dict], n: int) -> None:
    """`n` lines of `records`, each moved to be unique (see the module docstring)."""
    limit = 2 * SHIFTS * SHIFTS * len(records)
    if n > limit:
        sys.exit(f"at most {limit:,} drawings per class ({len(records)} drawings x {2 * SHIFTS * SHIFTS} copies)")
    with open(path, "wb") as out:
        for i in range(n):
            rec = dict(records[i % len(records)])
            copy = i // len(records)
            dx, dy, reverse = copy % SHIFTS, copy // SHIFTS % SHIFTS, copy >= SHIFTS * SHIFTS
            strokes = [[[x + dx for x in s[0]], [y + dy for y in s[1]]] for s in rec["drawing"]]
            rec["drawing"] = strokes[::-1] if reverse else strokes
            rec["key_id"] = f"{word_index:03d}{i:013d}"
            out.write(orjson.dumps(rec) + b"\n")


def make(folder: Path, drawings: int, classes: int) -> list[Path]:
    """Write the class files into `folder` (made if missing); returns their paths."""
    words = base_drawings()
    names = sorted(words)[:classes]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, word in enumerate(names):
        n = drawings // len(names) + (k < drawings % len(names))
        path = folder / f"{word}.ndjson"
        write_class(path, k, words[word], n)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--drawings", type=int, default=3_000_000)
    ap.add_argument("--classes", type=int, default=30)
    args = ap.parse_args()
    paths = make(args.folder, args.drawings, args.classes)
    size = sum(p.stat().st_size for p in paths) / 2**20
    print(f"wrote {args.drawings:,} drawings in {len(paths)} files ({size:,.0f} MiB) to {args.folder}")


if __name__ == "__main__":
    main()
