"""Training loop: the reference's (REFERENCE B.5, B.7) with its bookkeeping bugs fixed.

One step t (counted from 0, read before the update, as the reference):
  lr_t and kl_weight_t from their per-step schedules -> a batch (sketchrnn.data) -> cost -> backward
  -> every gradient element clipped to [-grad_clip, grad_clip] -> Adam.
Everything a user reads counts steps DONE (metrics rows, "best at step N", the checkpoint's step):
after the update of step t, t + 1 steps are done. When that is a multiple of save_every, the whole
valid split is evaluated without dropout at the CURRENT KL weight (fix F.3: the reference's eval model
keeps 0.01), recon and KL reported apart (and by class when the data has several); an improvement saves
best.pt and evaluates the test split; latest.pt is saved every time, and a grid of samples goes to
samples/step-NNNNNN.png (a row per class for a class-conditional model). (The reference
evaluates one update later, when its 0-based t is a multiple; the difference is one step.) A run that
stops (max steps, --max-time, early stopping, a signal) evaluates and saves latest.pt first.

Every random draw of step t derives from (seed, t, process rank), so `resume` continues exactly where
a killed run would have gone. What a checkpoint holds and how it is checked: `sketchrnn.checkpoint`.

Data-parallel: started by `torchrun --nproc_per_node=N`, each process takes its own `batch_size`
sketches of the step's shared permutation (or balanced draw, `class_balance`) and DDP averages the
gradients (NCCL on CUDA, gloo on CPU).

The code follows a run in order: `set_up` checks the inputs and builds what the loop needs (a `Setup`:
data, batches, model, optimiser, the step to start from), `describe` says what will happen, and
`run_loop` takes the steps, evaluates (`evaluate_and_save`, with `sketchrnn.evaluation`) and stops.

Starting from another run (`init`, `train --init`): its weights and architecture, a fresh optimiser and
step 0 (so the schedules start over), the data scaled to its drawing box (sketchrnn.box) and divided by
its scale factor, so that the first step sees drawings of the size the model knows, and a fine-tuning
learning rate warmed up linearly (`finetune_hparams`). A resumed run whose optimiser has no state (an
imported model) is warmed up the same way from the step it resumes at.
"""
from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sketchprep import limits
from sketchprep.dataset import atomic_output
from sketchprep.errors import OptionError
from sketchprep.files import METRICS_BYTES, read_text
from sketchprep.limits import parse_duration  # noqa: F401  (train's --max-time; importable from here too)

from .box import data_box, dataset_box
from .checkpoint import (BEST, LATEST, SAMPLES_DIR, Run, TrainingError, check_data_unchanged, checkpoint_box,
                         data_fingerprint, find_checkpoint, load_checkpoint, make_checkpoint, prepare_run_folder,
                         save_checkpoint)
from .data import Batches, SketchData, class_shares, load_data
from .devices import Dist, init_distributed, to_device
from .evaluation import evaluate, step_seed
from .model import HParams, SketchRNN, check_model_size, count_parameters, kl_weight_at, lr_at
from .rnn import release_buffers
from .sample import write_progress_grids

# callers import these from here too (they lived here before sketchrnn.checkpoint)
from .checkpoint import CHECKPOINT_FORMAT, model_from_checkpoint  # noqa: F401

SAMPLE_TEMPERATURE = 0.4
RECONSTRUCTED = 4       # fixed valid drawings reconstructed at every evaluation (conditional models)
LOGGED_CLASSES = 8      # up to this many classes, the valid line names each class's recon cost (metrics: always)
# `train --init` defaults: a tenth of the reference's learning rate, warmed up over 50 steps (measured on the
# published cat model and a batch of sheep: a fresh Adam's first step at 1e-4 raised the batch's cost from
# 0.553 to 0.637; warmed up, it fell from the first step, benchmarks/warmup.py, docs/pretrained.md)
FINETUNE_LEARNING_RATE = 1e-4
FINETUNE_WARMUP_STEPS = 50
# what decides the weights' shapes: --init keeps these from the run it starts from
ARCHITECTURE = ("conditional", "enc_model", "dec_model", "enc_rnn_size", "dec_rnn_size", "z_size", "num_mixture",
                "hyper_num_units", "hyper_embedding_size", "class_conditional", "class_embedding_size",
                "num_classes")


