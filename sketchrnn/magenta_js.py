"""The JSON model format of sketch-rnn-js, `@magenta/sketch` (magenta.js) and ml5.js's SketchRNN.

A `.gen.json` file is a JSON array `[info, shapes, weights]` (read by magenta-js
`sketch/src/sketch_rnn/model.ts`, `instantiateFromJSON`; written by the magenta-demos notebook
`Sketch_RNN_TF_To_JS_Tutorial.ipynb`):

- `info`: `{"mode": 2, "version": 6, "max_seq_len", "name", "scale_factor"}`; `export` adds `"box"`, the
  run's drawing box (sketchrnn.box), which `import` reads back. The runtimes ignore it: magenta-js's
  `SketchRNN` reads `info.scale_factor` alone (`sketch/src/sketch_rnn/model.ts`, `setPixelFactor`),
  and ml5.js hands the file to magenta-js without reading it.
- `shapes`: the shape of each weight.
- `weights`: five base64 strings of little-endian int16 `q`; the runtime reads `w = 10 * q / 32767`:
  0. output kernel `[H, 3 + 6M]`, 1. output bias `[3 + 6M]`,
  2. LSTM input kernel `[5, 4H]`, 3. LSTM recurrent kernel `[H, 4H]`, 4. LSTM bias `[4H]`.

The runtime concatenates the two kernels and runs TensorFlow's basic LSTM cell: gates in the order
`(i, j, f, o)` (j the candidate) and the forget bias 1.0 added to `f` at run time (so it is not in the
stored bias). Its output layout is the reference's: 3 pen logits, then `pi, mu_x, mu_y, log sigma_x,
log sigma_y, rho (pre-tanh)`, M each, and it fixes M = 20 (`NMIXTURE`). Input offsets are divided by
`scale_factor / pixelFactor` (pixelFactor 2 by default) and output offsets multiplied by it: a
runtime pixel is one data unit / pixelFactor.

So the runtime can run an unconditional model (`conditional=false`) with the plain `lstm` decoder and
`num_mixture=20` only; `check_exportable` says so before anything is written. A class-conditional model of
that kind is exported one class at a time: `fold_class` folds the class's embedding into the LSTM bias.

This model keeps its LSTM gates in PyTorch's order `(i, f, g, o)` with weights `(4H, I)` (model.py):
export transposes and reorders the gate blocks, import does the inverse.
"""
from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass

import numpy as np
import orjson
import torch

from sketchprep.dataset import atomic_output
from sketchprep.errors import OptionError, SketchprepError
from sketchprep.files import changed_while_read, open_regular
from sketchprep.limits import ROWS, SCALE_FACTOR, Bound, value_text

from .model import HParams
from .checkpoint import MAX_STEP

JS_MIXTURES = 20        # the runtime's NMIXTURE
MAX_WEIGHT = 10.0       # the runtime's maxWeight: w = MAX_WEIGHT * q / Q_MAX
Q_MAX = 32767
INFO_MODE, INFO_VERSION = 2, 6  # what the magenta-demos notebook writes
BROWSER_FLAGS = "--preset browser (or --set conditional=false --set dec_model=lstm --set num_mixture=20)"
MAX_FILE_BYTES = 512 * 1024 * 1024  # far above any decoder a browser runs (H = 2048 is ~90 MB)
MAX_JSON_VALUES = 10_000            # commas in a model file: [info, shapes, weights] needs about 40

# gate blocks: PyTorch order (i, f, g, o) -> TensorFlow order (i, j=g, f, o), and back
TORCH_TO_TF = (0, 2, 1, 3)
TF_TO_TORCH = (0, 2, 1, 3)  # the permutation is its own inverse


class ModelFormatError(SketchprepError):
    """A model that cannot be written in, or a file that cannot be read as, the sketch-rnn-js format."""


def check_exportable(hps: HParams, label: str | None = None, folded: bool = False) -> None:
    """Raise ModelFormatError naming every hparam the JS runtime cannot run, with the flags that train one it can.
    `folded`: a class-conditional model is exported one class at a time (`fold_class`)."""
    problems = []
    if hps.class_conditional and not folded and not hps.conditional and hps.dec_model == "lstm" \
            and hps.num_mixture == JS_MIXTURES:
        raise ModelFormatError("the model is class-conditional: the runtime runs one class at a time; choose it "
                               "with --class NAME", path=label)
    if hps.conditional:
        problems.append("it is conditional (the runtime has no encoder and no z)")
    if hps.dec_model != "lstm":
        problems.append(f"its decoder is {hps.dec_model} (the runtime runs a plain lstm)")
    if hps.num_mixture != JS_MIXTURES:
        problems.append(f"it has num_mixture={hps.num_mixture} (the runtime fixes {JS_MIXTURES})")
    if problems:
        raise ModelFormatError(f"sketch-rnn-js cannot run this model: {'; '.join(problems)}. Train one it can "
                               f"with {BROWSER_FLAGS}", path=label)


