"""The fused recurrence: one ON-LSTM layer's loop over time, fast, with a hand-written backward.

The same arithmetic as the readable ``models.network.cell.ONLSTMCell.step`` (equations 9-14), organised
for speed: preallocated buffers, gates activated in place, rows that have finished their
sequence dropped from each step, and (for training) one autograd node per layer whose backward
computes the weight gradient in one product at the end.  ``tests/models/test_fast_onlstm.py``
holds every path here to the step-by-step oracle (``models.network.reference``): outputs, distances,
states, losses and gradients.

Shapes: ``B`` batch, ``T`` time, ``H`` hidden size, ``n = H / chunk_size`` chunks,
``G = 4H + 2n`` gate pre-activations in the order [master input (n), master forget (n), o, c_hat, i, f].
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from .native import Kernels, amx_panels, float16_values, half_panels, kernels


def autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has one switch for CUDA and one for the CPU
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def can_fuse(inputs: Tensor, weight_ih: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor]) -> bool:
    """The fused path computes in the tensors' own dtype; under autocast (bf16 on a GPU) the
    per-step path lets autocast choose each op's precision, as it was validated."""
    if autocast_enabled(inputs.device.type):
        return False
    dtype = inputs.dtype
    return inputs.dim() == 3 and all(tensor.dtype == dtype for tensor in (weight_ih, weight_hh, *state))


# --- the fused recurrence ----------------------------------------------------------------
#
# Autograd through the per-step code above records ~25 small kernels per step and, worse,
# a (G, H) gradient of ``weight_hh`` at every step that is then summed: for the paper-sized
# model that is 70 rank-20 updates of a 22 MB matrix per layer and window, bound by memory
# traffic.  The function below runs the same arithmetic into preallocated buffers and has a
# hand-written backward: per step only the elementwise gate derivatives and ``dgates @ U``;
# the weight gradient is one large matrix product over all steps at the end.


def _active_rows(lengths: list[int] | None, steps: int, batch_size: int) -> list[int]:
    """Rows still inside their sequence at each step; rows are sorted by length, longest first."""
    if lengths is None:
        return [batch_size] * steps
    return [sum(1 for length in lengths if length > t) for t in range(steps)]


# Positions whose input projection is computed in one product at inference: large enough for
# an efficient matrix product, small enough to bound memory (256 x G floats: 2.6 MB at G = 2520,
# in a buffer each thread keeps; 512 took the service's peak from 349 to 353 MB).
INFERENCE_BLOCK_ROWS = 256


def _gate_arithmetic(
    gates: Tensor, c_prev: Tensor, chunk_size: int, c_out: Tensor, h_out: Tensor, masters_out: Tensor,
    saved: dict[str, Tensor] | None = None,
) -> None:
    """Equations 9-14 for one step, given ``gates = W x + U h + b`` (rows, G), in place.

    The gate columns are activated in place; c, h and the master gates' cumulative sums are
    written into ``c_out``, ``h_out`` and ``masters_out`` (rows, 2, n).  With ``saved``, the
    softmax of the master gates, f^, i^ and tanh(c) are written into its tensors too.
    """
    rows, hidden_size = c_prev.shape
    n_chunks = hidden_size // chunk_size
    two_n = 2 * n_chunks
    # master gates: softmax and cumulative sum of both in one kernel each
    master_probs = torch.softmax(gates[:, :two_n].view(rows, 2, n_chunks), dim=-1)
    if saved is not None:
        saved["probs"].copy_(master_probs)
    cumulative = torch.cumsum(master_probs, dim=-1, out=masters_out)
    master_forget = cumulative[:, 1]
    master_input = 1.0 - cumulative[:, 0]
    overlap = master_forget * master_input
    # o, c_hat, i, f activated in place: [o | c_hat | i f] are contiguous column ranges
    gates[:, two_n : two_n + hidden_size].sigmoid_()
    gates[:, two_n + hidden_size : two_n + 2 * hidden_size].tanh_()
    gates[:, two_n + 2 * hidden_size :].sigmoid_()
    out_gate = gates[:, two_n : two_n + hidden_size]
    cell_hat = gates[:, two_n + hidden_size : two_n + 2 * hidden_size]
    in_gate = gates[:, two_n + 2 * hidden_size : two_n + 3 * hidden_size].view(rows, n_chunks, chunk_size)
    forget_gate = gates[:, two_n + 3 * hidden_size :].view(rows, n_chunks, chunk_size)
    overlap3 = overlap.unsqueeze(-1)
    # f^ = f * w + (f~ - w) and i^ = i * w + (i~ - w), one kernel each (written where backward reads them)
    shape = (rows, n_chunks, chunk_size)
    forget_hat = torch.addcmul(
        (master_forget - overlap).unsqueeze(-1), forget_gate, overlap3,
        out=saved["forget_hats"].view(shape) if saved is not None else None,
    ).view(rows, -1)
    input_hat = torch.addcmul(
        (master_input - overlap).unsqueeze(-1), in_gate, overlap3,
        out=saved["input_hats"].view(shape) if saved is not None else None,
    ).view(rows, -1)
    c = torch.mul(forget_hat, c_prev, out=c_out)
    c.addcmul_(input_hat, cell_hat)
    tanh_c = torch.tanh(c, out=saved["tanh_cs"]) if saved is not None else torch.tanh(c)
    torch.mul(out_gate, tanh_c, out=h_out)


