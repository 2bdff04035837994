"""Speed and memory of `sketchprep convert` on Quick, Draw! ndjson, against the parse-only floor.

Everything is measured in this run; a ratio is always to the floor measured just before it, on the same
files, and figures repeated --repeats times are medians. The floor is `orjson.loads` on every line of the
files opened in binary mode (nothing else): no converter can beat it.

Part "drawing" (the per-drawing steps). The input is the real ndjson in ../shared/data (raw and simplified)
repeated to --drawings lines, each copy shifted by a few pixels and given its own key_id so that no two
drawings are identical. For simplified and raw input:
- per worker: one process reading the file and running every per-drawing step (`convert.process_task`
  over the chunks), i.e. what each worker does; the goal is >= 0.33 (simplified) / 0.25 (raw) of the floor;
- collect: every per-drawing step over the whole file (`convert.collect`) with 1 worker and with
  --workers, and the speedup.

Part "command" (the whole command). The input is --classes class files of real simplified drawings, each
moved to be unique (`benchmarks/make_quickdraw.py`), at each of --sizes drawings in all. For each size:
- `sketchprep convert DIR OUT.npz` (0.9/0.05/0.05) with --workers, and with 1 worker at the smallest
  size; `sketchprep convert DIR --by-word OUT/` with --workers: drawings/s and the ratio to the floor;
- peak memory of each: the largest sum of PSS (resident memory, pages shared between processes counted
  once) over the command's process tree, sampled every 50 ms, and the largest RSS of any one of its
  processes (wait4); between the sizes, the growth per drawing.

    python benchmarks/convert.py --part drawing --drawings 300000 --workers 2
    python benchmarks/convert.py --part command --sizes 2000000 3000000 --workers 2
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, collect, process_task  # noqa: E402
from sketchprep.convert.inputs import make_tasks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_quickdraw  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))


def make_input(kind: str, n: int, path: Path) -> None:
    records = []
    for f in sorted((SHARED / f"quickdraw_{kind}_ndjson").glob("*.ndjson")):
        records += [orjson.loads(line) for line in open(f, "rb")]
    rng = random.Random(0)
    with open(path, "wb") as out:
        for i in range(n):
            rec = dict(records[i % len(records)])
            rec["key_id"] = str(10**15 + i)
            copy = i // len(records)
            dx, dy = copy % 7 - 3, (copy // 7) % 7 - 3
            rec["drawing"] = [[[max(0, x + dx) for x in s[0]], [max(0, y + dy) for y in s[1]], *s[2:]]
                              for s in rec["drawing"]]
            if rng.random() < 0.5:
                rec["drawing"] = rec["drawing"][::-1]  # another stroke order: another drawing
            out.write(orjson.dumps(rec) + b"\n")


def parse_floor(*paths: Path) -> float:
    t = time.perf_counter()
    n = 0
    loads = orjson.loads
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                loads(line)
                n += 1
    return n / (time.perf_counter() - t)


def per_worker(path: Path) -> float:
    opts = ConvertOptions(workers=1)
    t = time.perf_counter()
    n = 0
    for task in make_tasks([str(path)], opts):
        n += process_task(task, opts).read
    return n / (time.perf_counter() - t)


def collect_rate(path: Path, workers: int) -> float:
    """Drawings/s of `convert.collect` (reading and every per-drawing step, in `workers` processes)."""
    t = time.perf_counter()
    n = collect([str(path)], ConvertOptions(workers=workers)).report.read
    return n / (time.perf_counter() - t)


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux)."""
    found = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found += _tree(int(child))
    except OSError:
        pass
    return found


