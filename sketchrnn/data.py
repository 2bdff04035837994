"""Training data: the reference's preprocessing (REFERENCE A.5, A.6) and stroke-5 batches (A.4).

Order, as in the reference loader: keep sketches with at most `max_seq_len` rows (the reference
never applies this filter, F.5; here it is applied), clamp every column to [-1000, 1000], cast to
float32, sort by length; the scale factor is the standard deviation of all train dx and dy values
pooled, and every split's offsets are divided by it. Several files are concatenated per split.

Batches (`Batch`) are stroke-5 `(B, T+1, 5)` float32 arrays: row 0 is the start token S0, rows
1..len hold the sketch, every later row is `[0, 0, 0, 0, 1]`. T is the dataset's longest sketch
plus one (`target_steps`), so even the longest sketch has an end-of-sketch row (fix, REFERENCE F.4;
the reference pads to exactly the longest). With `pad_to_batch`, T is the batch's own longest
sketch plus one, and the loss is still divided by `target_steps` (see `SketchRNN.forward`).

Training batches follow the reference: each step takes the first `batch_size` sketches of a fresh
random permutation, scales each by random factors in [1-f, 1+f) per axis, then drops points
(`augment_strokes`). All randomness of step t comes from `np.random.default_rng((seed, t, ...))`,
so a resumed run draws exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from sketchprep.dataset import SPLITS, load_dataset
from sketchprep.errors import DatasetFormatError, OptionError
from sketchprep.strokes import START_TOKEN

CLAMP_LIMIT = 1000.0  # reference DataLoader `limit`: removes large gaps


@dataclass
class Split:
    """One split after preprocessing, sorted by length (shortest first).

    strokes: list of (n, 3) float32 stroke-3 arrays, offsets divided by the scale factor.
    labels: (N,) int64 class index of each sketch (into `SketchData.classes`).
    """

    strokes: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.strokes)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.strokes], dtype=np.int64)


@dataclass
class SketchData:
    """The three splits of one or several `.npz` files, preprocessed.

    max_len: the longest kept sketch over all splits (the reference's N_max).
    dropped: split -> number of sketches longer than max_seq_len that were left out.
    """

    splits: dict[str, Split]
    scale_factor: float
    max_len: int
    files: list[str]
    classes: list[str]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def target_steps(self) -> int:
        """Decoder steps per sketch in a dataset-padded batch: the longest sketch plus its end row."""
        return self.max_len + 1


def file_class(path: str | os.PathLike) -> str:
    """The class of every drawing of a file without labels: its name without the folder and .npz."""
    return os.path.splitext(os.path.basename(str(path)))[0]


def load_data(paths: list[str], max_seq_len: int = 250, scale_factor: float | None = None,
              classes: list[str] | None = None, resize: float | list[float] = 1.0,
              need_train: bool = True) -> SketchData:
    """Load and preprocess `.npz` files (concatenated per split; labels kept).

    `scale_factor` None computes it from train (the reference); a number (from a checkpoint) is used as is.
    Classes: each file's class names (its metadata, with `<split>_labels`), or `file_class(path)` for a
    file without labels; `classes` (a run's class list) maps them to its indices and refuses a file holding
    drawings of a class outside it, naming them; None builds the list in order of first appearance.
    `resize` (one number, or one per file) multiplies a file's offsets first: a drawing box of another
    size (sketchrnn.box), so the clamp and the scale factor see the drawings at the run's size.
    `need_train=False` accepts files without a train split (evaluation needs only the splits it reads).
    """
    factors = list(resize) if isinstance(resize, (list, tuple)) else [float(resize)] * len(paths)
    if len(factors) != len(paths):
        raise ValueError(f"resize: {len(factors)} factors for {len(paths)} files")
    if not paths:
        raise OptionError("give at least one .npz file")
    per_split: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    names: list[str] = list(classes) if classes is not None else []
    for path, factor in zip(paths, factors):
        ds = load_dataset(path)
        file_classes = ds.classes or [file_class(path)]
        file_labels = {}
        for s in SPLITS:
            n = len(ds.splits[s])
            if s in ds.labels and ds.classes:
                lab = np.asarray(ds.labels[s], dtype=np.int64)
                if len(lab) != n or (len(lab) and (lab.min() < 0 or lab.max() >= len(file_classes))):
                    raise DatasetFormatError(f"{s}_labels does not match the {s} split", path=str(path))
            else:
                lab = np.zeros(n, dtype=np.int64)
            file_labels[s] = lab
        if classes is not None:
            used = np.unique(np.concatenate(list(file_labels.values())))
            unknown = [file_classes[i] for i in used if file_classes[i] not in names]
            if unknown:
                raise DatasetFormatError(
                    f"holds drawings of {len(unknown)} class{'es' if len(unknown) > 1 else ''} the run does not "
                    f"know: {', '.join(map(repr, unknown[:10]))}{' ...' if len(unknown) > 10 else ''} (the run's "
                    f"classes: {', '.join(map(repr, names[:20]))}{' ...' if len(names) > 20 else ''})", path=str(path))
        for name in file_classes:
            if name not in names and classes is None:
                names.append(name)
        remap = np.array([names.index(n) if n in names else -1 for n in file_classes], dtype=np.int64)
        for s in SPLITS:
            per_split[s] += [_resized(sk, factor) for sk in ds.splits[s]] if factor != 1.0 else ds.splits[s]
            labels[s].append(remap[file_labels[s]])
    classes = names

    splits: dict[str, Split] = {}
    dropped: dict[str, int] = {}
    for s in SPLITS:
        lab = np.concatenate(labels[s]) if labels[s] else np.zeros(0, dtype=np.int64)
        keep = [i for i, sk in enumerate(per_split[s]) if len(sk) <= max_seq_len and len(sk) > 0]
        dropped[s] = len(per_split[s]) - len(keep)
        strokes = [np.clip(per_split[s][i], -CLAMP_LIMIT, CLAMP_LIMIT).astype(np.float32) for i in keep]
        order = np.argsort([len(x) for x in strokes], kind="stable")
        splits[s] = Split([strokes[i] for i in order], lab[keep][order] if len(keep) else lab[:0])
    if len(splits["train"]) == 0 and need_train:
        raise DatasetFormatError(f"no train sketch of at most max_seq_len={max_seq_len} rows",
                                 path=", ".join(map(str, paths)))
    if not any(len(sp) for sp in splits.values()):
        raise DatasetFormatError(f"no sketch of at most max_seq_len={max_seq_len} rows",
                                 path=", ".join(map(str, paths)))
    if scale_factor is None:
        scale_factor = normalizing_scale_factor(splits["train"].strokes)
    if not (np.isfinite(scale_factor) and scale_factor > 0):
        raise DatasetFormatError(f"the train offsets have no spread (scale factor {scale_factor})",
                                 path=", ".join(map(str, paths)))
    for split in splits.values():
        for sk in split.strokes:
            sk[:, :2] /= np.float32(scale_factor)
    max_len = max(max((len(x) for x in sp.strokes), default=0) for sp in splits.values())
    return SketchData(splits, float(scale_factor), int(max_len), [str(p) for p in paths], classes, dropped)


def _resized(sketch: np.ndarray, factor: float) -> np.ndarray:
    """A stroke-3 sketch with its offsets times `factor`, as float32 (int16 would round them)."""
    out = np.asarray(sketch, dtype=np.float32).copy()
    out[:, :2] *= np.float32(factor)
    return out


def normalizing_scale_factor(strokes: list[np.ndarray]) -> float:
    """Population standard deviation of every dx and dy value pooled (REFERENCE A.5 step 2)."""
    if not strokes:
        return 1.0
    xy = np.concatenate([s[:, :2] for s in strokes]).astype(np.float64)
    return float(np.std(xy))


# ---------------------------------------------------------------------------------------------------
# augmentation (vectorised over a batch)


def random_scale_factors(rng: np.random.Generator, n: int, factor: float) -> np.ndarray:
    """(n, 2) per-sketch x and y factors in [1 - factor, 1 + factor) (reference `random_scale`)."""
    return 1.0 + (rng.random((n, 2)) - 0.5) * 2.0 * factor


def augment_keep_mask(pen: np.ndarray, starts: np.ndarray, u: np.ndarray, prob: float) -> np.ndarray:
    """Which points the reference's `augment_strokes` keeps, for many sketches at once.

    pen: (P,) pen column of all points, sketches one after another; starts: (S,) first index of each
    sketch; u: (P,) uniforms. A point is dropped when it and its predecessor are pen-down, it is more
    than the 2nd pen-down point in a row (the counter resets at every pen-up row and at a sketch's
    start) and u < prob. (A dropped point's predecessor is pen-down too, so "the last kept point"
    in the reference loop reads the same pen value as "the previous point".)
    """
    n = len(pen)
    down = pen == 0
    prev_down = np.empty(n, dtype=bool)
    prev_down[1:] = down[:-1]
    prev_down[starts] = False                       # the reference starts with prev = [0, 0, 1]
    reset = ~(down & prev_down)                     # count = 0 here, else count = previous count + 1
    idx = np.arange(n)
    last_reset = np.maximum.accumulate(np.where(reset, idx, 0))
    count = idx - last_reset
    return ~(down & prev_down & (count > 2) & (u < prob))


@dataclass
class Batch:
    """strokes5: (B, T+1, 5) float32; lengths: (B,) int64 rows per sketch (after augmentation);
    labels: (B,) int64; norm_steps: the loss divisor per sketch (the dataset's target steps)."""

    strokes5: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    norm_steps: int


def pad_batch(sketches: list[np.ndarray], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Stroke-3 sketches (each at most `steps` rows) -> ((B, steps+1, 5) float32 stroke-5 with S0 in
    row 0, (B,) int64 lengths) (REFERENCE A.4 `pad_batch`)."""
    lengths = np.array([len(s) for s in sketches], dtype=np.int64)
    if len(lengths) and lengths.max() > steps:
        raise ValueError(f"a sketch has {lengths.max()} rows, more than the {steps} steps of the batch")
    out = np.zeros((len(sketches), steps + 1, 5), dtype=np.float32)
    out[:, 0] = START_TOKEN
    if len(sketches):
        flat = np.concatenate(sketches)
        rows = np.repeat(np.arange(len(sketches)), lengths)
        cols = 1 + np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols, 0:2] = flat[:, 0:2]
        out[rows, cols, 3] = flat[:, 2]
        out[rows, cols, 2] = 1.0 - flat[:, 2]
        pad = np.arange(steps + 1)[None, :] > lengths[:, None]
        out[pad, 4] = 1.0
    return out, lengths


def class_shares(counts: np.ndarray, balance: str = "none") -> np.ndarray:
    """(K,) drawings per class -> (K,) the share of training draws each class gets: in proportion to its
    size ("none", the reference's plain shuffle), the same for every class ("equal") or in proportion to
    the square root of its size ("sqrt"). A class without drawings gets none."""
    counts = np.asarray(counts, dtype=np.float64)
    weight = {"none": counts, "equal": (counts > 0).astype(np.float64), "sqrt": np.sqrt(counts)}[balance]
    total = weight.sum()
    return weight / total if total > 0 else weight


class Batches:
    """Batches of one split: random augmented ones for training, contiguous ones for evaluation.

    `class_balance` other than "none" draws each training batch's sketches at random with replacement,
    each class getting `class_shares(..., class_balance)` of the draws (a small class is repeated, a big
    one subsampled); "none" takes the head of a fresh permutation, as the reference does."""

    def __init__(self, split: Split, batch_size: int, target_steps: int, pad_to_batch: bool = False,
                 random_scale_factor: float = 0.0, augment_stroke_prob: float = 0.0, seed: int = 0,
                 class_balance: str = "none", num_classes: int = 0):
        self.split = split
        self.batch_size = batch_size
        self.target_steps = target_steps
        self.pad_to_batch = pad_to_batch
        self.random_scale_factor = random_scale_factor
        self.augment_stroke_prob = augment_stroke_prob
        self.seed = seed
        self.class_balance = class_balance
        self._cdf = None                  # cumulative draw probability per sketch, when balanced
        counts = np.bincount(split.labels, minlength=num_classes) if len(split) else np.zeros(num_classes, int)
        if class_balance != "none" and np.count_nonzero(counts) > 1:
            shares = class_shares(counts, class_balance)
            per_sketch = shares[split.labels] / counts[split.labels]
            self._cdf = np.cumsum(per_sketch)
            self._cdf /= self._cdf[-1]

    def _make(self, indices: np.ndarray, rng: np.random.Generator | None) -> Batch:
        sketches = [self.split.strokes[i] for i in indices]
        if rng is not None and (self.random_scale_factor > 0 or self.augment_stroke_prob > 0):
            sketches = self._augment(sketches, rng)
        lengths = np.array([len(s) for s in sketches], dtype=np.int64)
        steps = int(lengths.max()) + 1 if self.pad_to_batch else self.target_steps
        strokes5, lengths = pad_batch(sketches, steps)
        return Batch(strokes5, lengths, self.split.labels[indices], self.target_steps)

    def _augment(self, sketches: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        lengths = np.array([len(s) for s in sketches], dtype=np.int64)
        flat = np.concatenate(sketches).astype(np.float32)  # a copy: the split is never modified
        owner = np.repeat(np.arange(len(sketches)), lengths)
        if self.random_scale_factor > 0:
            factors = random_scale_factors(rng, len(sketches), self.random_scale_factor).astype(np.float32)
            flat[:, :2] *= factors[owner]
        if self.augment_stroke_prob <= 0:
            return np.split(flat, np.cumsum(lengths)[:-1])
        starts = np.cumsum(lengths) - lengths
        keep = augment_keep_mask(flat[:, 2], starts, rng.random(len(flat)), self.augment_stroke_prob)
        # a dropped point's offset is added to the last kept point before it (total displacement kept)
        kept_index = np.cumsum(keep) - 1
        out = np.zeros((int(keep.sum()), 3), dtype=np.float32)
        np.add.at(out[:, 0], kept_index, flat[:, 0])
        np.add.at(out[:, 1], kept_index, flat[:, 1])
        out[:, 2] = flat[keep, 2]
        new_lengths = np.bincount(owner[keep], minlength=len(sketches))
        return np.split(out, np.cumsum(new_lengths)[:-1])

    def random_batch(self, step: int, rank: int = 0, world: int = 1) -> Batch:
        """The training batch of `step` for process `rank` of `world`: a deterministic function of
        (seed, step, rank). All processes share the permutation and take disjoint slices of it."""
        n = len(self.split)
        need = self.batch_size * world
        if n < need:
            raise OptionError(f"the train split has {n} sketches, fewer than batch_size x processes = {need}; "
                              f"lower batch_size (--set batch_size=N)")
        rng = np.random.default_rng((self.seed, step, 0xB47C))
        if self._cdf is None:
            drawn = rng.permutation(n)
        else:   # balanced: sketches drawn with replacement by their class's share
            drawn = np.minimum(np.searchsorted(self._cdf, rng.random(need), side="right"), n - 1)
        indices = drawn[rank * self.batch_size:(rank + 1) * self.batch_size]
        return self._make(indices, np.random.default_rng((self.seed, step, rank, 0xA06)))

    def eval_batches(self, rank: int = 0, world: int = 1):
        """Contiguous batches of the length-sorted split, the last one possibly smaller (the
        reference skips that remainder, F.6; here every sketch is evaluated). Process `rank` of
        `world` gets every world-th batch."""
        n = len(self.split)
        for i, start in enumerate(range(0, n, self.batch_size)):
            if i % world == rank:
                yield self._make(np.arange(start, min(n, start + self.batch_size)), None)
