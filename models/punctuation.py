"""Putting punctuation back into a tree built over the words alone.

Models trained on words only (the reference protocol, and the bundled model) never see
punctuation, so the parser removes it before the model, builds the tree over the words,
and then attaches each mark where a treebank puts it:

* opening marks (``(``, ``“``, an opening ``"``) and currency signs join what follows them;
* closing marks (``)``, ``”``, a closing ``"``) join what they close, and commas, colons,
  dashes and final marks (``. ! ?``) join the constituent before them.

A mark that joins the words before it becomes the last child of the largest constituent
that ends with the word before it (``(X (X the old man) ,)``, not ``(X , which)``); one
that joins the words after it becomes the first child of the largest constituent that
starts with the word after it. Where there is no such constituent the mark hangs from the
smallest one around it. Restricted to the words, the tree is exactly the words-only tree.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from .tree import Span

LEFT = "left"  # joins the words before it
RIGHT = "right"  # joins the words after it

_OPENING = frozenset({"(", "[", "{", "“", "‘", "«", "``", "`", "-LRB-", "-LSB-", "-LCB-", "¿", "¡"})
_CLOSING = frozenset({")", "]", "}", "”", "’", "»", "''", "-RRB-", "-RSB-", "-RCB-"})
_AMBIGUOUS_QUOTES = frozenset({'"', "'"})


def directions(tokens: Sequence[str], offsets: Sequence[tuple[int, int]] | None = None,
               is_mark: Sequence[bool] | None = None) -> list[str | None]:
    """Per token: ``LEFT`` or ``RIGHT`` for punctuation, ``None`` for words.

    Straight quotes are opening or closing by their spacing when ``offsets`` are known (an
    opening quote touches the word after it), otherwise by turns (first opens, next closes).
    """
    marks = is_mark if is_mark is not None else [True] * len(tokens)
    result: list[str | None] = []
    open_quotes: dict[str, bool] = {}
    for index, (token, mark) in enumerate(zip(tokens, marks)):
        if not mark:
            result.append(None)
        elif token in _OPENING or (len(token) == 1 and unicodedata.category(token) in ("Sc", "Ps", "Pi")):
            result.append(RIGHT)
        elif token in _AMBIGUOUS_QUOTES:
            opening = _quote_opens(token, index, tokens, offsets, open_quotes.get(token, False))
            open_quotes[token] = opening
            result.append(RIGHT if opening else LEFT)
        else:
            result.append(LEFT)
    # nothing to join on one side: a leading "," joins what follows, a trailing "(" what precedes
    words = [index for index, direction in enumerate(result) if direction is None]
    if words:
        for index, direction in enumerate(result):
            if direction == LEFT and index < words[0]:
                result[index] = RIGHT
            elif direction == RIGHT and index > words[-1]:
                result[index] = LEFT
    return result


def _quote_opens(token: str, index: int, tokens: Sequence[str], offsets: Sequence[tuple[int, int]] | None,
                 already_open: bool) -> bool:
    if offsets is not None:
        touches_next = index + 1 < len(tokens) and offsets[index + 1][0] == offsets[index][1]
        touches_previous = index > 0 and offsets[index - 1][1] == offsets[index][0]
        if touches_next != touches_previous:
            return touches_next
    return not already_open


def attach(word_spans: Sequence[Span], word_positions: Sequence[int], sides: Sequence[str | None],
           tokens: Sequence[str] | None = None) -> list[Span]:
    """Spans over all tokens from spans over the words and the side each mark joins.

    Args:
        word_spans: constituents over word indices ``[start, end)`` (pre-order or any order).
        word_positions: for each word, its index among all tokens (increasing).
        sides: per token, ``LEFT``/``RIGHT`` for marks and ``None`` for words (``directions``).
        tokens: the tokens, to pair opening and closing marks (without them, any mark joining the left closes).
    Returns:
        constituents over token indices, the whole sentence included when it has >= 2 tokens.
    """
    n_tokens = len(sides)
    spans = _SpanIndex((word_positions[start], word_positions[end - 1] + 1) for start, end in word_spans)
    # marks joining the left, left to right, so that ". ”" both join the sentence before them
    for position in range(n_tokens):
        starts = spans.by_end.get(position)
        if sides[position] == LEFT and starts:
            largest = min(starts)
            spans.move((largest, position), (largest, position + 1))
    partners = _pairs(sides, tokens)
    for position in range(n_tokens - 1, -1, -1):
        ends = spans.by_start.get(position + 1)
        if sides[position] == RIGHT and ends:
            # an opening mark joins the constituent its closing mark ends, else the largest one
            closing = partners.get(position, -2) + 1
            end = closing if closing in ends else max(ends)
            spans.move((position + 1, end), (position, end))
    if n_tokens >= 2:
        spans.add((0, n_tokens))
    return sorted(spans.spans, key=lambda span: (span[0], -span[1]))


class _SpanIndex:
    """A set of spans with the starts of those ending at each position and the ends of those
    starting at each: a mark finds its constituent without scanning every span."""

    def __init__(self, spans: Iterable[Span]):
        self.spans: set[Span] = set()
        self.by_end: dict[int, set[int]] = {}
        self.by_start: dict[int, set[int]] = {}
        for span in spans:
            self.add(span)

    def add(self, span: Span) -> None:
        self.spans.add(span)
        self.by_end.setdefault(span[1], set()).add(span[0])
        self.by_start.setdefault(span[0], set()).add(span[1])

    def move(self, old: Span, new: Span) -> None:
        self.spans.discard(old)
        self.by_end[old[1]].discard(old[0])
        self.by_start[old[0]].discard(old[1])
        self.add(new)


def _pairs(sides: Sequence[str | None], tokens: Sequence[str] | None) -> dict[int, int]:
    """Each opening mark's closing mark: the next closing bracket or quote after the words that follow it."""
    partners: dict[int, int] = {}
    waiting: list[int] = []
    for position, side in enumerate(sides):
        closes = tokens is None or tokens[position] in _CLOSING or tokens[position] in _AMBIGUOUS_QUOTES
        if side == RIGHT:
            waiting.append(position)
        elif side == LEFT and closes and waiting and position > waiting[-1] + 1 and sides[position - 1] is None:
            partners[waiting.pop()] = position
    return partners
