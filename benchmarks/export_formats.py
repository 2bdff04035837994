"""Speed of `sketchprep export DATA.npz` per format, and the peak memory of a Parquet export of a million drawings.

Speed: a dataset converted from the real raw Quick, Draw! ndjson with --keep-time (1,273 drawings of 50 words,
times included), repeated to --drawings drawings (each copy with its own id), is exported to every format in
one process, one format after the other, and each export is timed (CPU time of the process, which a busy
machine does not inflate, and wall-clock time); loading the .npz is not counted.

Memory: --million builds a dataset of 1,000,000 drawings (the real simplified Quick, Draw! drawings, 200 words,
repeated with their own ids), then runs, each in a fresh process, (a) loading it and importing what export
imports, and (b) `sketchprep export BIG.npz -o BIG.parquet`, and prints the peak resident memory (VmHWM) of
each: (b) - (a) is what the export needs beyond the loaded dataset.

    python benchmarks/export_formats.py --drawings 20000 [--million]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, run  # noqa: E402
from sketchprep.dataset import SPLITS, load_dataset, save_dataset  # noqa: E402
from sketchprep.formats.export import FORMATS, ExportOptions, export_dataset  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
OPTIONS = {"stroke5": {"normalize": True}, "points": {}, "bitmap": {}, "png": {}}


def repeated(source: str, n: int, out: str) -> None:
    """`source` (an .npz) with its drawings repeated to n in all (split shares kept), each with its own id."""
    ds = load_dataset(source)
    total = sum(len(ds.splits[s]) for s in SPLITS)
    splits, ids, labels, times = {}, {}, {}, {}
    for s in SPLITS:
        k = len(ds.splits[s])
        want = round(n * k / total)
        idx = np.arange(want) % max(k, 1)
        splits[s] = [ds.splits[s][i] for i in idx]
        ids[s] = [f"{ds.ids[s][i]}-{j // max(k, 1)}" for j, i in enumerate(idx)]
        if s in ds.labels:
            labels[s] = ds.labels[s][idx]
        if s in ds.times:
            per = ds.sketch_times(s)
            times[s] = np.concatenate([per[i] for i in idx]) if len(idx) else np.zeros(0)
    save_dataset(out, splits, ids=ids, labels=labels or None, meta=ds.meta, times=times or None)


def speeds(n: int, tmp: Path) -> None:
    base, data = tmp / "raw.npz", tmp / "data.npz"
    run([str(SHARED / "quickdraw_raw_ndjson")], ConvertOptions(multiple=1, keep_time=True), str(base))
    repeated(str(base), n, str(data))
    ds = load_dataset(data)
    count = sum(len(v) for v in ds.splits.values())
    print(f"{count:,} drawings (raw Quick, Draw! converted with --keep-time, repeated), "
          f"{sum(len(s) for v in ds.splits.values() for s in v) / count:.1f} rows each on average")
    print(f"{'format':<9} {'drawings/s (CPU)':>17} {'drawings/s (wall)':>18}  output")
    for name, spec in FORMATS.items():
        out = tmp / (f"out_{name}" + (spec.suffixes[0] if spec.suffixes else ""))
        cpu, wall = time.process_time(), time.perf_counter()
        export_dataset(ds, str(out), ExportOptions(name, **OPTIONS.get(name, {})))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        size = out.stat().st_size if out.is_file() else sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"{name:<9} {count / cpu:>17,.0f} {count / wall:>18,.0f}  {size / 2**20:,.1f} MiB")


PEAK = "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"


def peak(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", f"import re, sys\n{code}\n{PEAK}"], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def million(tmp: Path) -> None:
    base, big = tmp / "simplified.npz", tmp / "big.npz"
    run([str(SHARED / "quickdraw_simplified_ndjson")], ConvertOptions(multiple=1), str(base))
    repeated(str(base), 1_000_000, str(big))
    loaded = peak(f"import pyarrow.parquet\nfrom sketchprep.cli import main\nfrom sketchprep.dataset import "
                  f"load_dataset\nds = load_dataset({str(big)!r})")
    t = time.perf_counter()
    exported = peak(f"from sketchprep.cli import main\nmain(['export', {str(big)!r}, '-o', "
                    f"{str(tmp / 'big.parquet')!r}, '-q'], standalone_mode=False)")
    wall = time.perf_counter() - t
    print(f"1,000,000 drawings ({big.stat().st_size / 2**20:,.0f} MiB .npz -> "
          f"{(tmp / 'big.parquet').stat().st_size / 2**20:,.0f} MiB .parquet, {wall:,.0f} s in all)")
    print(f"peak memory: loading the .npz (and importing pyarrow) {loaded:,.0f} MiB; the whole export "
          f"{exported:,.0f} MiB; beyond the loaded dataset {exported - loaded:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drawings", type=int, default=20_000)
    ap.add_argument("--million", action="store_true", help="also measure a Parquet export of 1,000,000 drawings")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        speeds(args.drawings, Path(tmp))
        if args.million:
            million(Path(tmp))


if __name__ == "__main__":
    main()
