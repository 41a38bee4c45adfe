"""``onlstm eval --language LANG --treebank PATH``: the multilingual treebanks' gold trees, the
four baselines for every language, Alpino's skipped discontinuous constituents, a one-line note
where no model is bundled, refusals naming the flag, and a checkpoint scored on a hand-written
treebank (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onlstm.cli import main

from ..helpers import REPO
from ..releases import bundle, make_release

RECORDED = REPO / "training" / "sweeps" / "results" / "baselines-multilingual.json"
BASELINES = ["left-branching", "right-branching", "balanced", "random (3 seeds)"]

# Two Alpino sentences.  In the first, "heeft ... gezien" (a verbal cluster around the object)
# is a constituent whose words are not one run: it is skipped, and counted.
ALPINO = """<?xml version="1.0" encoding="UTF-8"?>
<treebank>
<alpino_ds id="s1">
  <node cat="top" begin="0" end="7">
    <node cat="smain" begin="0" end="6">
      <node cat="np" begin="0" end="2">
        <node pos="det" word="de" begin="0" end="1"/>
        <node pos="noun" word="kat" begin="1" end="2"/>
      </node>
      <node cat="vc" begin="2" end="6">
        <node pos="verb" word="heeft" begin="2" end="3"/>
        <node pos="verb" word="gezien" begin="5" end="6"/>
      </node>
      <node cat="np" begin="3" end="5">
        <node pos="det" word="de" begin="3" end="4"/>
        <node pos="noun" word="muis" begin="4" end="5"/>
      </node>
    </node>
    <node pos="punct" word="." begin="6" end="7"/>
  </node>
</alpino_ds>
<alpino_ds id="s2">
  <node cat="top" begin="0" end="5">
    <node cat="smain" begin="0" end="4">
      <node cat="np" begin="0" end="2">
        <node pos="det" word="de" begin="0" end="1"/>
        <node pos="noun" word="hond" begin="1" end="2"/>
      </node>
      <node pos="verb" word="slaapt" begin="2" end="3"/>
      <node pos="adv" word="buiten" begin="3" end="4"/>
    </node>
    <node pos="punct" word="!" begin="4" end="5"/>
  </node>
