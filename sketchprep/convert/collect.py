"""Collect: every input read and processed, chunk by chunk (in worker processes), into one `Kept`."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import InputError
from ..files import changed_while_read, identity
from ..sources import Problem
from ..sources import ndjson as ndjson_source
from .chunk import ChunkResult, process_task
from .inputs import expand_inputs, make_tasks
from .kept import Kept
from .options import ConvertOptions
from .pool import ordered_map
from .spill import Spill

MAX_PROBLEMS_KEPT = 100  # examples of bad input named in the report (all are counted)

# Drop reasons that mean "this input is broken" (fatal with --strict); the others are dataset policy.
BAD_INPUT_REASONS = ("malformed_json", "bad_drawing", "empty_drawing", "non_finite", "absurd_coordinate",
                     "offset_overflow", "unreadable_file", "no_geometry", "unsafe_xml", "bad_word",
                     "line_too_long", "too_many_points", "too_large")


@dataclass
class ConvertReport:
    """What a run read, kept and dropped (by reason), for the summary and the `meta` key."""

    read: int = 0
    kept_before_split: int = 0
    dropped: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    fitted: int = 0
    sources: dict = field(default_factory=dict)  # path -> {"read": n, "kept": n}

    @property
    def bad_input(self) -> int:
        return sum(self.dropped[r] for r in BAD_INPUT_REASONS)


@dataclass
class Collected:
    kept: Kept | Spill | None  # in memory, or packed into a spill as they came (None: not carried along)
    report: ConvertReport
    files: list[str]


def collect(inputs: list[str], opts: ConvertOptions, progress: Callable[[int], None] | None = None,
            shard: tuple[int, int] | None = None, spill: Spill | None = None) -> Collected:
    """Read and process every input; return the kept sketches (not yet deduplicated or split).

    shard=(i, n) processes only the units of work (chunks of lines, groups of files) whose index is
    i modulo n; the n shards of a run together process every unit exactly once.
    spill: an open `Spill` that takes each chunk's kept sketches as they come (then `Collected.kept` is
    that spill, and memory does not grow with what is kept); None keeps them in memory, in one `Kept`.
    """
    files = expand_inputs(inputs)
    opened = {f: identity(f) for f in files if f != "-"}
    report = ConvertReport()
    report.sources = {f: {"read": 0, "kept": 0} for f in files}
    parts: list[Kept] = []
    tasks = make_tasks(files, opts, absolute_lines=shard is not None)
    if shard is not None:
        tasks = (t for k, t in enumerate(tasks) if k % shard[1] == shard[0])
    next_line: dict[int, int] = {}
    results = _process_tasks(tasks, opts)
    try:  # closed here, not when the generator is collected: a worker pool must stop with the run
        for result in results:
            if result.relative_to is not None:
                first = next_line.get(result.relative_to, 1)
                result.shift_lines(first - 1)
                next_line[result.relative_to] = first + result.lines
            if opts.strict and result.problems:
                raise InputError(result.problems[0].message, path=result.problems[0].path, line=result.problems[0].line)
            if spill is not None:
                spill.add(result.kept)
            else:
                parts.append(result.kept)
            report.read += result.read
            report.dropped.update(result.dropped)
            report.filtered.update(result.filtered)
            report.fitted += result.fitted
            for p in result.problems:
                if len(report.problems) < MAX_PROBLEMS_KEPT:
                    report.problems.append(p)
            for i, (r, k) in result.source_counts.items():
                report.sources[files[i]]["read"] += r
                report.sources[files[i]]["kept"] += k
            if progress is not None:
                progress(result.read)
    finally:
        results.close()
    for f, before in opened.items():  # a file cut or rewritten by another program meanwhile gave part of its data
        after = identity(f)
        if after != before:
            raise changed_while_read(f, before[0] if before else 0, after[0] if after else 0)
    kept = spill if spill is not None else Kept.concat(parts)
    report.kept_before_split = kept.n
    return Collected(kept, report, files)


def _process_tasks(tasks: Iterator[tuple], opts: ConvertOptions) -> Iterator[ChunkResult]:
    """process_task over the tasks, in order, in `opts.workers` processes (bounded look-ahead)."""
    if opts.workers > 1:
        ndjson_source.preload()  # before the workers are forked, so that they share it
    yield from ordered_map(process_task, tasks, opts, workers=opts.workers)
