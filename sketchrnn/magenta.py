"""Magenta's TensorFlow sketch-rnn <-> this package: variable names, layouts, hparams, run folders.

The one place that knows how a variable of Magenta's graph (REFERENCE B.6; the fixtures' README
"Conventions in the data") becomes a parameter of `sketchrnn.model.SketchRNN`:

- Linear layers: TF stores W as (in, out) and computes x @ W + b; torch's nn.Linear stores (out, in).
- LSTM weights: TF `W_xh` (In, 4H), `W_hh` (H, 4H) with gate column blocks in the order i, j, f, o
  (j = candidate); this package keeps PyTorch's row blocks i, f, g, o (g = TF's j). `bias`,
  `ln_all/ln_gamma` and `ln_all/ln_beta` follow the same block order.
- Forget bias 1.0 is a constant added at run time in both (never stored).
- Flat decoder states keep the reference's layouts ([c, h] lstm, [h, c] layer_norm,
  [h, h_hyper, c, c_hyper] hyper), so `linear/super_linear_w` (z -> initial state) maps unpermuted.
- HyperLSTM: per gate g, `hyper_<g>x/zw`, `hyper_<g>x/alpha`, `hyper_<g>h/{zw,alpha,zb,beta}` become
  block g (in torch gate order) of `zw_x`, `alpha_x`, `zw_h`, `alpha_h`, `zb_h`, `beta_h`; the hyper
  cell itself is a LayerNormLSTMCell under `HyperLSTMCell/LayerNormLSTMCell`.

Every map is a permutation or transpose, so the same function carries weights, gradients and Adam's
slots. `import_magenta` turns a Magenta run folder (model_config.json + TF checkpoint) into a
`sketchprep train` run folder, written by `save_imported_run` (shared with the magenta-js import).
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketchprep.errors import OptionError, SketchprepError
from sketchprep.files import SMALL_FILE_BYTES, read_bytes
from sketchprep.limits import BOX, SCALE_FACTOR, Bound, value_text

from .tf_checkpoint import TFCheckpoint
from .checkpoint import MAX_STEP

TF_GATES = ("i", "j", "f", "o")      # the reference's column blocks (rnn.py LSTMCell.__call__)
TORCH_GATES = ("i", "f", "j", "o")   # this package's row blocks (PyTorch's i, f, g, o with g = j)
ROOT = "vector_rnn"
CELL_SCOPES = {"lstm": "LSTMCell", "layer_norm": "LayerNormLSTMCell", "hyper": "HyperLSTMCell"}


class MagentaImportError(SketchprepError):
    """A model that cannot be imported (missing variables, shapes that do not fit the config)."""


# ---------------------------------------------------------------------------------------------------
# the variable map


@dataclass(frozen=True)
class VarMap:
    """How TF variable `tf` fills (part of) torch parameter `torch`.

    kind: "linear" (transpose), "copy", "gates_w" (permute gate column blocks, transpose),
    "gates_v" (permute gate blocks of a vector), "rows_T" (rows block*e..(block+1)*e of a (4e, N)
    weight = tf.T), "part" (entries block*e.. of a (4e,) vector), "slab" (index `block` of a (4, e, n) tensor).
    """

    tf: str
    torch: str
    kind: str
    block: int = -1


def _cell_map(tf_scope: str, prefix: str, kind: str) -> list[VarMap]:
    s = f"{tf_scope}/{CELL_SCOPES[kind]}"
    out = [VarMap(f"{s}/W_xh", f"{prefix}.weight_ih", "gates_w"), VarMap(f"{s}/W_hh", f"{prefix}.weight_hh", "gates_w")]
    if kind in ("lstm", "hyper"):
        out.append(VarMap(f"{s}/bias", f"{prefix}.bias", "gates_v"))
    if kind in ("layer_norm", "hyper"):
        out += [VarMap(f"{s}/ln_all/ln_gamma", f"{prefix}.ln_gamma", "gates_v"),
                VarMap(f"{s}/ln_all/ln_beta", f"{prefix}.ln_beta", "gates_v"),
                VarMap(f"{s}/ln_c/ln_gamma", f"{prefix}.ln_c_gamma", "copy"),
                VarMap(f"{s}/ln_c/ln_beta", f"{prefix}.ln_c_beta", "copy")]
    if kind == "hyper":
        out += _cell_map(s, f"{prefix}.hyper", "layer_norm")
        for k, g in enumerate(TORCH_GATES):
            out += [VarMap(f"{s}/hyper_{g}x/zw/super_linear_w", f"{prefix}.zw_x.weight", "rows_T", k),
                    VarMap(f"{s}/hyper_{g}x/zw/super_linear_b", f"{prefix}.zw_x.bias", "part", k),
                    VarMap(f"{s}/hyper_{g}x/alpha/super_linear_w", f"{prefix}.alpha_x", "slab", k),
                    VarMap(f"{s}/hyper_{g}h/zw/super_linear_w", f"{prefix}.zw_h.weight", "rows_T", k),
                    VarMap(f"{s}/hyper_{g}h/zw/super_linear_b", f"{prefix}.zw_h.bias", "part", k),
                    VarMap(f"{s}/hyper_{g}h/alpha/super_linear_w", f"{prefix}.alpha_h", "slab", k),
                    VarMap(f"{s}/hyper_{g}h/zb/super_linear_w", f"{prefix}.zb_h.weight", "rows_T", k),
                    VarMap(f"{s}/hyper_{g}h/beta/super_linear_w", f"{prefix}.beta_h", "slab", k)]
    return out


def variable_map(enc_model: str, dec_model: str, conditional: bool) -> list[VarMap]:
    """Every trainable variable of Magenta's graph and the parameter it becomes (graph order aside)."""
    out: list[VarMap] = []
    if conditional:
        out += _cell_map(f"{ROOT}/ENC_RNN/fw", "encoder.fw.cell", enc_model)
        out += _cell_map(f"{ROOT}/ENC_RNN/bw", "encoder.bw.cell", enc_model)
        out += [VarMap(f"{ROOT}/ENC_RNN_mu/super_linear_w", "encoder.mu.weight", "linear"),
                VarMap(f"{ROOT}/ENC_RNN_mu/super_linear_b", "encoder.mu.bias", "copy"),
                VarMap(f"{ROOT}/ENC_RNN_sigma/super_linear_w", "encoder.presig.weight", "linear"),
                VarMap(f"{ROOT}/ENC_RNN_sigma/super_linear_b", "encoder.presig.bias", "copy"),
                VarMap(f"{ROOT}/linear/super_linear_w", "decoder.init_state.weight", "linear"),
                VarMap(f"{ROOT}/linear/super_linear_b", "decoder.init_state.bias", "copy")]
    out += _cell_map(f"{ROOT}/RNN", "decoder.rnn.cell", dec_model)
    out += [VarMap(f"{ROOT}/RNN/output_w", "decoder.output.weight", "linear"),
            VarMap(f"{ROOT}/RNN/output_b", "decoder.output.bias", "copy")]
    return out


