"""sketchprep's own exceptions. The CLI maps each to a one-line `Error: ...` and an exit code."""
from __future__ import annotations

import re

# Characters that must not reach a terminal or a log from a name: line breaks (a file name holding
# "\nError: ..." would print a second, forged error line), escape sequences, other C0/C1 controls, and
# the surrogates that stand for bytes of a name that is not UTF-8 (they cannot be printed as UTF-8).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def shown(text) -> str:
    """`text` made safe to print on one line: control characters as Python escapes (`\\n`, `\\x1b`)."""
    return _UNSAFE.sub(lambda m: repr(m.group())[1:-1], str(text))


class SketchprepError(Exception):
    """Base class. `where` names the file (and line or element) the problem was found in."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, element: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.element = element

    @property
    def where(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(shown(self.path) + (f":{self.line}" if self.line is not None else ""))
        if self.element:
            parts.append(shown(self.element))
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputError(SketchprepError):
    """A drawing or file that cannot be read as a drawing (malformed JSON, bad SVG, NaN, ...)."""


class UnsafeFileError(SketchprepError):
    """A file that would need code execution to load (a pickle that is not a plain numpy array)."""


class DatasetFormatError(SketchprepError):
    """A `.npz` that does not have the sketch-rnn layout (missing keys, wrong shapes or dtypes)."""


class OptionError(SketchprepError):
    """An option value that cannot work (a split that asks for more drawings than exist, ...)."""


class OutputError(SketchprepError):
    """An output that cannot or must not be written (it is an input, a folder, unwritable, ...)."""


class DependencyError(SketchprepError):
    """A feature whose optional dependency is not installed; the message names the pip command."""


class TooFewDrawingsError(SketchprepError):
    """A run that kept no drawing, or too few for the requested split; nothing is written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (`timeout`, Slurm, `kill`): unwinds like Ctrl-C so temporary files are removed;
    the CLI exits 143 (128 + SIGTERM) with this message."""

    exit_code = 143

    def __init__(self, message: str = "terminated (SIGTERM); outputs are written whole or not at all, "
                                      "nothing was left half-written"):
        super().__init__(message)
