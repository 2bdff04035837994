"""Shards: `convert --shard i/N` on many machines, `merge` into exactly the file one run would write.

A shard file is an `.npz` (no pickles) holding what `convert.collect` keeps before the dedupe and the
split: the kept sketches packed as rows + offsets, their ids, labels, stream order keys and content
hashes, plus the run's report and options as JSON. Because the split order comes from content hashes
and duplicates are resolved by stream order (both global, see `sketchprep.convert`), merging the
shards of a run and splitting gives the same drawings in the same splits as one run over all inputs.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np

from . import __version__
from .convert import Collected, ConvertOptions, ConvertReport, Kept, MAX_PROBLEMS_KEPT
from .dataset import atomic_output, read_npz, write_npz
from .errors import DatasetFormatError, OptionError
from .sources import Problem

SHARD_FORMAT = "sketchprep-shard-1"


def parse_shard(text: str) -> tuple[int, int]:
    """'3/8' -> (3, 8); shards are numbered 0..N-1."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise OptionError(f"--shard {text!r}: expected I/N, e.g. 0/8") from None
    if n < 1 or not 0 <= i < n:
        raise OptionError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def write_shard(path: str, collected: Collected, opts: ConvertOptions, shard: tuple[int, int]) -> None:
    """Write what one shard of a run kept (atomically)."""
    k, r = collected.kept, collected.report
    header = {
        "format": SHARD_FORMAT,
        "version": __version__,
        "shard": list(shard),
        "files": collected.files,
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
        write_npz(f, {"rows": k.rows, "row_offsets": k.row_offsets, "ids": k.ids, "labels": k.labels,
                      "order": k.order, "hashes": k.hashes, "header": np.array(json.dumps(header))})


def read_shard(path: str) -> tuple[Collected, ConvertOptions, tuple[int, int]]:
    arrays = read_npz(path)
    try:
        header = json.loads(str(arrays["header"][()]))
        if header.get("format") != SHARD_FORMAT:
            raise KeyError("format")
        kept = Kept(arrays["rows"], arrays["row_offsets"].astype(np.int64), arrays["ids"], arrays["labels"],
                    arrays["order"].astype(np.int64), arrays["hashes"].astype(np.uint64))
    except (KeyError, ValueError) as e:
        raise DatasetFormatError(f"not a sketchprep shard file (written by `convert --shard`): {e}", path=path) \
            from None
    rep = header["report"]
    report = ConvertReport(read=rep["read"], dropped=Counter(rep["dropped"]), filtered=Counter(rep["filtered"]),
                           problems=[Problem(*p) for p in rep["problems"]], fitted=rep["fitted"],
                           sources=rep["sources"])
    report.kept_before_split = kept.n
    return Collected(kept, report, header["files"]), ConvertOptions.from_json(header["options"]), tuple(header["shard"])


def merge_shards(paths: list[str]) -> tuple[Collected, ConvertOptions]:
    """Combine the shard files of one run (all N of them, any order) into one `Collected`."""
    if not paths:
        raise OptionError("merge needs at least one shard file")
    loaded = [read_shard(p) for p in paths]
    _, opts, (_, n) = loaded[0]
    files = loaded[0][0].files
    seen: dict[int, str] = {}
    for (col, o, (i, m)), path in zip(loaded, paths):
        if m != n or o.to_json() != opts.to_json() or col.files != files:
            raise OptionError(f"{path} comes from a different run (inputs, options or shard count differ)")
        if i in seen:
            raise OptionError(f"{path} and {seen[i]} are both shard {i}/{n}")
        seen[i] = path
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise OptionError(f"shards {', '.join(f'{i}/{n}' for i in missing)} are missing")
    kept = Kept.concat([col.kept for col, _, _ in loaded])
    report = ConvertReport()
    report.sources = {f: {"read": 0, "kept": 0} for f in files}
    problems = []
    for col, _, _ in loaded:
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
