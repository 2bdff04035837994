"""The `sketchprep` command group and what every command shares: the error boundary, progress bars.

Errors from the library (`SketchprepError`) become `Error: <where>: <what>` on stderr with exit 1;
usage errors exit 2. Data goes to stdout, progress bars to stderr (only on a terminal, never with
--quiet).
"""
from __future__ import annotations

import functools
import os
import shlex
import sys

import click

from .. import __version__
from ..errors import OptionError, SketchprepError


def handle_errors(fn):
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


def progress_bar(quiet: bool, **kwargs):
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


def command_line() -> str | None:
    """The command as typed (for the dataset's meta), when run from the shell."""
    if len(sys.argv) > 1 and sys.argv[1] in main.commands:
        return "sketchprep " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return None


def need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise click.ClickException("this command needs PyTorch: install the train extra: "
                                   "pip install 'sketchprep[train]'") from None


def expand_data(paths) -> list[str]:
    import glob

    out = []
    for p in paths:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") and not os.path.exists(p) else [p]
        if not hits:
            raise click.UsageError(f"no file matches {p!r}")
        out += hits
    return out


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
