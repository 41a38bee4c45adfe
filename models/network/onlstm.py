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
constituents, which ``models.trees.decoders`` turns into a binary tree.

Where each piece lives: the equations once, readable, in ``models.network.cell`` (``ONLSTMCell.step``);
the fast loop over time with its hand-written backward in ``models.network.recurrence``; the test
oracle (the cell's step run one time step at a time under autograd) in ``models.network.reference``.
This module holds the configuration, the regularisers and the language model around the cells.

Shapes: ``B`` batch, ``T`` time, ``E`` embedding size, ``H`` hidden size, ``V`` vocabulary.
Inputs are batch-first ``(B, T)``; everything returned is batch-first too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cell import ONLSTMCell, cumax
from .loss import inference_nll, softmax_nll
from .recurrence import _active_rows, _distances, autocast_enabled, packed_inference

__all__ = [
    "LMOutput", "ONLSTMCell", "ONLSTMConfig", "ONLSTMLanguageModel", "PackedLMOutput", "State",
    "activation_regularization",
    "count_parameters", "cumax", "embedding_dropout", "locked_dropout",
]


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


class PackedLMOutput(NamedTuple):
    """What inference reads, at the real positions only, packed time-major: position i is the i-th
    True of ``valid`` in (T, B) order (step by step, rows in order within a step)."""

    hidden: Tensor  # (P, E) the last layer's output: feed to ``logits`` / ``token_nll``
    distances: Tensor  # (L, P) the syntactic distances
    valid: Tensor  # (T, B) bool, the real positions
    input_distances: Tensor  # (L, P) mean(master input gate), the input-gate counterpart


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

    def cells(self) -> Iterator[ONLSTMCell]:
        """The layers, typed as the cells they are (``nn.ModuleList`` yields plain modules)."""
        for layer in self.layers:
            yield cast(ONLSTMCell, layer)

    def init_state(self, batch_size: int) -> State:
        weight = self.embedding.weight
        return [
            (weight.new_zeros(batch_size, layer.hidden_size), weight.new_zeros(batch_size, layer.hidden_size))
            for layer in self.cells()
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

    def read_packed(self, ids: Tensor, lengths: Tensor) -> PackedLMOutput:
        """Inference on the real positions alone, from a fresh state.

        Args:
            ids: (B, T) token ids, right-padded.
            lengths: (B,) valid tokens per row.
        Returns:
            ``PackedLMOutput``.  In evaluation mode without autograd, with rows sorted by length
            (longest first, as ``Parser`` batches them), each layer runs on the packed positions
            (``recurrence.packed_inference``) and no (T, B, H) tensor is made: for the 64 longest
            dev sentences that was a third of the service's memory peak.  Otherwise ``forward``,
            packed afterwards.
        """
        steps, batch_size = ids.size(1), ids.size(0)
        lengths = lengths.to(ids.device)
        valid = torch.arange(steps, device=ids.device).unsqueeze(1) < lengths  # (T, B)
        length_list = [max(0, min(int(length), steps)) for length in lengths.tolist()]
        weight = self.embedding.weight
        packable = (
            not self.training and not torch.is_grad_enabled() and length_list == sorted(length_list, reverse=True)
            and not autocast_enabled(weight.device.type)
            # (U in float16 beside float32 embeddings: recurrence.narrow_inference_weights)
            and all(getattr(layer, "fused", True) and layer.weight_hh.dtype in (weight.dtype, torch.float16)
                    for layer in self.layers)
        )
        if not packable:
            output = self(ids, lengths)
            return PackedLMOutput(hidden=output.hidden.transpose(0, 1)[valid],
                                  distances=output.distances.transpose(1, 2)[:, valid], valid=valid,
                                  input_distances=output.input_distances.transpose(1, 2)[:, valid])
        active = _active_rows(length_list, steps, batch_size)
        x = F.embedding(ids.t()[valid], weight)  # (P, E)
        forget_distances, input_distances = [], []
        for layer in self.cells():
            zeros = weight.new_zeros(batch_size, layer.hidden_size)
            x, masters, _, _ = packed_inference(x, active, layer.input_projection.weight, layer.input_projection.bias,
                                                layer.weight_hh, zeros, zeros, layer.chunk_size)
            forget_distance, input_distance = _distances(masters)
            forget_distances.append(forget_distance)
            input_distances.append(input_distance)
        return PackedLMOutput(hidden=x, distances=torch.stack(forget_distances), valid=valid,
                              input_distances=torch.stack(input_distances))

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
            piece_targets = flat_targets[start : start + chunk_tokens]
            piece = (flat_hidden[start : start + chunk_tokens], self.embedding.weight, self.output_bias, piece_targets)
            fused = softmax_nll(*piece)
            if fused is None:
                fused = inference_nll(*piece)
            if fused is not None:  # the C kernels: no (tokens, V) log-probabilities (see models.network.loss)
                pieces.append(fused)
                continue
            logits = self.logits(flat_hidden[start : start + chunk_tokens])
            logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32; fp64 stays
            pieces.append(F.cross_entropy(logits, piece_targets, reduction="none"))
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
