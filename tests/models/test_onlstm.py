"""The ON-LSTM: shapes, gate properties, the paper's equations, padding independence."""

import pytest
import torch
import torch.nn.functional as F

from onlstm.models.network.onlstm import (
    LMOutput,
    ONLSTMCell,
    ONLSTMConfig,
    ONLSTMLanguageModel,
    activation_regularization,
    cumax,
)

SMALL = dict(vocab_size=40, embedding_size=12, hidden_size=20, n_layers=3, chunk_size=4)


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return ONLSTMLanguageModel(ONLSTMConfig(**{**SMALL, **overrides}))


def test_cumax_is_monotone_from_zero_to_one():
    x = torch.randn(7, 13)
    y = cumax(x)
    assert torch.all(y[:, 1:] >= y[:, :-1] - 1e-7)
    assert torch.all(y > 0)
    torch.testing.assert_close(y[:, -1], torch.ones(7))


def test_output_shapes():
    model = small_model().eval()
    ids = torch.randint(0, 40, (3, 9))
    output = model(ids)
    assert isinstance(output, LMOutput)
    assert output.hidden.shape == (3, 9, 12)
    assert output.raw_hidden.shape == (3, 9, 12)
    assert output.distances.shape == (3, 3, 9)  # (layers, batch, time)
    assert output.input_distances.shape == (3, 3, 9)
    assert [tuple(h.shape) for h, _ in output.state] == [(3, 20), (3, 20), (3, 12)]
    assert model.logits(output.hidden).shape == (3, 9, 40)
    assert torch.all((output.distances >= 0) & (output.distances <= 1))


def plain_cell_step(cell: ONLSTMCell, x, h, c):
    """Equations 9-14 of the paper, written neuron by neuron from the raw parameters."""
    n, size = cell.n_chunks, cell.chunk_size
    gates = x @ cell.input_projection.weight.t() + cell.input_projection.bias + h @ cell.weight_hh.t()
    master_input = 1 - torch.cumsum(F.softmax(gates[:, :n], -1), -1)
    master_forget = torch.cumsum(F.softmax(gates[:, n : 2 * n], -1), -1)
    rest = gates[:, 2 * n :]
    hidden = cell.hidden_size
    o, c_hat, i, f = (rest[:, k * hidden : (k + 1) * hidden] for k in range(4))
    # chunk granularity: neuron j shares the master value of chunk j // chunk_size
    master_forget_full = master_forget.repeat_interleave(size, dim=1)
    master_input_full = master_input.repeat_interleave(size, dim=1)
    w = master_forget_full * master_input_full
    f_hat = torch.sigmoid(f) * w + (master_forget_full - w)
    i_hat = torch.sigmoid(i) * w + (master_input_full - w)
    c_new = f_hat * c + i_hat * torch.tanh(c_hat)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new, 1 - master_forget.mean(-1), master_input.mean(-1)


def test_cell_follows_the_paper_equations():
    torch.manual_seed(0)
    cell = ONLSTMCell(input_size=6, hidden_size=12, chunk_size=3)
    x, h, c = torch.randn(5, 6), torch.randn(5, 12), torch.randn(5, 12)
    projected = cell.input_projection(x)
    ours = cell.step(projected, cell.weight_hh, h, c)
    theirs = plain_cell_step(cell, x, h, c)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_master_forget_gate_is_monotone_over_chunks():
    torch.manual_seed(1)
    cell = ONLSTMCell(input_size=6, hidden_size=12, chunk_size=3)
    gates = cell.input_projection(torch.randn(4, 6))
    forget = cumax(gates[:, cell.n_chunks : 2 * cell.n_chunks])
    master_input = 1 - cumax(gates[:, : cell.n_chunks])
    assert torch.all(forget[:, 1:] >= forget[:, :-1] - 1e-7)
    assert torch.all(master_input[:, 1:] <= master_input[:, :-1] + 1e-7)


def test_padding_never_changes_a_sentence():
    model = small_model().eval()
    torch.manual_seed(3)
    lengths = torch.tensor([9, 5, 1, 7])
    ids = torch.randint(0, 40, (4, 9))
    with torch.no_grad():
        batched = model(ids, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone = model(ids[row : row + 1, :length])
            torch.testing.assert_close(batched.distances[:, row, :length], alone.distances[:, 0], atol=1e-6, rtol=0)
            torch.testing.assert_close(batched.hidden[row, :length], alone.hidden[0], atol=1e-6, rtol=0)
            for (h_batch, c_batch), (h_alone, c_alone) in zip(batched.state, alone.state):
                torch.testing.assert_close(h_batch[row], h_alone[0], atol=1e-6, rtol=0)
                torch.testing.assert_close(c_batch[row], c_alone[0], atol=1e-6, rtol=0)


def test_state_carries_over_windows():
    model = small_model().eval()
    ids = torch.randint(0, 40, (2, 10))
    with torch.no_grad():
        whole = model(ids)
        first = model(ids[:, :4])
        second = model(ids[:, 4:], state=first.state)
    torch.testing.assert_close(second.distances, whole.distances[:, :, 4:], atol=1e-6, rtol=0)


def test_eval_is_deterministic_and_train_is_stochastic():
    model = small_model(dropout_output=0.5, dropconnect=0.5, dropout_input=0.3)
    ids = torch.randint(0, 40, (2, 6))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).hidden, model(ids).hidden)
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(ids).hidden, model(ids).hidden)


def test_token_nll_matches_full_cross_entropy_and_backpropagates():
    model = small_model()
    ids = torch.randint(0, 40, (3, 8))
    output = model(ids[:, :-1])
    nll = model.token_nll(output.hidden, ids[:, 1:], chunk_tokens=5)
    expected = F.cross_entropy(model.logits(output.hidden).reshape(-1, 40), ids[:, 1:].reshape(-1), reduction="none")
    torch.testing.assert_close(nll.reshape(-1), expected)
    (nll.mean() + activation_regularization(output, 2.0, 1.0)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_tied_embeddings():
    model = small_model()
    assert sum(1 for name, _ in model.named_parameters() if "embedding" in name) == 1


def test_config_validation_and_round_trip():
    with pytest.raises(ValueError, match="chunk_size"):
        ONLSTMConfig(embedding_size=10, hidden_size=20, chunk_size=3)
    config = ONLSTMConfig(**SMALL)
    assert ONLSTMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown model config"):
        ONLSTMConfig.from_dict({**config.to_dict(), "colour": "red"})
