"""Output formats: one module per format a dataset can be written in.

`npz` is the sketch-rnn `.npz` that `convert` writes and every command reads (the layout is defined in
`sketchprep.strokes`; reading, with its bounds and its pickle-free unpickler, is `sketchprep.dataset`).
`sketchprep export DATA.npz` writes the others (`export` picks the format and checks the options):
`parquet`, `ndjson`, `svg`, `stroke5`, `points`, `bitmap` and `png`; `common` is what they share.

Every writer here is library code: it takes a dataset's parts as `sketchprep.dataset.SketchDataset` holds
them (splits of stroke-3 arrays, ids, labels indexing `meta["classes"]`, times, meta) and a path, writes
through `sketchprep.outputs.atomic_output` (or `atomic_folder` for a folder), raises `SketchprepError` for
what a user can get wrong, and never prints, exits or imports click; the command that picks a format is in
`sketchprep.cli`. An export module has `write(ds, out, opts, progress) -> ExportSummary`, builds at most a
block of drawings (`common.BLOCK`) or one split's array at a time, and calls `progress(n)` as it goes.
"""
