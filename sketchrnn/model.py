"""sketch-rnn (Ha & Eck 2017) in PyTorch, faithful to Magenta's TensorFlow reference.

Pure model: hyperparameters, cells, encoder, decoder, mixture head and loss. No I/O.
`REFERENCE.md` B.1-B.6 is the spec; the places where this code departs from the reference on
purpose (its known bugs) are marked `# fix (REFERENCE F.n)`.

Tensors are time-major inside the RNNs: `(T, B, F)`. A batch of stroke-5 sketches is `(B, T+1, 5)`
with the start token `S0` in row 0 (`sketchrnn.data`).

Cells (`lstm`, `layer_norm`, `hyper`) keep their gates in PyTorch's order `(i, f, g, o)` (the
reference's `(i, j, f, o)` with `j = g` moved), so the plain LSTM's weights feed PyTorch's fused
kernel unchanged. Like the reference, each cell has a single gate bias (initialised to 0) and adds
the forget bias 1.0 as a constant; the fused kernel's second bias is a zero buffer, not a parameter.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchprep import limits
from sketchprep.errors import OptionError
from sketchprep.limits import Bound, value_text
from sketchrnn.rnn import fused_lstm_precision, lstm_sequence

CELL_TYPES = ("lstm", "layer_norm", "hyper")
FORGET_BIAS = 1.0     # added to the forget gate in-graph (reference LSTMCell forget_bias)
LN_EPS = 1e-3         # reference layer_norm epsilon (inside the rsqrt)
LOSS_EPS = 1e-6       # reference: -log(sum_k pi_k N_k + 1e-6)
LOG_SIGMA_LIMIT = 15.0  # |log sigma| bound: exp(+-15) is far outside any useful scale of normalised offsets
RHO_LIMIT = 1.0 - 1e-6  # |rho| bound keeps 1 - rho^2 > 0 in float32 once tanh saturates


# ---------------------------------------------------------------------------------------------------
# hyperparameters


PRECISIONS = ("fp32", "bf16")
# how training batches weigh the classes: the reference's plain shuffle (each class as often as it has
# drawings), each class equally often, or in proportion to the square root of its size
CLASS_BALANCES = ("none", "equal", "sqrt")


@dataclass
class HParams:
    """Every hyperparameter of the reference (names and defaults of REFERENCE B.1), plus a few extensions.

    Probabilities named `*_prob` are KEEP probabilities, as in the reference.
    """

    # --- the reference's fields ---
    data_set: List[str] = field(default_factory=lambda: ["aaron_sheep.npz"])  # dataset file names (set from the command line)
    num_steps: int = 10_000_000        # total training steps ("keep large")
    save_every: int = 500              # evaluate on valid and checkpoint every this many steps
    max_seq_len: int = 250             # longest sketch kept (rows); longer ones are dropped (fix F.5)
    dec_rnn_size: int = 512            # decoder units
    dec_model: str = "lstm"            # decoder cell: lstm | layer_norm | hyper
    enc_rnn_size: int = 256            # encoder units per direction
    enc_model: str = "lstm"            # encoder cell: lstm | layer_norm | hyper
    z_size: int = 128                  # latent size
    kl_weight: float = 0.5             # final KL weight
    kl_weight_start: float = 0.01      # KL weight at step 0
    kl_tolerance: float = 0.2          # KL floor: no KL gradient below it
    kl_decay_rate: float = 0.99995     # KL annealing rate per step
    batch_size: int = 100              # sketches per step (per process under DDP)
    grad_clip: float = 1.0             # clip every gradient element to [-grad_clip, grad_clip]
    num_mixture: int = 20              # Gaussian mixture components M
    learning_rate: float = 0.001       # initial learning rate
    decay_rate: float = 0.9999         # learning-rate decay per step
    min_learning_rate: float = 0.00001  # learning-rate floor
    use_recurrent_dropout: bool = True  # dropout on the cell candidate (without memory loss)
    recurrent_dropout_prob: float = 0.90  # keep probability of recurrent dropout
    use_input_dropout: bool = False    # dropout on the decoder input
    input_dropout_prob: float = 0.90   # keep probability of input dropout
    use_output_dropout: bool = False   # dropout on the decoder output
    output_dropout_prob: float = 0.90  # keep probability of output dropout
    random_scale_factor: float = 0.15  # train augmentation: scale x and y by factors in [1-f, 1+f)
    augment_stroke_prob: float = 0.10  # train augmentation: drop a point inside a line with this probability
    conditional: bool = True           # False: decoder-only (unconditional) model
    is_training: bool = True           # False masks the pen loss past the end (reference inference-mode eval)
    # --- extensions (not in the reference) ---
    hyper_num_units: int = 256         # HyperLSTM: units of the hyper cell (reference constructor default)
    hyper_embedding_size: int = 32     # HyperLSTM: size of the hyper signals (reference constructor default)
    warmup_steps: int = 0              # learning rate raised linearly over this many steps (train --init: 50)
    pad_to_batch: bool = False         # pad each batch to its own longest sketch instead of the dataset's
    precision: str = "fp32"            # "bf16": the RNNs and linear layers in bfloat16 (autocast), loss in fp32
    seed: int = 0                      # seeds initialisation, data order, augmentation and dropout
    class_conditional: bool = False    # the decoder reads a learned embedding of the drawing's class at every step
    class_embedding_size: int = 32     # size of that embedding
    num_classes: int = 0               # rows of the embedding table: set by `train` from the data's classes
    class_balance: str = "none"        # training batches: none (plain shuffle), equal or sqrt (class shares)

    def __post_init__(self):
        if isinstance(self.data_set, str):
            self.data_set = [self.data_set]
        for f in fields(self):
            value = getattr(self, f.name)
            want = _FIELD_TYPES[f.name]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if want is list \
                else isinstance(value, want) and (want is bool or not isinstance(value, bool))
            if not ok:
                raise OptionError(f"hparam {f.name} must be {_TYPE_NAMES[want]}, got {value!r}")
        if self.class_balance not in CLASS_BALANCES:
            raise OptionError(f"hparam class_balance must be one of {', '.join(CLASS_BALANCES)}, "
                              f"got {self.class_balance!r}")
        if self.precision not in PRECISIONS:
            raise OptionError(f"hparam precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("enc_model", "dec_model"):
            if getattr(self, name) not in CELL_TYPES:
                raise OptionError(f"hparam {name} must be one of {', '.join(CELL_TYPES)}, got {getattr(self, name)!r}")
        for name, bound in HPARAM_BOUNDS.items():   # the same words for --set, a preset, a checkpoint, an import
            bound.parse(getattr(self, name), f"hparam {name}")
        if self.data_set and (len(self.data_set) > 10_000 or max(len(n) for n in self.data_set) > 4096):
            raise OptionError("hparam data_set must be at most 10000 file names of at most 4096 characters each")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "hparams") -> "HParams":
        """HParams from a dict (a preset file, a checkpoint); unknown keys are an error naming `source`."""
        unknown = sorted(set(values) - set(_FIELD_TYPES))
        if unknown:
            raise OptionError(f"{source}: unknown hparam {unknown[0]!r} (known: {', '.join(_FIELD_TYPES)})")
        return cls(**values)

    def replace(self, **changes) -> "HParams":
        return HParams.from_dict({**self.to_dict(), **changes})

    def with_overrides(self, assignments: list[str]) -> "HParams":
        """Apply `key=value` strings, each value parsed by the field's type (never evaluated)."""
        changes = {}
        for text in assignments:
            key, sep, raw = text.partition("=")
            key = key.strip()
            if not sep or not key:
                raise OptionError(f"--set {text!r}: expected key=value")
            if key not in _FIELD_TYPES:
                raise OptionError(f"--set {text!r}: unknown hparam {key!r} (known: {', '.join(_FIELD_TYPES)})")
            changes[key] = parse_value(key, raw.strip())
        return self.replace(**changes)