def _permute_blocks(a: np.ndarray, axis: int, gate_order: tuple[str, ...]) -> np.ndarray:
    """TF gate blocks (in `gate_order`) along `axis` -> torch's order (TORCH_GATES)."""
    blocks = np.split(a, 4, axis=axis)
    return np.concatenate([blocks[gate_order.index(g)] for g in TORCH_GATES], axis=axis)


def tf_to_torch(arrays: dict[str, np.ndarray], enc_model: str, dec_model: str, conditional: bool,
                shapes: dict[str, tuple] | None = None, gate_order: tuple[str, ...] = TF_GATES,
                source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Magenta variables (TF names -> arrays: weights, their gradients or Adam slots) -> torch
    parameter names -> arrays in this package's layout. Every mapped variable must be present;
    with `shapes` (torch name -> shape) every result is checked against it. `gate_order` is the TF
    block order (the default is the reference's; anything else is for tests that must fail)."""
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    missing = []
    for m in variable_map(enc_model, dec_model, conditional):
        if m.tf not in arrays:
            missing.append(m.tf)
            continue
        origin.setdefault(m.torch, m.tf)
        a = np.asarray(arrays[m.tf])
        if (m.kind in ("gates_w", "gates_v") and (a.ndim != (2 if m.kind == "gates_w" else 1) or a.shape[-1] % 4)) \
                or (m.kind in ("linear", "rows_T") and a.ndim != 2):
            raise MagentaImportError(f"{m.tf}: shape {a.shape} does not fit the model the other variables describe",
                                     path=source)
        if m.kind == "linear":
            out[m.torch] = a.T
        elif m.kind == "copy":
            out[m.torch] = a
        elif m.kind == "gates_w":
            out[m.torch] = _permute_blocks(a, 1, gate_order).T
        elif m.kind == "gates_v":
            out[m.torch] = _permute_blocks(a, 0, gate_order)
        else:   # one block of a stacked hyper parameter
            parts = out.setdefault(m.torch, [None] * 4)
            parts[m.block] = a.T if m.kind == "rows_T" else a
    if missing:
        kind = f"conditional {enc_model}/{dec_model}" if conditional else f"unconditional {dec_model}"
        raise MagentaImportError(f"{len(missing)} variable(s) of a {kind} model missing, first {missing[0]!r}",
                                 path=source)
    for name, value in list(out.items()):
        if isinstance(value, list):
            try:
                out[name] = np.stack(value) if name.endswith(("alpha_x", "alpha_h", "beta_h")) \
                    else np.concatenate(value, 0)
            except ValueError:
                raise MagentaImportError(f"the per-gate variables of {origin[name].rsplit('/', 3)[0]} differ in "
                                         "shape", path=source) from None
        out[name] = np.ascontiguousarray(out[name])
        if shapes is not None and tuple(out[name].shape) != tuple(shapes[name]):
            raise MagentaImportError(f"{origin[name]}: shape {tuple(arrays[origin[name]].shape)} does not fit the "
                                     f"model the other variables describe (here {name} {tuple(shapes[name])})",
                                     path=source)
    return out


# ---------------------------------------------------------------------------------------------------
# hparams: the architecture from the checkpoint's shapes, the rest from model_config.json


def architecture(shapes: dict[str, tuple], source: str = "checkpoint") -> dict:
    """The model's structural hparams read off the TF variable shapes (they must agree with any config)."""
    def cell_kind(scope: str) -> str | None:
        for kind, name in CELL_SCOPES.items():
            if f"{scope}/{name}/W_hh" in shapes:
                return kind
        return None

    for name, shape in shapes.items():
        if name.startswith(f"{ROOT}/") and any(d < 0 for d in shape):
            raise MagentaImportError(f"{name} has an impossible shape {tuple(shape)} (damaged file?)", path=source)
    dec = cell_kind(f"{ROOT}/RNN")
    out_w = shapes.get(f"{ROOT}/RNN/output_w")
    if dec is None or out_w is None or len(out_w) != 2 or (out_w[1] - 3) % 6 or out_w[1] <= 3 or out_w[0] < 1:
        raise MagentaImportError(f"no sketch-rnn decoder in this checkpoint (no {ROOT}/RNN/<cell>/W_hh and output_w); "
                           "is it a Magenta sketch_rnn checkpoint?", path=source)
    arch = {"dec_model": dec, "dec_rnn_size": int(out_w[0]), "num_mixture": (int(out_w[1]) - 3) // 6}
    enc = cell_kind(f"{ROOT}/ENC_RNN/fw")
    arch["conditional"] = enc is not None
    if enc is not None:
        arch["enc_model"] = enc
        arch["enc_rnn_size"] = int(shapes[f"{ROOT}/ENC_RNN/fw/{CELL_SCOPES[enc]}/W_hh"][0])
        arch["z_size"] = int(shapes[f"{ROOT}/ENC_RNN_mu/super_linear_w"][1])
    for scope in (f"{ROOT}/RNN", f"{ROOT}/ENC_RNN/fw"):
        hyper = shapes.get(f"{scope}/HyperLSTMCell/LayerNormLSTMCell/W_hh")
        if hyper is not None:
            arch["hyper_num_units"] = int(hyper[0])
            arch["hyper_embedding_size"] = int(shapes[f"{scope}/HyperLSTMCell/hyper_ix/zw/super_linear_w"][1])
    return arch


# booleans the published configs store as 0/1 (the demo notebook's `load_model_compatible` fixes these)
_BOOL_KEYS = ("conditional", "is_training", "use_input_dropout", "use_output_dropout", "use_recurrent_dropout")


def hparams_from_config(config, arch: dict, source: str = "model_config.json"):
    """HParams for an imported model: `arch` (from the checkpoint) wins; the other fields come from
    Magenta's `model_config.json` (`config`: its parsed JSON, or None when absent) with the
    reference's quirks undone. Returns (HParams, notes: list of one-line remarks for the user)."""
    from .model import _FIELD_TYPES, HParams, parse_value

    notes: list[str] = []
    values: dict = {}
    if config is None:
        notes.append("no model_config.json: training hparams are this package's defaults (the architecture is "
                     "read from the checkpoint)")
    elif isinstance(config, list):
        # REFERENCE F.1: on Python 3 the trainer wrote list(hps.values()), i.e. only the key names
        notes.append("model_config.json lists only hparam names (the reference trainer's Python 3 bug): training "
                     "hparams are this package's defaults (the architecture is read from the checkpoint)")
    elif isinstance(config, dict):
        for key, value in config.items():
            if key not in _FIELD_TYPES:
                notes.append(f"model_config.json: {key!r} is not an hparam here; ignored")
                continue
            want = _FIELD_TYPES[key]
            try:
                if key == "data_set" and isinstance(value, str):
                    value = [value]                          # older configs hold one name as a string
                elif isinstance(value, str) and want is not str and want is not list:
                    value = parse_value(key, value)          # a number or flag stored as a string
                elif want is bool and isinstance(value, (int, float)) and not isinstance(value, bool):
                    if value not in (0, 1):
                        raise OptionError("")
                    value = bool(value)                      # published configs store flags as 0/1
                elif want is int and isinstance(value, float) and value.is_integer():
                    value = int(value)
            except OptionError:
                raise MagentaImportError(f"{key} = {value!r} is not {want.__name__}-valued", path=source) from None
            values[key] = value
    else:
        raise MagentaImportError("expected a JSON object of hparams", path=source)

    for key, value in arch.items():
        if key in values and values[key] != value:
            notes.append(f"model_config.json says {key}={values[key]!r} but the checkpoint's weights are "
                         f"{key}={value!r}; using the checkpoint's")
        values[key] = value
    if values.get("is_training") is False:
        notes.append("model_config.json has is_training=0 (a sampling config): imported with is_training=true, "
                     "the training loss")
    values["is_training"] = True
    try:
        hps = HParams.from_dict(values, source=source)
    except OptionError as e:
        raise MagentaImportError(str(e).removeprefix(f"{source}: "), path=source) from None
    return hps, notes


# ---------------------------------------------------------------------------------------------------
# finding the checkpoint


_CKPT_LINE = re.compile(r'^\s*model_checkpoint_path\s*:\s*"(.*)"\s*$', re.MULTILINE)
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


def find_checkpoint(path: str | os.PathLike) -> tuple[str, str | None]:
    """A Magenta run folder, a checkpoint prefix or one of its files -> (checkpoint prefix,
    model_config.json path or None). In a folder the `checkpoint` file names the newest
    checkpoint (its path may be absolute from another machine: then the same name here is used);
    without it, the `*.index` of the highest step."""
    p = str(path)
    if os.path.isdir(p):
        folder, prefix = p, None
        marker = os.path.join(folder, "checkpoint")
        if os.path.lexists(marker):
            m = _CKPT_LINE.search(read_bytes(marker, "a TensorFlow `checkpoint` list",
                                             SMALL_FILE_BYTES).decode("utf-8", errors="replace"))
            if m:
                named = m.group(1)
                for cand in (named if os.path.isabs(named) else os.path.join(folder, named),
                             os.path.join(folder, os.path.basename(named))):
                    if os.path.isfile(cand + ".index"):
                        prefix = cand
                        break
            if prefix is None and m and os.path.isfile(os.path.join(folder, os.path.basename(m.group(1)))):
                raise MagentaImportError(f"{os.path.basename(m.group(1))} is a V1 TensorFlow checkpoint (before "
                                         "TensorFlow 0.12), which is not read: save it again with a newer "
                                         "TensorFlow (tf.train.Saver writes V2)", path=p)
        if prefix is None:
            indexes = sorted(Path(folder).glob("*.index"),
                             key=lambda q: (int(m.group(1)) if (m := re.search(r"-(\d+)$", q.stem)) else -1, q.name))
            if not indexes:
                raise MagentaImportError("no TensorFlow checkpoint here (no `checkpoint` file, no *.index file). "
                                         "Give the folder that holds model_config.json and vector-N.index", path=p)
            prefix = str(indexes[-1].with_suffix(""))
    else:
        prefix = _DATA_SUFFIX.sub("", p)
        for suffix in (".index", ".meta"):
            prefix = prefix.removesuffix(suffix)
        if not os.path.lexists(prefix + ".index"):  # a FIFO or device is refused by TFCheckpoint, by name
            raise MagentaImportError(f"not a Magenta model folder, TensorFlow checkpoint or .json model (no "
                                     f"{os.path.basename(prefix)}.index beside it)", path=p)
        folder = os.path.dirname(prefix) or "."
    config = os.path.join(folder, "model_config.json")
    return prefix, config if os.path.lexists(config) else None


# ---------------------------------------------------------------------------------------------------
# reading a Magenta model


@dataclass
class ImportedModel:
    """A model read from another format, ready for `save_imported_run`."""

    hps: object                         # sketchrnn.model.HParams
    state_dict: dict                    # torch parameter name -> torch.Tensor
    step: int                           # training steps done (the reference's global_step)
    source: str
    optimizer_state: dict | None = None  # torch.optim.Adam state_dict, when the slots could be mapped
    notes: list[str] = field(default_factory=list)
    scale_factor: float | None = None   # when the source format stores one


def _find_var(ckpt: TFCheckpoint, suffix: str) -> str | None:
    hits = [n for n in ckpt.names() if n == suffix or n.endswith("/" + suffix)]
    return min(hits, key=len) if hits else None


TF_ADAM_BETAS = (0.9, 0.999)  # tf.train.AdamOptimizer's defaults, which the reference keeps
STEP = Bound(0, MAX_STEP, whole=True)   # global_step
BETA_POWER = Bound(0, 1)                 # beta^(n+1) after n updates: underflows to 0, never above 1


def _scalar(ckpt: TFCheckpoint, name: str, bound: Bound) -> float:
    """A scalar variable (global_step, beta1_power, beta2_power), checked: one number within `bound`."""
    a = ckpt.read(name)
    if a.size != 1 or a.dtype.kind not in "iuf":
        raise MagentaImportError(f"{name} must be one number, not a {a.dtype} array of shape {a.shape}",
                                 path=ckpt.index_path)
    value = a.reshape(()).item()
    try:
        return float(bound.parse(value, name))
    except OptionError as e:
        raise MagentaImportError(e.message, path=ckpt.index_path) from None


def _adam_updates(ckpt: TFCheckpoint, b1: str, b2: str | None, global_step: int) -> int:
    """How many Adam updates the slots have seen. TF starts beta_power at beta and multiplies it by beta
    after each update (beta^(n+1) after n updates); torch counts n in `step`. beta2_power is used
    first: it underflows float32 only after ~100k updates (beta1_power after ~1k); past that the bias
    corrections are 1 either way and global_step stands in."""
    powers = {name: _scalar(ckpt, name, BETA_POWER) for name in (b1, b2) if name is not None}  # both checked
    for name, beta in ((b2, TF_ADAM_BETAS[1]), (b1, TF_ADAM_BETAS[0])):
        if name is not None:
            power = powers[name]
            if 0.0 < power < 1.0:
                return max(round(math.log(power) / math.log(beta)) - 1, 0)
    return max(global_step, 0)


def read_magenta(path: str | os.PathLike, gate_order: tuple[str, ...] = TF_GATES) -> ImportedModel:
    """Read a Magenta sketch-rnn model (folder or checkpoint) into this package's layout."""
    import torch

    from .model import SketchRNN

    prefix, config_path = find_checkpoint(path)
    ckpt = TFCheckpoint(prefix)
    shapes = {name: e.shape for name, e in ckpt.entries.items()}
    config = None
    if config_path is not None:
        try:
            config = json.loads(read_bytes(config_path, "a model_config.json", SMALL_FILE_BYTES))
        except ValueError as e:
            raise MagentaImportError(f"not JSON ({e})", path=config_path) from None
        except RecursionError:
            raise MagentaImportError("not a model config: JSON nested too deeply", path=config_path) from None
    arch = architecture(shapes, source=ckpt.index_path)
    hps, notes = hparams_from_config(config, arch, source=config_path or "model_config.json")

    model = SketchRNN(hps)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    vmap = variable_map(hps.enc_model, hps.dec_model, hps.conditional)
    weights = {m.tf: ckpt.read(m.tf) for m in vmap if m.tf in ckpt}
    params = tf_to_torch(weights, hps.enc_model, hps.dec_model, hps.conditional, want, gate_order,
                         source=ckpt.index_path)
    if set(params) != set(want):
        raise MagentaImportError(f"the map leaves parameters unset: {sorted(set(want) - set(params))[:3]}",
                           path=ckpt.index_path)
    for name, a in params.items():
        if not np.isfinite(a).all():
            raise MagentaImportError(f"{name}: the checkpoint holds NaN or infinite values", path=ckpt.index_path)
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in params.items()}
    model.load_state_dict(state)

    step_name = _find_var(ckpt, "global_step")
    step = int(_scalar(ckpt, step_name, STEP)) if step_name else 0
    opt_state = None
    m_slots = {m.tf: _find_var(ckpt, m.tf + "/Adam") for m in vmap}
    v_slots = {m.tf: _find_var(ckpt, m.tf + "/Adam_1") for m in vmap}
    b1, b2 = _find_var(ckpt, "beta1_power"), _find_var(ckpt, "beta2_power")
    if all(m_slots.values()) and all(v_slots.values()) and b1:
        exp_avg = tf_to_torch({k: ckpt.read(v) for k, v in m_slots.items()}, hps.enc_model, hps.dec_model,
                              hps.conditional, want, gate_order, source=ckpt.index_path)
        exp_avg_sq = tf_to_torch({k: ckpt.read(v) for k, v in v_slots.items()}, hps.enc_model, hps.dec_model,
                                 hps.conditional, want, gate_order, source=ckpt.index_path)
        n_updates = _adam_updates(ckpt, b1, b2, step)
        optimizer = torch.optim.Adam(model.parameters(), lr=hps.learning_rate, betas=TF_ADAM_BETAS)
        names = dict(model.named_parameters())
        for name, p in names.items():
            optimizer.state[p] = {"step": torch.tensor(float(n_updates)),
                                  "exp_avg": torch.from_numpy(np.array(exp_avg[name], dtype=np.float32)),
                                  "exp_avg_sq": torch.from_numpy(np.array(exp_avg_sq[name], dtype=np.float32))}
        opt_state = optimizer.state_dict()
    else:
        notes.append("no Adam slots in the checkpoint: `train --resume` starts the optimizer fresh")
    return ImportedModel(hps, state, step, prefix, opt_state, notes)


# ---------------------------------------------------------------------------------------------------
# writing a run folder


def save_imported_run(out_dir: str | os.PathLike, hps, state_dict: dict, scale_factor: float, step: int,
                      source: str, optimizer_state: dict | None = None, max_len: int | None = None,
                      data_files: list[str] | None = None, overwrite: bool = False, box: float | None = None) -> Path:
    """Write `out_dir/latest.pt` (the checkpoint layout of `sketchrnn.checkpoint`) and `hparams.json` for a
    model imported from elsewhere, so that sample, interpolate, complete, export and `train --resume`
    take it. Refuses a folder that already holds a run unless `overwrite`. Returns the checkpoint path.
    Without `optimizer_state`, Adam starts fresh on resume (an empty torch Adam state). `box`: the
    run's drawing box (sketchrnn.box); None leaves it to its data files."""
    import torch

    from .checkpoint import (BEST, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, LATEST, checkpoint_problem,
                             save_checkpoint, write_hparams)
    from .model import SketchRNN

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: a file is in the way (give a folder)")
    held = [n for n in (LATEST, BEST) if (out / n).exists()]
    if held and not overwrite:
        raise OptionError(f"--out {out} already holds a run ({held[0]}); choose another folder or add --overwrite")
    scale_factor = SCALE_FACTOR.parse(scale_factor if isinstance(scale_factor, (int, float)) else repr(scale_factor),
                                      "the scale factor")
    model = SketchRNN(hps)
    model.load_state_dict(state_dict)     # checks names and shapes once more
    if optimizer_state is None:
        optimizer_state = torch.optim.Adam(model.parameters(), lr=hps.learning_rate).state_dict()
    ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": model.state_dict(),
            "optimizer": optimizer_state, "hparams": hps.to_dict(), "scale_factor": float(scale_factor),
            "max_len": int(max_len if max_len is not None else hps.max_seq_len), "step": int(step),
            "best_valid_cost": math.inf, "best_step": None, "evals_since_best": 0, "seed": hps.seed,
            "world_size": 1, "data_files": [os.path.abspath(p) for p in (data_files or [])], "classes": [],
            "torch_version": str(torch.__version__), "imported_from": str(source)}
    if box is not None:
        ckpt["box"] = float(box)
    problem = checkpoint_problem(ckpt)   # what loading the run will check: never write a run that does not load
    if problem:
        raise MagentaImportError(f"the model cannot become a run: {problem}", path=str(source))
    out.mkdir(parents=True, exist_ok=True)
    if overwrite and (out / BEST).exists():
        os.unlink(out / BEST)             # a stale best.pt would shadow the imported model in `sample`
    save_checkpoint(out / LATEST, ckpt)
    write_hparams(out, hps)
    return out / LATEST


# ---------------------------------------------------------------------------------------------------
# the import command's library function


@dataclass
class ImportResult:
    """What `import_model` wrote and what the user should know."""

    checkpoint: str
    kind: str                  # "magenta-tf" or "magenta-js"
    hps: object
    step: int
    scale_factor: float
    scale_source: str          # "option", "data", "model" or "default"
    n_params: int
    optimizer: bool            # Adam state carried over
    notes: list[str]
    box: float = 255.0         # the run's drawing box (sketchrnn.box)
    box_source: str = "data"   # "option" (--size), "model" (the file's info.box), "data" (--data) or "estimated"


def import_model(path: str | os.PathLike, out_dir: str | os.PathLike, scale_factor: float | None = None,
                 data: list[str] | None = None, overwrite: bool = False,
                 read_js: Callable | None = None, size: float | None = None) -> ImportResult:
    """Import a Magenta model into a run folder: a `.json` file is a magenta-js model
    (`sketchrnn.magenta_js.read_js_model`), anything else a TensorFlow run folder or checkpoint.
    The scale factor is `scale_factor` if given, else computed from `data` (the train split, as
    training does), else the one the model file stores, else 1.0 (with a note). The drawing box
    (sketchrnn.box) is `size` if given, else the one the file keeps (`info.box` of a `.gen.json` that
    `export` wrote), else the box of `data`, else estimated from the model's own drawings."""
    p = str(path)
    if not os.path.exists(p) and not os.path.exists(p + ".index"):
        raise MagentaImportError("no such file or folder", path=p)
    if p.lower().endswith(".json") and not os.path.isdir(p):  # not a file: read_js refuses it by name
        kind = "magenta-js"
        if read_js is None:
            try:
                from .magenta_js import read_js_model as read_js
            except ImportError:
                raise MagentaImportError("importing magenta-js JSON models is not supported yet", path=p) from None
        hps, state, js_scale, info = read_js(p)
        imported = ImportedModel(hps, state, int((info or {}).get("step", 0)), p, None,
                                 list((info or {}).get("notes", [])), js_scale)
        kept_box = (info or {}).get("box")
    else:
        kind = "magenta-tf"
        imported = read_magenta(p)
        kept_box = None
    notes = list(imported.notes)
    hps = imported.hps
    max_len = None
    if scale_factor is not None:
        scale, how = float(scale_factor), "option"
    elif data:
        from .data import load_data

        for d in data:
            if not os.path.exists(d):  # a FIFO or device: the dataset loader refuses it by name
                raise MagentaImportError("no such data file (--data)", path=d)
        loaded = load_data([str(d) for d in data], hps.max_seq_len)
        scale, how = float(loaded.scale_factor), "data"
        max_len = int(loaded.max_len)
        hps = hps.replace(data_set=[os.path.basename(d) for d in data])
    elif imported.scale_factor is not None:
        scale, how = float(imported.scale_factor), "model"
    else:
        scale, how = 1.0, "default"
        notes.append("scale factor 1.0: offsets come out in the model's normalised units; give --data (the "
                     "data set the model was trained on) or --scale-factor for pixels")
    box, box_how = _import_box(size, kept_box, data, hps, imported.state_dict, scale, p, notes)
    ckpt_path = save_imported_run(out_dir, hps, imported.state_dict, scale, imported.step, imported.source,
                                  imported.optimizer_state, max_len=max_len, data_files=list(data or []),
                                  overwrite=overwrite, box=box)
    n_params = sum(int(v.numel()) for v in imported.state_dict.values())
    return ImportResult(str(ckpt_path), kind, hps, imported.step, scale, how, n_params,
                        imported.optimizer_state is not None, notes, box, box_how)


def _import_box(size, kept, data, hps, state_dict, scale, source, notes) -> tuple[float, str]:
    """The imported run's drawing box and where it came from (see `import_model`)."""
    from .box import check_box, data_box
    from .checkpoint import Run
    from .model import SketchRNN
    from .sample import estimate_box

    if size is not None:
        return check_box(size, "--size"), "option"
    if kept is not None:
        try:
            return check_box(kept), "model"
        except OptionError:
            notes.append(f"info.box {kept!r} in the model file is not {BOX.describe()}; ignored")
    if data:
        return data_box([str(d) for d in data]), "data"
    model = SketchRNN(hps)
    model.load_state_dict(state_dict)
    run = Run(model.eval(), hps, float(scale), hps.max_seq_len, [], 0, str(source))
    return estimate_box(run), "estimated"


# ---------------------------------------------------------------------------------------------------
# parity with the reference: a case computed by Magenta's TF graph (weights, batch, z noise, outputs,
# gradients; the `tf_reference` fixtures) run through this package's model


@dataclass
class ReferenceCase:
    """One `.npz` of TF reference outputs: `arrays` keeps the file's keys (TF names with '/')."""

    name: str
    hps: object
    arrays: dict
    meta: dict

    @property
    def target(self) -> str:
        """What the stored gradients differentiate: "cost" (training) or "r_cost" (the eval graph)."""
        return self.meta["grad_of"]


def load_reference_case(path: str | os.PathLike) -> ReferenceCase:
    from .model import HParams

    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("meta")))
    hp = meta["hps"]
    hps = HParams.from_dict({k: hp[k] for k in hp}, source=str(path))
    return ReferenceCase(meta["case"], hps, arrays, meta)