@dataclass
class TrainOptions:
    """The keywords of `train` (its docstring says what each does)."""

    resume: bool = False
    init: str | None = None           # a run folder or .pt to start from (train --init)
    allow_data_change: bool = False
    max_steps: int | None = None
    max_seconds: float | None = None
    device: str = "auto"
    rnn_impl: str = "auto"
    patience: int = 0
    samples: int = 16
    log_every: int = 20
    log: Callable[[str], None] | None = None
    progress: Callable[[int], None] | None = None
    on_step: Callable[[int, dict], None] | None = None
    started: float | None = None


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


# ---------------------------------------------------------------------------------------------------
# metrics output


def _row_step(line: str) -> int | None:
    """The step of one metrics.jsonl line, None when the line is not a row with a whole-number step."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    step = row.get("step") if isinstance(row, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


class MetricsLog:
    """metrics.jsonl (one JSON object per row) and TensorBoard events when tensorboard is installed."""

    def __init__(self, out_dir: Path, resume_step: int | None, enabled: bool):
        self.enabled = enabled
        self.path = out_dir / "metrics.jsonl"
        self.rows: list[dict] = []
        self.writer = None
        self.damaged = 0    # lines of an earlier metrics.jsonl dropped on resume because they are not rows
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # drop rows a killed run wrote after its last checkpoint (they will be written again), and lines
            # that are not rows at all (a write cut short by the kill, a damaged disk)
            kept = []
            for line in read_text(self.path, "a metrics.jsonl", METRICS_BYTES).splitlines():
                step = _row_step(line)
                if step is None:
                    self.damaged += bool(line.strip())
                elif step <= resume_step:
                    kept.append(line)
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
# the entry point


def flush_denormal_enabled() -> bool:
    """Whether this thread flushes subnormal floats to zero (torch has a setter but no getter)."""
    return torch.tensor([1e-39], dtype=torch.float32).mul(1.0).item() == 0.0


def train(data_paths: list[str], out_dir: str | os.PathLike, hps: HParams | None = None, **options) -> TrainResult:
    """Train sketch-rnn on `.npz` files into `out_dir` (best.pt, latest.pt, hparams.json, metrics.jsonl,
    samples/).

    Options (keywords, the fields of `TrainOptions`): resume: continue from out_dir/latest.pt (its
    hparams and data files; `data_paths` may be empty); init: start from this run's weights (a run
    folder's best.pt, else latest.pt, or a .pt file), see the module docstring; `hps` then defaults to
    `finetune_hparams(init)` and must keep its architecture; allow_data_change: resume although a data
    file's content changed; max_steps: stop when this many steps are done in total (default:
    hps.num_steps); max_seconds: stop so that the run, its closing evaluation included, ends within
    this wall-clock budget, counted from `started` (a time.time() value; default: when `train` is
    called); device ("auto"); rnn_impl ("auto", see SketchRNN.set_rnn_impl); patience: stop after this
    many evaluations without a better valid cost (0: never); samples: drawings in the grid written at
    every evaluation (0: none); log_every (20); log: receives one line per `log_every` steps and per
    evaluation; progress: called with 1 per step; on_step(step, metrics): called after every update
    with the step's index and {"cost", "r_cost", "kl", "seconds"} (tests use it to interrupt a run).

    Subnormal floats are flushed to zero while it runs (subnormal gradients make the CPU backward
    ~10x slower on this CPU, measured) and the thread's previous setting is restored afterwards.
    """
    import contextlib

    from sketchprep.outputs import folder_lock

    previous = flush_denormal_enabled()
    torch.set_flush_denormal(True)
    try:  # one writer per run folder: rank 0 (or the only process) holds its lock, a second train is refused
        with folder_lock(out_dir, "run folder") if int(os.environ.get("RANK", "0")) == 0 else contextlib.nullcontext():
            return _train(data_paths, out_dir, hps, TrainOptions(**options))
    finally:
        torch.set_flush_denormal(previous)
        release_buffers()  # the fast RNN's kept buffers (about 1 GB at the reference sizes)


def _train(data_paths: list[str], out_dir: str | os.PathLike, hps: HParams | None, opts: TrainOptions) -> TrainResult:
    t_begin = opts.started if opts.started is not None else time.time()
    out = Path(out_dir)
    # the bounds of the command's options, for callers from Python too
    for value, bound, name in ((opts.max_steps, limits.STEPS, "--max-steps"),
                               (opts.max_seconds, limits.MAX_SECONDS, "--max-time"),
                               (opts.patience, limits.PATIENCE, "--patience"),
                               (opts.samples, limits.GRID_SAMPLES, "--samples"),
                               (opts.log_every, limits.STEPS, "--log-every")):
        if value is not None:
            bound.parse(value, name)
    dist, dev = init_distributed(opts.device)
    say = (opts.log or (lambda s: None)) if dist.main else (lambda s: None)
    stop_signal = _StopSignal()       # from here on, a signal stops the run cleanly
    try:
        run = set_up(data_paths, out, hps, opts, dist, dev)
        for line in describe(run, opts):
            say(line)
        result = run_loop(run, opts, say, stop_signal, t_begin)
        if dist.world > 1:
            # no rank tears its connections down while another is still writing or in a collective: gloo
            # aborts a process whose peer closes under it (only on success: after an error the other
            # ranks may never arrive)
            torch.distributed.barrier()
        return result
    finally:
        stop_signal.restore()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------------
# the set-up


@dataclass
class Record:
    """The best valid cost so far: it decides when best.pt is written and when early stopping stops."""

    best: float = math.inf
    best_step: int | None = None     # steps done at the best evaluation
    since_best: int = 0              # evaluations since then

    def update(self, cost: float, done: int) -> bool:
        """Count an evaluation after `done` steps; True when it is the best so far."""
        improved = cost < self.best
        if improved:
            self.best, self.best_step, self.since_best = cost, done, 0
        else:
            self.since_best += 1
        return improved


@dataclass
class Setup:
    """Everything the loop needs, made by `set_up`. The loop changes only the model, the optimiser and
    `record`."""

    out: Path
    hps: HParams
    dist: Dist
    device: torch.device
    data: SketchData
    batches: dict[str, Batches]      # "train" (augmented, random), "valid", "test" (whole splits)
    model: SketchRNN                 # the module whose weights are saved
    net: torch.nn.Module             # what a step calls: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    fingerprint: list[dict]          # of the data files, saved in every checkpoint
    resumed: bool                    # continues a checkpoint (its step, record and optimiser state)
    start: int                       # steps done before this call
    stop_at: int                     # the step it runs to (num_steps or --max-steps), unless it stops sooner
    record: Record
    box: float = 255.0               # the run's drawing box (sketchrnn.box)
    resize_data: bool = False        # each data file scaled from its box to the run's (see set_up)
    resized: list[float] = field(default_factory=list)  # per data file: what its offsets were multiplied by
    warmup_start: int = 0            # the step the learning-rate warm-up counts from
    init_from: str | None = None     # the checkpoint --init started from

    @property
    def scale_factor(self) -> float:
        """What the data's offsets were divided by (saved with the model; sampling multiplies by it)."""
        return self.data.scale_factor

    @property
    def n_params(self) -> int:
        return count_parameters(self.model)


