"""The fused recurrence computes what the step-by-step oracle computes.

``models.network.reference`` is the oracle: the paper's equations step by step (``ONLSTMCell.step``),
with autograd recording every operation.  Here the fast model (``models.network.recurrence``,
fused recurrence with a hand-written backward) must give
the same outputs, distances, states, losses and gradients, with and without dropout
masks (drawn from the same seeds), with padding, and in its inference path.
"""

import copy
import logging

import pytest
import torch

from onlstm.models.network import native, recurrence
from onlstm.models.network.loss import softmax_nll
from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel, activation_regularization
from onlstm.models.network.recurrence import _FusedRecurrence, can_fuse
from onlstm.models.network.reference import ReferenceONLSTMLanguageModel

SMALL = dict(vocab_size=40, embedding_size=12, hidden_size=20, n_layers=3, chunk_size=4)
NO_DROPOUT = dict(dropout_output=0.0, dropout_hidden=0.0, dropout_input=0.0, dropout_embedding=0.0, dropconnect=0.0)
TIGHT = dict(rtol=1e-10, atol=1e-12)  # float64: the two implementations differ only in rounding


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: with a second intra-op thread on a busy 2-core machine, OpenMP's
    hand-offs made this file 15x slower (2 s -> 30 s) for no gain."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["native", "pytorch"])
def backend(request, monkeypatch):
    """Each fast-path test runs twice: with the fused C kernels, and with the pure PyTorch fallback."""
    if request.param == "pytorch":
        monkeypatch.setenv("ONLSTM_NATIVE", "0")
        assert native.kernels() is None
    elif native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    return request.param


def twin_models(dtype=torch.float64, **overrides):
    """The fast model, the plain one with the same weights, and the fast one on its per-step path."""
    torch.manual_seed(0)
    fast = ONLSTMLanguageModel(ONLSTMConfig(**{**SMALL, **overrides})).to(dtype)
    plain = ReferenceONLSTMLanguageModel(fast.config).to(dtype)
    plain.load_state_dict(fast.state_dict())
    stepwise = copy.deepcopy(fast)
    for layer in stepwise.layers:
        layer.fused = False
    return fast, plain, stepwise


def release_like_twins(**overrides):
    """The fast and the plain model in float32 and evaluation mode, with float16 values for
    weights as a release has (what the C layer loop and the AMX products take)."""
    fast, plain, _ = twin_models(dtype=torch.float32, **overrides, **NO_DROPOUT)
    with torch.no_grad():
        for parameter in fast.parameters():
            parameter.copy_(parameter.half().float())
    plain.load_state_dict(fast.state_dict())
    return fast.eval(), plain.eval()


def run(model, ids, lengths=None, seed=1, train=False, state_seed=None):
    """Forward and backward of a loss that uses every output; returns (output, loss, gradients)."""
    model.train(train)
    model.zero_grad(set_to_none=True)
    state = None
    if state_seed is not None:  # a carried-over state that itself needs a gradient
        generator = torch.Generator().manual_seed(state_seed)
        state = [
            tuple(
                torch.randn(ids.size(0), layer.hidden_size, generator=generator, dtype=torch.float64).requires_grad_()
                for _ in range(2)
            )
            for layer in model.layers
        ]
    torch.manual_seed(seed)  # the same dropout and DropConnect masks in both models
    output = model(ids, lengths, state)
    mask = torch.ones(ids.shape, dtype=torch.float64)
    if lengths is not None:
        mask = (torch.arange(ids.size(1)) < lengths.unsqueeze(1)).double()
    nll = (model.token_nll(output.hidden, ids) * mask).sum() / mask.sum()
    loss = nll + activation_regularization(output, 2.0, 1.0) if lengths is None else nll
    loss = loss + 0.3 * (output.distances * mask).pow(2).sum() + 0.2 * (output.input_distances * mask).sum()
    loss = loss + sum(h.pow(2).sum() + c.sin().sum() for h, c in output.state)
    loss.backward()
    gradients = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
    if state is not None:
        for index, (h, c) in enumerate(state):
            gradients[f"h0.{index}"], gradients[f"c0.{index}"] = h.grad, c.grad
    return output, loss.detach(), gradients