def reference_model(case: ReferenceCase, gate_order: tuple[str, ...] = TF_GATES, dtype=None):
    """A SketchRNN holding the case's TF weights (through `tf_to_torch`)."""
    import torch

    from .model import SketchRNN

    hps = case.hps
    model = SketchRNN(hps)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    params = tf_to_torch(case.arrays, hps.enc_model, hps.dec_model, hps.conditional, want, gate_order,
                         source=case.name)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    return model.to(dtype or torch.float32).train()


def run_reference_case(model, case: ReferenceCase, norm_steps: int | None = None) -> dict[str, np.ndarray]:
    """Run `model` on the case's batch and z noise; return its outputs under the fixture's key names
    (rows b*T + t) and "grad/<torch parameter>" for every parameter. `norm_steps` defaults to the
    reference's divisor: the decoder's step count (loss_divisor / batch)."""
    import torch

    from .model import mixture_params

    a, hps = case.arrays, case.hps
    dtype = next(model.parameters()).dtype
    strokes5 = torch.from_numpy(a["strokes5"]).to(dtype)
    lengths = torch.from_numpy(a["seq_len"].astype(np.int64))
    b = strokes5.shape[0]
    eps = torch.from_numpy(a["eps"]).to(dtype) if hps.conditional else None
    steps = norm_steps if norm_steps is not None else case.meta["loss_divisor"] // b
    model.zero_grad(set_to_none=True)
    losses = model(strokes5, lengths, steps, float(case.meta.get("kl_weight") or 0.0), eps=eps)
    (losses.cost if case.target == "cost" else losses.r_cost).backward()
    out = {"cost": losses.cost, "r_cost": losses.r_cost}
    with torch.no_grad():
        z = None
        if hps.conditional:
            mean, presig = model.encode(strokes5, lengths)
            z = mean + torch.exp(presig / 2.0) * eps
            out.update(mean=mean, presig=presig, z=z, kl_raw=losses.kl)
        dec_out, _ = model.decoder(strokes5.transpose(0, 1)[:-1], z)          # (T, B, 3+6M)
        p = mixture_params(dec_out.transpose(0, 1).reshape(-1, dec_out.shape[-1]))  # rows b*T + t
        out.update(pi=p.log_pi.exp(), mu1=p.mu_x, mu2=p.mu_y, sigma1=p.log_sigma_x.exp(),
                   sigma2=p.log_sigma_y.exp(), corr=p.rho, pen_logits=p.pen_logits)
    res = {k: v.detach().double().numpy() for k, v in out.items()}
    for name, prm in model.named_parameters():
        res["grad/" + name] = prm.grad.detach().double().numpy()
    return res