# Both ends of every numeric hparam (see docs/limits.md): sizes far above any sketch-rnn (256-2048 units),
# so that no --set, preset or file can make the model builder allocate without bound. The parameter count
# of the whole model is bounded as well (`check_model_size`).
HPARAM_BOUNDS = {
    "num_steps": limits.STEPS, "save_every": limits.STEPS, "max_seq_len": limits.ROWS,
    "dec_rnn_size": Bound(1, 16384, whole=True), "enc_rnn_size": Bound(1, 16384, whole=True),
    "z_size": Bound(1, 16384, whole=True), "hyper_num_units": Bound(1, 16384, whole=True),
    "hyper_embedding_size": Bound(1, 4096, whole=True), "num_mixture": Bound(1, 1024, whole=True),
    "batch_size": limits.BATCH, "seed": limits.SEED, "warmup_steps": Bound(0, 10**9, whole=True),
    "kl_weight": Bound(0, 1000), "kl_weight_start": Bound(0, 1000), "kl_tolerance": Bound(0, 1000),
    "kl_decay_rate": Bound(0, 1, low_open=True), "decay_rate": Bound(0, 1, low_open=True),
    "learning_rate": Bound(0, 10, low_open=True), "min_learning_rate": Bound(0, 10),
    "grad_clip": Bound(0, 10**6, low_open=True),
    "recurrent_dropout_prob": Bound(0, 1, low_open=True), "input_dropout_prob": Bound(0, 1, low_open=True),
    "output_dropout_prob": Bound(0, 1, low_open=True),
    "random_scale_factor": Bound(0, 1, high_open=True), "augment_stroke_prob": Bound(0, 1, high_open=True),
    "class_embedding_size": Bound(1, 16384, whole=True), "num_classes": Bound(0, 100_000, whole=True),
}
MAX_PARAMETERS = 2**28   # 268 M parameters (1 GiB of float32 weights; Adam keeps two more copies): see check_model_size

_FIELD_TYPES = {"data_set": list, "dec_model": str, "enc_model": str, "precision": str, "class_balance": str}
for _f in fields(HParams):
    _FIELD_TYPES.setdefault(_f.name, {"int": int, "float": float, "bool": bool}[_f.type] if _f.type in
                            ("int", "float", "bool") else _f.type)
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list of names"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, raw: str):
    """One `--set` value, typed by the HParams field `key` (bools: true/false/1/0/yes/no/on/off;
    lists: comma-separated, optional [brackets])."""
    want = _FIELD_TYPES[key]
    try:
        if want is bool:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if want is int:
            value = float(raw) if ("e" in raw.lower() or "." in raw) else int(raw)
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                value = int(value)
            return value
        if want is float:
            return float(raw)
        if want is list:
            return [v.strip().strip("'\"") for v in raw.strip("[]").split(",") if v.strip()]
        return raw.strip("'\"")
    except ValueError:
        raise OptionError(f"--set {key}={value_text(raw)}: {key} must be {_TYPE_NAMES[want]}") from None


def lr_at(hps: HParams, step: int, warmup_start: int = 0) -> float:
    """Learning rate of step `step` (counted from 0, read before the update; REFERENCE B.5), times
    (step - warmup_start + 1) / warmup_steps for the warmup_steps steps from `warmup_start` (an
    extension: the first steps of a fresh Adam on trained weights move every weight by the full rate)."""
    lr = (hps.learning_rate - hps.min_learning_rate) * hps.decay_rate ** step + hps.min_learning_rate
    done = step - warmup_start + 1
    if hps.warmup_steps > 0 and done < hps.warmup_steps:
        lr *= max(done, 1) / hps.warmup_steps
    return lr


def kl_weight_at(hps: HParams, step: int) -> float:
    """KL weight of step `step` (REFERENCE B.5): kl_weight - (kl_weight - kl_weight_start) * kl_decay_rate**step."""
    return hps.kl_weight - (hps.kl_weight - hps.kl_weight_start) * hps.kl_decay_rate ** step


# ---------------------------------------------------------------------------------------------------
# initialisers (the reference's: TF's Glorot-uniform default, orthogonal per gate block, Gaussian)


def glorot_uniform_(w: Tensor, fan_in: int, fan_out: int) -> Tensor:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return w.uniform_(-limit, limit)


def gaussian_(w: Tensor, std: float) -> Tensor:
    """N(0, std^2) in place; nothing on the `meta` device (a model built only to be counted and shaped, see
    check_model_size), where torch's normal_ imports torch._dynamo: 2 s of CPU."""
    return w if w.is_meta else w.normal_(0.0, std)


def orthogonal_blocks_(w: Tensor, n_blocks: int) -> Tensor:
    """Each of the `n_blocks` row blocks of `w` ((n_blocks*H, H)) gets its own orthogonal init."""
    with torch.no_grad():
        for block in w.chunk(n_blocks, 0):
            nn.init.orthogonal_(block)
    return w


