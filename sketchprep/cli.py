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


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise click.ClickException("this command needs PyTorch: install the train extra: "
                                   "pip install 'sketchprep[train]'") from None


def _expand_data(paths) -> list[str]:
    import glob

    out = []
    for p in paths:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") and not os.path.exists(p) else [p]
        if not hits:
            raise click.UsageError(f"no file matches {p!r}")
        out += hits
    return out


@main.command(context_settings={"show_default": True})
@click.argument("data", nargs=-1, metavar="DATA.npz...")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: best.pt, latest.pt, hparams.json, metrics.jsonl (and tensorboard/ when installed).")
@click.option("--preset", type=click.Path(dir_okay=False), default=None,
              help="JSON file of hparams (e.g. pipelines/presets/small_dataset.json), applied before --set.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override one hparam (repeatable), typed by its field: --set dec_model=layer_norm.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from latest.pt (its hparams and data).")
@click.option("--overwrite", is_flag=True, help="Start over in an --out that already holds a run.")
@click.option("--max-steps", type=int, default=None, show_default="num_steps",
              help="Stop after this many steps in total (counting the steps of a resumed run).")
@click.option("--patience", type=int, default=0,
              help="Early stopping: stop after this many evaluations without a better valid cost; 0 never stops.")
@click.option("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--rnn-impl", type=click.Choice(["auto", "fused", "loop", "script", "compile"]), default="auto",
              help="How the RNNs run (same results up to rounding): auto = PyTorch's fused LSTM kernel where the "
                   "cell allows it (lstm without recurrent dropout), else a Python loop over the cell; script = "
                   "that loop compiled by TorchScript; compile = the cell step compiled by torch.compile (1.1-1.5x "
                   "faster for layer_norm and hyper on CPU, after up to a minute of compiling).")
@click.option("--threads", type=int, default=None, show_default="torch's default",
              help="CPU threads for torch.")
@click.option("--log-every", type=int, default=20, help="Steps between log lines.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no log lines.")
@_errors_to_click
def train(data, out_dir, preset, sets, resume, overwrite, max_steps, patience, device, rnn_impl, threads, log_every,
          quiet):
    """Train sketch-rnn on one or more .npz datasets (concatenated per split).

    \b
    The model, its hparams (Magenta's defaults: enc 256, dec 512, z 128, 20 mixtures, batch 100,
    recurrent dropout keep 0.9, augmentation) and the loop follow Magenta's sketch-rnn; see the
    README's Training section for every hparam and for what differs from the reference. Every
    save_every steps (an hparam, default 500) the whole valid split is evaluated; the best model
    goes to best.pt, the newest to latest.pt. Ctrl-C saves latest.pt and stops; --resume continues
    exactly where the run stopped. Several processes: torchrun --nproc_per_node=N -m sketchprep train ...

    \b
    Examples:
      sketchprep train aaron_sheep.npz --out runs/sheep
      sketchprep train aaron_sheep.npz --out runs/sheep_ln --preset pipelines/presets/small_dataset.json
      sketchprep train cat.npz dog.npz --out runs/pets --set dec_rnn_size=1024 --set num_mixture=30
      sketchprep train --out runs/sheep --resume --max-steps 20000
    """
    _need_torch()
    import torch

    from sketchrnn.model import HParams
    from sketchrnn.train import train as run_train

    data = _expand_data(data)
    if threads is not None:
        if threads < 1:
            raise click.UsageError("--threads must be >= 1")
        torch.set_num_threads(threads)
    if log_every < 1:
        raise click.UsageError("--log-every must be >= 1")
    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    hps = None
    if preset or sets:
        if resume:
            raise click.UsageError("--resume continues with the run's own hparams: drop --preset and --set")
        hps = HParams()
        if preset:
            hps = HParams.from_dict(_read_preset(preset), source=preset)
        hps = hps.with_overrides(list(sets))
    if overwrite:
        import contextlib

        for name in ("latest.pt", "best.pt"):
            with contextlib.suppress(FileNotFoundError):  # under torchrun every process tries
                os.unlink(os.path.join(out_dir, name))
    worker = int(os.environ.get("RANK", "0")) != 0      # under torchrun only rank 0 talks
    quiet = quiet or worker
    log = None if quiet else functools.partial(click.echo, err=True)
    bar_total = max_steps if max_steps is not None else (hps.num_steps if hps else None)
    with _progress_bar(quiet, total=bar_total, unit=" steps", desc="train") as bar:
        if log is not None and not bar.disable:
            log = bar.write
        result = run_train(data, out_dir, hps, resume=resume, max_steps=max_steps, device=device, rnn_impl=rnn_impl,
                           patience=patience, log_every=log_every, log=log, progress=bar.update)
    if worker:
        return
    best = f"best valid cost {result.best_valid_cost:.4f} at step {result.best_step}" \
        if result.best_step is not None else "no evaluation yet"
    click.echo(f"{result.out_dir}: {result.step} steps ({result.stopped.replace('_', ' ')}); {best}; "
               f"{result.n_params:,} parameters")


