"""Shards: `convert --shard i/N` on many machines, `merge` into exactly the file one run would write.

A shard file is an `.npz` (no pickles) holding what `convert.collect` keeps before the dedupe and the
split: the kept sketches packed as rows + offsets, their ids, labels, stream order keys and content
hashes, plus the run's report and options as JSON. Because the split order comes from content hashes
and duplicates are resolved by stream order (both global, see `sketchprep.convert`), merging the
shards of a run and splitting gives the same drawings in the same splits as one run over all inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import replace

import numpy as np

from . import __version__
from .convert import MAX_PROBLEMS_KEPT, Collected, ConvertOptions, ConvertReport, Kept, Spill
from .dataset import atomic_output, read_npz
from .errors import DatasetFormatError, OptionError, SketchprepError
from .formats.npz import write_npz
from .sources import Problem

SHARD_FORMAT = "sketchprep-shard-2"   # 2: the header carries fingerprints of the inputs and of the kept data
SHARD_KEYS = ("rows", "row_offsets", "ids", "labels", "order", "hashes", "header")
OPTIONAL_SHARD_KEYS = ("times",)      # convert --keep-time: (R,) float64, one per row
MAX_SHARDS = 100_000
REDO = "Convert this shard again (sketchprep convert INPUT... OUT.npz --shard I/N)"


def parse_shard(text: str) -> tuple[int, int]:
    """'3/8' -> (3, 8); shards are numbered 0..N-1."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise OptionError(f"--shard {text!r}: expected I/N, e.g. 0/8") from None
    if n < 1 or not 0 <= i < n:
        raise OptionError(f"--shard {text!r}: need 0 <= I < N")
    if n > MAX_SHARDS:
        raise OptionError(f"--shard {text!r}: at most {MAX_SHARDS} shards")
    return i, n


def inputs_fingerprint(files: list[str]) -> str:
    """sha256 of every input's path, size and modification time: shards of one run see the same inputs."""
    entries = []
    for f in files:
        try:
            st = os.stat(f)
            entries.append([f, st.st_size, st.st_mtime_ns])
        except OSError:  # stdin, or an input removed since
            entries.append([f, None, None])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def content_fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a shard's arrays (dtype, shape and bytes of each, in a fixed order)."""
    h = hashlib.sha256()
    for key in SHARD_KEYS[:-1] + tuple(k for k in OPTIONAL_SHARD_KEYS if k in arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape};".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def write_shard(path: str, collected: Collected, opts: ConvertOptions, shard: tuple[int, int]) -> None:
    """Write what one shard of a run kept (atomically)."""
    k, r = collected.kept, collected.report
    arrays = {"rows": k.rows, "row_offsets": k.row_offsets, "ids": k.ids, "labels": k.labels,
              "order": k.order, "hashes": k.hashes}
    if k.times is not None:
        arrays["times"] = k.times
    header = {
        "format": SHARD_FORMAT,
        "version": __version__,
        "shard": list(shard),
        "files": collected.files,
        "inputs_sha256": inputs_fingerprint(collected.files),
        "content_sha256": content_fingerprint(arrays),
        "options": opts.to_json(),
        "report": {
            "read": r.read,
            "dropped": dict(r.dropped),
            "filtered": dict(r.filtered),
            "fitted": r.fitted,
            "sources": r.sources,
            "problems": [[p.reason, p.path, p.line, p.message] for p in r.problems],
        },
    }
    with atomic_output(path) as f:
        write_npz(f, {**arrays, "header": np.array(json.dumps(header))})


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _counts(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _is_int(c) and c >= 0 for k, c in v.items())


