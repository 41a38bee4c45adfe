"""Text handling that needs no downloaded data: normalisation, vocabulary,
sentence splitting and tokenisation of raw English text.

The model reads *normalised* tokens (lowercase, every run of digits -> ``N``, as in
the ON-LSTM evaluation protocol); users always get back their tokens *as written*.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nltk.tokenize import NLTKWordTokenizer

EOS = "<eos>"  # ends every sentence, and is the first input of a sentence read from a fresh state
UNK = "<unk>"  # any token outside the vocabulary
SPECIALS = (EOS, UNK)

_DIGITS = re.compile(r"[0-9]+")


def normalize(token: str) -> str:
    """Lowercase and replace every run of digits by ``N`` (``1.5`` -> ``N.N``)."""
    if token in SPECIALS:
        return token
    return _DIGITS.sub("N", token.lower())


# Symbols the Penn Treebank tags as words (``%`` NN, ``&`` CC, ``+`` SYM ...): they stay in the text.
_WORDLIKE_SYMBOLS = frozenset({"%", "&", "@", "+", "=", "*", "/", "<", ">", "^", "~", "|"})


def is_punctuation(token: str) -> bool:
    """True for tokens made only of punctuation or symbol characters (``,``, ``--``, ``$``, ``''``),
    but not the symbols the Penn Treebank tags as words (``%``, ``&``, ...).

    PTB bracket escapes (``-LRB-``) count as punctuation too.
    """
    if token in ("-LRB-", "-RRB-", "-LSB-", "-RSB-", "-LCB-", "-RCB-"):
        return True
    if token in _WORDLIKE_SYMBOLS:
        return False
    return bool(token) and all(unicodedata.category(char)[0] in "PS" for char in token)


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


# --- sentence splitting and tokenisation ------------------------------------------------

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft co corp inc ltd llc bros dept univ assn gov sen rep gen col lt
    capt sgt adm no nos vol vols fig figs p pp ch sec art est approx vs etc al cf e.g i.e u.s u.k u.n
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun""".split()
)
# A sentence ends at . ! ? (possibly repeated, possibly followed by closing quotes or
# brackets) when whitespace and then something that can start a sentence follow.
_BOUNDARY = re.compile(r"""([.!?]+)(["'\u201d\u2019)\]]*)(\s+)(?=["'\u201c\u2018(\[]*[A-Z0-9\u00C0-\u024F])""")
_PARAGRAPH = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``, whitespace trimmed.

    Rule-based (no punkt data): a blank line always ends a sentence; ``. ! ?`` end one
    when followed by whitespace and a capital letter, a digit or an opening quote,
    unless the word before the full stop is a known abbreviation or a single letter.
    """
    boundaries: list[int] = []
    for paragraph in _PARAGRAPH.finditer(text):
        boundaries.append(paragraph.start())
    for match in _BOUNDARY.finditer(text):
        if match.group(1) == ".":
            word_start = max(text.rfind(" ", 0, match.start()), text.rfind("\n", 0, match.start())) + 1
            word = text[word_start : match.start()].lstrip("\"'(\u201c\u2018[").lower()
            if word in _ABBREVIATIONS or len(word) == 1 or re.fullmatch(r"(?:[a-z]\.)+[a-z]", word):
                continue
        boundaries.append(match.end(2))
    spans = []
    start = 0
    for boundary in sorted(set(boundaries)) + [len(text)]:
        piece = text[start:boundary]
        stripped = piece.strip()
        if stripped:
            offset = start + piece.index(stripped[0])
            spans.append((offset, offset + len(stripped)))
        start = boundary
    return spans


_WORD_TOKENIZER = NLTKWordTokenizer()


def tokenize_with_offsets(sentence: str) -> list[tuple[str, int, int]]:
    """Penn-Treebank-style tokens of one sentence with their character spans.

    The tokens are the characters as written (``"`` stays ``"``, not ````/''``).
    """
    result = []
    try:
        spans = list(_WORD_TOKENIZER.span_tokenize(sentence))
    except ValueError:
        # span alignment can fail on exotic quote sequences; fall back to whitespace pieces
        spans = [match.span() for match in re.finditer(r"\S+", sentence)]
    for start, end in spans:
        result.append((sentence[start:end], start, end))
    return result


def tokenize(sentence: str) -> list[str]:
    """Tokens of one sentence, as written."""
    return [token for token, _, _ in tokenize_with_offsets(sentence)]


@dataclass(frozen=True)
class TextSentence:
    """A sentence of raw text: its tokens and their character offsets in the whole text."""

    text: str
    tokens: list[str]
    offsets: list[tuple[int, int]]


def split_and_tokenize(text: str) -> list[TextSentence]:
    """Raw text -> sentences -> tokens, with character offsets relative to ``text``."""
    sentences = []
    for start, end in split_sentences(text):
        pieces = tokenize_with_offsets(text[start:end])
        if pieces:
            sentences.append(
                TextSentence(
                    text=text[start:end],
                    tokens=[token for token, _, _ in pieces],
                    offsets=[(start + begin, start + finish) for _, begin, finish in pieces],
                )
            )
    return sentences
