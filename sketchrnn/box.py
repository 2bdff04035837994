"""A run's drawing box: the size, in data units, of the larger extent of the drawings it was trained on.

A model knows drawings of one size only. `convert` scales every drawing so that its larger extent is
`--size` (255 by default, as Quick, Draw!'s simplified drawings); Google's published sketch-rnn models
were trained on drawings about 2.5 times larger. Whatever a model reads from elsewhere (a prefix for
`complete`, a data set for `evaluate` or for fine-tuning) is scaled from its own box to the run's box
first, and what the model draws is scaled back.

Where a run's box comes from:
- a run trained here: its first data set's box (`dataset_box`);
- `train --init OTHER`: OTHER's box (the data is scaled to it);
- `import`: `--size`, else the box a `.gen.json` written by `export` keeps in its `info`, else the box of
  `--data`, else `sketchrnn.sample.estimate_box` (a model with no data): the median larger extent of 200 of the model's
  own drawings at temperature 0.5 (docs/pretrained.md has the measurement that chose it).
"""
from __future__ import annotations

import os

import numpy as np

from sketchprep.errors import OptionError

DEFAULT_BOX = 255.0           # convert's default --size, Quick, Draw!'s simplified drawings
ESTIMATE_SAMPLES = 200        # drawings sampled by estimate_box
ESTIMATE_TEMPERATURE = 0.5    # the temperature whose estimates came closest to the best box (docs/pretrained.md)
MIN_ESTIMATE_POINTS = 3       # drawings shorter than this say little about size


def larger_extent(sketch: np.ndarray) -> float:
    """The larger of the width and height of a stroke-3 drawing (n, 3), in its units."""
    s = np.asarray(sketch, dtype=np.float64)
    if len(s) == 0:
        return 0.0
    xy = np.cumsum(s[:, :2], axis=0)    # every point; the origin the first offset starts from is not one
    return float((xy.max(0) - xy.min(0)).max())


def median_extent(sketches, limit: int = 2000) -> float | None:
    """The median larger extent of up to `limit` drawings (None when there is none with an extent)."""
    extents = [e for e in (larger_extent(s) for s in list(sketches)[:limit]) if e > 0]
    return float(np.median(extents)) if extents else None


def dataset_box(path: str | os.PathLike, sample: int = 2000) -> float | None:
    """One `.npz` file's box: convert's `--size` from its metadata; without it, the median larger
    extent of its first `sample` train drawings (valid, then test, when it has no train split).
    None when the file is gone (the data moved) or holds no drawing; a damaged file is refused (the
    loader's error, as for any data file)."""
    from sketchprep.dataset import load_dataset, read_meta, read_npz

    if not os.path.isfile(path):
        return None
    meta_array = read_npz(str(path), keys=["meta"]).get("meta")   # convert's --size, without reading a sketch
    if meta_array is not None:
        meta, problem = read_meta(meta_array)
        if problem is None and (meta.get("options", {}).get("size") or 0) > 0:
            return float(meta["options"]["size"])
    ds = load_dataset(str(path))       # checks meta.options.size (dataset.check_meta_options)
    size = ds.meta.get("options", {}).get("size") or 0
    if size > 0:
        return float(size)
    for split in ("train", "valid", "test"):
        found = median_extent(ds.splits.get(split, []), sample)
        if found is not None:
            return found
    return None


def data_box(paths: list[str], default: float = DEFAULT_BOX) -> float:
    """The box of a run trained on `paths`: the first file's (`default` when it cannot be read)."""
    for path in paths[:1]:
        box = dataset_box(path)
        if box is not None:
            return box
    return default


def check_box(value, what: str = "box") -> float:
    """A box is a number within sketchprep.limits.BOX (OptionError otherwise)."""
    from sketchprep.limits import BOX

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{what} must be {BOX.describe()}, not {value!r}")
    return BOX.parse(value, what)