def assert_same(first, second, lengths=None, **tolerance):
    (out_a, loss_a, grads_a), (out_b, loss_b, grads_b) = first, second
    torch.testing.assert_close(loss_a, loss_b, **tolerance)
    rows = range(out_a.hidden.size(0))
    for row in rows:
        valid = out_a.hidden.size(1) if lengths is None else int(lengths[row])
        torch.testing.assert_close(out_a.hidden[row, :valid], out_b.hidden[row, :valid], **tolerance)
        torch.testing.assert_close(out_a.raw_hidden[row, :valid], out_b.raw_hidden[row, :valid], **tolerance)
        torch.testing.assert_close(out_a.distances[:, row, :valid], out_b.distances[:, row, :valid], **tolerance)
        torch.testing.assert_close(
            out_a.input_distances[:, row, :valid], out_b.input_distances[:, row, :valid], **tolerance
        )
    for (h_a, c_a), (h_b, c_b) in zip(out_a.state, out_b.state):
        torch.testing.assert_close(h_a, h_b, **tolerance)
        torch.testing.assert_close(c_a, c_b, **tolerance)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], msg=name, **tolerance)


def test_without_dropout_the_fast_model_equals_the_plain_one(backend):
    fast, plain, stepwise = twin_models(**NO_DROPOUT)
    ids = torch.randint(0, 40, (4, 11))
    reference = run(plain, ids, state_seed=5)
    assert_same(run(fast, ids, state_seed=5), reference, **TIGHT)
    assert_same(run(stepwise, ids, state_seed=5), reference, **TIGHT)


def test_with_dropout_masks_from_the_same_seed_the_models_agree(backend):
    fast, plain, _ = twin_models()  # every regulariser on, at the config's rates
    ids = torch.randint(0, 40, (3, 9))
    for seed in (1, 2):
        assert_same(run(fast, ids, seed=seed, train=True), run(plain, ids, seed=seed, train=True), **TIGHT)


def test_padding_in_any_row_order_gives_the_plain_results(backend):
    fast, plain, _ = twin_models(**NO_DROPOUT)
    ids = torch.randint(0, 40, (5, 9))
    for lengths in (torch.tensor([3, 9, 1, 7, 9]), torch.tensor([9, 7, 7, 2, 1]), torch.tensor([9, 9, 9, 9, 9])):
        assert_same(run(fast, ids, lengths, state_seed=2), run(plain, ids, lengths, state_seed=2), lengths, **TIGHT)


@pytest.mark.parametrize("block_rows", [2048, 3])  # one block of steps, or many (and rows split across them)
def test_inference_path_equals_the_training_path(monkeypatch, block_rows, backend):
    monkeypatch.setattr(recurrence, "INFERENCE_BLOCK_ROWS", block_rows)
    fast, plain, _ = twin_models(**NO_DROPOUT)
    fast.eval()
    plain.eval()
    ids = torch.randint(0, 40, (4, 8))
    for lengths in (torch.tensor([2, 8, 5, 8]), None):
        check_inference(fast, plain, ids, lengths)


def check_inference(fast, plain, ids, lengths):
    with torch.no_grad():
        expected = plain(ids, lengths)
    if lengths is None:
        lengths = torch.full((ids.size(0),), ids.size(1))
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            got = fast(ids, lengths)
        for row, length in enumerate(lengths.tolist()):
            torch.testing.assert_close(got.hidden[row, :length], expected.hidden[row, :length], **TIGHT)
            torch.testing.assert_close(got.distances[:, row, :length], expected.distances[:, row, :length], **TIGHT)
        for (h, c), (h_plain, c_plain) in zip(got.state, expected.state):
            torch.testing.assert_close(h, h_plain, **TIGHT)
            torch.testing.assert_close(c, c_plain, **TIGHT)


@pytest.mark.parametrize("block_rows", [512, 3])
def test_reading_only_the_packed_positions_equals_the_plain_model(monkeypatch, block_rows, backend):
    """``read_packed`` (what the parser calls): rows sorted longest first run packed layer to layer;
    other orders, autograd, training mode and the per-step path go through ``forward``."""
    monkeypatch.setattr(recurrence, "INFERENCE_BLOCK_ROWS", block_rows)
    fast, plain, stepwise = twin_models(**NO_DROPOUT)
    for model in (fast, plain, stepwise):
        model.eval()
    ids = torch.randint(0, 40, (5, 8))
    forward_calls = []
    original_forward = type(fast).forward
    monkeypatch.setattr(type(fast), "forward", lambda self, *args: forward_calls.append(1) or original_forward(self, *args))
    for lengths, model, context, packed in (
        (torch.tensor([8, 8, 5, 2, 1]), fast, torch.inference_mode, True),
        (torch.tensor([8, 8, 5, 2, 1]), fast, torch.no_grad, True),
        (torch.tensor([2, 8, 5, 8, 1]), fast, torch.inference_mode, False),  # not sorted
        (torch.tensor([8, 8, 5, 2, 1]), fast, torch.enable_grad, False),
        (torch.tensor([8, 8, 5, 2, 1]), stepwise, torch.inference_mode, False),
    ):
        with torch.no_grad():
            expected = plain(ids, lengths)
        forward_calls.clear()
        with context():
            got = model.read_packed(ids, lengths)
        assert bool(forward_calls) != packed
        valid = torch.arange(8).unsqueeze(1) < lengths  # (T, B)
        assert torch.equal(got.valid, valid)
        torch.testing.assert_close(got.hidden, expected.hidden.transpose(0, 1)[valid], **TIGHT)
        torch.testing.assert_close(got.distances, expected.distances.transpose(1, 2)[:, valid], **TIGHT)
        torch.testing.assert_close(got.input_distances, expected.input_distances.transpose(1, 2)[:, valid], **TIGHT)


