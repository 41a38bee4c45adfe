"""The tree-free choice (training.choice): its measures against brute force, and a run on plain
text alone that reads no tree and writes its choice into its release."""

from __future__ import annotations

import json
import random

import pytest

from onlstm.models.checkpoint import load_release
from onlstm.models.trees.decoders import follows_mark, left_branching_spans, random_spans, right_branching_spans
from onlstm.training.choice import PRIOR_STRENGTH, agreement, lean
from onlstm.training.evaluate import predicted_brackets


def brute_force_agreement(first, second, lengths):
    scores = []
    for a, b, n in zip(first, second, lengths):
        inner_a = {span for span in a if span[1] - span[0] >= 2 and span != (0, n)}
        inner_b = {span for span in b if span[1] - span[0] >= 2 and span != (0, n)}
        if inner_a or inner_b:
            scores.append(200.0 * len(inner_a & inner_b) / (len(inner_a) + len(inner_b)))
    return sum(scores) / len(scores) if scores else 0.0


def test_agreement_is_mean_sentence_f1_between_two_sets_of_trees():
    rng = random.Random(5)
    lengths = [rng.randint(1, 25) for _ in range(200)]
    first = [random_spans(n, rng) for n in lengths]
    second = [random_spans(n, rng) for n in lengths]
    assert agreement(first, second, lengths) == pytest.approx(brute_force_agreement(first, second, lengths))
    assert agreement(first, first, [n for n in lengths]) == pytest.approx(100.0)
    assert predicted_brackets(first[0], lengths[0]) <= frozenset(first[0])


def test_lean_is_plus_100_for_right_branching_trees_and_minus_100_for_left():
    lengths = [3, 5, 8, 13]
    assert lean([right_branching_spans(n) for n in lengths], lengths) == pytest.approx(100.0)
    assert lean([left_branching_spans(n) for n in lengths], lengths) == pytest.approx(-100.0)


def marked_dev_sentences(shared_data, count: int = 60) -> list:
    """Dev sentences whose non-words are the marks the parser keeps out of the model (so a parse of
    their tokens reads their words), with marks between words."""
    from onlstm.models.text.vocab import is_punctuation
    from onlstm.training.corpora import ptb_split_files, read_treebank
    from onlstm.training.evaluate import prepare_gold_trees

    golds = prepare_gold_trees(read_treebank(ptb_split_files(shared_data, "dev")))
    return [gold for gold in golds if [is_punctuation(token) for token in gold.tokens] ==
            [not word for word in gold.word_mask] and sum(follows_mark(gold.word_mask))][:count]


def parsed_f1(parser, golds, **options) -> float:
    """Words-only sentence F1 of the parser's trees of the sentences' tokens (marks attached)."""
    from onlstm.training.evaluate import restrict_spans, score_spans

    results = parser.parse_many([list(gold.tokens) for gold in golds], punctuation="attach", **options)
    return score_spans(golds, [restrict_spans(result.spans, gold.word_mask) for result, gold in zip(results, golds)],
                       "words")["sentence_f1"]


def test_the_every_option_oracle_is_what_the_parser_gives_with_those_options(tiny_checkpoint, shared_data):
    from onlstm.models.parser import Parser
    from onlstm.training.choice import ORACLE_STRENGTHS, dev_scores, every_option_oracle

    golds = marked_dev_sentences(shared_data)
    parser = Parser.load(tiny_checkpoint)
    best_f1, best = every_option_oracle(parser, golds)
    assert best["gate"] in ("forget", "input") and best["decoder"] in ("greedy", "split")
    assert best_f1 >= max(dev_scores(parser, golds, ORACLE_STRENGTHS).values())  # forget and greedy only
    assert best_f1 >= max(dev_scores(parser, golds, ORACLE_STRENGTHS, punctuation_first=True).values())
    assert parsed_f1(parser, golds, **best) == pytest.approx(best_f1)