</alpino_ds>
</treebank>
"""


def multilingual(shared_data: Path, folder: str) -> Path:
    path = shared_data / "multilingual" / folder
    if not path.is_dir():
        pytest.skip(f"{path} is missing")
    return path


def recorded(language: str) -> dict:
    return json.loads(RECORDED.read_text())["languages"][language]


def test_spanish_baselines_are_the_recorded_figures(shared_data, capsys):
    folder = multilingual(shared_data, "es-cess")
    status = main(["eval", "--language", "es", "--treebank", str(folder), "--baselines-only", "--json"])
    assert status == 0
    output = json.loads(capsys.readouterr().out)
    expected = recorded("es")
    assert (output["language"], output["treebank"], output["split"]) == ("es", "CESS-ESP", "dev")
    assert output["n_words"] == expected["n_words"] and output["skipped_discontinuous"] == 0
    report = output["reports"]["words"]
    assert report["n_sentences"] == expected["n_sentences"] == 577
    assert [row["name"] for row in report["baselines"]] == BASELINES
    assert report["baselines"] == expected["baselines"]  # every figure, exactly
    assert report["model"] == [] and "note" not in output  # --baselines-only asked for no model


def test_alpino_says_how_many_discontinuous_constituents_were_skipped(shared_data, capsys, tmp_path, monkeypatch):
    bundle(tmp_path / "weights", monkeypatch, ("en",))  # whatever ships in models/weights today
    folder = multilingual(shared_data, "nl-alpino")
    assert main(["eval", "--language", "nl", "--treebank", str(folder)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    skipped = recorded("nl")["skipped_discontinuous"]
    assert skipped > 0
    assert lines[0] == f"gold: nl, Alpino: {folder} (dev)"
    assert f"discontinuous constituents: {skipped:,} skipped (their words are not one run); " \
        "the brackets scored are the continuous ones" in lines
    # no Dutch model is bundled: the baselines, and one line saying so (not an error)
    assert "no model for nl is bundled yet; baselines only (pass --checkpoint PATH to score a model)" in lines
    assert all(any(line.startswith(name) for line in lines) for name in BASELINES)
    assert not any(line.startswith("layer") for line in lines) and "error" not in captured.err


def test_a_checkpoint_on_a_hand_written_alpino_file(tmp_path, capsys):
    treebank = tmp_path / "alpino.dev.xml"
    treebank.write_text(ALPINO)
    dutch = make_release(tmp_path, "nl")
    command = ["eval", "--language", "nl", "--treebank", str(treebank), "--checkpoint", str(dutch)]
    assert main([*command, "--mode", "both", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["skipped_discontinuous"] == 1 and output["split"] is None and "note" not in output
    assert output["n_words"] == 6 + 4
    for mode in ("words", "raw"):
        report = output["reports"][mode]
        assert report["n_sentences"] == 2
        assert [row["name"] for row in report["baselines"]] == BASELINES
        assert {row["layer"] for row in report["model"]} == {0, 1, 2, "mean"}
        assert all(0 <= row["sentence_f1"] <= 100 for row in report["model"])
    # words mode reads the treebank's words (not its punctuation) and each sentence's <eos>
    assert output["reports"]["words"]["perplexity_tokens"] == 10 + 2
    assert main(command) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"gold: nl, Alpino: {treebank}",
        "discontinuous constituents: 1 skipped (their words are not one run); the brackets scored are the continuous ones",
        f"checkpoint: {dutch}",
    ]
    assert any(line.startswith("layer 1 greedy *") for line in lines)


def test_the_bundled_model_of_the_language_is_scored(tmp_path, capsys, monkeypatch):
    treebank = tmp_path / "alpino.dev.xml"
    treebank.write_text(ALPINO)
    bundle(tmp_path / "weights", monkeypatch, ("en", "nl"))
    assert main(["eval", "--language", "nl", "--treebank", str(treebank), "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert "note" not in output and output["checkpoint"] is None
    assert {row["layer"] for row in output["reports"]["words"]["model"]} == {0, 1, 2, "mean"}  # the tiny nl model
    assert main(["eval", "--language", "nl", "--treebank", str(treebank)]) == 0
    assert "checkpoint: the bundled nl model" in capsys.readouterr().out.splitlines()


def test_a_checkpoint_of_another_language_is_refused(tiny_checkpoint, tmp_path, capsys):
    treebank = tmp_path / "alpino.dev.xml"
    treebank.write_text(ALPINO)
    assert main(["eval", "--language", "nl", "--treebank", str(treebank), "--checkpoint", str(tiny_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --language must be 'en', the language of ") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    "options, message",
    [
        (["--language", "xx"], "error: --language: unknown language 'xx': give an ISO 639-1 code (two lowercase "
         "letters); these have a reader of their own: en, zh, es, pt, nl, every other reads Penn bracketing"),
        (["--language", "zh", "--treebank", "{missing}"], "error: --treebank: {missing}: no such file or folder"),
        (["--treebank", "{missing}"], "error: --treebank: {missing}: no such file or folder"),
        (["--language", "pt", "--files", "{tmp}"], "error: --files: reads PTB .mrg files (en); give the pt treebank"),
        (["--language", "nl", "--treebank", "{tmp}"], "error: --treebank: no Alpino folder at {tmp}"),
        (["--language", "nl", "--treebank", "{broken}"], "error: --treebank: {broken}: not an Alpino XML file"),
        (["--language", "zh", "--evalb", "{tmp}/evalb"], "error: --evalb writes a model's trees: no model for zh"),
    ],
)
def test_refusals_are_one_line_naming_the_flag(options, message, tmp_path, capsys, monkeypatch):
    bundle(tmp_path / "weights", monkeypatch, ("en",))  # zh has no bundled model here, whatever ships
    names = {"missing": str(tmp_path / "nope"), "tmp": str(tmp_path), "broken": str(tmp_path / "alpino.dev.xml")}
    (tmp_path / "alpino.dev.xml").write_text("<treebank><alpino_ds>")
    assert main(["eval", *(option.format(**names) for option in options)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(**names)) and err.count("\n") == 1, err


# A French treebank of one's own in Penn bracketing (the French Treebank's labels): the reader of any
# language without one of its own.  Traces are empty, punctuation is whatever has no letter or digit.
FRENCH = """( (SENT (NP-SUJ (DET Le) (NC chat)) (VN (V dort)) (PP-MOD (P sur) (NP (DET le) (NC tapis))) (PONCT .)) )
( (SENT (NP-SUJ (DET Les) (NC enfants)) (VN (V jouent) (-NONE- *T*-1)) (PP (P dans) (NP (DET le) (NC jardin)))
  (PONCT .)) )
