"""`sketchprep export DATA.npz`: a dataset in the layout another model or tool reads.

`ExportOptions` is checked before anything is read (`format_for` picks the format from OUT's name where
that is unambiguous, `check_export_output` refuses an OUT that cannot be written, `require` a missing
optional dependency); `export_dataset` then calls the format's writer, which writes OUT atomically (a file
through `atomic_output`, a folder through `atomic_folder`: written beside OUT, then renamed).

Every split, id, class and (with `convert --keep-time`) time of the dataset goes along; what a format
cannot hold (a drawing longer than stroke5's --max-len, with more strokes than points's --resample) is
left out and counted in the summary.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from ..dataset import SketchDataset
from ..errors import DependencyError, OptionError, OutputError


@dataclass(frozen=True)
class Format:
    name: str
    folder: bool                 # OUT is a folder of files (written beside and renamed)
    suffixes: tuple[str, ...]    # what OUT ends with (a file format); a folder format takes no suffix
    options: tuple[str, ...]     # the format's own options (ExportOptions fields)
    needs: str | None            # the optional dependency: "pyarrow" or "cairo"
    what: str


FORMATS = {f.name: f for f in (
    Format("parquet", False, (".parquet", ".pq"), (), "pyarrow",
           "one row per drawing (split, index, id, label, word, strokes, ...) in a Parquet file"),
    Format("ndjson", True, (), (), None, "Google's simplified ndjson layout, one SPLIT.ndjson per split"),
    Format("svg", True, (), (), None, "one SPLIT/WORD/ID.svg per drawing"),
    Format("stroke5", False, (".npz",), ("max_len", "normalize"), None,
           "per split the padded (N, N_max + 1, 5) float32 array sketch-rnn trains on"),
    Format("points", False, (".npz",), ("resample",), None,
           "absolute (x, y, pen) points per drawing, ragged or resampled to (N, n, 3)"),
    Format("bitmap", False, (".npz",), ("size",), "cairo",
           "per split (N, S, S) uint8 images rendered as Google's numpy_bitmap"),
    Format("png", True, (), ("size",), "cairo", "an ImageFolder tree SPLIT/WORD/ID.png"),
)}

FILE_SUFFIXES = {".ndjson", ".jsonl", ".json", ".gz", ".svg", ".png", ".npy"}  # never a folder format's OUT
OPTION_NAMES = {"max_len": "--max-len", "normalize": "--normalize", "resample": "--resample", "size": "--size"}
INSTALL = {"pyarrow": "pip install 'sketchprep[parquet]'", "cairo": "pip install 'sketchprep[images]'"}
MAX_SIDE = 4096        # --size: the largest image side
MAX_RESAMPLE = 100_000  # --resample: the most points per drawing
MAX_STEPS = 100_000    # --max-len: the longest padded sketch


@dataclass(frozen=True)
class ExportOptions:
    """What `export DATA.npz` writes; every field but `format` is an option of one format."""

    format: str
    max_len: int | None = None     # stroke5: N_max, the padded length (default: the longest sketch + 1)
    normalize: bool = False        # stroke5: divide offsets by the train split's scale factor, as training does
    resample: int | None = None    # points: resample every drawing to exactly this many points
    size: int | None = None        # bitmap, png: image side in pixels (default 28)

    def __post_init__(self):
        fmt = FORMATS.get(self.format)
        if fmt is None:
            raise OptionError(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}")
        for name, flag in OPTION_NAMES.items():
            given = getattr(self, name) not in (None, False)
            if given and name not in fmt.options:
                owners = [f.name for f in FORMATS.values() if name in f.options]
                raise OptionError(f"{flag} goes with --format {' or '.join(owners)}, not {self.format}")
        _bounded(self.max_len, "--max-len", 1, MAX_STEPS)
        _bounded(self.resample, "--resample", 1, MAX_RESAMPLE)
        _bounded(self.size, "--size", 1, MAX_SIDE)

    @property
    def side(self) -> int:
        return self.size if self.size is not None else 28


def _bounded(value, flag: str, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise OptionError(f"{flag} must be a whole number from {low} to {high:,}, not {value!r}")


def format_for(out: str, fmt: str | None) -> str:
    """The format to write OUT in: `fmt` when given (checked against OUT's name), else the one OUT's name says
    (`.parquet`); raises `OptionError` naming --format when the name says nothing certain."""
    suffix = os.path.splitext(os.path.normpath(out))[1].lower() if out else ""
    if fmt is None:
        by_suffix = [f.name for f in FORMATS.values() if suffix and suffix in f.suffixes]
        if len(by_suffix) == 1:
            return by_suffix[0]
        if by_suffix:
            raise OptionError(f"-o {out}: a {suffix} file can be {', '.join(by_suffix)}: say which with --format")
        folders = [f.name for f in FORMATS.values() if f.folder]
        raise OptionError(f"-o {out}: say which format with --format ({', '.join(FORMATS)}); only .parquet is "
                          f"recognised by its name ({', '.join(folders)} write a folder)")
    spec = FORMATS.get(fmt)
    if spec is None:
        raise OptionError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if spec.folder:
        known = {s for f in FORMATS.values() for s in f.suffixes} | FILE_SUFFIXES
        if suffix in known:
            raise OptionError(f"-o {out}: --format {fmt} writes a folder; give a folder name, not a {suffix} file")
    elif suffix not in spec.suffixes:
        raise OptionError(f"-o {out}: --format {fmt} writes a {' or '.join(spec.suffixes)} file; "
                          f"name it e.g. {os.path.splitext(out)[0] or 'out'}{spec.suffixes[0]}")
    return fmt


def require(fmt: str) -> None:
    """Raise `DependencyError` with the pip command when the format's optional dependency is missing."""
    needs = FORMATS[fmt].needs
    if needs is None:
        return
    try:
        if needs == "pyarrow":
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        else:
            import cairocffi  # noqa: F401  (raises OSError when the cairo library itself is missing)
    except (ImportError, OSError) as e:
        what = "pyarrow" if needs == "pyarrow" else "cairo (the cairocffi binding and the cairo library)"
        raise DependencyError(f"--format {fmt} needs {what}, which cannot be loaded ({str(e).splitlines()[0]}). "
                              f"Install it: {INSTALL[needs]}") from None


def check_export_output(out: str, fmt: str, inputs: list[str]) -> None:
    """Refuse OUT before any work: an input, an unwritable place, a folder where a file goes (and the other way
    round), or a folder output that already holds files."""
    from ..outputs import check_output

    folder = FORMATS[fmt].folder
    check_output(out, inputs, folder=folder, option="-o")
    if folder and os.path.isdir(out) and any(os.scandir(out)):
        raise OutputError(f"exists and is not empty; --format {fmt} writes a whole folder. Remove it or give "
                          "another name", path=out)


@dataclass
class ExportSummary:
    """What an export wrote: drawings per split, what was left out and why, and a line of notes per detail."""

    path: str
    format: str
    counts: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"path": self.path, "format": self.format, "counts": self.counts, "dropped": self.dropped,
                "notes": self.notes}


def export_dataset(ds: SketchDataset, out: str, opts: ExportOptions,
                   progress: Callable[[int], None] | None = None) -> ExportSummary:
    """Write `ds` to OUT in `opts.format` (atomically); `progress(n)` after every n drawings written."""
    require(opts.format)
    from importlib import import_module

    writer = import_module(f".{opts.format}", __package__)
    return writer.write(ds, out, opts, progress or (lambda n: None))


def total_drawings(ds: SketchDataset) -> int:
    return sum(len(v) for v in ds.splits.values())
