"""`convert` and `merge`: drawings in, a sketch-rnn .npz out."""
from __future__ import annotations

import json
import os

import click

from .. import limits
from .app import Checked, bounded, command_line, default_workers, handle_errors, limit_option, progress_bar, main


@main.command(context_settings={"show_default": True})
@click.argument("args", nargs=-1, required=True, metavar="INPUT... OUT.npz")
@click.option("--epsilon", type=bounded(limits.EPSILON), default=2.0,
              help="RDP tolerance in output units (pixels of the --size box); 0 keeps the points as they are: "
                   "no simplification, and no 1-unit resampling of raw Quick, Draw! drawings.")
@click.option("--distance", type=click.Choice(["line", "segment"]), default="line",
              help="RDP distance: 'line' (original Douglas-Peucker, as the rdp package; closest to Google's "
                   "simplified data) or 'segment' (no dropped point is farther than epsilon).")
@click.option("--max-len", type=bounded(limits.ROWS), default=250, help="Longest sketch kept, in stroke-3 rows.")
@click.option("--fit", is_flag=True,
              help="Re-simplify a too-long sketch with a growing epsilon (up to 5x) instead of dropping it.")
@click.option("--size", type=bounded(limits.SIZE), default=255.0,
              help="Scale each drawing so its larger extent is SIZE units; 0 keeps source units.")
@click.option("--split", "split_text", type=Checked("sketchprep.convert:parse_split", "A/B/C"), default="0.9/0.05/0.05",
              help="train/valid/test as fractions (all parts <= 1; 1/0/0 puts everything in train) or counts "
                   "(70000/2500/2500). Valid and test get their share, train the rest.")
@click.option("--multiple", type=bounded(limits.MULTIPLE), default=100,
              help="Round every split size down (never up) to a multiple of this; 1 keeps every drawing. A run "
                   "that would leave a split empty stops before writing and names a --multiple that works.")
@click.option("--seed", type=bounded(limits.SEED), default=0, help="Seed of the shuffle that assigns drawings to splits.")
@click.option("--word", "words", multiple=True, help="Keep only Quick, Draw! drawings of this word (repeatable).")
@click.option("--recognized-only", is_flag=True, help="Keep only drawings the Quick, Draw! game recognised.")
@click.option("--include-fills", is_flag=True, help="SVG: also keep the outlines of shapes that are filled but not stroked.")
@click.option("--keep-time", is_flag=True,
              help="Raw Quick, Draw! input: keep every kept point's time in ms (its own t, or interpolated along "
                   "the stroke for a resampled point) as <split>_times in OUT.")
@click.option("--by-word", "by_word", type=click.Path(file_okay=False), default=None,
              help="Write one DIR/<word>.npz per class (as Google ships them) instead of OUT.npz.")
@click.option("--workers", type=bounded(limits.WORKERS), default=None, show_default="all cores",
              help="Worker processes, for reading and for writing (the same output for any number); inputs "
                   "under 8 MB use one.")
@click.option("--shard", type=Checked("sketchprep.shards:parse_shard"), default=None, metavar="I/N",
              help="Process only shard I of N (0-based) and write a shard file to OUT; combine with `merge`.")
@click.option("--strict", is_flag=True, help="Stop at the first bad drawing or file with exit 1; write nothing.")
@limit_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary.")
@handle_errors
def convert(args, epsilon, distance, max_len, fit, size, split_text, multiple, seed, words, recognized_only,
            include_fills, keep_time, by_word, workers, shard, strict, limits, as_json, quiet):
    """Convert drawings (Quick, Draw! .ndjson / .ndjson.gz, '-' for stdin, or .bin; .svg line art, one
    drawing per file, its folder's name as its class; folders are searched recursively) into a sketch-rnn
    .npz with train/valid/test splits.

    Every drawing is normalised to the --size box, simplified with RDP at --epsilon (Quick, Draw! raw
    drawings are first resampled at 1 unit, as Google did; Google's simplified drawings pass through
    unchanged at the defaults; an SVG's strokes are what a browser strokes, curves sampled at 1 unit),
    turned into int16 stroke-3 and kept if it has at most --max-len rows. `--epsilon 0 --size 0` reads back
    what `export --format ndjson` or `svg` wrote, drawing for drawing.
    Duplicates are dropped, so no drawing is in two splits. Bad drawings are counted and reported
    (file:line), not fatal, unless --strict. OUT is written atomically; an OUT that is an input, a
    folder or unwritable is refused before reading, and a run that keeps no drawing (or too few for
    the split) exits 1 and leaves OUT as it was.

    \b
    Examples:
      sketchprep convert sketchprep/data/quickdraw_sample sample.npz --multiple 1
      sketchprep convert cat.ndjson dog.ndjson pets.npz --recognized-only
      sketchprep convert quickdraw/ --by-word datasets/ --split 70000/2500/2500
      sketchprep convert icons/ icons.npz --include-fills --split 1/0/0
      zcat cat.ndjson.gz | sketchprep convert - cat.npz --epsilon 1.0 --fit
    """
    from ..convert import ConvertOptions, collect, parse_split, run
    from ..outputs import sigterm_raises
    from ..shards import parse_shard, write_shard

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
        workers = 1 if small else default_workers()
    opts = ConvertOptions(epsilon=epsilon, distance=distance, max_len=max_len, fit=fit, size=size,
                          split=parse_split(split_text), multiple=multiple, seed=seed,
                          words=frozenset(words) if words else None, recognized_only=recognized_only,
                          strict=strict, workers=workers, include_fills=include_fills, keep_time=keep_time,
                          limits=limits)
    shard_spec = parse_shard(shard) if shard else None
    _check_outputs(args, out, None if shard_spec else by_word)
    with sigterm_raises():
        if shard_spec:
            with progress_bar(quiet, unit=" drawings", desc="convert") as bar:
                collected = collect(args, opts, progress=bar.update, shard=shard_spec)
            write_shard(out, collected, opts, shard_spec)
            if not quiet:
                click.echo(f"read {collected.report.read} drawings; wrote shard {shard} with {collected.kept.n} kept "
                           f"drawings to {out} (combine all shards with `sketchprep merge`)")
            return
        with progress_bar(quiet, unit=" drawings", desc="convert") as bar:
            collected, outputs = run(args, opts, out, by_word, command_line(), progress=bar.update)
    _print_outputs(collected, outputs, as_json, quiet)


