"""ParseOptions.punctuation_first: the stretches of words between the text's marks are split first,
then each by the distances; off by default, the same result wherever the text has no mark, and the
same option through the library, the HTTP API, onlstm parse and onlstm eval."""

import json
import random

import pytest
import torch
from fastapi.testclient import TestClient

from onlstm.cli import main
from onlstm.models.checkpoint import load_release, save_release
from onlstm.models.options import OptionError, ParseOptions
from onlstm.models.parser import Parser
from onlstm.service.app import create_app
from onlstm.service.settings import load_settings

from ..helpers import TINY_TEXT, make_tiny_model
from ..service.test_app import wait_ready


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


def stretches(tokens: list[str], read: list[int]) -> list[tuple[int, int]]:
    """Word-index ranges between marks (two words or more)."""
    found, start = [], 0
    for position in range(1, len(read) + 1):
        if position == len(read) or read[position] - read[position - 1] > 1:
            if position - start >= 2:
                found.append((start, position))
            start = position
    return found


def test_brackets_break_where_the_text_has_marks(parser):
    """The greedy rule splits first before each word that follows a mark; as always, the word it
    splits at then leads the rest of its span, so the one bracket that may cut into a stretch between
    marks is one that starts at the stretch's second word."""
    rng = random.Random(11)
    for _ in range(60):
        tokens = [rng.choice(["the", "cat", "sat", "on", "mat", "dog", ",", ";", "(", ")"]) for _ in range(rng.randint(3, 14))]
        result = parser.parse(tokens, punctuation_first=True, right_branching_bias=0.0)
        read = parser.model_positions(tokens, "attach")
        words_of = {position: index for index, position in enumerate(read)}
        word_spans = set()
        for start, end in result.spans:  # each bracket as the range of words it holds
            inside = [words_of[position] for position in range(start, end) if position in words_of]
            if len(inside) >= 2:
                word_spans.add((inside[0], inside[-1] + 1))
        for c, d in stretches(tokens, read):
            assert not any(a < c < b < d for a, b in word_spans), (tokens, result.spans)
            assert all(a == c + 1 for a, b in word_spans if c < a < d < b), (tokens, result.spans)
        assert result.options.punctuation_first is True


def test_without_marks_or_by_default_nothing_changes(parser):
    plain = "the cat sat on the mat"
    assert parser.parse(plain, punctuation_first=True).spans == parser.parse(plain).spans
    assert parser.resolve().punctuation_first is False and parser.default_punctuation_first is False
    with pytest.raises(OptionError) as refused:
        ParseOptions(punctuation_first="yes")
    assert refused.value.option == "punctuation_first"


def test_a_release_that_defaults_to_it(tiny_checkpoint, tmp_path):
    """A release may say ``default_punctuation_first``: parses take it unless asked otherwise, and the
    default yields to punctuation='model' (only an explicit True with it is refused)."""
    model, vocab = make_tiny_model(text=[*TINY_TEXT, "the cat , sat .".split()])  # a vocabulary that reads marks
    path = tmp_path / "first.safetensors"
    metadata = {**load_release(tiny_checkpoint).metadata, "default_punctuation_first": True, "punctuation": "model"}
    save_release(path, model, vocab, metadata, dtype=torch.float32)
    parser = Parser.load(path)
    tokens = ["the", "cat", ",", "sat", "on", "the", "mat", ",", "dog", "sat"]
    assert parser.resolve().punctuation_first is False  # the release reads marks as words by default
    chosen = parser.parse(tokens, punctuation="attach", right_branching_bias=0.0)
    assert chosen.options.punctuation_first is True
    assert chosen.spans == parser.parse(tokens, punctuation="attach", punctuation_first=True,
                                        right_branching_bias=0.0).spans
    off = parser.parse(tokens, punctuation="attach", punctuation_first=False, right_branching_bias=0.0)
    assert off.options.punctuation_first is False
    assert parser.parse(tokens, punctuation="model").options.punctuation_first is False
    with pytest.raises(OptionError) as refused:
        parser.parse(tokens, punctuation="model", punctuation_first=True)
    assert (refused.value.option, refused.value.code) == ("punctuation_first", "unsupported_option")


