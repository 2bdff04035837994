"""`validate`, `stats`, `render`: look at a dataset (or raw drawings) before training."""
from __future__ import annotations

import json
import os

import click

from .. import limits
from ..errors import OptionError
from .app import bounded, default_workers, handle_errors, limit_option, progress_bar, main


@main.command(context_settings={"show_default": True})
@click.argument("path", metavar="DATA.npz", type=click.Path(exists=True, dir_okay=False))
@click.option("--max-len", type=bounded(limits.ROWS), default=250,
              help="Longest sketch allowed, in stroke-3 rows (longer ones are errors).")
@click.option("--batch-size", type=bounded(limits.BATCH), default=100,
              help="Training batch size: a split smaller than it is an error, one that is not a multiple a warning.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@handle_errors
def validate(path, max_len, batch_size, as_json):
    """Check DATA.npz (ours, Google's or hardmaru's) against the sketch-rnn data contract.

    Prints one line per finding (level, split[first index], code, what, how to fix), then a verdict.
    Errors: missing keys, a split that is not a 1-D array of (n, 3) arrays, NaN/inf, pen values other
    than 0/1, empty sketches, sketches over --max-len, values outside int16, a split smaller than
    --batch-size. Warnings: split sizes that are not multiples of --batch-size, |offset| > 1000 (the
    reference loader clamps there), a last row that is not pen-up, float offsets, duplicates within a
    split, and drawings in two splits (leakage). Pickles in the file are never executed.

    Exit status: 0 without errors (warnings allowed), 1 on any error, 2 on usage errors.

    \b
    Examples:
      sketchprep validate sample.npz
      sketchprep validate cat.npz --max-len 200 --batch-size 64 --json
    """
    from ..validate import validate_file

    report = validate_file(path, max_len=max_len, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            click.echo(finding.line())
        if report.ok:
            click.echo(report.verdict())
    if not report.ok:  # the verdict of a failed check is the command's one error line
        click.echo(f"Error: {report.verdict()}", err=True)
        click.get_current_context().exit(1)


def _raw_input_options(fn):
    """The convert options that decide what raw inputs turn into (stats and render on .ndjson/.svg)."""
    options = [
        click.option("--epsilon", type=bounded(limits.EPSILON), default=2.0,
                     help="Raw inputs: RDP tolerance, as in convert."),
        click.option("--distance", type=click.Choice(["line", "segment"]), default="line",
                     help="Raw inputs: RDP distance, as in convert."),
        click.option("--max-len", type=bounded(limits.ROWS), default=250,
                     help="Raw inputs: longest sketch convert keeps, in stroke-3 rows."),
        click.option("--size", type=bounded(limits.SIZE), default=255.0,
                     help="Raw inputs: larger extent of each drawing after normalising, as in convert."),
        click.option("--fit", is_flag=True, help="Raw inputs: re-simplify too-long sketches, as convert --fit."),
        lambda f: limit_option(f, expose=False, prefix="Raw inputs: "),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit):
    """ConvertOptions for raw inputs; for a .npz, refuse the raw-input options given on the command line."""
    from ..convert import ConvertOptions
    from ..stats import npz_input

    if npz_input(list(inputs)) is not None:
        given = [p for p in ("epsilon", "distance", "max_len", "size", "fit", "limits")
                 if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if given:
            name = "limit" if given[0] == "limits" else given[0].replace("_", "-")
            raise click.UsageError(f"--{name} applies to raw inputs (.ndjson, .svg), not to a .npz")
    return ConvertOptions(epsilon=epsilon, distance=distance, max_len=max_len, size=size, fit=fit,
                          workers=_inspect_workers(inputs), limits=ctx.meta["limits"])


def _inspect_workers(inputs) -> int:
    total = sum(os.path.getsize(a) for a in inputs if os.path.isfile(a))
    small = total < 8 * 2**20 and not any(os.path.isdir(a) for a in inputs)
    return 1 if small else default_workers()


@main.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="DATA.npz | INPUT...")
@_raw_input_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write histograms to this .png/.svg/.pdf (needs matplotlib: pip install 'sketchprep[plot]').")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (raw inputs).")
@click.pass_context
@handle_errors
def stats(ctx, inputs, epsilon, distance, max_len, size, fit, as_json, plot, quiet):
    """Describe a dataset before training on it, or raw drawings before converting them.

    Per split: sketch count; length (rows) min/mean/p50/p90/p95/p99/max; strokes per sketch; points
    per stroke; bounding box width and height; how many sketches are longer than 200/250/300 rows;
    the share of pen-up rows; the largest offset; classes and their counts when labelled; and the
    normalising scale factor the reference loader computes (std of the train offsets; the report says
    exactly how). On raw inputs (.ndjson, .svg, folders) the same figures come from convert's own
    pipeline at --epsilon/--size/--max-len: column "all" before the length filter, "kept" after it,
    plus the points RDP removed, so you can pick --epsilon and --max-len before converting.

    \b
    Examples:
      sketchprep stats sample.npz
      sketchprep stats sample.npz --json --plot stats.png
      sketchprep stats sketchprep/data/quickdraw_sample --epsilon 1.0
    """
    from ..outputs import check_output
    from ..stats import dataset_stats, format_table, input_stats, npz_input, plot_stats

    opts = _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit)
    if plot:
        check_output(plot, inputs, read_suffixes=(".svg",), option="--plot")
    path = npz_input(list(inputs))
    if path is not None:
        result = dataset_stats(path)
    else:
        with progress_bar(quiet, unit=" drawings", desc="stats") as bar:
            result = input_stats(list(inputs), opts, progress=bar.update)
    if plot:
        try:
            plot_stats(result, plot)
        except ImportError:
            raise click.ClickException("--plot needs matplotlib: pip install 'sketchprep[plot]'") from None
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_table(result))


