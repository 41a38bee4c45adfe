"""The ON-LSTM language model (Shen, Tan, Sordoni and Courville, "Ordered Neurons",
ICLR 2019), with the AWD-LSTM regularisers it is trained with.

Equations 9-14 of the paper, per layer and time step, with ``x`` the input and
``h, c`` the previous state:

    f~ = cumax(W_f~ x + U_f~ h + b_f~)          master forget gate, one value per chunk
    i~ = 1 - cumax(W_i~ x + U_i~ h + b_i~)      master input gate
    w  = f~ * i~                                overlap
    f^ = f * w + (f~ - w)                       f, i, o: the usual sigmoid gates
    i^ = i * w + (i~ - w)
    c  = f^ * c_prev + i^ * tanh(W_c x + U_c h + b_c)
    h  = o * tanh(c)

with ``cumax(x) = cumsum(softmax(x))``.  A master-gate value is shared by the
``chunk_size`` neurons of a chunk.  The syntactic distance of token t in a layer is
``d_t = 1 - mean_k f~_t,k``: a large value means the token closes many high-level
constituents, which ``models.tree`` turns into a binary tree.

Shapes: ``B`` batch, ``T`` time, ``E`` embedding size, ``H`` hidden size, ``V`` vocabulary.
Inputs are batch-first ``(B, T)``; everything returned is batch-first too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class ONLSTMConfig:
    vocab_size: int = 10000  # rows of the (tied) embedding and output matrices
    embedding_size: int = 400  # E; also the last layer's hidden size, for weight tying
    hidden_size: int = 1150  # H of every layer but the last
    n_layers: int = 3  # stacked ON-LSTM layers
    chunk_size: int = 10  # neurons that share one master-gate value; must divide every layer's size
    dropout_output: float = 0.4  # locked dropout on the last layer's output (paper: 0.45)
    dropout_hidden: float = 0.3  # locked dropout between layers
    dropout_input: float = 0.5  # locked dropout on the embeddings fed to the first layer
    dropout_embedding: float = 0.1  # drops whole words from the embedding matrix
    dropconnect: float = 0.45  # DropConnect on the hidden-to-hidden weights, one mask per forward

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise ValueError("n_layers must be at least 1")
        for size in {self.embedding_size, self.hidden_size}:
            if size % self.chunk_size:
                raise ValueError(f"chunk_size {self.chunk_size} must divide the layer size {size}")

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input size, hidden size) of each layer; the last one outputs E for weight tying."""
        sizes = []
        for layer in range(self.n_layers):
            input_size = self.embedding_size if layer == 0 else self.hidden_size
            hidden_size = self.embedding_size if layer == self.n_layers - 1 else self.hidden_size
            sizes.append((input_size, hidden_size))
        return sizes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ONLSTMConfig:
        known = {field.name for field in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config fields {sorted(unknown)}; is the checkpoint from a newer version?")
        return cls(**values)


State = list[tuple[Tensor, Tensor]]  # per layer (h, c), each (B, layer hidden size)


class LMOutput(NamedTuple):
    hidden: Tensor  # (B, T, E) last layer's output after output dropout: feed to ``logits``
    raw_hidden: Tensor  # (B, T, E) the same before dropout (for temporal activation regularisation)
    state: State  # per layer (h, c) after the last valid step of each sequence
    distances: Tensor  # (L, B, T) 1 - mean(master forget gate): the syntactic distances
    input_distances: Tensor  # (L, B, T) mean(master input gate), the input-gate counterpart


def cumax(x: Tensor, dim: int = -1) -> Tensor:
    """Cumulative softmax: a monotonically non-decreasing vector from 0 to 1."""
    return torch.cumsum(F.softmax(x, dim=dim), dim=dim)


class ONLSTMCell(nn.Module):
    """One ON-LSTM layer.  The input projection of all time steps is computed in one
    matrix product before the loop over time; only ``U h`` stays inside it.  The loop
    itself runs in ``_FusedRecurrence`` (see there) unless autocast is on."""

    def __init__(self, input_size: int, hidden_size: int, chunk_size: int, dropconnect: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.chunk_size = chunk_size
        self.n_chunks = hidden_size // chunk_size
        self.dropconnect = dropconnect
        # Rows: [master input (n_chunks), master forget (n_chunks), o, c_hat, i, f (H each)].
        gate_size = 4 * hidden_size + 2 * self.n_chunks
        self.input_projection = nn.Linear(input_size, gate_size)
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size))
        # Run the recurrence through the fused function (same results, see ``_FusedRecurrence``);
        # False forces the per-step autograd path, which benchmarks and tests compare against.
        self.fused = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in (self.input_projection.weight, self.input_projection.bias, self.weight_hh):
            nn.init.uniform_(parameter, -bound, bound)

    def step(self, projected: Tensor, weight_hh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One time step.

        Args:
            projected: (B, G) ``W x + b`` for this step.
            weight_hh: (G, H) hidden-to-hidden weights (with DropConnect applied).
            h, c: (B, H) previous state.
        Returns:
            h, c: (B, H); forget_distance, input_distance: (B,).
        """
        gates = projected + h @ weight_hh.t()
        n = self.n_chunks
        master_input = 1.0 - cumax(gates[:, :n])
        master_forget = cumax(gates[:, n : 2 * n])
        out_gate, cell_hat, in_gate, forget_gate = gates[:, 2 * n :].view(-1, 4 * n, self.chunk_size).chunk(4, dim=1)
        overlap = (master_forget * master_input).unsqueeze(-1)  # (B, n, 1) broadcasts over a chunk
        forget_hat = torch.sigmoid(forget_gate) * overlap + (master_forget.unsqueeze(-1) - overlap)
        input_hat = torch.sigmoid(in_gate) * overlap + (master_input.unsqueeze(-1) - overlap)
        c = forget_hat * c.view(-1, n, self.chunk_size) + input_hat * torch.tanh(cell_hat)
        h = torch.sigmoid(out_gate) * torch.tanh(c)
        forget_distance = 1.0 - master_forget.mean(dim=-1)
        input_distance = master_input.mean(dim=-1)
        return h.reshape(-1, self.hidden_size), c.reshape(-1, self.hidden_size), forget_distance, input_distance

    def forward(
        self, inputs: Tensor, state: tuple[Tensor, Tensor], lengths: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """Run the layer over a sequence.

        Args:
            inputs: (T, B, input_size), time-major.
            state: (h, c), each (B, H).
            lengths: (B,) valid steps per sequence, or None if all are T.  Padded steps
                do not change the state, so the returned state is the one after each
                sequence's last valid step.
        Returns:
            outputs (T, B, H); the new state; forget and input distances, each (T, B).
            Distances at padded steps are meaningless.
        """
        weight_hh = F.dropout(self.weight_hh, self.dropconnect, self.training) if self.dropconnect else self.weight_hh
        if getattr(self, "fused", True) and _can_fuse(inputs, self.input_projection.weight, weight_hh, state):
            return self._forward_fused(inputs, weight_hh, state, lengths)
        projected = self.input_projection(inputs)  # (T, B, G) in one matrix product
        return self._forward_stepwise(projected, weight_hh, state, lengths)

    def _forward_stepwise(
        self, projected: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """Autograd through ``step`` at every time step: the reference path, used under autocast."""
        h, c = state
        outputs, forget_distances, input_distances = [], [], []
        for t in range(projected.size(0)):
            new_h, new_c, forget_distance, input_distance = self.step(projected[t], weight_hh, h, c)
            if lengths is not None:
                valid = (t < lengths).unsqueeze(-1)
                new_h = torch.where(valid, new_h, h)
                new_c = torch.where(valid, new_c, c)
            h, c = new_h, new_c
            outputs.append(h)
            forget_distances.append(forget_distance)
            input_distances.append(input_distance)
        return torch.stack(outputs), (h, c), torch.stack(forget_distances), torch.stack(input_distances)

    def _forward_fused(
        self, inputs: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """The recurrence through ``_FusedRecurrence`` (training) or its forward alone (inference).

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
        parameters = (self.input_projection.weight, self.input_projection.bias, weight_hh)
        if torch.is_grad_enabled() and any(tensor.requires_grad for tensor in (inputs, h0, c0, *parameters)):
            if valid is None:
                projected = self.input_projection(inputs)  # (T, B, G) in one matrix product
            else:
                # only real positions are projected: padding is often half of a batch of sentences
                projected = inputs.new_empty(steps, batch_size, self.input_projection.out_features)
                projected[valid] = self.input_projection(inputs[valid])
            outputs, h, c, forget_distances, input_distances = _FusedRecurrence.apply(
                projected, weight_hh, h0, c0, active, self.chunk_size
            )
        else:
            outputs, h, c, forget_distances, input_distances = _inference_recurrence(
                inputs, valid, *parameters, h0, c0, active, self.chunk_size
            )
        if order is not None:
            inverse = torch.empty_like(index)
            inverse[index] = torch.arange(batch_size, device=index.device)
            outputs, h, c = outputs.index_select(1, inverse), h.index_select(0, inverse), c.index_select(0, inverse)
            forget_distances = forget_distances.index_select(1, inverse)
            input_distances = input_distances.index_select(1, inverse)
        return outputs, (h, c), forget_distances, input_distances


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has one switch for CUDA and one for the CPU
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _can_fuse(inputs: Tensor, weight_ih: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor]) -> bool:
    """The fused path computes in the tensors' own dtype; under autocast (bf16 on a GPU) the
    per-step path lets autocast choose each op's precision, as it was validated."""
    if _autocast_enabled(inputs.device.type):
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
# an efficient matrix product, small enough to bound memory (2048 x G floats: 20 MB at G = 2520).
INFERENCE_BLOCK_ROWS = 2048


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


