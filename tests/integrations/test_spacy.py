"""The spaCy component on a blank English pipeline with the sentencizer (no model download)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
import spacy
from nltk import Tree
from spacy.tokens import DocBin

from onlstm.models.options import OptionError, ParseOptions
from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import to_ptb_string, tree_to_spans
from onlstm.spacy import NonConstituentError, ONLSTMComponent

from ..helpers import REPO

TEXTS = [
    "The cat sat on the mat. A dog chased the cat into the garden!",
    "Stocks fell 3 % in heavy trading.\n\nThe company said it expects earnings to rise.",
    "Hello.",
]


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


def make_nlp(tiny_checkpoint, **config):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("onlstm", config={"checkpoint": str(tiny_checkpoint), **config})
    return nlp


def words(sentence) -> list[str]:
    return [token.text for token in sentence if not token.is_space]


def test_each_sentence_is_parsed_with_spacys_tokens(tiny_checkpoint, parser):
    nlp = make_nlp(tiny_checkpoint, layer=0, decoder="split", batch_size=2)
    for doc in nlp.pipe(TEXTS, batch_size=2):
        sentences = list(doc.sents)
        expected = parser.parse_many([words(sentence) for sentence in sentences], layer=0, decoder="split")
        for sentence, result in zip(sentences, expected):
            assert sentence._.parse_string == to_ptb_string(result.tree)
            assert [distance for distance in sentence._.distances if distance is not None] == pytest.approx(result.distances)
            assert sentence._.perplexity == pytest.approx(result.perplexity)
            assert (sentence._.unk_share, sentence._.parse_warnings) == (pytest.approx(result.unk_share), result.warnings)
            assert sentence._.parent is None
            # the constituents are the tree's brackets plus the tokens, pre-order, the sentence first
            constituents = list(sentence._.constituents)
            assert constituents[0] == sentence
            offset = sentence.start + (1 if sentence[0].is_space else 0)
            brackets = {(start + offset, end + offset) for start, end in result.spans}
            brackets = {(sentence.start if start == offset else start, end) for start, end in brackets}
            tokens = {(token.i, token.i + 1) for token in sentence if not token.is_space}
            assert {(span.start, span.end) for span in constituents} == (brackets | tokens | {(sentence.start, sentence.end)})
            for constituent in constituents[1:]:
                assert constituent in list(constituent._.parent._.children)
            assert list(sentence._.children)[-1].text == sentence[-1].text  # final punctuation attaches to the root


def test_pipe_and_call_agree_and_pipe_batches_the_sentences(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    component = nlp.get_pipe("onlstm")
    calls = []
    parse = component.parser.parse_many

    def counting_parse(token_lists, *options, **values):
        calls.append(len(token_lists))
        return parse(token_lists, *options, **values)

    component.parser.parse_many = counting_parse
    piped = list(nlp.pipe(TEXTS, batch_size=8))
    assert calls == [5]  # the 5 sentences of the 3 documents in one call
    for doc, text in zip(piped, TEXTS):
        alone = nlp(text)
        assert [sentence._.parse_string for sentence in doc.sents] == [sentence._.parse_string for sentence in alone.sents]


def test_children_parent_and_non_constituents(tiny_checkpoint):
    doc = make_nlp(tiny_checkpoint)("The cat sat on the mat.")
    sentence = next(doc.sents)
    children = list(sentence._.children)
    assert "".join(child.text_with_ws for child in children) == sentence.text_with_ws
    assert sentence._.parse_string == f"(S {' '.join(child._.parse_string for child in children)})"
    first = next(child for child in children if len(child) > 1)
    assert first._.parent == sentence
    assert first._.parse_string.startswith("(X ")
    assert doc[1:2]._.parse_string == "cat" and list(doc[1:2]._.children) == []
    brackets = {(span.start, span.end) for span in sentence._.constituents}
    crossing = next((start, end) for start in range(len(doc)) for end in range(start + 2, len(doc) + 1)
                    if (start, end) not in brackets)
    with pytest.raises(NonConstituentError, match="not a constituent"):
        _ = doc[crossing[0] : crossing[1]]._.parse_string
    assert len(doc[crossing[0] : crossing[1]]._.distances) == crossing[1] - crossing[0]


def test_docs_keep_their_parses_through_docbin(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    doc = nlp(TEXTS[0])
    stored = DocBin(store_user_data=True, docs=[doc]).to_bytes()
    restored = next(DocBin().from_bytes(stored).get_docs(nlp.vocab))
    assert [sentence._.parse_string for sentence in restored.sents] == [sentence._.parse_string for sentence in doc.sents]


def test_errors_name_the_fix(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("onlstm", config={"checkpoint": str(tiny_checkpoint)})
    with pytest.raises(ValueError, match="add_pipe\\('sentencizer'\\)"):
        nlp("The cat sat.")
    with pytest.raises(OptionError, match="layer must be .*between 0 and 2") as beyond:
        make_nlp(tiny_checkpoint, layer=9)
    assert beyond.value.code == "invalid_layer"
    unparsed = spacy.blank("en")("Hi there.")  # a pipeline without the component
    with pytest.raises(ValueError, match="no ON-LSTM parse"):
        _ = unparsed[0:2]._.parse_string


@pytest.mark.slow
def test_add_pipe_works_without_importing_onlstm(tiny_checkpoint):
    # a fresh interpreter that never imports onlstm: spaCy finds the factory through the entry point
    script = (
        "import json, sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('sentencizer')\n"
        "nlp.add_pipe('onlstm', config={'checkpoint': sys.argv[1], 'layer': 2})\n"
        "doc = nlp('The cat sat on the mat. A dog barked.')\n"
        "print(json.dumps([[s._.parse_string, s._.perplexity] for s in doc.sents]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, str(tiny_checkpoint)], capture_output=True, text=True,
                               cwd=REPO.parent, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    parsed = json.loads(completed.stdout)
    expected = Parser.load(tiny_checkpoint).parse([["The", "cat", "sat", "on", "the", "mat", "."],
                                                   ["A", "dog", "barked", "."]], layer=2)
    assert [string for string, _ in parsed] == [to_ptb_string(result.tree) for result in expected]


def test_options_travel_in_the_saved_pipeline_config(tiny_checkpoint, tmp_path):
    nlp = make_nlp(tiny_checkpoint, layer=0, decoder="split", punctuation="attach", batch_size=3)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.config["components"]["onlstm"]["layer"] == 0
    assert loaded.config["components"]["onlstm"]["checkpoint"] == str(tiny_checkpoint)
    assert [sentence._.parse_string for sentence in loaded(TEXTS[0]).sents] == \
        [sentence._.parse_string for sentence in nlp(TEXTS[0]).sents]
    assert loaded.get_pipe("onlstm").options == ParseOptions(layer=0, decoder="split", punctuation="attach")


@pytest.mark.slow
def test_the_wheel_declares_the_factory_entry_point(tmp_path):
    # what `pip install onlstm-parser` gets: the spacy_factories entry point spaCy looks up
    completed = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    wheel = next(tmp_path.glob("onlstm_parser-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        name = next(item for item in archive.namelist() if item.endswith(".dist-info/entry_points.txt"))
        entry_points = archive.read(name).decode()
        assert "onlstm/spacy.py" in archive.namelist()
    assert "[spacy_factories]\nonlstm = onlstm.spacy:make_onlstm_component" in entry_points


@pytest.mark.slow
def test_parses_come_back_from_worker_processes(tiny_checkpoint):
    nlp = make_nlp(tiny_checkpoint)
    in_workers = list(nlp.pipe(TEXTS * 2, n_process=2, batch_size=2))
    here = [nlp(text) for text in TEXTS * 2]
    assert [[sentence._.parse_string for sentence in doc.sents] for doc in in_workers] == \
        [[sentence._.parse_string for sentence in doc.sents] for doc in here]


# --- ParseOptions, binary trees, long sentences ----------------------------------------------


@pytest.mark.parametrize("config, code", [
    ({"layer": -1}, "invalid_layer"), ({"decoder": "cky"}, "invalid_decoder"),
    ({"punctuation": "drop"}, "invalid_punctuation"), ({"right_branching_bias": 101}, "invalid_right_branching_bias"),
    ({"right_branching_bias": -100.5}, "invalid_right_branching_bias"), ({"layer": 3}, "invalid_layer"),
    ({"punctuation": "model"}, "unsupported_option"),  # the tiny model's vocabulary has no punctuation
])
def test_bad_config_options_raise_the_librarys_codes(tiny_checkpoint, config, code):
    with pytest.raises(OptionError) as raised:
        make_nlp(tiny_checkpoint, **config)
    assert raised.value.code == code


def test_the_component_takes_parse_options(tiny_checkpoint, parser):
    component = ONLSTMComponent(checkpoint=str(tiny_checkpoint), options=ParseOptions(layer=0), decoder="split")
    assert component.options == ParseOptions(layer=0, decoder="split")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    doc = component(nlp("The cat sat on the mat."))
    expected = parser.parse(["The", "cat", "sat", "on", "the", "mat", "."], layer=0, decoder="split")
    assert next(doc.sents)._.parse_string == to_ptb_string(expected.tree)
    with pytest.raises(OptionError) as unknown:
        ONLSTMComponent(checkpoint=str(tiny_checkpoint), beam=3)
    assert unknown.value.code == "unknown_option"


PUNCTUATED = [
    '"Stop!" she said (twice).', "(Really?)", "... and then, well -- nothing.", "!?", "Hello", "Yes !",
    "'Quoted' [bracketed] {braced} text ;", '" " ( )',
]


@pytest.mark.parametrize("options", [
    {}, {"layer": 0}, {"layer": 2, "decoder": "split"}, {"right_branching_bias": 100}, {"right_branching_bias": -100},
    {"right_branching_bias": 0, "decoder": "split"}, {"gate": "input", "layer": 0, "decoder": "split"},
])
def test_every_sentence_is_a_binary_tree(tiny_checkpoint, options):
    nlp = make_nlp(tiny_checkpoint, **options)
    for doc in nlp.pipe(PUNCTUATED):
        for sentence in doc.sents:
            kept = words(sentence)
            tree = Tree.fromstring(sentence._.parse_string) if len(kept) > 1 else None
            if tree is None:
                continue
            assert len(tree_to_spans(tree)) == len(kept) - 1, (sentence.text, sentence._.parse_string)
            assert all(len(child) == 2 for child in tree.subtrees()), sentence._.parse_string


@pytest.mark.parametrize("bias", [100, -100, None])
def test_a_sentence_of_1400_tokens(tiny_checkpoint, parser, bias):
    """A right-branching chain (bias 100) is as deep as the sentence is long: no recursion may follow it."""
    nlp = make_nlp(tiny_checkpoint, right_branching_bias=bias)
    text = " ".join(f"the cat sat on mat number {index}" for index in range(200)) + "."  # one sentence
    sentence = next(nlp(text).sents)
    n = len(sentence)
    assert n == 1401
    expected = parser.parse(words(sentence), right_branching_bias=bias)
    assert sentence._.parse_string == to_ptb_string(expected.tree)
    constituents = list(sentence._.constituents)
    assert len(constituents) == 2 * n - 1  # binary: n tokens, n - 1 brackets
    start, end = min(expected.spans, key=lambda span: span[1] - span[0])  # a bracket of two tokens, deep inside
    deepest = sentence[start:end]
    assert deepest._.parent is not None and len(list(deepest._.children)) == 2
    assert deepest._.parse_string.count("(") == 1
    assert len(list(sentence._.children)) == 2


def test_the_model_follows_the_pipeline_language(tmp_path, monkeypatch):
    from ..releases import bundle

    bundle(tmp_path / "weights", monkeypatch, ("en", "es"))
    nlp = spacy.blank("es")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("onlstm")
    sentence = next(nlp("¿Dónde está el gato? El gato duerme.").sents)
    assert sentence._.parse_model == {"name": "onlstm-tiny-es", "version": nlp.get_pipe("onlstm").parser.version,
                                      "language": "es"}
    assert sentence._.parse_string.startswith("(S ")
    english = spacy.blank("en")
    english.add_pipe("sentencizer")
    english.add_pipe("onlstm")
    assert english.get_pipe("onlstm").parser.language == "en"
    assert next(english("The cat sat.").sents)._.parse_model["language"] == "en"
    # the config's language overrides the pipeline's
    overridden = spacy.blank("en")
    overridden.add_pipe("onlstm", config={"language": "es"})
    assert overridden.get_pipe("onlstm").parser.language == "es"


def test_a_pipeline_language_without_a_model_fails_at_add_pipe(tmp_path, monkeypatch):
    from onlstm.models.languages import LanguageError

    from ..releases import bundle

    bundle(tmp_path / "weights", monkeypatch, ("en",))
    for language, code in (("nl", "language_unavailable"), ("de", "language_unavailable"), ("xx", "unknown_language")):
        nlp = spacy.blank(language)  # xx: spaCy's multi-language pipeline, no ISO 639-1 code
        with pytest.raises(LanguageError) as raised:
            nlp.add_pipe("onlstm")
        assert (raised.value.code, raised.value.available) == (code, ("en",))
        assert "nlp.lang" in str(raised.value) and "config={'language'" in str(raised.value)
        assert (f"onlstm train --language {language}" in str(raised.value)) == (code == "language_unavailable")
    with pytest.raises(LanguageError) as raised:  # an explicit language is refused as given
        spacy.blank("en").add_pipe("onlstm", config={"language": "nl"})
    assert raised.value.code == "language_unavailable" and "nlp.lang" not in str(raised.value)
    with pytest.raises(OptionError) as raised:
        spacy.blank("en").add_pipe("onlstm", config={"language": "Dutch"})
    assert raised.value.code == "invalid_language"


def test_a_checkpoint_must_be_of_the_pipeline_language(tiny_checkpoint, tmp_path):
    from onlstm.models.languages import LanguageError

    from ..releases import make_release

    nlp = spacy.blank("es")
    nlp.add_pipe("onlstm", config={"checkpoint": str(make_release(tmp_path, "es"))})
    assert nlp.get_pipe("onlstm").parser.language == "es"
    with pytest.raises(LanguageError) as raised:
        spacy.blank("es").add_pipe("onlstm", config={"checkpoint": str(tiny_checkpoint)})
    assert raised.value.code == "language_mismatch" and raised.value.available == ("en",)


def test_unknown_words_and_the_librarys_warnings_reach_the_span():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("onlstm")
    known, unknown = nlp("The cat sat on the mat. Zyxw qvpt blorf snerk.").sents
    assert known._.unk_share < 0.5 and known._.parse_warnings == []
    assert unknown._.unk_share == 1.0 and "outside the model's vocabulary" in unknown._.parse_warnings[0]
    assert unknown[1:3]._.unk_share == 1.0  # any span reads its sentence's


def test_a_chinese_pipeline_that_cuts_characters_is_warned_and_one_that_cuts_words_parses_as_the_library(caplog):
    words = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    words.add_pipe("sentencizer")
    with caplog.at_level("WARNING", logger="onlstm.spacy"):
        words.add_pipe("onlstm")
    assert not [record for record in caplog.records if record.name == "onlstm.spacy"]
    text = "北京是中国的首都。苹果和香蕉的颜色都是什么？"
    expected = Parser.load(language="zh").parse_text(text)
    sentences = list(words(text).sents)
    assert [sentence._.parse_string for sentence in sentences] == [to_ptb_string(result.tree) for result in expected]
    assert [sentence._.perplexity for sentence in sentences] == pytest.approx([result.perplexity for result in expected])
    characters = spacy.blank("zh")  # spaCy's default Chinese segmenter: one token a character
    characters.add_pipe("sentencizer")
    with caplog.at_level("WARNING", logger="onlstm.spacy"):
        characters.add_pipe("onlstm")
    warned = [record.getMessage() for record in caplog.records if record.name == "onlstm.spacy"]
    assert len(warned) == 1 and '"segmenter": "jieba"' in warned[0]
    assert [token.text for token in characters("北京是首都。")][:2] == ["北", "京"]