def _index_list(values) -> list[int]:
    out = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                try:
                    out.append(limits.INDEX.parse(part, "--index"))
                except OptionError as e:
                    raise click.UsageError(e.message) from None
    return out


@main.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="DATA.npz | INPUT...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The grid to write: .svg (no dependency) or .png.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default=None, show_default="test",
              help="Split of DATA.npz to draw from.")
@click.option("-n", "count", type=bounded(limits.DRAWINGS), default=64, help="How many drawings, chosen at random.")
@click.option("--seed", type=bounded(limits.SEED), default=0, help="Seed of the random choice.")
@click.option("--index", "indices", multiple=True, metavar="I[,J...]",
              help="Draw these drawings (0-based, repeatable or comma-separated) instead of a random choice.")
@click.option("--columns", type=bounded(limits.COLUMNS), default=None, show_default="a square-ish grid",
              help="Drawings per row.")
@click.option("--cell", type=bounded(limits.CELL), default=128.0, help="Side of each drawing's cell, in pixels.")
@click.option("--color-by-stroke", is_flag=True, help="Colour strokes by drawing order, red (first) to violet (last).")
@click.option("--labels", is_flag=True, help="Write each drawing's index (and class) and row count under it.")
@click.option("--compare", type=bounded(limits.COMPARE), default=None, metavar="EPS",
              help="Draw each drawing beside its RDP simplification at EPS, with both point counts.")
@_raw_input_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.pass_context
@handle_errors
def render(ctx, inputs, output, split, count, seed, indices, columns, cell, color_by_stroke, labels, compare,
           epsilon, distance, max_len, size, fit, quiet):
    """Draw a grid of drawings from DATA.npz or from raw inputs, to look at before training.

    From a .npz: -n drawings of --split chosen with --seed (or those at --index). From raw inputs
    (.ndjson, .svg, folders): the drawings convert would keep at --epsilon/--size/--max-len, indexed in
    input order. Each drawing is scaled to fill its cell and centred. --compare EPS puts every drawing
    beside its simplification at EPS (raw inputs: the drawing before RDP; .npz: the stored sketch).

    \b
    Examples:
      sketchprep render sample.npz -o grid.svg
      sketchprep render sample.npz -o grid.png -n 16 --color-by-stroke --labels
      sketchprep render sample.npz -o some.png --index 0,5,7
      sketchprep render cactus.ndjson -o rdp.png -n 8 --compare 4
    """
    from ..outputs import check_output
    from ..render import render_grid

    opts = _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit)
    check_output(output, inputs, read_suffixes=(".svg",), option="-o")
    with progress_bar(quiet, unit=" drawings", desc="render") as bar:
        result = render_grid(list(inputs), output, split=split, n=count, seed=seed, indices=_index_list(indices) or None,
                             compare=compare, opts=opts, columns=columns, cell=cell, color_by_stroke=color_by_stroke,
                             labels=labels, progress=bar.update)
    if not quiet:
        pairs = f" beside their simplification at epsilon {compare:g}" if compare is not None else ""
        click.echo(f"wrote {result.path}: {len(result.indices)} of {result.available} drawings {result.source}{pairs}")
