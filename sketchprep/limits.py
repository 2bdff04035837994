"""Bounds: on what one input may cost the readers, and on every number a user gives.

`Limits`: resource bounds of the input readers, checked before the memory they guard is allocated.
A drawing over a bound is dropped and reported (`too_many_points`, `line_too_long`), a file over
one is reported with its path (`too_large`); the run goes on. `--limit NAME=VALUE` raises a bound.

`Bound`: the range of one kind of number (a seed, a cell size, a temperature, an hparam), with both
ends; NaN and infinity are never inside. The options of every command, `--set` hparams, recipe and
preset values and the fields of files that hold such numbers are checked against the same `Bound`,
so a value is refused with the same words wherever it comes from (docs/limits.md lists them).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields

from .errors import OptionError, shown


@dataclass(frozen=True)
class Bound:
    """low..high (either end open when asked); `whole`: integers only."""

    low: float
    high: float
    whole: bool = False
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """'a whole number from 1 to 10000', 'a number > 0 and <= 10'."""
        kind = "a whole number" if self.whole else "a number"
        low, high = _number_text(self.low), _number_text(self.high)
        if not (self.low_open or self.high_open):
            return f"{kind} from {low} to {high}"
        return f"{kind} {'>' if self.low_open else '>='} {low} and {'<' if self.high_open else '<='} {high}"

    def contains(self, number) -> bool:
        above = number > self.low if self.low_open else number >= self.low
        below = number < self.high if self.high_open else number <= self.high
        return bool(above and below)   # NaN fails both comparisons

    def parse(self, value, name: str) -> int | float:
        """A number, or text as typed (`1e3` is a whole number too), within the bound -> the number
        (int when `whole`, else float). Anything else: OptionError '<name> must be <describe>, not <value>'."""
        number = _to_number(value, self.whole)
        if number is None or not self.contains(number):
            raise OptionError(f"{name} must be {self.describe()}, not {value_text(value)}")
        return number if self.whole else float(number)


def _number_text(x: float) -> str:
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:.10f}".rstrip("0") if abs(x) < 1e-4 else f"{x:g}"   # 0.000001, not 1e-06


def value_text(value) -> str:
    """A value as an error message shows it: as typed, cut short when long (400 digits stay readable),
    control characters escaped (errors.shown: a value cannot print a second line)."""
    text = value if isinstance(value, str) else repr(value)
    return shown(text if len(text) <= 40 else f"{text[:24]}... ({len(text)} characters)")


def _to_number(value, whole: bool) -> int | float | None:
    """int or float (None when `value` is no number of that kind: bools, text that is not one, 1.5 for
    a whole number). Huge integers stay exact ints, so they compare with the bound instead of overflowing."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text)
        except ValueError:   # not an integer literal (or over Python's 4300-digit limit)
            pass
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if whole:
            return int(value) if value.is_integer() else None
        return value
    return None


def available_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# The bounds of the numbers users give (docs/limits.md, "Numbers"). Each is far beyond any use that
# works, and low enough that nothing the number sizes can exhaust memory or time before it is checked.
SEED = Bound(0, 2**32 - 1, whole=True)               # numpy's and torch's seeders take this range
ROWS = Bound(1, 100_000, whole=True)                 # --max-len, hparam max_seq_len, complete --keep
KEEP_ALL_LENGTHS = 2**31 - 1   # not an option: the max_len of a run that drops no drawing for its length (stats)
EPSILON = Bound(0, 1_000_000)                        # RDP tolerance (ndjson coordinates are at most 10^6)
SIZE = Bound(0, 32767)                               # --size: offsets are int16, so no larger box fits
RESAMPLE_SPACING = Bound(0.001, 1_000_000)           # not an option: convert's resampling step, read back from meta
MULTIPLE = Bound(1, 100_000, whole=True)             # --multiple
SPLIT_COUNT = Bound(0, 10**9, whole=True)            # one part of --split A/B/C given as counts
SPLIT_FRACTION = Bound(1e-6, 1)                      # a non-zero part of --split given as fractions
BATCH = Bound(1, 100_000, whole=True)                # validate --batch-size, hparam batch_size
DRAWINGS = Bound(1, 10_000, whole=True)              # -n of render, sample, complete
COLUMNS = Bound(1, 10_000, whole=True)               # --columns of every grid
CELL = Bound(8, 1024)                                # render --cell, in pixels
GRID_PIXELS = 2**24   # a PNG grid's pixels (16.8 M, e.g. 4096 x 4096), drawn 3 x 3 supersampled: 707 MB measured
INDEX = Bound(-10**12, 10**12, whole=True)           # render --index
COMPARE = Bound(0, 1_000_000, low_open=True)         # render --compare EPS
TEMPERATURE = Bound(0.001, 10)                       # sampling temperature tau (--greedy is the limit tau -> 0)
INTERPOLATION_STEPS = Bound(2, 1000, whole=True)     # interpolate --steps
STEPS = Bound(1, 10**9, whole=True)                  # train --max-steps, --log-every, hparams num_steps, save_every
PATIENCE = Bound(0, 10**6, whole=True)               # train --patience
GRID_SAMPLES = Bound(0, 1000, whole=True)            # train --samples
TIMEOUT = Bound(0, 86_400, low_open=True)            # download --timeout, seconds
SCALE_FACTOR = Bound(1e-6, 1e6)                      # data units per model unit (import, export, checkpoints)
BOX = Bound(0, 1e6, low_open=True)                   # a run's drawing box in data units (import --size, checkpoints, info.box)
MAX_SECONDS = Bound(0, 366 * 86_400, low_open=True)  # train --max-time, once read as seconds
# processes and threads: more than a few per core only adds memory (each convert worker is a process)
WORKERS = Bound(1, max(8, 4 * available_cores()), whole=True)     # convert --workers
THREADS = Bound(0, max(8, 4 * available_cores()), whole=True)     # train --threads (0: torch's default)
# --limit NAME=VALUE: how far each reader bound may be raised
LIMIT_BOUNDS = {"points_per_stroke": Bound(1, 2**28, whole=True), "points_per_drawing": Bound(1, 2**28, whole=True),
                "line_bytes": Bound(1, 2**30, whole=True), "gzip_ratio": Bound(1, 10**6, whole=True),
                "svg_cost": Bound(1, 2**30, whole=True)}


