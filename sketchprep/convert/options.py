"""`ConvertOptions`: what a `convert` run does, checked before any input is read."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import OptionError
from ..limits import Limits
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
    limits: Limits = field(default_factory=Limits)  # resource bounds of the readers (--limit NAME=VALUE)

    def __post_init__(self):
        if self.epsilon < 0:
            raise OptionError("--epsilon must be >= 0")
        if self.distance not in DISTANCES:
            raise OptionError(f"--distance must be one of {', '.join(DISTANCES)}")
        if self.max_len < 1:
            raise OptionError("--max-len must be >= 1")
        if self.size < 0:
            raise OptionError("--size must be >= 0")
        if self.multiple < 1:
            raise OptionError("--multiple must be >= 1")
        if len(self.split) != 3 or any(p < 0 for p in self.split) or sum(self.split) <= 0:
            raise OptionError("--split needs three non-negative parts, e.g. 0.9/0.05/0.05 or 70000/2500/2500")
        if not all(p <= 1 for p in self.split):  # counts: checked before any input is read
            counts = [int(p) for p in self.split]
            if any(c != p for c, p in zip(counts, self.split)):
                raise OptionError(f"--split counts must be whole numbers, got {format_split(self.split)}")
            if any(c % self.multiple for c in counts):
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


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.9/0.05/0.05' or '70000/2500/2500' -> three numbers."""
    parts = text.replace(",", "/").split("/")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise OptionError(f"--split {text!r}: expected three numbers like 0.9/0.05/0.05 or 70000/2500/2500") from None
    if len(values) != 3 or any(v < 0 or not math.isfinite(v) for v in values):
        raise OptionError(f"--split {text!r}: expected three non-negative numbers like 0.9/0.05/0.05")
    return values  # type: ignore[return-value]


def format_split(split) -> str:
    """(0.9, 0.05, 0.05) -> '0.9/0.05/0.05', as --split is written."""
    return "/".join(f"{p:g}" for p in split)