def fold_class(state_dict: dict, hps: HParams, class_index: int) -> tuple[HParams, dict]:
    """A class-conditional decoder-only model's decoder for one class, as a plain decoder the runtime runs.

    The decoder's input is [point (5) | class embedding e (E)]; e is the same at every step, so
    W_ih [x; e] + b = W_x x + (W_e e + b): the class's share becomes part of the bias, and the input kernel
    keeps the point's 5 columns. The model it returns computes the same function for that class (float
    rounding aside). Returns (the plain model's HParams, its state_dict)."""
    check_exportable(hps, folded=True)
    if not hps.class_conditional:
        raise ModelFormatError("the model is not class-conditional: there is no class to choose")
    if not 0 <= class_index < hps.num_classes:
        raise ModelFormatError(f"class index {class_index} is outside the model's {hps.num_classes} classes")
    sd = {k: v.detach().cpu().double() for k, v in state_dict.items()}
    w_ih = sd["decoder.rnn.cell.weight_ih"]                          # (4H, 5 + E)
    e = sd["decoder.class_embedding.weight"][class_index]          # (E,)
    out = {k: v.float() for k, v in sd.items() if not k.startswith("decoder.class_embedding")}
    out["decoder.rnn.cell.weight_ih"] = w_ih[:, :5].float().contiguous()
    out["decoder.rnn.cell.bias"] = (sd["decoder.rnn.cell.bias"] + w_ih[:, 5:] @ e).float()
    return hps.replace(class_conditional=False, num_classes=0, class_balance="none"), out


def _blocks(w: np.ndarray, order: tuple[int, ...], axis: int) -> np.ndarray:
    """Reorder the four gate blocks of `w` along `axis`."""
    parts = np.split(w, 4, axis=axis)
    return np.concatenate([parts[i] for i in order], axis=axis)


def js_weights(state_dict: dict, hps: HParams) -> list[np.ndarray]:
    """The five float32 arrays of the format, in its order and layout, from a model's state_dict."""
    check_exportable(hps)
    sd = {k: v.detach().cpu().float().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, np.float32)
          for k, v in state_dict.items()}
    w_ih, w_hh, b = sd["decoder.rnn.cell.weight_ih"], sd["decoder.rnn.cell.weight_hh"], sd["decoder.rnn.cell.bias"]
    return [np.ascontiguousarray(sd["decoder.output.weight"].T),           # (H, 3+6M)
            sd["decoder.output.bias"],                                     # (3+6M,)
            np.ascontiguousarray(_blocks(w_ih, TORCH_TO_TF, 0).T),         # (5, 4H)
            np.ascontiguousarray(_blocks(w_hh, TORCH_TO_TF, 0).T),         # (H, 4H)
            _blocks(b, TORCH_TO_TF, 0)]                                    # (4H,)


def quantize(w: np.ndarray) -> tuple[np.ndarray, int, float]:
    """float weights -> (int16 q with w ~ 10 q / 32767, how many were clipped at +-10, the largest |error|
    of the weights that were not clipped)."""
    w = np.asarray(w, dtype=np.float64)
    clipped = int(np.count_nonzero(np.abs(w) > MAX_WEIGHT))
    q = np.round(np.clip(w / MAX_WEIGHT, -1.0, 1.0) * Q_MAX).astype("<i2")
    inside = np.abs(w) <= MAX_WEIGHT
    err = np.abs(dequantize(q) - w)[inside]
    return q, clipped, float(err.max()) if err.size else 0.0


def dequantize(q: np.ndarray) -> np.ndarray:
    """int16 q -> float32 weights exactly as the runtime computes them (in float32)."""
    return (np.float32(MAX_WEIGHT) * q.astype(np.float32) / np.float32(Q_MAX)).astype(np.float32)


@dataclass
class ExportSummary:
    """What `export_js_model` wrote."""

    path: str
    info: dict
    n_weights: int
    clipped: int          # weights outside +-10, stored as +-10
    max_error: float      # the largest |stored - original| of the other weights (<= 10 / 32767 / 2)
    largest: float        # the largest |weight| of the model
    bytes: int