@dataclass(frozen=True)
class Limits:
    """The bounds (see docs/limits.md); every field is `--limit NAME=VALUE` with `_` written as `-`."""

    # points of one stroke and of one drawing after resampling (Quick, Draw! raw) or curve flattening
    # (SVG), computed from arc length before any point is made. Real raw Quick, Draw! drawings reach
    # about 24,000 (the longest of 13,750 in the shared sample).
    points_per_stroke: int = 250_000
    points_per_drawing: int = 1_000_000
    # bytes of one ndjson line (after gzip decompression); the longest real raw line is about 23 KB
    line_bytes: int = 16 * 2**20
    # a .gz may decompress to at most this many times the compressed bytes read so far (Quick, Draw!
    # ndjson compresses about 3-fold); checked once 16 MiB are decompressed
    gzip_ratio: int = 100
    # an SVG document's parsing cost, about its size in bytes with every <use> replaced by a copy of
    # what it refers to (see svg._check_cost); svgelements needs about 2-4 s per million
    svg_cost: int = 1_000_000

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)   # from the command line or a file: text is not a number here
            number = LIMIT_BOUNDS[f.name].parse(value if isinstance(value, (int, float)) else repr(value),
                                                f"--limit {option_name(f.name)}")
            object.__setattr__(self, f.name, number)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict | None) -> Limits:
        return cls(**d) if d else cls()


def option_name(field_name: str) -> str:
    return field_name.replace("_", "-")


NAMES = tuple(option_name(f.name) for f in fields(Limits))


def parse_limits(items: list[str] | tuple[str, ...], base: Limits | None = None) -> Limits:
    """['points-per-drawing=2000000', 'line-bytes=64M'] -> Limits (K, M, G: powers of 1024)."""
    values = (base or Limits()).to_json()
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().lower()
        if not sep or option_name(name).replace("-", "_") not in values:
            raise OptionError(f"--limit {item!r}: expected NAME=VALUE with NAME one of {', '.join(NAMES)}")
        values[name.replace("-", "_")] = _parse_count(text, option_name(name))
    return Limits(**values)


def _parse_count(text: str, name: str) -> int:
    t = text.strip().replace("_", "").upper()
    scale = 1
    for suffix, factor in (("K", 2**10), ("M", 2**20), ("G", 2**30)):
        if t.endswith(suffix):
            t, scale = t[:-1], factor
    # the bound itself is checked by Limits, with the words of every other number
    if not (t.isascii() and t.isdigit() and len(t) <= 30):
        bound = LIMIT_BOUNDS[name.replace("-", "_")]
        raise OptionError(f"--limit {name} must be {bound.describe()} (K, M and G suffixes allowed), not {value_text(text)}")
    return int(t) * scale


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


def parse_duration(text: str) -> float:
    """'45m', '1h30m', '20s', '90' (seconds), '1.5h' -> seconds (train --max-time), within MAX_SECONDS."""
    t = str(text).strip().lower().replace(" ", "")
    m = _DURATION.fullmatch(t) if len(t) <= 100 else None
    if not t or not m or not any(m.groups()):
        raise OptionError(f"--max-time {value_text(text)}: expected a duration such as 45m, 1h30m, 20s or 90 (seconds)")
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + sec
    if not MAX_SECONDS.contains(seconds):
        raise OptionError(f"--max-time must be a duration > 0 and at most 366 days ({MAX_SECONDS.high:.0f} s), "
                          f"not {value_text(text)}")
    return seconds


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,4})?")


def check_device(text: str) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps (torch's other device types, such as meta, cannot run a
    model here). Whether the device exists is checked when torch opens it."""
    if not (isinstance(text, str) and _DEVICE.fullmatch(text.strip())):
        raise OptionError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {value_text(text)}")
    return text.strip()
