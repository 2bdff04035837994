"""The `sketchprep` command group and what every command shares: the error boundary, progress bars.

Errors from the library (`SketchprepError`) become `Error: <where>: <what>` on stderr with exit 1;
usage errors exit 2. Data goes to stdout, progress bars to stderr (only on a terminal, never with
--quiet).
"""
from __future__ import annotations

import errno
import functools
import os
import re
import shlex
import sys

import click

from .. import __version__
from ..errors import OptionError, SketchprepError, shown
from ..files import NotRegularFileError
from ..limits import Bound


class Interrupted(click.ClickException):
    exit_code = 130  # 128 + SIGINT, what shells report for Ctrl-C


# What to do about the OSErrors a user can cause (errno -> the fix that goes after the message).
_OS_FIXES = {
    errno.ENOENT: "Check the path",
    errno.EACCES: "Check its permissions, or use another path",
    errno.EPERM: "Check its permissions, or use another path",
    errno.EROFS: "Write the output to a writable folder",
    errno.ENOSPC: "Free some disk space, or write the output elsewhere",
    errno.EDQUOT: "Free some space under your quota, or write the output elsewhere",
    errno.EISDIR: "Give a file name, not a folder",
    errno.ENOTDIR: "A part of the path is a file, not a folder: check the path",
    errno.ENAMETOOLONG: "Use a shorter file name",
    errno.EEXIST: "Remove it or choose another name",
    errno.EMFILE: "Raise the open-file limit (ulimit -n) or give fewer inputs",
}


def _os_error_text(e: OSError) -> str:
    what = e.strerror or str(e) or type(e).__name__
    name = e.filename2 if e.filename2 is not None else e.filename  # a rename names its destination second
    if name is not None:  # name the output, not the temporary file it is written through (dataset.atomic_output)
        name = re.sub(r"(^|/)\.([^/]+?)(\.[0-9]+)?\.[^./]+\.(sketchprep-)?tmp$", r"\1\2", os.fsdecode(name))
        if len(name) > 160:  # a name too long for the file system should not fill the terminal
            name = f"{name[:80]}...{name[-40:]}"
    fix = ("Give a regular file (not a pipe, a device or a link to one)" if isinstance(e, NotRegularFileError)
           else _OS_FIXES.get(e.errno))
    text = f"{what}" + (f". {fix}" if fix else "")
    return f"{os.fsdecode(name)}: {text}" if name is not None else text


# What torch's allocators say when an allocation fails: they raise RuntimeError (torch.OutOfMemoryError
# on CUDA), not MemoryError.
_TORCH_OOM = ("DefaultCPUAllocator: can't allocate memory", "not enough memory", "out of memory")


def _torch_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, RuntimeError) and (type(e).__name__ == "OutOfMemoryError"
                                            or any(text in str(e) for text in _TORCH_OOM))


def translate_error(e: BaseException) -> click.ClickException | None:
    """The one-line click error for a failure the user can cause (None for a bug, which keeps its traceback).

    Library errors and failures of the environment (files, disk, memory, encodings, Ctrl-C) exit 1 with
    `Error: <file>: <what>. <fix>`; option errors are usage errors (exit 2); Ctrl-C exits 130. Control
    characters in the message (a file name holding a line break, an escape sequence) are shown escaped,
    so the error is always one line and cannot print a forged one.
    """
    mapped = _translate(e)
    if mapped is not None:
        mapped.message = shown(mapped.message)
    return mapped


def _translate(e: BaseException) -> click.ClickException | None:
    if isinstance(e, click.ClickException):
        return e
    if isinstance(e, OptionError):
        return click.UsageError(str(e))
    if isinstance(e, SketchprepError):
        return click.ClickException(str(e))
    if isinstance(e, KeyboardInterrupt):  # Ctrl-C, or a subclass raised for SIGTERM that may carry its own code
        stopped = Interrupted(str(e) or "interrupted (Ctrl-C); outputs are written whole or not at all")
        stopped.exit_code = getattr(e, "exit_code", Interrupted.exit_code)
        return stopped
    if isinstance(e, MemoryError) or _torch_out_of_memory(e):
        return click.ClickException("out of memory. Give a smaller input, lower the batch or grid size, "
                                    "or run on a machine with more memory")
    if isinstance(e, UnicodeError):
        where = getattr(e, "filename", None)
        text = (f"cannot decode text as {e.encoding} ({e.reason} at byte {e.start})"
                if isinstance(e, UnicodeDecodeError) else str(e))
        return click.ClickException(f"{where + ': ' if where else ''}{text}. Save the file as UTF-8")
    if isinstance(e, OSError) and e.errno != errno.EPIPE:  # EPIPE (stdout closed by `| head`): click exits quietly
        return click.ClickException(_os_error_text(e))
    return None