def set_up(data_paths: list[str], out: Path, hps: HParams | None, opts: TrainOptions, dist: Dist,
           dev: torch.device) -> Setup:
    """Check the run's inputs, load its data, build the model, the optimiser and (several processes) the
    DDP wrapper, then prepare the run folder: nothing is written before every check has passed."""
    init, init_path = None, None
    if opts.init is not None:
        if opts.resume:
            raise OptionError("--init starts a new run from another one; --resume continues this one: give one")
        init_path = find_checkpoint(opts.init)
        init = load_checkpoint(init_path)
        hps = check_architecture(hps if hps is not None else finetune_hparams(init), init, opts.init)
    hps, data_paths, ckpt = resolve_inputs(data_paths, out, hps, opts.resume, opts.allow_data_change)
    start_from = ckpt if ckpt is not None else init      # the weights, scale factor and box it continues
    warmup_start = int(ckpt.get("warmup_start", 0)) if ckpt else 0
    if ckpt is not None and not ckpt["optimizer"].get("state") and "warmup_start" not in ckpt:
        # an imported model: a fresh Adam on trained weights, warmed up as --init is, from here
        warmup_start = int(ckpt["step"])
        hps = hps if hps.warmup_steps else hps.replace(warmup_steps=FINETUNE_WARMUP_STEPS)
    box = checkpoint_box(start_from) if start_from is not None else data_box(data_paths)
    # a run started from another model (--init, or an imported one) reads each file scaled from its box to
    # the run's, and so does every resume of it; a run trained here from scratch reads its files as they are
    resize_data = init is not None or bool(ckpt and ckpt.get("resize_data", "imported_from" in ckpt))
    resized = [1.0] * len(data_paths)
    if resize_data:
        resized = [box / found if (found := dataset_box(p)) else 1.0 for p in data_paths]
    fingerprint = data_fingerprint(data_paths)
    known = start_from.get("classes") if start_from and hps.class_conditional else None   # a run draws only its classes
    data = load_training_data(data_paths, hps, start_from["scale_factor"] if start_from else None, resized,
                              classes=known)
    if hps.class_conditional and not start_from:
        hps = hps.replace(num_classes=len(data.classes))
    batches = make_batches(data, hps, dist.world)
    model = build_model(hps, dev, opts.rnn_impl, start_from["model"] if start_from else None)
    optimizer = build_optimizer(model, hps, ckpt["optimizer"] if ckpt else None)
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    record = (Record(float(ckpt.get("best_valid_cost", math.inf)), ckpt.get("best_step"),
                     int(ckpt.get("evals_since_best") or 0)) if ckpt else Record())
    start = int(ckpt["step"]) if ckpt else 0
    stop_at = min(hps.num_steps, opts.max_steps if opts.max_steps is not None else hps.num_steps)
    if dist.main:
        prepare_run_folder(out, hps, fresh=ckpt is None)
    return Setup(out, hps, dist, dev, data, batches, model, net, optimizer, fingerprint, ckpt is not None, start,
                 stop_at, record, box, resize_data, resized, warmup_start,
                 ckpt.get("init_from") if ckpt else (os.path.abspath(init_path) if init_path else None))


