"""sketchprep's own exceptions. The CLI maps each to a one-line `Error: ...` and an exit code."""
from __future__ import annotations


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
            parts.append(str(self.path) + (f":{self.line}" if self.line is not None else ""))
        if self.element:
            parts.append(self.element)
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


class TooFewDrawingsError(SketchprepError):
    """A run that kept no drawing, or too few for the requested split; nothing is written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (`timeout`, Slurm, `kill`): unwinds like Ctrl-C so temporary files are removed;
    the CLI exits 143 (128 + SIGTERM) with this message."""

    exit_code = 143

    def __init__(self, message: str = "terminated (SIGTERM); outputs are written whole or not at all, "
                                      "nothing was left half-written"):
        super().__init__(message)
