"""The baseline: a plain ON-LSTM written the way the paper's equations read.

Every time step computes ``W x_t + U h_{t-1} + b`` and then equations 9-14 one by one,
master gates expanded to one value per neuron, with autograd recording each operation.
No precomputed input projection, no fusion, no hand-written backward: this is the
implementation the speed-ups in ``benchmarks`` are measured against.

The parameters have the same names and shapes as ``models.onlstm.ONLSTMLanguageModel``
(``load_state_dict`` takes the same weights), and the regularisers draw their random
masks in the same order, so with the same seed both models compute the same losses
and gradients; ``tests/test_fast_onlstm.py`` checks that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from onlstm.models.onlstm import LMOutput, ONLSTMConfig, embedding_dropout, locked_dropout


class PlainONLSTMCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, chunk_size: int, dropconnect: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.chunk_size = chunk_size
        self.n_chunks = hidden_size // chunk_size
        self.dropconnect = dropconnect
        gate_size = 4 * hidden_size + 2 * self.n_chunks
        self.input_projection = nn.Linear(input_size, gate_size)  # W and b of every gate, stacked
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size))  # U of every gate, stacked
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in (self.input_projection.weight, self.input_projection.bias, self.weight_hh):
            nn.init.uniform_(parameter, -bound, bound)

    def step(self, x: Tensor, weight_hh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        n, size, hidden = self.n_chunks, self.chunk_size, self.hidden_size
        gates = self.input_projection(x) + F.linear(h, weight_hh)
        master_input_logits, master_forget_logits = gates[:, :n], gates[:, n : 2 * n]
        o_logits, c_logits, i_logits, f_logits = (gates[:, 2 * n + k * hidden : 2 * n + (k + 1) * hidden] for k in range(4))
        master_forget = torch.cumsum(F.softmax(master_forget_logits, dim=-1), dim=-1)  # f~ = cumax(...)
        master_input = 1.0 - torch.cumsum(F.softmax(master_input_logits, dim=-1), dim=-1)  # i~ = 1 - cumax(...)
        forget_distance = 1.0 - master_forget.mean(dim=-1)
        input_distance = master_input.mean(dim=-1)
        # a master value per chunk, shared by the chunk's neurons
        master_forget = master_forget.repeat_interleave(size, dim=1)
        master_input = master_input.repeat_interleave(size, dim=1)
        forget_gate = torch.sigmoid(f_logits)
        input_gate = torch.sigmoid(i_logits)
        output_gate = torch.sigmoid(o_logits)
        cell_hat = torch.tanh(c_logits)
        overlap = master_forget * master_input  # w = f~ * i~
        forget_hat = forget_gate * overlap + (master_forget - overlap)  # f^ = f w + (f~ - w)
        input_hat = input_gate * overlap + (master_input - overlap)  # i^ = i w + (i~ - w)
        c = forget_hat * c + input_hat * cell_hat  # c = f^ c + i^ c^
        h = output_gate * torch.tanh(c)  # h = o tanh(c)
        return h, c, forget_distance, input_distance

    def forward(
        self, inputs: Tensor, state: tuple[Tensor, Tensor], lengths: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        weight_hh = F.dropout(self.weight_hh, self.dropconnect, self.training) if self.dropconnect else self.weight_hh
        h, c = state
        outputs, forget_distances, input_distances = [], [], []
        for t in range(inputs.size(0)):
            new_h, new_c, forget_distance, input_distance = self.step(inputs[t], weight_hh, h, c)
            if lengths is not None:
                valid = (t < lengths).unsqueeze(-1)
                new_h = torch.where(valid, new_h, h)
                new_c = torch.where(valid, new_c, c)
            h, c = new_h, new_c
            outputs.append(h)
            forget_distances.append(forget_distance)
            input_distances.append(input_distance)
        return torch.stack(outputs), (h, c), torch.stack(forget_distances), torch.stack(input_distances)


class PlainONLSTMLanguageModel(nn.Module):
    """Embedding -> plain ON-LSTM layers -> tied output projection; the fast model's interface."""

    def __init__(self, config: ONLSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.layers = nn.ModuleList(
            PlainONLSTMCell(input_size, hidden_size, config.chunk_size, config.dropconnect)
            for input_size, hidden_size in config.layer_sizes()
        )
        self.output_bias = nn.Parameter(torch.zeros(config.vocab_size))

    def init_state(self, batch_size: int) -> list[tuple[Tensor, Tensor]]:
        weight = self.embedding.weight
        return [
            (weight.new_zeros(batch_size, layer.hidden_size), weight.new_zeros(batch_size, layer.hidden_size))
            for layer in self.layers
        ]

    def forward(self, ids: Tensor, lengths: Tensor | None = None, state: list | None = None) -> LMOutput:
        config = self.config
        state = self.init_state(ids.size(0)) if state is None else state
        x = embedding_dropout(self.embedding, ids.t(), config.dropout_embedding, self.training)
        x = locked_dropout(x, config.dropout_input, self.training)
        new_state, forget_distances, input_distances = [], [], []
        for index, layer in enumerate(self.layers):
            x, layer_state, forget_distance, input_distance = layer(x, state[index], lengths)
            new_state.append(layer_state)
            forget_distances.append(forget_distance.t())
            input_distances.append(input_distance.t())
            if index < len(self.layers) - 1:
                x = locked_dropout(x, config.dropout_hidden, self.training)
        hidden = locked_dropout(x, config.dropout_output, self.training)
        return LMOutput(
            hidden=hidden.transpose(0, 1),
            raw_hidden=x.transpose(0, 1),
            state=new_state,
            distances=torch.stack(forget_distances),
            input_distances=torch.stack(input_distances),
        )

    def logits(self, hidden: Tensor) -> Tensor:
        return F.linear(hidden, self.embedding.weight, self.output_bias)

    def token_nll(self, hidden: Tensor, targets: Tensor) -> Tensor:
        """All logits at once, then the cross-entropy: (B, T) negative log-likelihoods."""
        logits = self.logits(hidden)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none").view(
            targets.shape
        )
