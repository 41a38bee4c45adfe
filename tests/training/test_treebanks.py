"""Tests of training.treebanks: the four multilingual gold readers on hand-written snippets of
each format and on the shared data, the registry's errors, the plain-text reader, the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from onlstm.training import treebanks
from onlstm.training.corpora import CorpusError
from onlstm.training.evaluate import GoldSentence, baseline_report
from onlstm.training.treebanks import (
    EMPTY,
    PUNCTUATION,
    WORD,
    Constituent,
    Leaf,
    TreebankError,
    TreebankSentence,
    gold_from_tree,
    parse_sinica_line,
    read_alpino_file,
    read_cess_file,
    read_floresta_file,
    read_gold,
    read_training_words,
)

# --- snippets of each format ------------------------------------------------------------

SINICA = (
    "#84:84.[39099] VP(Head:VK1:希望|goal:VP(location:PP(Head:P61:到|DUMMY:NP(Head:Ncc:府中))|Head:VA4:做工))"
    "#。(PERIODCATEGORY)\n"
    "#85:85.[39100] S(agent:NP(property:Nbc:江|Head:Nab:巡撫)|Head:VC31:放下|theme:NP(Head:Nab:信))# ，(COMMACATEGORY)\n"
    "#523:1.[0] S(Head:VC2:追求|goal:VP(Head:VH11(DUMMY1:VH11:純潔|Head:Caa:、|DUMMY2:VH11:平和)))#\n"
)

# "El púgil Electricité_de_France , (elided subject) ganó ." with Latin-1 accents
CESS = """(
  (S
    (sn-SUJ
      (espec.ms
        (da0ms0 El el))
      (grup.nom.ms
        (ncms000 púgil púgil)
        (np0000o Electricité_de_France Electricité_de_France)
        (Fpa -Fpa- -Fpa-)
        (np0000o EDF EDF)
        (Fpt -Fpt- -Fpt-)))
    (Fc , ,)
    (S.F.C
      (sn.e-SUJ *0*)
      (grup.verb
        (vmis3s0 ganó ganar)))
    (Fp . .)))
(
  (S
    (sn.e-SUJ *0*)
    (grup.verb
      (vmip3s0 Llueve llover))
    (Fp . .)))
"""

FLORESTA = """######################################################
#Floresta Sintá(c)tica
######################################################