def _pss_kib(pid: int) -> int:
    """Proportional set size: resident memory with each shared page divided among the processes mapping it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def command(args: list[str]) -> tuple[float, float, float]:
    """A `sketchprep convert` subprocess: (wall seconds, peak MiB of the sum of PSS over its process tree,
    sampled every 50 ms, peak MiB of the RSS of its largest process, from wait4)."""
    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", "convert", *args, "-q"], cwd=REPO)
    t = time.perf_counter()
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], sum(_pss_kib(p) for p in _tree(proc.pid)))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"convert {' '.join(args)} failed with exit code {proc.returncode}")
    return wall, peak[0] / 1024, usage.ru_maxrss / 1024  # ru_maxrss: KiB on Linux


def median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def drawing_part(args, tmp: Path) -> None:
    goals = {"simplified": 0.33, "raw": 0.25}
    for kind in ("simplified", "raw"):
        n = args.drawings if kind == "simplified" else args.drawings // 5
        src = tmp / f"{kind}.ndjson"
        make_input(kind, n, src)
        size = src.stat().st_size / 2**20
        floors, workers, one, many = [], [], [], []
        for _ in range(args.repeats):  # interleaved so that machine load hits all alike
            floors.append(parse_floor(src))
            workers.append(per_worker(src))
            one.append(collect_rate(src, 1))
            many.append(collect_rate(src, args.workers))
        floor, worker, one, many = (median(v) for v in (floors, workers, one, many))
        print(f"\n== {kind}: {n:,} drawings, {size:.0f} MiB")
        print(f"parse floor (orjson.loads per line)   {floor:>10,.0f} drawings/s")
        print(f"per worker (read + every step)        {worker:>10,.0f} drawings/s   ratio to floor "
              f"{worker / floor:.2f} (goal >= {goals[kind]})")
        print(f"collect, {args.workers} workers                   {many:>10,.0f} drawings/s   speedup over 1 worker "
              f"{many / one:.2f}x")


def command_part(args, tmp: Path) -> None:
    rows = {}
    for k, n in enumerate(args.sizes):
        folder = (args.data or tmp) / f"quickdraw-{n}-{args.classes}"
        if not folder.is_dir():
            make_quickdraw.make(folder, n, args.classes)
        files = sorted(folder.glob("*.ndjson"))
        size = sum(f.stat().st_size for f in files) / 2**20
        one, by_word = [str(tmp / "out.npz")], ["--by-word", str(tmp / "out")]
        runs = [("one .npz", args.workers, one)] + [("one .npz", 1, one)] * (k == 0) + \
            [("--by-word", args.workers, by_word)]
        got: dict = {run[:2]: {"ratio": [], "rate": [], "pss": [], "rss": []} for run in runs}
        floors = []
        for _ in range(args.repeats):
            for label, workers, out in runs:
                floor = parse_floor(*files)  # just before each command: the same load for both
                floors.append(floor)
                wall, pss, rss = command([str(folder), *out, "--workers", str(workers)])
                g = got[(label, workers)]
                g["rate"].append(n / wall)
                g["ratio"].append(n / wall / floor)
                g["pss"].append(pss)
                g["rss"].append(rss)
        print(f"\n== the whole command: {n:,} simplified drawings in {len(files)} class files, {size:,.0f} MiB")
        print(f"parse floor (orjson.loads per line)        {median(floors):>10,.0f} drawings/s")
        for (label, workers), g in got.items():
            rows[(n, label, workers)] = {key: median(v) for key, v in g.items()}
            r = rows[(n, label, workers)]
            print(f"convert {label:<9} {workers} worker{'s' * (workers > 1)}  {r['rate']:>10,.0f} drawings/s   ratio to "
                  f"floor {r['ratio']:.2f}   peak memory {r['pss']:,.0f} MiB (largest process {r['rss']:,.0f} MiB)")
    if len(args.sizes) > 1:
        a, b = args.sizes[0], args.sizes[-1]
        print(f"\n== growth of the peak memory per drawing, {a:,} -> {b:,} drawings")
        for label in ("one .npz", "--by-word"):
            ra, rb = rows[(a, label, args.workers)], rows[(b, label, args.workers)]
            print(f"convert {label:<9} {(rb['pss'] - ra['pss']) * 2**20 / (b - a):6.0f} bytes per drawing")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["drawing", "command", "both"], default="both")
    ap.add_argument("--drawings", type=int, default=300_000, help="part drawing: simplified drawings (raw: a fifth)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000_000, 3_000_000],
                    help="part command: drawings in all, one input per size")
    ap.add_argument("--classes", type=int, default=30, help="part command: class files")
    ap.add_argument("--data", type=Path, default=None,
                    help="part command: keep the generated class files in this folder (and reuse them)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="median of this many runs of every figure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("drawing", "both"):
            drawing_part(args, Path(tmp))
        if args.part in ("command", "both"):
            command_part(args, Path(tmp))


if __name__ == "__main__":
    main()