def finetune_hparams(init: dict) -> HParams:
    """The hparams `train --init` starts from: the checkpoint `init`'s, with the fine-tuning learning
    rate and warm-up (FINETUNE_LEARNING_RATE, FINETUNE_WARMUP_STEPS)."""
    return HParams.from_dict(init["hparams"], source="the --init checkpoint").replace(
        learning_rate=FINETUNE_LEARNING_RATE, warmup_steps=FINETUNE_WARMUP_STEPS)


def init_hparams(path: str | os.PathLike) -> HParams:
    """`finetune_hparams` of a run folder (its best.pt, else latest.pt) or .pt file, for the command
    line to apply --preset and --set to."""
    return finetune_hparams(load_checkpoint(find_checkpoint(path)))


def check_architecture(hps: HParams, init: dict, label: str) -> HParams:
    """`hps` when it keeps the architecture of the checkpoint `init` (ARCHITECTURE), else an OptionError
    naming what would change."""
    theirs = init["hparams"]
    changed = [f"{k} ({theirs.get(k)!r} there, {getattr(hps, k)!r} given)" for k in ARCHITECTURE
               if k in theirs and theirs[k] != getattr(hps, k)]
    if changed:
        raise OptionError(f"--init {label}: the run keeps its architecture, and --preset/--set would change "
                          f"{', '.join(changed)}. Set only what does not change the weights' shapes (learning_rate, "
                          f"warmup_steps, batch_size, max_seq_len, dropout, ...)")
    return hps


def resolve_inputs(data_paths: list[str], out: Path, hps: HParams | None, resume: bool,
                   allow_data_change: bool) -> tuple[HParams, list[str], dict | None]:
    """The run's hparams and data files, and with `resume` the checkpoint it continues, checked
    against each other and against the run folder."""
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
    check_model_size(hps)   # before the data is read (SketchRNN checks it again before it allocates)
    for p in data_paths:
        if not os.path.exists(p):  # a FIFO or a device is refused by name when it is opened
            raise OptionError(f"no such data file: {p}")
    if ckpt is not None:
        check_data_unchanged(ckpt, data_paths, allow_data_change)
    return hps, data_paths, ckpt