def _check_header(header, path: str) -> None:
    """Every header field typed and range-checked before anything is built from it."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise DatasetFormatError(f"damaged shard header: {what}. {REDO}", path=path)

    need(isinstance(header, dict), "not a JSON object")
    if header.get("format") != SHARD_FORMAT:
        raise DatasetFormatError(f"not a shard file of this sketchprep (format {str(header.get('format'))[:40]!r}, "
                                 f"expected {SHARD_FORMAT!r}). {REDO}", path=path)
    shard = header.get("shard")
    need(isinstance(shard, list) and len(shard) == 2 and all(_is_int(v) for v in shard)
         and 0 <= shard[0] < shard[1] <= MAX_SHARDS, f"'shard' must be [I, N] with 0 <= I < N <= {MAX_SHARDS}")
    files = header.get("files")
    need(isinstance(files, list) and all(isinstance(f, str) for f in files), "'files' must be a list of paths")
    for key in ("inputs_sha256", "content_sha256"):
        need(isinstance(header.get(key), str) and len(header[key]) == 64, f"'{key}' must be a sha256")
    need(isinstance(header.get("options"), dict), "'options' must be an object")
    rep = header.get("report")
    need(isinstance(rep, dict), "'report' must be an object")
    need(_is_int(rep.get("read")) and rep["read"] >= 0 and _is_int(rep.get("fitted")) and rep["fitted"] >= 0,
         "'report.read' and 'report.fitted' must be counts")
    need(_counts(rep.get("dropped")) and _counts(rep.get("filtered")), "'report.dropped/filtered' must map reasons to counts")
    sources = rep.get("sources")
    need(isinstance(sources, dict) and set(sources) <= set(files)
         and all(isinstance(c, dict) and set(c) == {"read", "kept"} and _counts(c) for c in sources.values()),
         "'report.sources' must map input files to read/kept counts")
    problems = rep.get("problems")
    need(isinstance(problems, list) and len(problems) <= MAX_PROBLEMS_KEPT and all(
        isinstance(p, list) and len(p) == 4 and isinstance(p[0], str) and isinstance(p[1], str)
        and (p[2] is None or _is_int(p[2])) and isinstance(p[3], str) for p in problems),
        "'report.problems' must be a list of [reason, path, line, message]")


def _check_arrays(arrays: dict[str, np.ndarray], header: dict, path: str) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise DatasetFormatError(f"damaged shard: {what}. {REDO}", path=path)

    rows, offsets = arrays["rows"], arrays["row_offsets"]
    need(rows.ndim == 2 and rows.shape[1] == 3 and rows.dtype.kind in "iu", "'rows' must be an (R, 3) int array")
    need(offsets.ndim == 1 and offsets.dtype.kind in "iu" and len(offsets) >= 1, "'row_offsets' must be a 1-D int array")
    n = len(offsets) - 1
    need(int(offsets[0]) == 0 and int(offsets[-1]) == len(rows) and bool(np.all(np.diff(offsets) >= 0)),
         "'row_offsets' must run from 0 to the row count without going back")
    for key, kinds in (("ids", "US"), ("labels", "US"), ("order", "iu"), ("hashes", "iu")):
        arr = arrays[key]
        need(arr.ndim == 1 and len(arr) == n and arr.dtype.kind in kinds, f"'{key}' must hold one entry per sketch")
    if "times" in arrays:
        times = arrays["times"]
        need(times.ndim == 1 and len(times) == len(rows) and times.dtype.kind == "f", "'times' must hold one float per row")
    need(content_fingerprint(arrays) == header["content_sha256"], "its data does not match its fingerprint")


def read_shard(path: str) -> tuple[Collected, ConvertOptions, tuple[int, int], str]:
    """A shard file's kept sketches, options, (I, N) and inputs fingerprint, checked before use."""
    arrays = read_npz(path, keys=SHARD_KEYS + OPTIONAL_SHARD_KEYS)
    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise DatasetFormatError(f"not a sketchprep shard file (no {', '.join(missing)}). {REDO}", path=path)
    meta = arrays["header"]
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise DatasetFormatError(f"not a sketchprep shard file (header is {meta.dtype} {meta.shape}). {REDO}", path=path)
    try:
        header = json.loads(str(meta[()]))
    except (ValueError, RecursionError) as e:
        raise DatasetFormatError(f"damaged shard header: not JSON ({e}). {REDO}", path=path) from None
    _check_header(header, path)
    _check_arrays(arrays, header, path)
    try:
        opts = ConvertOptions.from_json(header["options"])
    except (TypeError, ValueError, KeyError, AttributeError, SketchprepError) as e:
        raise DatasetFormatError(f"damaged shard header: bad 'options' ({e}). {REDO}", path=path) from None
    kept = Kept(arrays["rows"], arrays["row_offsets"].astype(np.int64), arrays["ids"], arrays["labels"],
                arrays["order"].astype(np.int64), arrays["hashes"].astype(np.uint64),
                arrays["times"].astype(np.float64) if "times" in arrays else None)
    rep = header["report"]
    report = ConvertReport(read=rep["read"], dropped=Counter(rep["dropped"]), filtered=Counter(rep["filtered"]),
                           problems=[Problem(*p) for p in rep["problems"]], fitted=rep["fitted"],
                           sources=rep["sources"])
    report.kept_before_split = kept.n
    return Collected(kept, report, header["files"]), opts, tuple(header["shard"]), header["inputs_sha256"]