def js_model(state_dict: dict, hps: HParams, scale_factor: float, name: str,
             max_seq_len: int, box: float | None = None) -> tuple[list, dict]:
    """The `[info, shapes, weights]` array and {"clipped", "max_error", "n_weights", "largest"}.
    `box` (the run's drawing box) goes into info as "box" when given."""
    if not (math.isfinite(scale_factor) and scale_factor > 0):
        raise ModelFormatError(f"the scale factor must be a finite number > 0, got {scale_factor}")
    arrays = js_weights(state_dict, hps)
    shapes, strings = [], []
    clipped, max_error, largest = 0, 0.0, 0.0
    for a in arrays:
        if not np.all(np.isfinite(a)):
            raise ModelFormatError("the model has non-finite weights (NaN or inf): it cannot be exported")
        q, c, e = quantize(a)
        clipped, max_error, largest = clipped + c, max(max_error, e), max(largest, float(np.abs(a).max(initial=0)))
        shapes.append(list(a.shape))
        strings.append(base64.b64encode(q.tobytes()).decode("ascii"))
    info = {"mode": INFO_MODE, "version": INFO_VERSION, "max_seq_len": int(max_seq_len), "name": name,
            "scale_factor": float(scale_factor)}
    if box is not None:
        info["box"] = float(box)
    stats = {"clipped": clipped, "max_error": max_error, "n_weights": int(sum(a.size for a in arrays)),
             "largest": largest}
    return [info, shapes, strings], stats


def export_js_model(run, path: str | os.PathLike, name: str | None = None,
                    scale_factor: float | None = None, class_name: str | None = None) -> ExportSummary:
    """Write a run's decoder (a `sketchrnn.checkpoint.Run`) as a `.gen.json` file (temp file, then renamed);
    of a class-conditional run, the decoder of class `class_name` (`fold_class`).

    `name` defaults to the run folder's name (and ": CLASS"), `scale_factor` to the run's (data units per
    model unit)."""
    state, hps = run.model.state_dict(), run.hps
    if class_name is not None:
        if not run.hps.class_conditional:
            raise ModelFormatError("--class: the model is not class-conditional (it draws no class in particular); "
                                   "export it without --class", path=run.path)
        check_exportable(run.hps, run.path, folded=True)
        hps, state = fold_class(state, run.hps, run.class_index(class_name))
    check_exportable(hps, run.path)
    if name is None:
        folder = os.path.dirname(os.path.abspath(run.path))
        name = (os.path.basename(folder) or "sketchrnn") + (f": {class_name}" if class_name is not None else "")
    sf = run.scale_factor if scale_factor is None else float(scale_factor)
    obj, stats = js_model(state, hps, sf, name, run.max_len, run.box)
    data = orjson.dumps(obj)
    with atomic_output(path) as f:
        f.write(data)
    return ExportSummary(str(path), obj[0], stats["n_weights"], stats["clipped"], stats["max_error"],
                         stats["largest"], len(data))


def _fail(path, what: str) -> ModelFormatError:
    return ModelFormatError(f"{what}. Give a sketch-rnn-js model file ([info, shapes, weights], e.g. an "
                            f"`export` output or a pretrained .gen.json)", path=str(path))


# The fields of `info` that are read, with what each must be: scale_factor is required; the others
# (max_seq_len, name: the format's; step, notes: written by other converters) are optional.
_INFO_NUMBERS = {"scale_factor": SCALE_FACTOR, "max_seq_len": ROWS, "step": Bound(0, MAX_STEP, whole=True)}


def checked_info(info: dict, path: str = "model") -> dict:
    """`info` with every field that is used checked (one error naming the field otherwise)."""
    out = dict(info)
    if "scale_factor" not in info:
        raise _fail(path, "info.scale_factor is missing")
    for key, bound in _INFO_NUMBERS.items():
        if key in info:
            value = info[key]
            try:   # text is not a number here (a JSON string "250" is not 250)
                out[key] = bound.parse(value if isinstance(value, (int, float)) else repr(value), f"info.{key}")
            except OptionError as e:
                raise _fail(path, e.message) from None
    if "name" in info and not (isinstance(info["name"], str) and len(info["name"]) <= 1000):
        raise _fail(path, f"info.name must be a string of at most 1000 characters, not {value_text(info['name'])}")
    notes = info.get("notes", [])
    if not (isinstance(notes, list) and len(notes) <= 100
            and all(isinstance(n, str) and len(n) <= 1000 for n in notes)):
        raise _fail(path, f"info.notes must be a list of at most 100 strings, not {value_text(notes)}")
    return out