def reference_expected(case: ReferenceCase, gate_order: tuple[str, ...] = TF_GATES) -> dict[str, np.ndarray]:
    """The case's TF values under `run_reference_case`'s keys (gradients mapped to torch layout)."""
    hps = case.hps
    keys = ["r_cost", "pi", "mu1", "mu2", "sigma1", "sigma2", "corr", "pen_logits"]
    keys += ["cost"] if "cost" in case.arrays else []
    keys += ["mean", "presig", "z", "kl_raw"] if hps.conditional else []
    want = {k: case.arrays[k].astype(np.float64) for k in keys}
    grads = {k[len("grad/"):]: v for k, v in case.arrays.items() if k.startswith("grad/")}
    for name, g in tf_to_torch(grads, hps.enc_model, hps.dec_model, hps.conditional, gate_order=gate_order,
                               source=case.name).items():
        want["grad/" + name] = g.astype(np.float64)
    return want


def reference_differences(got: dict, want: dict) -> dict[str, float]:
    """Per key of `want`: the largest |got - want| divided by the key's scale: max(1, |value|) for
    costs and outputs (relative for large values, absolute below 1), the variable's largest |TF
    gradient| for gradients."""
    diff = {}
    for key, w in want.items():
        g = got[key]
        if g.shape != w.shape:
            g = g.reshape(w.shape)
        if key.startswith("grad/"):
            scale = max(float(np.abs(w).max()), 1e-12)
            diff[key] = float(np.abs(g - w).max()) / scale
        else:
            diff[key] = float((np.abs(g - w) / np.maximum(1.0, np.abs(w))).max())
    return diff
