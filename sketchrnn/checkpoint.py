"""Checkpoints and run folders: how a run is written, read back and checked.

A run folder (`sketchprep train --out`, `sketchprep import --out`) holds latest.pt (the last
evaluation, or where a stopped run stopped), best.pt (the lowest valid cost so far), hparams.json,
metrics.jsonl and samples/ (the grids drawn at each evaluation).

Checkpoints are plain dicts (`torch.load(path, weights_only=True)` reads them) written to a temporary
file and renamed: the weights (of the unwrapped, uncompiled module), the optimizer, the hparams, the
scale factor (fix F.14), the drawing box (`sketchrnn.box`), the step, the best valid cost, the data
files (with their sha256, so that `--resume` sees a replaced file). A checkpoint read here is checked
(types, ranges, its weights against its hparams) before any model is built from it.

Sampling, export and import read runs through this module alone: none of them imports the training loop.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sketchprep.dataset import atomic_output, check_zip_bounds
from sketchprep.errors import DatasetFormatError, OptionError, SketchprepError
from sketchprep.files import NotRegularFileError, open_regular
from sketchprep.limits import BOX, SCALE_FACTOR

from .devices import resolve_device
from .model import HParams, SketchRNN, check_model_size

CHECKPOINT_FORMAT = "sketchrnn-checkpoint"
CHECKPOINT_VERSION = 1
LATEST, BEST = "latest.pt", "best.pt"
SAMPLES_DIR = "samples"
MAX_STEP = 10**12      # a checkpoint's step (and max_len): far beyond any run, within every integer type


class TrainingError(SketchprepError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not match the run)."""


