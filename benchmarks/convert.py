"""Speed and memory of `sketchprep convert` on Quick, Draw! ndjson, against the parse-only floor.

The input is the real ndjson in ../shared/data (raw and simplified) repeated to --drawings lines,
each copy shifted by a few pixels and given its own key_id so that no two drawings are identical.

Printed, for simplified and raw input, all measured in this run:
- floor: `orjson.loads` on every line of the file opened in binary mode (nothing else); no converter
  can beat it.
- per worker: one process reading the file and running every per-drawing step (`convert.process_task`
  over the chunks), i.e. what each worker does; the goal is >= 0.33 (simplified) / 0.25 (raw) of the floor.
- collect: every per-drawing step over the whole file (`convert.collect`) with 1 worker and with --workers,
  and the speedup (the part of a run that runs in parallel);
- end to end: the `sketchprep convert` command (dedupe, split and writing, which run in one process,
  included) with 1 worker and with --workers, and the speedup.
- peak memory (max RSS) of the command for the input and for the input twice over, once keeping
  everything and once with --word keeping a single class: memory follows what is kept, not the input.

    python benchmarks/convert.py --drawings 300000 --workers 2
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, collect, process_task  # noqa: E402
from sketchprep.convert.inputs import make_tasks  # noqa: E402

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


def parse_floor(path: Path) -> float:
    t = time.perf_counter()
    n = 0
    loads = orjson.loads
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


def command(args: list[str]) -> float:
    """Wall seconds of a `sketchprep convert` subprocess."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sketchprep", "convert", *args, "-q"], check=True, cwd=REPO)
    return time.perf_counter() - t


def peak_rss(args: list[str]) -> float:
    """Peak resident memory (MiB) of a `sketchprep convert` subprocess: VmHWM, which exec resets (ru_maxrss
    would include this benchmark's own memory at the time of the fork)."""
    code = ("import re, sys; from sketchprep.cli import main\n"
            "try: main(sys.argv[1:], standalone_mode=False)\n"
            "finally: print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", code, "convert", *args, "-q"], check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drawings", type=int, default=300_000, help="simplified drawings (raw: a fifth of it)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="median of this many runs of the in-process figures")
    args = ap.parse_args()
    goals = {"simplified": 0.33, "raw": 0.25}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
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
            floor, worker, one, many = (sorted(v)[len(v) // 2] for v in (floors, workers, one, many))
            print(f"\n== {kind}: {n:,} drawings, {size:.0f} MiB")
            print(f"parse floor (orjson.loads per line)   {floor:>10,.0f} drawings/s")
            print(f"per worker (read + every step)        {worker:>10,.0f} drawings/s   ratio to floor "
                  f"{worker / floor:.2f} (goal >= {goals[kind]})")
            print(f"collect, {args.workers} workers                   {many:>10,.0f} drawings/s   speedup over 1 worker "
                  f"{many / one:.2f}x")
            out = tmp / "out.npz"
            t1 = command([str(src), str(out), "--workers", "1"])
            tn = command([str(src), str(out), "--workers", str(args.workers)])
            print(f"convert command, 1 worker             {n / t1:>10,.0f} drawings/s   ({t1:.1f} s, writing included)")
            print(f"convert command, {args.workers} workers            {n / tn:>10,.0f} drawings/s   speedup "
                  f"{t1 / tn:.2f}x")
            double = tmp / f"{kind}2.ndjson"
            with open(double, "wb") as f:
                f.write(src.read_bytes())
                f.write(src.read_bytes().replace(b'"key_id":"1', b'"key_id":"2'))
            word = orjson.loads(open(src, "rb").readline())["word"]
            for label, extra in (("keeping everything", []), (f"--word {word!r}", ["--word", word])):
                m1 = peak_rss([str(src), str(out), "--workers", "1", "--split", "1/0/0", "--multiple", "1", *extra])
                m2 = peak_rss([str(double), str(out), "--workers", "1", "--split", "1/0/0", "--multiple", "1",
                               *extra])
                print(f"peak memory, {label:<22} {m1:8.0f} MiB for the input, {m2:8.0f} MiB for it twice over")


if __name__ == "__main__":
    main()
