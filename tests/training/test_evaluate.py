"""Tests of training.evaluate and onlstm eval: gold preparation, scoring, restriction, baselines, EVALB files, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from nltk import Tree

from onlstm.cli import evaluate as evaluate_command
from onlstm.models.text.vocab import Vocab
from onlstm.training import evaluate
from onlstm.training.evaluate import (
    GoldSentence,
    evaluate_baselines,
    evaluate_model,
    f1_score,
    format_table,
    prepare_gold,
    prepare_gold_trees,
    restrict_spans,
    score_brackets,
    score_spans,
    strip_function_tags,
)

from ..helpers import REPO, data_dir

DATA = data_dir()
PTB = DATA if DATA.name == "ptb-sample" else DATA / "ptb-sample"
needs_data = pytest.mark.skipif(
    not (PTB / "wsj_0140.mrg").is_file(), reason=f"PTB sample not found at {PTB} (set ONLSTM_DATA)"
)

CAT = "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"
# traces, punctuation, a unary chain (SBAR -> S over "he won"), function tags and indices
JOHN = (
    "(S (NP-SBJ-1 (NP (NNP John)) (, ,) (SBAR (WHNP-1 (WP who)) (S (NP-SBJ (-NONE- *T*-1)) (VP (VBD left)))) (, ,))"
    " (VP (VBD said) (SBAR (-NONE- 0) (S (NP-SBJ=2 (PRP he)) (VP (VBD won))))) (. .))"
)


def gold(text: str) -> GoldSentence:
    return prepare_gold(Tree.fromstring(text))


# --- gold preparation -------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, expected",
    [
        ("NP-SBJ", "NP"),
        ("NP-SBJ-1", "NP"),
        ("NP=2", "NP"),
        ("NP-SBJ=1", "NP"),
        ("PP-LOC-CLR", "PP"),
        ("WHNP-1", "WHNP"),
        ("SBAR", "SBAR"),
        ("PRP$", "PRP$"),
        ("-NONE-", "-NONE-"),
        ("-LRB-", "-LRB-"),
        ("-RRB-", "-RRB-"),
        ("", ""),
    ],
)
def test_strip_function_tags(label, expected):
    assert strip_function_tags(label) == expected


def test_prepare_gold_simple():
    sentence = gold(CAT)
    assert sentence.words == ("The", "cat", "sat", "on", "the", "mat")
    assert sentence.tokens == ("The", "cat", "sat", "on", "the", "mat", ".")
    assert sentence.word_mask == (True,) * 6 + (False,)
    assert sentence.brackets == {(0, 2), (2, 6), (3, 6), (4, 6)}  # the whole sentence is not a bracket
    assert sentence.labelled == {(0, 2, "NP"), (2, 6, "VP"), (3, 6, "PP"), (4, 6, "NP")}


def test_prepare_gold_traces_punctuation_unary_chains():
    sentence = gold(JOHN)
    assert sentence.words == ("John", "who", "left", "said", "he", "won")
    assert sentence.tokens == ("John", ",", "who", "left", ",", "said", "he", "won", ".")
    assert sentence.word_mask == (True, False, True, True, False, True, True, True, False)
    # (2, 3) "left" is a single word; SBAR -> S over "he won" collapses into one bracket
    assert sentence.brackets == {(0, 3), (1, 3), (3, 6), (4, 6)}
    assert sentence.labelled == {(0, 3, "NP"), (1, 3, "SBAR"), (3, 6, "VP"), (4, 6, "SBAR"), (4, 6, "S")}


def test_prepare_gold_unescapes_brackets_and_drops_symbols():
    sentence = gold(
        "(S (NP (NN profit)) (PRN (-LRB- -LRB-) (NP (CD 5) (NN %)) (-RRB- -RRB-)) (VP (VBD rose) (NP ($ $) (CD 3))))"
    )
    assert sentence.tokens == ("profit", "(", "5", "%", ")", "rose", "$", "3")
    assert sentence.words == ("profit", "5", "%", "rose", "3")
    # PRN keeps two words (1, 3); VP "rose 3" (3, 5); NP "$ 3" is one word
    assert sentence.brackets == {(1, 3), (3, 5)}


def test_prepare_gold_trees_skips_sentences_without_words():
    trees = [Tree.fromstring("(X (. .) (-NONE- *))"), Tree.fromstring(CAT)]
    assert [g.n_words for g in prepare_gold_trees(trees)] == [6]


# --- F1 ---------------------------------------------------------------------------------


def test_f1_conventions():
    assert f1_score(0, 0, 0) == 1.0  # no gold, no prediction
    assert f1_score(0, 2, 0) == 0.0  # no gold, some prediction: recall 1, precision 0
    assert f1_score(0, 0, 3) == 0.0
    assert f1_score(3, 4, 4) == pytest.approx(0.75)
    assert f1_score(1, 2, 4) == pytest.approx(2 * 0.5 * 0.25 / 0.75)


def test_short_sentences_score_one():
    one = gold("(S (NN Hello) (. !))")
    two = gold("(S (NNS Dogs) (VBP bark) (. .))")
    assert one.brackets == frozenset() and two.brackets == frozenset()
    right = [evaluate.right_branching_spans(len(g.words)) for g in (one, two)]
    report = score_spans([one, two], right)
    assert report["sentence_f1"] == pytest.approx(100.0)
    assert report["corpus_f1"] == pytest.approx(100.0)
    assert report["n_wsj10"] == 2


def test_flat_gold_with_a_predicted_bracket_scores_zero():
    flat = gold("(NP (DT a) (JJ big) (NN dog))")
    assert flat.brackets == frozenset()
    assert score_spans([flat], [[(0, 3), (1, 3)]])["sentence_f1"] == pytest.approx(0.0)
    assert score_spans([flat], [[(0, 3)]])["sentence_f1"] == pytest.approx(100.0)


def test_exact_f1_on_a_hand_computed_example():
    sentence = gold(CAT)
    right = [(0, 6), (1, 6), (2, 6), (3, 6), (4, 6)]  # 4 brackets, 3 match
    left = [(0, 6), (0, 5), (0, 4), (0, 3), (0, 2)]  # 4 brackets, 1 matches
    assert score_spans([sentence], [right])["sentence_f1"] == pytest.approx(75.0)
    assert score_spans([sentence], [left])["sentence_f1"] == pytest.approx(25.0)
    recall = score_spans([sentence], [right])["label_recall"]
    assert recall == {"NP": pytest.approx(50.0), "VP": 100.0, "PP": 100.0, "SBAR": None, "ADJP": None}


def test_corpus_f1_differs_from_sentence_f1():
    long, short = gold(CAT), gold("(S (NNS Dogs) (VBP bark))")
    report = score_spans([long, short], [[(0, 6), (1, 6), (2, 6), (3, 6), (4, 6)], [(0, 2)]])
    assert report["sentence_f1"] == pytest.approx((75.0 + 100.0) / 2)
    assert report["corpus_f1"] == pytest.approx(75.0)
    assert report["n_sentences"] == 2


def test_duplicate_gold_spans_count_once():
    sentence = gold(JOHN)
    # a prediction containing every gold span scores 1 although (4, 6) carries two labels
    predicted = frozenset(sentence.brackets)
    report = score_brackets([sentence], [predicted])
    assert report["sentence_f1"] == pytest.approx(100.0)
    assert report["label_recall"]["SBAR"] == pytest.approx(100.0)


def test_wsj10_uses_word_counts():
    long_words = " ".join(f"(NN w{i})" for i in range(11))
    eleven = gold(f"(S (NP {long_words}) (. .))")
    ten_with_punct = gold("(S " + " ".join(f"(NN w{i})" for i in range(10)) + " (, ,) (. .))")
    report = score_spans([eleven, ten_with_punct], [[(0, 11)], [(0, 10)]])
    assert report["n_wsj10"] == 1
    assert report["wsj10_sentence_f1"] == pytest.approx(100.0)


# --- restriction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spans, mask, expected",
    [
        # "a b c ." right-branching: the last node [c .] becomes the word c
        ([(0, 4), (1, 4), (2, 4)], [1, 1, 1, 0], [(0, 3), (1, 3)]),
        # "a b c ." left-branching: the root has one child left and collapses into it
        ([(0, 4), (0, 3), (0, 2)], [1, 1, 1, 0], [(0, 3), (0, 2)]),
        # "a , b c" as [[a ,] [b c]]: punctuation in the middle
        ([(0, 4), (0, 2), (2, 4)], [1, 0, 1, 1], [(0, 3), (1, 3)]),
        # [a [[, b] c]]: a node with punctuation and one word becomes that word
        ([(0, 4), (1, 4), (1, 3)], [1, 0, 1, 1], [(0, 3), (1, 3)]),
        # [[a b] [, .]]: a node with punctuation only vanishes
        ([(0, 4), (0, 2), (2, 4)], [1, 1, 0, 0], [(0, 2)]),
        # " a b " quotes around: [" [a [b "]]]
        ([(0, 4), (1, 4), (2, 4)], [0, 1, 1, 0], [(0, 2)]),
        # nothing to delete: unchanged (pre-order)
        ([(0, 3), (1, 3)], [1, 1, 1], [(0, 3), (1, 3)]),
        ([], [1], []),
    ],
)
def test_restrict_spans(spans, mask, expected):
    assert restrict_spans(spans, [bool(keep) for keep in mask]) == expected


def test_restrict_spans_rejects_out_of_range():
    with pytest.raises(ValueError):
        restrict_spans([(0, 5)], [True] * 4)


def test_raw_mode_restricts_before_scoring():
    sentence = gold(JOHN)  # tokens: John , who left , said he won .
    # a tree over the 9 tokens that, restricted, is exactly the gold tree
    spans = [(0, 9), (0, 8), (0, 5), (1, 5), (2, 4), (5, 8), (6, 8)]
    assert restrict_spans(spans, sentence.word_mask) == [(0, 6), (0, 3), (1, 3), (3, 6), (4, 6)]
    assert score_spans([sentence], [spans], mode="raw")["sentence_f1"] == pytest.approx(100.0)


# --- baselines --------------------------------------------------------------------------


def test_balanced_gives_the_left_half_the_larger_share():
    assert evaluate.balanced_spans(5) == [(0, 5), (0, 3), (0, 2), (3, 5)]
    assert evaluate.balanced_spans(4) == [(0, 4), (0, 2), (2, 4)]
    assert evaluate.balanced_spans(1) == []


@pytest.fixture(scope="module")
def dev_golds():
    from onlstm.training.corpora import ptb_split_files, read_treebank

    return prepare_gold_trees(read_treebank(ptb_split_files(PTB, "dev")))


def _by_name(rows):
    return {row["name"].split(" (")[0]: row for row in rows}


@needs_data
def test_dev_baselines_match_the_data_readme(dev_golds):
    assert len(dev_golds) == 328
    rows = _by_name(evaluate_baselines(dev_golds, "words"))
    expected = {  # shared/data/README.md
        "left-branching": (9.7, 6.6, 30.2),
        "right-branching": (39.3, 35.4, 62.7),
        "balanced": (22.1, 17.9, 46.4),
    }
    for name, (sentence, corpus, wsj10) in expected.items():
        row = rows[name]
        assert row["n_wsj10"] == 37
        assert round(row["sentence_f1"], 1) == sentence, name
        assert round(row["corpus_f1"], 1) == corpus, name
        assert round(row["wsj10_sentence_f1"], 1) == wsj10, name
    # random trees depend on the generator: only roughly the README's 18.1 / 15.0 / 37.5
    assert 15.0 < rows["random"]["sentence_f1"] < 22.0
    assert 12.0 < rows["random"]["corpus_f1"] < 18.0


@needs_data
def test_dev_raw_baselines_left_and_right_equal_words_mode(dev_golds):
    words = _by_name(evaluate_baselines(dev_golds, "words"))
    raw = _by_name(evaluate_baselines(dev_golds, "raw"))
    # prefixes / suffixes of the tokens restrict to prefixes / suffixes of the words
    for name in ("left-branching", "right-branching"):
        assert raw[name] == words[name]


# --- model scoring ----------------------------------------------------------------------


def right_branching_model(calls):
    """A fake model: layer 0 decreasing distances (right-branching with both decoders), layer 1 zeros."""

    def distances_fn(token_lists):
        calls.append([list(tokens) for tokens in token_lists])
        return [[[float(len(tokens) - t) for t in range(len(tokens))], [0.0] * len(tokens)] for tokens in token_lists]

    return distances_fn


def _metrics(row):
    return {key: value for key, value in row.items() if key not in ("name", "layer", "decoder", "right_branching_bias")}


@pytest.mark.parametrize("mode", ["words", "raw"])
def test_evaluate_model_right_branching_fake_on_hand_trees(mode):
    trees = [Tree.fromstring(CAT), Tree.fromstring(JOHN), Tree.fromstring("(S (NN Hello) (. !))")]
    calls = []
    report = evaluate_model(trees, right_branching_model(calls), mode=mode)
    json.dumps(report)  # JSON-serialisable
    if mode == "words":
        assert calls[0][1] == ["John", "who", "left", "said", "he", "won"]  # as written, not normalised
    else:
        assert calls[0][1] == ["John", ",", "who", "left", ",", "said", "he", "won", "."]
    assert report["n_layers"] == 2 and report["n_sentences"] == 3
    right = _metrics(_by_name(report["baselines"])["right-branching"])
    rows = {(row["layer"], row["decoder"]): row for row in report["model"]}
    assert set(rows) == {(layer, decoder) for layer in (0, 1, "mean") for decoder in ("greedy", "split")}
    for key in [(0, "greedy"), (0, "split"), ("mean", "greedy"), ("mean", "split")]:
        assert _metrics(rows[key]) == right, key


@needs_data
@pytest.mark.parametrize("mode", ["words", "raw"])
def test_evaluate_model_reproduces_right_branching_on_dev(dev_golds, mode):
    report = evaluate_model(dev_golds, right_branching_model([]), mode=mode, decoders=("greedy",))
    right = _by_name(report["baselines"])["right-branching"]
    assert round(right["sentence_f1"], 1) == 39.3
    for row in report["model"]:
        if row["layer"] in (0, "mean"):
            assert _metrics(row) == _metrics(right)


def test_evaluate_model_checks_distance_shapes():
    trees = [Tree.fromstring(CAT)]
    with pytest.raises(ValueError):
        evaluate_model(trees, lambda token_lists: [[[0.0] * 3]])  # 3 distances for 6 words
    with pytest.raises(ValueError):
        evaluate_model(trees, lambda token_lists: [])  # no sentence


def test_format_table_marks_the_default():
    report = evaluate_model([Tree.fromstring(CAT)], right_branching_model([]), decoders=("greedy",))
    report["default"] = {"layer": 1, "decoder": "greedy"}
    table = format_table(report)
    lines = table.splitlines()
    assert any(line.startswith("right-branching") for line in lines)
    assert any(line.startswith("layer 1 greedy *") for line in lines)
    assert not any(line.startswith("layer 0 greedy *") for line in lines)
    assert "SBAR" in lines[1]


# --- command line -----------------------------------------------------------------------


def test_cli_baselines_only_on_a_folder(tmp_path, capsys):
    (tmp_path / "a.mrg").write_text(f"( {CAT} )\n( {JOHN} )\n")
    assert evaluate_command.main(["--files", str(tmp_path), "--baselines-only", "--mode", "both", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert set(output["reports"]) == {"words", "raw"}
    assert output["reports"]["words"]["n_sentences"] == 2
    assert evaluate_command.main(["--files", str(tmp_path), "--baselines-only"]) == 0
    assert "right-branching" in capsys.readouterr().out


def test_cli_with_a_fake_parser(tmp_path, capsys, monkeypatch):
    import types

    seen = []

    class FakeParser:
        n_layers = 2
        default_layer = 0
        default_decoder = "split"
        default_gate = "forget"
        default_right_branching_bias = 0.5
        default_punctuation = "attach"
        default_punctuation_first = False
        vocab = Vocab(["<eos>", "<unk>", "the", "cat", "sat", "on"])

        language = "en"
        unit = "words"

        @classmethod
        def load(cls, path, language=None):
            return cls()

        def model_positions(self, tokens, punctuation):
            return list(range(len(tokens)))

        def units_read(self, words):
            return len(words)

        def knows(self, word):
            return self.vocab.encode([word]) != [self.vocab.unk_id]

        def layer_distances(self, token_lists, batch_size=64, punctuation=None, gate=None):
            seen.append(punctuation)
            assert gate == "forget"  # the model's own, asked for by name
            return right_branching_model([])(token_lists)

        def parse(self, token_lists, layer=0, punctuation=None, batch_size=64):
            return [types.SimpleNamespace(perplexity=10.0, unk_share=0.0) for _ in token_lists]

    monkeypatch.setitem(sys.modules, "onlstm.models.parser", types.SimpleNamespace(Parser=FakeParser))
    (tmp_path / "a.mrg").write_text(f"( {CAT} )\n")
    assert evaluate_command.main(["--files", str(tmp_path), "--mode", "both"]) == 0
    out = capsys.readouterr().out
    # every row without the prior and with the model's; the default is marked in both modes
    assert out.count("layer 0 split, prior 0.5 *") == 2 and out.count("layer 0 split  ") == 2
    assert "* default: layer 0, decoder split, right-branching prior 0.5" in out
    # words mode reads 6 words, "mat" outside the vocabulary; raw mode (this fake reads every token) "." too
    assert "<unk>: 16.7% of the tokens the model read" in out and "<unk>: 28.6% of the tokens" in out
    assert seen == ["model", None]  # words mode feeds every word to the model
    # perplexity over what the model read, <eos> included: 6 words + 1, then 7 tokens + 1
    assert "perplexity: 10.0 over the 7 tokens" in out and "perplexity: 10.0 over the 8 tokens" in out


def test_cli_refuses_an_evalb_path_that_is_a_file(tmp_path, capsys):
    taken = tmp_path / "evalb"
    taken.write_text("a build of evalb, say")
    assert evaluate_command.main(["--evalb", str(taken)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert taken.read_text() == "a build of evalb, say"


def test_cli_reports_missing_data(tmp_path, capsys):
    assert evaluate_command.main(["--data", str(tmp_path), "--baselines-only"]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.slow
def test_importing_evaluate_does_not_import_the_model():
    code = "import sys, onlstm.training.evaluate; assert 'onlstm.models.parser' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
