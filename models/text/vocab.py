"""The model's vocabulary: token normalisation, punctuation, and the token <-> id mapping.

Splitting and tokenizing raw text live in ``models.text``.

The model reads *normalised* tokens (lowercase, every run of digits -> ``N``, as in
the ON-LSTM evaluation protocol); users always get back their tokens *as written*.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

EOS = "<eos>"  # ends every sentence, and is the first input of a sentence read from a fresh state
UNK = "<unk>"  # any token outside the vocabulary
SPECIALS = (EOS, UNK)

_DIGITS = re.compile(r"[0-9]+")
# News and web text write the apostrophe curly (it’s, ’80s); the training text, like the vocabulary,
# has the straight one only.
_STRAIGHT_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


def normalize(token: str) -> str:
    """Lowercase, straighten curly apostrophes (``n’t`` -> ``n't``) and replace every run of
    digits by ``N`` (``1.5`` -> ``N.N``)."""
    if token in SPECIALS:
        return token
    return _DIGITS.sub("N", token.lower().translate(_STRAIGHT_APOSTROPHES))


# Symbols the Penn Treebank tags as words (``%`` NN, ``&`` CC, ``+`` SYM ...): they stay in the text.
_WORDLIKE_SYMBOLS = frozenset({"%", "&", "@", "+", "=", "*", "/", "<", ">", "^", "~", "|"})


# The joiner, selectors and tags inside an emoji sequence (👨‍👩‍👧, ❤️, the flag of Scotland) are not
# symbols themselves; the emoji they belong to is.
ZERO_WIDTH_JOINER = "\u200d"
EMOJI_COMPONENTS = frozenset(ZERO_WIDTH_JOINER + "\ufe0e\ufe0f\u20e3") | frozenset(map(chr, range(0xE0020, 0xE0080)))


def is_punctuation(token: str) -> bool:
    """True for tokens made only of punctuation or symbol characters (``,``, ``--``, ``$``, ``''``,
    an emoji), but not the symbols the Penn Treebank tags as words (``%``, ``&``, ...).

    PTB bracket escapes (``-LRB-``) count as punctuation too.
    """
    if token in ("-LRB-", "-RRB-", "-LSB-", "-RSB-", "-LCB-", "-RCB-"):
        return True
    if token in _WORDLIKE_SYMBOLS:
        return False
    symbols = [char for char in token if char not in EMOJI_COMPONENTS]
    return bool(symbols) and all(unicodedata.category(char)[0] in "PS" for char in symbols)


class Vocab:
    """Token <-> id mapping; ids 0 and 1 are ``<eos>`` and ``<unk>``."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {list(tokens[:2])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("the vocabulary lists a token twice")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1) -> Vocab:
        """Most frequent normalised tokens first (ties alphabetical, so builds are reproducible)."""
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(normalize(token) for token in sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + [token for token, _ in ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    @property
    def eos_id(self) -> int:
        return self.stoi[EOS]

    @property
    def unk_id(self) -> int:
        return self.stoi[UNK]

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of the normalised tokens (unknown ones -> ``<unk>``)."""
        unk = self.unk_id
        return [self.stoi.get(normalize(token), unk) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[index] for index in ids]
