"""The Parser facade on a tiny model: fields, batching independence, punctuation."""

import math

import pytest
import torch

from onlstm.models.parser import Parser
from onlstm.models.tree import tree_to_spans


@pytest.fixture(scope="module")
def parser(tiny_checkpoint):
    return Parser.load(tiny_checkpoint)


SENTENCES = [
    "The cat sat on the mat .",
    "Stocks fell 5 % in heavy trading , analysts said .",
    "A dog chased the cat into the garden",
    "Hello",
    "the company said it expects earnings to rise sharply next year , and the market agreed",
]


def test_fields(parser):
    results = parser.parse(SENTENCES)
    assert len(results) == len(SENTENCES)
    for sentence, result in zip(SENTENCES, results):
        assert result.tokens == sentence.split()
        assert len(result.distances) == len(result.tokens)
        assert len(result.layer_distances) == parser.n_layers
        assert result.layer == parser.default_layer == 1
        assert math.isfinite(result.perplexity) and result.perplexity > 0
        assert result.tree.leaves() == result.tokens
        assert set(tree_to_spans(result.tree)) == set(result.spans)
        n = len(result.tokens)
        assert len(result.spans) == n - 1
        if n >= 2:
            assert (0, n) in result.spans


def test_batched_equals_alone(parser):
    together = parser.parse(SENTENCES, batch_size=64)
    for sentence, batched in zip(SENTENCES, together):
        alone = parser.parse([sentence], batch_size=1)[0]
        assert alone.spans == batched.spans
        assert alone.perplexity == pytest.approx(batched.perplexity, rel=1e-5)
        for a, b in zip(alone.layer_distances, batched.layer_distances):
            assert a == pytest.approx(b, abs=1e-6)


def test_perplexity_is_the_mean_nll_of_words_and_eos(parser):
    tokens = ["the", "cat", "sat"]
    result = parser.parse([tokens], punctuation="model")[0]
    ids = parser.vocab.encode(tokens)
    inputs = torch.tensor([[parser.vocab.eos_id] + ids])
    targets = torch.tensor([ids + [parser.vocab.eos_id]])
    with torch.no_grad():
        output = parser.model(inputs)
        log_probs = torch.log_softmax(parser.model.logits(output.hidden), -1)
    nll = -log_probs[0, torch.arange(4), targets[0]].mean().item()
    assert result.perplexity == pytest.approx(math.exp(nll), rel=1e-5)


def test_attach_mode_keeps_the_words_only_tree(parser):
    """Punctuation removed before the model and reattached: restricting the tree to
    the words gives exactly the tree of the words alone."""
    from onlstm.training.evaluate import restrict_spans

    sentence = ["``", "Stocks", "fell", ",", "analysts", "said", ".", "''"]
    words = [token for token in sentence if token not in {"``", ",", ".", "''"}]
    with_punctuation = parser.parse([sentence], punctuation="attach")[0]
    alone = parser.parse([words], punctuation="attach")[0]
    keep = [token in words for token in sentence]
    assert set(restrict_spans(with_punctuation.spans, keep)) == set(alone.spans)
    # sentence-final punctuation hangs from the root
    assert (0, len(sentence) - 2) in with_punctuation.spans or (1, len(sentence) - 2) in with_punctuation.spans


def test_options_are_validated(parser):
    with pytest.raises(ValueError, match="layer"):
        parser.parse(["a b"], layer=5)
    with pytest.raises(ValueError, match="decoder"):
        parser.parse(["a b"], decoder="cky")
    with pytest.raises(ValueError, match="no tokens"):
        parser.parse([""])
    split = parser.parse(["the cat sat on the mat"], decoder="split", layer=0)[0]
    assert split.layer == 0 and len(split.spans) == 5


def test_only_punctuation(parser):
    result = parser.parse([["!", "?"]])[0]
    assert result.tokens == ["!", "?"] and result.spans == [(0, 2)]
    assert math.isfinite(result.perplexity)
