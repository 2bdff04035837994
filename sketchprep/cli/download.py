"""`download`: public drawing data sets fetched by name."""
from __future__ import annotations

import click

from .. import limits
from .app import bounded, handle_errors, main, progress_bar


@main.group()
def download():
    """Fetch public drawing data sets and pretrained models by name.

    \b
    Examples:
      sketchprep download quickdraw cat dog -o quickdraw/
      sketchprep download model cat owl -o models/
    """


@download.command(context_settings={"show_default": True})
@click.argument("words", metavar="WORD...", nargs=-1)
@click.option("--simplified", "fmt", flag_value="simplified", default=True,
              help="Simplified ndjson: 255 px box, RDP 2.0, no timing (full/simplified/WORD.ndjson).")
@click.option("--raw", "fmt", flag_value="raw", help="Raw ndjson with timing (full/raw/WORD.ndjson).")
@click.option("--binary", "fmt", flag_value="binary", help="The simplified drawings as .bin (full/binary/WORD.bin).")
@click.option("--npz", "fmt", flag_value="npz",
              help="sketch-rnn stroke-3, 70000/2500/2500, ready to train (sketchrnn/WORD.npz).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=".", metavar="DIR",
              help="Folder to write WORD.ndjson (.bin, .npz) into.")
@click.option("--base-url", envvar="SKETCHPREP_QUICKDRAW_URL", show_envvar=True, metavar="URL",
              default="https://storage.googleapis.com/quickdraw_dataset",
              help="Where the files are: Google's bucket or a mirror with the same layout.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, show_default=False, metavar="DIR",
              help="Cache folder [default: $SKETCHPREP_CACHE, else ~/.cache/sketchprep].")
@click.option("--no-cache", is_flag=True, help="Download straight into --output, keeping no copy in the cache.")
@click.option("--timeout", type=bounded(limits.TIMEOUT), default=60.0, metavar="SECONDS",
              help="Give up on a server that sends nothing for this long (a cut transfer is resumed 3 times).")
@click.option("--list", "list_words", is_flag=True, help="Print the 345 words, one per line, and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no summary.")
@handle_errors
def quickdraw(words, fmt, out_dir, base_url, cache_dir, no_cache, timeout, list_words, quiet):
    """Fetch Google's public Quick, Draw! files for each WORD.

    WORD is one of the 345 Quick, Draw! words (quote words with spaces; a typo gets suggestions). Each
    file is checked against the size the server announced and, for Google's bucket, its MD5. A download
    that is cut off is kept as a .part file and resumed by the next run; files already in the cache are
    not fetched again. The data is Google's, under CC BY 4.0.

    \b
    Examples:
      sketchprep download quickdraw cat "hot dog" -o quickdraw/
      sketchprep download quickdraw sheep --npz -o datasets/
      sketchprep download quickdraw --list
    """
    from ..download import download_quickdraw, quickdraw_words

    if list_words:
        click.echo("\n".join(quickdraw_words()))
        return
    if not words:
        raise click.UsageError("give at least one WORD (sketchprep download quickdraw --list prints them)")

    def progress(total, initial, desc):
        return progress_bar(quiet, total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                            unit_divisor=1024, leave=False)

    fetched = download_quickdraw(list(words), fmt, out_dir, base=base_url, cache_dir=cache_dir,
                                 use_cache=not no_cache, timeout=timeout, progress=progress)
    if quiet:
        return
    for f in fetched:
        click.echo(f"{f.path}  {_size(f.size)}  {f.how}, {f.checks}")


@download.command(context_settings={"show_default": True})
@click.argument("names", metavar="NAME...", nargs=-1)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=".", metavar="DIR",
              help="Folder to write NAME.gen.json into.")
@click.option("--large", is_flag=True,
              help="From large_models/ (the main set, some models with more units) instead of models/ (512 units).")
@click.option("--base-url", envvar="SKETCHPREP_SKETCHRNN_URL", show_envvar=True, metavar="URL",
              default="https://storage.googleapis.com/quickdraw-models/sketchRNN",
              help="Where the models are: Google's bucket or a mirror with the same layout.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, show_default=False, metavar="DIR",
              help="Cache folder [default: $SKETCHPREP_CACHE, else ~/.cache/sketchprep].")
@click.option("--no-cache", is_flag=True, help="Download straight into --output, keeping no copy in the cache.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, metavar="SECONDS",
              help="Give up on a server that sends nothing for this long (a cut transfer is resumed 3 times).")
@click.option("--list", "list_names", is_flag=True, help="Print the model names, one per line, and exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no summary.")
@handle_errors
def model(names, out_dir, large, base_url, cache_dir, no_cache, timeout, list_names, quiet):
    """Fetch Google's published sketch-rnn models (.gen.json) for each NAME.

    NAME is one of the ~100 models magenta.js lists (cat, owl, the_mona_lisa, catbus, everything, ...;
    --list prints them). Each file is checked, cached and resumed as `download quickdraw` does. Turn
    one into a run with `sketchprep import NAME.gen.json --out runs/NAME` (docs/pretrained.md). The
    models are Google's, published for magenta.js (Apache-2.0).

    \b
    Examples:
      sketchprep download model cat owl -o models/
      sketchprep download model dog --large -o models/large/
      sketchprep download model --list
    """
    from ..download import download_models, sketchrnn_models

    if list_names:
        click.echo("\n".join(sketchrnn_models()))
        return
    if not names:
        raise click.UsageError("give at least one NAME (sketchprep download model --list prints them)")

    def progress(total, initial, desc):
        return progress_bar(quiet, total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                            unit_divisor=1024, leave=False)

    fetched = download_models(list(names), out_dir, large=large, base=base_url, cache_dir=cache_dir,
                              use_cache=not no_cache, timeout=timeout, progress=progress)
    if quiet:
        return
    for f in fetched:
        click.echo(f"{f.path}  {_size(f.size)}  {f.how}, {f.checks}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
