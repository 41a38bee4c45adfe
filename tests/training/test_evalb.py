"""EVALB, the scorer most users score trees with, agrees with ``onlstm eval``: the files
``onlstm eval --evalb DIR`` writes hold, per sentence, the words and brackets the protocol
scores, and EVALB's bracketing F-measure on them is the corpus F1 ``onlstm eval`` prints."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from nltk import Tree

from onlstm.cli import evaluate as evaluate_command
from onlstm.models.trees.decoders import tree_to_spans
from onlstm.training.evaluate import EVALB_PARAMETERS, evalb_tree, prepare_gold, write_evalb_files

from ..helpers import build_evalb, data_dir

JOHN = (
    "(S (NP-SBJ-1 (NP (NNP John)) (, ,) (SBAR (WHNP-1 (WP who)) (S (NP-SBJ (-NONE- *T*-1)) (VP (VBD left)))) (, ,))"
    " (VP (VBD said) (SBAR (-NONE- 0) (S (NP-SBJ=2 (PRP he)) (VP (VBD won))))) (. .))"
)


def test_evalb_trees_hold_the_words_under_preterminals_and_exactly_the_scored_brackets():
    line = evalb_tree(["The", "cat", "(sat)", "down"], [(0, 2), (2, 4)])
    assert line == "(TOP (X (T The) (T cat)) (X (T -LRB-sat-RRB-) (T down)))"
    gold = prepare_gold(Tree.fromstring(JOHN))
    tree = Tree.fromstring(evalb_tree(gold.words, gold.brackets))
    assert tree.leaves() == list(gold.words) == ["John", "who", "left", "said", "he", "won"]
    assert all(len(leaf_parent) == 1 for leaf_parent in tree.subtrees(lambda node: node.label() == "T"))
    assert set(tree_to_spans(tree)) - {(0, gold.n_words)} == gold.brackets
    assert evalb_tree(["alone"], []) == "(TOP (T alone))"
    with pytest.raises(ValueError, match="out of range"):
        evalb_tree(["a", "b"], [(0, 3)])


def test_the_files_and_the_parameters(tmp_path):
    gold = prepare_gold(Tree.fromstring(JOHN))
    paths = write_evalb_files(tmp_path, [gold], [frozenset({(0, 3), (4, 6)})], name="predicted-words")
    assert paths["predicted"].read_text() == "(TOP (X (T John) (T who) (T left)) (T said) (X (T he) (T won)))\n"
    assert paths["gold"].read_text().count("\n") == 1
    assert "LABELED 0" in EVALB_PARAMETERS and "DELETE_LABEL TOP" in EVALB_PARAMETERS
    assert paths["parameters"].read_text() == EVALB_PARAMETERS


def evalb_f_measures(output: str) -> tuple[float, float]:
    """EVALB's bracketing F-measure over all sentences and over those of at most 10 words."""
    everything = re.search(r"-- All --.*?Bracketing FMeasure\s*=\s*([\d.]+)", output, re.S)
    short = re.search(r"-- len<=10 --.*?Bracketing FMeasure\s*=\s*([\d.]+)", output, re.S)
    assert everything and short, output[-2000:]
    return float(everything.group(1)), float(short.group(1))


@pytest.mark.slow
def test_evalb_scores_the_dev_split_as_onlstm_eval_does(tmp_path, capsys):
    ptb = data_dir() if data_dir().name == "ptb-sample" else data_dir() / "ptb-sample"
    if not (ptb / "wsj_0140.mrg").is_file():
        pytest.skip(f"PTB sample not found at {ptb} (set ONLSTM_DATA)")
    evalb = build_evalb(tmp_path)
    folder = tmp_path / "evalb-files"
    arguments = ["--data", str(ptb), "--mode", "both", "--decoder", "greedy", "--evalb", str(folder), "--json"]
    assert evaluate_command.main(arguments) == 0
    output = json.loads(capsys.readouterr().out)
    for mode in ("words", "raw"):
        report = output["reports"][mode]
        default = next(row for row in report["model"] if all(row[key] == output["default"][key] for key in
                                                             ("layer", "decoder", "right_branching_bias")))
        files = report["evalb"]
        assert files["corpus_f1"] == default["corpus_f1"]
        scored = subprocess.run(
            [evalb, "-p", files["parameters"], files["gold"], files["predicted"]],
            capture_output=True, text=True, check=True,
        ).stdout
        assert re.search(r"Number of Error sentence\s*=\s*0\b", scored) and re.search(r"Number of Skip\s+sentence\s*=\s*0\b", scored)
        assert re.search(r"-- All --\s*Number of sentence\s*=\s*328\b", scored)
        f_measure, f_measure_short = evalb_f_measures(scored)
        assert f_measure == pytest.approx(default["corpus_f1"], abs=0.1), mode
        assert f_measure_short == pytest.approx(default["wsj10_corpus_f1"], abs=0.1), mode
        assert 0 < report["unk_share"] < 0.2