def _hand_over(active: list[int], t: int, final_h: Tensor, final_c: Tensor, h: Tensor, c: Tensor) -> None:
    """Rows whose sequence ends at step t copy their h and c (rows first) into the final state."""
    remaining = active[t + 1] if t + 1 < len(active) else 0
    if remaining < active[t]:
        final_h[remaining : active[t]] = h[remaining : active[t]]
        final_c[remaining : active[t]] = c[remaining : active[t]]


def _training_buffers(projected: Tensor, h0: Tensor, chunk_size: int, padded: bool,
                      for_pytorch_backward: bool) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """hs (T + 1, B, H) with hs[0] = h0, masters (T, B, 2, n) zeroed, and the buffers backward reads:
    the gate activations and the cs, and for PyTorch's backward (the kernel recomputes them) the
    master gates' softmax, f^, i^ and tanh(c)."""
    steps, batch_size, gate_size = projected.shape
    hidden_size = h0.size(1)
    n_chunks = hidden_size // chunk_size
    new = projected.new_empty
    # padded entries must be finite: callers multiply them by a zero mask
    hs = projected.new_zeros(steps + 1, batch_size, hidden_size) if padded else new(steps + 1, batch_size, hidden_size)
    hs[0] = h0
    masters = projected.new_zeros(steps, batch_size, 2, n_chunks)
    saved = dict(
        acts=new(steps, batch_size, gate_size),  # gate activations, in the gates' layout
        cs=new(steps + 1, batch_size, hidden_size),  # cs[0] = c0, cs[t + 1] = c of step t
    )
    if for_pytorch_backward:
        saved.update(
            probs=new(steps, batch_size, 2, n_chunks),  # softmax of both master gates (the kernel: in acts)
            forget_hats=new(steps, batch_size, hidden_size),
            input_hats=new(steps, batch_size, hidden_size),
            tanh_cs=new(steps, batch_size, hidden_size),
        )
    return hs, masters, saved


