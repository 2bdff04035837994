"""Training loop: the reference's (REFERENCE B.5, B.7) with its bookkeeping bugs fixed.

One step t (counted from 0, read before the update, as the reference):
  lr_t and kl_weight_t from their per-step schedules -> a batch (sketchrnn.data) -> cost -> backward
  -> every gradient element clipped to [-grad_clip, grad_clip] -> Adam.
Everything a user reads counts steps DONE (metrics rows, "best at step N", the checkpoint's step):
after the update of step t, t + 1 steps are done. When that is a multiple of save_every, the whole
valid split is evaluated without dropout at the CURRENT KL weight (fix F.3: the reference's eval model
keeps 0.01), recon and KL reported apart; an improvement saves best.pt and evaluates the test split;
latest.pt is saved every time, and a grid of samples goes to samples/step-NNNNNN.png. (The reference
evaluates one update later, when its 0-based t is a multiple; the difference is one step.) A run that
stops (max steps, --max-time, early stopping, a signal) evaluates and saves latest.pt first.

Checkpoints are plain dicts (`torch.load(path, weights_only=True)` reads them) written to a temporary
file and renamed: the weights (of the unwrapped, uncompiled module), the optimizer, the hparams, the
scale factor (fix F.14), the step, the best valid cost, the data files. Every random draw of step t
derives from (seed, t, process rank), so `resume` continues exactly where a killed run would have gone.

Data-parallel: started by `torchrun --nproc_per_node=N`, each process takes its own `batch_size`
sketches of the step's shared permutation and DDP averages the gradients (NCCL on CUDA, gloo on CPU).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sketchprep.dataset import atomic_output, check_zip_bounds
from sketchprep.errors import DatasetFormatError, OptionError, SketchprepError

from .data import Batch, Batches, load_data
from .model import HParams, SketchRNN, count_parameters, kl_weight_at, lr_at
from .rnn import release_buffers

CHECKPOINT_FORMAT = "sketchrnn-checkpoint"
CHECKPOINT_VERSION = 1
LATEST, BEST = "latest.pt", "best.pt"


class TrainingError(SketchprepError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not match the run)."""


@dataclass
class TrainResult:
    """What a call to `train` did."""

    out_dir: str
    step: int                       # steps completed (the next step to run)
    best_valid_cost: float
    best_step: int | None
    stopped: str                    # "max_steps", "num_steps", "max_time", "early_stopping", "interrupted"
    n_params: int
    history: list[dict] = field(default_factory=list)   # the metric rows written by this call
    signal: int | None = None       # the signal that interrupted the run (SIGINT, SIGTERM)
    seconds: float = 0.0            # wall-clock time of the call


def step_seed(seed: int, step: int, rank: int, stream: int) -> int:
    """A 64-bit seed for one random stream of one step of one process."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0])


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s?)?")


def parse_duration(text: str) -> float:
    """'45m', '1h30m', '20s', '90' (seconds), '1.5h' -> seconds."""
    t = str(text).strip().lower().replace(" ", "")
    m = _DURATION.fullmatch(t)
    if not t or not m or not any(m.groups()):
        raise OptionError(f"--max-time {text!r}: expected a duration such as 45m, 1h30m, 20s or 90 (seconds)")
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + sec
    if not seconds > 0:
        raise OptionError(f"--max-time {text!r}: the duration must be > 0")
    return seconds


def format_duration(seconds: float) -> str:
    """1h 05m, 12m 30s, 45 s: for estimates."""
    s = round(seconds)
    if s >= 86400:
        return f"{seconds / 86400:,.1f} days"
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{seconds:.0f} s"


def data_fingerprint(paths: list[str]) -> list[dict]:
    """Name, size and sha256 of each data file (a few ms per MB), so `--resume` sees a replaced file."""
    out = []
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out.append({"file": os.path.basename(p), "size": os.path.getsize(p), "sha256": h.hexdigest()})
    return out


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise OptionError(f"--device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: CUDA is not available here")
    return dev


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint dict, read without executing code (`weights_only=True`)."""
    path = str(path)
    try:
        check_zip_bounds(path)  # a deflated member could inflate to any size inside torch's reader
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except DatasetFormatError as e:
        raise TrainingError(f"not a sketchrnn checkpoint: {e.message}", path=path) from None
    except FileNotFoundError:
        raise TrainingError("no such checkpoint", path=path) from None
    except IsADirectoryError:
        raise TrainingError("is a folder, not a checkpoint file", path=path) from None
    except MemoryError:
        raise TrainingError("the checkpoint needs more memory than there is to load", path=path) from None
    except Exception:  # noqa: BLE001  (damaged or foreign: torch's own text may advise unsafe loading, never shown)
        raise TrainingError("not a sketchrnn checkpoint, or a damaged one: it cannot be read as plain tensors and "
                            "numbers. Use a best.pt or latest.pt written by `sketchprep train`", path=path) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError("not a sketchrnn checkpoint (no 'format' entry). Use a best.pt or latest.pt written by "
                            "`sketchprep train`", path=path)
    check_checkpoint(ckpt, path)
    return ckpt


