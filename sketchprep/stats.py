"""Figures that describe a dataset before training on it: sizes, lengths, strokes, boxes, the scale factor.

Works on a sketch-rnn `.npz` (per split) or on raw inputs (`.ndjson`, `.svg`, ...) run through the
converter's own pipeline (`sketchprep.convert.collect`), so the figures are exactly those `convert`
would produce at the same options. Everything is computed on all sketches of a split at once (flat
arrays), so a 30k-sketch file takes a fraction of a second.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .dataset import SPLITS, atomic_output, load_dataset
from .errors import OptionError
from .limits import KEEP_ALL_LENGTHS as NO_LIMIT  # --max-len of a run that keeps every length

PERCENTILES = (50, 90, 95, 99)
LONG_THRESHOLDS = (200, 250, 300)  # the paper's <200, the reference's suggested 250, "hard beyond 300"
CLAMP = 1000.0                     # the reference loader clamps every column to [-1000, 1000] (REFERENCE A.5)


def pack_sketches(sketches) -> tuple[np.ndarray, np.ndarray]:
    """All sketches of a split as flat arrays: (R, 3) float64 rows and (N+1,) int64 row offsets.

    `sketches` is any sequence of (n_i, 3) numeric arrays (int or float); sketch i is
    `rows[offsets[i]:offsets[i+1]]`.
    """
    lengths = np.fromiter((len(s) for s in sketches), dtype=np.int64, count=len(sketches))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] == 0:
        return np.zeros((0, 3), dtype=np.float64), offsets
    rows = np.concatenate([np.asarray(s).reshape(-1, 3) for s in sketches], axis=0, dtype=np.float64)
    return rows, offsets


def describe(values: np.ndarray) -> dict:
    """count, min, mean, percentiles (PERCENTILES) and max of a 1-D array (None when it is empty)."""
    values = np.asarray(values, dtype=np.float64)
    out: dict = {"count": int(len(values))}
    keys = ["min", "mean"] + [f"p{p}" for p in PERCENTILES] + ["max"]
    if len(values) == 0:
        return out | {k: None for k in keys}
    pct = np.percentile(values, PERCENTILES)
    out |= {"min": float(values.min()), "mean": float(values.mean())}
    out |= {f"p{p}": float(v) for p, v in zip(PERCENTILES, pct)}
    out["max"] = float(values.max())
    return out


@dataclass
class SplitStats:
    """The figures of one split (or of one set of converted drawings).

    Distributions (`describe` dicts): length (stroke-3 rows per sketch), strokes_per_sketch,
    points_per_stroke, bbox_width, bbox_height (extent of the absolute points; the origin does not count).
    `values` keeps the raw per-sketch arrays for plots; it is not part of `to_dict()`.
    """

    count: int
    dtype: str
    length: dict
    strokes_per_sketch: dict
    points_per_stroke: dict
    bbox_width: dict
    bbox_height: dict
    longer_than: dict[int, int]      # threshold -> sketches with more rows than it
    pen_up_share: float | None       # share of rows with p = 1
    max_abs_offset: float | None     # largest |dx| or |dy|
    classes: dict[str, int] | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("count", "dtype", "length", "strokes_per_sketch", "points_per_stroke",
                                           "bbox_width", "bbox_height", "pen_up_share", "max_abs_offset")}
        d["longer_than"] = {str(k): v for k, v in self.longer_than.items()}
        if self.classes is not None:
            d["classes"] = self.classes
        return d


def split_stats(sketches, class_names: list[str] | None = None) -> SplitStats:
    """Figures of a list of (n, 3) stroke-3 sketches; `class_names` (one per sketch) adds class counts."""
    rows, offsets = pack_sketches(sketches)
    dtypes = sorted(str(d) for d in {np.asarray(s).dtype for s in sketches})  # str() once per dtype, not per sketch
    lengths = np.diff(offsets)
    n = len(lengths)
    pen_up = rows[:, 2] > 0.5
    cum_up = np.concatenate([[0], np.cumsum(pen_up)])
    lifts = cum_up[offsets[1:]] - cum_up[offsets[:-1]]
    nonempty = lengths > 0
    ends_open = np.zeros(n, dtype=bool)
    ends_open[nonempty] = ~pen_up[offsets[1:][nonempty] - 1]
    strokes = lifts + ends_open  # a sketch whose last row is not pen-up still ends a stroke there
    # stroke boundaries: every sketch start and the row after every pen-up (as stroke3_to_polylines cuts)
    bounds_at = np.unique(np.concatenate([offsets, np.flatnonzero(pen_up) + 1]))
    points_per_stroke = np.diff(bounds_at)
    width, height = _bbox_sizes(rows, offsets)
    classes = None
    if class_names is not None:
        names, counts = np.unique(np.asarray(class_names, dtype=str), return_counts=True)
        classes = {str(k): int(v) for k, v in zip(names, counts)}
    return SplitStats(
        count=n,
        dtype="/".join(dtypes) if dtypes else "-",
        length=describe(lengths),
        strokes_per_sketch=describe(strokes),
        points_per_stroke=describe(points_per_stroke),
        bbox_width=describe(width),
        bbox_height=describe(height),
        longer_than={t: int((lengths > t).sum()) for t in LONG_THRESHOLDS},
        pen_up_share=float(pen_up.mean()) if len(rows) else None,
        max_abs_offset=float(np.abs(rows[:, :2]).max()) if len(rows) else None,
        classes=classes,
        values={"length": lengths, "strokes_per_sketch": strokes, "points_per_stroke": points_per_stroke,
                "bbox_width": width, "bbox_height": height},
    )


def _bbox_sizes(rows: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) widths and heights of each sketch's absolute points (as `strokes.bounds`); 0 for empty sketches."""
    lengths = np.diff(offsets)
    width = np.zeros(len(lengths))
    height = np.zeros(len(lengths))
    nonempty = np.flatnonzero(lengths > 0)
    if not len(nonempty):
        return width, height
    cum = np.cumsum(rows[:, :2], axis=0)
    before = np.zeros((len(lengths), 2))
    starts = offsets[:-1]
    has_prev = starts > 0
    before[has_prev] = cum[starts[has_prev] - 1]
    owner = np.repeat(np.arange(len(lengths)), lengths)
    absolute = cum - before[owner]
    lo = np.minimum.reduceat(absolute, starts[nonempty], axis=0)
    hi = np.maximum.reduceat(absolute, starts[nonempty], axis=0)
    width[nonempty] = hi[:, 0] - lo[:, 0]
    height[nonempty] = hi[:, 1] - lo[:, 1]
    return width, height