# ---------------------------------------------------------------------------------------------------
# checkpoint files


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint dict, read without executing code (`weights_only=True`)."""
    path = str(path)
    try:
        with open_regular(path, "a checkpoint") as f:
            check_zip_bounds(f, path)  # a deflated member could inflate to any size inside torch's reader
            ckpt = torch.load(f, map_location=map_location, weights_only=True)
    except DatasetFormatError as e:
        raise TrainingError(f"not a sketchrnn checkpoint: {e.message}", path=path) from None
    except FileNotFoundError:
        raise TrainingError("no such checkpoint", path=path) from None
    except IsADirectoryError:
        raise TrainingError("is a folder, not a checkpoint file", path=path) from None
    except NotRegularFileError as e:
        raise TrainingError(f"{e.strerror}. Give a checkpoint file (best.pt or latest.pt)", path=path) from None
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


def check_checkpoint(ckpt: dict, path: str) -> None:
    """Types and ranges of every entry a checkpoint is used for, and its hparams against its weights
    (the model is built on the `meta` device, which allocates nothing), before any model is built."""
    problem = checkpoint_problem(ckpt)
    if problem:
        raise TrainingError(f"damaged checkpoint: {problem}. Use a best.pt or latest.pt written by `sketchprep train`",
                            path=path)


def checkpoint_problem(ckpt: dict) -> str | None:
    """What makes `ckpt` unusable (None when nothing does): what `load_checkpoint` checks, and what
    `sketchprep import` checks before it writes a run, so that it never writes one that will not load."""
    hparams = ckpt.get("hparams")
    if not isinstance(hparams, dict):
        return "'hparams' is not a dict"
    try:   # the bounds of every hparam (HParams) and of the model's size: nothing is allocated yet
        hps = HParams.from_dict(hparams, source="checkpoint hparams")
        check_model_size(hps)
    except OptionError as e:
        return str(e)
    weights = ckpt.get("model")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        return "'model' is not a dict of tensors"
    scale = ckpt.get("scale_factor")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not SCALE_FACTOR.contains(scale):
        return f"scale_factor {scale!r} is not {SCALE_FACTOR.describe()}"
    box = ckpt.get("box")
    if box is not None and (isinstance(box, bool) or not isinstance(box, (int, float)) or not BOX.contains(box)):
        return f"box {box!r} is not {BOX.describe()}"
    warmup_start = ckpt.get("warmup_start", 0)     # where `train --resume` counts the warm-up from
    if isinstance(warmup_start, bool) or not isinstance(warmup_start, int) or not 0 <= warmup_start <= MAX_STEP:
        return f"warmup_start {warmup_start!r} is not a whole number from 0 to {MAX_STEP}"
    if not isinstance(ckpt.get("resize_data", False), bool):
        return f"resize_data {ckpt.get('resize_data')!r} is not true or false"
    if not isinstance(ckpt.get("init_from"), (str, type(None))):
        return f"init_from {ckpt.get('init_from')!r} is not a file name"
    for name in ("max_len", "step"):
        value = ckpt.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP:
            return f"{name} {value!r} is not a whole number from 0 to {MAX_STEP}"
    if ckpt["max_len"] > hps.max_seq_len:  # sampling runs max_len + 1 decoder steps
        return f"max_len {ckpt['max_len']} is over its hparam max_seq_len {hps.max_seq_len}"
    files = ckpt.get("data_files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return "data_files is not a list of file names"
    best = ckpt.get("best_valid_cost", math.inf)   # these three: what `train --resume` continues from
    if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
        return f"best_valid_cost {best!r} is not a number"
    for name in ("best_step", "evals_since_best"):
        value = ckpt.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEP):
            return f"{name} {value!r} is not a whole number from 0 to {MAX_STEP}"
    if not isinstance(ckpt.get("optimizer", {}), dict):
        return "'optimizer' is not a dict"
    classes = ckpt.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of class names"
    if hps.class_conditional and (len(classes) != hps.num_classes or len(set(classes)) != len(classes)):
        return (f"its {len(classes)} class names ({len(set(classes))} different) are not the {hps.num_classes} "
                f"classes of its class embedding")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in SketchRNN(hps).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        diff = sorted(set(expected) ^ set(found)) or [k for k in expected if expected[k] != found[k]]
        return f"its weights do not match its hparams (first difference: {diff[0]})"
    # shapes can lie: a tensor may be a broadcast view of a few bytes; the data must be really there
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() // t.element_size()
                for t in weights.values()}
    held, needed = sum(storages.values()), sum(math.prod(shape) for shape in expected.values())
    if held < needed:
        return f"its weights hold {held:,} values for a model of {needed:,} parameters"
    return None


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write atomically: a killed process leaves the previous file, never half of a new one."""
    with atomic_output(path) as f:
        torch.save(ckpt, f)


def make_checkpoint(*, model: SketchRNN, optimizer: torch.optim.Optimizer, hps: HParams, scale_factor: float,
                    max_len: int, step: int, best_valid_cost: float, best_step: int | None,
                    evals_since_best: int, world_size: int, data_files: list[str], data_fingerprint: list[dict],
                    classes: list, box: float | None = None, **extra) -> dict:
    """The checkpoint `train` writes after `step` steps (the model unwrapped from DDP). `box`: the run's
    drawing box (sketchrnn.box); `extra`: more entries (builtins) stored as they are."""
    return {**extra, **({"box": float(box)} if box is not None else {}),
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "hparams": hps.to_dict(), "scale_factor": scale_factor,
            "max_len": max_len, "step": step, "best_valid_cost": best_valid_cost, "best_step": best_step,
            "evals_since_best": evals_since_best, "seed": hps.seed, "world_size": world_size,
            "data_files": [os.path.abspath(p) for p in data_files], "data_fingerprint": data_fingerprint,
            "classes": classes, "torch_version": str(torch.__version__)}


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> SketchRNN:
    """The model of a checkpoint, in eval mode."""
    hps = HParams.from_dict(ckpt["hparams"], source="checkpoint hparams")
    model = SketchRNN(hps)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------------
# the data a checkpoint was trained on