def test_a_choice_of_gate_and_decoder_is_scored_as_the_parser_decodes_with_them(tiny_checkpoint, shared_data,
                                                                                 tmp_path):
    """What a character reader's choice is scored with (the input gate, the split decoder) is what the
    parser gives with those options, and what a release stamped with the choice parses by default."""
    import torch

    from onlstm.models.checkpoint import save_release
    from onlstm.models.parser import Parser
    from onlstm.training.choice import CHARACTER_READER, choice_f1, dev_distances, dev_scores, stamp_choice

    golds = marked_dev_sentences(shared_data)
    parser = Parser.load(tiny_checkpoint)
    gate, decoder = CHARACTER_READER.gate, CHARACTER_READER.decoder
    scores = dev_scores(parser, golds, (0.0, 0.4), dev_distances(parser, golds, gate), True, decoder)
    assert scores != dev_scores(parser, golds, (0.0, 0.4), punctuation_first=True)
    for (layer, strength), f1 in scores.items():
        assert parsed_f1(parser, golds, layer=layer, right_branching_bias=strength, punctuation_first=True,
                         gate=gate, decoder=decoder) == pytest.approx(f1)
    choice = {"layer": 0, "gate": gate, "decoder": decoder, "right_branching_bias": 0.0, "punctuation_first": True}
    assert choice_f1(parser, golds, choice) == pytest.approx(scores[(0, 0.0)])
    release = load_release(tiny_checkpoint)
    copy = tmp_path / "stamped.safetensors"
    save_release(copy, release.model, release.vocab, release.metadata, torch.float32)
    stamp_choice(copy, choice, torch.float32)
    stamped = Parser.load(copy)
    assert (stamped.default_gate, stamped.default_decoder, stamped.default_layer) == (gate, decoder, 0)
    assert parsed_f1(stamped, golds) == pytest.approx(scores[(0, 0.0)])


def test_dev_scores_split_at_the_marks_as_a_parse_does(tiny_checkpoint, shared_data):
    """With punctuation first, the dev scores of the choice and the oracle are what the parser gives
    the sentences with their marks, punctuation first, scored on the words."""
    from onlstm.models.parser import Parser
    from onlstm.training.choice import dev_scores

    golds = marked_dev_sentences(shared_data)
    assert len(golds) >= 30
    parser = Parser.load(tiny_checkpoint)
    scores = dev_scores(parser, golds, (0.0, 0.4), punctuation_first=True)
    assert scores != dev_scores(parser, golds, (0.0, 0.4))
    for (layer, strength), f1 in scores.items():
        assert parsed_f1(parser, golds, layer=layer, right_branching_bias=strength, punctuation_first=True) == \
            pytest.approx(f1)


@pytest.mark.slow
def test_a_run_on_plain_text_reads_no_tree_and_writes_its_choice(tmp_path, shared_data):
    from onlstm.cli.train import main

    text = tmp_path / "mine.txt"
    lines = (shared_data / "abc" / "science.txt").read_text(encoding="latin-1").splitlines()
    text.write_text("\n".join(lines[:3000]), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--text", str(text), "--out", str(out), "--set", "threads=1"]) == 0
    choice = json.loads((out / "choice.json").read_text())
    release = load_release(out / "best.safetensors")
    assert release.metadata["language"] == "en" and release.metadata["train_config"]["dev_corpus"] == ""
    assert release.metadata["default_layer"] == choice["layer"] == 1  # the middle of 3
    assert release.metadata["default_gate"] == choice["gate"] == "forget"
    assert release.metadata["default_decoder"] == choice["decoder"] == "greedy"
    assert release.metadata["default_right_branching_bias"] == choice["right_branching_bias"]
    # words only (punctuation attach): the text's marks are split at first
    assert release.metadata["default_punctuation_first"] is choice["punctuation_first"] is True
    assert abs(choice["right_branching_bias"]) == PRIOR_STRENGTH
    assert (choice["right_branching_bias"] > 0) == (choice["lean_per_layer"][1] >= 0)
    assert choice["compared_with_step"] == 20 and len(choice["agreement_per_layer"]) == 3
    assert not list(out.glob("release-step*.safetensors"))  # kept for the choice only
    assert "oracle_rows" not in choice  # no tree was given
    # scored afterwards on dev trees (python -m onlstm.training.choice): the releases the choice
    # compared are gone, and best.safetensors stands for the chosen checkpoint
    from onlstm.training.choice import report
    from onlstm.training.corpora import ptb_split_files, read_treebank
    from onlstm.training.evaluate import prepare_gold_trees

    golds = prepare_gold_trees(read_treebank(ptb_split_files(shared_data, "dev")))[:40]
    [row] = report([out], golds)["runs"]
    assert row["checkpoint_step"] == choice["checkpoint_step"] and row["layer"] == 1
    assert row["oracle_f1"] >= row["tree_free_f1"] and row["oracle_f1"] >= row["model_alone_f1"]
    assert row["oracle_every_option_f1"] >= row["oracle_at_chosen_checkpoint_f1"]


FRENCH = """Le chat dort sur le tapis du salon. Les enfants jouent dans le jardin après l'école.
« Il fera beau demain », dit la voisine. Mon frère lit un livre sur l'histoire de la ville.
Nous avons mangé du pain et du fromage. La rivière traverse la vallée jusqu'à la mer.
Le train part à huit heures du matin. Elle écrit une lettre à sa grand-mère chaque semaine."""


@pytest.mark.slow
def test_a_language_without_rules_of_its_own_trains_on_plain_text_and_parses_as_itself(tmp_path):
    from onlstm.cli.train import main
    from onlstm.models.languages import LanguageError
    from onlstm.models.parser import Parser
    from onlstm.models.text import split_text

    text = tmp_path / "francais.txt"
    text.write_text("\n".join([FRENCH] * 60), encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--language", "fr", "--text", str(text), "--out", str(out),
                 "--set", "threads=1", "--set", "max_steps=20"]) == 0
    metadata = load_release(out / "best.safetensors").metadata
    assert metadata["language"] == "fr" and "fr" in metadata["tokenizer"]
    assert "oracle_rows" not in json.loads((out / "choice.json").read_text())
    parser = Parser.load(out / "best.safetensors", language="fr")
    sentence = "« Bonjour », dit-il. Le train part à huit heures."
    results = parser.parse_text(sentence)
    assert [result.tokens for result in results] == [list(part.tokens) for part in split_text(sentence, language="fr")]
    assert results[1].tokens == ["Le", "train", "part", "à", "huit", "heures", "."] and results[1].unk_share == 0.0
    assert {result.language for result in results} == {"fr"} and not results[1].warnings
    with pytest.raises(LanguageError) as raised:
        Parser.load(out / "best.safetensors", language="de")
    assert raised.value.code == "language_mismatch"