def reference_scale_factor(sketches, max_seq_len: int | None = None) -> float | None:
    """The normalising scale factor the reference loader computes from these (train) sketches.

    As `DataLoader.preprocess` + `calculate_normalizing_scale_factor` (REFERENCE A.5): keep sketches with
    at most `max_seq_len` rows (None: the longest sketch, which is what the reference's
    max_seq_len = longest of all splits amounts to for train), clamp every value to [-1000, 1000], cast
    to float32, and take the population standard deviation (ddof=0) of all dx and dy values pooled.
    Computed in float64 on the float32 values (the reference's float32 sum agrees to about 6 digits).
    """
    rows, offsets = pack_sketches(sketches)
    if max_seq_len is not None:
        keep = np.diff(offsets) <= max_seq_len
        rows = rows[np.repeat(keep, np.diff(offsets))]
    if not len(rows):
        return None
    xy = np.clip(rows[:, :2], -CLAMP, CLAMP).astype(np.float32).astype(np.float64)
    return float(np.std(xy.ravel()))


@dataclass
class DatasetStats:
    """Figures of a whole dataset: one `SplitStats` per split (or per stage for raw inputs).

    kind: "npz" or "inputs". scale_factor / scale_factor_how: the reference loader's normalising factor
    and exactly how it was computed. conversion (inputs only): what the pipeline read, dropped and how
    many points RDP removed.
    """

    kind: str
    paths: list[str]
    splits: dict[str, SplitStats]
    scale_factor: float | None
    scale_factor_how: str
    conversion: dict | None = None

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "paths": self.paths,
               "splits": {k: v.to_dict() for k, v in self.splits.items()},
               "scale_factor": self.scale_factor, "scale_factor_how": self.scale_factor_how}
        if self.conversion is not None:
            out["conversion"] = self.conversion
        return out


def dataset_stats(path: str | os.PathLike) -> DatasetStats:
    """Figures of a sketch-rnn `.npz`, per split (raises DatasetFormatError for a file `load_dataset` refuses)."""
    ds = load_dataset(path)
    classes = ds.classes
    splits = {}
    for name in SPLITS:
        names = None
        if name in ds.labels and classes:
            labels = np.asarray(ds.labels[name], dtype=np.int64)
            names = [classes[i] if 0 <= i < len(classes) else f"#{i}" for i in labels]
        splits[name] = split_stats(ds.splits[name], names)
    train = ds.splits["train"]
    longest = max((len(s) for name in SPLITS for s in ds.splits[name]), default=0)
    factor = reference_scale_factor(train)
    how = (f"population std (ddof=0) of the pooled dx and dy of all {len(train)} train sketches, clamped to "
           f"+-{CLAMP:g} and cast to float32 as the reference loader does; its length filter "
           f"(max_seq_len = the longest sketch of all splits, {longest}) drops none")
    return DatasetStats("npz", [str(path)], splits, factor, how)


