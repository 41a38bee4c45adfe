"""A release that reads characters (``unit`` ``characters``, the Chinese model since 0.14): trees
over words, each word's distance the one at its first character, perplexity per character; checked
against the same weights read as a word release over the characters (the oracle: nothing expanded)."""

from __future__ import annotations

import math

import pytest
import torch

from onlstm.models.checkpoint import CheckpointError, save_release
from onlstm.models.parser import Parser
from onlstm.models.text.units import MAX_WORD_UNITS, characters, expand, read_units
from onlstm.training.evaluate import read_perplexity

from ..helpers import make_tiny_model

CHARACTER_TEXT = [list("北京是中国的首都"), list("苹果和香蕉的颜色都是什么"), list("计算机的鼠标有什么用途")]


def _release(folder, unit: str):
    model, vocab = make_tiny_model(text=CHARACTER_TEXT)
    path = folder / f"tiny-{unit}.safetensors"
    save_release(path, model, vocab, {"name": f"onlstm-tiny-{unit}", "default_layer": 1, "default_decoder": "greedy",
                                      "punctuation": "attach", "language": "zh", "unit": unit}, dtype=torch.float32)
    return Parser.load(path)


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("units")
    return _release(folder, "characters"), _release(folder, "words")


def test_a_word_is_read_as_its_characters_and_a_latin_or_digit_run_as_one():
    assert characters("GDP增長3.5%") == ["GDP", "增", "長", "3", ".", "5", "%"]
    assert characters("ＧＤＰ１２") == ["ＧＤＰ１２"]
    assert read_units("3.5%") == ["3", "5", "%"]  # marks inside a word are not read (% is a word, as in the PTB)
    assert read_units("。") == ["。"]  # a word that is nothing else is read as it is
    assert read_units("\u200b") == ["\u200b"]  # nor is a word of invisible characters lost
    assert characters("首\u200b都") == ["首", "都"]
    assert expand(["北京", "是", "首都"]) == (["北", "京", "是", "首", "都"], [0, 2, 3])


def test_word_distances_are_those_at_each_words_first_character(readers):
    character_reader, word_reader = readers
    words = ["北京", "是", "中国", "的", "首都"]
    result = character_reader.parse(words)
    units, starts = expand(words)
    [oracle] = word_reader.parse_many([units], layer=1)  # the same weights, each character given as a word
    assert result.tokens == words and result.tree.leaves() == words
    for layer in range(3):
        assert result.layer_distances[layer] == pytest.approx([oracle.layer_distances[layer][i] for i in starts],
                                                              rel=1e-5)
    assert result.perplexity == pytest.approx(oracle.perplexity, rel=1e-5)  # per character, <eos> included
    assert character_reader.units_read(words) == len(units) == 8


def test_a_batch_gives_each_sentence_what_it_gets_alone(readers):
    character_reader, _ = readers
    sentences = [["北京", "是", "中国", "的", "首都"], ["苹果", "和", "香蕉"], ["计算机", "的", "鼠标", "有", "什么", "用途"]]
    together = character_reader.parse_many(sentences, batch_size=3)
    for sentence, result in zip(sentences, together):
        alone = character_reader.parse(sentence)
        assert result.spans == alone.spans
        assert result.distances == pytest.approx(alone.distances, rel=1e-5, abs=1e-6)


def test_marks_are_attached_and_the_words_tree_is_the_one_without_them(readers):
    character_reader, _ = readers
    plain = character_reader.parse(["北京", "是", "中国", "的", "首都"], punctuation_first=False)
    marked = character_reader.parse(["北京", "是", "中国", "的", "首都", "。"], punctuation_first=False)
    assert marked.tree.leaves()[-1] == "。"
    assert marked.distances[:5] == pytest.approx(plain.distances, rel=1e-5)
    assert marked.perplexity == pytest.approx(plain.perplexity, rel=1e-5)


def test_a_word_with_an_unknown_character_is_unknown(readers):
    character_reader, _ = readers
    result = character_reader.parse(["北京", "是", "魔都"])  # 魔 is outside the vocabulary
    assert result.unk_share == pytest.approx(1 / 3)
    assert character_reader.knows("首都") and not character_reader.knows("魔都")


def test_held_out_perplexity_is_per_character(readers):
    character_reader, word_reader = readers
    sentences = [["北京", "是", "中国", "的", "首都"], ["苹果", "和", "香蕉"]]
    read = read_perplexity(character_reader, sentences, "attach")
    oracle = read_perplexity(word_reader, [expand(sentence)[0] for sentence in sentences], "attach")
    assert read["tokens"] == oracle["tokens"] == 8 + 1 + 5 + 1
    assert read["perplexity"] == pytest.approx(oracle["perplexity"], rel=1e-5)
    assert math.isfinite(read["perplexity"])


def test_a_release_of_units_this_version_does_not_know_is_refused(tmp_path):
    model, vocab = make_tiny_model(text=CHARACTER_TEXT)
    path = tmp_path / "syllables.safetensors"
    save_release(path, model, vocab, {"name": "x", "language": "zh", "unit": "syllables"}, dtype=torch.float32)
    with pytest.raises(CheckpointError) as raised:
        Parser.load(path)
    assert raised.value.code == "unknown_unit" and "upgrade onlstm" in str(raised.value)


def test_a_token_longer_than_any_word_is_read_in_part_and_said(readers):
    character_reader, word_reader = readers
    giant = "北京" * 500  # a token of 1,000 characters: one sentence of 250 would be 250,000 steps
    assert read_units(giant) == ["北", "京"] * (MAX_WORD_UNITS // 2)
    result = character_reader.parse(["是", giant, "首都"])
    assert character_reader.units_read(["是", giant, "首都"]) == 1 + MAX_WORD_UNITS + 2
    assert result.tree.leaves() == ["是", giant, "首都"]
    [warning] = result.warnings
    assert warning.startswith(f"1 token(s) of more than {MAX_WORD_UNITS} characters (the first begins '北京北京")
    latin = character_reader.parse(["北京", "是", "GDP" * 100])  # a run of Latin letters is one unit (<unk> here)
    assert character_reader.units_read(latin.tokens) == 4 and "characters" not in " ".join(latin.warnings)
    # a word reader reads it as one word (unknown): no word of it is cut
    assert "characters" not in " ".join(word_reader.parse(["是", giant]).warnings)
