"""Inputs: the files a run reads, and the units of work (tasks) they are cut into.

A task is a small tuple that a worker process can take (see `make_tasks`); `read_task` turns one into a
`SourceBatch`. Large plain ndjson files are sent as byte ranges that the worker reads itself, so the main
process only finds line boundaries.
"""
from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError
from ..files import check_regular, glob_paths, is_regular_file, open_regular
from ..sources import SourceBatch
from ..sources import ndjson as ndjson_source
from ..sources import quickdraw_bin as bin_source
from ..sources import svg as svg_source
from .options import ConvertOptions


SVG_SUFFIXES = (".svg",)
SVG_FILES_PER_TASK = 32  # SVG files read per unit of work (about 0.1 s of parsing)


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, directories (searched recursively, sorted) and globs -> the list of input files."""
    files: list[str] = []
    for item in inputs:
        if item == "-":
            files.append(item)
            continue
        p = Path(item)
        if p.is_dir():  # links to folders inside it are not followed (rglob), so a link cycle ends
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_drawing_file(str(f)))
            if not found:
                raise InputError("directory holds no .ndjson, .ndjson.gz, .bin or .svg files", path=item)
            files += found
        elif p.is_file():
            if not _is_drawing_file(item):
                raise InputError("not a drawing file (expected .ndjson, .ndjson.gz, .bin or .svg)", path=item)
            files.append(item)
        elif os.path.exists(item):
            check_regular(item)  # a FIFO or a device: refused by name (it could block or never end)
        elif any(c in item for c in "*?["):  # regular files only, as a folder is walked
            found = [f for f in glob_paths(item) if _is_drawing_file(f) and is_regular_file(f)]
            if not found:
                raise InputError("pattern matches no drawing files", path=item)
            files += found
        else:
            raise InputError("no such file or directory", path=item)
    return files


def _is_drawing_file(path: str) -> bool:
    return ndjson_source.is_ndjson(path) or bin_source.is_bin(path) or path.lower().endswith(SVG_SUFFIXES)


def make_tasks(files: list[str], opts: ConvertOptions, absolute_lines: bool = False) -> Iterator[tuple]:
    """Units of work: ("ndjson_range", path, input_index, start, end, first_line or None),
    ("ndjson", path, input_index, first_line, blob of lines, bytes),
    ("bin", path, input_index, first_record, data, truncated, bytes), ("svg", [(input_index, path), ...], bytes)
    and ("problem", path, input_index, reason, message[, line]) for a file that cannot be read (on)."""
    svg_files: list[tuple[int, str]] = []
    line_counts: dict[int, int] = {}
    for index, path in enumerate(files):
        if bin_source.is_bin(path):
            try:
                with open_regular(path, "a .bin file") as stream:
                    done = 0
                    for first, data, nbytes, truncated in bin_source.iter_record_chunks(
                            stream, max_points=opts.limits.points_per_drawing):
                        yield ("bin", path, index, first, data, truncated, nbytes - done)
                        done = nbytes
            except bin_source.RecordTooLarge as e:
                yield ("problem", path, index, "too_many_points", str(e), e.record)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot read: {e.strerror or e}")
        elif ndjson_source.is_ndjson(path) and path != "-" and not path.endswith(".gz"):
            # a plain file: workers read their own chunk (the main process only finds the line boundaries);
            # line numbers follow from the line counts that come back with the results, in order
            try:
                with open_regular(path, "an ndjson file") as f:
                    why = ndjson_source.sniff(f.read(ndjson_source.SNIFF_BYTES))
                if why:
                    yield ("problem", path, index, "unreadable_file", why)
                    continue
                for start, end in ndjson_source.byte_ranges(path):
                    first = None
                    if absolute_lines:  # shards must number lines they never process
                        blob = ndjson_source.read_range(path, start, end, opts.limits.line_bytes)
                        first, line_counts[index] = line_counts.get(index, 1), \
                            line_counts.get(index, 1) + ndjson_source.count_lines(blob)
                    yield ("ndjson_range", path, index, start, end, first)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot read: {e.strerror or e}")
        elif ndjson_source.is_ndjson(path):
            try:
                stream = ndjson_source.open_lines(path)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot open: {e.strerror or e}")
                continue
            try:
                for first, blob, nbytes in ndjson_source.iter_line_chunks(stream, max_line=opts.limits.line_bytes,
                                                                          max_ratio=opts.limits.gzip_ratio):
                    yield ("ndjson", path, index, first, blob, nbytes)
            except ndjson_source.NotJsonLines as e:
                yield ("problem", path, index, "unreadable_file", str(e))
            except ndjson_source.GzipBomb as e:
                yield ("problem", path, index, "too_large", str(e))
            except (OSError, EOFError, zlib.error) as e:  # e.g. a truncated or corrupt .gz: the lines before count
                yield ("problem", path, index, "unreadable_file", f"cannot read to the end (the lines before were "
                                                                  f"read): {e}")
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
        else:
            svg_files.append((index, path))
            if len(svg_files) >= SVG_FILES_PER_TASK:
                yield _svg_task(svg_files)
                svg_files = []
    if svg_files:
        yield _svg_task(svg_files)


def _svg_task(svg_files: list[tuple[int, str]]) -> tuple:
    return ("svg", list(svg_files), sum(os.path.getsize(p) for _, p in svg_files if os.path.isfile(p)))


def read_task(task: tuple, opts: ConvertOptions) -> SourceBatch:
    kind = task[0]
    if kind == "ndjson":
        _, path, index, first, blob, _ = task
        return ndjson_source.parse_lines(blob, path, first, index, opts.words, opts.recognized_only,
                                         opts.limits.line_bytes, opts.keep_time)
    if kind == "bin":
        _, path, index, first, data, truncated, _ = task
        return bin_source.parse_records(data, path, first, index, truncated, opts.words, opts.recognized_only)
    if kind == "svg":
        return svg_source.read_files(task[1], opts.size, opts.include_fills, opts.resample_spacing, opts.limits)
    raise ValueError(f"unknown task kind {kind!r}")