def input_stats(inputs: list[str], opts, progress: Callable[[int], None] | None = None) -> DatasetStats:
    """Figures of raw inputs as `convert` with `opts` (a `ConvertOptions`) would produce them.

    Columns: "all" = every drawing simplified at opts.epsilon, before the --max-len filter; "kept" =
    what convert keeps (before dedupe and split). Points removed by RDP compare the same drawings run at
    epsilon 0 (normalised, resampled and rounded, but not simplified).
    """
    from .convert import collect, dedupe

    if "-" in inputs:
        raise OptionError("stats reads raw inputs more than once, and '-' (stdin) can be read only once: save it to a file")
    unlimited = replace(opts, max_len=NO_LIMIT, fit=False)
    simplified = collect(inputs, unlimited, progress)
    everything = simplified.kept
    lengths = np.diff(everything.row_offsets)
    if opts.fit:
        kept = collect(inputs, opts).kept
    else:  # the length filter is per drawing, so filtering the unlimited run is what convert keeps
        kept = everything.take(np.flatnonzero(lengths <= opts.max_len))
    if opts.epsilon > 0:
        before = collect(inputs, replace(unlimited, epsilon=0.0)).kept
        # the same drawings, matched by their position in the input stream
        common, i_before, i_after = np.intersect1d(before.order, everything.order, return_indices=True)
        n_before = int(np.diff(before.row_offsets)[i_before].sum())
        n_after = int(lengths[i_after].sum())
    else:
        n_before = n_after = int(lengths.sum())
        common = everything.order
    report = simplified.report
    dropped = {k: v for k, v in report.dropped.items() if v}
    too_long = everything.n - kept.n if not opts.fit else everything.n - kept.n
    _, duplicates = dedupe(kept)
    conversion = {
        "files": len(simplified.files),
        "read": report.read,
        "simplified": everything.n,
        "kept": kept.n,
        "too_long": int(too_long),
        "duplicates": int(duplicates),
        "dropped": dropped,
        "filtered": dict(report.filtered),
        "points_before_rdp": n_before,
        "points_after_rdp": n_after,
        "removed_by_rdp": n_before - n_after,
        "removed_share": (n_before - n_after) / n_before if n_before else None,
        "rdp_drawings": int(len(common)),
        "options": {"epsilon": opts.epsilon, "distance": opts.distance, "max_len": opts.max_len,
                    "size": opts.size, "fit": opts.fit},
    }
    sk_all = [everything.sketch(i) for i in range(everything.n)]
    sk_kept = [kept.sketch(i) for i in range(kept.n)]
    labelled = len(set(kept.labels.tolist())) > 1
    splits = {"all": split_stats(sk_all, everything.labels.tolist() if labelled else None),
              "kept": split_stats(sk_kept, kept.labels.tolist() if labelled else None)}
    factor = reference_scale_factor(sk_kept)
    how = (f"population std (ddof=0) of the pooled dx and dy of all {kept.n} kept drawings (convert's train split "
           f"is a seeded share of them, so its factor will be close), clamped to +-{CLAMP:g} as the reference loader does")
    return DatasetStats("inputs", list(simplified.files), splits, factor, how, conversion)


# ---------------------------------------------------------------------------------------------------
# Text and plots