def data_fingerprint(paths: list[str]) -> list[dict]:
    """Name, size and sha256 of each data file (a few ms per MB), so `--resume` sees a replaced file."""
    out = []
    for p in paths:
        h = hashlib.sha256()
        with open_regular(p, "a dataset") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out.append({"file": os.path.basename(p), "size": os.path.getsize(p), "sha256": h.hexdigest()})
    return out


def check_data_unchanged(ckpt: dict, paths: list[str], allow: bool) -> None:
    """Refuse to resume on data files whose content differs from the checkpoint's (unless `allow`)."""
    saved = ckpt.get("data_fingerprint")
    if not saved or allow:
        return
    now = data_fingerprint(paths)
    for old, new, path in zip(saved, now, paths):
        if old["sha256"] != new["sha256"]:
            raise TrainingError(f"the data changed since the run was trained on it (size {old['size']:,} -> "
                                f"{new['size']:,} bytes, another sha256). Train a new run with --overwrite or "
                                f"another --out, or continue on the new data with --allow-data-change", path=path)


# ---------------------------------------------------------------------------------------------------
# run folders


def write_hparams(out: Path, hps: HParams) -> None:
    """out/hparams.json: the run's hparams for people and tools (the checkpoint holds its own copy)."""
    with atomic_output(out / "hparams.json") as f:
        f.write(json.dumps(hps.to_dict(), indent=2).encode())


def prepare_run_folder(out: Path, hps: HParams, fresh: bool) -> None:
    """Create the folder and write hparams.json; a run that starts over (`fresh`) leaves no grid of the
    previous run behind."""
    out.mkdir(parents=True, exist_ok=True)
    if fresh:
        folder = out / SAMPLES_DIR
        if folder.is_dir():
            for p in folder.glob("*-[0-9]*.png"):
                p.unlink()
    write_hparams(out, hps)


def find_checkpoint(path: str | os.PathLike, checkpoint: str = "best") -> str:
    """A run folder's best.pt, else latest.pt (`checkpoint="latest"` prefers latest.pt); a file as given."""
    path = str(path)
    if os.path.isdir(path):
        order = [BEST, LATEST] if checkpoint == "best" else [LATEST, BEST]
        found = [os.path.join(path, name) for name in order if os.path.exists(os.path.join(path, name))]
        if not found:
            raise OptionError(f"{path}: no best.pt or latest.pt here (is it a `sketchprep train --out` folder?)")
        path = found[0]
    return path


@dataclass
class Run:
    """A trained model and what sampling needs from its checkpoint."""

    model: SketchRNN
    hps: HParams
    scale_factor: float
    max_len: int
    data_files: list[str]
    step: int
    path: str
    classes: list[str] = field(default_factory=list)   # the class names of the training data, by index
    box: float = 255.0              # the drawing box (sketchrnn.box): the size of the drawings the model knows

    def class_index(self, name: str) -> int:
        """The index of class `name`; an OptionError listing the run's classes when it has no such class."""
        if name in self.classes:
            return self.classes.index(name)
        shown = ", ".join(map(repr, self.classes[:30])) + (" ..." if len(self.classes) > 30 else "")
        raise OptionError(f"--class {name!r}: the run has no such class (its classes: {shown or 'none'})")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_run(path: str | os.PathLike, device: str = "cpu", checkpoint: str = "best") -> Run:
    """A run folder (its best.pt, else latest.pt; `checkpoint="latest"` prefers latest.pt) or a .pt file."""
    path = find_checkpoint(path, checkpoint)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, resolve_device(device))
    return Run(model, model.hps, float(ckpt["scale_factor"]), int(ckpt["max_len"]), list(ckpt["data_files"]),
               int(ckpt["step"]), path, list(ckpt.get("classes", [])),
               box=checkpoint_box(ckpt))


def checkpoint_box(ckpt: dict) -> float:
    """A checkpoint's drawing box; for one written before runs kept it, its first data set's box
    (255, convert's default, when there is none)."""
    from .box import data_box

    box = ckpt.get("box")
    return float(box) if box is not None else data_box(list(ckpt.get("data_files") or []))
