"""`ConvertOptions`: what a `convert` run does, checked before any input is read."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import OptionError
from ..limits import (EPSILON, KEEP_ALL_LENGTHS, MULTIPLE, RESAMPLE_SPACING, ROWS, SEED, SIZE, SPLIT_COUNT,
                      SPLIT_FRACTION, WORKERS, Limits, value_text)
from ..simplify import DISTANCES


@dataclass
class ConvertOptions:
    """What `sketchprep convert` does; every field is a CLI option of the same name."""

    epsilon: float = 2.0            # RDP tolerance in output units (pixels of the --size box)
    distance: str = "line"          # RDP distance: "line" (original DP, as the rdp package) or "segment"
    max_len: int = 250              # longest sketch kept, in stroke-3 rows
    fit: bool = False               # re-simplify too-long sketches with a growing epsilon instead of dropping
    size: float = 255.0             # larger extent of every drawing after normalising; 0 keeps source units
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)  # fractions (all <= 1) or counts
    multiple: int = 100             # every split size is a multiple of this
    seed: int = 0                   # shuffle seed
    words: frozenset[str] | None = None  # keep only these Quick, Draw! words
    recognized_only: bool = False   # keep only drawings the game recognised
    strict: bool = False            # the first bad input is an error and nothing is written
    workers: int = 1                # worker processes
    resample_spacing: float = 1.0   # Quick, Draw! raw: resampling step in output units (Google: 1 px); SVG: curve step
    include_fills: bool = False     # SVG: also keep the outlines of fill-only shapes
    keep_time: bool = False         # Quick, Draw! raw: keep each kept point's time (written as <split>_times)
    limits: Limits = field(default_factory=Limits)  # resource bounds of the readers (--limit NAME=VALUE)

    def __post_init__(self):
        # the same bounds as the command line's, also for options read back from a file (meta, a shard)
        for name, bound in (("epsilon", EPSILON), ("max_len", ROWS), ("size", SIZE), ("multiple", MULTIPLE),
                            ("seed", SEED), ("workers", WORKERS), ("resample_spacing", RESAMPLE_SPACING)):
            if not (name == "max_len" and self.max_len == KEEP_ALL_LENGTHS):
                setattr(self, name, bound.parse(_number_or_repr(getattr(self, name)), "--" + name.replace("_", "-")))
        if self.distance not in DISTANCES:
            raise OptionError(f"--distance must be one of {', '.join(DISTANCES)}, "
                              f"not {value_text(self.distance)}")
        if not isinstance(self.limits, Limits):
            raise OptionError(f"--limit values must be bounds, not {value_text(self.limits)}")
        self.split = checked_split(self.split)
        if not all(p <= 1 for p in self.split) and any(int(p) % self.multiple for p in self.split):
            raise OptionError(f"--split counts {format_split(self.split)} must be multiples of --multiple "
                              f"{self.multiple}: round them, or add --multiple 1")

    def to_json(self) -> dict:
        """The options that decide the output (not how it is computed: workers, strict), as JSON."""
        d = asdict(self)
        d["words"] = sorted(self.words) if self.words else None
        del d["workers"], d["strict"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ConvertOptions":
        d = dict(d)
        d["split"] = tuple(d["split"])
        d["words"] = frozenset(d["words"]) if d.get("words") else None
        d["limits"] = Limits.from_json(d.get("limits"))
        return cls(**d)


def _number_or_repr(value):
    """A number as it is; anything else (text or a list read from a file) as its repr, which no Bound takes."""
    return value if isinstance(value, (int, float)) else repr(value)


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.9/0.05/0.05' or '70000/2500/2500' -> three numbers (checked by `checked_split`)."""
    parts = str(text).replace(",", "/").split("/")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise OptionError(f"--split {value_text(text)}: expected three numbers A/B/C like 0.9/0.05/0.05 or "
                          "70000/2500/2500")
    return checked_split(values)


def checked_split(split) -> tuple[float, float, float]:
    """Three parts, all fractions (every part <= 1: shares of their sum) or all counts (whole numbers).

    A non-zero fraction is at least 10^-6 (a smaller one would round to no drawing and make the sizes
    overflow), a count at most 10^9; at least one part is > 0."""
    if not (isinstance(split, (tuple, list)) and len(split) == 3):
        raise OptionError(f"--split needs three parts A/B/C like 0.9/0.05/0.05 or 70000/2500/2500, "
                          f"not {value_text(split)}")
    numbers = [_number_or_repr(p) for p in split]
    fractions = all(isinstance(p, (int, float)) and not isinstance(p, bool) and p <= 1 for p in numbers)
    out = []
    for name, p in zip(("train", "valid", "test"), numbers):
        if fractions and p != 0 and not SPLIT_FRACTION.contains(p):
            raise OptionError(f"--split {name} must be 0 or {SPLIT_FRACTION.describe()} (a fraction), "
                              f"not {value_text(p)}")
        out.append(float(p) if fractions else float(SPLIT_COUNT.parse(p, f"--split {name}")))
    if sum(out) <= 0:
        raise OptionError(f"--split {format_split(out)}: at least one part must be > 0")
    return tuple(out)  # type: ignore[return-value]


def format_split(split) -> str:
    """(0.9, 0.05, 0.05) -> '0.9/0.05/0.05', as --split is written."""
    return "/".join(f"{p:g}" for p in split)