# Largest sizes a checkpoint may ask for (a sketch-rnn uses 256-2048 units); `--set` can go past them for
# a new run, but a file from elsewhere cannot make the model builder allocate more than this.
CHECKPOINT_MAX = {"enc_rnn_size": 16384, "dec_rnn_size": 16384, "z_size": 16384, "num_mixture": 1024,
                  "hyper_num_units": 16384, "hyper_embedding_size": 4096, "max_seq_len": 100_000}


def check_checkpoint(ckpt: dict, path: str) -> None:
    """Types and ranges of every entry a checkpoint is used for, and its hparams against its weights
    (the model is built on the `meta` device, which allocates nothing), before any model is built."""
    def bad(what: str):
        return TrainingError(f"damaged checkpoint: {what}. Use a best.pt or latest.pt written by `sketchprep train`",
                             path=path)

    hparams = ckpt.get("hparams")
    if not isinstance(hparams, dict):
        raise bad("'hparams' is not a dict")
    for name, limit in CHECKPOINT_MAX.items():
        value = hparams.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > limit:
            raise bad(f"hparam {name} = {value} is over the bound {limit}")
    try:
        hps = HParams.from_dict(hparams, source="checkpoint hparams")
    except OptionError as e:
        raise bad(str(e)) from None
    weights = ckpt.get("model")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise bad("'model' is not a dict of tensors")
    scale = ckpt.get("scale_factor")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise bad(f"scale_factor {scale!r} is not a number > 0")
    for name in ("max_len", "step"):
        value = ckpt.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad(f"{name} {value!r} is not an integer >= 0")
    if ckpt["max_len"] > hps.max_seq_len:  # sampling runs max_len + 1 decoder steps
        raise bad(f"max_len {ckpt['max_len']} is over its hparam max_seq_len {hps.max_seq_len}")
    files = ckpt.get("data_files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise bad("data_files is not a list of file names")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SketchRNN(hps).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        diff = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
        raise bad(f"its weights do not match its hparams (first difference: {diff[0]})")
    # shapes can lie: a tensor may be a broadcast view of a few bytes; the data must be really there
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() // t.element_size()
                for t in weights.values()}
    held, needed = sum(storages.values()), sum(math.prod(shape) for shape in expected.values())
    if held < needed:
        raise bad(f"its weights hold {held:,} values for a model of {needed:,} parameters")


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write atomically: a killed process leaves the previous file, never half of a new one."""
    with atomic_output(path) as f:
        torch.save(ckpt, f)


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> SketchRNN:
    """The model of a checkpoint, in eval mode."""
    hps = HParams.from_dict(ckpt["hparams"], source="checkpoint hparams")
    model = SketchRNN(hps)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------
# distributed helpers (no-ops in a single process)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float], device) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank), dev


# ---------------------------------------------------------------------------------------------------
# evaluation


def to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(batch.strokes5).to(device, non_blocking=True)
    return x, torch.from_numpy(batch.lengths)


@torch.no_grad()
def evaluate(model: SketchRNN, batches: Batches, kl_weight: float, device: torch.device, dist: Dist = Dist(),
             seed: int = 0) -> dict:
    """Mean cost, recon cost and KL over every sketch of a split (no dropout, z sampled with a fixed seed)."""
    was_training = model.training
    model.eval()
    sums = [0.0] * 6
    gen = torch.Generator(device=device).manual_seed(step_seed(seed, 0, dist.rank, 99))
    for batch in batches.eval_batches(dist.rank, dist.world):
        x, lengths = to_device(batch, device)
        losses = model(x, lengths, batch.norm_steps, kl_weight, gen)
        n = len(batch.lengths)
        for i, v in enumerate((losses.cost, losses.r_cost, losses.kl, losses.offset, losses.pen)):
            sums[i] += float(v) * n
        sums[5] += n
    sums = dist.all_sum(sums, device)
    model.train(was_training)
    n = max(sums[5], 1.0)
    return {"cost": sums[0] / n, "r_cost": sums[1] / n, "kl": sums[2] / n, "offset": sums[3] / n,
            "pen": sums[4] / n, "n": int(sums[5])}


# ---------------------------------------------------------------------------------------------------
# metrics output


class MetricsLog:
    """metrics.jsonl (one JSON object per row) and TensorBoard events when tensorboard is installed."""

    def __init__(self, out_dir: Path, resume_step: int | None, enabled: bool):
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.rows: list[dict] = []
        self.writer = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # drop rows a killed run wrote after its last checkpoint: they will be written again
            kept = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            with atomic_output(self.path) as f:
                f.write("".join(ln + "\n" for ln in kept).encode())
        elif self.path.exists():
            self.path.unlink()
        self.file = open(self.path, "a")
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional
            self.writer = SummaryWriter(str(out_dir / "tensorboard"),
                                        purge_step=resume_step + 1 if resume_step is not None else None)
        except ImportError:
            self.writer = None

    def write(self, row: dict) -> None:
        self.rows.append(row)
        if not self.enabled:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("split", "step") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{row['split']}/{key}", value, row["step"])

    def image(self, tag: str, path: Path, step: int) -> None:
        """A PNG (a grid of samples) as a TensorBoard image, when tensorboard is installed."""
        if self.writer is not None:
            from PIL import Image

            with Image.open(path) as img:
                self.writer.add_image(tag, np.asarray(img.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


# ---------------------------------------------------------------------------------------------------
# the loop


def flush_denormal_enabled() -> bool:
    """Whether this thread flushes subnormal floats to zero (torch has a setter but no getter)."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0


