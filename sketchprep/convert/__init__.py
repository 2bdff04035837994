"""The conversion pipeline: inputs -> kept stroke-3 sketches -> dedupe -> seeded split -> .npz.

source -> polylines -> normalise -> resample (Quick, Draw! raw) -> RDP -> quantise -> stroke-3 ->
length filter (or `fit`) -> dedupe -> order by a seeded hash -> split -> write.

Work happens on chunks of drawings (flat arrays, see `sketchprep.strokes.FlatDrawings`), optionally
in worker processes; the kept sketches go to a spill as they come (packed in memory for one OUT.npz,
on disk beside DIR for `--by-word`), and the end (dedupe, split, writing) reads back what each output
needs, in worker processes too: one OUT.npz holds the packed stroke-3 it writes plus small keys per
sketch, and `--by-word` only the words being written (see `spill` and `write`).

The order of the output does not depend on the order of the inputs or on how they were chunked or
sharded: each kept sketch gets a priority from a seeded hash of its content, and the splits are
taken in priority order. Of two identical sketches (after quantisation), the one seen first in the
input stream is kept, so no drawing can appear in two splits.

One module per stage (`run` below strings them together):

    options   ConvertOptions, parse_split: what a run does, checked before any input is read
    inputs    expand_inputs and the units of work (tasks) the inputs are cut into
    pool      ordered_map: a function over a stream of items in worker processes, in order
    chunk     process_task / process_batch: every per-drawing step on one unit of work
    kept      Kept: the kept sketches, packed, with the content hash of each (sketch_hashes)
    collect   collect: every task through the pool into a Spill (or one Kept) and a ConvertReport
    spill     Spill: kept sketches on disk as they come, keys read back per output, rows per piece
    dedupe    ordered_unique / unique / dedupe: exact duplicates dropped, the earliest in the input stream
              kept, the rest in seeded order
    splits    plan_split / make_splits: seeded order cut into train/valid/test of checked sizes
    write     write_outputs: each output's split made and checked, then the .npz file(s) written in
              pieces by the workers (the file format itself is `sketchprep.formats.npz`)
"""
from __future__ import annotations

from typing import Callable

from .chunk import FIT_TRIES, QUICKDRAW_EPSILON, QUICKDRAW_SIZE, ChunkResult, process_batch, process_task
from .collect import BAD_INPUT_REASONS, MAX_PROBLEMS_KEPT, Collected, ConvertReport, collect
from .dedupe import dedupe, ordered_unique, unique
from .inputs import SVG_FILES_PER_TASK, SVG_SUFFIXES, expand_inputs
from .kept import TAKE_BLOCK, Kept, sketch_hashes
from .options import ConvertOptions, parse_split
from .pool import _worker_init  # noqa: F401 (for a pool started elsewhere, as the tests do)
from .spill import Keys, Spill, SpillReader
from .splits import (NICE_MULTIPLES, SPLITS, SplitResult, SplitSummary, check_split, make_splits, plan_split,
                     share_notes, shuffle_order, split_sizes)
from .write import MAX_STEM_BYTES, build_meta, nothing_kept_message, word_filenames, write_outputs

__all__ = [
    "BAD_INPUT_REASONS", "FIT_TRIES", "MAX_PROBLEMS_KEPT", "MAX_STEM_BYTES", "NICE_MULTIPLES", "QUICKDRAW_EPSILON",
    "QUICKDRAW_SIZE", "SPLITS", "SVG_FILES_PER_TASK", "SVG_SUFFIXES", "TAKE_BLOCK", "ChunkResult", "Collected",
    "ConvertOptions", "ConvertReport", "Keys", "Kept", "Spill", "SpillReader", "SplitResult", "SplitSummary",
    "build_meta", "check_split", "collect", "dedupe", "expand_inputs", "make_splits", "nothing_kept_message",
    "ordered_unique", "parse_split", "plan_split", "process_batch", "process_task", "run", "share_notes",
    "shuffle_order", "sketch_hashes", "split_sizes", "unique", "word_filenames", "write_outputs",
]


def run(inputs: list[str], opts: ConvertOptions, out: str | None = None, by_word: str | None = None,
        command: str | None = None,
        progress: Callable[[int], None] | None = None) -> tuple[Collected, list[tuple[str, SplitSummary, dict]]]:
    """A whole `sketchprep convert` run: returns what was collected and (path, split summary, meta) per file
    written.

    collect        every input read and cut into tasks, each task processed (per-chunk steps, in
                   `opts.workers` processes), the kept sketches spilled to disk beside the output as they
                   come (`Spill`), and the report;
    dedupe         exact duplicates dropped, the one earliest in the input stream kept, the rest in seeded
                   content-hash order (`ordered_unique`, one sort over the keys of an output's sketches);
    plan_split     that order cut into train/valid/test of checked sizes;
    write_outputs  dedupe and plan_split for OUT (or for each word's DIR/<word>.npz, side by side in the
                   workers), every split checked before any output appears, then the file(s) written in
                   pieces made by the workers, atomically.
    """
    by_label = by_word is not None  # one word at a time from disk; one OUT.npz holds every row at the end anyway
    with Spill(out if by_word is None else by_word, by_label=by_label, on_disk=by_label) as spill:
        collected = collect(inputs, opts, progress, spill=spill)
        return collected, write_outputs(collected, opts, out, by_word, command)
