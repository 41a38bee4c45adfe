"""The model's vocabulary: token normalisation, punctuation, and the token <-> id mapping.

Splitting and tokenizing raw text live in ``models.text``.

The model reads *normalised* tokens (lowercase, every run of digits -> ``N``, as in
the ON-LSTM evaluation protocol, invisible characters such as the soft hyphen left out); users
always get back their tokens *as written*.  Normalisation is by language (``normalize(token,
language)``, ``Vocab.language``): Chinese tokens are first read in half-width forms (NFKC) and
Simplified characters; every other language follows the English rules (accents kept).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

from ..languages import DEFAULT_LANGUAGE, LANGUAGES, LanguageError
from . import chinese

__all__ = ["EMOJI_COMPONENTS", "EOS", "INVISIBLE", "SPECIALS", "UNK", "Vocab", "ZERO_WIDTH_JOINER", "is_punctuation",
           "normalize", "visible"]

EOS = "<eos>"  # ends every sentence, and is the first input of a sentence read from a fresh state
UNK = "<unk>"  # any token outside the vocabulary
SPECIALS = (EOS, UNK)

_DIGITS = re.compile(r"[0-9]+")
# News and web text write the apostrophe curly (it’s, ’80s); the training text, like the vocabulary,
# has the straight one only.
_STRAIGHT_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
# Characters text pasted from the web carries inside words without showing them: the soft hyphen
# (inter\u00adnational), zero-width spaces and non-joiners, direction marks and embeddings, the word
# joiner, invisible operators, the byte-order mark.  The model reads a word without them (its
# training text has none), as a reader sees it; the token as written keeps them.  The zero-width
# joiner is not here: it holds emoji sequences together (EMOJI_COMPONENTS).
INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff") \
    | frozenset(map(chr, range(0x202A, 0x202F))) | frozenset(map(chr, range(0x2066, 0x2070)))
_WITHOUT_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE))


def normalize(token: str, language: str = DEFAULT_LANGUAGE) -> str:
    """The token as the model of ``language`` reads it: lowercase, curly apostrophes straightened
    (``n’t`` -> ``n't``), every run of digits replaced by ``N`` (``1.5`` -> ``N.N``), ``INVISIBLE``
    characters left out; Chinese first in half-width forms and Simplified characters (``３個`` ->
    ``N个``); every other language of ``LANGUAGES`` as English.  ``LanguageError``
    (``unknown_language``) for a string that is no ISO 639-1 code."""
    if token in SPECIALS:
        return token
    # a lookup, not a KeyError caught: a language without rules of its own is read a token at a time
    normalizer = _NORMALIZERS.get(language) if isinstance(language, str) else None
    if normalizer is None:
        if not isinstance(language, str) or language not in LANGUAGES:
            raise LanguageError("unknown_language", str(language), tuple(_NORMALIZERS),
                                "must be an ISO 639-1 code (two lowercase letters: en, fr, de ...)")
        normalizer = _normalize_english
    return normalizer(token)


def visible(token: str) -> str:
    """``token`` without the characters of ``INVISIBLE`` (``"inter\u00adnational"`` -> ``"international"``)."""
    # most tokens are ASCII, which holds none of them: the check costs a tenth of the translation
    return token if token.isascii() else token.translate(_WITHOUT_INVISIBLE)


def _normalize_english(token: str) -> str:
    return _DIGITS.sub("N", visible(token).lower().translate(_STRAIGHT_APOSTROPHES))


@lru_cache(maxsize=1 << 16)  # OpenCC's conversion is slow, and a corpus repeats its words
def _normalize_chinese(token: str) -> str:
    # NFKC first: full-width Latin letters and digits (Ｈ２Ｏ) become ASCII, so digits become N
    return _normalize_english(chinese.to_simplified(unicodedata.normalize("NFKC", token)))


# Spanish, Portuguese and Dutch keep their accents: é and e are different letters there.
_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "en": _normalize_english, "zh": _normalize_chinese, "es": _normalize_english,
    "pt": _normalize_english, "nl": _normalize_english,
}


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
    symbols = [char for char in token if char not in EMOJI_COMPONENTS and char not in INVISIBLE]
    return bool(symbols) and all(unicodedata.category(char)[0] in "PS" for char in symbols)


class Vocab:
    """Token <-> id mapping; ids 0 and 1 are ``<eos>`` and ``<unk>``; ``language`` says how tokens
    are normalised before they are looked up (``normalize``)."""

    def __init__(self, tokens: Sequence[str], language: str = DEFAULT_LANGUAGE):
        normalize("", language)  # an unknown language fails here, not at the first lookup
        self.language = language
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}, got {list(tokens[:2])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("the vocabulary lists a token twice")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {token: index for index, token in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int | None = None, min_count: int = 1,
              language: str = DEFAULT_LANGUAGE) -> Vocab:
        """Most frequent tokens, normalised for ``language``, first (ties alphabetical, so builds
        are reproducible)."""
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(normalize(token, language) for token in sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + [token for token, _ in ranked], language=language)

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
        """Ids of the tokens normalised for the vocabulary's language (unknown ones -> ``<unk>``)."""
        unk, language = self.unk_id, self.language
        return [self.stoi.get(normalize(token, language), unk) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[index] for index in ids]
