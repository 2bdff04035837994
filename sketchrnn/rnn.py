"""Whole-sequence LSTM and layer-norm LSTM with the reference's recurrent dropout, fast on CPU.

`sketchrnn.model`'s loop runs a cell step by step under autograd: every step records a dozen small
operations, and the backward multiplies a (B, 4H) gradient into the weight gradient once per step.
Here one `torch.autograd.Function` runs the whole sequence:

- forward: the input projection of all steps is done by the caller in one matrix product; the loop keeps
  only the recurrent product h @ W_hh^T and writes the activated gates, cells and outputs of every step
  into preallocated (T, B, .) buffers, outside autograd;
- backward: the factors that do not depend on the incoming gradient (sigma'(i) * g, c_{t-1} sigma'(f), ...)
  are computed for all steps at once, the time loop is then ~6 operations per step producing the gate
  gradients dG of every step, and the weight gradients are single products over all steps:
  dW_hh = dG^T @ H_prev (and, by autograd on the caller's projection, dW_ih = dG^T @ X).

The function is the same as the loop's (`_lstm_step` / `_ln_lstm_step`): gates in PyTorch's order
(i, f, g, o), forget bias 1.0, the dropout mask (drawn by the caller for all steps at once, from the same
generator in the same order as the loop) on the candidate g = tanh(j) only. Results agree with the loop
to float32 rounding (tests/test_sketchrnn_rnn.py). With `low` (autocast to bfloat16 is on) the recurrent
and weight-gradient products run in bfloat16 and everything else, states included, in float32.

`batch_sizes` (non-increasing, one per step) steps only the first rows at each time step, as the
encoder does with sequences sorted longest first; a finished row keeps its final state.
"""
from __future__ import annotations

import contextlib

import torch
from torch import Tensor

LN_EPS = 1e-3  # the reference's layer-norm epsilon (sketchrnn.model.LN_EPS)


class _Product:
    """x (n, in) -> x @ w^T + bias (n, out) for a weight used at every time step: on CPU the weight is
    reordered once for oneDNN (measured 1.15x (bfloat16) to 1.35x (float32) faster per step than
    torch.mm, which repacks it on every call); elsewhere, or where this torch lacks the op, torch.mm."""

    def __init__(self, w: Tensor, low: bool, batch: int, bias: Tensor | None = None):
        dtype = torch.bfloat16 if low else torch.float32
        self.w = w.to(dtype).contiguous()
        self.bias = None if bias is None else bias.to(dtype)
        self.packed = None
        if self.w.device.type == "cpu" and torch.backends.mkldnn.is_available():
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(self.w, batch)
            except (AttributeError, RuntimeError):
                self.packed = None

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return torch.mm(x, self.w.t()) if self.bias is None else torch.addmm(self.bias, x, self.w.t())


