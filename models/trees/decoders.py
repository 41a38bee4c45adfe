"""Syntactic distances -> binary trees, in pure Python (no torch).

The ON-LSTM paper (Shen et al. 2019, section 5.2) induces a tree top-down from
the per-token distances ``d_t = 1 - mean(master forget gate at t)``: in a span,
the token with the largest distance starts the right part, and the right part is
``[that token, rest of the span]``.  ``greedy_spans`` implements exactly that rule
(``numpy.argmax`` tie-breaking: the first maximum wins).

``split_spans`` is an unbiased alternative (Dyer, Melis and Blunsom 2019 show the
greedy rule favours right-branching trees): the largest distance marks a split
*between* two tokens and both halves are built recursively.

``right_branching_prior`` makes a bias explicit and tunable: it lowers the distance of
token t of n by ``strength * t / n`` before decoding, so that in any span an earlier
split wins a near tie; 0 is the model's own distances, a large strength gives the
right-branching tree, a negative one leans left.  English is mostly right-branching
(the right-branching baseline scores 39.3 on dev); a model's default strength is chosen
on one half of dev and reported on the other (model card).

A tree is represented by its spans: ``(start, end)`` token offsets, end exclusive,
of every constituent with two or more tokens, the whole sentence included, in
pre-order.  ``spans_to_tree`` turns spans into an ``nltk.Tree``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from nltk import Tree

Span = tuple[int, int]

NODE_LABEL = "X"
ROOT_LABEL = "S"

# nltk prints "(" and ")" inside leaves verbatim, which makes the bracketed
# string unreadable; PTB spells them -LRB- / -RRB- (and their brace/bracket kin).
_PTB_ESCAPES = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_PTB_UNESCAPES = {value: key for key, value in _PTB_ESCAPES.items()}
_CLOSE, _SPACE = object(), object()  # markers on to_ptb_string's stack
# distances lie in [0, 1], so a right-branching prior of strength n already gives every sentence
# of up to n words the all-right (or, negative, all-left) tree: a larger one is taken for a typo
# (the library, the HTTP API and training refuse it)
MAX_RIGHT_BRANCHING_BIAS = 100.0
# ParseOptions.punctuation_first: what is added to the distance of a word that follows a mark.
# Distances lie in [0, 1], so those boundaries come before the others unless the prior outweighs
# the difference; the value measured (training/sweeps/results/preregistration-punctuation-boundaries.md)
PUNCTUATION_FIRST_BOOST = 1.0


def _argmax(values: Sequence[float], start: int, end: int) -> int:
    best = start
    for index in range(start + 1, end):
        if values[index] > values[best]:
            best = index
    return best


def greedy_spans(distances: Sequence[float]) -> list[Span]:
    """The paper's rule: in ``[lo, hi)``, ``k = argmax d`` gives ``[[lo, k), [k, [k+1, hi)]]``.

    Args:
        distances: one distance per token, length n >= 1.
    Returns:
        spans of length >= 2 in pre-order, ``(0, n)`` first when n >= 2.
    """
    spans: list[Span] = []
    # the recursion build(lo, k); emit (k, hi); build(k + 1, hi), with an explicit stack: a
    # right-branching chain is as deep as the sentence is long, deeper than Python's call stack
    pending: list[tuple[bool, int, int]] = [(True, 0, len(distances))]  # (build?, lo, hi)
    while pending:
        build, lo, hi = pending.pop()
        if not build:
            spans.append((lo, hi))
            continue
        if hi - lo < 2:
            continue
        spans.append((lo, hi))
        k = _argmax(distances, lo, hi)
        pending.append((True, k + 1, hi))
        if k > lo:
            # the right part [w_k, rest] is a constituent of its own
            if hi - k >= 2:
                pending.append((False, k, hi))
            pending.append((True, lo, k))
    return spans


def split_spans(distances: Sequence[float]) -> list[Span]:
    """Unbiased top-down rule: split ``[lo, hi)`` before ``k = argmax d[lo+1:hi]``.

    ``distances[k]`` is read as the distance between tokens ``k-1`` and ``k``;
    ``distances[0]`` is never used.
    """
    spans: list[Span] = []
    pending = [(0, len(distances))]  # pre-order with an explicit stack, as greedy_spans
    while pending:
        lo, hi = pending.pop()
        if hi - lo < 2:
            continue
        spans.append((lo, hi))
        k = _argmax(distances, lo + 1, hi)
        pending.append((k, hi))
        pending.append((lo, k))
    return spans


DECODERS: dict[str, Callable[[Sequence[float]], list[Span]]] = {
    "greedy": greedy_spans,
    "split": split_spans,
}


def right_branching_prior(distances: Sequence[float], strength: float) -> list[float]:
    """``d_t - strength * t / n`` for token t (0-based) of n: a linear prior towards
    right-branching trees (left-branching when ``strength`` is negative)."""
    n = len(distances)
    if not strength:
        return list(distances)
    return [distance - strength * position / n for position, distance in enumerate(distances)]


def decode_spans(distances: Sequence[float], decoder: str = "greedy", right_branching_bias: float = 0.0) -> list[Span]:
    """Spans from distances with the named decoder (``greedy`` or ``split``), after
    ``right_branching_prior(distances, right_branching_bias)``."""
    try:
        decode = DECODERS[decoder]
    except KeyError:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {sorted(DECODERS)}") from None
    return decode(right_branching_prior(distances, right_branching_bias))


def spans_to_tree(tokens: Sequence[str], spans: Sequence[Span]) -> Tree:
    """Build an ``nltk.Tree`` whose leaves are ``tokens`` and whose nodes are ``spans``.

    ``spans`` must be a nested bracketing that includes the whole sentence (the
    decoders here produce binary ones); their order does not matter.  The root is
    labelled ``S``, other nodes ``X``; a one-token sentence is ``(S token)``.
    """
    n = len(tokens)
    if n == 0:
        raise ValueError("cannot build a tree over zero tokens")
    span_set = set(spans)
    if n >= 2 and (0, n) not in span_set:
        raise ValueError(f"spans must include the whole sentence (0, {n})")

    def child_end(start: int, parent: Span) -> int:
        # the child starting here is the longest span strictly inside the parent
        longest = parent[1] - 1 if start == parent[0] else parent[1]
        for end in range(longest, start + 1, -1):
            if (start, end) in span_set:
                return end
        return start + 1

    def children_of(lo: int, hi: int) -> list[Span]:
        children, position = [], lo
        while position < hi:
            end = child_end(position, (lo, hi))
            children.append((position, end))
            position = end
        return children

    # nodes are built after their children with an explicit stack: a tree as deep as the
    # sentence is long would overflow Python's call stack
    built: dict[Span, Tree] = {}
    pending: list[tuple[Span, list[Span] | None]] = [((0, n), None)]
    while pending:
        (lo, hi), children = pending.pop()
        if children is None:
            children = children_of(lo, hi)
            pending.append(((lo, hi), children))
            pending.extend((child, None) for child in children if child[1] - child[0] > 1)
            continue
        label = ROOT_LABEL if (lo, hi) == (0, n) else NODE_LABEL
        built[lo, hi] = Tree(label, [tokens[first] if last - first == 1 else built.pop((first, last))
                                     for first, last in children])
    return built[0, n]


def _preorder(tree: Tree) -> list[Tree]:
    """Every subtree (not the leaves), each before its descendants, without recursion."""
    order, pending = [], [tree]
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(child for child in reversed(node) if isinstance(child, Tree))
    return order


_BRACKETING_PIECE = re.compile(r"\(|\)|[^\s()]+")


def bracketing_spans(text: str) -> list[Span]:
    """Spans of two or more leaves of a bracketed tree (``to_ptb_string``'s text), each once, sorted
    by (start, -end): ``tree_to_spans(Tree.fromstring(text))`` read with a stack, at any depth
    (NLTK refuses trees deeper than 500 levels, and recursion ends near 1,000).  ``ValueError``
    for brackets that do not balance."""
    starts: list[int] = []
    spans: set[Span] = set()
    leaves, expect_label = 0, False
    for match in _BRACKETING_PIECE.finditer(text):
        piece = match.group()
        if piece == "(":
            starts.append(leaves)
            expect_label = True
        elif piece == ")":
            if not starts:
                raise ValueError(f"a ')' closes no bracket at character {match.start()} of the tree")
            start = starts.pop()
            if leaves - start >= 2:
                spans.add((start, leaves))
            expect_label = False
        elif expect_label:
            expect_label = False
        else:
            leaves += 1
    if starts:
        raise ValueError(f"{len(starts)} bracket(s) of the tree are not closed")
    return sorted(spans, key=lambda span: (span[0], -span[1]))


def follows_mark(is_word: Sequence[bool]) -> list[bool]:
    """Per word (each True of ``is_word``, in order): whether a token that is not a word (a mark)
    stands between it and the word before it: where ``punctuation_first`` splits first."""
    flags, seen_word, mark_since = [], False, False
    for word in is_word:
        if word:
            flags.append(seen_word and mark_since)
            seen_word, mark_since = True, False
        else:
            mark_since = True
    return flags


def punctuation_first_distances(distances: Sequence[float], after_mark: Sequence[bool]) -> list[float]:
    """``distances`` of the words with ``PUNCTUATION_FIRST_BOOST`` added where ``after_mark``
    (``follows_mark``): the decoders then split before those words first."""
    return [distance + PUNCTUATION_FIRST_BOOST * flag for distance, flag in zip(distances, after_mark)]


def count_leaves(tree: Tree | str) -> int:
    """``len(tree.leaves())`` without nltk's recursion (a chain of thousands of words is as deep)."""
    if not isinstance(tree, Tree):
        return 1
    return sum(1 for node in _preorder(tree) for child in node if not isinstance(child, Tree))


def tree_to_spans(tree: Tree) -> list[Span]:
    """Spans of two or more leaves of any ``nltk.Tree`` (each once), sorted by (start, -end)."""
    if not isinstance(tree, Tree):
        return []
    order = _preorder(tree)
    sizes: dict[int, int] = {}
    for node in reversed(order):  # children before their parents
        sizes[id(node)] = sum(sizes[id(child)] if isinstance(child, Tree) else 1 for child in node)
    starts, spans = {id(tree): 0}, set()
    for node in order:  # parents before their children
        position = starts[id(node)]
        if sizes[id(node)] >= 2:
            spans.add((position, position + sizes[id(node)]))
        for child in node:
            if isinstance(child, Tree):
                starts[id(child)] = position
            position += sizes[id(child)] if isinstance(child, Tree) else 1
    return sorted(spans, key=lambda span: (span[0], -span[1]))


def tree_to_nested(tree: Tree | str) -> list | str:
    """Nested lists of tokens: ``[["The", "cat"], ["sat"]]``-style JSON form of a tree."""

    def collapses(node: Tree) -> bool:  # a node over one bare token is that token
        return len(node) == 1 and not isinstance(node[0], Tree)

    if not isinstance(tree, Tree):
        return tree
    if collapses(tree):
        return tree[0]
    root: list = []
    pending = [(tree, root)]
    while pending:
        node, out = pending.pop()
        for child in node:
            if not isinstance(child, Tree):
                out.append(child)
            elif collapses(child):
                out.append(child[0])
            else:
                inner: list = []
                out.append(inner)
                pending.append((child, inner))
    return root


def escape_token(token: str) -> str:
    """PTB spelling of a bracket token (``(`` -> ``-LRB-``), brackets inside tokens too."""
    if token in _PTB_ESCAPES:
        return _PTB_ESCAPES[token]
    return token.replace("(", "-LRB-").replace(")", "-RRB-")


def unescape_token(token: str) -> str:
    """Inverse of ``escape_token`` for whole PTB escape tokens (``-LRB-`` -> ``(``)."""
    return _PTB_UNESCAPES.get(token, token)


def to_ptb_string(tree: Tree, preterminals: str | Sequence[str] | None = None) -> str:
    """One-line PTB bracketed string with brackets in leaves escaped: what nltk's
    ``pformat`` prints for a copy with escaped leaves, written directly (the copy and
    ``pformat`` were a twentieth of ``onlstm parse``'s time).

    Args:
        preterminals: put every leaf under a preterminal, as EVALB and most treebank tools
            expect: one label for all (``"T"`` gives ``(X (T The) (T cat))``), or one per
            leaf (the input's own part-of-speech tags). ``None``: bare leaves.
    """
    if preterminals is not None and not isinstance(preterminals, str):
        n_leaves = sum(not isinstance(child, Tree) for node in _preorder(tree) for child in node)
        if len(preterminals) != n_leaves:
            raise ValueError(f"{len(preterminals)} preterminal labels for {n_leaves} leaves")
    leaf_index = 0
    parts: list[str] = []
    # an explicit stack (a tree as deep as the sentence is long would overflow Python's): a node
    # writes "(label", then " child" for each child, then ")"
    pending: list = [tree]
    while pending:
        item = pending.pop()
        if item is _CLOSE or item is _SPACE:
            parts.append(")" if item is _CLOSE else " ")
        elif isinstance(item, Tree):
            label = item.label() if isinstance(item.label(), str) else repr(item.label())
            parts.append(f"({label}" if len(item) else f"({label} ")
            pending.append(_CLOSE)
            for child in reversed(item):
                pending.append(child)
                pending.append(_SPACE)
        else:
            leaf = escape_token(item)
            if preterminals is not None:
                label = preterminals if isinstance(preterminals, str) else preterminals[leaf_index]
                leaf = f"({escape_token(label)} {leaf})"
            leaf_index += 1
            parts.append(leaf)
    return "".join(parts)


def left_branching_spans(n: int) -> list[Span]:
    """``[[[w1 w2] w3] w4]``."""
    return [(0, end) for end in range(n, 1, -1)]


def right_branching_spans(n: int) -> list[Span]:
    """``[w1 [w2 [w3 w4]]]``."""
    return [(start, n) for start in range(0, n - 1)]


def balanced_spans(n: int) -> list[Span]:
    """Split in the middle, recursively (the left half gets the larger share, as in the
    reference baseline: 5 words -> [[w1 w2 w3] [w4 w5]])."""
    spans: list[Span] = []

    def build(lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        spans.append((lo, hi))
        middle = (lo + hi + 1) // 2
        build(lo, middle)
        build(middle, hi)

    build(0, n)
    return spans


def random_spans(n: int, rng: random.Random) -> list[Span]:
    """A random binary tree: each split point drawn uniformly, top-down."""
    spans: list[Span] = []

    def build(lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        spans.append((lo, hi))
        split = rng.randint(lo + 1, hi - 1)
        build(lo, split)
        build(split, hi)

    build(0, n)
    return spans