def merge_shards(paths: list[str], spill: Spill | None = None) -> tuple[Collected, ConvertOptions]:
    """Combine the shard files of one run (all N of them, any order) into one `Collected`.

    spill: an open `Spill` that takes each shard's kept sketches as it is read (then memory holds one shard
    at a time, and `Collected.kept` is the spill); None concatenates them in memory."""
    if not paths:
        raise OptionError("merge needs at least one shard file")
    loaded = []
    for p in paths:
        col, o, shard, fp = read_shard(p)
        if spill is not None:
            spill.add(col.kept)
            col = Collected(None, col.report, col.files)
        loaded.append((col, o, shard, fp))
    _, opts, (_, n), fingerprint = loaded[0]
    files = loaded[0][0].files
    seen: dict[int, str] = {}
    for (col, o, (i, m), fp), path in zip(loaded, paths):
        if m != n or o.to_json() != opts.to_json() or col.files != files:
            raise OptionError(f"{path} comes from a different run (inputs, options or shard count differ)")
        if fp != fingerprint:
            raise OptionError(f"{path} and {paths[0]} were made from different contents of the same inputs (sizes or "
                              "modification times differ): convert every shard again from the current inputs")
        if i in seen:
            raise OptionError(f"{path} and {seen[i]} are both shard {i}/{n}")
        seen[i] = path
    if len(seen) < n:
        missing = [i for i in range(n) if i not in seen][:10]  # n <= MAX_SHARDS (checked in the header)
        more = f" and {n - len(seen) - len(missing)} more" if n - len(seen) > len(missing) else ""
        raise OptionError(f"shards {', '.join(f'{i}/{n}' for i in missing)}{more} are missing")
    kept = spill if spill is not None else Kept.concat([col.kept for col, _, _, _ in loaded])
    report = ConvertReport()
    report.sources = {f: {"read": 0, "kept": 0} for f in files}
    problems = []
    for col, _, _, _ in loaded:
        r = col.report
        report.read += r.read
        report.dropped.update(r.dropped)
        report.filtered.update(r.filtered)
        report.fitted += r.fitted
        problems += r.problems
        for f, c in r.sources.items():
            report.sources[f]["read"] += c["read"]
            report.sources[f]["kept"] += c["kept"]
    index = {f: i for i, f in enumerate(files)}
    problems.sort(key=lambda p: (index.get(p.path, len(files)), p.line or 0))
    report.problems = problems[:MAX_PROBLEMS_KEPT]
    report.kept_before_split = kept.n
    return Collected(kept, report, files), opts


def with_split_overrides(opts: ConvertOptions, split=None, multiple=None, seed=None) -> ConvertOptions:
    """The shards' options with the split settings a merge may change."""
    changes = {k: v for k, v in (("split", split), ("multiple", multiple), ("seed", seed)) if v is not None}
    return replace(opts, **changes)
