"""Normalisation, punctuation and the vocabulary."""

import pytest

from onlstm.models.text.vocab import EOS, UNK, Vocab, is_punctuation, normalize


def test_normalize_follows_the_protocol():
    assert normalize("The") == "the"
    assert normalize("1.5") == "N.N"
    assert normalize("1,234,567") == "N,N,N"
    assert normalize("B-52s") == "b-Ns"
    assert normalize(EOS) == EOS


def test_vocab_build_encode_decode():
    vocab = Vocab.build([["The", "cat"], ["the", "dog", "42"]], max_size=4)
    assert vocab.itos[:2] == [EOS, UNK]
    assert vocab.itos[2] == "the"  # most frequent first
    assert len(vocab) == 4
    ids = vocab.encode(["THE", "zebra", "7"])
    assert ids[0] == vocab.stoi["the"] and ids[1] == vocab.unk_id
    assert vocab.decode(ids)[0] == "the"


def test_vocab_rejects_bad_lists():
    with pytest.raises(ValueError, match="must start"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="twice"):
        Vocab([EOS, UNK, "a", "a"])


@pytest.mark.parametrize(
    "token,expected",
    [
        (",", True),
        (".", True),
        ("``", True),
        ("''", True),
        ("--", True),
        ("$", True),
        ("#", True),
        ("-LRB-", True),
        ("%", False),
        ("&", False),
        ("U.S.", False),
        ("'s", False),
        ("cat", False),
        ("3:30", False),
    ],
)
def test_is_punctuation(token, expected):
    assert is_punctuation(token) is expected
