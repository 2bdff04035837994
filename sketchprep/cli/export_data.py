"""`export DATA.npz -o OUT`: the dataset half of `export` (the model half, `export RUN`, is in exchange.py).

`export` takes either; a `.npz` file is a dataset. The options below belong to the dataset half and are
refused with a RUN (and the RUN options with a dataset).
"""
from __future__ import annotations

import json
import os

import click

from .app import progress_bar

FORMAT_NAMES = ("parquet", "ndjson", "svg", "stroke5", "points", "bitmap", "png")
DATA_OPTIONS = ("fmt", "max_len", "normalize", "resample", "size", "quiet", "as_json")


def data_options(fn):
    """The options of `export DATA.npz` (each refused with a RUN)."""
    options = [
        click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default=None,
                     show_default="from OUT's name: .parquet",
                     help="DATA.npz: the layout to write (see docs/commands.md#export)."),
        click.option("--max-len", type=int, default=None, show_default="the longest drawing + 1",
                     help="stroke5: N_max, the padded length; longer drawings are left out."),
        click.option("--normalize", is_flag=True,
                     help="stroke5: divide offsets by the train split's scale factor, as training does."),
        click.option("--resample", type=int, default=None, metavar="N",
                     help="points: resample every drawing to exactly N points along its strokes."),
        click.option("--size", type=int, default=None, show_default="28",
                     help="bitmap, png: the image side in pixels."),
        click.option("--json", "as_json", is_flag=True, help="DATA.npz: print the summary as JSON."),
        click.option("--quiet", "-q", is_flag=True, help="DATA.npz: no progress bar and no summary."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def is_dataset(path: str) -> bool:
    return path.lower().endswith(".npz") and not os.path.isdir(path)


def given_options(ctx: click.Context, names) -> list[str]:
    """The long names of the options among `names` that were given on the command line."""
    out = []
    for param in ctx.command.params:
        if param.name in names and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE:
            out.append(max(param.opts, key=len))
    return out


def export_data(data: str, output: str | None, fmt: str | None, max_len, normalize, resample, size, quiet,
                as_json) -> None:
    """Check everything, load DATA.npz, write OUT, print the summary."""
    from ..dataset import load_dataset
    from ..formats.export import (ExportOptions, check_export_output, export_dataset, format_for, require,
                                  total_drawings)
    from ..outputs import sigterm_raises

    if output is None:
        raise click.UsageError("give -o OUT: the file or folder to write DATA.npz to")
    fmt = format_for(output, fmt)
    opts = ExportOptions(fmt, max_len=max_len, normalize=normalize, resample=resample, size=size)
    require(fmt)
    check_export_output(output, fmt, [data])
    ds = load_dataset(data)
    with sigterm_raises():
        with progress_bar(quiet, total=total_drawings(ds), unit=" drawings", desc=f"export {fmt}") as bar:
            summary = export_dataset(ds, output, opts, progress=bar.update)
    if quiet:
        return
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    counts = ", ".join(f"{k} {v}" for k, v in summary.counts.items())
    click.echo(f"wrote {output} ({fmt}): {counts} drawings from {data}")
    for note in summary.notes:
        click.echo(note)
    if summary.dropped:
        click.echo(f"left out {sum(summary.dropped.values())}:")
        for why, n in summary.dropped.items():
            click.echo(f"  {why}: {n}")
