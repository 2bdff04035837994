"""Parquet: one row per drawing, for pandas, DuckDB, Spark, Polars and Hugging Face `datasets`.

Columns: `split` (train/valid/test), `index` (the drawing's position in its split), `id`, `label` (class
index), `word` (class name), `strokes` (the stroke-3 rows, a list of `[dx, dy, p]`: int16 for int16 data,
else float64), `n_points` (rows), `n_strokes`, `width` and `height` (the extent of the absolute points),
and `times` (a list of float64 ms, one per row; null for a drawing without times) when the dataset has
them. The dataset's `meta` and the class names are the file's key-value metadata (`sketchprep`, JSON).

Written with pyarrow's `ParquetWriter` one row group of `BLOCK` drawings at a time, so what the writer
holds beyond the loaded dataset is one group's arrays.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .. import __version__
from ..dataset import SketchDataset
from ..outputs import atomic_output
from .common import SplitArrays, absolute_points, all_splits, stroke_offsets
from .export import ExportOptions, ExportSummary

METADATA_KEY = b"sketchprep"


def schema(int_rows: bool, timed: bool, meta: dict):
    import pyarrow as pa

    fields = [
        pa.field("split", pa.dictionary(pa.int8(), pa.string())),
        pa.field("index", pa.int64()),
        pa.field("id", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("word", pa.dictionary(pa.int32(), pa.string())),
        pa.field("strokes", pa.list_(pa.list_(pa.int16() if int_rows else pa.float64(), 3))),
        pa.field("n_points", pa.int32()),
        pa.field("n_strokes", pa.int32()),
        pa.field("width", pa.int32() if int_rows else pa.float64()),
        pa.field("height", pa.int32() if int_rows else pa.float64()),
    ]
    if timed:
        fields.append(pa.field("times", pa.list_(pa.float64())))
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True).encode()})


def table(part: SplitArrays, offset: int, sch):
    """One block of drawings as a pyarrow table of `sch` (offset: the block's first index in its split)."""
    import pyarrow as pa

    n = part.n
    lengths = np.diff(part.row_offsets)
    int_rows = pa.types.is_int16(sch.field("strokes").type.value_type.value_type)
    values = part.rows.astype(np.int16 if int_rows else np.float64).ravel()
    rows = pa.FixedSizeListArray.from_arrays(pa.array(values), 3)
    strokes = pa.ListArray.from_arrays(pa.array(part.row_offsets.astype(np.int32)), rows)
    so = stroke_offsets(part.rows, part.row_offsets)
    n_strokes = np.diff(np.searchsorted(so, part.row_offsets))
    xy = absolute_points(part.rows, part.row_offsets)
    extent = np.zeros((n, 2))
    nonempty = lengths > 0
    if nonempty.any():
        starts = part.row_offsets[:-1][nonempty]
        extent[nonempty] = np.maximum.reduceat(xy, starts) - np.minimum.reduceat(xy, starts)
    extent = extent.astype(np.int32) if int_rows else extent
    columns = {
        "split": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), pa.array([part.name])),
        "index": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
        "id": pa.array(part.ids.tolist(), pa.string()),
        "label": pa.array(part.labels.astype(np.int32)),
        "word": pa.DictionaryArray.from_arrays(pa.array(part.labels.astype(np.int32)), pa.array(part.classes)),
        "strokes": strokes,
        "n_points": pa.array(lengths.astype(np.int32)),
        "n_strokes": pa.array(n_strokes.astype(np.int32)),
        "width": pa.array(extent[:, 0]),
        "height": pa.array(extent[:, 1]),
    }
    if "times" in sch.names:
        if part.times is None:
            columns["times"] = pa.nulls(n, pa.list_(pa.float64()))
        else:
            untimed = np.zeros(n, dtype=bool)
            if nonempty.any():
                untimed[nonempty] = np.logical_and.reduceat(np.isnan(part.times), part.row_offsets[:-1][nonempty])
            columns["times"] = pa.ListArray.from_arrays(pa.array(part.row_offsets.astype(np.int32)),
                                                        pa.array(part.times), mask=pa.array(untimed))
    return pa.table([columns[name] for name in sch.names], schema=sch)


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    import pyarrow.parquet as pq

    parts = all_splits(ds)
    dtypes = {s.dtype for p in parts for s in p.sketches}
    # int16 (convert's) and smaller integers as int16; anything else as float64, which holds it exactly
    int_rows = all(d.kind in "iu" and d.itemsize <= 2 and d != np.uint16 for d in dtypes)
    meta = {"tool": "sketchprep", "version": __version__, "source": ds.path, "classes": parts[0].classes,
            "dataset_meta": ds.meta, "times": bool(ds.times),
            "strokes": "stroke-3 rows [dx, dy, p]; p=1: the pen lifts after this point; first row: offset from "
                       "the origin"}
    sch = schema(int_rows, bool(ds.times), meta)
    with atomic_output(out) as f:
        with pq.ParquetWriter(f, sch, compression="zstd") as writer:
            for part in parts:
                for start, stop, block in part.blocks():
                    writer.write_table(table(block, start, sch), row_group_size=stop - start)
                    progress(stop - start)
    return ExportSummary(out, "parquet", {p.name: p.n for p in parts})
