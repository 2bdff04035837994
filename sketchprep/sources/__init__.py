"""Input sources. Each turns some input (ndjson lines, SVG files, ...) into a `SourceBatch`: drawings as
flat polylines in source units, with ids, class labels, and what could not be read."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import shown
from ..strokes import FlatDrawings

# How much of the pipeline a drawing still needs (SourceBatch.kinds)
KIND_RAW = 0          # device/source units: normalise, resample at 1 unit, RDP (Quick, Draw! raw)
KIND_SAMPLED = 1      # already densely sampled curves (SVG): normalise, RDP
KIND_SIMPLIFIED = 2   # Google's simplified data: already aligned, scaled to 255 and RDP'd at epsilon 2.0


@dataclass
class Problem:
    """One input that could not be used, counted under `reason` and reported as `where: message`."""

    reason: str
    path: str
    line: int | None
    message: str

    @property
    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}" if self.line is not None else shown(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {shown(self.message)}"


@dataclass
class SourceBatch:
    """Drawings read from one piece of input.

    flat: the drawings' polylines (source units); kinds: (D,) uint8 KIND_*; ids: (D,) unicode array of
    source ids; labels: (D,) unicode array of class names; order: (D,) int64 position of each drawing in the input stream
    (input index * 2**32 + line or element), which decides which of two duplicates is kept.
    """

    flat: FlatDrawings
    kinds: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    order: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    filtered: Counter = field(default_factory=Counter)
    read: int = 0  # records seen (drawings or files), including the ones that failed or were filtered
    paths: dict[int, str] = field(default_factory=dict)  # input index -> path, for messages


def order_key(input_index: int, position: int) -> int:
    return (input_index << 32) | position