def train(data_paths: list[str], out_dir: str | os.PathLike, hps: HParams | None = None, **options) -> TrainResult:
    """Train sketch-rnn on `.npz` files into `out_dir` (best.pt, latest.pt, hparams.json, metrics.jsonl,
    samples/).

    Options (keywords): resume: continue from out_dir/latest.pt (its hparams and data files;
    `data_paths` may be empty); allow_data_change: resume although a data file's content changed;
    max_steps: stop when this many steps are done in total (default: hps.num_steps); max_seconds: stop
    so that the run, its closing evaluation included, ends within this wall-clock budget, counted from
    `started` (a time.time() value; default: when `train` is called); device
    ("auto"); rnn_impl ("auto", see SketchRNN.set_rnn_impl); patience: stop after this many
    evaluations without a better valid cost (0: never); samples: drawings in the grid written at
    every evaluation (0: none); log_every (20); log: receives one line per `log_every` steps and per
    evaluation; progress: called with 1 per step; on_step(step, metrics): called after every update
    with the step's index and {"cost", "r_cost", "kl", "seconds"} (tests use it to interrupt a run).

    Subnormal floats are flushed to zero while it runs (subnormal gradients make the CPU backward
    ~10x slower on this CPU, measured) and the thread's previous setting is restored afterwards.
    """
    previous = flush_denormal_enabled()
    torch.set_flush_denormal(True)
    try:
        return _train(data_paths, out_dir, hps, **options)
    finally:
        torch.set_flush_denormal(previous)
        release_buffers()  # the fast RNN's kept buffers (about 1 GB at the reference sizes)


