"""Corpus readers on the shared data and on bad input."""

import pytest

from onlstm.models.parser import Parser
from onlstm.models.text.vocab import Vocab
from onlstm.training.corpora import (
    CorpusError,
    ptb_split_files,
    read_corpus,
    read_plain,
    read_text,
    read_treebank,
    tree_tokens,
)


def test_ptb_splits(shared_data):
    train = ptb_split_files(shared_data, "train")
    dev = ptb_split_files(shared_data, "dev")
    assert train[0].name == "wsj_0001.mrg" and train[-1].name == "wsj_0139.mrg"
    assert dev[0].name == "wsj_0140.mrg" and dev[-1].name == "wsj_0159.mrg"
    assert len(read_treebank(dev)) == 328
    assert len(read_treebank(train)) == 3068


def test_tree_tokens_drop_traces_and_unescape(shared_data):
    trees = read_treebank(shared_data / "ptb-sample" / "wsj_0001.mrg")
    assert tree_tokens(trees[0])[:7] == ["Pierre", "Vinken", ",", "61", "years", "old", ","]
    for tree in read_treebank(ptb_split_files(shared_data, "dev")):
        tokens = tree_tokens(tree)
        assert "*-1" not in tokens and "-LRB-" not in tokens


@pytest.mark.parametrize("name,minimum", [("conll2000", 10000), ("ptb-lm", 7000), ("brown", 50000)])
def test_other_corpora(shared_data, name, minimum):
    sentences = read_corpus(name, shared_data)
    assert len(sentences) >= minimum
    assert all(sentence and all(token.strip() for token in sentence) for sentence in sentences[:100])


def test_brown_strips_tags(shared_data):
    first = read_corpus("brown", shared_data)[0]
    assert first[:3] == ["The", "Fulton", "County"]


def test_bad_files_get_clear_errors(tmp_path):
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    with pytest.raises(CorpusError, match="binary"):
        read_plain(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match="UTF-8"):
        read_plain(latin)
    with pytest.raises(CorpusError, match="no such file"):
        read_plain(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="unknown corpus"):
        read_corpus("wikipedia")
    with pytest.raises(CorpusError, match=r"^\S*missing.txt: no such file; give the path of a text file"):
        read_corpus(str(tmp_path / "missing.txt"))  # a file's name: it is the file that is missing
    broken = tmp_path / "broken.mrg"
    broken.write_text("( (S (NP the cat)")
    with pytest.raises(CorpusError, match="bracketed"):
        read_treebank(broken)


def test_a_file_tokenized_already_is_read_as_given(tmp_path):
    from onlstm.cli.train import build_argparser, named_flags
    from onlstm.training.corpora import own_file

    path = tmp_path / "words.txt"
    path.write_text("猫 が 寝て いる 。\n\nl'homme  dort\t.\n", encoding="utf-8")
    assert read_corpus(f"tokens:{path}") == [["猫", "が", "寝て", "いる", "。"], ["l'homme", "dort", "."]]
    assert read_corpus(str(path), language="ja")[0][:3] == ["猫", "が", "寝"]  # as text: a character each
    assert own_file(f"tokens:{path}") == own_file(str(path)) == path and own_file("ptb-train") is None
    args = build_argparser().parse_args(["--out", "run", "--language", "ja", "--tokens", str(path), "--text", "a.txt"])
    assert named_flags(args)["corpora"] == ["a.txt", f"tokens:{path}"]


def test_a_text_file_of_your_own_is_split_and_tokenized_as_parse_input(tmp_path, tiny_checkpoint):
    path = tmp_path / "mine.txt"
    text = "The cat sat on the mat. It paid $3.8m to press@frb.gov for it."
    path.write_bytes(b"\xef\xbb\xbf" + f"{text}\nThe cat ran\n\n  \n".encode())
    sentences = read_corpus(str(path))
    assert sentences == [
        ["The", "cat", "sat", "on", "the", "mat", "."],
        ["It", "paid", "$", "3.8", "m", "to", "press@frb.gov", "for", "it", "."],
        ["The", "cat", "ran"],  # a line ends a sentence, with or without its full stop
    ]
    assert read_text(path) == sentences
    # the units the parser reads from the same text
    assert [list(result.tokens) for result in Parser.load(tiny_checkpoint).parse_text(text)] == sentences[:2]
    vocab = Vocab.build(sentences)
    assert "mat" in vocab and "mat." not in vocab and "." in vocab
    # the named corpora stay as their makers tokenized them (ptb-lm writes <unk> and N itself)
    lm = tmp_path / "lm.txt"
    lm.write_text("the <unk> rose N % .\n")
    assert read_plain(lm) == [["the", "<unk>", "rose", "N", "%", "."]]


def test_a_language_run_is_named_after_its_language(tmp_path):
    from onlstm.cli.train import build_argparser, requested_config

    text = tmp_path / "texte.txt"
    text.write_text("Le chat dort.\n")
    french = requested_config(build_argparser().parse_args(["--out", "run", "--language", "fr", "--text", str(text)]))
    assert (french.name, french.language) == ("onlstm-fr", "fr")  # not the preset's "onlstm-language"
    mine = requested_config(build_argparser().parse_args(["--out", "run", "--language", "fr", "--text", str(text),
                                                          "--set", "name=mon-modele"]))
    assert mine.name == "mon-modele"


def test_chinese_reads_characters_unless_the_command_says_words(tmp_path):
    from onlstm.cli.train import build_argparser, requested_config
    from onlstm.training.config import TrainConfig
    from onlstm.training.inputs import load_training_text

    text = tmp_path / "zh.txt"
    text.write_text("北京是中国的首都。GDP增长了3%。\n")

    def config(*extra: str) -> TrainConfig:
        return requested_config(build_argparser().parse_args(["--out", "run", "--text", str(text), *extra]))

    assert config("--language", "zh").unit == "characters"  # Chinese's default
    assert config("--language", "zh", "--unit", "words").unit == "words"
    assert config("--language", "zh", "--set", "unit=words").unit == "words"
    assert config("--language", "fr").unit == "words" and config().unit == "words"
    assert load_training_text(config("--language", "zh")) == [
        list("北京是中国的首都"), ["GDP", "增", "长", "了", "3", "%"]]
    assert load_training_text(config("--language", "zh", "--unit", "words"))[0][:4] == ["北京", "是", "中国", "的"]


def test_the_language_preset_trains_a_character_reader_three_times_longer(tmp_path):
    from onlstm.cli.train import CHARACTER_READER_STEPS, build_argparser, requested_config
    from onlstm.training.config import TrainConfig, load_preset

    text = tmp_path / "zh.txt"
    text.write_text("北京是中国的首都。\n")

    def steps(*extra: str) -> int:
        config: TrainConfig = requested_config(build_argparser().parse_args(["--out", "run", "--text", str(text), *extra]))
        return config.max_steps

    word_reader = load_preset("language").max_steps
    assert CHARACTER_READER_STEPS == 3 * word_reader == 3000
    assert steps("--language", "zh") == CHARACTER_READER_STEPS  # Chinese reads characters by default
    assert steps("--language", "es", "--unit", "characters") == CHARACTER_READER_STEPS
    assert steps("--language", "zh", "--unit", "words") == word_reader
    assert steps("--language", "es") == word_reader
    # what the command says of the run length wins, and other presets keep theirs
    assert steps("--language", "zh", "--max-steps", "1200") == 1200
    assert steps("--language", "zh", "--set", "max_steps=700") == 700
    assert steps("--language", "zh", "--preset", "tiny") == load_preset("tiny").max_steps