def handle_errors(fn):
    """Turn library errors into one-line click errors (exit 1) and option errors into usage errors (exit 2).

    `main` applies the same boundary around every command (see `SafeGroup`); the decorator also keeps a
    command's errors one line when it is invoked on its own (tests, other groups)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as e:
            mapped = translate_error(e)
            if mapped is None or mapped is e:
                raise
            raise mapped from None

    return wrapper


class SafeGroup(click.Group):
    """A group whose every (sub)command runs inside the error boundary, decorated or not."""

    def invoke(self, ctx):
        if sys.stdin is None:  # started with stdin closed (`<&-`): '-' then reads as an empty input
            sys.stdin = open(os.devnull)  # noqa: SIM115  (lives as long as the process, like a real stdin)
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as e:
            mapped = translate_error(e)
            if mapped is None or mapped is e:
                raise
            raise mapped from None


class _Bounded:
    """A number within both ends of a `sketchprep.limits.Bound` (NaN and infinity never are). A value
    outside is a usage error (exit 2) in the words every other place that takes the number uses:
    `--cell must be a number from 8 to 1024, not nan`. Click shows the range in --help."""

    def __init__(self, bound: Bound):
        super().__init__(bound.low, bound.high, min_open=bound.low_open, max_open=bound.high_open)
        self.bound = bound

    def convert(self, value, param, ctx):
        try:
            return self.bound.parse(value, option_label(param))
        except OptionError as e:
            raise click.UsageError(e.message, ctx) from None


class WholeNumber(_Bounded, click.IntRange):
    pass


class Number(_Bounded, click.FloatRange):
    pass


def bounded(bound: Bound) -> click.ParamType:
    """The option type of every number a command takes: `type=bounded(limits.CELL)`."""
    return WholeNumber(bound) if bound.whole else Number(bound)


class Checked(click.ParamType):
    """Text checked by a library parser when the command line is read (--split, --max-time, --device),
    so that a bad value is a usage error before any work, and a recipe value is checked the same way.
    The option's value stays the text; the command parses it again."""

    name = "text"

    def __init__(self, check: str, metavar: str | None = None):
        self.check, self.metavar = check, metavar   # check: "package.module:function", imported when used

    def get_metavar(self, param, ctx=None):
        return self.metavar

    def convert(self, value, param, ctx):
        import importlib

        module, _, function = self.check.partition(":")
        try:
            getattr(importlib.import_module(module), function)(value)
        except OptionError as e:
            raise click.UsageError(e.message, ctx) from None
        return value


def option_label(param) -> str:
    """'--cell', '-n': how a message names an option (its long name when it has one)."""
    if param is None:
        return "the value"
    opts = getattr(param, "opts", None) or [param.name or "the value"]
    return next((o for o in opts if o.startswith("--")), opts[0])


def progress_bar(quiet: bool, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=quiet or not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True, **kwargs)


@click.group(cls=SafeGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 80})
@click.version_option(__version__, prog_name="sketchprep")
def main():
    """Turn vector drawings into sketch-rnn datasets, check them, and train on them.

    \b
    Example, on the sample drawings bundled with the package:
      sketchprep convert sketchprep/data/quickdraw_sample sample.npz --multiple 1

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
    from ..files import glob_paths

    out = []
    for p in paths:
        hits = glob_paths(p) if any(c in p for c in "*?[") and not os.path.exists(p) else [p]
        if not hits:
            raise click.UsageError(f"no file matches {p!r}")
        out += hits
    return out


def default_workers() -> int:
    from ..limits import available_cores

    return max(1, available_cores())


def limit_option(fn, expose: bool = True, prefix: str = ""):
    """`--limit NAME=VALUE` (repeatable) -> a `sketchprep.limits.Limits` parameter named `limits` (or,
    with expose=False, in `ctx.meta["limits"]`)."""
    def parse(ctx, param, values):
        from ..errors import OptionError
        from ..limits import parse_limits

        try:
            ctx.meta["limits"] = parse_limits(values)
        except OptionError as e:
            raise click.BadParameter(e.message) from None
        return ctx.meta["limits"]

    return click.option("--limit", "limits", multiple=True, metavar="NAME=VALUE", callback=parse,
                        expose_value=expose,
                        help=(prefix + "raise" if prefix else "Raise") + " a bound on what one input may cost: "
                        "points-per-stroke, points-per-drawing, line-bytes, gzip-ratio or svg-cost (repeatable; see docs/limits.md)."
                        )(fn)