def _uniform_tf_bias_(b: Tensor) -> Tensor:
    # TF's default initializer for a 1-D variable is Glorot-uniform with fan_in = fan_out = n.
    return glorot_uniform_(b, b.numel(), b.numel())


# ---------------------------------------------------------------------------------------------------
# cell step functions (plain tensors in, plain tensors out; TorchScript-compatible)


def _layer_norm_blocks(x: Tensor, n_blocks: int, gamma: Tensor, beta: Tensor) -> Tensor:
    """Reference `layer_norm_all`: normalise each of the n_blocks gate blocks of (B, n*H) separately."""
    b = x.shape[0]
    xr = x.reshape(b, n_blocks, -1)
    mean = xr.mean(-1, keepdim=True)
    var = (xr - mean).pow(2).mean(-1, keepdim=True)
    xr = (xr - mean) * torch.rsqrt(var + 1e-3)  # LN_EPS (a literal for TorchScript)
    return xr.reshape(b, -1) * gamma + beta


def _layer_norm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) * torch.rsqrt(var + 1e-3) * gamma + beta  # LN_EPS


def _lstm_update(gates: Tensor, c: Tensor, mask: Optional[Tensor], ln_c: Optional[Tuple[Tensor, Tensor]]):
    """Gates (B, 4H) in order (i, f, g, o) -> new (h, c). Recurrent dropout scales the candidate only."""
    i, f, g, o = gates.chunk(4, 1)
    g = torch.tanh(g)
    if mask is not None:
        g = g * mask
    c_new = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * g  # + FORGET_BIAS (a literal for TorchScript)
    c_out = c_new if ln_c is None else _layer_norm(c_new, ln_c[0], ln_c[1])
    h_new = torch.tanh(c_out) * torch.sigmoid(o)
    return h_new, c_new


# ---------------------------------------------------------------------------------------------------
# cells


class LSTMCell(nn.Module):
    """Reference `LSTMCell`: one gate bias (init 0) plus a constant forget bias 1.0, W_xh Glorot-uniform,
    W_hh orthogonal per gate block. State (reference layout) = [c, h]."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))   # (4H, I)
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))  # (4H, H)
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        forget = torch.zeros(4 * hidden_size)
        forget[hidden_size:2 * hidden_size] = FORGET_BIAS
        self.register_buffer("forget_offset", forget, persistent=False)
        self.register_buffer("zero_bias", torch.zeros(4 * hidden_size), persistent=False)
        glorot_uniform_(self.weight_ih, input_size, 4 * hidden_size)
        orthogonal_blocks_(self.weight_hh, 4)

    @property
    def state_size(self) -> int:
        return 2 * self.hidden_size

    def split_state(self, flat: Tensor) -> tuple[Tensor, ...]:
        c, h = flat.chunk(2, -1)
        return (h, c)

    def zero_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        z = like.new_zeros(batch, self.hidden_size)
        return (z, z)

    def input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih, self.bias)

    def step_params(self) -> tuple:
        """The parameters `_lstm_step` takes after the state."""
        return (self.weight_hh.t(),)

    def fused(self, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """PyTorch's fused LSTM kernel on (T, B, I) (no recurrent dropout). Same function as `loop`."""
        h0, c0 = state
        params = [self.weight_ih, self.weight_hh, self.bias + self.forget_offset, self.zero_bias]
        with fused_lstm_precision(x.device.type):  # (.float(): a no-op in float32; autocast casts as it needs)
            out, h, c = torch.lstm(x.float(), (h0[None].float(), c0[None].float()), params, True, 1, 0.0,
                                   self.training, False, False)
        return out, (h[0], c[0])