SAMPLES_DIR = "samples"
SAMPLE_TEMPERATURE = 0.4
RECONSTRUCTED = 4       # fixed valid drawings reconstructed at every evaluation (conditional models)


def _clear_samples(out: Path) -> None:
    """A run that starts over leaves no grid of the previous run behind."""
    folder = out / SAMPLES_DIR
    if folder.is_dir():
        for p in folder.glob("*-[0-9]*.png"):
            p.unlink()


def _fixed_drawings(data) -> list[np.ndarray]:
    """A few valid drawings of varied length (the split is sorted by length), back in data units."""
    valid = data.splits["valid"].strokes
    picks = sorted({int(q * (len(valid) - 1)) for q in np.linspace(0.2, 0.8, RECONSTRUCTED)})
    unit = np.array([data.scale_factor, data.scale_factor, 1.0], dtype=np.float32)
    return [valid[i] * unit for i in picks]


def _check_data_unchanged(ckpt: dict, paths: list[str], allow: bool) -> None:
    saved = ckpt.get("data_fingerprint")
    if not saved or allow:
        return
    now = data_fingerprint(paths)
    for old, new, path in zip(saved, now, paths):
        if old["sha256"] != new["sha256"]:
            raise TrainingError(f"the data changed since the run was trained on it (size {old['size']:,} -> "
                                f"{new['size']:,} bytes, another sha256). Train a new run with --overwrite or "
                                f"another --out, or continue on the new data with --allow-data-change", path=path)