def parse_js_model(obj, path: str = "model") -> tuple[HParams, dict, float, dict]:
    """A parsed `[info, shapes, weights]` -> (HParams, state_dict of float32 tensors, scale_factor, info)."""
    if not (isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], dict) and isinstance(obj[1], list)
            and isinstance(obj[2], list)):
        raise _fail(path, "not a JSON array [info, shapes, weights]")
    info, shapes, strings = obj
    if len(shapes) != 5 or len(strings) != 5:
        raise _fail(path, f"expected 5 weights (output kernel and bias, LSTM kernels and bias), found "
                          f"{len(strings)} with {len(shapes)} shapes")
    info = checked_info(info, path)
    sf = info["scale_factor"]
    for i, s in enumerate(shapes):
        if not (isinstance(s, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d < 1 << 20
                                            for d in s) and len(s) in (1, 2)):
            raise _fail(path, f"shape {i} is {s!r}, not a list of 1 or 2 positive integers")
    h = shapes[0][0]
    n_out = 3 + 6 * JS_MIXTURES
    want = [[h, n_out], [n_out], [5, 4 * h], [h, 4 * h], [4 * h]]
    if shapes != want:
        raise _fail(path, f"shapes {shapes} are not those of a {h}-unit LSTM decoder with {JS_MIXTURES} "
                          f"mixtures ({want})")
    arrays = []
    for i, (s, shape) in enumerate(zip(strings, shapes)):
        if not isinstance(s, str):
            raise _fail(path, f"weight {i} is not a base64 string")
        count = math.prod(shape)
        if len(s) > 4 * -(-2 * count // 3):  # a string longer than its shape needs is never decoded
            raise _fail(path, f"weight {i} holds about {len(s) * 3 // 8:,} int16 values, its shape {shape} needs "
                              f"{count:,}")
        try:
            raw = base64.b64decode(s, validate=True)
        except ValueError as e:
            raise _fail(path, f"weight {i} is not valid base64 ({e})") from None
        if len(raw) != 2 * count:
            raise _fail(path, f"weight {i} holds {len(raw) // 2} int16 values, its shape {shape} needs {count}")
        arrays.append(dequantize(np.frombuffer(raw, dtype="<i2")).reshape(shape))
    out_k, out_b, k_ih, k_hh, b = arrays
    hps = HParams(conditional=False, dec_model="lstm", dec_rnn_size=h, num_mixture=JS_MIXTURES,
                  max_seq_len=info.get("max_seq_len", HParams.max_seq_len), use_recurrent_dropout=False)
    state = {"decoder.rnn.cell.weight_ih": _blocks(np.ascontiguousarray(k_ih.T), TF_TO_TORCH, 0),
             "decoder.rnn.cell.weight_hh": _blocks(np.ascontiguousarray(k_hh.T), TF_TO_TORCH, 0),
             "decoder.rnn.cell.bias": _blocks(b, TF_TO_TORCH, 0),
             "decoder.output.weight": np.ascontiguousarray(out_k.T),
             "decoder.output.bias": out_b}
    return hps, {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}, \
        float(sf), dict(info)


def _read_model_bytes(path: str) -> bytearray:
    """The file's bytes, read a piece at a time. A model is a few dozen JSON values around five long strings;
    parsed, every value costs a Python object (480 MB of "0," would need gigabytes), so the values are counted
    (by their commas) as the file is read, and a file with too many is refused before it is held."""
    with open_regular(path, "a sketch-rnn-js model", MAX_FILE_BYTES) as f:
        size = os.fstat(f.fileno()).st_size
        data, values = bytearray(), 1
        while piece := f.read(min(1 << 24, size + 1 - len(data))):
            values += piece.count(b",")
            if values > MAX_JSON_VALUES:
                raise _fail(path, f"the JSON holds more than {values:,} values; a sketch-rnn-js model holds a "
                                  "few dozen around five base64 strings")
            data += piece
    if len(data) != size:
        raise changed_while_read(path, size, len(data))
    return data


def read_js_model(path: str | os.PathLike) -> tuple[HParams, dict, float, dict]:
    """A `.gen.json` file -> (HParams, state_dict, scale_factor, info).

    The HParams are those of an unconditional `lstm` decoder with the file's size and 20 mixtures
    (recurrent dropout off, max_seq_len from info); the state_dict loads into `SketchRNN(hps)`;
    scale_factor is info.scale_factor (data units per model unit)."""
    path = str(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise _fail(path, f"the file is {size / 2**20:.0f} MiB, more than any sketch-rnn-js model")
        obj = orjson.loads(_read_model_bytes(path))
    except orjson.JSONDecodeError as e:
        raise _fail(path, f"not JSON ({e})") from None
    return parse_js_model(obj, path)


WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
PAGE_FILES = ("index.html", "app.js", "sketchrnn-lite.js", "model.gen.json")
PAGE_MARKER = b'<meta name="generator" content="sketchprep export">'  # in every index.html write_page writes


def check_page_folder(folder: str | os.PathLike, models: list[str] = ()) -> None:
    """Refuse a folder holding a page file (index.html, app.js, ..., and `models`: a class-conditional
    page's model-N.gen.json) that is not part of a page this tool wrote: a later export replaces its own
    page, never a user's files (sketchprep.outputs.check_ours)."""
    from sketchprep.outputs import check_ours

    check_ours(folder, PAGE_FILES + ("magentasketch.js", *models), PAGE_MARKER, option="--html")


def dataset_size(data_files: list[str]) -> float:
    """The box the drawings of `data_files` fill, in data units (`sketchrnn.box.data_box`)."""
    from .box import data_box

    return data_box(list(data_files))


def write_page(folder: str | os.PathLike, run, name: str | None = None, scale_factor: float | None = None,
               runtime_js: str | os.PathLike | None = None, seed: int = 1) -> ExportSummary:
    """A self-contained drawing page in `folder`: index.html, app.js, the sampler (sketchrnn-lite.js, or
    `runtime_js`, a @magenta/sketch bundle `magentasketch.js`, copied in) and model.gen.json. A
    class-conditional run gets one model file per class (model-0.gen.json, model-1.gen.json, ...: each
    class folded into its own plain decoder) and a class menu; the summary is the first class's.

    The page is written whole or not at all (a temporary folder, then renames), and only over a page this
    tool wrote: a folder holding a user's own index.html, app.js, ... is refused (`check_page_folder`)."""
    import shutil

    from sketchprep.outputs import atomic_folder

    folder = str(folder)
    if runtime_js is not None and not os.path.isfile(runtime_js):
        raise ModelFormatError("no such file (give the path of @magenta/sketch's dist/magentasketch.js)",
                               path=str(runtime_js))
    classes = run.hps.class_conditional
    check_exportable(run.hps, run.path, folded=classes)
    menu = [{"name": klass, "model": f"model-{i}.gen.json"} for i, klass in enumerate(run.classes)] if classes else []
    check_page_folder(folder, [m["model"] for m in menu])
    os.makedirs(os.path.dirname(os.path.abspath(folder)), exist_ok=True)
    script = "sketchrnn-lite.js" if runtime_js is None else "magentasketch.js"
    config = {"model": menu[0]["model"] if menu else "model.gen.json", "size": float(run.box),
              "runtime": "magenta" if runtime_js is not None else "lite", "seed": int(seed)}
    if menu:
        config["classes"] = menu
    with open(os.path.join(WEB_DIR, "index.html"), encoding="utf-8") as f:
        html = f.read()
    with atomic_folder(folder) as tmp:
        if menu:
            title = name or os.path.basename(os.path.dirname(os.path.abspath(run.path))) or "sketchrnn"
            summaries = [export_js_model(run, os.path.join(tmp, m["model"]), f"{title}: {m['name']}", scale_factor,
                                         class_name=m["name"]) for m in menu]
        else:
            summaries = [export_js_model(run, os.path.join(tmp, "model.gen.json"), name, scale_factor)]
            title = summaries[0].info["name"]
        copies = [(os.path.join(WEB_DIR, a), a) for a in ("app.js", "sketchrnn-lite.js")]
        for src, asset in copies + ([(str(runtime_js), script)] if runtime_js is not None else []):
            shutil.copyfile(src, os.path.join(tmp, asset))
        title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        html = (html.replace("__TITLE__", title).replace("__RUNTIME_SCRIPT__", script)
                .replace("__CONFIG__", orjson.dumps(config).decode().replace("</", "<\\/")))
        with open(os.path.join(tmp, "index.html"), "w", encoding="utf-8") as f:
            f.write(html)
    return summaries[0]