_TEMPERATURE_HELP = ("Sampling temperature tau: pi and the pen state from softmax(logits / tau); sigma x tau "
                     "(the reference code's form; --sigma-form paper: sigma x sqrt(tau), i.e. variance x tau).")


def _sampling_options(fn):
    for deco in reversed([
        click.option("--greedy", is_flag=True, help="Most likely component, pen state and offset (no randomness)."),
        click.option("--sigma-form", type=click.Choice(["code", "paper"]), default="code",
                     help="How tau scales the offsets' Gaussians: sigma*tau (code) or sigma*sqrt(tau) (paper)."),
        click.option("--seed", type=int, default=0, help="Seed of every random draw."),
        click.option("--sampled-z", is_flag=True,
                     help="Encode to z = mu + sigma*eps (the reference notebook) instead of mu."),
        click.option("--checkpoint", type=click.Choice(["best", "latest"]), default="best",
                     help="Which checkpoint of a run folder to use."),
        click.option("--device", default="cpu", help="cpu, cuda, cuda:N or auto."),
        click.option("--columns", type=int, default=None, help="Drawings per row of the grid."),
    ]):
        fn = deco(fn)
    return fn


def _check_drawings_output(output: str) -> None:
    if os.path.splitext(output)[1].lower() not in (".svg", ".png", ".npz"):
        raise click.UsageError(f"-o {output}: the output must end in .svg, .png or .npz")


def _write_drawings(run, drawings, output, columns, labels, meta) -> None:
    from .dataset import save_dataset
    from .render import save_grid

    ext = os.path.splitext(output)[1].lower()
    if ext == ".npz":
        meta = {"kind": "sketchrnn samples", "run": run.path, "step": run.step, **meta}
        save_dataset(output, {"train": [], "valid": [], "test": drawings}, meta=meta)
    elif ext in (".svg", ".png"):
        save_grid(drawings, output, columns=columns, labels=labels)
    else:
        raise click.UsageError(f"-o {output}: the output must end in .svg, .png or .npz")


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, help="samples.svg / .png (a grid) or .npz (the drawings, in 'test').")
@click.option("-n", "count", type=int, default=16, help="Number of drawings.")
@click.option("--temperature", "-t", type=float, default=0.4, help=_TEMPERATURE_HELP)
@click.option("--reconstruct", "condition", metavar="[FILE.npz:]SPLIT:INDEX", default=None,
              help="Encode this drawing (FILE defaults to the run's first dataset) and decode it n times; the "
                   "grid starts with the original.")