class LayerNormLSTMCell(nn.Module):
    """Reference `LayerNormLSTMCell`: no gate bias; layer norm per gate block (gamma 1, beta 0, eps 1e-3)
    on [x, h] W, forget bias 1.0, layer norm of c before the output tanh. State = [h, c]."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.ln_gamma = nn.Parameter(torch.ones(4 * hidden_size))
        self.ln_beta = nn.Parameter(torch.zeros(4 * hidden_size))
        self.ln_c_gamma = nn.Parameter(torch.ones(hidden_size))
        self.ln_c_beta = nn.Parameter(torch.zeros(hidden_size))
        glorot_uniform_(self.weight_ih, input_size, 4 * hidden_size)
        orthogonal_blocks_(self.weight_hh, 4)

    @property
    def state_size(self) -> int:
        return 2 * self.hidden_size

    def split_state(self, flat: Tensor) -> tuple[Tensor, ...]:
        h, c = flat.chunk(2, -1)
        return (h, c)

    def zero_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        z = like.new_zeros(batch, self.hidden_size)
        return (z, z)

    def input_projection(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)

    def step_params(self) -> tuple:
        return (self.weight_hh.t(), self.ln_gamma, self.ln_beta, self.ln_c_gamma, self.ln_c_beta)


class HyperLSTMCell(nn.Module):
    """Reference `HyperLSTMCell` (use_layer_norm=True, hyper cell a LayerNormLSTM without recurrent dropout).

    A small LN-LSTM (the hyper cell) reads [x, h] and emits signals that rescale each gate block of
    x W_xh and h W_hh (and shift the latter). State = [h | h_hyper, c | c_hyper].
    """

    def __init__(self, input_size: int, hidden_size: int, hyper_size: int = 256, embedding_size: int = 32):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.hyper_size, self.embedding_size = hyper_size, embedding_size
        n, e = hidden_size, embedding_size
        self.weight_ih = nn.Parameter(torch.empty(4 * n, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * n, n))
        self.bias = nn.Parameter(torch.zeros(4 * n))
        self.hyper = LayerNormLSTMCell(input_size + n, hyper_size)
        # hyper_norm for the 4 x-blocks (no shift) and the 4 h-blocks (with shift); reference inits:
        # zw: weight 0, bias 1.0; alpha: constant 0.1 / E; zb: Gaussian 0.01, no bias; beta: 0.
        self.zw_x = nn.Linear(hyper_size, 4 * e)
        self.zw_h = nn.Linear(hyper_size, 4 * e)
        self.zb_h = nn.Linear(hyper_size, 4 * e, bias=False)
        self.alpha_x = nn.Parameter(torch.full((4, e, n), 0.10 / e))
        self.alpha_h = nn.Parameter(torch.full((4, e, n), 0.10 / e))
        self.beta_h = nn.Parameter(torch.zeros(4, e, n))
        self.ln_gamma = nn.Parameter(torch.ones(4 * n))
        self.ln_beta = nn.Parameter(torch.zeros(4 * n))
        self.ln_c_gamma = nn.Parameter(torch.ones(n))
        self.ln_c_beta = nn.Parameter(torch.zeros(n))
        glorot_uniform_(self.weight_ih, input_size, 4 * n)
        orthogonal_blocks_(self.weight_hh, 4)
        with torch.no_grad():
            for lin in (self.zw_x, self.zw_h):
                lin.weight.zero_()
                lin.bias.fill_(1.0)
            gaussian_(self.zb_h.weight, 0.01)

    @property
    def state_size(self) -> int:
        return 2 * (self.hidden_size + self.hyper_size)

    def split_state(self, flat: Tensor) -> tuple[Tensor, ...]:
        total_h, total_c = flat.chunk(2, -1)
        n = self.hidden_size
        return (total_h[:, :n], total_c[:, :n], total_h[:, n:], total_c[:, n:])

    def zero_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        z, zh = like.new_zeros(batch, self.hidden_size), like.new_zeros(batch, self.hyper_size)
        return (z, z, zh, zh)

    def input_projection(self, x: Tensor) -> Tensor:
        # (T, B, 4H + 4Hh): the main cell's x W_xh and the hyper cell's x part of [x, h] W
        return torch.cat([F.linear(x, self.weight_ih), F.linear(x, self.hyper.weight_ih[:, :self.input_size])], -1)

    def step_params(self) -> tuple:
        hy = self.hyper
        return (self.weight_hh.t(), self.bias,
                hy.weight_ih[:, self.input_size:].t(), hy.weight_hh.t(), hy.ln_gamma, hy.ln_beta,
                hy.ln_c_gamma, hy.ln_c_beta, self.zw_x.weight.t(), self.zw_x.bias, self.zw_h.weight.t(),
                self.zw_h.bias, self.zb_h.weight.t(), self.alpha_x, self.alpha_h, self.beta_h,
                self.ln_gamma, self.ln_beta, self.ln_c_gamma, self.ln_c_beta)


def make_cell(kind: str, input_size: int, hidden_size: int, hps: HParams) -> nn.Module:
    if kind == "lstm":
        return LSTMCell(input_size, hidden_size)
    if kind == "layer_norm":
        return LayerNormLSTMCell(input_size, hidden_size)
    return HyperLSTMCell(input_size, hidden_size, hps.hyper_num_units, hps.hyper_embedding_size)


# ---------------------------------------------------------------------------------------------------
# one time step of each cell: (x_t, *state, *params, mask) -> new state. `x_t` is the step's slice of
# the precomputed input projection; the first state element is the output h.


def _lstm_step(x: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    return _lstm_update(torch.addmm(x, h, w_hh_t), c, mask, None)


def _ln_lstm_step(x: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, gamma: Tensor, beta: Tensor, gamma_c: Tensor,
                  beta_c: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    gates = _layer_norm_blocks(torch.addmm(x, h, w_hh_t), 4, gamma, beta)
    return _lstm_update(gates, c, mask, (gamma_c, beta_c))


def _hyper_step(x: Tensor, h: Tensor, c: Tensor, hh: Tensor, hc: Tensor, w_hh_t: Tensor, bias: Tensor,
                hy_w_h_t: Tensor, hy_w_hh_t: Tensor, hy_gamma: Tensor, hy_beta: Tensor, hy_gamma_c: Tensor,
                hy_beta_c: Tensor, zw_x_t: Tensor, zw_x_b: Tensor, zw_h_t: Tensor, zw_h_b: Tensor, zb_h_t: Tensor,
                alpha_x: Tensor, alpha_h: Tensor, beta_h: Tensor, gamma: Tensor, beta: Tensor, gamma_c: Tensor,
                beta_c: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    b = h.shape[0]
    n_main = w_hh_t.shape[0]
    n_gates = 4 * n_main
    e = alpha_x.shape[1]
    x_main = x[:, :n_gates]
    x_hyper = x[:, n_gates:]
    # the hyper cell: an LN-LSTM over [x, h] (its x part precomputed), without recurrent dropout
    hy_gates = _layer_norm_blocks(torch.addmm(torch.addmm(x_hyper, h, hy_w_h_t), hh, hy_w_hh_t), 4,
                                  hy_gamma, hy_beta)
    hh, hc = _lstm_update(hy_gates, hc, None, (hy_gamma_c, hy_beta_c))
    zw_x = torch.addmm(zw_x_b, hh, zw_x_t).view(b, 4, e)
    zw_h = torch.addmm(zw_h_b, hh, zw_h_t).view(b, 4, e)
    zb_h = torch.mm(hh, zb_h_t).view(b, 4, e)
    scale_x = torch.einsum("bke,ken->bkn", zw_x, alpha_x)
    scale_h = torch.einsum("bke,ken->bkn", zw_h, alpha_h)
    shift_h = torch.einsum("bke,ken->bkn", zb_h, beta_h)
    hw = torch.mm(h, w_hh_t).view(b, 4, n_main)
    gates = (scale_x * x_main.reshape(b, 4, n_main) + scale_h * hw + shift_h).reshape(b, n_gates) + bias
    gates = _layer_norm_blocks(gates, 4, gamma, beta)
    h, c = _lstm_update(gates, c, mask, (gamma_c, beta_c))
    return h, c, hh, hc


# ---------------------------------------------------------------------------------------------------
# time loops. `xp` (T, B, *) is the precomputed input projection. With `batch_sizes` (non-increasing,
# one per step) only the first batch_sizes[t] rows are stepped at time t: rows are sorted by length,
# longest first, so a finished sequence keeps its final state (the encoder honours lengths this way).
# Return (outputs (T, B, H) or an empty tensor, final states in row order). The three loops differ
# only in the step they call (TorchScript cannot take the step as an argument).


def _lstm_loop(xp: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, masks: Optional[Tensor],
               batch_sizes: Optional[List[int]], want_outputs: bool) -> Tuple[Tensor, List[Tensor]]:
    outputs: List[Tensor] = []
    done: List[List[Tensor]] = []
    xs = xp.unbind(0)  # one backward node for all steps (indexing xp[t] would add a full-size gradient per step)
    for t in range(len(xs)):
        if batch_sizes is not None and batch_sizes[t] < h.shape[0]:
            n = batch_sizes[t]
            done.append([h[n:], c[n:]])
            h, c = h[:n], c[:n]
        b = h.shape[0]
        h, c = _lstm_step(xs[t][:b], h, c, w_hh_t, masks[t, :b] if masks is not None else None)
        if want_outputs:
            outputs.append(h)
    done.append([h, c])
    done.reverse()
    out = torch.stack(outputs) if want_outputs else xp.new_empty(0)
    return out, [torch.cat([d[k] for d in done]) for k in range(2)]


def _ln_lstm_loop(xp: Tensor, h: Tensor, c: Tensor, w_hh_t: Tensor, gamma: Tensor, beta: Tensor,
                  gamma_c: Tensor, beta_c: Tensor, masks: Optional[Tensor], batch_sizes: Optional[List[int]],
                  want_outputs: bool) -> Tuple[Tensor, List[Tensor]]:
    outputs: List[Tensor] = []
    done: List[List[Tensor]] = []
    xs = xp.unbind(0)
    for t in range(len(xs)):
        if batch_sizes is not None and batch_sizes[t] < h.shape[0]:
            n = batch_sizes[t]
            done.append([h[n:], c[n:]])
            h, c = h[:n], c[:n]
        b = h.shape[0]
        h, c = _ln_lstm_step(xs[t][:b], h, c, w_hh_t, gamma, beta, gamma_c, beta_c,
                             masks[t, :b] if masks is not None else None)
        if want_outputs:
            outputs.append(h)
    done.append([h, c])
    done.reverse()
    out = torch.stack(outputs) if want_outputs else xp.new_empty(0)
    return out, [torch.cat([d[k] for d in done]) for k in range(2)]


def _hyper_loop(xp: Tensor, h: Tensor, c: Tensor, hh: Tensor, hc: Tensor, w_hh_t: Tensor, bias: Tensor,
                hy_w_h_t: Tensor, hy_w_hh_t: Tensor, hy_gamma: Tensor, hy_beta: Tensor, hy_gamma_c: Tensor,
                hy_beta_c: Tensor, zw_x_t: Tensor, zw_x_b: Tensor, zw_h_t: Tensor, zw_h_b: Tensor, zb_h_t: Tensor,
                alpha_x: Tensor, alpha_h: Tensor, beta_h: Tensor, gamma: Tensor, beta: Tensor, gamma_c: Tensor,
                beta_c: Tensor, masks: Optional[Tensor], batch_sizes: Optional[List[int]],
                want_outputs: bool) -> Tuple[Tensor, List[Tensor]]:
    outputs: List[Tensor] = []
    done: List[List[Tensor]] = []
    xs = xp.unbind(0)
    for t in range(len(xs)):
        if batch_sizes is not None and batch_sizes[t] < h.shape[0]:
            n = batch_sizes[t]
            done.append([h[n:], c[n:], hh[n:], hc[n:]])
            h, c, hh, hc = h[:n], c[:n], hh[:n], hc[:n]
        b = h.shape[0]
        h, c, hh, hc = _hyper_step(xs[t][:b], h, c, hh, hc, w_hh_t, bias, hy_w_h_t, hy_w_hh_t, hy_gamma, hy_beta,
                                   hy_gamma_c, hy_beta_c, zw_x_t, zw_x_b, zw_h_t, zw_h_b, zb_h_t, alpha_x, alpha_h,
                                   beta_h, gamma, beta, gamma_c, beta_c, masks[t, :b] if masks is not None else None)
        if want_outputs:
            outputs.append(h)
    done.append([h, c, hh, hc])
    done.reverse()
    out = torch.stack(outputs) if want_outputs else xp.new_empty(0)
    return out, [torch.cat([d[k] for d in done]) for k in range(4)]


LOOPS = {"lstm": _lstm_loop, "layer_norm": _ln_lstm_loop, "hyper": _hyper_loop}
STEPS = {"lstm": _lstm_step, "layer_norm": _ln_lstm_step, "hyper": _hyper_step}
_COMPILED: dict = {}


def compiled_step(kind: str):
    """The cell's step compiled by torch.compile (inductor fuses its elementwise work, forward and
    backward). Static shapes: one compilation per batch size, cached by inductor on disk."""
    if kind not in _COMPILED:
        _COMPILED[kind] = torch.compile(STEPS[kind], dynamic=False, fullgraph=True)
    return _COMPILED[kind]


def _compiled_loop(kind: str, xp: Tensor, state: tuple, params: tuple, masks: Optional[Tensor],
                   lengths: Optional[Tensor], want_outputs: bool) -> Tuple[Tensor, List[Tensor]]:
    """The time loop around the compiled step. Every step runs the whole batch (a shrinking batch
    would recompile per size); with `lengths` (B,), a row's state is frozen once its sketch ended."""
    step = compiled_step(kind)
    state = list(state)
    outputs: List[Tensor] = []
    active = None
    if lengths is not None:
        active = (torch.arange(xp.shape[0], device=xp.device)[:, None] < lengths.to(xp.device)[None, :])[..., None]
    for t, x in enumerate(xp.unbind(0)):
        new = step(x, *state, *params, masks[t] if masks is not None else None)
        state = list(new) if active is None else [torch.where(active[t], n, s) for n, s in zip(new, state)]
        if want_outputs:
            outputs.append(state[0])
    out = torch.stack(outputs) if want_outputs else xp.new_empty(0)
    return out, state


