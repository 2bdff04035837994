"""Resource bounds of the input readers, checked before the memory they guard is allocated.

A drawing over a bound is dropped and reported (`too_many_points`, `line_too_long`), a file over
one is reported with its path (`too_large`); the run goes on. `--limit NAME=VALUE` raises a bound.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import OptionError


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
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OptionError(f"--limit {option_name(f.name)} must be a whole number >= 1, not {value!r}")

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
        values[name.replace("-", "_")] = _parse_count(text, item)
    return Limits(**values)


def _parse_count(text: str, item: str) -> int:
    t = text.strip().replace("_", "").upper()
    scale = 1
    for suffix, factor in (("K", 2**10), ("M", 2**20), ("G", 2**30)):
        if t.endswith(suffix):
            t, scale = t[:-1], factor
    if not t.isdigit() or int(t) * scale < 1:
        raise OptionError(f"--limit {item!r}: the value must be a whole number >= 1 (K, M and G suffixes allowed)")
    return int(t) * scale
