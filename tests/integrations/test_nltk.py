"""The NLTK parser on the local model and on a real service."""

from __future__ import annotations

import pytest
from nltk.parse.api import ParserI
from nltk.tree import Tree

from onlstm.models.parser import Parser
from onlstm.nltk import ONLSTMParser

from ..helpers import serving

SENTENCES = [
    "the cat sat on the mat .".split(),
    "a dog chased the cat into the garden".split(),
    "stocks fell N % in heavy trading on wall street".split(),
]


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


def check_parser_interface(nltk_parser: ONLSTMParser, parser: Parser) -> None:
    assert isinstance(nltk_parser, ParserI)
    expected = [result.tree for result in parser.parse_many(SENTENCES)]
    # parse_sents is lazy and batched: a generator of sentences works, 2 at a time here
    trees = [list(parses) for parses in nltk_parser.parse_sents(sentence for sentence in SENTENCES)]
    assert trees == [[tree] for tree in expected]
    assert list(nltk_parser.parse(SENTENCES[0])) == [expected[0]]
    assert nltk_parser.parse_one(SENTENCES[1]) == expected[1]
    assert nltk_parser.parse_all(SENTENCES[2]) == [expected[2]]
    assert isinstance(expected[0], Tree) and expected[0].leaves() == SENTENCES[0]
    assert next(nltk_parser.raw_parse("The cat sat on the mat.")).leaves() == ["The", "cat", "sat", "on", "the",
                                                                               "mat", "."]
    # options per call, as with the library
    split_trees = [result.tree for result in parser.parse_many(SENTENCES, layer=0, decoder="split")]
    assert [nltk_parser.parse_one(sentence, layer=0, decoder="split") for sentence in SENTENCES] == split_trees
    leaning = [result.tree for result in parser.parse_many(SENTENCES, right_branching_bias=0.7)]
    assert [nltk_parser.parse_one(sentence, right_branching_bias=0.7) for sentence in SENTENCES] == leaning
    with pytest.raises(NotImplementedError, match="no grammar"):
        nltk_parser.grammar()
    with pytest.raises(TypeError, match="use raw_parse"):
        nltk_parser.parse_one("the cat sat")
    with pytest.raises(TypeError, match="unknown option"):
        nltk_parser.parse_one(SENTENCES[0], beam=3)


def test_local_model(tiny_checkpoint, parser):
    nltk_parser = ONLSTMParser(str(tiny_checkpoint), batch_size=2)
    check_parser_interface(nltk_parser, parser)
    results = nltk_parser.parse_results(SENTENCES)
    assert [result.perplexity for result in results] == pytest.approx([result.perplexity for result in parser.parse_many(SENTENCES)])
    with pytest.raises(ValueError, match="layer must be .*between 0 and 2"):
        nltk_parser.parse_one(SENTENCES[0], layer=5)


def test_either_a_service_or_a_local_model():
    with pytest.raises(ValueError, match="not both"):
        ONLSTMParser("model.safetensors", url="http://127.0.0.1:8000")


@pytest.mark.slow
def test_service_mode(tiny_checkpoint, parser, tmp_path):
    with serving(tiny_checkpoint, tmp_path / "server.log") as server:
        nltk_parser = ONLSTMParser(url=server.base, batch_size=2)
        try:
            check_parser_interface(nltk_parser, parser)
            assert repr(nltk_parser) == f"ONLSTMParser({server.base!r})"
        finally:
            nltk_parser.close()