# ---------------------------------------------------------------------------------------------------
# running a cell over a sequence


RNN_IMPLS = ("auto", "fast", "fused", "loop", "compile")
FAST_KINDS = ("lstm", "layer_norm")  # cells `sketchrnn.rnn` runs as one whole-sequence autograd Function


class Recurrent(nn.Module):
    """One cell run over time, with the reference's recurrent dropout (keep `keep_prob`, a fresh mask
    per step, on the candidate only, only in training) and a choice of implementation (same results
    up to float rounding):
    `fused`: PyTorch's LSTM kernel (the `lstm` cell while no recurrent dropout is active; other cases
    fall back to `fast`, then `loop`); `fast`: `sketchrnn.rnn`, the whole sequence in one autograd
    Function with a hand-written backward (`lstm` and `layer_norm`; `hyper` falls back to `loop`);
    `loop`: a Python loop over the cell's step under autograd (the reference implementation the others
    are tested against); `compile`: the step compiled by torch.compile; `auto`: fused where it applies,
    else fast, else loop.
    """

    def __init__(self, kind: str, input_size: int, hidden_size: int, hps: HParams, use_recurrent_dropout: bool,
                 keep_prob: float):
        super().__init__()
        self.kind = kind
        self.cell = make_cell(kind, input_size, hidden_size, hps)
        self.use_recurrent_dropout = use_recurrent_dropout
        self.keep_prob = keep_prob
        self.impl = "auto"

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    @property
    def dropout_active(self) -> bool:
        return self.training and self.use_recurrent_dropout and self.keep_prob < 1.0

    def resolved_impl(self) -> str:
        """The implementation a call runs now (`auto` and an inapplicable `fused` resolved)."""
        fused_ok = self.kind == "lstm" and not self.dropout_active
        fast_ok = self.kind in FAST_KINDS
        if self.impl in ("auto", "fused") and fused_ok:
            return "fused"
        if self.impl in ("auto", "fused", "fast"):
            return "fast" if fast_ok else "loop"
        return self.impl

    def _masks(self, t: int, b: int, like: Tensor, generator: Optional[torch.Generator]) -> Optional[Tensor]:
        if not self.dropout_active:
            return None
        keep = torch.empty(t, b, self.hidden_size, device=like.device, dtype=like.dtype)
        keep.bernoulli_(self.keep_prob, generator=generator)
        return keep.div_(self.keep_prob)

    def forward(self, x: Tensor, state: tuple[Tensor, ...], generator: Optional[torch.Generator] = None,
                xp: Optional[Tensor] = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """x: (T, B, I) -> (outputs (T, B, H), final state). `xp` may hold a precomputed input
        projection (the decoder adds z's share once per sketch instead of once per step)."""
        masks = self._masks(x.shape[0], x.shape[1], x, generator)
        impl = self.resolved_impl()
        if impl == "fused":
            return self.cell.fused(x, state)
        if xp is None:
            xp = self.cell.input_projection(x)
        if impl == "fast":
            out, final = lstm_sequence(self.kind, xp, state, self.cell.step_params(), masks)
        elif impl == "compile":
            out, final = _compiled_loop(self.kind, xp, state, self.cell.step_params(), masks, None, True)
        else:
            out, final = LOOPS[self.kind](xp, *state, *self.cell.step_params(), masks, None, True)
        return out, tuple(final)

    def last_output(self, x: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """x: (T, B, I), lengths: (B,) int64 on the CPU -> (B, H): each sequence's output at its last
        step, from a zero state; nothing past a sequence's length is read."""
        t_max, b = x.shape[0], x.shape[1]
        masks = self._masks(t_max, b, x, generator)
        impl = self.resolved_impl()
        state = self.cell.zero_state(b, x)
        if impl == "fused":
            out, _ = self.cell.fused(x, state)
            return out[(lengths - 1).to(x.device), torch.arange(b, device=x.device)]
        # sort longest first and step only the sequences still running (no work on padding)
        order = torch.argsort(-lengths, stable=True)
        batch_sizes = (lengths[order][None, :] > torch.arange(t_max)[:, None]).sum(1).tolist()
        order_d = order.to(x.device)
        if impl == "fast":   # sorts the (T, B, I) input, not its (T, B, 4H) projection (and its gradient)
            _, final = lstm_sequence(self.kind, self.cell.input_projection(x[:, order_d]), state,
                                     self.cell.step_params(), masks[:, order_d] if masks is not None else None,
                                     batch_sizes)
            return final[0][torch.argsort(order_d)]
        xp = self.cell.input_projection(x)
        if impl == "compile":
            _, final = _compiled_loop(self.kind, xp, state, self.cell.step_params(), masks, lengths, False)
            return final[0]
        _, final = LOOPS[self.kind](xp[:, order_d], *state, *self.cell.step_params(),
                        masks[:, order_d] if masks is not None else None, batch_sizes, False)
        return final[0][torch.argsort(order_d)]


def cell_kind(cell: nn.Module) -> str:
    return {LSTMCell: "lstm", LayerNormLSTMCell: "layer_norm", HyperLSTMCell: "hyper"}[type(cell)]


# ---------------------------------------------------------------------------------------------------
# encoder, decoder, mixture head


def _gaussian_linear(n_in: int, n_out: int, std: float = 0.001) -> nn.Linear:
    """Reference `super_linear(init_w='gaussian', weight_start=0.001)`: weights N(0, std^2), bias 0."""
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        gaussian_(lin.weight, std)
        lin.bias.zero_()
    return lin


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """(T, B, F) -> each sequence b reversed over its first lengths[b] steps (padding stays in place)."""
    t = torch.arange(x.shape[0], device=x.device)[:, None]           # (T, 1)
    n = lengths.to(x.device)[None, :]                                 # (1, B)
    idx = torch.where(t < n, n - 1 - t, t)                            # (T, B)
    return x.gather(0, idx[:, :, None].expand(-1, -1, x.shape[2]))


class Encoder(nn.Module):
    """Bidirectional RNN over the sketch (target rows, no S0) that honours each sketch's length:
    the forward direction's state at step len-1 and the backward direction run over each sketch
    reversed within its own length. Returns (mu, presig), each (B, z_size)."""

    def __init__(self, hps: HParams):
        super().__init__()
        args = (hps.enc_model, 5, hps.enc_rnn_size, hps, hps.use_recurrent_dropout, hps.recurrent_dropout_prob)
        self.fw = Recurrent(*args)
        self.bw = Recurrent(*args)
        self.mu = _gaussian_linear(2 * hps.enc_rnn_size, hps.z_size)
        self.presig = _gaussian_linear(2 * hps.enc_rnn_size, hps.z_size)

    def forward(self, x: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """x: (T, B, 5) time-major target rows; lengths: (B,) int64."""
        lengths = lengths.cpu()
        x = x[:int(lengths.max())]                                       # nothing past the longest matters
        h = torch.cat([self.fw.last_output(x, lengths, generator),
                       self.bw.last_output(reverse_within_lengths(x, lengths), lengths, generator)], 1)
        return self.mu(h), self.presig(h)


class Decoder(nn.Module):
    """Autoregressive RNN: input S_{i-1} (5), plus z (conditional) and the class embedding
    (class_conditional) at every step, initial state tanh(W z + b) (conditional) or zeros, output
    projection to 3 + 6M mixture parameters.

    The class embedding is read like z (the same place in the input, after it): the same for every step of
    a sketch, so its share of the input projection is a per-sketch constant. For a decoder-only model it
    can therefore be folded into the LSTM's bias (`sketchrnn.magenta_js.fold_class`), giving a plain
    decoder for one class."""

    def __init__(self, hps: HParams):
        super().__init__()
        self.hps = hps
        self.z_size = hps.z_size if hps.conditional else 0
        self.class_size = hps.class_embedding_size if hps.class_conditional else 0
        self.context_size = self.z_size + self.class_size     # what the decoder reads beside each point
        self.rnn = Recurrent(hps.dec_model, 5 + self.context_size, hps.dec_rnn_size, hps, hps.use_recurrent_dropout,
                             hps.recurrent_dropout_prob)
        if hps.conditional:
            self.init_state = _gaussian_linear(hps.z_size, self.rnn.cell.state_size)
        if hps.class_conditional:
            if hps.num_classes < 1:
                raise OptionError("a class-conditional model needs num_classes >= 1 (train sets it from the data)")
            # N(0, 1) rows, as nn.Embedding's default: the size of the normalised offsets it sits beside
            self.class_embedding = nn.Embedding(hps.num_classes, hps.class_embedding_size)
        self.output = nn.Linear(hps.dec_rnn_size, 3 + 6 * hps.num_mixture)
        glorot_uniform_(self.output.weight, hps.dec_rnn_size, 3 + 6 * hps.num_mixture)  # TF default for output_w
        _uniform_tf_bias_(self.output.bias)                                           # and for output_b

    def initial_state(self, z: Optional[Tensor], batch: int, like: Tensor) -> tuple[Tensor, ...]:
        if z is None or not self.hps.conditional:
            return self.rnn.cell.zero_state(batch, like)
        return self.rnn.cell.split_state(torch.tanh(self.init_state(z)))

    def class_vectors(self, labels: Tensor) -> Tensor:
        """(B,) int64 class indices -> (B, class_embedding_size) embeddings (what `forward` takes as `c`)."""
        return self.class_embedding(labels)

    def _dropout(self, x: Tensor, keep: float, generator: Optional[torch.Generator]) -> Tensor:
        mask = torch.empty_like(x).bernoulli_(keep, generator=generator).div_(keep)
        return x * mask

    def forward(self, s: Tensor, z: Optional[Tensor], state: Optional[tuple[Tensor, ...]] = None,
                generator: Optional[torch.Generator] = None, c: Optional[Tensor] = None
                ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """s: (T, B, 5) previous points (S0 first); z: (B, z_size) or None; c: (B, class_embedding_size)
        class embeddings (a class-conditional model needs them) -> ((T, B, 3+6M), final state)."""
        hps = self.hps
        t, b = s.shape[0], s.shape[1]
        if state is None:
            state = self.initial_state(z, b, s)
        parts = [z] if hps.conditional and z is not None else []
        if hps.class_conditional:
            if c is None:
                raise ValueError("a class-conditional decoder needs the class embeddings c")
            parts.append(c)
        ctx = (parts[0] if len(parts) == 1 else torch.cat(parts, 1)) if parts else None   # (B, context)
        x = torch.cat([s, ctx[None].expand(t, b, ctx.shape[1])], 2) if ctx is not None else s
        xp = None
        input_dropout = self.training and hps.use_input_dropout and hps.input_dropout_prob < 1.0
        if input_dropout:
            x = self._dropout(x, hps.input_dropout_prob, generator)
        elif ctx is not None and self.rnn.resolved_impl() != "fused":
            # z and the class are the same at every step: project them once per sketch, not once per step
            xp = self._split_projection(s, ctx)
        out, final = self.rnn(x, state, generator, xp=xp)
        if self.training and hps.use_output_dropout and hps.output_dropout_prob < 1.0:
            out = self._dropout(out, hps.output_dropout_prob, generator)
        return self.output(out), final

    def _split_projection(self, s: Tensor, ctx: Tensor) -> Tensor:
        cell = self.rnn.cell
        w = cell.weight_ih
        bias = getattr(cell, "bias", None) if isinstance(cell, LSTMCell) else None
        if not isinstance(cell, HyperLSTMCell):
            # one (T, B, 4H) product with the context's share and the bias broadcast over time rather than two
            # summed (0.18-0.20 against 0.35-0.52 s per step at the reference sizes); in float32 even under
            # autocast (its inner dimensions are 5 and the context size: cheap, and the gates keep float32
            # precision)
            with torch.autocast(s.device.type, enabled=False):
                zb = F.linear(ctx.float(), w[:, 5:], bias)
                return torch.baddbmm(zb[None], s.float(), w[:, :5].t().expand(s.shape[0], 5, -1))
        main = F.linear(s, w[:, :5], bias) + F.linear(ctx, w[:, 5:])[None]
        hw = cell.hyper.weight_ih
        hyper = F.linear(s, hw[:, :5]) + F.linear(ctx, hw[:, 5:5 + self.context_size])[None]
        return torch.cat([main, hyper], -1)


@dataclass
class MixtureParams:
    """The decoder head split and activated (REFERENCE B.3); every field (..., M) except pen_logits (..., 3)."""

    pen_logits: Tensor
    log_pi: Tensor
    mu_x: Tensor
    mu_y: Tensor
    log_sigma_x: Tensor
    log_sigma_y: Tensor
    rho: Tensor


def mixture_params(out: Tensor) -> MixtureParams:
    """(..., 3 + 6M) -> MixtureParams: [pen(3) | pi | mu_x | mu_y | log_sigma_x | log_sigma_y | rho_raw]."""
    pen_logits = out[..., :3]
    pi, mu_x, mu_y, ls_x, ls_y, rho_raw = out[..., 3:].chunk(6, -1)
    # fix (REFERENCE F.11): bound log sigma and |rho| so the log density stays finite (see LOG_SIGMA_LIMIT)
    return MixtureParams(pen_logits, F.log_softmax(pi, -1), mu_x, mu_y,
                         ls_x.clamp(-LOG_SIGMA_LIMIT, LOG_SIGMA_LIMIT), ls_y.clamp(-LOG_SIGMA_LIMIT, LOG_SIGMA_LIMIT),
                         torch.tanh(rho_raw).clamp(-RHO_LIMIT, RHO_LIMIT))


def bivariate_normal_log_density(x: Tensor, y: Tensor, p: MixtureParams) -> Tensor:
    """log N(x, y | mu, sigma, rho) per component: (...) targets -> (..., M), in log space."""
    nx = (x[..., None] - p.mu_x) * torch.exp(-p.log_sigma_x)
    ny = (y[..., None] - p.mu_y) * torch.exp(-p.log_sigma_y)
    one_minus_rho2 = 1.0 - p.rho * p.rho
    z = nx * nx + ny * ny - 2.0 * p.rho * nx * ny
    return (-z / (2.0 * one_minus_rho2) - math.log(2.0 * math.pi) - p.log_sigma_x - p.log_sigma_y
            - 0.5 * torch.log(one_minus_rho2))


def offset_loss(p: MixtureParams, x: Tensor, y: Tensor) -> Tensor:
    """L_s per step, unmasked: -log(sum_k pi_k N_k + 1e-6), the reference's function computed in log space."""
    log_mix = torch.logsumexp(p.log_pi + bivariate_normal_log_density(x, y, p), -1)
    return -torch.logaddexp(log_mix, torch.full_like(log_mix, math.log(LOSS_EPS)))


def pen_loss(pen_logits: Tensor, pen_target: Tensor) -> Tensor:
    """L_p per step: softmax cross-entropy of the pen logits (..., 3) against the one-hot target (..., 3)."""
    return -(pen_target * F.log_softmax(pen_logits, -1)).sum(-1)


@dataclass
class Losses:
    """Scalars of one batch: cost = r_cost + kl_weight * max(kl, kl_tolerance); r_cost = offset + pen.
    sketch_r_cost and sketch_kl: (B,) each sketch's share (r_cost and kl are their means), for costs by class."""

    cost: Tensor
    r_cost: Tensor
    kl: Tensor
    offset: Tensor
    pen: Tensor
    sketch_r_cost: Optional[Tensor] = None
    sketch_kl: Optional[Tensor] = None


class SketchRNN(nn.Module):
    """The sketch-rnn VAE (conditional) or decoder-only model (unconditional); either of them
    class-conditional (`class_conditional`: the decoder reads the class's embedding at every step)."""

    def __init__(self, hps: HParams):
        super().__init__()
        if torch.get_default_device().type != "meta":
            check_model_size(hps)      # before any weight is allocated (the check builds on `meta`)
        self.hps = hps
        self.encoder = Encoder(hps) if hps.conditional else None
        self.decoder = Decoder(hps)

    def set_rnn_impl(self, impl: str) -> None:
        """Choose how the RNNs run: one of RNN_IMPLS (results agree up to float rounding)."""
        if impl not in RNN_IMPLS:
            raise OptionError(f"rnn implementation must be one of {', '.join(RNN_IMPLS)}, got {impl!r}")
        for m in self.modules():
            if isinstance(m, Recurrent):
                m.impl = impl

    def encode(self, strokes5: Tensor, lengths: Tensor, generator: Optional[torch.Generator] = None
               ) -> tuple[Tensor, Tensor]:
        """strokes5: (B, T+1, 5) with S0 in row 0; lengths: (B,) -> (mu, presig), each (B, z_size)."""
        return self.encoder(strokes5[:, 1:].transpose(0, 1), lengths, generator)

    def forward(self, strokes5: Tensor, lengths: Tensor, norm_steps: int, kl_weight: float,
                generator: Optional[torch.Generator] = None, eps: Optional[Tensor] = None,
                labels: Optional[Tensor] = None) -> Losses:
        """Losses of a batch. strokes5: (B, T+1, 5), S0 in row 0 and end-of-sketch rows after each
        sketch; lengths: (B,) int64; `norm_steps`: the per-sketch divisor of the summed losses
        (the reference's N_max: the dataset's target length, whatever T this batch was padded to);
        labels: (B,) int64 class indices (a class-conditional model needs them; others ignore them)."""
        hps = self.hps
        c = None
        if hps.class_conditional:
            if labels is None:
                raise ValueError("a class-conditional model needs the batch's labels")
            c = self.decoder.class_vectors(labels.to(strokes5.device))
        xs = strokes5.transpose(0, 1)                # (T+1, B, 5)
        target = xs[1:]                              # (T, B, 5)
        b = strokes5.shape[0]
        z = None
        kl = strokes5.new_zeros(())
        sketch_kl = strokes5.new_zeros(b)
        # bf16: matrix products (RNNs, linear layers) in bfloat16, everything after them in float32
        low = torch.autocast(strokes5.device.type, dtype=torch.bfloat16, enabled=hps.precision == "bf16")
        if hps.conditional:
            with low:
                mu, presig = self.encoder(target, lengths, generator)
            mu, presig = mu.float(), presig.float()
            if eps is None:  # `eps` (B, z_size) may be given: the reference-parity tests feed TF's noise
                eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(presig / 2.0) * eps
            terms = 1.0 + presig - mu * mu - torch.exp(presig)                     # (B, z_size)
            kl = -0.5 * torch.mean(terms)
            sketch_kl = -0.5 * terms.detach().mean(1)                                # (B,)
        with low:
            out, _ = self.decoder(xs[:-1], z, generator=generator, c=c)     # (T, B, 3+6M)
        p = mixture_params(out.float())
        not_end = 1.0 - target[..., 4]
        l_s = offset_loss(p, target[..., 0], target[..., 1]) * not_end
        l_p = pen_loss(p.pen_logits, target[..., 2:])
        if not hps.is_training:
            l_p = l_p * not_end
        denom = float(b * norm_steps)
        offset, pen = l_s.sum() / denom, l_p.sum() / denom
        r_cost = offset + pen
        kl_cost = torch.clamp_min(kl, hps.kl_tolerance) if hps.conditional else kl
        sketch_r_cost = (l_s.sum(0) + l_p.sum(0)).detach() / float(norm_steps)          # (B,)
        return Losses(r_cost + kl_weight * kl_cost, r_cost, kl, offset, pen, sketch_r_cost, sketch_kl)


def parameter_count(hps: HParams) -> int:
    """How many parameters SketchRNN(hps) has, counted on PyTorch's `meta` device (nothing is allocated)."""
    with torch.device("meta"):
        return count_parameters(SketchRNN(hps))


def check_model_size(hps: HParams) -> None:
    """OptionError when the model would have more than MAX_PARAMETERS parameters."""
    if hps.class_conditional and hps.num_classes < 1:
        # before `train` has read the classes: one row; SketchRNN checks again with the data's number
        hps = hps.replace(num_classes=1)
    n = parameter_count(hps)
    if n > MAX_PARAMETERS:
        raise OptionError(f"hparams: a model of {n:,} parameters is over the bound of {MAX_PARAMETERS:,} "
                          f"({MAX_PARAMETERS * 4 // 2**30} GiB of float32 weights): lower enc_rnn_size, dec_rnn_size, "
                          f"z_size, num_mixture, the hyper sizes or class_embedding_size")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