def load_training_data(data_paths: list[str], hps: HParams, scale_factor: float | None = None,
                       resize: list[float] | float = 1.0, classes: list[str] | None = None) -> SketchData:
    """The run's splits, each file's offsets times `resize` (to the run's box), normalised by
    `scale_factor` (default: computed from the train split); `classes` (a resumed or --init
    class-conditional run's) refuses drawings of any other class."""
    data = load_data([str(p) for p in data_paths], hps.max_seq_len, scale_factor=scale_factor, classes=classes,
                     resize=resize)
    for name in ("valid", "test"):
        if len(data.splits[name]) == 0:
            raise OptionError(f"the {name} split is empty; training needs train, valid and test sketches")
    return data


def make_batches(data: SketchData, hps: HParams, world: int) -> dict[str, Batches]:
    """Augmented random batches of the train split; the valid and test splits whole, in order."""
    steps = data.target_steps
    batches = {"train": Batches(data.splits["train"], hps.batch_size, steps, hps.pad_to_batch,
                                hps.random_scale_factor, hps.augment_stroke_prob, hps.seed, hps.class_balance,
                                len(data.classes)),
               "valid": Batches(data.splits["valid"], hps.batch_size, steps, hps.pad_to_batch),
               "test": Batches(data.splits["test"], hps.batch_size, steps, hps.pad_to_batch)}
    if len(data.splits["train"]) < hps.batch_size * world:
        batches["train"].random_batch(0, 0, world)  # raises the explanatory error
    return batches


def build_model(hps: HParams, dev: torch.device, rnn_impl: str = "auto", state: dict | None = None) -> SketchRNN:
    """A model initialised from the run's seed, or holding `state` (a checkpoint's weights), on `dev`."""
    torch.manual_seed(hps.seed)
    model = SketchRNN(hps)
    if state is not None:
        model.load_state_dict(state)
    model.to(dev)
    model.set_rnn_impl(rnn_impl)
    return model


def build_optimizer(model: SketchRNN, hps: HParams, state: dict | None = None) -> torch.optim.Optimizer:
    """Adam with TensorFlow's defaults (betas, eps 1e-8) as the reference; `state` continues a checkpoint's."""
    optimizer = torch.optim.Adam(model.parameters(), lr=hps.learning_rate)
    if state is not None:
        try:
            optimizer.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError):
            raise TrainingError("damaged checkpoint: its optimizer state does not fit its model. Use a latest.pt "
                                "written by `sketchprep train`") from None
    return optimizer


def describe(run: Setup, opts: TrainOptions) -> list[str]:
    """The data, model and plan lines `train` logs before its first step."""
    data, hps, dist, dev = run.data, run.hps, run.dist, run.device
    max_steps, max_seconds = opts.max_steps, opts.max_seconds
    to_go = run.stop_at - run.start
    why = "--max-steps" if max_steps is not None and max_steps < hps.num_steps else "num_steps"
    scaled = [f"{os.path.basename(f)} x {r:.4g}" for f, r in zip(data.files, run.resized) if r != 1.0]
    warm = (f" warmed up over {hps.warmup_steps} steps" + (f" from step {run.warmup_start}" if run.warmup_start else "")
            if hps.warmup_steps and run.start < run.warmup_start + hps.warmup_steps else "")
    return [
        f"data: {', '.join(data.files)}: train {len(data.splits['train'])}, valid {len(data.splits['valid'])}, "
        f"test {len(data.splits['test'])}; longest {data.max_len} rows; scale factor {data.scale_factor:.4f}; "
        f"box {run.box:.0f}" + (f" (scaled to it: {', '.join(scaled)})" if scaled else "")
        + (f"; dropped (longer than max_seq_len={hps.max_seq_len}): {data.dropped}" if any(data.dropped.values())
           else ""),
        f"model: {hps.enc_model}/{hps.dec_model}, enc {hps.enc_rnn_size}, dec {hps.dec_rnn_size}, z {hps.z_size}, "
        f"M {hps.num_mixture}, {'conditional' if hps.conditional else 'unconditional'}"
        + (f", class-conditional (class embedding {hps.class_embedding_size})" if hps.class_conditional else "")
        + f"; {run.n_params:,} parameters; "
        f"device {dev}" + (f" x {dist.world} processes" if dist.world > 1 else "")
        + (f", {torch.get_num_threads()} thread(s)" if dev.type == "cpu" else "")
        + (f"; resuming at step {run.start}" if run.resumed else "")
        + (f"; starting from {run.init_from}" if run.init_from and not run.resumed else ""),
        *_class_lines(data, hps),
        f"plan: {to_go:,} steps (to step {run.stop_at:,}, {why}); "
        f"learning rate {lr_at(hps.replace(warmup_steps=0), run.start):.3g}"
        f"{warm}"
        + (f" or {format_duration(max_seconds)} (--max-time), whichever comes first" if max_seconds else "")
        + f"; an evaluation every {hps.save_every:,} steps"
        + ("; that is the reference's 'keep large' num_steps: set --max-steps or --max-time, or stop with "
           "Ctrl-C (latest.pt is saved)" if to_go >= 1_000_000 and not max_seconds else ""),
    ]


