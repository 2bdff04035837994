"""Sampling, encoding and interpolation with a trained model (REFERENCE C).

Temperature tau, as in the reference code's `sample()`: the mixture weights and the pen state are
drawn from softmax(logits / tau), and each Gaussian's sigma is multiplied by tau (its variance by
tau^2). The paper (and sketch-rnn-js) scale the variance by tau instead (sigma by sqrt(tau));
`sigma_form="paper"` selects that. Greedy mode takes the most likely component and pen state and
the component's mean offset.

Drawings are decoded many at once, for at most the run's longest training sketch + 1 steps, and
cut at the first end-of-sketch state. Offsets come back in the data's units (pixels): the model's
outputs times the scale factor saved in the checkpoint (the reference recomputes it from the
dataset, F.14).
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from sketchprep import limits
from sketchprep.dataset import load_dataset
from sketchprep.errors import OptionError, SketchprepError
from sketchprep.strokes import START_TOKEN

from .box import DEFAULT_BOX, ESTIMATE_SAMPLES, ESTIMATE_TEMPERATURE, MIN_ESTIMATE_POINTS, dataset_box, median_extent
from .checkpoint import Run, load_run  # noqa: F401  (load_run: callers import it from here)
from .data import CLAMP_LIMIT, file_class, pad_batch
from .model import HParams, mixture_params

SIGMA_FORMS = ("code", "paper")

# What decoding one batch may hold, estimated before anything is allocated. Measured on CPU (docs/limits.md):
# about 45 bytes per decoded row for the output and the drawings made from it, 35 more to lay them out as
# SVG; about 25 bytes per decoder unit per drawing for the state and one step's activations. The estimate
# rounds the first up and doubles the second; a PNG grid is bounded by its pixels (render.grid_png).
ROW_BYTES, UNIT_BYTES, OUTPUT_BYTES = 100, 48, 32
MAX_DECODE_BYTES = 2**30


def decode_bytes(hps: HParams, n: int, rows: int) -> int:
    """Estimated peak memory of decoding `n` drawings of up to `rows` rows each (and drawing them)."""
    units = hps.dec_rnn_size + (hps.hyper_num_units if hps.dec_model == "hyper" else 0)
    return n * (rows * ROW_BYTES + units * UNIT_BYTES + (3 + 6 * hps.num_mixture) * OUTPUT_BYTES)


def check_decode_size(hps: HParams, n: int, rows: int) -> None:
    """OptionError when n is outside -n's bound or the batch would need more than MAX_DECODE_BYTES."""
    limits.DRAWINGS.parse(n, "-n")
    need = decode_bytes(hps, n, rows)
    if need > MAX_DECODE_BYTES:
        fits = max(1, MAX_DECODE_BYTES // -(-need // n))
        raise OptionError(f"-n {n}: {n:,} drawings of up to {rows:,} points from this model need about "
                          f"{need / 2**20:,.0f} MiB, over the bound of {MAX_DECODE_BYTES // 2**20:,} MiB: draw at "
                          f"most {fits:,} at a time")


def sample_categorical(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: (N, K) probabilities (rows need not sum to exactly 1) and (N,) uniforms in
    [0, 1) -> (N,) indices. Fix (REFERENCE F.9): the cumulative sum is divided by its own last value,
    so it ends at exactly 1 > u and the draw always lands on a category of non-zero probability (the
    reference returns -1, i.e. the last category, when round-off keeps the sum below u)."""
    cdf = torch.cumsum(probs, -1)
    cdf = cdf / cdf[:, -1:]
    idx = torch.searchsorted(cdf, u[:, None].to(cdf.dtype), right=True)[:, 0]
    return idx.clamp_max(probs.shape[1] - 1)


def _draw_offsets(p, k: torch.Tensor, temperature: float, greedy: bool, sigma_form: str,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(k.shape[0], device=k.device)
    mx, my = p.mu_x[rows, k], p.mu_y[rows, k]
    if greedy:
        return mx, my
    scale = temperature if sigma_form == "code" else math.sqrt(temperature)
    sx, sy = torch.exp(p.log_sigma_x[rows, k]) * scale, torch.exp(p.log_sigma_y[rows, k]) * scale
    rho = p.rho[rows, k]
    n1 = torch.randn(k.shape, generator=gen, device=k.device)
    n2 = torch.randn(k.shape, generator=gen, device=k.device)
    return mx + sx * n1, my + sy * (rho * n1 + torch.sqrt(1.0 - rho * rho) * n2)


def class_vectors(run: Run, labels) -> torch.Tensor | None:
    """Class indices (N,) -> (N, class_embedding_size) embeddings for `decode`'s `c`; None for a model that
    does not read the class. A class-conditional model needs them: an OptionError names its classes."""
    if not run.hps.class_conditional:
        if labels is not None and len(labels):
            raise OptionError("this model does not read the class (it was trained without class_conditional=true): "
                              "drop --class")
        return None
    if labels is None or not len(labels):
        raise OptionError(f"this model draws the class it is given: choose one with --class (its classes: "
                          f"{', '.join(map(repr, run.classes[:30]))}{' ...' if len(run.classes) > 30 else ''})")
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=run.device)
    return run.model.decoder.class_vectors(labels)


@torch.no_grad()
def decode(run: Run, z: torch.Tensor | None, n: int | None = None, temperature: float = 1.0, greedy: bool = False,
           seed: int = 0, max_steps: int | None = None, sigma_form: str = "code",
           stop_early: bool = True, start: tuple | None = None, c: torch.Tensor | None = None) -> list[np.ndarray]:
    """Decode a batch: z (N, z_size) for a conditional model (None: z ~ N(0, I)); n drawings; c (N, E) the
    class embeddings of a class-conditional model (`class_vectors`; they set N when z is None).
    `start` = (decoder state, (N, 5) last input) continues from there instead of from S0 (`complete`).

    Returns N stroke-3 float32 arrays in data units (last row p = 1; empty when the model ends at once).
    Decoding stops once every drawing has ended (`stop_early=False` always runs `max_steps`, as the
    reference's sample() does; the drawings are the same).
    """
    if sigma_form not in SIGMA_FORMS:
        raise OptionError(f"sigma form must be one of {', '.join(SIGMA_FORMS)}, got {sigma_form!r}")
    if not greedy:   # (greedy mode is the limit of tau -> 0)
        limits.TEMPERATURE.parse(temperature, "--temperature")
    model, dev = run.model, run.device
    if run.hps.class_conditional:
        if c is None:
            raise OptionError("a class-conditional model decodes with class embeddings c")
        n = c.shape[0] if z is None else n
    if run.hps.conditional and z is None and n is None:
        raise OptionError("give z or n")
    n = z.shape[0] if run.hps.conditional and z is not None else (n if n is not None else 1)
    steps = max_steps if max_steps is not None else run.max_len + 1
    check_decode_size(run.hps, n, steps)   # before anything of size n is allocated
    gen = torch.Generator(device=dev).manual_seed(seed)
    if c is not None and run.hps.class_conditional:
        c = c.to(dev, torch.float32)
    if run.hps.conditional:
        if z is None:
            z = torch.randn(n, run.hps.z_size, generator=gen, device=dev)
        z = z.to(dev, torch.float32)
    else:
        z = None
    decoder = model.decoder
    if start is None:
        state = decoder.initial_state(z, n, torch.zeros(1, device=dev))
        prev = torch.as_tensor(START_TOKEN, device=dev).expand(n, 5).clone()
    else:
        state, prev = start
    out = torch.zeros(steps, n, 5, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    t_used = steps
    for t in range(steps):
        params, state = decoder(prev[None], z, state, c=c)
        p = mixture_params(params[0])
        if greedy:
            k = p.log_pi.argmax(-1)
            pen = p.pen_logits.argmax(-1)
        else:
            k = sample_categorical(torch.softmax(p.log_pi / temperature, -1), torch.rand(n, generator=gen, device=dev))
            pen = sample_categorical(torch.softmax(p.pen_logits / temperature, -1),
                                     torch.rand(n, generator=gen, device=dev))
        dx, dy = _draw_offsets(p, k, temperature, greedy, sigma_form, gen)
        prev = torch.zeros(n, 5, device=dev)
        prev[:, 0], prev[:, 1] = dx, dy
        prev[torch.arange(n, device=dev), 2 + pen] = 1.0
        out[t] = prev
        done |= pen == 2
        if stop_early and bool(done.all()):
            t_used = t + 1
            break
    strokes5 = out[:t_used].transpose(0, 1).cpu().numpy()
    return [_to_stroke3(s, run.scale_factor) for s in strokes5]


def _to_stroke3(s5: np.ndarray, scale_factor: float) -> np.ndarray:
    ends = np.flatnonzero(s5[:, 4] > 0)
    end = int(ends[0]) if len(ends) else len(s5)
    out = np.zeros((end, 3), dtype=np.float32)
    out[:, :2] = s5[:end, :2] * scale_factor
    out[:, 2] = s5[:end, 3]
    if end:
        out[-1, 2] = 1.0  # stroke-3: the pen lifts after the last point
    return out


def sample(run: Run, n: int = 16, temperature: float = 1.0, greedy: bool = False, seed: int = 0,
           sigma_form: str = "code", max_steps: int | None = None, classes: list[int] | None = None
           ) -> list[np.ndarray]:
    """n drawings from z ~ N(0, I) (or from the unconditional decoder). A class-conditional model draws n of
    each class index in `classes` (default: all its classes), class after class, in one batch."""
    c = None
    if run.hps.class_conditional:
        classes = list(range(run.hps.num_classes)) if classes is None else list(classes)
        check_decode_size(run.hps, n * max(len(classes), 1), run.max_len + 1 if max_steps is None else max_steps)
        c = class_vectors(run, np.repeat(classes, n))
    elif classes:
        class_vectors(run, classes)   # says that the model does not read the class
    return decode(run, None, n, temperature, greedy, seed, max_steps, sigma_form, c=c)


def require_encoder(run: Run, what: str) -> None:
    """Refuse, in one line that says why, what needs an encoder on a decoder-only model."""
    if not run.hps.conditional:
        raise OptionError(f"{run.path}: {what} encodes drawings, and this model is decoder-only (conditional=false, "
                          f"as the published .gen.json models are): it has no encoder. It can sample and complete; "
                          f"train a conditional model (conditional=true) to {what}")


@torch.no_grad()
def encode(run: Run, sketches: list[np.ndarray], sampled: bool = False, seed: int = 0) -> torch.Tensor:
    """Stroke-3 sketches in data units (pixels) -> (N, z_size) latent codes: mu (default; the
    reference notebook's `encode` draws z = mu + sigma * eps, F.8: `sampled=True` does that)."""
    if not run.hps.conditional:
        raise OptionError("this model is unconditional (conditional=false): it has no encoder")
    if not sketches or any(len(s) == 0 for s in sketches):
        raise OptionError("cannot encode an empty drawing")
    norm = []
    for s in sketches:
        s = np.clip(np.asarray(s, dtype=np.float32), -CLAMP_LIMIT, CLAMP_LIMIT)
        s[:, :2] /= np.float32(run.scale_factor)
        norm.append(s)
    strokes5, lengths = pad_batch(norm, max(len(s) for s in norm) + 1)  # any length: no 250 limit (F.15)
    dev = run.device
    mu, presig = run.model.encode(torch.from_numpy(strokes5).to(dev), torch.from_numpy(lengths))
    if not sampled:
        return mu
    gen = torch.Generator(device=dev).manual_seed(seed)
    return mu + torch.exp(presig / 2.0) * torch.randn(mu.shape, generator=gen, device=dev)


def reconstruct(run: Run, sketch: np.ndarray, n: int = 1, temperature: float = 1.0, greedy: bool = False,
                seed: int = 0, sampled_z: bool = False, sigma_form: str = "code", label: int | None = None
                ) -> list[np.ndarray]:
    """n decodings of one drawing's latent code (and, for a class-conditional model, its class `label`)."""
    z = encode(run, [sketch], sampled_z, seed)
    c = class_vectors(run, [label] * n if label is not None else None)
    return decode(run, z.expand(n, -1), None, temperature, greedy, seed, None, sigma_form, c=c)


@torch.no_grad()
def complete(run: Run, prefix: np.ndarray, n: int = 8, temperature: float = 0.4, greedy: bool = False,
             seed: int = 0, sigma_form: str = "code", max_steps: int | None = None, label: int | None = None,
             box: float | None = None) -> list[np.ndarray]:
    """Finish a partial drawing n times, in one batch, as sketch-rnn's "predict" demo does.

    prefix: (T, 3) stroke-3 in data units (its last row's p = 0 leaves the pen down: the model goes
    on with that stroke). box: the drawing box of the prefix's units (sketchrnn.box); the prefix is
    scaled from it to the run's box before the model reads it, and what the model adds is scaled back
    (None: the prefix is in the run's units). The prefix runs through the decoder once; its final
    state, copied n times, starts the sampling. A conditional model is given z = the encoder's mu of
    the prefix (see docs/browser.md); a class-conditional model, the embedding of class index `label`.
    Returns n stroke-3 float32 drawings in the prefix's units, each the prefix followed by what the
    model added (at most max_steps points; default the model's max_seq_len + 1 - T, at least 1).
    """
    original = np.asarray(prefix, dtype=np.float32)
    if original.ndim != 2 or original.shape[1] != 3 or len(original) == 0:
        raise OptionError("the prefix must be a non-empty stroke-3 drawing")
    resize = 1.0 if box is None else float(run.box) / float(box)
    if not (math.isfinite(resize) and resize > 0):
        raise OptionError(f"the prefix's box must be a number > 0, got {box!r}")
    prefix = original.copy()
    prefix[:, :2] *= np.float32(resize)
    steps = max_steps if max_steps is not None else max(run.hps.max_seq_len + 1 - len(prefix), 1)
    check_decode_size(run.hps, n, len(prefix) + steps)   # every completion holds a copy of the prefix
    dev = run.device
    norm = np.clip(prefix, -CLAMP_LIMIT, CLAMP_LIMIT)
    rows = np.zeros((len(norm) + 1, 5), dtype=np.float32)   # S0, then the prefix as stroke-5
    rows[0] = START_TOKEN
    rows[1:, :2] = norm[:, :2] / np.float32(run.scale_factor)
    rows[1:, 3] = norm[:, 2] > 0
    rows[1:, 2] = 1.0 - rows[1:, 3]
    x = torch.from_numpy(rows).to(dev)[:, None]             # (T+1, 1, 5)
    c1 = class_vectors(run, [label] if label is not None else None)
    z = encode(run, [prefix]) if run.hps.conditional else None    # encode() takes data units of the run
    state = None
    if len(rows) > 2:                                      # the state after every prefix row but the last
        _, state = run.model.decoder(x[:-1], z, c=c1)
    else:
        state = run.model.decoder.initial_state(z, 1, x)
    state = tuple(s.expand(n, -1).contiguous() for s in state)
    prev = x[-1].expand(n, 5).clone()
    zs = z.expand(n, -1) if z is not None else None
    cs = c1.expand(n, -1) if c1 is not None else None
    added = decode(run, zs, n, temperature, greedy, seed, steps, sigma_form, start=(state, prev), c=cs)
    out = []
    for a in added:
        a[:, :2] /= np.float32(resize)
        d = np.concatenate([original, a])
        d[-1, 2] = 1.0  # stroke-3: the pen lifts after the last point
        out.append(d)
    return out


def estimate_box(run: Run, n: int | None = None, temperature: float | None = None, seed: int = 0,
                 fallback: float = DEFAULT_BOX) -> float:
    """The box of a model that came without data: the median larger extent of `n` of its own drawings
    at `temperature` (in data units: the run's scale factor applies). Drawings of fewer than
    MIN_ESTIMATE_POINTS points are left out; `fallback` when none is left (sketchrnn.box)."""
    n = ESTIMATE_SAMPLES if n is None else n
    temperature = ESTIMATE_TEMPERATURE if temperature is None else temperature
    drawings = sample(run, n, temperature, seed=seed, max_steps=run.hps.max_seq_len)
    found = median_extent([d for d in drawings if len(d) >= MIN_ESTIMATE_POINTS], limit=n)
    return found if found is not None else fallback


def lerp(p0: np.ndarray, p1: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * p0 + t * p1


def slerp(p0: np.ndarray, p1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation (reference `slerp`); fix (REFERENCE F.16): falls back to lerp when the
    vectors are (anti)parallel or zero, where the reference divides by sin(omega) = 0."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    n0, n1 = np.linalg.norm(p0), np.linalg.norm(p1)
    if n0 == 0 or n1 == 0:
        return lerp(p0, p1, t)
    omega = math.acos(float(np.clip(np.dot(p0 / n0, p1 / n1), -1.0, 1.0)))
    so = math.sin(omega)
    if so < 1e-6:
        return lerp(p0, p1, t)
    return math.sin((1.0 - t) * omega) / so * p0 + math.sin(t * omega) / so * p1


def interpolate(run: Run, a: np.ndarray, b: np.ndarray, steps: int = 10, temperature: float = 0.1,
                greedy: bool = False, seed: int = 0, method: str = "slerp", sampled_z: bool = False,
                sigma_form: str = "code", classes: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Decode `steps` latent codes from a's to b's (both ends included), slerp or lerp. A class-conditional
    model morphs the class too: `classes` = (a's class index, b's), their embeddings interpolated linearly
    beside z."""
    limits.INTERPOLATION_STEPS.parse(steps, "--steps")
    if method not in ("slerp", "lerp"):
        raise OptionError(f"interpolation must be slerp or lerp, got {method!r}")
    z = encode(run, [a, b], sampled_z, seed).cpu().numpy().astype(np.float64)
    fn = slerp if method == "slerp" else lerp
    ts = np.linspace(0.0, 1.0, steps)
    zs = np.stack([fn(z[0], z[1], t) for t in ts]).astype(np.float32)
    cs = class_vectors(run, list(classes) if classes is not None else None)
    if cs is not None:
        t = torch.as_tensor(ts, dtype=cs.dtype, device=cs.device)[:, None]
        cs = (1.0 - t) * cs[0] + t * cs[1]                                       # (steps, E)
    # the same seed for every step: the morph changes with z (and the class), not with the noise
    return [decode(run, torch.from_numpy(zs[i:i + 1]), None, temperature, greedy, seed, None, sigma_form,
                   c=cs[i:i + 1] if cs is not None else None)[0]
            for i in range(steps)]


def count_empty(drawings: list[np.ndarray]) -> int:
    """Drawings with no point: the model drew end-of-sketch at its first step."""
    return sum(1 for d in drawings if len(d) == 0)


def empty_note(drawings: list[np.ndarray]) -> str:
    """'; 16 of 50 drawings are empty: ...' for a summary line ('' when none is)."""
    n = count_empty(drawings)
    if not n:
        return ""
    return (f"; {n} of {len(drawings)} drawings are empty (the model ended them at once; they are marked "
            f"'empty' in a grid): try a lower temperature or a longer-trained model")


GRID_CLASSES = 32      # rows of a class-conditional model's progress grid: its first 32 classes
GRID_PER_CLASS = 8     # drawings per row at most


def write_progress_grids(run: Run, folder: str | os.PathLike, step: int, n: int, fixed: list[np.ndarray],
                         temperature: float = 0.4, seed: int = 0, per_drawing: int = 3,
                         fixed_labels: list[int] | None = None) -> list[tuple[str, str]]:
    """What the model draws now, for `train` at each evaluation: `n` samples (the same seed every time,
    so the grids of successive steps compare) -> folder/step-NNNNNN.png; a class-conditional model draws
    one row per class instead (min(n, 8) drawings each, the class named under the first; its first 32
    classes); for a conditional model, each `fixed` drawing (of class index `fixed_labels[i]`) followed by
    `per_drawing` reconstructions, one per row -> folder/recon-NNNNNN.png. Returns (tag, path) pairs. The
    model is in eval mode meanwhile."""
    from sketchprep.render import save_grid

    os.makedirs(folder, exist_ok=True)
    was_training = run.model.training
    run.model.eval()
    try:
        written = []
        path = os.path.join(folder, f"step-{step:06d}.png")
        if run.hps.class_conditional:
            per_class = max(1, min(n, GRID_PER_CLASS))
            shown = list(range(min(run.hps.num_classes, GRID_CLASSES)))
            drawings = sample(run, per_class, temperature, seed=seed, classes=shown)
            save_grid(drawings, path, columns=per_class, cell=96.0, borders=True,
                      labels=row_labels([run.classes[k] if k < len(run.classes) else str(k) for k in shown],
                                        per_class))
        else:
            save_grid(sample(run, n, temperature, seed=seed), path, cell=96.0, borders=True)
        written.append(("samples", path))
        keep = [i for i, f in enumerate(fixed) if len(f)]
        if run.hps.conditional and keep:
            cells = []
            for i in keep:
                label = fixed_labels[i] if fixed_labels is not None and run.hps.class_conditional else None
                cells += [fixed[i]] + reconstruct(run, fixed[i], per_drawing, temperature, seed=seed + i, label=label)
            path = os.path.join(folder, f"recon-{step:06d}.png")
            save_grid(cells, path, columns=per_drawing + 1, cell=96.0, borders=True)
            written.append(("reconstructions", path))
        return written
    finally:
        run.model.train(was_training)


def row_labels(names: list[str], per_row: int) -> list[str]:
    """Grid labels for rows of `per_row` drawings: each row's name under its first drawing."""
    return [name if j == 0 else "" for name in names for j in range(per_row)]


def read_drawing(spec: str, default_file: str | None) -> tuple[np.ndarray, str]:
    """`[FILE.npz:]SPLIT:INDEX` -> (the stored stroke-3 drawing, a label). FILE defaults to `default_file`."""
    drawing, label, _ = read_labelled_drawing(spec, default_file)
    return drawing, label


def read_labelled_drawing(spec: str, default_file: str | None) -> tuple[np.ndarray, str, str]:
    """`read_drawing` and the drawing's class name: its label's name in the file's metadata, or the file's
    name for a file without labels (as training names classes, `sketchrnn.data.load_data`)."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 3:
        path, split, index = parts
    elif len(parts) == 2 and default_file:
        path, (split, index) = default_file, parts
    else:
        raise OptionError(f"drawing {spec!r}: expected [FILE.npz:]SPLIT:INDEX, e.g. test:12")
    try:
        i = int(index)
    except ValueError:
        raise OptionError(f"drawing {spec!r}: INDEX must be an integer") from None
    ds = load_dataset(path)
    if split not in ds.splits:
        raise OptionError(f"drawing {spec!r}: SPLIT must be train, valid or test")
    sketches = ds.splits[split]
    if not -len(sketches) <= i < len(sketches):
        raise OptionError(f"drawing {spec!r}: {path} has {len(sketches)} {split} drawings")
    i %= len(sketches)
    name = file_class(path)
    if ds.classes and split in ds.labels:
        name = ds.classes[int(ds.labels[split][i])]
    return np.asarray(sketches[i], dtype=np.float32), f"{os.path.basename(path)}:{split}:{i}", name


PREFIX_FILE_TYPES = (".svg", ".ndjson", ".ndjson.gz")
PREFIX_OPTIONS = ("epsilon", "distance", "size", "resample_spacing", "include_fills")  # read from the dataset's meta


def read_prefix(spec: str, default_file: str | None, keep: int | None = None) -> tuple[np.ndarray, str]:
    """The drawing `complete` starts from -> (stroke-3 float32, a label).

    spec: an .svg, .ndjson or .ndjson.gz file (its first drawing), read and normalised as `convert`
    made the run's dataset (the options saved in `default_file`'s metadata; convert's defaults without
    one), or `[FILE.npz:]SPLIT:INDEX`. keep: cut it after this many points (rows)."""
    from sketchprep.convert import ConvertOptions, collect
    from sketchprep.limits import KEEP_ALL_LENGTHS

    if keep is not None:
        limits.ROWS.parse(keep, "--keep")
    if spec.lower().endswith(PREFIX_FILE_TYPES):
        if not os.path.exists(spec):  # a FIFO or a device is refused by the reader, by name
            raise OptionError(f"--prefix {spec}: no such file")
        options = {}
        if default_file and os.path.isfile(default_file):
            try:   # the loader checks meta.options (dataset.check_meta_options)
                options = dict(load_dataset(default_file).meta.get("options") or {})
            except (SketchprepError, OSError, ValueError):  # unreadable metadata: convert's defaults
                options = {}
        # only how the dataset's drawings were normalised; the bounds (limits) are the tool's own, never the file's
        opts = ConvertOptions(**{k: options[k] for k in PREFIX_OPTIONS if k in options}, strict=True,
                              max_len=KEEP_ALL_LENGTHS)   # a prefix is never dropped for its length
        kept = collect([spec], opts).kept
        if kept.n == 0:
            raise OptionError(f"--prefix {spec}: the file holds no drawing")
        first = int(np.argmin(kept.order))
        drawing, label = np.asarray(kept.sketch(first), dtype=np.float32), os.path.basename(spec)
    elif os.path.isfile(spec):
        raise OptionError(f"--prefix {spec}: give an .svg, .ndjson or .ndjson.gz drawing, or "
                          f"[FILE.npz:]SPLIT:INDEX")
    else:
        drawing, label = read_drawing(spec, default_file)
    if len(drawing) == 0:
        raise OptionError(f"--prefix {spec}: the drawing is empty")
    if keep is not None and keep < len(drawing):
        drawing, label = drawing[:keep].copy(), f"{label}[:{keep}]"
    return drawing, label


def prefix_box(spec: str, default_file: str | None) -> float | None:
    """The drawing box of the units `read_prefix` returns `spec` in (sketchrnn.box), for `complete`:
    for an .svg or .ndjson file, the size convert's options give it (those of `default_file`'s metadata,
    else convert's default 255; None when they keep source units, the run's own); for
    `[FILE.npz:]SPLIT:INDEX`, FILE's box (None when it cannot be told)."""
    from sketchprep.convert import ConvertOptions

    if spec.lower().endswith(PREFIX_FILE_TYPES):
        options = {}
        if default_file and os.path.isfile(default_file):
            try:
                options = dict(load_dataset(default_file).meta.get("options") or {})
            except (SketchprepError, OSError, ValueError):
                options = {}
        try:
            size = (ConvertOptions.from_json(options) if options else ConvertOptions()).size
        except (TypeError, ValueError):
            size = ConvertOptions().size
        return float(size) if size and size > 0 else None
    parts = spec.rsplit(":", 2)
    path = parts[0] if len(parts) == 3 else default_file
    return dataset_box(path) if path else None
