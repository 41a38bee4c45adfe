"""Putting punctuation back into a tree built over the words alone.

Models trained on words only (the reference protocol, and the bundled model) never see
punctuation, so the parser removes it before the model, builds the tree over the words,
and then attaches each mark where a treebank puts it:

* opening marks (``(``, ``“``, an opening ``"``) and currency signs join what follows them;
* closing marks (``)``, ``”``, a closing ``"``) join what they close, and commas, colons,
  dashes and final marks (``. ! ?``) join the constituent before them.

A mark that joins the words before it makes a new node with the largest constituent that
ends with the word before it (``(X (X the old man) ,)``, not ``(X , which)``); one that
joins the words after it, with the largest constituent that starts with the word after it;
a pair of brackets or quotes encloses what the words between them allow.  The tree stays
binary (n tokens, n - 1 spans), and restricted to the words it is exactly the words-only
tree.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from .decoders import Span

LEFT = "left"  # joins the words before it
RIGHT = "right"  # joins the words after it

_OPENING = frozenset({"(", "[", "{", "“", "‘", "«", "``", "`", "-LRB-", "-LSB-", "-LCB-", "¿", "¡"})
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
    """Spans of a binary tree over all tokens from the spans of a binary tree over the words.

    Each mark is inserted as a leaf beside one constituent ``X`` (a word or a node), joining it
    in a new node ``(X mark)`` or ``(mark X)``: every node keeps two children, so n tokens give
    n - 1 spans, and deleting the marks (and the nodes left with one child) gives back the
    words' tree exactly.  ``X`` is the largest constituent that ends with the token before the
    mark (marks joining the left) or starts with the token after it (marks joining the right);
    a closing mark stops at the node its opening mark made, so ``( see Table 2 )`` stays
    together, and an opening mark takes nothing beyond its closing mark.

    Args:
        word_spans: the words' binary tree as constituents ``[start, end)`` over word indices,
            the whole sentence included (any order).
        word_positions: for each word, its index among all tokens (increasing).
        sides: per token, ``LEFT``/``RIGHT`` for marks and ``None`` for words (``directions``).
        tokens: the tokens, to pair opening and closing marks (without them, a mark joining the
            left closes the nearest opening one).
    Returns:
        constituents over token indices, the whole sentence included when it has >= 2 tokens,
        sorted by (start, -end).
    """
    n_tokens = len(sides)
    if not word_positions:  # marks only: no words to join, the right-branching tree over the marks
        return [(start, n_tokens) for start in range(n_tokens - 1)]
    spans = _SpanIndex((word_positions[start], word_positions[end - 1] + 1) for start, end in word_spans)
    placed = [side is None for side in sides]
    partners = _pairs(sides, tokens)
    # Opening marks first, right to left: a closing mark then finds the node its opening mark made.
    # Every token after an opening mark is placed by then but for marks joining the left.
    for position in range(n_tokens - 1, -1, -1):
        if sides[position] == RIGHT:
            anchor = placed.index(True, position + 1)
            spans.join_right(position, anchor, partners.get(position))
            placed[position] = True
    closing_of = {closing: opening for opening, closing in partners.items()}
    # Then the rest, left to right: every token before such a mark is placed, so it joins the
    # constituents ending at the token just before it.
    for position in range(n_tokens):
        if sides[position] == LEFT:
            spans.join_left(position, closing_of.get(position))
    return sorted(spans.spans, key=lambda span: (span[0], -span[1]))


class _SpanIndex:
    """A set of spans with the starts of those ending at each position and the ends of those
    starting at each: a mark finds its constituent without scanning every span.  A span runs
    from its first to its last placed token; marks not placed yet may lie inside it."""

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

    def join_left(self, mark: int, opening: int | None) -> None:
        """``(X mark)`` for the largest X ending at ``mark`` (starting at or after ``opening``, if
        one does); the nodes around X that ended there now end after the mark."""
        starts = self.by_end.get(mark, set())
        eligible = [start for start in starts if opening is None or start >= opening]
        # none inside the pair: a mark between (the "." of `it is . "`) joined a larger constituent,
        # which the closing mark then joins too, rather than that mark alone
        joined = min(eligible or starts or [mark - 1])
        for start in [start for start in starts if start < joined]:
            self.move((start, mark), (start, mark + 1))
        self.add((joined, mark + 1))

    def join_right(self, mark: int, anchor: int, closing: int | None) -> None:
        """``(mark X)`` for the largest X starting at ``anchor`` (ending at or before ``closing``,
        if given); the nodes around X that started there now start at the mark."""
        ends = self.by_start.get(anchor, set())
        eligible = [end for end in ends if closing is None or end <= closing]
        joined = max(eligible) if eligible else anchor + 1
        for end in [end for end in ends if end > joined]:
            self.move((anchor, end), (mark, end))
        self.add((mark, joined))


# what each closing mark closes (a straight quote closes its own kind)
_CLOSES = {")": {"("}, "]": {"["}, "}": {"{"}, "-RRB-": {"-LRB-", "("}, "-RSB-": {"-LSB-", "["},
           "-RCB-": {"-LCB-", "{"}, "”": {"“", '"'}, "’": {"‘", "'", "`"}, "»": {"«"}, "''": {"``", '"'},
           '"': {'"', "“", "``"}, "'": {"'", "‘", "`"}}


def _pairs(sides: Sequence[str | None], tokens: Sequence[str] | None) -> dict[int, int]:
    """Each opening mark's closing mark: the nearest closing bracket or quote of its kind with a
    word between them (``" Yes , "`` pairs the two quotes); openings left unclosed pair with nothing."""
    partners: dict[int, int] = {}
    waiting: list[int] = []  # opening marks, innermost last
    last_word = -1
    for position, side in enumerate(sides):
        if side is None:
            last_word = position
        elif side == RIGHT:
            waiting.append(position)
        elif tokens is None:
            if waiting and last_word > waiting[-1]:
                partners[waiting.pop()] = position
        else:
            opens = _CLOSES.get(tokens[position], set())
            match = next((depth for depth in range(len(waiting) - 1, -1, -1) if tokens[waiting[depth]] in opens), None)
            if match is not None and last_word > waiting[match]:
                partners[waiting[match]] = position
                del waiting[match:]  # openings inside the pair that never closed stay unpaired
    return partners