def _class_lines(data: SketchData, hps: HParams, shown: int = 12) -> list[str]:
    """'classes: ...' with each class's train drawings and share of the training draws (none for one
    class and a model that does not read it)."""
    counts = np.bincount(data.splits["train"].labels, minlength=len(data.classes))
    if len(data.classes) < 2 and not hps.class_conditional:
        return []
    shares = class_shares(counts, hps.class_balance)
    parts = [f"{name} {count:,} ({share:.0%})" for name, count, share in zip(data.classes, counts, shares)]
    how = ("plain shuffle (class_balance=none): each class as often as it has drawings" if hps.class_balance == "none"
           else "class_balance=equal: every class equally often" if hps.class_balance == "equal"
           else "class_balance=sqrt: each class in proportion to the square root of its size")
    return [f"classes: {len(data.classes)}, train drawings (share of the draws): {', '.join(parts[:shown])}"
            + (f", ... ({len(parts) - shown} more)" if len(parts) > shown else "")
            + f"; {how}; the model {'reads' if hps.class_conditional else 'does not read'} the class"]


# ---------------------------------------------------------------------------------------------------
# the loop


def run_loop(run: Setup, opts: TrainOptions, say: Callable[[str], None], stop_signal: _StopSignal,
             t_begin: float) -> TrainResult:
    """Take steps from `run.start` until `run.stop_at`, --max-time, early stopping or a signal; evaluate
    every save_every steps and once more at the end."""
    hps, dist, dev, model, optimizer = run.hps, run.dist, run.device, run.model, run.optimizer
    metrics = MetricsLog(run.out, run.start if run.resumed else None, dist.main)
    if metrics.damaged:
        say(f"metrics.jsonl: {metrics.damaged} damaged line(s) dropped (not a JSON row with a step)")
    fixed = _fixed_drawings(run.data) if hps.conditional else []
    clock = _Clock(t_begin, opts.max_seconds,
                   n_eval_batches=2 * math.ceil(len(run.data.splits["valid"]) / (hps.batch_size * dist.world)))
    log = _TrainLog(metrics, say, run.stop_at, opts.log_every, opts.max_seconds)
    step = run.start
    last_eval = run.start if run.resumed else None
    stopped = "max_steps" if run.stop_at < hps.num_steps else "num_steps"
    model.train()
    try:
        while step < run.stop_at:
            t_step = time.perf_counter()
            lr, kl_w = lr_at(hps, step, run.warmup_start), kl_weight_at(hps, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = run.batches["train"].random_batch(step, dist.rank, dist.world)
            x, lengths = to_device(batch, dev)
            gen = torch.Generator(device=dev).manual_seed(step_seed(hps.seed, step, dist.rank, 1))
            losses = run.net(x, lengths, batch.norm_steps, kl_w, gen, labels=torch.from_numpy(batch.labels))
            optimizer.zero_grad(set_to_none=True)
            losses.cost.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), hps.grad_clip)
            # every process must agree on stopping (a signal or the clock reaches them at different moments)
            bad, stop_now, time_up = dist.all_sum([0.0 if torch.isfinite(losses.cost) else 1.0,
                                                   1.0 if stop_signal.received else 0.0,
                                                   1.0 if clock.out_of_time(t_step) else 0.0], dev)
            if bad:
                raise TrainingError(f"the loss is not finite at step {step + 1}; the last checkpoint is "
                                    f"{run.out / LATEST} (step {last_eval if last_eval is not None else run.start})",
                                    path=str(run.out))
            optimizer.step()
            row = [v.item() for v in (losses.cost, losses.r_cost, losses.kl, losses.offset, losses.pen)]
            step += 1                  # steps done
            seconds = clock.step_done(t_step)
            log.add(step, lr, kl_w, row)
            early_stop = False
            if step % hps.save_every == 0:
                last_eval = step
                clock.eval_seconds = evaluate_and_save(run, step, kl_w, metrics, say, opts.samples, fixed)
                early_stop = opts.patience > 0 and run.record.since_best >= opts.patience
                log.restart()
            if opts.progress is not None:
                opts.progress(1)
            if opts.on_step is not None:
                opts.on_step(step - 1, {"cost": row[0], "r_cost": row[1], "kl": row[2], "seconds": seconds})
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
            if dist.main and step > run.start and last_eval != step:
                save_checkpoint(run.out / LATEST, _checkpoint(run, step))
        elif last_eval != step and step > run.start:
            evaluate_and_save(run, step, kl_weight_at(hps, step - 1), metrics, say, opts.samples, fixed)
    finally:
        metrics.close()
    return TrainResult(str(run.out), step, run.record.best, run.record.best_step, stopped, run.n_params, metrics.rows,
                       stop_signal.signum, time.time() - t_begin)