(SENT (PONCT «) (NP (NC Bonjour)) (PONCT ») (PONCT ,) (VN (V dit-il)) (PONCT .))
"""


def test_a_language_without_a_reader_of_its_own_reads_penn_bracketing(tmp_path, capsys):
    from onlstm.training.treebanks import read_gold

    (tmp_path / "trees").mkdir()
    treebank = tmp_path / "trees" / "francais.mrg"
    treebank.write_text(FRENCH)
    golds = read_gold("fr", treebank)
    assert [gold.words for gold in golds] == [("Le", "chat", "dort", "sur", "le", "tapis"),
                                              ("Les", "enfants", "jouent", "dans", "le", "jardin"), ("Bonjour", "dit-il")]
    assert golds[0].brackets == {(0, 2), (3, 6), (4, 6)}  # NP-SUJ, PP-MOD, NP; the sentence itself not counted
    assert golds[1].brackets == {(0, 2), (3, 6), (4, 6)}  # the trace is no word
    assert golds[2].brackets == frozenset()
    french = make_release(tmp_path, "fr")
    assert main(["eval", "--language", "fr", "--treebank", str(treebank.parent), "--checkpoint", str(french), "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert (output["language"], output["split"], output["n_words"]) == ("fr", None, 14)
    assert output["treebank"] == "French trees in Penn bracketing" and "note" not in output
    report = output["reports"]["words"]
    assert [row["name"] for row in report["baselines"]] == BASELINES and report["n_sentences"] == 3
    assert {row["layer"] for row in report["model"]} == {0, 1, 2, "mean"}
    assert main(["eval", "--language", "fr"]) == 2  # no trees of its own to read: the flag to give
    assert "--treebank" in capsys.readouterr().err


def test_a_treebank_named_by_its_folder_is_found_in_the_data_folder(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    (data / "multilingual" / "nl-alpino").mkdir(parents=True)
    (data / "multilingual" / "nl-alpino" / "alpino.dev.xml").write_text(ALPINO)
    monkeypatch.setenv("ONLSTM_DATA", str(data))
    monkeypatch.chdir(tmp_path)  # no nl-alpino here: the name is the data folder's
    assert main(["eval", "--language", "nl", "--treebank", "nl-alpino", "--baselines-only", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["data"] == str(data / "multilingual" / "nl-alpino") and output["reports"]["words"]["n_sentences"] == 2
    assert main(["eval", "--language", "nl", "--treebank", "nl-nothing", "--baselines-only"]) == 2
    assert capsys.readouterr().err == (f"error: --treebank: nl-nothing: no such file or folder here, nor in the data "
                                       f"folder ({data}; --data or ONLSTM_DATA)\n")


def test_a_file_without_trees_is_an_error_not_an_empty_table(tmp_path, capsys):
    plain = tmp_path / "sentences.txt"
    plain.write_text("The cat sat on the mat.\n")
    assert main(["eval", "--files", str(plain), "--baselines-only"]) == 2
    assert capsys.readouterr().err == (f"error: --files: no tree in {plain}: give trees in Penn bracketing (.mrg files) "
                                       "or the language's treebank\n")


def test_a_release_of_another_language_without_language_says_to_pass_it(tmp_path, capsys):
    french = make_release(tmp_path, "fr")
    gold = tmp_path / "gold.mrg"
    gold.write_text("(S (NP (DT The) (NN cat)) (VP (VBD sat)))\n")
    assert main(["eval", "--files", str(gold), "--checkpoint", str(french)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --checkpoint {french} is a French (fr) release and the trees are English (no --language): "
                   "pass --language fr and its trees (--treebank PATH)\n"), err