def test_float32_agrees_within_float32_rounding(backend):
    fast, plain, _ = twin_models(dtype=torch.float32)
    ids = torch.randint(0, 40, (4, 12))
    assert_same(run(fast, ids, train=True), run(plain, ids, train=True), rtol=1e-4, atol=1e-6)


def test_hand_written_backward_passes_gradcheck(backend):
    torch.manual_seed(3)
    steps, batch, hidden, chunk = 5, 3, 8, 4
    gate_size = 4 * hidden + 2 * (hidden // chunk)
    inputs = [
        torch.randn(steps, batch, gate_size, dtype=torch.float64, requires_grad=True),
        (0.5 * torch.randn(gate_size, hidden, dtype=torch.float64)).requires_grad_(),
        torch.randn(batch, hidden, dtype=torch.float64, requires_grad=True),
        torch.randn(batch, hidden, dtype=torch.float64, requires_grad=True),
    ]
    for active in ([3, 3, 3, 3, 3], [3, 2, 2, 1, 0]):  # no padding; rows ending at 5, 4, 1
        # fast mode checks random directions of the Jacobian: the full one is too slow for a unit test
        assert torch.autograd.gradcheck(
            lambda *tensors, active=active: _FusedRecurrence.apply(*tensors, active, chunk), inputs, fast_mode=True
        )


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_falls_back_to_the_per_step_path(dtype):
    fast, _, _ = twin_models(dtype=torch.float32, **NO_DROPOUT)
    ids = torch.randint(0, 40, (2, 6))
    layer = fast.layers[0]
    inputs = torch.zeros(6, 2, layer.input_size)
    state = fast.init_state(2)[0]
    assert can_fuse(inputs, layer.input_projection.weight, layer.weight_hh, state)
    with torch.autocast("cpu", dtype=dtype):
        assert not can_fuse(inputs, layer.input_projection.weight, layer.weight_hh, state)
        output = fast(ids)
        fast.token_nll(output.hidden, ids).mean().backward()
    assert all(parameter.grad is not None for parameter in fast.parameters())


def test_when_the_kernels_cannot_be_built_the_pytorch_path_runs(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native, "_loaded", {})  # forget the kernels loaded by earlier tests
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ONLSTM_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.kernels() is None
    assert "pure PyTorch path" in caplog.text
    fast, plain, _ = twin_models(**NO_DROPOUT)
    ids = torch.randint(0, 40, (3, 7))
    lengths = torch.tensor([7, 2, 5])
    assert_same(run(fast, ids, lengths, state_seed=4), run(plain, ids, lengths, state_seed=4), lengths, **TIGHT)


def test_kernels_are_built_once_and_reused(monkeypatch, tmp_path):
    if native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setenv("ONLSTM_CACHE", str(tmp_path))
    assert native.kernels() is not None
    built = list(tmp_path.glob("recurrence_kernels-*.so"))
    assert len(built) == 1
    monkeypatch.setattr(native, "_loaded", {})
    modified = built[0].stat().st_mtime_ns
    assert native.kernels() is not None
    assert built[0].stat().st_mtime_ns == modified  # loaded from the cache, not rebuilt


def test_fused_softmax_nll_equals_cross_entropy_with_its_gradients(backend):
    torch.manual_seed(5)
    hidden = torch.randn(37, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(50, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    upstream = torch.randn(37, dtype=torch.float64)
    fused = softmax_nll(hidden, weight, bias, targets)
    assert (fused is None) == (backend == "pytorch")  # the fallback: the caller's F.cross_entropy
    if fused is None:
        return
    fused_gradients = torch.autograd.grad((fused * upstream).sum(), (hidden, weight, bias))
    expected = torch.nn.functional.cross_entropy(hidden @ weight.t() + bias, targets, reduction="none")
    expected_gradients = torch.autograd.grad((expected * upstream).sum(), (hidden, weight, bias))
    torch.testing.assert_close(fused, expected, **TIGHT)
    for got, want in zip(fused_gradients, expected_gradients):
        torch.testing.assert_close(got, want, **TIGHT)


def test_kernels_split_across_threads_give_the_same_results(monkeypatch):
    if native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    monkeypatch.setattr(native, "STEP_ROWS_PER_THREAD", 2)  # split even these few rows
    fast, plain, _ = twin_models(**NO_DROPOUT)
    ids = torch.randint(0, 40, (7, 6))
    lengths = torch.tensor([6, 6, 5, 3, 6, 1, 4])
    torch.set_num_threads(2)
    try:
        split = run(fast, ids, lengths, state_seed=3)
        fresh = run(fast, ids, lengths)
        with torch.inference_mode():
            inferred = fast(ids, lengths)
    finally:
        torch.set_num_threads(1)
    assert_same(split, run(plain, ids, lengths, state_seed=3), lengths, **TIGHT)
    for row, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(inferred.hidden[row, :length], fresh[0].hidden[row, :length], **TIGHT)
        torch.testing.assert_close(inferred.distances[:, row, :length], fresh[0].distances[:, row, :length], **TIGHT)


@pytest.mark.parametrize("threads, block_rows", [(1, 512), (2, 512), (2, 4)])
def test_the_c_layer_loop_on_float16_weights_equals_the_plain_model(monkeypatch, threads, block_rows):
    """A release's weights are float16 values: inference runs each layer's time loop in C with U
    in float16 (G here is not a multiple of the 32-gate panel, H = 18 not of the 4 sums of a lone row),
    in one call per layer or in blocks of steps, with batches of 1 to 6 rows."""
    if native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    monkeypatch.setattr(recurrence, "INFERENCE_BLOCK_ROWS", block_rows)
    fast, plain = release_like_twins(hidden_size=18, chunk_size=3)
    calls = []
    layer_inference = native.Kernels.layer_inference
    monkeypatch.setattr(native.Kernels, "layer_inference",
                        lambda *args: calls.append(args[5].data_ptr()) or layer_inference(*args))
    torch.set_num_threads(threads)
    try:
        for ids, lengths in ((torch.randint(0, 40, (1, 9)), None),
                             (torch.randint(0, 40, (6, 8)), torch.tensor([3, 8, 1, 8, 5, 2]))):
            with torch.inference_mode():
                got = fast(ids, lengths)
                expected = plain(ids, lengths)
            rows_lengths = [ids.size(1)] * ids.size(0) if lengths is None else lengths.tolist()
            for row, length in enumerate(rows_lengths):
                torch.testing.assert_close(got.hidden[row, :length], expected.hidden[row, :length])
                torch.testing.assert_close(got.distances[:, row, :length], expected.distances[:, row, :length])
            for (h, c), (h_plain, c_plain) in zip(got.state, expected.state):
                torch.testing.assert_close(h, h_plain)
                torch.testing.assert_close(c, c_plain)
    finally:
        torch.set_num_threads(1)
    assert len(set(calls)) == len(fast.layers)
    calls.clear()
    with torch.no_grad():  # weights float16 cannot hold: that layer runs step by step
        fast.layers[0].weight_hh.add_(1e-4)
        with torch.inference_mode():
            fast(torch.randint(0, 40, (2, 5)))
    assert len(set(calls)) == len(fast.layers) - 1


def test_inference_nll_equals_cross_entropy_through_its_kept_buffer(monkeypatch):
    """Without autograd the loss is computed a slice at a time into one buffer the thread keeps
    (made once, outside inference mode, so a later call without it may write to it too)."""
    from onlstm.models.network import loss

    if native.kernels() is None:
        pytest.skip("the fused C kernels could not be built here (no C compiler?)")
    monkeypatch.setattr(loss, "INFERENCE_SCORE_ROWS", 16)  # several slices, the last one short
    monkeypatch.setattr(recurrence, "_kept_buffers", __import__("threading").local())
    torch.manual_seed(6)
    hidden, weight = torch.randn(37, 6, dtype=torch.float64), torch.randn(50, 6, dtype=torch.float64)
    bias, targets = torch.randn(50, dtype=torch.float64), torch.randint(0, 50, (37,))
    expected = torch.nn.functional.cross_entropy(hidden @ weight.t() + bias, targets, reduction="none")
    with torch.inference_mode():
        first = loss.inference_nll(hidden, weight, bias, targets)
    with torch.no_grad():
        second = loss.inference_nll(hidden, weight, bias, targets)
    torch.testing.assert_close(first, expected, **TIGHT)
    torch.testing.assert_close(second, expected, **TIGHT)
    assert recurrence._kept_buffers.scores.shape == (16 * 50,)  # 16 rows of 50 scores
    assert loss.inference_nll(hidden, weight.requires_grad_(), bias, targets) is None  # a gradient is wanted
