"""The ON-LSTM cell as the paper writes it: one layer's parameters and equations 9-14.

``ONLSTMCell.step`` is the one readable statement of the equations (see ``models.network.onlstm``
for them in mathematical form).  Run step by step with autograd recording every operation
(``fused = False``) it is the test oracle (``models.network.reference``) and the path autocast
takes; by default a layer runs the same arithmetic through the fused recurrence of
``models.network.recurrence``, which the tests hold to this step.

Shapes: ``B`` batch, ``T`` time, ``H`` hidden size, ``n = H / chunk_size`` chunks,
``G = 4H + 2n`` gate pre-activations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .native import Kernels, kernels
from .recurrence import can_fuse, fused_layer_forward, read_weight


def cumax(x: Tensor, dim: int = -1) -> Tensor:
    """Cumulative softmax: a monotonically non-decreasing vector from 0 to 1."""
    return torch.cumsum(F.softmax(x, dim=dim), dim=dim)


class _DropConnect(torch.autograd.Function):
    """DropConnect with the C kernel's mask (``native.Kernels.dropconnect``), drawn from a seed
    and drawn again from it in the backward rather than kept."""

    @staticmethod
    def forward(ctx, weight: Tensor, keep: float, seed: int, fused_kernels: Kernels) -> Tensor:
        dropped = torch.empty_like(weight)
        fused_kernels.dropconnect(weight, dropped, seed, keep)
        ctx.keep, ctx.seed, ctx.kernels = keep, seed, fused_kernels
        return dropped

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        grad = grad.contiguous()
        result = torch.empty_like(grad)
        ctx.kernels.dropconnect(grad, result, ctx.seed, ctx.keep)
        return result, None, None, None


def drop_connect(weight: Tensor, rate: float, training: bool, native: bool = True) -> Tensor:
    """DropConnect on a weight matrix: each value zeroed with probability ``rate``, the others
    scaled by 1 / (1 - rate).

    On a CPU, with ``native``, the mask comes from a C kernel: the same distribution as
    ``F.dropout``'s from another random stream, about 30x faster (torch's CPU ``bernoulli_``
    was a tenth of a paper-sized training step).  Elsewhere, or with ``native`` False, ``F.dropout``.
    """
    if not training or rate == 0:
        return weight
    fused_kernels = kernels() if native and weight.device.type == "cpu" else None
    if fused_kernels is None or weight.dtype not in fused_kernels.dropconnect_functions or not weight.is_contiguous():
        return F.dropout(weight, rate, True)
    # the seed comes from torch's generator: manual_seed, and a resumed run's restored state, give the same masks
    seed = int(torch.randint(0, 2**63 - 1, (1,)))
    return _DropConnect.apply(weight, 1.0 - rate, seed, fused_kernels)


class ONLSTMCell(nn.Module):
    """One ON-LSTM layer.  The input projection of all time steps is computed in one
    matrix product before the loop over time; only ``U h`` stays inside it.  The loop
    itself runs in ``models.network.recurrence`` unless ``fused`` is False or autocast is on."""

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
        # Run the recurrence through the fused path (same results, see ``models.network.recurrence``);
        # False forces the per-step autograd path: the oracle that benchmarks and tests compare against.
        self.fused = True
        # DropConnect's masks from the C kernel (``drop_connect``); False draws them with F.dropout,
        # the stream the bundled model was trained with (TrainConfig.dropconnect_sampler)
        self.native_dropconnect = True
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in (self.input_projection.weight, self.input_projection.bias, self.weight_hh):
            nn.init.uniform_(parameter, -bound, bound)

    def step(self, projected: Tensor, weight_hh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One time step: equations 9-14.

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
        weight_ih = read_weight(self.input_projection.weight, inputs)
        weight_hh = drop_connect(read_weight(self.weight_hh, inputs), self.dropconnect, self.training, self.native_dropconnect)
        if getattr(self, "fused", True) and can_fuse(inputs, weight_ih, weight_hh, state):
            return fused_layer_forward(inputs, weight_ih, self.input_projection.bias, weight_hh, state, lengths,
                                       self.chunk_size)
        projected = F.linear(inputs, weight_ih, self.input_projection.bias)  # (T, B, G) in one matrix product
        return self._forward_stepwise(projected, weight_hh, state, lengths)

    def _forward_stepwise(
        self, projected: Tensor, weight_hh: Tensor, state: tuple[Tensor, Tensor], lengths: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """Autograd through ``step`` at every time step: the oracle, and the path under autocast."""
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