def evaluate_and_save(run: Setup, done: int, kl_w: float, metrics: MetricsLog, say: Callable[[str], None],
                      samples: int, fixed: list[tuple[np.ndarray, int]]) -> float:
    """The evaluation after `done` steps: the valid split (and the test split and best.pt when it is the
    best so far), latest.pt, a grid of samples. Returns its seconds."""
    hps, dist, dev, model = run.hps, run.dist, run.device, run.model
    t0 = time.perf_counter()
    classes = run.data.classes if len(run.data.classes) > 1 else None     # costs by class too (same pass)
    v = evaluate(model, run.batches["valid"], kl_w, dev, dist, hps.seed, classes)
    improved = run.record.update(v["cost"], done)
    metrics.write({"split": "valid", "step": done, "kl_weight": kl_w, **v, "best": run.record.best})
    if improved:
        if dist.main:
            save_checkpoint(run.out / BEST, _checkpoint(run, done))
        tst = evaluate(model, run.batches["test"], kl_w, dev, dist, hps.seed, classes)
        metrics.write({"split": "test", "step": done, "kl_weight": kl_w, **tst})
    if dist.main:
        save_checkpoint(run.out / LATEST, _checkpoint(run, done))
    if samples and dist.main:
        grid_run = Run(model, hps, run.scale_factor, run.data.max_len, list(run.data.files), done, str(run.out),
                       classes=list(run.data.classes), box=run.box)
        for tag, path in write_progress_grids(grid_run, run.out / SAMPLES_DIR, done, samples, [d for d, _ in fixed],
                                              SAMPLE_TEMPERATURE, hps.seed, fixed_labels=[c for _, c in fixed]):
            metrics.image(tag, path, done)
    say(f"valid  step {done}: cost {v['cost']:.4f}  recon {v['r_cost']:.4f}  kl {v['kl']:.4f}  "
        f"(best {run.record.best:.4f} at step {run.record.best_step}; {time.perf_counter() - t0:.1f} s)"
        + (f"; test cost {tst['cost']:.4f}" if improved else "")
        + ("; recon by class: " + ", ".join(f"{name} {c['r_cost']:.4f}" for name, c in v["by_class"].items())
           if classes and len(classes) <= LOGGED_CLASSES else ""))
    return time.perf_counter() - t0


def _checkpoint(run: Setup, step_done: int) -> dict:
    return make_checkpoint(model=run.model, optimizer=run.optimizer, hps=run.hps, scale_factor=run.scale_factor,
                           max_len=run.data.max_len, step=step_done, best_valid_cost=run.record.best,
                           best_step=run.record.best_step, evals_since_best=run.record.since_best,
                           world_size=run.dist.world, data_files=run.data.files, data_fingerprint=run.fingerprint,
                           classes=run.data.classes, box=run.box, resize_data=run.resize_data,
                           warmup_start=run.warmup_start, init_from=run.init_from)