class _LSTMSequence(torch.autograd.Function):
    """(xp (T, B, 4H), h0, c0, W_hh (4H, H), [gamma, beta, gamma_c, beta_c]) -> (outputs (T, B, H), h_T, c_T)."""

    @staticmethod
    def forward(ctx, xp: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, gamma: Tensor | None,
                beta: Tensor | None, gamma_c: Tensor | None, beta_c: Tensor | None,
                masks: Tensor | None, batch_sizes: list[int] | None, low: bool):
        ctx.set_materialize_grads(False)
        ln = gamma is not None
        t_max, b = xp.shape[0], xp.shape[1]
        hid = w_hh.shape[1]
        # h @ W_hh^T (+ the lstm's forget bias 1.0; layer_norm adds it after the norm, with beta)
        product = _Product(w_hh, low, b, None if ln else _forget_offset(hid, xp.device))
        dev, f32 = xp.device, torch.float32
        act = _buffer(t_max, (b, 4 * hid), f32, dev)                     # activated gates (i, f, g, o)
        hs = _buffer(t_max + 1, (b, hid), f32, dev)                      # h_0 .. h_T
        cs = _buffer(t_max + 1, (b, hid), f32, dev)                      # c_0 .. c_T
        hs[0], cs[0] = h0, c0
        tc_all = _buffer(t_max, (b, hid), f32, dev)                      # tanh(c_t), or tanh(LN(c_t))
        hs_low = _buffer(t_max + 1, (b, hid), torch.bfloat16, dev) if low else None
        x_hat, rstd, stats_c = [], [], []                               # layer_norm: per step
        if ln:
            beta_f = beta.float() + _forget_offset(hid, xp.device)
            gamma_f, gc, bc = gamma.float(), gamma_c.float(), beta_c.float()
            pre = hs.new_empty((b, 4 * hid))
        if low:
            hs_low[0] = h0
        for t in range(t_max):
            n = batch_sizes[t] if batch_sizes is not None else b
            a = act[t, :n]
            gates = torch.add(xp[t, :n], product(hs_low[t, :n] if low else hs[t, :n]), out=pre[:n] if ln else a)
            if ln:
                y, _, r = torch.native_layer_norm(gates.view(n, 4, hid), [hid], None, None, LN_EPS)
                x_hat.append(y)
                rstd.append(r)
                torch.addcmul(beta_f, y.view(n, 4 * hid), gamma_f, out=a)
            a[:, :2 * hid].sigmoid_()
            a[:, 3 * hid:].sigmoid_()
            cand = _tanh_(a[:, 2 * hid:3 * hid])
            if masks is not None:
                cand = cand * masks[t, :n]
            c = torch.mul(a[:, hid:2 * hid], cs[t, :n], out=cs[t + 1, :n])
            c.addcmul_(a[:, :hid], cand)
            if ln:
                cn, mean_c, rstd_c = torch.native_layer_norm(c, [hid], gc, bc, LN_EPS)
                stats_c.append((mean_c, rstd_c))
                c = cn
            tc = _tanh_(tc_all[t, :n].copy_(c))
            h = torch.mul(tc, a[:, 3 * hid:], out=hs[t + 1, :n])
            if n < b:
                hs[t + 1, n:], cs[t + 1, n:] = hs[t, n:], cs[t, n:]
            if low:
                hs_low[t + 1, :n] = h
                if n < b:
                    hs_low[t + 1, n:] = hs_low[t, n:]
        ctx.batch_sizes, ctx.low, ctx.ln = batch_sizes, low, ln
        ctx.xp_dtype = xp.dtype
        ctx.buffers = (act, hs, cs, tc_all, masks, hs_low) + ((x_hat, rstd, stats_c, gamma_f, gc, bc) if ln else ())
        ctx.save_for_backward(w_hh)
        return hs[1:], hs[t_max].clone(), cs[t_max].clone()

    @staticmethod
    def backward(ctx, d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None):
        # Per step, on (B, .) slices that stay in cache: computing the gate derivatives for all steps
        # at once in (T, B, 4H) tensors was measured slower (memory-bound passes over ~200 MB each).
        (w_hh,) = ctx.saved_tensors
        act, hs, cs, tc_all, masks, hs_low = ctx.buffers[:6]
        ln, low, batch_sizes = ctx.ln, ctx.low, ctx.batch_sizes
        t_max, b, hid = tc_all.shape
        product = _Product(w_hh.t(), low, b)                            # dG @ W_hh
        # d pre-activation gates of all steps (in bfloat16 when the products are: they only feed products)
        d_g = _buffer(t_max, (b, 4 * hid), torch.bfloat16 if low else torch.float32, act.device)
        scratch = hs.new_empty((b, 4 * hid)) if low or ln else None
        dh = d_h.float().clone() if d_h is not None else hs.new_zeros((b, hid))
        dc = d_c.float().clone() if d_c is not None else hs.new_zeros((b, hid))
        sig_bw, tanh_bw = torch.ops.aten.sigmoid_backward.grad_input, torch.ops.aten.tanh_backward.grad_input
        if ln:
            x_hat, rstd, stats_c, gamma_f, gc, bc = ctx.buffers[6:]
            d_gamma, d_beta = hs.new_zeros((t_max, 4 * hid)), hs.new_zeros((t_max, 4 * hid))
            d_gc, d_bc = hs.new_zeros((t_max, hid)), hs.new_zeros((t_max, hid))
            d_pre = hs.new_empty((b, 4 * hid)) if low else None
            zero, one = hs.new_zeros((b, 4, 1)), hs.new_ones((b, 4, 1))
        for t in range(t_max - 1, -1, -1):
            n = batch_sizes[t] if batch_sizes is not None else b
            if n < b:
                d_g[t, n:] = 0                                  # rows not stepped add nothing to dW_hh
            if d_out is not None:
                dh.add_(d_out[t])
            dh_n, dc_n = dh[:n], dc[:n]
            a, tc = act[t, :n], tc_all[t, :n]
            si, sf, cand, so = a[:, :hid], a[:, hid:2 * hid], a[:, 2 * hid:3 * hid], a[:, 3 * hid:]
            d_tc = torch.ops.aten.tanh_backward(dh_n * so, tc)
            if ln:
                mean_c, rstd_c = stats_c[t]
                d_c_new, d_gc[t], d_bc[t] = torch.ops.aten.native_layer_norm_backward(
                    d_tc, cs[t + 1, :n], [hid], mean_c, rstd_c, gc, bc, [True, True, True])
                dc_n.add_(d_c_new)
            else:
                dc_n.add_(d_tc)
            dg = scratch[:n] if scratch is not None else d_g[t, :n]   # d activation inputs (LN'd gates for ln)
            d_cand = dc_n * si
            if masks is not None:
                m = masks[t, :n]
                sig_bw(dc_n * (cand * m), si, grad_input=dg[:, :hid])
                d_cand.mul_(m)
            else:
                sig_bw(dc_n * cand, si, grad_input=dg[:, :hid])
            sig_bw(dc_n * cs[t, :n], sf, grad_input=dg[:, hid:2 * hid])
            tanh_bw(d_cand, cand, grad_input=dg[:, 2 * hid:3 * hid])
            sig_bw(dh_n * tc, so, grad_input=dg[:, 3 * hid:])
            dc_n.mul_(sf)
            if ln:
                xh = x_hat[t]                                  # (n, 4, H)
                torch.sum(dg.view(n, 4, hid) * xh, 0, out=d_gamma[t].view(4, hid))
                torch.sum(dg, 0, out=d_beta[t])
                d_x = torch.ops.aten.native_layer_norm_backward(
                    (dg * gamma_f).view(n, 4, hid), xh, [hid], zero[:n], one[:n], None, None,
                    [True, False, False])[0]
                dg = torch.mul(d_x, rstd[t], out=(d_pre[:n] if low else d_g[t, :n]).view(n, 4, hid))
                dg = dg.view(n, 4 * hid)
            if low:
                dg = d_g[t, :n].copy_(dg)
            d_prev = product(dg)
            if n == b and not low:
                dh = d_prev
            else:
                dh_n.copy_(d_prev)
        # the recurrent weight's gradient: one product over all steps
        h_prev = (hs_low if low else hs)[:-1].reshape(t_max * b, hid)
        d_w = torch.mm(d_g.view(t_max * b, 4 * hid).t(), h_prev)
        grads = [d_g.to(ctx.xp_dtype), dh, dc, d_w.to(w_hh.dtype)]
        if ln:
            grads += [d_gamma.sum(0), d_beta.sum(0), d_gc.sum(0), d_bc.sum(0)]
        else:
            grads += [None] * 4
        return (*grads, None, None, None)