def test_the_option_over_http_and_on_the_command_line(tiny_checkpoint, tmp_path, capsys):
    body = {"tokens": [["the", "cat", ",", "sat", "on", "the", "mat", ",", "dog"]], "right_branching_bias": 0.0}
    with TestClient(create_app(load_settings(checkpoint=str(tiny_checkpoint), batch_max_wait_ms=1))) as client:
        wait_ready(client)
        first = client.post("/parse", json={**body, "punctuation_first": True})
        assert first.status_code == 200
        local = Parser.load(tiny_checkpoint).parse(body["tokens"][0], punctuation_first=True, right_branching_bias=0.0)
        assert [tuple(span) for span in first.json()["results"][0]["spans"]] == local.spans
        wrong = client.post("/parse", json={**body, "punctuation_first": "yes"})
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_request"
    source = tmp_path / "tokens.txt"
    source.write_text(" ".join(body["tokens"][0]) + "\n")
    assert main(["parse", str(source), "--input-format", "tokens", "--checkpoint", str(tiny_checkpoint),
                 "--right-branching-bias", "0", "--punctuation-first"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [tuple(span) for span in record["spans"]] == local.spans


def test_the_front_doors_follow_a_release_that_defaults_to_it(tiny_checkpoint, tmp_path, capsys, shared_data):
    """GET /model says the release's default; a request, `onlstm parse` and `onlstm eval` take it
    unless told otherwise (false, --no-punctuation-first)."""
    release = load_release(tiny_checkpoint)
    path = tmp_path / "on.safetensors"
    save_release(path, release.model, release.vocab, {**release.metadata, "default_punctuation_first": True},
                 dtype=torch.float32)
    tokens = ["the", "cat", ",", "sat", "on", "the", "mat", ",", "dog", "sat"]
    parser = Parser.load(path)
    on = parser.parse(tokens, right_branching_bias=0.0)
    off = parser.parse(tokens, right_branching_bias=0.0, punctuation_first=False)
    assert on.spans != off.spans and on.options.punctuation_first is True

    def spans(answer) -> list:
        assert answer.status_code == 200, answer.text
        return [tuple(span) for span in answer.json()["results"][0]["spans"]]

    with TestClient(create_app(load_settings(checkpoint=str(path), batch_max_wait_ms=1))) as client:
        wait_ready(client)
        assert client.get("/model").json()["default_punctuation_first"] is True
        body = {"tokens": [tokens], "right_branching_bias": 0.0}
        assert spans(client.post("/parse", json=body)) == on.spans
        assert spans(client.post("/parse", json={**body, "punctuation_first": False})) == off.spans
    source = tmp_path / "tokens.txt"
    source.write_text(" ".join(tokens) + "\n")
    for flags, expected in (([], on.spans), (["--no-punctuation-first"], off.spans)):
        assert main(["parse", str(source), "--input-format", "tokens", "--checkpoint", str(path),
                     "--right-branching-bias", "0", *flags]) == 0
        assert [tuple(span) for span in json.loads(capsys.readouterr().out)["spans"]] == expected
    reports = []
    for flags in ([], ["--no-punctuation-first"]):
        assert main(["eval", "--checkpoint", str(path), "--data", str(shared_data), "--decoder", "greedy",
                     "--json", *flags]) == 0
        reports.append(json.loads(capsys.readouterr().out)["reports"]["words"])
    assert [report["default"]["punctuation_first"] for report in reports] == [True, False]
    assert [row["sentence_f1"] for row in reports[0]["model"]] != [row["sentence_f1"] for row in reports[1]["model"]]


def test_eval_scores_it_in_words_mode_only(capsys):
    assert main(["eval", "--punctuation-first", "--mode", "raw", "--baselines-only"]) == 2
    assert "--punctuation-first scores words mode only" in capsys.readouterr().err


def test_spacy_takes_it_as_a_config_key():
    # the bundled Spanish release splits at punctuation first by default; the key turns it off
    spacy = pytest.importorskip("spacy")
    text = "El presidente, que llegó ayer a Madrid, dijo que la economía crece."
    trees = []
    for config in ({"punctuation_first": False}, {}):
        nlp = spacy.blank("es")
        nlp.add_pipe("sentencizer")
        nlp.add_pipe("onlstm", config=config)
        trees.append(list(nlp(text).sents)[0]._.parse_string)
    words = [token.text for token in spacy.blank("es")(text)]
    parser = Parser.load(language="es")
    assert parser.default_punctuation_first
    assert trees[0] != trees[1] and "(X El presidente)" in trees[1]
    assert trees[1] == parser.parse(words).tree.pformat(margin=10**9)
    assert trees[0] == parser.parse(words, punctuation_first=False).tree.pformat(margin=10**9)


def test_follows_mark_names_the_words_after_a_mark_between_two_words():
    from onlstm.models.trees.decoders import follows_mark, punctuation_first_distances

    assert follows_mark([True, False, True, True, False, False, True]) == [False, True, False, True]
    assert follows_mark([False, True, True, False]) == [False, False]  # marks before the first word or after the last
    assert punctuation_first_distances([0.2, 0.5, 0.1], [False, True, False]) == [0.2, 1.5, 0.1]