def _check_outputs(inputs, out, by_word) -> None:
    """Refuse OUT or DIR before any input is read (see sketchprep.outputs.check_output)."""
    from ..outputs import check_output

    if out is not None:
        check_output(out, inputs, option="OUT")
    if by_word is not None:
        check_output(by_word, inputs, folder=True, option="--by-word DIR")


@main.command(context_settings={"show_default": True})
@click.argument("args", nargs=-1, required=True, metavar="SHARD.npz... OUT.npz")
@click.option("--by-word", "by_word", type=click.Path(file_okay=False), default=None,
              help="Write one DIR/<word>.npz per class instead of OUT.npz.")
@click.option("--split", "split_text", type=Checked("sketchprep.convert:parse_split", "A/B/C"), default=None,
              show_default="the shards' --split",
              help="Re-split: train/valid/test as fractions or counts.")
@click.option("--multiple", type=bounded(limits.MULTIPLE), default=None, show_default="the shards' --multiple",
              help="Round every split size down (never up) to a multiple of this; 1 keeps every drawing.")
@click.option("--seed", type=bounded(limits.SEED), default=None, show_default="the shards' --seed", help="Shuffle seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
@handle_errors
def merge(args, by_word, split_text, multiple, seed, as_json, quiet):
    """Combine the shard files of `convert --shard I/N` into exactly the .npz that one `convert` run over
    all the inputs writes (same drawings, same splits for the same seed).

    \b
    Example (4 shards, e.g. one per machine or per Slurm array task):
      for i in 0 1 2 3; do
        sketchprep convert quickdraw/ shard-$i.npz --shard $i/4 &
      done; wait
      sketchprep merge shard-*.npz quickdraw.npz
    """
    from ..convert import Spill, parse_split, write_outputs
    from ..outputs import sigterm_raises
    from ..shards import merge_shards, with_split_overrides

    args = list(args)
    if by_word is None:
        if len(args) < 2:
            raise click.UsageError("give the shard files and the OUT.npz to write (or --by-word DIR)")
        out = args.pop()
        if not out.endswith(".npz"):
            raise click.UsageError(f"OUT must end in .npz (got {out!r}); it is the last argument")
    else:
        out = None
    _check_outputs(args, out, by_word)
    by_label = by_word is not None
    with sigterm_raises(), Spill(out if by_word is None else by_word, by_label=by_label, on_disk=by_label) as spill:
        collected, opts = merge_shards(args, spill)
        opts = with_split_overrides(opts, parse_split(split_text) if split_text else None, multiple, seed)
        outputs = write_outputs(collected, opts, out, by_word, command_line())
    _print_outputs(collected, outputs, as_json, quiet)


def _print_outputs(collected, outputs, as_json: bool, quiet: bool) -> None:
    if quiet:
        return
    if as_json:
        click.echo(json.dumps({"outputs": [{"path": p, **m} for p, _, m in outputs],
                               "problems": [str(p) for p in collected.report.problems]}, indent=2))
    else:
        click.echo(_summary(collected, outputs))


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


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
    moved = [(path, result.notes) for path, result, _ in outputs if result.notes]
    if len(moved) > 5:
        lines.append(f"rounding to --multiple moved the splits of {len(moved)} files far from what was asked "
                     "(asked vs written: split_notes in each file's meta)")
    else:
        lines += [f"split of {path} moved by rounding to --multiple: {note}" for path, notes in moved for note in notes]
    renamed = outputs[0][2].get("renamed_words", {}) if outputs else {}
    if renamed:
        lines.append(f"{len(renamed)} word(s) written under another file name (also in each file's meta):")
        lines += [f"  {_short(repr(word))} -> {name}" for word, name in sorted(renamed.items())]
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