@_sampling_options
@_errors_to_click
def sample(run_path, output, count, temperature, condition, greedy, sigma_form, seed, sampled_z, checkpoint, device,
           columns):
    """Draw new sketches with a trained model (RUN: a `train --out` folder or a .pt checkpoint).

    \b
    z ~ N(0, I) for a conditional model (or the decoder alone for an unconditional one), decoded in
    one batch until every drawing ends. Offsets are in the dataset's pixels (the scale factor is
    stored in the checkpoint). Temperature: the reference code's form, see --temperature.

    \b
    Examples:
      sketchprep sample runs/sheep -o sheep.png -n 25 --temperature 0.3
      sketchprep sample runs/sheep -o recon.svg --reconstruct test:12 -n 8
      sketchprep sample runs/sheep/latest.pt -o sheep.npz -n 1000 --seed 1
    """
    _need_torch()
    from sketchrnn.sample import load_run, read_drawing, reconstruct, sample as run_sample

    if count < 1:
        raise click.UsageError("-n must be >= 1")
    _check_drawings_output(output)
    run = load_run(run_path, device, checkpoint)
    labels = None
    if condition:
        original, label = read_drawing(condition, run.data_files[0] if run.data_files else None)
        drawings = reconstruct(run, original, count, temperature, greedy, seed, sampled_z, sigma_form)
        if not output.lower().endswith(".npz"):
            drawings, labels = [original] + drawings, [label] + [""] * count
    else:
        drawings = run_sample(run, count, temperature, greedy, seed, sigma_form)
    _write_drawings(run, drawings, output, columns, labels,
                    {"temperature": temperature, "greedy": greedy, "seed": seed, "sigma_form": sigma_form,
                     "reconstruct": condition})
    lengths = [len(d) for d in drawings]
    click.echo(f"wrote {output}: {len(drawings)} drawings ({min(lengths)}-{max(lengths)} points) from "
               f"{run.path} (step {run.step})")


@main.command(context_settings={"show_default": True})
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option("-o", "--output", required=True, help="morph.svg / .png (one row) or .npz.")
@click.option("--steps", type=int, default=10, help="Drawings from A to B, both ends included.")
@click.option("--temperature", "-t", type=float, default=0.1, help=_TEMPERATURE_HELP)
@click.option("--lerp", is_flag=True, help="Linear instead of spherical interpolation of the latent codes.")
@click.option("--show-inputs", is_flag=True, help="Put A and B themselves at the ends of the row.")
@_sampling_options
@_errors_to_click
def interpolate(run_path, first, second, output, steps, temperature, lerp, show_inputs, greedy, sigma_form, seed,
                sampled_z, checkpoint, device, columns):
    """Morph one drawing into another: encode A and B, interpolate their latent codes, decode each.

    \b
    A and B are [FILE.npz:]SPLIT:INDEX (FILE defaults to the run's first dataset). The codes are the
    encoder's mu (deterministic; --sampled-z draws mu + sigma*eps as the reference notebook does),
    interpolated by slerp (lerp when the codes are parallel) and decoded with the same seed at every
    step, so the row changes with z only.

    \b
    Examples:
      sketchprep interpolate runs/sheep test:3 test:40 -o morph.svg
      sketchprep interpolate runs/sheep test:3 valid:7 -o morph.png --steps 8 --temperature 0.2 --show-inputs
    """
    _need_torch()
    from sketchrnn.sample import interpolate as run_interpolate, load_run, read_drawing

    _check_drawings_output(output)
    run = load_run(run_path, device, checkpoint)
    default = run.data_files[0] if run.data_files else None
    (a, label_a), (b, label_b) = read_drawing(first, default), read_drawing(second, default)
    drawings = run_interpolate(run, a, b, steps, temperature, greedy, seed, "lerp" if lerp else "slerp", sampled_z,
                               sigma_form)
    labels = None
    if show_inputs and not output.lower().endswith(".npz"):
        drawings = [a] + drawings + [b]
        labels = [label_a] + [""] * steps + [label_b]
    _write_drawings(run, drawings, output, columns or len(drawings), labels,
                    {"a": label_a, "b": label_b, "steps": steps, "temperature": temperature, "greedy": greedy,
                     "seed": seed, "interpolation": "lerp" if lerp else "slerp"})
    click.echo(f"wrote {output}: {steps} drawings from {label_a} to {label_b} ({run.path}, step {run.step})")


def _read_preset(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except OSError as e:
        raise OptionError(f"--preset {path}: {e.strerror}") from None
    except ValueError as e:
        raise OptionError(f"--preset {path}: not JSON ({e})") from None
    if not isinstance(values, dict):
        raise OptionError(f"--preset {path}: expected a JSON object of hparam: value")
    return {k: v for k, v in values.items() if not k.startswith("_")}  # "_comment" keys are notes


# ---------------------------------------------------------------------------------------------------
# helpers


def _summary(collected, outputs) -> str:
    report = collected.report
    lines = [f"read {report.read} drawings from {len(collected.files)} file(s)"]
    for path, result, _ in outputs:
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