def format_table(stats: DatasetStats) -> str:
    """A text report: header lines, then one column per split and one row per figure."""
    lines = []
    if stats.kind == "npz":
        lines.append(stats.paths[0])
    else:
        c = stats.conversion
        o = c["options"]
        lines.append(f"{c['files']} input file(s), {c['read']} drawings read; as `convert --epsilon {o['epsilon']:g} "
                     f"--distance {o['distance']} --size {o['size']:g} --max-len {o['max_len']}"
                     + (" --fit" if o["fit"] else "") + "` would produce them:")
        lines.append(f"  all  = {c['simplified']} drawings simplified, before the --max-len filter")
        lines.append(f"  kept = {c['kept']} drawings convert keeps ({c['too_long']} longer than --max-len dropped); "
                     f"{c['duplicates']} of these are duplicates, which convert drops before splitting")
        bad = {k: v for k, v in c["dropped"].items() if k != "too_long"}
        if bad:
            lines.append("  unusable input: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(bad.items())))
        if c["filtered"]:
            lines.append("  filtered out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(c["filtered"].items())))
        share = c["removed_share"]
        lines.append(f"  RDP at epsilon {o['epsilon']:g} removed {c['removed_by_rdp']} of {c['points_before_rdp']} points"
                     + (f" ({100 * share:.1f}%)" if share is not None else "")
                     + f", leaving {c['points_after_rdp']}, over the same {c['rdp_drawings']} drawings "
                       "(points before RDP: normalised, resampled and rounded as convert does, at epsilon 0)")
    names = list(stats.splits)
    rows: list[tuple[str, list[str]]] = [
        ("sketches", [str(s.count) for s in stats.splits.values()]),
        ("dtype", [s.dtype for s in stats.splits.values()]),
    ]
    for label, key in (("length", "length"), ("strokes/sketch", "strokes_per_sketch"),
                       ("points/stroke", "points_per_stroke"), ("bbox width", "bbox_width"),
                       ("bbox height", "bbox_height")):
        for stat in ["min", "mean"] + [f"p{p}" for p in PERCENTILES] + ["max"]:
            rows.append((f"{label} {stat}", [_fmt(getattr(s, key)[stat]) for s in stats.splits.values()]))
    for t in LONG_THRESHOLDS:
        rows.append((f"longer than {t}", [str(s.longer_than[t]) for s in stats.splits.values()]))
    rows.append(("pen-up share", [_fmt(None if s.pen_up_share is None else 100 * s.pen_up_share) + "%"
                                  for s in stats.splits.values()]))
    rows.append(("max |offset|", [_fmt(s.max_abs_offset) for s in stats.splits.values()]))
    width0 = max(len(r[0]) for r in rows)
    widths = [max(len(n), *(len(r[1][i]) for r in rows)) for i, n in enumerate(names)]
    lines.append("")
    lines.append(" " * width0 + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths)))
    for label, cells in rows:
        lines.append(label.ljust(width0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths)))
    lines.append("")
    source = "train" if stats.kind == "npz" else "kept"
    lines.append(f"scale factor ({source}): {_fmt(stats.scale_factor, 4)}")
    lines.append(f"  = {stats.scale_factor_how}")
    classes = sorted({c for s in stats.splits.values() if s.classes for c in s.classes})
    if classes:
        lines.append("")
        cw = max(len("class"), *(len(c) for c in classes))
        lines.append("class".ljust(cw) + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths)))
        for c in classes:
            lines.append(c.ljust(cw) + "  " + "  ".join(str((s.classes or {}).get(c, 0)).rjust(w)
                                                       for s, w in zip(stats.splits.values(), widths)))
    return "\n".join(lines)


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    text = f"{v:.{digits}f}"
    return text[:-digits - 1] if digits <= 1 and text.endswith("." + "0" * digits) else text


PLOTTED = (("length", "stroke-3 rows per sketch"), ("strokes_per_sketch", "strokes per sketch"),
           ("points_per_stroke", "points per stroke"), ("bbox_width", "bounding box width"),
           ("bbox_height", "bounding box height"))


def plot_stats(stats: DatasetStats, path: str | os.PathLike) -> None:
    """Histograms of every distribution, one colour per split, written atomically (format from the extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (key, title) in zip(axes.flat, PLOTTED):
        for name, s in stats.splits.items():
            values = s.values.get(key, np.zeros(0))
            if len(values):
                bins = _bins(values)
                ax.hist(values, bins=bins, histtype="step", density=True, linewidth=1.4, label=f"{name} ({s.count})")
        ax.set_title(title)
        ax.set_ylabel("share")
        if key == "length":
            for t in LONG_THRESHOLDS:
                ax.axvline(t, color="0.6", linestyle=":", linewidth=1)
    ax = axes.flat[-1]
    names = list(stats.splits)
    ax.bar(names, [100 * (s.pen_up_share or 0) for s in stats.splits.values()], color="0.5")
    ax.set_title("pen-up rows (%)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(", ".join(os.path.basename(p) for p in stats.paths[:3]) + (" ..." if len(stats.paths) > 3 else "")
                 + (f"   scale factor {stats.scale_factor:.3f}" if stats.scale_factor is not None else ""))
    fig.tight_layout()
    fmt = os.path.splitext(str(path))[1].lstrip(".").lower() or "png"
    try:
        with atomic_output(path) as f:
            fig.savefig(f, format=fmt, dpi=100)
    finally:
        plt.close(fig)


def _bins(values: np.ndarray) -> np.ndarray:
    """Integer-aligned bins for small integer ranges, else 60 equal bins."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if np.all(np.mod(values, 1) == 0) and hi - lo <= 120:
        return np.arange(lo - 0.5, hi + 1.5)
    return np.linspace(lo, hi if hi > lo else lo + 1, 61)


def npz_input(inputs: list[str]) -> str | None:
    """The `.npz` path when `inputs` is a single dataset file, None for raw drawing inputs; a mix is an OptionError."""
    npz = [p for p in inputs if str(p).lower().endswith(".npz")]
    if not npz:
        return None
    if len(inputs) > 1:
        raise OptionError("give either one DATA.npz or raw drawing inputs (.ndjson, .svg, folders), not both or several .npz")
    return str(npz[0])