#9 CP2-4 «Encomendem-nos a projectistas de fora»
(STA+fcl («)
         (P+v-fin Encomendem-)
         (ACC+pron-pers nos)
         (PIV+pp (H+prp a)
                 (P<+np (H+n projectistas)
                        (N<+pp de_fora)))
         (»"))
#1539 CP288-1 Taça de Portugal
(UTT+prop Taça_de_Portugal
#19 CP4-1 Fim .
(UTT+n (H+n Fim)
       (.))
"""

# "Dat zou je dan schuiven ." : the inf "Dat dan schuiven" is discontinuous (words 0, 3, 4),
# "je" is coindexed with an empty subject, and the XML lists nodes out of sentence order.
ALPINO = """<?xml version="1.0" encoding="ISO-8859-1"?>
<alpino version="1.2">
<alpino_ds version="1.2" id="0009">
  <node begin="0" cat="top" end="6" id="0" rel="top">
    <node begin="0" cat="smain" end="5" id="1" rel="--">
      <node begin="1" end="2" id="2" pos="verb" rel="hd" root="zal" word="zou"/>
      <node begin="2" end="3" id="3" index="1" pos="noun" rel="su" root="je" word="je"/>
      <node begin="0" cat="inf" end="5" id="4" rel="vc">
        <node begin="2" end="3" id="5" index="1" rel="su"/>
        <node begin="4" end="5" id="6" pos="verb" rel="hd" root="schuif" word="schuiven"/>
        <node begin="0" cat="np" end="4" id="7" rel="obj1">
          <node begin="3" end="4" id="8" pos="adv" rel="mod" root="dan" word="dan"/>
          <node begin="0" end="1" id="9" pos="noun" rel="hd" root="dat" word="Dat"/>
        </node>
      </node>
    </node>
    <node begin="5" end="6" id="10" pos="punct" rel="--" root="." word="."/>
  </node>
  <sentence>Dat zou je dan schuiven .</sentence>
</alpino_ds>
<alpino_ds version="1.2" id="0019">
  <node begin="0" cat="top" end="4" id="0" rel="top">
    <node begin="0" end="1" id="1" pos="punct" rel="--" root="&quot;" word="&quot;"/>
    <node begin="1" cat="np" end="3" id="2" rel="--">
      <node begin="1" end="2" id="3" pos="det" rel="det" root="de" word="de"/>
      <node begin="2" end="3" id="4" pos="noun" rel="hd" root="kat" word="k\xe4t"/>
    </node>
    <node begin="3" end="4" id="5" pos="punct" rel="--" root="&quot;" word="&quot;"/>
  </node>
  <sentence>" de kät "</sentence>
</alpino_ds>
</alpino>
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_sinica_clause_brackets_and_closing_mark():
    gold = parse_sinica_line(SINICA.splitlines()[0], "parsed.dev")
    assert isinstance(gold, GoldSentence)
    assert gold.tokens == ("希望", "到", "府中", "做工", "。")
    assert gold.word_mask == (True, True, True, True, False)  # PERIODCATEGORY is punctuation
    assert gold.words == ("希望", "到", "府中", "做工")
    assert gold.brackets == {(1, 3), (1, 4)}  # PP 到府中, VP 到府中做工; NP 府中 is one word
    assert (1, 3, "PP") in gold.labelled
    assert gold.source == "parsed.dev:#84:84.[39099]"


def test_sinica_mark_after_a_space_a_missing_mark_and_a_labelled_head(tmp_path):
    golds = treebanks.read_sinica_file(write(tmp_path / "parsed.dev", SINICA))
    assert len(golds) == 3
    assert golds[1].tokens[-1] == "，" and golds[1].word_mask[-1] is False
    assert golds[1].brackets == {(0, 2)}  # 江巡撫; the object NP 信 is one word
    assert golds[2].tokens == ("追求", "純潔", "、", "平和")  # no mark after "#"
    assert golds[2].words == golds[2].tokens  # Caa (、) is a word category, not ...CATEGORY
    assert golds[2].brackets == {(1, 4)}  # VP and its VH11 head: one span, unary chain collapsed


def test_cess_punctuation_elided_subjects_and_multiword_tokens(tmp_path):
    golds = read_cess_file(write(tmp_path / "dev" / "1_2.tbf", CESS, "latin-1"))
    assert len(golds) == 2
    first = golds[0]
    # *0* removed, the bracket escapes undone
    assert first.tokens == ("El", "púgil", "Electricité_de_France", "(", "EDF", ")", ",", "ganó", ".")
    assert first.words == ("El", "púgil", "Electricité_de_France", "EDF", "ganó")
    assert first.word_mask == (True, True, True, False, True, False, False, True, False)
    assert first.brackets == {(0, 4), (1, 4)}  # sn-SUJ, grup.nom; S.F.C is one word once sn.e is gone
    assert {label for _, _, label in first.labelled} == {"sn", "grup.nom.ms"}  # function tags stripped
    assert golds[1].words == ("Llueve",) and golds[1].brackets == frozenset()
    assert {gold.source for gold in golds} == {"1_2.tbf"}


def test_cess_leaf_kinds():
    assert treebanks.cess_leaf_kind("Fc", ",") == PUNCTUATION
    assert treebanks.cess_leaf_kind("Fpa", "-Fpa-") == PUNCTUATION
    assert treebanks.cess_leaf_kind("sn.e-SUJ", "*0*") == EMPTY
    assert treebanks.cess_leaf_kind("Z", "118") == WORD


def test_floresta_comments_label_only_punctuation_and_an_unclosed_tree(tmp_path, caplog):
    golds = read_floresta_file(write(tmp_path / "floresta.dev.ptb", FLORESTA))
    assert [gold.source for gold in golds] == [
        "floresta.dev.ptb:#9 CP2-4", "floresta.dev.ptb:#1539 CP288-1", "floresta.dev.ptb:#19 CP4-1"]
    first = golds[0]
    assert first.tokens == ("«", "Encomendem-", "nos", "a", "projectistas", "de_fora", '»"')
    assert first.words == ("Encomendem-", "nos", "a", "projectistas", "de_fora")
    assert first.brackets == {(2, 5), (3, 5)}  # PIV+pp, P<+np
    assert golds[1].words == ("Taça_de_Portugal",)  # its ")" is missing: mended, one sentence
    assert "mended 1 unbalanced" in caplog.text
    assert golds[2].tokens == ("Fim", ".") and golds[2].words == ("Fim",)


def test_floresta_leaf_kind_is_letters_or_digits():
    assert treebanks.floresta_leaf_kind("", "--") == PUNCTUATION
    assert treebanks.floresta_leaf_kind("", "»\"") == PUNCTUATION
    assert treebanks.floresta_leaf_kind("N<+num", "1,4") == WORD
    assert treebanks.floresta_leaf_kind("", "foto") == WORD


def test_alpino_orders_by_begin_and_skips_discontinuous_constituents(tmp_path):
    golds = read_alpino_file(write(tmp_path / "alpino.dev.xml", ALPINO, "latin-1"))
    assert len(golds) == 2
    first = golds[0]
    assert first.tokens == ("Dat", "zou", "je", "dan", "schuiven", ".")  # by begin, not XML order
    assert first.words == ("Dat", "zou", "je", "dan", "schuiven")  # the empty coindexed su is no word
    # np "Dat ... dan" (words 0, 3) and inf "Dat ... dan schuiven" (0, 3, 4) are not one run
    assert first.skipped_discontinuous == 2
    assert first.brackets == frozenset()  # smain is the whole sentence
    second = golds[1]
    assert second.tokens == ('"', "de", "kät", '"') and second.words == ("de", "kät")
    assert second.brackets == frozenset()  # np = the whole sentence once the quotes are gone
    assert second.source == "alpino.dev.xml:0019"


def test_unary_chains_collapse_and_a_deep_tree_needs_no_recursion():
    depth = 20_000
    root = inner = Constituent("X")
    for level in range(depth):  # left-branching: the word of level i comes after every deeper one
        child = Constituent("X")
        inner.children = [child, Leaf("w", "T", WORD, 3 + depth - 1 - level)]
        inner = child
    inner.children = [Leaf("a", "T", WORD, 0), Leaf("b", "T", WORD, 1), Leaf(",", "P", PUNCTUATION, 2)]
    gold = gold_from_tree(root)
    assert gold.n_words == depth + 2
    assert len(gold.brackets) == depth  # spans of 2 .. depth+1 words, the whole sentence left out
    chain = Constituent("A", [Constituent("B", [Constituent("C", [Leaf("x", "", WORD, 0), Leaf("y", "", WORD, 1)])]),
                              Leaf("z", "", WORD, 2)])
    gold = gold_from_tree(chain)
    assert gold.brackets == {(0, 2)} and {label for *_, label in gold.labelled} == {"B", "C"}


# --- the registry and its errors ----------------------------------------------------------


def test_unknown_language_split_or_path_names_what_to_change(tmp_path):
    with pytest.raises(TreebankError, match="unknown language 'xx'.*zh, es, pt, nl"):
        read_gold("xx", tmp_path)
    with pytest.raises(TreebankError, match="unknown split 'test'.*held back"):
        read_gold("es", tmp_path, "test")
    with pytest.raises(TreebankError, match="no CESS-ESP folder at .*es-cess"):
        read_gold("es", tmp_path / "nowhere")
    write(tmp_path / "nl-alpino" / "alpino.train.xml", ALPINO)
    with pytest.raises(TreebankError, match="alpino.dev.xml: no such file"):
        read_gold("nl", tmp_path / "nl-alpino", "dev")
    assert issubclass(TreebankError, CorpusError) and issubclass(TreebankError, ValueError)


def test_read_gold_accepts_the_folder_a_file_or_the_data_folder(tmp_path):
    folder = tmp_path / "multilingual" / "nl-alpino"
    file = write(folder / "alpino.dev.xml", ALPINO, "latin-1")
    for path in (folder, file, tmp_path, tmp_path / "multilingual"):
        golds = read_gold("nl", path, "dev")
        assert [gold.source for gold in golds] == ["alpino.dev.xml:0009", "alpino.dev.xml:0019"]
    write(tmp_path / "cess" / "a.tbf", CESS, "latin-1")
    assert len(read_gold("es", tmp_path / "cess")) == 2  # a folder of CESS-ESP files, read whole


def test_the_folders_bare_name_is_found_in_the_data_folder_as_onlstm_eval_finds_it(tmp_path, monkeypatch):
    # `python -m onlstm.training.choice RUN --language nl --treebank nl-alpino`, run from anywhere
    write(tmp_path / "data" / "multilingual" / "nl-alpino" / "alpino.dev.xml", ALPINO, "latin-1")
    monkeypatch.setenv("ONLSTM_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert len(read_gold("nl", "nl-alpino", "dev")) == 2
    with pytest.raises(TreebankError, match="no CESS-ESP folder at es-cess"):  # a name not in the data folder
        read_gold("es", "es-cess", "dev")


def test_training_words_are_train_and_text_never_dev(tmp_path):
    folder = tmp_path / "es-cess"
    write(folder / "train" / "1.tbf", CESS, "latin-1")
    write(folder / "dev" / "2.tbf", CESS.replace("Llueve", "DEVWORD"), "latin-1")
    write(folder / "text" / "conll2002.txt", "Melbourne ( Australia ) , 25 may .\n\nUna frase .\n")
    sentences = read_training_words("es", folder)
    assert sentences == [
        ["El", "púgil", "Electricité_de_France", "(", "EDF", ")", ",", "ganó", "."],
        ["Llueve", "."],
        ["Melbourne", "(", "Australia", ")", ",", "25", "may", "."],
        ["Una", "frase", "."],
    ]
    write(tmp_path / "zh-sinica" / "parsed.train", SINICA)
    assert read_training_words("zh", tmp_path)[0] == ["希望", "到", "府中", "做工", "。"]


# --- the shared data ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilingual(shared_data) -> Path:
    folder = shared_data / "multilingual"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.mark.parametrize(("language", "units"), [("zh", 1000), ("es", 61), ("pt", 937), ("nl", 713)])
def test_dev_units_match_the_readme(multilingual, language, units):
    golds = read_gold(language, multilingual / treebanks.TREEBANKS[language].folder, "dev")
    assert treebanks.count_units(language, golds) == units
    assert all(isinstance(gold, TreebankSentence) and gold.n_words for gold in golds)
    for gold in golds:
        assert len(gold.tokens) == len(gold.word_mask)
        assert all(end - start >= 2 and (start, end) != (0, gold.n_words) for start, end in gold.brackets)
        assert all(0 <= start < end <= gold.n_words for start, end in gold.brackets)


def test_dev_punctuation_and_multiword_tokens(multilingual):
    portuguese = read_gold("pt", multilingual)
    assert all(any(char.isalnum() for char in word) for gold in portuguese for word in gold.words)
    assert any("«" in gold.tokens for gold in portuguese)
    assert any("_" in word for gold in portuguese for word in gold.words)  # de_fora and the like
    spanish = read_gold("es", multilingual)
    assert not any("*0*" in gold.tokens or "-Fpa-" in gold.tokens for gold in spanish)
    assert any("(" in gold.tokens for gold in spanish)
    assert any("," in gold.tokens and "," not in gold.words for gold in spanish)
    assert any("_" in word for gold in spanish for word in gold.words)
    chinese = read_gold("zh", multilingual)
    assert sum(not all(gold.word_mask) for gold in chinese) > 900  # nearly every clause ends in a mark
    assert not any(word in ("，", "。") for gold in chinese for word in gold.words)
    dutch = read_gold("nl", multilingual)
    assert sum(gold.skipped_discontinuous for gold in dutch) > 100
    # pos="punct" is the rule, not the token: one dev comma is tagged a noun (part of a multiword unit)
    assert sum(word in (".", ",") for gold in dutch for word in gold.words) == 1
    assert sum(token in (".", ",") for gold in dutch for token in gold.tokens) > 500


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_train_splits_match_the_readme(multilingual):
    # Floresta and Alpino each hold sentences without a word (left out): 7,496 and 5,710 in all.
    assert len(read_gold("zh", multilingual, "train")) == 8000
    assert treebanks.count_units("es", read_gold("es", multilingual, "train")) == 488
    assert len(read_gold("pt", multilingual, "train")) == 7496 - 1
    assert len(read_gold("nl", multilingual, "train")) == 5710 - 2


def test_dev_baselines_are_close_to_the_readme(multilingual):
    for language, figures in treebanks.README_WHOLE_TREEBANK.items():  # whole treebanks
        report = baseline_report(read_gold(language, multilingual), "words")
        scores = [row["sentence_f1"] for row in report["baselines"]]
        assert scores == pytest.approx(figures, abs=2.5)


def test_baselines_command_writes_its_figures(multilingual, tmp_path, capsys):
    output = tmp_path / "baselines.json"
    assert treebanks.main(["--data", str(multilingual.parent), "--languages", "pt", "nl", "--json", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "right-branching" in printed and "discontinuous" in printed
    saved = json.loads(output.read_text())
    assert saved["command"].startswith("python -m onlstm.training.treebanks --data")
    assert saved["languages"]["pt"]["n_sentences"] == 937
    assert saved["languages"]["nl"]["skipped_discontinuous"] > 0
    assert [row["name"] for row in saved["languages"]["nl"]["baselines"]][:3] == [
        "left-branching", "right-branching", "balanced"]
