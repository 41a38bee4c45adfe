"""The NLTK parser on the local model and on a real service."""

from __future__ import annotations

import pytest
from nltk.parse.api import ParserI
from nltk.tree import Tree

from onlstm.client import ServiceError
from onlstm.models.options import OptionError, ParseOptions
from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import to_ptb_string, tree_to_spans
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


PUNCTUATED = ['"Stop!" she said (twice).', "(Really?)", "... and then, well -- nothing.", "!?", "Yes !",
              "'Quoted' [bracketed] {braced} text ;", '" " ( )', "-- dash first", "last ,"]
OPTION_GRID = [{}, {"layer": 0}, {"layer": 2, "decoder": "split"}, {"right_branching_bias": 100},
               {"right_branching_bias": -100}, {"right_branching_bias": 0, "decoder": "split"},
               {"gate": "input", "layer": 0, "decoder": "split"}]


def check_binary_trees(nltk_parser: ONLSTMParser) -> None:
    """n tokens, n - 1 brackets, every node with two children: every decoder, layer, prior, punctuation."""
    for values in OPTION_GRID:
        for parses in nltk_parser.raw_parse_sents(PUNCTUATED, **values):
            tree = next(parses)
            if len(tree.leaves()) > 1:
                assert len(tree_to_spans(tree)) == len(tree.leaves()) - 1, (values, str(tree))
                assert all(len(node) == 2 for node in tree.subtrees()), (values, str(tree))


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
    # options are checked here, as the library checks them, before anything is parsed or sent
    for call, code in [(lambda: nltk_parser.parse_one(SENTENCES[0], beam=3), "unknown_option"),
                       (lambda: nltk_parser.parse_sents(SENTENCES, layer=-1), "invalid_layer"),
                       (lambda: nltk_parser.parse_results(SENTENCES, right_branching_bias=101),
                        "invalid_right_branching_bias"),
                       (lambda: ONLSTMParser(parser=parser, decoder="cky"), "invalid_decoder")]:
        with pytest.raises(OptionError) as raised:
            call()
        assert raised.value.code == code
    # a ParseOptions, with keyword values over it, for the parser and for a call
    chosen = ParseOptions(layer=0, decoder="split")
    assert [nltk_parser.parse_one(sentence, options=chosen) for sentence in SENTENCES] == split_trees
    assert [nltk_parser.parse_one(sentence, options=ParseOptions(layer=0), decoder="split")
            for sentence in SENTENCES] == split_trees
    check_binary_trees(nltk_parser)


def test_a_sentence_of_1200_tokens_as_deep_as_it_is_long(parser):
    nltk_parser = ONLSTMParser(parser=parser, options=ParseOptions(right_branching_bias=100))
    tokens = [f"word{index % 40}" for index in range(1200)]
    tree = nltk_parser.parse_one(tokens)
    assert to_ptb_string(tree) == to_ptb_string(parser.parse(tokens, right_branching_bias=100).tree)
    assert len(tree_to_spans(tree)) == 1199


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
            with pytest.raises(ServiceError) as beyond:  # what depends on the service's model: its answer
                nltk_parser.parse_one(SENTENCES[0], layer=5)
            assert (beyond.value.status, beyond.value.code) == (422, "invalid_layer")
            # the service's longest sentence (250 tokens), as deep as it is long, through HTTP and back
            tokens = [f"word{index % 40}" for index in range(250)]
            for bias in (100, -100):
                tree = nltk_parser.parse_one(tokens, right_branching_bias=bias)
                assert to_ptb_string(tree) == to_ptb_string(parser.parse(tokens, right_branching_bias=bias).tree)
        finally:
            nltk_parser.close()


def test_the_language_chooses_the_model_and_the_tokenizer(tmp_path, monkeypatch):
    from onlstm.models.text.sentences import tokenize

    from ..releases import bundle

    bundle(tmp_path / "weights", monkeypatch, ("en", "es"))
    spanish = ONLSTMParser(language="es")
    assert spanish.language == "es" and spanish.parser.language == "es" and spanish.pool.loaded == ("es",)
    tree = next(spanish.raw_parse("¿Dónde está el gato?"))
    assert tree.leaves() == tokenize("¿Dónde está el gato?", language="es") and tree.leaves()[0] == "¿"
    result = spanish.parse_results([["el", "gato"]])[0]
    assert (result.language, result.model["name"]) == ("es", "onlstm-tiny-es")
    # a parser of the bundled languages: English by default, another on its first call
    both = ONLSTMParser()
    assert both.language == "en" and both.pool.loaded == ("en",)
    assert both.parse_results([["el", "gato"]], language="es")[0].language == "es"
    assert both.pool.loaded == ("en", "es")
    assert next(both.raw_parse("¿Dónde está?", language="es")).leaves()[0] == "¿"


def test_a_language_without_a_model_is_refused_when_named(tmp_path, monkeypatch, tiny_checkpoint):
    from onlstm.models.languages import LanguageError

    from ..releases import bundle

    bundle(tmp_path / "weights", monkeypatch, ("en",))
    with pytest.raises(LanguageError) as raised:
        ONLSTMParser(language="nl")
    assert (raised.value.code, raised.value.available) == ("language_unavailable", ("en",))
    english = ONLSTMParser(tiny_checkpoint)
    with pytest.raises(LanguageError) as raised:  # before any sentence is read
        english.parse_sents([["de", "kat"]], language="nl")
    assert raised.value.code == "language_unavailable"
    with pytest.raises(LanguageError) as raised:
        ONLSTMParser(tiny_checkpoint, language="es")
    assert raised.value.code == "language_mismatch"
    with pytest.raises(OptionError) as raised:
        ONLSTMParser(tiny_checkpoint, language="Spanish")
    assert raised.value.code == "invalid_language"