def _fixed_drawings(data: SketchData) -> list[tuple[np.ndarray, int]]:
    """A few valid drawings of varied length (the split is sorted by length), back in data units, with
    their class indices."""
    valid = data.splits["valid"]
    picks = sorted({int(q * (len(valid) - 1)) for q in np.linspace(0.2, 0.8, RECONSTRUCTED)})
    unit = np.array([data.scale_factor, data.scale_factor, 1.0], dtype=np.float32)
    return [(valid.strokes[i] * unit, int(valid.labels[i])) for i in picks]


class _Clock:
    """Whether the next step and the closing evaluation still fit in --max-time. Until an evaluation has
    been timed, its time is guessed from the step time (a forward pass over the valid and test splits, a
    third of a training step per batch, plus sampling)."""

    def __init__(self, t_begin: float, max_seconds: float | None, n_eval_batches: int):
        self.t_begin, self.max_seconds, self.n_eval_batches = t_begin, max_seconds, n_eval_batches
        self.step_s: float | None = None          # moving average of a training step's seconds
        self.eval_seconds: float | None = None    # the last evaluation's seconds

    def out_of_time(self, t_step: float) -> bool:
        """Asked during the step that began at `t_step` (a perf_counter() value)."""
        if self.max_seconds is None:
            return False
        elapsed = time.time() - self.t_begin
        step_guess = self.step_s if self.step_s is not None else time.perf_counter() - t_step
        closing = (self.eval_seconds if self.eval_seconds is not None
                   else self.n_eval_batches * step_guess / 3 + 1.0)
        return elapsed + step_guess + closing >= self.max_seconds

    def step_done(self, t_step: float) -> float:
        """The seconds of the step that began at `t_step`, counted into the average."""
        seconds = time.perf_counter() - t_step
        self.step_s = seconds if self.step_s is None else 0.9 * self.step_s + 0.1 * seconds
        return seconds


class _TrainLog:
    """The train rows: the mean costs of every `log_every` steps (and of the last step), to metrics and
    the log; after the first row, an estimate of the time to go."""

    def __init__(self, metrics: MetricsLog, say: Callable[[str], None], stop_at: int, log_every: int,
                 max_seconds: float | None):
        self.metrics, self.say, self.stop_at, self.log_every, self.max_seconds = (metrics, say, stop_at, log_every,
                                                                                    max_seconds)
        self.acc = np.zeros(6)          # cost, r_cost, kl, offset, pen summed; steps counted
        self.t_interval = time.perf_counter()
        self.estimated = False

    def restart(self) -> None:
        """Leave the time an evaluation took out of the next row's s/step."""
        self.t_interval = time.perf_counter()

    def add(self, step: int, lr: float, kl_w: float, row: list[float]) -> None:
        """Count the step that made `step` steps done, its costs `row` (cost, r_cost, kl, offset, pen)."""
        self.acc += row + [1.0]
        if not (step % self.log_every == 0 or step == self.stop_at):
            return
        acc, stop_at = self.acc, self.stop_at
        dt = (time.perf_counter() - self.t_interval) / acc[5]
        m = acc[:5] / acc[5]
        self.metrics.write({"split": "train", "step": step, "lr": lr, "kl_weight": kl_w, "cost": m[0],
                            "r_cost": m[1], "kl": m[2], "offset": m[3], "pen": m[4], "s_per_step": dt})
        self.say(f"train  step {step}: lr {lr:.6f}  klw {kl_w:.4f}  cost {m[0]:.4f}  recon {m[1]:.4f}  "
                 f"kl {m[2]:.4f}  {dt:.3f} s/step")
        acc[:] = 0
        self.t_interval = time.perf_counter()
        if not self.estimated and stop_at - step > 0:
            self.estimated = True
            max_seconds = self.max_seconds
            self.say(f"estimate: {stop_at - step:,} steps to go x {dt:.3f} s/step = "
                     f"{format_duration((stop_at - step) * dt)} plus evaluations"
                     + (f" (--max-time stops it after {format_duration(max_seconds)})"
                        if max_seconds and (stop_at - step) * dt > max_seconds else ""))


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
