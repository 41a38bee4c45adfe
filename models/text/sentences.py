"""The text front door: raw text of a language -> sentences -> tokens with their character offsets.

Every parse sees its input through this module, and so does training on plain text, so
that the model reads the same units it was trained on. Nothing here needs downloaded data.

``Sentence`` carries its tokens *as written* and, when it came from text, each token's
``[start, end)`` character span in that text; it is built once and travels unchanged to
the parse result (the service and ``onlstm parse`` read offsets from it, nobody
re-tokenizes).

``split_text``, ``sentence_spans`` and ``tokenize`` take a language and use its front door
(``models.text.front_doors``): English's rules (``models.text.english``: sentence boundaries
by rule, in linear time; Penn Treebank tokens), the rules other European languages build on
them, Chinese's segmenter; zero-width spaces and invisible characters are handled here, once,
for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..languages import DEFAULT_LANGUAGE
from .english import english_sentence_spans, english_tokenize_with_offsets, is_abbreviation
from .front_doors import front_door
from .vocab import visible

__all__ = ["Offsets", "Sentence", "english_sentence_spans", "english_tokenize_with_offsets", "is_abbreviation",
           "sentence_spans", "split_text", "tokenize", "tokenize_with_offsets"]

Offsets = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Sentence:
    """One sentence as the parser sees it.

    Attributes:
        tokens: the tokens as written (original spelling and case).
        offsets: ``[start, end)`` character span of each token in the source text, or
            ``None`` when the sentence was given already tokenized.
    """

    tokens: tuple[str, ...]
    offsets: Offsets | None = None

    def __post_init__(self) -> None:
        if self.offsets is not None and len(self.offsets) != len(self.tokens):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.offsets)} offsets")

    @classmethod
    def from_tokens(cls, tokens: Iterable[str]) -> Sentence:
        """A pre-tokenized sentence: the tokens are used as given, with no offsets."""
        tokens = tuple(tokens)
        for index, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"token {index + 1} is a {type(token).__name__}, not a str")
            if not token or token != token.strip():
                raise ValueError(f"token {index + 1} ({token!r}) is empty or has surrounding whitespace")
        return cls(tokens)

    @classmethod
    def from_text(cls, text: str, offset: int = 0, language: str = DEFAULT_LANGUAGE) -> Sentence:
        """Tokenize ``text`` as one sentence of ``language`` (no splitting); offsets are ``offset`` +
        position in ``text``."""
        pieces = tokenize_with_offsets(text, language)
        return cls(tuple(token for token, _, _ in pieces), tuple((offset + start, offset + end) for _, start, end in pieces))

    def __len__(self) -> int:
        return len(self.tokens)

    def span(self) -> tuple[int, int] | None:
        """The sentence's own ``[start, end)`` in the source text, when known."""
        if not self.offsets:
            return None
        return self.offsets[0][0], self.offsets[-1][1]


def split_text(text: str, offset: int = 0, language: str = DEFAULT_LANGUAGE) -> list[Sentence]:
    """Raw text in ``language`` -> sentences -> tokens; character offsets are ``offset`` + the
    position in ``text`` (a paragraph's offset in its file, say)."""
    sentences = []
    for start, end in sentence_spans(text, language):
        sentence = Sentence.from_text(text[start:end], offset=offset + start, language=language)
        if sentence.tokens:
            sentences.append(sentence)
    return sentences


# --- every language's front door -------------------------------------------------------


# The zero-width space marks where words break without showing a space, and a byte-order mark
# (U+FEFF, once the zero-width no-break space) begins many files: both separate words as a space
# does.  Each becomes one space, so every offset into the text stays the same.
_ZERO_WIDTH_SPACES = str.maketrans({"\u200b": " ", "\ufeff": " "})


def _zero_width_spaces_as_spaces(text: str) -> str:
    return text.translate(_ZERO_WIDTH_SPACES) if "\u200b" in text or "\ufeff" in text else text


def sentence_spans(text: str, language: str = DEFAULT_LANGUAGE) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``text`` in ``language``, whitespace
    (zero-width spaces and byte-order marks too) trimmed; linear in ``len(text)``.
    ``LanguageError`` (``unknown_language``) for a language the text front door does not know."""
    spaced = _zero_width_spaces_as_spaces(text)
    return [(start, end) for start, end in front_door(language).sentence_spans(spaced)
            if visible(spaced[start:end]).strip()]


def tokenize_with_offsets(sentence: str, language: str = DEFAULT_LANGUAGE) -> list[tuple[str, int, int]]:
    """Tokens of one sentence in ``language`` with their ``[start, end)`` character spans:
    ``sentence[start:end] == token``, except the parts of a contraction split the way the
    language's training text splits it (Portuguese ``da`` -> ``de`` ``a``), which share its span.
    A zero-width space or byte-order mark separates tokens as a space does; a token made only of
    invisible characters (``vocab.INVISIBLE``: direction marks, soft hyphens) is left out."""
    tokens = front_door(language).tokenize_with_offsets(_zero_width_spaces_as_spaces(sentence))
    return [(token, start, end) for token, start, end in tokens if visible(token)]


def tokenize(sentence: str, language: str = DEFAULT_LANGUAGE) -> list[str]:
    """Tokens of one sentence, as written."""
    return [token for token, _, _ in tokenize_with_offsets(sentence, language)]