@pytest.mark.slow
def test_text_tokenized_by_ones_own_segmenter_trains_and_records_it(tmp_path):
    from onlstm.cli.train import main
    from onlstm.models.parser import Parser

    words = tmp_path / "words.txt"
    words.write_text("猫 が 寝て いる 。\n犬 が 庭 で 遊んで いる 。\n私 は 本 を 読む 。\n" * 300, encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--language", "ja", "--tokens", str(words), "--out", str(out),
                 "--set", "threads=1", "--set", "max_steps=20"]) == 0
    metadata = load_release(out / "best.safetensors").metadata
    assert metadata["language"] == "ja" and metadata["tokenizer"].startswith("the user's own: tokens as given")
    assert metadata["training_data"] == [f"tokens:{words}"] and metadata["training_unk_share"] == 0.0
    parser = Parser.load(out / "best.safetensors")
    result = parser.parse(["猫", "が", "庭", "で", "寝て", "いる", "。"])
    assert result.language == "ja" and result.unk_share == 0.0 and len(result.spans) == 6
    assert parser.tokens_as_given and not result.warnings
    cut_here = parser.parse("猫が庭で寝ている。")  # text: the package's rules cut it a character at a time
    assert "give the sentence as tokens cut the same way" in cut_here.warnings[-1]


@pytest.mark.slow
def test_a_character_reader_trains_on_plain_chinese_text_and_parses_words(tmp_path):
    from onlstm.cli.train import main
    from onlstm.models.parser import Parser
    from onlstm.models.text.units import characters

    text = tmp_path / "zh.txt"
    text.write_text("北京是中国的首都。我们在学校学习中文，GDP增长了3%。\n苹果和香蕉的颜色都是什么？\n" * 300,
                    encoding="utf-8")
    out = tmp_path / "run"
    assert main(["--preset", "tiny", "--language", "zh", "--unit", "characters", "--text", str(text),
                 "--out", str(out), "--set", "threads=1", "--set", "max_steps=20"]) == 0
    metadata = load_release(out / "best.safetensors").metadata
    assert metadata["unit"] == "characters" and metadata["tokenizer"].startswith("characters of the words (jieba")
    assert "tokens" not in metadata and metadata["training_unk_share"] == 0.0
    choice = json.loads((out / "choice.json").read_text())
    assert choice["unit"] == "characters" and choice["layer"] == metadata["default_layer"] == 0  # the bottom one
    assert choice["gate"] == metadata["default_gate"] == "input"
    assert choice["decoder"] == metadata["default_decoder"] == "split"
    assert choice["right_branching_bias"] == metadata["default_right_branching_bias"] == 0.0  # no prior
    parser = Parser.load(out / "best.safetensors", language="zh")
    vocabulary = set(parser.vocab.itos)
    assert {"gdp", "北", "京"} <= vocabulary and "北京" not in vocabulary and "。" not in vocabulary
    [result] = parser.parse_text("北京是中国的首都。")
    assert result.tokens == ["北京", "是", "中国", "的", "首都", "。"]  # jieba's words: the tree is over words
    assert result.tree.leaves() == result.tokens and result.unk_share == 0.0 and not result.warnings
    assert parser.units_read(result.tokens[:-1]) == len([c for word in result.tokens[:-1] for c in characters(word)])