def _recurrence_forward(
    projected: Tensor, weight_t: Tensor, h0: Tensor, c0: Tensor, active: list[int], chunk_size: int
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
        (0 at padded steps); each row's final h and c (B, H); and the buffers backward needs.
    """
    steps, batch_size, gate_size = projected.shape
    hidden_size = h0.size(1)
    n_chunks = hidden_size // chunk_size
    padded = any(rows < batch_size for rows in active)
    new = projected.new_empty
    # padded entries must be finite: callers multiply them by a zero mask
    hs = projected.new_zeros(steps + 1, batch_size, hidden_size) if padded else new(steps + 1, batch_size, hidden_size)
    hs[0] = h0
    masters = projected.new_zeros(steps, batch_size, 2, n_chunks)
    final_h, final_c = (h0.clone(), c0.clone()) if padded else (None, None)
    saved = dict(
        acts=new(steps, batch_size, gate_size),  # gate activations, in the gates' layout
        probs=new(steps, batch_size, 2, n_chunks),  # softmax of both master gates
        cs=new(steps + 1, batch_size, hidden_size),  # cs[0] = c0, cs[t + 1] = c of step t
        forget_hats=new(steps, batch_size, hidden_size),
        input_hats=new(steps, batch_size, hidden_size),
        tanh_cs=new(steps, batch_size, hidden_size),
    )
    cs = saved["cs"]
    cs[0] = c0
    for t in range(steps):
        rows = active[t]
        if rows == 0:
            continue
        gates = torch.addmm(projected[t, :rows], hs[t, :rows], weight_t, out=saved["acts"][t, :rows])
        step_saved = {name: saved[name][t, :rows] for name in ("probs", "forget_hats", "input_hats", "tanh_cs")}
        _gate_arithmetic(gates, cs[t, :rows], chunk_size, cs[t + 1, :rows], hs[t + 1, :rows], masters[t, :rows],
                         step_saved)
        if padded:  # rows whose sequence ends here hand over their final state
            remaining = active[t + 1] if t + 1 < steps else 0
            if remaining < rows:
                final_h[remaining:rows] = hs[t + 1, remaining:rows]
                final_c[remaining:rows] = cs[t + 1, remaining:rows]
    if not padded:
        final_h, final_c = hs[steps].clone(), cs[steps].clone()
    return hs, masters, final_h, final_c, saved


def _inference_recurrence(
    inputs: Tensor, valid: Tensor | None, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, h0: Tensor,
    c0: Tensor, active: list[int], chunk_size: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The recurrence without autograd, in bounded memory.

    Real positions are packed time-major (step t holds rows ``[0, active[t])``, as in a
    ``PackedSequence``), and their input projection is computed a block of steps at a time
    (about ``INFERENCE_BLOCK_ROWS`` positions: still one efficient matrix product) and accumulated
    into in place, so memory grows with the batch's tokens times H, not times G = 4H + 2n.

    Returns outputs (T, B, H), final h and c (B, H), forget and input distances (T, B);
    0 at padded steps.
    """
    steps, batch_size, _ = inputs.shape
    hidden_size = h0.size(1)
    n_chunks = hidden_size // chunk_size
    packed_inputs = inputs.reshape(steps * batch_size, -1) if valid is None else inputs[valid]
    offsets = [0]
    for rows in active:
        offsets.append(offsets[-1] + rows)
    new = inputs.new_empty
    hs = new(offsets[-1], hidden_size)
    masters = new(offsets[-1], 2, n_chunks)
    cs = new(2, batch_size, hidden_size)  # ping-pong: only the previous c is needed
    final_h, final_c = h0.clone(), c0.clone()
    weight_ih_t, weight_hh_t = weight_ih.t(), weight_hh.t()
    block_steps = max(1, INFERENCE_BLOCK_ROWS // max(1, batch_size))
    for block_start in range(0, steps, block_steps):
        block_end = min(steps, block_start + block_steps)
        base = offsets[block_start]
        projected = torch.addmm(bias, packed_inputs[base : offsets[block_end]], weight_ih_t)
        for t in range(block_start, block_end):
            rows = active[t]
            if rows == 0:
                continue
            start = offsets[t]
            h_prev = h0[:rows] if t == 0 else hs[offsets[t - 1] : offsets[t - 1] + rows]
            c_prev = c0[:rows] if t == 0 else cs[(t - 1) % 2, :rows]
            # accumulate U h into this block's projection: no copy of the gates
            gates = projected[start - base : start - base + rows].addmm_(h_prev, weight_hh_t)
            _gate_arithmetic(gates, c_prev, chunk_size, cs[t % 2, :rows], hs[start : start + rows],
                             masters[start : start + rows])
            remaining = active[t + 1] if t + 1 < steps else 0
            if remaining < rows:  # rows whose sequence ends here hand over their final state
                final_h[remaining:rows] = hs[start + remaining : start + rows]
                final_c[remaining:rows] = cs[t % 2, remaining:rows]
    means = masters.mean(dim=-1)
    packed_distances = torch.stack([1.0 - means[:, 1], 1.0 - means[:, 0]], dim=-1)  # forget, input
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
    """(T, B, 2, n) cumulative master sums -> forget and input distances, each (T, B)."""
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
        hs, masters, final_h, final_c, saved = _recurrence_forward(projected, weight_t, h0, c0, active, chunk_size)
        ctx.set_materialize_grads(False)
        ctx.active = active
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(
            weight_t, hs, masters, saved["acts"], saved["probs"], saved["cs"], saved["forget_hats"],
            saved["input_hats"], saved["tanh_cs"],
        )
        forget_distances, input_distances = _distances(masters)
        return hs[1:], final_h, final_c, forget_distances, input_distances

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_outputs, grad_h, grad_c, grad_forget_distances, grad_input_distances):
        weight_t, hs, masters, acts, probs, cs, forget_hats, input_hats, tanh_cs = ctx.saved_tensors
        active, chunk_size = ctx.active, ctx.chunk_size
        steps, batch_size, gate_size = acts.shape
        hidden_size = weight_t.size(0)
        weight = weight_t.t()
        n_chunks = hidden_size // chunk_size
        two_n = 2 * n_chunks
        shape4 = (steps, batch_size, n_chunks, chunk_size)

        # Everything that does not depend on the incoming gradient, for all steps at once.
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

        # rows past their sequence's end get no gate gradient; without padding every entry is written
        padded = any(rows < batch_size for rows in active)
        d_gates = acts.new_zeros(steps, batch_size, gate_size) if padded else acts.new_empty(steps, batch_size, gate_size)
        # d_h, d_c: gradient of each row's h and c after step t; a row's final state only
        # meets its output gradients from its last step down
        d_h = grad_h.clone() if grad_h is not None else acts.new_zeros(batch_size, hidden_size)
        d_c = grad_c.clone() if grad_c is not None else acts.new_zeros(batch_size, hidden_size)
        if grad_outputs is not None:
            d_h[: active[-1]] += grad_outputs[-1, : active[-1]]
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


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout on (T, B, H): one mask per sequence, the same at every step."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1.0 - p) / (1.0 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """Drop whole words: rows of the embedding matrix, rescaled (Gal and Ghahramani 2016)."""
    weight = embedding.weight
    if training and p > 0.0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1.0 - p) / (1.0 - p)
        weight = weight * mask
    return F.embedding(ids, weight)


class ONLSTMLanguageModel(nn.Module):
    """Embedding -> stacked ON-LSTM -> tied output projection."""

    def __init__(self, config: ONLSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.layers = nn.ModuleList(
            ONLSTMCell(input_size, hidden_size, config.chunk_size, config.dropconnect)
            for input_size, hidden_size in config.layer_sizes()
        )
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    def init_state(self, batch_size: int) -> State:
        weight = self.embedding.weight
        return [
            (weight.new_zeros(batch_size, layer.hidden_size), weight.new_zeros(batch_size, layer.hidden_size))
            for layer in self.layers
        ]

    def forward(self, ids: Tensor, lengths: Tensor | None = None, state: State | None = None) -> LMOutput:
        """Read a batch of token ids.

        Args:
            ids: (B, T) token ids, right-padded when ``lengths`` is given.
            lengths: (B,) number of valid tokens per row, or None.
            state: per-layer (h, c) to continue from; None starts fresh (zeros).
        Returns:
            ``LMOutput``; values at padded positions are meaningless, mask them out.
        """
        config = self.config
        batch_size = ids.size(0)
        if state is None:
            state = self.init_state(batch_size)
        if lengths is not None:
            lengths = lengths.to(ids.device)
        x = embedding_dropout(self.embedding, ids.t(), config.dropout_embedding, self.training)  # (T, B, E)
        x = locked_dropout(x, config.dropout_input, self.training)
        new_state, forget_distances, input_distances = [], [], []
        for index, layer in enumerate(self.layers):
            x, layer_state, forget_distance, input_distance = layer(x, state[index], lengths)
            new_state.append(layer_state)
            forget_distances.append(forget_distance.t())
            input_distances.append(input_distance.t())
            if index < len(self.layers) - 1:
                x = locked_dropout(x, config.dropout_hidden, self.training)
        raw_hidden = x
        hidden = locked_dropout(x, config.dropout_output, self.training)
        return LMOutput(
            hidden=hidden.transpose(0, 1),
            raw_hidden=raw_hidden.transpose(0, 1),
            state=new_state,
            distances=torch.stack(forget_distances),
            input_distances=torch.stack(input_distances),
        )

    def logits(self, hidden: Tensor) -> Tensor:
        """(..., E) -> (..., V) with the output matrix tied to the embedding."""
        return F.linear(hidden, self.embedding.weight, self.output_bias)

    def token_nll(self, hidden: Tensor, targets: Tensor, chunk_tokens: int = 4096) -> Tensor:
        """Negative log-likelihood of each target, (B, T) -> (B, T).

        Computed in slices of ``chunk_tokens`` positions so the (tokens, V) score matrix
        never exists whole: perplexity needs the softmax normaliser, not the probabilities.
        """
        flat_hidden = hidden.reshape(-1, hidden.size(-1))
        flat_targets = targets.reshape(-1)
        pieces = []
        for start in range(0, flat_hidden.size(0), chunk_tokens):
            logits = self.logits(flat_hidden[start : start + chunk_tokens])
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32; fp64 stays
            pieces.append(F.cross_entropy(logits, flat_targets[start : start + chunk_tokens], reduction="none"))
        if not pieces:
            return hidden.new_zeros(targets.shape)
        return torch.cat(pieces).view(targets.shape)


def activation_regularization(output: LMOutput, alpha: float, beta: float) -> Tensor:
    """AR (alpha * mean h^2 on the dropped output) + TAR (beta * mean (h_t - h_{t-1})^2 on the raw output)."""
    loss = output.hidden.new_zeros(())
    if alpha:
        loss = loss + alpha * output.hidden.pow(2).mean()
    if beta and output.raw_hidden.size(1) > 1:
        loss = loss + beta * (output.raw_hidden[:, 1:] - output.raw_hidden[:, :-1]).pow(2).mean()
    return loss


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
