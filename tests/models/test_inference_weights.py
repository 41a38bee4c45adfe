"""A Parser keeps the weights the C kernels read (U; with AMX, W_ih too) as float16 parameters
(``recurrence.narrow_inference_weights``): the same values in half the memory.  These tests hold
the narrowed model to the float32 one on every path that can still read the weights: the C layer
loop, the AMX products (now at every row count for W_ih), AMX switched off afterwards, the pure
PyTorch path, and ``forward`` outside inference."""

import pytest
import torch

from onlstm.models.network import native, recurrence
from onlstm.models.network.recurrence import narrow_inference_weights

from .test_amx import LENGTHS
from .test_fast_onlstm import release_like_twins


@pytest.fixture
def fused_kernels():
    loaded = native.kernels()
    if loaded is None:
        pytest.skip("the C kernels could not be built here")
    return loaded


def read(model, ids, lengths):
    """``read_packed``'s outputs (the Parser's path), rows longest first as the Parser sorts them."""
    order = torch.argsort(lengths, descending=True, stable=True)
    with torch.inference_mode():
        output = model.read_packed(ids[order], lengths[order])
        nll = model.token_nll(output.hidden, torch.zeros(output.hidden.size(0), dtype=torch.long))
    return output, nll


def test_the_kernels_weights_are_kept_in_float16_and_the_rest_stays_float32(fused_kernels):
    narrowed, _ = release_like_twins(hidden_size=40, chunk_size=4)
    float32_bytes = sum(cell.weight_hh.numel() for cell in narrowed.cells()) * 4
    if fused_kernels.amx:
        float32_bytes += sum(cell.input_projection.weight.numel() for cell in narrowed.cells()) * 4
    assert narrow_inference_weights(narrowed.cells()) == float32_bytes // 2
    for cell in narrowed.cells():
        assert cell.weight_hh.dtype == torch.float16
        assert cell.input_projection.weight.dtype == (torch.float16 if fused_kernels.amx else torch.float32)
        assert cell.input_projection.bias.dtype == torch.float32
    assert narrowed.embedding.weight.dtype == torch.float32
    assert narrow_inference_weights(narrowed.cells()) == 0  # nothing left to narrow


def test_weights_float16_cannot_hold_stay_float32(fused_kernels):
    """A model in training has weights that are not float16 values: narrowing would change them."""
    model, _ = release_like_twins(hidden_size=40, chunk_size=4)
    with torch.no_grad():
        for cell in model.cells():
            cell.weight_hh.add_(1e-7)
    narrow_inference_weights(model.cells())
    assert all(cell.weight_hh.dtype == torch.float32 for cell in model.cells())


@pytest.mark.parametrize("path", ["kernels", "without_amx", "pure_pytorch"])
@pytest.mark.parametrize("block_rows", [4, 4096])
def test_the_narrowed_model_reads_as_the_float32_model(fused_kernels, monkeypatch, path, block_rows):
    """Rows that end at different steps, blocks of steps with fewer rows than AMX_MIN_ROWS (W_ih's
    tiles now serve them too), and the paths that read an upcast copy."""
    monkeypatch.setattr(recurrence, "INFERENCE_BLOCK_ROWS", block_rows)
    narrowed, plain = release_like_twins(hidden_size=40, chunk_size=4)
    narrow_inference_weights(narrowed.cells())
    torch.manual_seed(block_rows)
    ids = torch.randint(0, 40, (20, 9))
    context = {"kernels": None, "without_amx": native.without_amx, "pure_pytorch": native.disabled}[path]
    expected, expected_nll = read(plain, ids, LENGTHS)
    if context is None:
        got, nll = read(narrowed, ids, LENGTHS)
    else:
        with context():
            got, nll = read(narrowed, ids, LENGTHS)
    torch.testing.assert_close(got.hidden, expected.hidden)
    torch.testing.assert_close(got.distances, expected.distances)
    torch.testing.assert_close(nll, expected_nll)


def test_forward_outside_inference_reads_the_narrowed_weights_upcast(fused_kernels):
    """``forward`` with autograd on (scoring a loss, say) takes the upcast weights."""
    narrowed, plain = release_like_twins(hidden_size=40, chunk_size=4)
    narrow_inference_weights(narrowed.cells())
    ids = torch.randint(0, 40, (4, 9))
    got, expected = narrowed(ids), plain(ids)
    torch.testing.assert_close(got.hidden, expected.hidden)
    torch.testing.assert_close(got.distances, expected.distances)


def test_the_bundled_model_parses_as_its_float32_self(fused_kernels, monkeypatch, shared_data):
    """80 dev sentences in one batch and one at a time (short sentences: W_ih's tiles below 16
    rows): the same trees, distances and perplexities as the Parser without narrowing."""
    from onlstm import Parser
    from onlstm.models import parser as parser_module
    from onlstm.training.corpora import ptb_split_files, read_treebank, tree_tokens

    sentences = [tree_tokens(tree) for tree in read_treebank(ptb_split_files(shared_data / "ptb-sample", "dev"))][:80]
    narrowed = Parser.load()
    assert narrowed.model.layers[0].weight_hh.dtype == torch.float16
    monkeypatch.setattr(parser_module, "narrow_inference_weights", lambda cells: 0)
    float32 = Parser.load()
    assert float32.model.layers[0].weight_hh.dtype == torch.float32
    for batch_size in (80, 1):
        got = narrowed.parse_many(sentences, batch_size=batch_size)
        want = float32.parse_many(sentences, batch_size=batch_size)
        assert [result.spans for result in got] == [result.spans for result in want]
        for mine, theirs in zip(got, want):
            assert mine.perplexity == pytest.approx(theirs.perplexity, rel=1e-5)
            assert mine.distances == pytest.approx(theirs.distances, abs=1e-5)


def test_a_parser_of_a_model_in_training_leaves_its_parameters_alone(fused_kernels):
    """Training's dev evaluation wraps the model it trains in ``Parser(Release(...))``: weights
    that happen to be float16 values (a run started from a release) stay the optimizer's float32
    parameters; only ``Parser.load`` narrows the weights of the release it loaded."""
    from onlstm import Parser
    from onlstm.models.checkpoint import Release
    from onlstm.models.text.vocab import Vocab

    model, _ = release_like_twins(hidden_size=40, chunk_size=4)
    parameters = list(model.parameters())
    vocab = Vocab.build([[f"w{index}" for index in range(38)]], 40)
    parser = Parser(Release(model=model, vocab=vocab, metadata={"language": "en"}))
    parser.parse([["w1", "w2", "w3"]])
    assert list(model.parameters()) == parameters
    assert all(parameter.dtype == torch.float32 and parameter.requires_grad for parameter in model.parameters())
