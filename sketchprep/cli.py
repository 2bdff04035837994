"""The `sketchprep` command line: parse options, call the library, format the result.

Errors from the library (`SketchprepError`) become `Error: <where>: <what>` on stderr with exit 1;
usage errors exit 2. Data goes to stdout, progress bars to stderr (only on a terminal, never with
--quiet).
"""
from __future__ import annotations

import functools
import json
import os
import shlex
import sys

import click

from . import __version__
from .errors import OptionError, SketchprepError


def _errors_to_click(fn):
    """Turn library errors into one-line click errors (exit 1) and option errors into usage errors (exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OptionError as e:
            raise click.UsageError(str(e)) from None
        except SketchprepError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


def _progress_bar(quiet: bool, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=quiet or not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="sketchprep")
def main():
    """Turn vector drawings into sketch-rnn datasets, check them, and train on them.

    \b
    Example, on the sample drawings bundled with the package:
      sketchprep convert sketchprep/data/quickdraw_sample sample.npz

    Run `sketchprep COMMAND --help` for the options of each command.
    """


# ---------------------------------------------------------------------------------------------------
# convert


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@main.command(context_settings={"show_default": True})
@click.argument("args", nargs=-1, required=True, metavar="INPUT... OUT.npz")
@click.option("--epsilon", type=float, default=2.0,
              help="RDP tolerance in output units (pixels of the --size box); 0 turns simplification off.")
@click.option("--distance", type=click.Choice(["line", "segment"]), default="line",
              help="RDP distance: 'line' (original Douglas-Peucker, as the rdp package; closest to Google's "
                   "simplified data) or 'segment' (no dropped point is farther than epsilon).")
@click.option("--max-len", type=int, default=250, help="Longest sketch kept, in stroke-3 rows.")
@click.option("--fit", is_flag=True,
              help="Re-simplify a too-long sketch with a growing epsilon (up to 5x) instead of dropping it.")
@click.option("--size", type=float, default=255.0,
              help="Scale each drawing so its larger extent is SIZE units; 0 keeps source units.")
@click.option("--split", "split_text", default="0.9/0.05/0.05",
              help="train/valid/test as fractions (all parts <= 1; 1/0/0 puts everything in train) or counts "
                   "(70000/2500/2500).")
@click.option("--multiple", type=int, default=100, help="Round every split size down to a multiple of this; 1 turns "
                                                          "rounding off.")
@click.option("--seed", type=int, default=0, help="Seed of the shuffle that assigns drawings to splits.")
@click.option("--word", "words", multiple=True, help="Keep only Quick, Draw! drawings of this word (repeatable).")
@click.option("--recognized-only", is_flag=True, help="Keep only drawings the Quick, Draw! game recognised.")
@click.option("--include-fills", is_flag=True, help="SVG: also keep the outlines of shapes that are filled but not stroked.")
@click.option("--by-word", "by_word", type=click.Path(file_okay=False), default=None,
              help="Write one DIR/<word>.npz per class (as Google ships them) instead of OUT.npz.")
@click.option("--workers", type=int, default=None, show_default="all cores",
              help="Worker processes (inputs under 8 MB use one).")
@click.option("--shard", default=None, metavar="I/N",
              help="Process only shard I of N (0-based) and write a shard file to OUT; combine with `merge`.")
@click.option("--strict", is_flag=True, help="Stop at the first bad drawing or file with exit 1; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@_errors_to_click
def convert(args, epsilon, distance, max_len, fit, size, split_text, multiple, seed, words, recognized_only,
            include_fills, by_word, workers, shard, strict, as_json, quiet):
    """Convert drawings (Quick, Draw! .ndjson / .ndjson.gz, '-' for stdin, or .bin; .svg line art, one
    drawing per file, its folder's name as its class; folders are searched recursively) into a sketch-rnn
    .npz with train/valid/test splits.

    \b
    Every drawing is normalised to the --size box, simplified with RDP at --epsilon (Quick, Draw! raw
    drawings are first resampled at 1 unit, as Google did; Google's simplified drawings pass through
    unchanged at the defaults; an SVG's strokes are what a browser strokes, curves sampled at 1 unit),
    turned into int16 stroke-3 and kept if it has at most --max-len rows.
    Duplicates are dropped, so no drawing is in two splits. Bad drawings are counted and reported
    (file:line), not fatal, unless --strict. OUT is written atomically.

    \b
    Examples:
      sketchprep convert sketchprep/data/quickdraw_sample sample.npz
      sketchprep convert cat.ndjson dog.ndjson pets.npz --split 70000/2500/2500 --recognized-only
      sketchprep convert quickdraw/ --by-word datasets/ --split 70000/2500/2500
      sketchprep convert drawings/ drawings.npz --include-fills --split 1/0/0 --multiple 1
      zcat cat.ndjson.gz | sketchprep convert - cat.npz --epsilon 1.0 --max-len 200 --fit
    """
    from .convert import ConvertOptions, collect, parse_split, write_outputs
    from .shards import parse_shard, write_shard

    args = list(args)
    if by_word is None or shard:
        if len(args) < 2:
            raise click.UsageError("give at least one INPUT and the OUT.npz to write (or --by-word DIR)")
        out = args.pop()
        if not out.endswith(".npz"):
            raise click.UsageError(f"OUT must end in .npz (got {out!r}); it is the last argument")
    else:
        out = None
    if workers is None:
        total = sum(os.path.getsize(a) for a in args if os.path.isfile(a))
        small = total < 8 * 2**20 and not any(os.path.isdir(a) for a in args)
        workers = 1 if small else _default_workers()
    opts = ConvertOptions(epsilon=epsilon, distance=distance, max_len=max_len, fit=fit, size=size,
                          split=parse_split(split_text), multiple=multiple, seed=seed,
                          words=frozenset(words) if words else None, recognized_only=recognized_only,
                          strict=strict, workers=workers, include_fills=include_fills)
    shard_spec = parse_shard(shard) if shard else None
    with _progress_bar(quiet, unit=" drawings", desc="convert") as bar:
        collected = collect(args, opts, progress=bar.update, shard=shard_spec)
    if shard_spec:
        write_shard(out, collected, opts, shard_spec)
        if not quiet:
            click.echo(f"read {collected.report.read} drawings; wrote shard {shard} with {collected.kept.n} kept "
                       f"drawings to {out} (combine all shards with `sketchprep merge`)")
        return
    outputs = write_outputs(collected, opts, out, by_word, _command_line())
    _print_outputs(collected, outputs, as_json, quiet)


@main.command(context_settings={"show_default": True})
@click.argument("args", nargs=-1, required=True, metavar="SHARD.npz... OUT.npz")
@click.option("--by-word", "by_word", type=click.Path(file_okay=False), default=None,
              help="Write one DIR/<word>.npz per class instead of OUT.npz.")
@click.option("--split", "split_text", default=None, show_default="the shards' --split",
              help="Re-split: train/valid/test as fractions or counts.")
@click.option("--multiple", type=int, default=None, show_default="the shards' --multiple",
              help="Round every split size down to a multiple of this.")
@click.option("--seed", type=int, default=None, show_default="the shards' --seed", help="Shuffle seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
@_errors_to_click
def merge(args, by_word, split_text, multiple, seed, as_json, quiet):
    """Combine the shard files of `convert --shard I/N` into exactly the .npz that one `convert` run over
    all the inputs writes (same drawings, same splits for the same seed).

    \b
    Example (4 shards, e.g. one per machine or per Slurm array task):
      for i in 0 1 2 3; do sketchprep convert quickdraw/ shard-$i.npz --shard $i/4 & done; wait
      sketchprep merge shard-*.npz quickdraw.npz
    """
    from .convert import parse_split, write_outputs
    from .shards import merge_shards, with_split_overrides

    args = list(args)
    if by_word is None:
        if len(args) < 2:
            raise click.UsageError("give the shard files and the OUT.npz to write (or --by-word DIR)")
        out = args.pop()
        if not out.endswith(".npz"):
            raise click.UsageError(f"OUT must end in .npz (got {out!r}); it is the last argument")
    else:
        out = None
    collected, opts = merge_shards(args)
    opts = with_split_overrides(opts, parse_split(split_text) if split_text else None, multiple, seed)
    outputs = write_outputs(collected, opts, out, by_word, _command_line())
    _print_outputs(collected, outputs, as_json, quiet)


@main.group()
def pipeline():
    """Recipes that rebuild a dataset end to end (see `pipeline run --help`)."""


@pipeline.command("run")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder.  [default: the recipe's `output`, else out/<recipe name>]")
@click.option("--input", "inputs", multiple=True, help="Use these inputs instead of the recipe's (repeatable).")
@click.option("--set", "sets", multiple=True, metavar="STEP.OPTION=VALUE",
              help="Override one option of one step, e.g. --set convert.epsilon=1.5 (repeatable).")
@click.option("--force", is_flag=True, help="Run every step, even those whose inputs have not changed.")
@_errors_to_click
def pipeline_run(recipe, out_dir, inputs, sets, force):
    """Run a recipe's steps (convert, validate, stats, render, train, sample) in order into an output
    folder, skipping steps whose command, inputs and earlier outputs are unchanged since their last
    success; stop at the first failing step; write OUT/report.md.

    \b
    Examples:
      sketchprep pipeline run pipelines/quickstart.toml
      sketchprep pipeline run pipelines/svg-folder.toml --input my_drawings/ --out out/mine
      sketchprep pipeline run pipelines/quickdraw.toml --input quickdraw/ --set convert.epsilon=1.5
    """
    from .pipeline import REPORT_FILE, load_recipe, run

    loaded = load_recipe(recipe, sets=list(sets), inputs=list(inputs))
    out = out_dir or loaded.output or os.path.join("out", loaded.path.stem)

    def show(result):
        click.echo(f"{result.name:<9} {result.status:<8} {result.seconds:6.1f} s"
                   + (f"  {result.error}" if result.error else ""), err=True)

    run(loaded, out, force=force, on_step=show)
    click.echo(f"report: {os.path.join(out, REPORT_FILE)}")


def _command_line() -> str | None:
    """The command as typed (for the dataset's meta), when run from the shell."""
    if len(sys.argv) > 1 and sys.argv[1] in main.commands:
        return "sketchprep " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return None


def _print_outputs(collected, outputs, as_json: bool, quiet: bool) -> None:
    if quiet:
        return
    if as_json:
        click.echo(json.dumps({"outputs": [{"path": p, **m} for p, _, m in outputs],
                               "problems": [str(p) for p in collected.report.problems]}, indent=2))
    else:
        click.echo(_summary(collected, outputs))


# ---------------------------------------------------------------------------------------------------
# validate / stats / render (inspect)


@main.command(context_settings={"show_default": True})
@click.argument("path", metavar="DATA.npz", type=click.Path(exists=True, dir_okay=False))
@click.option("--max-len", type=click.IntRange(min=1), default=250,
              help="Longest sketch allowed, in stroke-3 rows (longer ones are errors).")
@click.option("--batch-size", type=click.IntRange(min=1), default=100,
              help="Training batch size: a split smaller than it is an error, one that is not a multiple a warning.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@_errors_to_click
def validate(path, max_len, batch_size, as_json):
    """Check DATA.npz (ours, Google's or hardmaru's) against the sketch-rnn data contract.

    \b
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
    from .validate import validate_file

    report = validate_file(path, max_len=max_len, batch_size=batch_size)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for finding in report.findings:
            click.echo(finding.line())
        click.echo(report.verdict())
    if not report.ok:
        click.get_current_context().exit(1)


def _raw_input_options(fn):
    """The convert options that decide what raw inputs turn into (stats and render on .ndjson/.svg)."""
    options = [
        click.option("--epsilon", type=click.FloatRange(min=0), default=2.0,
                     help="Raw inputs: RDP tolerance, as in convert."),
        click.option("--distance", type=click.Choice(["line", "segment"]), default="line",
                     help="Raw inputs: RDP distance, as in convert."),
        click.option("--max-len", type=click.IntRange(min=1), default=250,
                     help="Raw inputs: longest sketch convert keeps, in stroke-3 rows."),
        click.option("--size", type=click.FloatRange(min=0), default=255.0,
                     help="Raw inputs: larger extent of each drawing after normalising, as in convert."),
        click.option("--fit", is_flag=True, help="Raw inputs: re-simplify too-long sketches, as convert --fit."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit):
    """ConvertOptions for raw inputs; for a .npz, refuse the raw-input options given on the command line."""
    from .convert import ConvertOptions
    from .stats import npz_input

    if npz_input(list(inputs)) is not None:
        given = [p for p in ("epsilon", "distance", "max_len", "size", "fit")
                 if ctx.get_parameter_source(p) == click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} applies to raw inputs (.ndjson, .svg), not to a .npz")
    return ConvertOptions(epsilon=epsilon, distance=distance, max_len=max_len, size=size, fit=fit,
                          workers=_inspect_workers(inputs))


def _inspect_workers(inputs) -> int:
    total = sum(os.path.getsize(a) for a in inputs if os.path.isfile(a))
    small = total < 8 * 2**20 and not any(os.path.isdir(a) for a in inputs)
    return 1 if small else _default_workers()


@main.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="DATA.npz | INPUT...")
@_raw_input_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Also write histograms to this .png/.svg/.pdf (needs matplotlib: pip install 'sketchprep[plot]').")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (raw inputs).")
@click.pass_context
@_errors_to_click
def stats(ctx, inputs, epsilon, distance, max_len, size, fit, as_json, plot, quiet):
    """Describe a dataset before training on it, or raw drawings before converting them.

    \b
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
      sketchprep stats sketchprep/data/quickdraw_sample --epsilon 1.0 --max-len 200
    """
    from .stats import dataset_stats, format_table, input_stats, npz_input, plot_stats

    opts = _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit)
    path = npz_input(list(inputs))
    if path is not None:
        result = dataset_stats(path)
    else:
        with _progress_bar(quiet, unit=" drawings", desc="stats") as bar:
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
                    out.append(int(part))
                except ValueError:
                    raise click.BadParameter(f"{part!r} is not an integer", param_hint="--index") from None
    return out


@main.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="DATA.npz | INPUT...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The grid to write: .svg (no dependency) or .png.")
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default=None, show_default="test",
              help="Split of DATA.npz to draw from.")
@click.option("-n", "count", type=click.IntRange(min=1), default=64, help="How many drawings, chosen at random.")
@click.option("--seed", type=int, default=0, help="Seed of the random choice.")
@click.option("--index", "indices", multiple=True, metavar="I[,J...]",
              help="Draw these drawings (0-based, repeatable or comma-separated) instead of a random choice.")
@click.option("--columns", type=click.IntRange(min=1), default=None, show_default="a square-ish grid",
              help="Drawings per row.")
@click.option("--cell", type=click.FloatRange(min=8), default=128.0, help="Side of each drawing's cell, in pixels.")
@click.option("--color-by-stroke", is_flag=True, help="Colour strokes by drawing order, red (first) to violet (last).")
@click.option("--labels", is_flag=True, help="Write each drawing's index (and class) and row count under it.")
@click.option("--compare", type=click.FloatRange(min=0, min_open=True), default=None, metavar="EPS",
              help="Draw each drawing beside its RDP simplification at EPS, with both point counts.")
@_raw_input_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary line.")
@click.pass_context
@_errors_to_click
def render(ctx, inputs, output, split, count, seed, indices, columns, cell, color_by_stroke, labels, compare,
           epsilon, distance, max_len, size, fit, quiet):
    """Draw a grid of drawings from DATA.npz or from raw inputs, to look at before training.

    \b
    From a .npz: -n drawings of --split chosen with --seed (or those at --index). From raw inputs
    (.ndjson, .svg, folders): the drawings convert would keep at --epsilon/--size/--max-len, indexed in
    input order. Each drawing is scaled to fill its cell and centred. --compare EPS puts every drawing
    beside its simplification at EPS (raw inputs: the drawing before RDP; .npz: the stored sketch).

    \b
    Examples:
      sketchprep render sample.npz -o grid.svg
      sketchprep render sample.npz -o grid.png --split train -n 16 --seed 3 --color-by-stroke --labels
      sketchprep render sample.npz -o some.png --index 0,5,7
      sketchprep render "sketchprep/data/quickdraw_sample/cactus.ndjson.gz" -o rdp.png -n 8 --compare 4
    """
    from .render import render_grid

    opts = _convert_options(ctx, inputs, epsilon, distance, max_len, size, fit)
    with _progress_bar(quiet, unit=" drawings", desc="render") as bar:
        result = render_grid(list(inputs), output, split=split, n=count, seed=seed, indices=_index_list(indices) or None,
                             compare=compare, opts=opts, columns=columns, cell=cell, color_by_stroke=color_by_stroke,
                             labels=labels, progress=bar.update)
    if not quiet:
        pairs = f" beside their simplification at epsilon {compare:g}" if compare is not None else ""
        click.echo(f"wrote {result.path}: {len(result.indices)} of {result.available} drawings {result.source}{pairs}")


# ---------------------------------------------------------------------------------------------------
# train / sample / interpolate (the torch stage; torch is imported inside the commands only)


# ---------------------------------------------------------------------------------------------------
# helpers


def _summary(collected, outputs) -> str:
    report = collected.report
    lines = [f"read {report.read} drawings from {len(collected.files)} file(s)"]
    for path, result, meta in outputs:
        c = result.counts
        lines.append(f"wrote {path}: train {c['train']}, valid {c['valid']}, test {c['test']}"
                     + (f" ({len(result.classes)} classes)" if len(result.classes) > 1 else ""))
    dropped = dict(report.dropped)
    for _, result, _ in outputs:
        for key, value in (("duplicate", result.duplicates), ("split_rounding", result.rounding),
                           ("not_selected", result.not_selected)):
            if value:
                dropped[key] = dropped.get(key, 0) + value
    if report.fitted:
        lines.append(f"fitted {report.fitted} long drawing(s) under --max-len with a larger epsilon")
    if dropped:
        lines.append(f"dropped {sum(dropped.values())}:")
        width = max(len(k) for k in dropped)
        for key in sorted(dropped, key=lambda k: -dropped[k]):
            lines.append(f"  {key:<{width}}  {dropped[key]}")
    if report.filtered:
        lines.append("filtered out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(report.filtered.items())))
    if report.problems:
        lines.append(f"bad input (first {len(report.problems)} of {report.bad_input}):")
        lines += [f"  {p}" for p in report.problems]
    return "\n".join(lines)