def _recurrence_forward(
    projected: Tensor, weight_t: Tensor, h0: Tensor, c0: Tensor, active: list[int], chunk_size: int,
    fused_kernels: Kernels | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """The training forward of ``_FusedRecurrence``: the recurrence, keeping what backward needs.

    Rows must be sorted by length, longest first (``active[t]`` rows are valid at step t),
    so a step computes only on a prefix of the batch.  A row's final state is copied out
    once, at its last step.

    Args:
        projected: (T, B, G) ``W x + b`` of every step (garbage at padded steps is never read).
        weight_t: (H, G) the transposed hidden-to-hidden weights (DropConnect applied).
    Returns:
        hs (T + 1, B, H) with hs[0] = h0, hs[t + 1] the output of step t (0 at padded steps);
        masters (T, B, 2, n) the cumulative sums ``[cumsum(softmax(input)), cumsum(softmax(forget))]``
        (0 at padded steps); each row's final h and c (B, H); and the buffers backward needs:
        with ``fused_kernels`` only the activations and cs (its backward kernel recomputes the rest).
    """
    steps = projected.size(0)
    padded = any(rows < projected.size(1) for rows in active)
    hs, masters, saved = _training_buffers(projected, h0, chunk_size, padded, fused_kernels is None)
    # each row's final h and c, copied out at its last step when rows end at different steps
    final = (h0.clone(), c0.clone()) if padded else None
    cs = saved["cs"]
    cs[0] = c0
    # W x + b in one copy, U h added in place at each step: addmm(..., out=) copied its input
    # a step at a time (11 ms of a 560 ms cpu-preset step on the 2-core machine)
    saved["acts"].copy_(projected)
    for t in range(steps):
        rows = active[t]
        if rows == 0:
            continue
        gates = saved["acts"][t, :rows].addmm_(hs[t, :rows], weight_t)
        if fused_kernels is not None:
            fused_kernels.step_forward(gates, cs[t, :rows], chunk_size, cs[t + 1, :rows], hs[t + 1, :rows],
                                       masters[t, :rows])
        else:
            step_saved = {name: saved[name][t, :rows] for name in ("probs", "forget_hats", "input_hats", "tanh_cs")}
            _gate_arithmetic(gates, cs[t, :rows], chunk_size, cs[t + 1, :rows], hs[t + 1, :rows], masters[t, :rows],
                             step_saved)
        if final is not None:
            _hand_over(active, t, *final, hs[t + 1], cs[t + 1])
    final_h, final_c = final if final is not None else (hs[steps].clone(), cs[steps].clone())
    return hs, masters, final_h, final_c, saved


def _inference_recurrence(
    inputs: Tensor, valid: Tensor | None, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, h0: Tensor,
    c0: Tensor, active: list[int], chunk_size: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The recurrence without autograd, in bounded memory, on (T, B, input) inputs: ``packed_inference``
    on their real positions.  Returns outputs (T, B, H), final h and c (B, H), forget and input
    distances (T, B); 0 at padded steps."""
    steps, batch_size, _ = inputs.shape
    packed_inputs = inputs.reshape(steps * batch_size, -1) if valid is None else inputs[valid]
    hs, masters, final_h, final_c = packed_inference(packed_inputs, active, weight_ih, bias, weight_hh, h0, c0,
                                                     chunk_size)
    return _unpack(inputs, valid, hs, masters, final_h, final_c)


def packed_inference(
    packed_inputs: Tensor, active: list[int], weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, h0: Tensor,
    c0: Tensor, chunk_size: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One layer without autograd over packed positions.

    Positions are packed time-major (step t holds rows ``[0, active[t])``, as in a
    ``PackedSequence``; rows sorted by length, longest first): packed_inputs (P, input), P the sum
    of ``active``.  Their input projection is computed a block of steps at a time (about
    ``INFERENCE_BLOCK_ROWS`` positions: still one efficient matrix product) and accumulated into in
    place, so memory grows with the batch's tokens times H, not times G = 4H + 2n.

    Returns hs (P, H), the master gates' cumulative sums (P, 2, n) (``_unpack`` turns them into
    distances), and the final h and c (B, H) of every row, B = h0's rows.
    """
    layer = _PackedLayer(packed_inputs, active, weight_ih, bias, weight_hh, h0, c0, chunk_size)
    steps, block_steps = len(active), max(1, INFERENCE_BLOCK_ROWS // max(1, h0.size(0)))
    for block_start in range(0, steps, block_steps):
        layer.run_block(block_start, min(steps, block_start + block_steps))
    return layer.hs, layer.masters, layer.final_h, layer.final_c


class _PackedLayer:
    """``packed_inference``'s layer: its outputs and running state, and the two ways a block of steps
    runs once its ``W x + b`` is computed: the C layer loop where it takes the layer, else step by
    step (the C step kernel, or PyTorch's arithmetic)."""

    def __init__(self, packed_inputs: Tensor, active: list[int], weight_ih: Tensor, bias: Tensor, weight_hh: Tensor,
                 h0: Tensor, c0: Tensor, chunk_size: int):
        batch_size, hidden_size = h0.shape
        self.inputs, self.active, self.bias, self.chunk_size, self.h0 = packed_inputs, active, bias, chunk_size, h0
        self.offsets = list(itertools.accumulate(active, initial=0))
        new = packed_inputs.new_empty
        self.hs = new(self.offsets[-1], hidden_size)
        self.masters = new(self.offsets[-1], 2, hidden_size // chunk_size)
        self.final_h, self.final_c = h0.clone(), c0.clone()
        self.kernels = kernels()
        self.panels = _layer_loop_panels(self.kernels, packed_inputs, weight_hh, h0, c0)
        # (panels are only made with the kernels: testing both narrows the type)
        self.amx_weights = (amx_panels(weight_hh) if self.panels is not None and self.kernels is not None
                            and self.kernels.amx else None)
        self.c0 = c0
        if self.panels is None:  # the step-by-step path's scratch and step function; the C layer loop needs neither
            weight_hh = read_weight(weight_hh, packed_inputs)
            self.cs = new(2, batch_size, hidden_size)  # ping-pong: only the previous c is needed
            self.step: Callable[[Tensor, Tensor, int, Tensor, Tensor, Tensor], None] = _gate_arithmetic
            # the C step kernel at every batch size: one step of 8 / 32 / 256 rows took 29 / 93 / 781 us
            # against PyTorch's 124 / 220 / 934 us (2-core Xeon, 2 threads, benchmarks' quiet machine)
            if self.kernels is not None and self.kernels.supports(packed_inputs, weight_hh, h0, c0):
                self.step, self.c0 = self.kernels.step_forward, c0.contiguous()
        self.weight_hh_t = weight_hh.t()
        self.gate_size = weight_ih.size(0)
        self.input_tiles = (amx_panels(weight_ih) if self.amx_weights is not None and packed_inputs.stride(-1) == 1
                            else None)
        # W_ih kept in float16 (narrow_inference_weights) is read from its tiles at every row count; without
        # tiles (AMX switched off since) from a float32 copy
        narrow_input_weight = narrowed(weight_ih, packed_inputs)
        self.amx_from_rows = 0 if narrow_input_weight else (self.kernels.amx_min_rows if self.kernels is not None else 0)
        self.weight_ih_t = (weight_ih if narrow_input_weight and self.input_tiles is not None
                            else read_weight(weight_ih, packed_inputs)).t()

    def run_block(self, block_start: int, block_end: int) -> None:
        """Steps ``[block_start, block_end)``: their input projection in one product, then the loop."""
        base, end = self.offsets[block_start], self.offsets[block_end]
        projected = self._project(self.inputs[base:end])
        if self.panels is not None and self.kernels is not None:
            # the block's whole time loop in C; it leaves the state of every row still running at
            # the block's end in final_h, final_c, where the next block starts from
            rows = self.active[block_start]
            h_in, c_in = (self.h0, self.c0) if block_start == 0 else (self.final_h[:rows].clone(),
                                                                       self.final_c[:rows].clone())
            self.kernels.layer_inference(
                self.active[block_start:block_end], [offset - base for offset in self.offsets[block_start:block_end]],
                self.chunk_size, projected, self.panels, h_in.contiguous(), c_in.contiguous(),
                self.hs[base:end], self.masters[base:end], self.final_h, self.final_c, self.amx_weights,
            )
        else:
            self._step_by_step(projected, block_start, block_end)

    def _project(self, block_inputs: Tensor) -> Tensor:
        """``W x + b`` of a block's positions (rows, G), in the scratch buffer this thread keeps."""
        block_gates = kept_buffer("gates", block_inputs.size(0) * self.gate_size, self.inputs).view(-1, self.gate_size)
        if self.input_tiles is not None and self.kernels is not None and block_inputs.size(0) >= self.amx_from_rows:
            projected = block_gates.copy_(self.bias.expand_as(block_gates))
            self.kernels.amx_matmul(block_inputs, self.input_tiles, projected)
            return projected
        return torch.addmm(self.bias, block_inputs, self.weight_ih_t, out=block_gates)

    def _step_by_step(self, projected: Tensor, block_start: int, block_end: int) -> None:
        offsets, hs, cs = self.offsets, self.hs, self.cs
        base = offsets[block_start]
        for t in range(block_start, block_end):
            rows = self.active[t]
            if rows == 0:
                continue
            start = offsets[t]
            h_prev = self.h0[:rows] if t == 0 else hs[offsets[t - 1] : offsets[t - 1] + rows]
            c_prev = self.c0[:rows] if t == 0 else cs[(t - 1) % 2, :rows]
            # accumulate U h into this block's projection: no copy of the gates
            gates = projected[start - base : start - base + rows].addmm_(h_prev, self.weight_hh_t)
            self.step(gates, c_prev, self.chunk_size, cs[t % 2, :rows], hs[start : start + rows],
                      self.masters[start : start + rows])
            _hand_over(self.active, t, self.final_h, self.final_c, hs[start : start + rows], cs[t % 2])


_kept_buffers = threading.local()


def kept_buffer(name: str, numel: int, like: Tensor) -> Tensor:
    """A flat scratch tensor of at least ``numel`` values that this thread keeps under ``name``,
    of ``like``'s dtype and device.  Inference's large scratch tensors live in these: a fresh one
    per block is a new mapping whose pages fault in (``onlstm serve`` maps blocks over 128 KiB),
    22,000 page faults for a batch of 32 sentences before they were kept."""
    buffer = getattr(_kept_buffers, name, None)
    if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype or buffer.device != like.device:
        with torch.inference_mode(False):  # an ordinary tensor, which later calls without inference mode may write
            buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        setattr(_kept_buffers, name, buffer)
    return buffer[:numel]


def _layer_loop_panels(fused_kernels: Kernels | None, inputs: Tensor, weight_hh: Tensor, h0: Tensor,
                       c0: Tensor) -> Tensor | None:
    """U's float16 panels for the C layer loop (csrc/layer_inference.c) when it takes this layer,
    else None.

    It takes float32 CPU tensors whose U float16 holds exactly (a release's weights), or U kept in
    float16 (``narrow_inference_weights``).  There it beat the step-by-step path at every batch
    size (parse of 1 / 8 / 64 / 256 dev sentences on the 2-core Xeon, 2 threads: 9.9 / 30.9 / 151 /
    492 ms against 4.2 / 18 / 115 / 423 ms)."""
    if fused_kernels is None or weight_hh.dtype not in (torch.float32, torch.float16) or not all(
        tensor.dtype == torch.float32 and tensor.device.type == "cpu" for tensor in (inputs, h0, c0)
    ) or weight_hh.device.type != "cpu":
        return None
    return half_panels(weight_hh)


def narrowed(weight: Tensor, inputs: Tensor) -> bool:
    """Whether ``weight`` is one ``narrow_inference_weights`` keeps in float16 beside wider inputs."""
    return weight.dtype == torch.float16 and inputs.dtype != torch.float16


def read_weight(weight: Tensor, inputs: Tensor) -> Tensor:
    """``weight`` as the inputs' products read it: a narrowed weight upcast to their dtype (a
    copy), any other weight as it is."""
    return weight.to(inputs.dtype) if narrowed(weight, inputs) else weight


def narrow_inference_weights(cells: Iterable[torch.nn.Module]) -> int:
    """Keep each layer's U, and with the AMX products its W_ih too, as float16 parameters (their
    exact values: a release's weights are float16 values) where inference reads them only through
    the C kernels: U as float16 panels or AMX tiles (csrc/layer_inference.c), W_ih as AMX tiles at
    every row count.  Their float32 copies were 91 MB of the five bundled models (U alone 50 MB),
    read only to make the panels and tiles; float16 halves that.  Any other path (the kernels or
    AMX switched off later, autograd, ``ONLSTMCell.forward``) reads an upcast copy
    (``read_weight``).  Returns the bytes freed; 0 without the kernels, off the CPU, or for weights
    float16 cannot hold (a model in training)."""
    fused_kernels = kernels()
    if fused_kernels is None:
        return 0
    freed = 0
    for cell in cells:
        owners: list[tuple[torch.nn.Module, str]] = [(cell, "weight_hh")]
        if fused_kernels.amx:
            owners.append((cast(torch.nn.Module, cell.input_projection), "weight"))
        for owner, name in owners:
            weight = getattr(owner, name)
            if weight.dtype != torch.float32 or weight.device.type != "cpu" or not float16_values(weight):
                continue
            setattr(owner, name, torch.nn.Parameter(weight.detach().to(torch.float16), requires_grad=False))
            freed += 2 * weight.numel()
    return freed


def _unpack(
    inputs: Tensor, valid: Tensor | None, hs: Tensor, masters: Tensor, final_h: Tensor, final_c: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Packed positions back to (T, B, ...): outputs, final h and c, forget and input distances."""
    steps, batch_size, _ = inputs.shape
    hidden_size = hs.size(1)
    packed_distances = torch.stack(_distances(masters), dim=-1)  # forget, input
    if valid is None:
        outputs = hs.view(steps, batch_size, hidden_size)
        distances = packed_distances.view(steps, batch_size, 2)
    else:
        outputs = inputs.new_zeros(steps, batch_size, hidden_size)
        outputs[valid] = hs
        distances = inputs.new_zeros(steps, batch_size, 2)
        distances[valid] = packed_distances
    return outputs, final_h, final_c, distances[..., 0], distances[..., 1]


def _distances(masters: Tensor) -> tuple[Tensor, Tensor]:
    """(..., 2, n) cumulative master sums -> forget and input distances, each (...)."""
    means = masters.mean(dim=-1)
    return 1.0 - means[..., 1], 1.0 - means[..., 0]


class _FusedRecurrence(torch.autograd.Function):
    """The whole recurrence of one layer as one autograd node, with a hand-written backward.

    Inputs: projected (T, B, G), weight_hh (G, H), h0, c0 (B, H), and the active row counts.
    Outputs: outputs (T, B, H), h_T, c_T (B, H), forget and input distances (T, B).
    """

    @staticmethod
    def forward(ctx, projected, weight_hh, h0, c0, active, chunk_size):
        # One contiguous (H, G) copy per window: MKL's small-batch products h @ U^T and
        # dgates @ U both run faster on it than on the (G, H) parameter (measured ~10-20%).
        weight_t = weight_hh.t().contiguous()
        ctx.set_materialize_grads(False)
        ctx.active = active
        ctx.chunk_size = chunk_size
        ctx.kernels = kernels()
        if ctx.kernels is not None and not ctx.kernels.supports(projected, weight_t, h0, c0):
            ctx.kernels = None
        hs, masters, final_h, final_c, saved = _recurrence_forward(
            projected, weight_t, h0, c0, active, chunk_size, ctx.kernels
        )
        if ctx.kernels is not None:
            ctx.save_for_backward(weight_t, hs, masters, saved["acts"], saved["cs"])
        else:
            ctx.save_for_backward(
                weight_t, hs, masters, saved["acts"], saved["probs"], saved["cs"], saved["forget_hats"],
                saved["input_hats"], saved["tanh_cs"],
            )
        forget_distances, input_distances = _distances(masters)
        return hs[1:], final_h, final_c, forget_distances, input_distances

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_outputs, grad_h, grad_c, grad_forget_distances, grad_input_distances):
        if ctx.kernels is not None:
            return _native_backward(ctx, grad_outputs, grad_h, grad_c, grad_forget_distances, grad_input_distances)
        weight_t, hs, masters, acts, probs, cs, forget_hats, input_hats, tanh_cs = ctx.saved_tensors
        active = ctx.active
        steps, _, gate_size = acts.shape
        hidden_size = weight_t.size(0)
        weight = weight_t.t()
        terms = _step_independent_terms(acts, masters, cs, input_hats, tanh_cs, ctx.chunk_size)
        dc_from_dh, d_out_logit, cell_coefficients = terms.dc_from_dh, terms.d_out_logit, terms.cell_coefficients
        chunk_coefficients, overlap_coefficients = terms.chunk_coefficients, terms.overlap_coefficients
        reverse_cumsum, n_chunks, chunk_size = terms.reverse_cumsum, terms.n_chunks, ctx.chunk_size
        two_n = 2 * n_chunks
        distance_terms = _distance_terms(acts, grad_forget_distances, grad_input_distances, n_chunks)

        d_gates, d_h, d_c = _backward_buffers(acts, active, grad_outputs, grad_h, grad_c, hidden_size)
        for t in range(steps - 1, -1, -1):
            rows = active[t]
            more_outputs = t > 0 and grad_outputs is not None
            if rows:
                d_h_rows = d_h[:rows]
                d_c_total = torch.addcmul(d_c[:rows], d_h_rows, dc_from_dh[t, :rows])
                step_grad = d_gates[t, :rows]
                torch.mul(d_h_rows, d_out_logit[t, :rows], out=step_grad[:, two_n : two_n + hidden_size])
                torch.mul(
                    d_c_total.unsqueeze(1),
                    cell_coefficients[t, :rows],
                    out=step_grad[:, two_n + hidden_size :].view(rows, 3, hidden_size),
                )
                sums = (d_c_total.view(rows, 1, n_chunks, chunk_size) * chunk_coefficients[t, :rows]).sum(-1)
                d_cumulative = torch.addcmul(sums[:, :2], sums[:, 2:], overlap_coefficients[t, :rows])
                if distance_terms is not None:
                    d_cumulative += distance_terms[t, :rows]
                d_probs = torch.matmul(d_cumulative, reverse_cumsum)
                step_grad[:, :two_n] = torch._softmax_backward_data(
                    d_probs, probs[t, :rows], -1, d_probs.dtype
                ).view(rows, two_n)
                torch.mul(d_c_total, forget_hats[t, :rows], out=d_c[:rows])
                if more_outputs:
                    d_h[:rows] = torch.addmm(grad_outputs[t - 1, :rows], step_grad, weight)
                else:
                    d_h[:rows] = step_grad @ weight
            if more_outputs and active[t - 1] > rows:  # rows whose last step is t - 1
                d_h[rows : active[t - 1]] += grad_outputs[t - 1, rows : active[t - 1]]
        # the weight gradient of all steps in one product: sum_t dgates_t^T h_{t-1}
        d_weight = d_gates.view(-1, gate_size).t() @ hs[:-1].reshape(-1, hidden_size)
        return d_gates, d_weight, d_h, d_c, None, None


class _GradientTerms(NamedTuple):
    """What the backward pass needs of the forward's saved tensors that does not depend on the
    incoming gradient, computed for all steps at once."""

    dc_from_dh: Tensor  # [steps, batch, hidden]
    d_out_logit: Tensor  # [steps, batch, hidden]
    cell_coefficients: Tensor  # [steps, batch, 3, hidden]: c_hat, input and forget logits
    chunk_coefficients: Tensor  # [steps, batch, 3, chunks, chunk_size]
    overlap_coefficients: Tensor  # [steps, batch, 2, chunks]
    reverse_cumsum: Tensor  # [chunks, chunks]
    n_chunks: int


def _step_independent_terms(acts: Tensor, masters: Tensor, cs: Tensor, input_hats: Tensor, tanh_cs: Tensor,
                            chunk_size: int) -> _GradientTerms:
    steps, batch_size, _ = acts.shape
    hidden_size = tanh_cs.size(-1)
    n_chunks = hidden_size // chunk_size
    two_n = 2 * n_chunks
    shape4 = (steps, batch_size, n_chunks, chunk_size)
    out_gate = acts[..., two_n : two_n + hidden_size]
    cell_hat = acts[..., two_n + hidden_size : two_n + 2 * hidden_size]
    in_gate = acts[..., two_n + 2 * hidden_size : two_n + 3 * hidden_size]
    forget_gate = acts[..., two_n + 3 * hidden_size :]
    master_forget = masters[..., 1, :]
    master_input = 1.0 - masters[..., 0, :]
    overlap = (master_forget * master_input).unsqueeze(-1)
    c_prev = cs[:-1]
    # dc_t (through h) = dh * o * (1 - tanh(c)^2); d(out-gate logit) = dh * tanh(c) * o * (1 - o)
    dc_from_dh = out_gate * (1.0 - tanh_cs * tanh_cs)
    d_out_logit = tanh_cs * out_gate * (1.0 - out_gate)
    # d(c_hat, i, f logits) = dc * [i^ (1 - c_hat^2), c_hat w i (1 - i), c_prev w f (1 - f)]
    cell_coefficients = torch.stack(
        [
            input_hats * (1.0 - cell_hat * cell_hat),
            (cell_hat * in_gate * (1.0 - in_gate)).view(shape4).mul_(overlap).view(in_gate.shape),
            (c_prev * forget_gate * (1.0 - forget_gate)).view(shape4).mul_(overlap).view(in_gate.shape),
        ],
        dim=2,
    )
    # chunk sums of dc * [-c_hat, c_prev, dw/dc] give d(-i~), d(f~) and d(overlap)
    d_overlap = c_prev * (forget_gate - 1.0) + cell_hat * (in_gate - 1.0)
    chunk_coefficients = torch.stack([-cell_hat, c_prev, d_overlap], dim=2).view(
        steps, batch_size, 3, n_chunks, chunk_size
    )
    # d(-i~) gets -dw * f~, d(f~) gets dw * i~
    overlap_coefficients = torch.stack([-master_forget, master_input], dim=2)
    # cumsum backward is a reverse cumulative sum: one small product with a triangular matrix
    reverse_cumsum = torch.ones(n_chunks, n_chunks, dtype=acts.dtype, device=acts.device).tril_()
    return _GradientTerms(dc_from_dh, d_out_logit, cell_coefficients, chunk_coefficients, overlap_coefficients,
                          reverse_cumsum, n_chunks)


def _distance_terms(acts: Tensor, grad_forget_distances: Tensor | None, grad_input_distances: Tensor | None,
                    n_chunks: int) -> Tensor | None:
    """The distances' gradients as terms of the cumulative gates' (distance = 1 - mean of the master gate)."""
    steps, batch_size, _ = acts.shape
    distance_terms = None
    if grad_forget_distances is not None or grad_input_distances is not None:
        zeros = acts.new_zeros(steps, batch_size)
        distance_terms = torch.stack(
            [
                grad_input_distances if grad_input_distances is not None else zeros,
                grad_forget_distances if grad_forget_distances is not None else zeros,
            ],
            dim=2,
        ).unsqueeze(-1) * (-1.0 / n_chunks)
    return distance_terms


def _backward_buffers(
    acts: Tensor, active: list[int], grad_outputs: Tensor | None, grad_h: Tensor | None, grad_c: Tensor | None,
    hidden_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """d_gates (T, B, G), and d_h, d_c (B, H): the gradient of each row's h and c after the last step.

    Rows past their sequence's end get no gate gradient (zeros; without padding every entry is
    written); a row's final state only meets its output gradients from its last step down.
    """
    steps, batch_size, gate_size = acts.shape
    padded = any(rows < batch_size for rows in active)
    d_gates = acts.new_zeros(steps, batch_size, gate_size) if padded else acts.new_empty(steps, batch_size, gate_size)
    d_h = grad_h.contiguous().clone() if grad_h is not None else acts.new_zeros(batch_size, hidden_size)
    d_c = grad_c.contiguous().clone() if grad_c is not None else acts.new_zeros(batch_size, hidden_size)
    if grad_outputs is not None:
        d_h[: active[-1]] += grad_outputs[-1, : active[-1]]
    return d_gates, d_h, d_c


def _native_backward(ctx, grad_outputs, grad_h, grad_c, grad_forget_distances, grad_input_distances):
    """``_FusedRecurrence.backward`` with one fused kernel per step for the gate derivatives."""
    weight_t, hs, masters, acts, cs = ctx.saved_tensors
    fused_kernels, active, chunk_size = ctx.kernels, ctx.active, ctx.chunk_size
    steps, batch_size, gate_size = acts.shape
    hidden_size = weight_t.size(0)
    weight = weight_t.t()
    # rows past their sequence's end get no gate gradient; without padding every entry is written
    d_gates, d_h, d_c = _backward_buffers(acts, active, grad_outputs, grad_h, grad_c, hidden_size)
    d_input = grad_input_distances.contiguous() if grad_input_distances is not None else None
    d_forget = grad_forget_distances.contiguous() if grad_forget_distances is not None else None
    for t in range(steps - 1, -1, -1):
        rows = active[t]
        more_outputs = t > 0 and grad_outputs is not None
        if rows:
            step_grad = d_gates[t, :rows]
            fused_kernels.step_backward(
                acts[t, :rows], masters[t, :rows], cs[t, :rows], cs[t + 1, :rows], chunk_size, d_h[:rows], d_c[:rows],
                d_input[t, :rows] if d_input is not None else None,
                d_forget[t, :rows] if d_forget is not None else None, step_grad,
            )
            if more_outputs:
                torch.addmm(grad_outputs[t - 1, :rows], step_grad, weight, out=d_h[:rows])
            else:
                torch.mm(step_grad, weight, out=d_h[:rows])
        if more_outputs and active[t - 1] > rows:  # rows whose last step is t - 1
            d_h[rows : active[t - 1]] += grad_outputs[t - 1, rows : active[t - 1]]
    # the weight gradient of all steps in one product: sum_t dgates_t^T h_{t-1}
    d_weight = d_gates.view(-1, gate_size).t() @ hs[:-1].reshape(-1, hidden_size)
    return d_gates, d_weight, d_h, d_c, None, None


def fused_layer_forward(
    inputs: Tensor, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor],
    lengths: Tensor | None, chunk_size: int,
) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
    """One layer over a sequence: ``_FusedRecurrence`` (training) or its forward alone (inference).

    Args and returns as ``ONLSTMCell.forward``: inputs (T, B, input_size), state (h, c) each (B, H),
    lengths (B,) or None; weight_ih (G, input_size), bias (G,), weight_hh (G, H) (DropConnect applied).

    Outputs and distances at padded steps are 0 here (the per-step path carries the state
    into them); either way they are meaningless and callers mask them out.
    """
    steps, batch_size, _ = inputs.shape
    h0, c0 = state
    sorted_lengths, order = None, None
    if lengths is not None:
        length_list = [max(0, min(int(length), steps)) for length in lengths.tolist()]
        if any(length < steps for length in length_list):
            # the recurrence computes on the prefix of rows still running: longest first
            order = sorted(range(batch_size), key=lambda row: -length_list[row])
            sorted_lengths = [length_list[row] for row in order]
            if order == list(range(batch_size)):
                order = None
    if order is not None:
        index = torch.tensor(order, device=inputs.device)
        inputs, h0, c0 = inputs.index_select(1, index), h0.index_select(0, index), c0.index_select(0, index)
    active = _active_rows(sorted_lengths, steps, batch_size)
    valid = None
    if sorted_lengths is not None:
        valid = torch.arange(steps, device=inputs.device).unsqueeze(1) < torch.tensor(
            sorted_lengths, device=inputs.device
        )
    parameters = (weight_ih, bias, weight_hh)
    if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in (inputs, h0, c0, *parameters)):
        if valid is None:
            projected = F.linear(inputs, weight_ih, bias)  # (T, B, G) in one matrix product
        else:
            # only real positions are projected: padding is often half of a batch of sentences
            projected = inputs.new_empty(steps, batch_size, weight_ih.size(0))
            projected[valid] = F.linear(inputs[valid], weight_ih, bias)
        outputs, h, c, forget_distances, input_distances = _FusedRecurrence.apply(
            projected, weight_hh, h0, c0, active, chunk_size
        )
    else:
        outputs, h, c, forget_distances, input_distances = _inference_recurrence(
            inputs, valid, *parameters, h0, c0, active, chunk_size
        )
    if order is not None:
        inverse = torch.empty_like(index)
        inverse[index] = torch.arange(batch_size, device=index.device)
        outputs, h, c = outputs.index_select(1, inverse), h.index_select(0, inverse), c.index_select(0, inverse)
        forget_distances = forget_distances.index_select(1, inverse)
        input_distances = input_distances.index_select(1, inverse)
    return outputs, (h, c), forget_distances, input_distances