_POOL: dict = {}       # (trailing shape, dtype) -> CPU buffers reused across calls
_POOL_PER_KEY = 8


def _buffer(rows: int, trailing: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """An uninitialised (rows, *trailing) tensor. On CPU it comes from buffers kept between calls:
    freshly allocated ~200 MB buffers are first written inside the time loop, where their page faults
    were measured to cost ~0.3-0.8 ms per step (glibc maps big blocks anew on every allocation).
    A kept buffer is handed out again only once nothing else references its storage."""
    if device.type != "cpu" or not hasattr(torch._C, "_storage_Use_Count"):
        return torch.empty((rows, *trailing), dtype=dtype, device=device)
    bufs = _POOL.setdefault((trailing, dtype), [])
    for i, buf in enumerate(bufs):
        if _unused(buf):
            if buf.shape[0] < rows:
                buf = bufs[i] = torch.empty((rows, *trailing), dtype=dtype)
            return buf[:rows]
    buf = torch.empty((rows, *trailing), dtype=dtype)
    if len(bufs) < _POOL_PER_KEY:
        bufs.append(buf)
    return buf[:rows]


def _unused(buf: Tensor) -> bool:
    try:  # 2: the pool's tensor and the temporary storage object asked
        return torch._C._storage_Use_Count(buf.untyped_storage()._cdata) <= 2
    except (AttributeError, RuntimeError):
        return False


def release_buffers() -> None:
    """Give the buffers kept between calls back (e.g. after training)."""
    _POOL.clear()


def _tanh_(x: Tensor) -> Tensor:
    """tanh in place as 2 sigmoid(2x) - 1: torch's CPU tanh was measured 3x slower than these four
    operations (140 against 45 us on (100, 512)); the result differs from tanh by float32 rounding
    (absolute error ~1e-7)."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


_OFFSETS: dict = {}


def _forget_offset(hid: int, device) -> Tensor:
    """(4H,) zeros with the reference's forget bias 1.0 on the f block."""
    key = (hid, str(device))
    if key not in _OFFSETS:
        off = torch.zeros(4 * hid, device=device)
        off[hid:2 * hid] = 1.0
        _OFFSETS[key] = off
    return _OFFSETS[key]


def low_precision(device_type: str) -> bool:
    """True when autocast to bfloat16 is on for `device_type` (the model's precision=bf16)."""
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.bfloat16


_FUSED_BF16: dict[str, bool] = {}


def fused_lstm_precision(device_type: str):
    """A context for `torch.lstm`: as it is, or float32 where autocast to bfloat16 is on but this machine's
    fused LSTM has no bfloat16 kernel (oneDNN's needs AVX-512: on an AVX2 CPU it raises "could not create a
    primitive descriptor"). Whether it has one is tried once per process on a 1x1x1 LSTM."""
    if not low_precision(device_type):
        return contextlib.nullcontext()
    if device_type not in _FUSED_BF16:
        one = torch.zeros(1, 1, 1, device=device_type)
        weights = [torch.zeros(4, 1, device=device_type)] * 2 + [torch.zeros(4, device=device_type)] * 2
        try:
            torch.lstm(one, (one, one), weights, True, 1, 0.0, False, False, False)
            _FUSED_BF16[device_type] = True
        except RuntimeError:
            _FUSED_BF16[device_type] = False
    return contextlib.nullcontext() if _FUSED_BF16[device_type] else torch.autocast(device_type, enabled=False)


def lstm_sequence(kind: str, xp: Tensor, state: tuple, params: tuple, masks: Tensor | None,
                  batch_sizes: list[int] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Run an `lstm` or `layer_norm` cell over xp (T, B, 4H), the input projection of all steps (no forget
    bias), from `state` (h, c), with `params` the cell's `step_params()` and `masks` (T, B, H) or None.
    Returns (outputs (T, B, H), (h_T, c_T)), float32."""
    low = low_precision(xp.device.type)
    w_hh = params[0].t()                                     # step_params hold W_hh^T
    ln = params[1:] if kind == "layer_norm" else (None,) * 4
    h0, c0 = state
    with torch.autocast(xp.device.type, enabled=False):
        out, h, c = _LSTMSequence.apply(xp, h0.float(), c0.float(), w_hh, *ln,
                                        None if masks is None else masks.float(), batch_sizes, low)
    return out, (h, c)