def _train(data_paths: list[str], out_dir: str | os.PathLike, hps: HParams | None = None, *, resume: bool = False,
           allow_data_change: bool = False, max_steps: int | None = None, max_seconds: float | None = None,
           device: str = "auto", rnn_impl: str = "auto", patience: int = 0, samples: int = 16,
           log_every: int = 20, log: Callable[[str], None] | None = None,
           progress: Callable[[int], None] | None = None,
           on_step: Callable[[int, dict], None] | None = None, started: float | None = None) -> TrainResult:
    t_begin = started if started is not None else time.time()
    out = Path(out_dir)
    dist, dev = init_distributed(device)
    say = (log or (lambda s: None)) if dist.main else (lambda s: None)
    stop_signal = _StopSignal()       # from here on, a signal stops the run cleanly
    try:
        return _train_run(data_paths, out, hps, dist, dev, say, stop_signal, t_begin, resume=resume,
                          allow_data_change=allow_data_change, max_steps=max_steps, max_seconds=max_seconds,
                          rnn_impl=rnn_impl, patience=patience, samples=samples, log_every=log_every,
                          progress=progress, on_step=on_step)
    finally:
        stop_signal.restore()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train_run(data_paths, out: Path, hps, dist: Dist, dev, say, stop_signal, t_begin, *, resume, allow_data_change,
               max_steps, max_seconds, rnn_impl, patience, samples, log_every, progress, on_step) -> TrainResult:
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / LATEST)
        saved = HParams.from_dict(ckpt["hparams"], source=str(out / LATEST))
        diff = sorted(k for k, v in (hps.to_dict() if hps else {}).items()
                      if saved.to_dict()[k] != v and k != "data_set")    # data_set is set from the files
        if diff:
            raise OptionError(f"--resume continues with the checkpoint's hparams; these differ: {', '.join(diff)}")
        hps = saved
        # an imported model (`sketchprep import`) may have no data files: it resumes on the data given
        if data_paths and ckpt["data_files"] and \
                [os.path.basename(p) for p in data_paths] != [os.path.basename(p) for p in ckpt["data_files"]]:
            raise OptionError(f"--resume: the run was trained on {', '.join(ckpt['data_files'])}")
        data_paths = data_paths or ckpt["data_files"]
    elif hps is None:
        hps = HParams()
    if not data_paths:
        raise OptionError("give the .npz file(s) to train on")
    if not resume and (out / LATEST).exists():
        raise OptionError(f"{out} already holds a run (latest.pt): continue it with --resume, start over with "
                          f"--overwrite, or choose another --out")
    hps = hps.replace(data_set=[os.path.basename(p) for p in data_paths])
    for p in data_paths:
        if not os.path.isfile(p):
            raise OptionError(f"no such data file: {p}")
    if ckpt is not None:
        _check_data_unchanged(ckpt, data_paths, allow_data_change)
    fingerprint = data_fingerprint(data_paths)

    data = load_data([str(p) for p in data_paths], hps.max_seq_len,
                     scale_factor=ckpt["scale_factor"] if ckpt else None)
    for name in ("valid", "test"):
        if len(data.splits[name]) == 0:
            raise OptionError(f"the {name} split is empty; training needs train, valid and test sketches")
    steps = data.target_steps
    train_batches = Batches(data.splits["train"], hps.batch_size, steps, hps.pad_to_batch, hps.random_scale_factor,
                            hps.augment_stroke_prob, hps.seed)
    valid_batches = Batches(data.splits["valid"], hps.batch_size, steps, hps.pad_to_batch)
    test_batches = Batches(data.splits["test"], hps.batch_size, steps, hps.pad_to_batch)
    if len(data.splits["train"]) < hps.batch_size * dist.world:
        train_batches.random_batch(0, 0, dist.world)  # raises the explanatory error

    torch.manual_seed(hps.seed)
    model = SketchRNN(hps)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
    model.to(dev)
    model.set_rnn_impl(rnn_impl)
    optimizer = torch.optim.Adam(model.parameters(), lr=hps.learning_rate)  # TF's defaults: betas, eps 1e-8
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    start = int(ckpt["step"]) if ckpt else 0
    best = float(ckpt["best_valid_cost"]) if ckpt else math.inf
    best_step = ckpt.get("best_step") if ckpt else None
    since_best = int(ckpt["evals_since_best"]) if ckpt else 0
    stop_at = min(hps.num_steps, max_steps if max_steps is not None else hps.num_steps)
    n_params = count_parameters(model)

    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is None:
            _clear_samples(out)
        with atomic_output(out / "hparams.json") as f:
            f.write(json.dumps(hps.to_dict(), indent=2).encode())
    metrics = MetricsLog(out, start if ckpt else None, dist.main)
    say(f"data: {', '.join(data.files)}: train {len(data.splits['train'])}, valid {len(data.splits['valid'])}, "
        f"test {len(data.splits['test'])}; longest {data.max_len} rows; scale factor {data.scale_factor:.4f}"
        + (f"; dropped (longer than max_seq_len={hps.max_seq_len}): {data.dropped}" if any(data.dropped.values()) else ""))
    say(f"model: {hps.enc_model}/{hps.dec_model}, enc {hps.enc_rnn_size}, dec {hps.dec_rnn_size}, z {hps.z_size}, "
        f"M {hps.num_mixture}, {'conditional' if hps.conditional else 'unconditional'}; {n_params:,} parameters; "
        f"device {dev}" + (f" x {dist.world} processes" if dist.world > 1 else "")
        + (f", {torch.get_num_threads()} thread(s)" if dev.type == "cpu" else "")
        + (f"; resuming at step {start}" if ckpt else ""))
    to_go = stop_at - start
    why = "--max-steps" if max_steps is not None and max_steps < hps.num_steps else "num_steps"
    say(f"plan: {to_go:,} steps (to step {stop_at:,}, {why})"
        + (f" or {format_duration(max_seconds)} (--max-time), whichever comes first" if max_seconds else "")
        + f"; an evaluation every {hps.save_every:,} steps"
        + ("; that is the reference's 'keep large' num_steps: set --max-steps or --max-time, or stop with "
           "Ctrl-C (latest.pt is saved)" if to_go >= 1_000_000 and not max_seconds else ""))
    fixed = _fixed_drawings(data) if hps.conditional else []

    def checkpoint(step_done: int) -> dict:
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "hparams": hps.to_dict(), "scale_factor": data.scale_factor,
                "max_len": data.max_len, "step": step_done, "best_valid_cost": best, "best_step": best_step,
                "evals_since_best": since_best, "seed": hps.seed, "world_size": dist.world,
                "data_files": [os.path.abspath(p) for p in data.files], "data_fingerprint": fingerprint,
                "classes": data.classes, "torch_version": str(torch.__version__)}

    def write_samples(done: int) -> None:
        if not samples or not dist.main:
            return
        from .sample import Run, write_progress_grids   # sample imports this module

        run = Run(model, hps, data.scale_factor, data.max_len, list(data.files), done, str(out))
        for tag, path in write_progress_grids(run, out / SAMPLES_DIR, done, samples, fixed, SAMPLE_TEMPERATURE,
                                              hps.seed):
            metrics.image(tag, path, done)

    def run_eval(done: int, kl_w: float) -> bool:
        """Evaluate after `done` steps; returns True when early stopping says stop."""
        nonlocal best, best_step, since_best
        t0 = time.perf_counter()
        v = evaluate(model, valid_batches, kl_w, dev, dist, hps.seed)
        improved = v["cost"] < best
        if improved:
            best, best_step, since_best = v["cost"], done, 0
        else:
            since_best += 1
        metrics.write({"split": "valid", "step": done, "kl_weight": kl_w, **v, "best": best})
        if improved:
            if dist.main:
                save_checkpoint(out / BEST, checkpoint(done))
            tst = evaluate(model, test_batches, kl_w, dev, dist, hps.seed)
            metrics.write({"split": "test", "step": done, "kl_weight": kl_w, **tst})
        if dist.main:
            save_checkpoint(out / LATEST, checkpoint(done))
        write_samples(done)
        say(f"valid  step {done}: cost {v['cost']:.4f}  recon {v['r_cost']:.4f}  kl {v['kl']:.4f}  "
            f"(best {best:.4f} at step {best_step}; {time.perf_counter() - t0:.1f} s)"
            + (f"; test cost {tst['cost']:.4f}" if improved else ""))
        eval_seconds[0] = time.perf_counter() - t0
        return patience > 0 and since_best >= patience

    # the closing evaluation must fit in --max-time: until one is measured, guess it from the step time
    # (a forward pass over the valid and test splits, a third of a training step per batch, plus sampling)
    eval_seconds = [None]
    n_eval_batches = 2 * math.ceil(len(data.splits["valid"]) / (hps.batch_size * dist.world))

    step = start
    last_eval = start if ckpt else None
    stopped = "max_steps" if stop_at < hps.num_steps else "num_steps"
    acc = np.zeros(6)
    t_interval = time.perf_counter()
    step_s = None                      # moving average of a training step's seconds
    estimated = False
    model.train()
    try:
        while step < stop_at:
            t_step = time.perf_counter()
            lr, kl_w = lr_at(hps, step), kl_weight_at(hps, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = train_batches.random_batch(step, dist.rank, dist.world)
            x, lengths = to_device(batch, dev)
            gen = torch.Generator(device=dev).manual_seed(step_seed(hps.seed, step, dist.rank, 1))
            losses = net(x, lengths, batch.norm_steps, kl_w, gen)
            optimizer.zero_grad(set_to_none=True)
            losses.cost.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), hps.grad_clip)
            # every process must agree on stopping (a signal or the clock reaches them at different moments)
            elapsed = time.time() - t_begin
            step_guess = step_s if step_s is not None else time.perf_counter() - t_step
            closing = eval_seconds[0] if eval_seconds[0] is not None else n_eval_batches * step_guess / 3 + 1.0
            out_of_time = max_seconds is not None and elapsed + step_guess + closing >= max_seconds
            bad, stop_now, time_up = dist.all_sum([0.0 if torch.isfinite(losses.cost) else 1.0,
                                                   1.0 if stop_signal.received else 0.0,
                                                   1.0 if out_of_time else 0.0], dev)
            if bad:
                raise TrainingError(f"the loss is not finite at step {step + 1}; the last checkpoint is "
                                    f"{out / LATEST} (step {last_eval if last_eval is not None else start})",
                                    path=str(out))
            optimizer.step()
            row = [v.item() for v in (losses.cost, losses.r_cost, losses.kl, losses.offset, losses.pen)] + [1.0]
            acc += row
            step += 1                  # steps done
            seconds = time.perf_counter() - t_step
            step_s = seconds if step_s is None else 0.9 * step_s + 0.1 * seconds
            if step % log_every == 0 or step == stop_at:
                dt = (time.perf_counter() - t_interval) / acc[5]
                m = acc[:5] / acc[5]
                metrics.write({"split": "train", "step": step, "lr": lr, "kl_weight": kl_w, "cost": m[0],
                               "r_cost": m[1], "kl": m[2], "offset": m[3], "pen": m[4], "s_per_step": dt})
                say(f"train  step {step}: lr {lr:.6f}  klw {kl_w:.4f}  cost {m[0]:.4f}  recon {m[1]:.4f}  "
                    f"kl {m[2]:.4f}  {dt:.3f} s/step")
                acc[:] = 0
                t_interval = time.perf_counter()
                if not estimated and stop_at - step > 0:
                    estimated = True
                    say(f"estimate: {stop_at - step:,} steps to go x {dt:.3f} s/step = "
                        f"{format_duration((stop_at - step) * dt)} plus evaluations"
                        + (f" (--max-time stops it after {format_duration(max_seconds)})"
                           if max_seconds and (stop_at - step) * dt > max_seconds else ""))
            early_stop = False
            if step % hps.save_every == 0:
                last_eval = step
                early_stop = run_eval(step, kl_w)
                t_interval = time.perf_counter()
            if progress is not None:
                progress(1)
            if on_step is not None:
                on_step(step - 1, {"cost": row[0], "r_cost": row[1], "kl": row[2], "seconds": seconds})
            if early_stop:
                stopped = "early_stopping"
                break
            if stop_now:
                stopped = "interrupted"
                break
            if time_up:
                stopped = "max_time"
                break
        if dist.world > 1:
            _check_replicas(model, dist, dev)
        if stopped == "interrupted":
            if dist.main and step > start and last_eval != step:
                save_checkpoint(out / LATEST, checkpoint(step))
        elif last_eval != step and step > start:
            run_eval(step, kl_weight_at(hps, step - 1))
    finally:
        metrics.close()
    return TrainResult(str(out), step, best, best_step, stopped, n_params, metrics.rows, stop_signal.signum,
                       time.time() - t_begin)


def _check_replicas(model: SketchRNN, dist: Dist, device) -> None:
    """DDP keeps the replicas equal; check it (one small all-reduce) rather than trust it."""
    total = float(sum(p.detach().double().abs().sum() for p in model.parameters()))
    mean = dist.all_sum([total], device)[0] / dist.world
    spread = math.sqrt(dist.all_sum([(total - mean) ** 2], device)[0])
    if spread > 1e-9 * max(1.0, mean):
        raise TrainingError(f"the {dist.world} processes hold different weights (|w| sums spread {spread:.3g})")


class _StopSignal:
    """SIGINT / SIGTERM set a flag that the loop reads between steps (so a checkpoint is never taken
    in the middle of an update); a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = False
        self.signum: int | None = None
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.received:
            raise KeyboardInterrupt
        self.received = True
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
