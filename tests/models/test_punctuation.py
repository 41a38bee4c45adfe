"""Punctuation put back into a words-only tree where a treebank puts it, on hand-made trees."""

import pytest

from onlstm.models import punctuation
from onlstm.models.tree import spans_to_tree, to_ptb_string, tree_to_spans
from onlstm.models.vocab import is_punctuation
from onlstm.training.evaluate import restrict_spans


def reattach(words_tree: str, tokens: list[str], offsets=None) -> str:
    """Attach the marks of ``tokens`` to the tree over its words, written as a bracketed string."""
    from nltk import Tree

    word_spans = tree_to_spans(Tree.fromstring(words_tree))
    is_mark = [is_punctuation(token) for token in tokens]
    kept = [index for index, mark in enumerate(is_mark) if not mark]
    sides = punctuation.directions(tokens, offsets, is_mark)
    spans = punctuation.attach(word_spans, kept, sides, tokens)
    return to_ptb_string(spans_to_tree(tokens, spans))


def test_comma_joins_the_constituent_before_it_not_the_word_after():
    tokens = "the man , which left , sat .".split()
    tree = reattach("(S (X (X the man) (X which left)) sat)", tokens)
    assert tree == "(S (X (X the man ,) (X which left) ,) sat .)"
    assert "(X , which" not in tree


def test_closing_marks_join_what_they_close_and_opening_marks_what_follows():
    tokens = ["He", "said", "(", "quietly", ")", "that", "it", "was", "over", "."]
    tree = reattach("(S He (X said (X quietly (X that (X it (X was over))))))", tokens)
    assert "(X -LRB- quietly -RRB-" in tree or "-LRB- (X quietly" in tree
    assert "(X -RRB- " not in tree  # a closing bracket never starts a constituent
    assert tree.endswith(". )") or tree.endswith(" .)")


def test_quotes_by_spacing_and_by_turns():
    text = 'He said "Dr. Jerome left" today .'
    tokens = ["He", "said", '"', "Dr.", "Jerome", "left", '"', "today", "."]
    offsets = [(0, 2), (3, 7), (8, 9), (9, 12), (13, 19), (20, 24), (24, 25), (26, 31), (32, 33)]
    assert [text[start:end] for start, end in offsets] == tokens
    sides = punctuation.directions(tokens, offsets, [is_punctuation(token) for token in tokens])
    assert sides[2] == punctuation.RIGHT and sides[6] == punctuation.LEFT
    # without offsets, the first quote opens and the second closes
    assert punctuation.directions(tokens, None, [is_punctuation(token) for token in tokens]) == sides
    tree = reattach("(S He (X said (X (X (X Dr. Jerome) left) today)))", tokens, offsets)
    assert '(X " (X Dr. Jerome) left ")' in tree
    assert '(X " (X Dr.' not in tree.replace('(X " (X Dr. Jerome) left ")', "")


def test_an_opening_quote_pairs_with_its_closing_quote_not_a_comma():
    tokens = ['"', "Dr.", "Jerome", "left", ",", "he", "said", '"', "today", "."]
    tree = reattach("(S (X (X (X Dr. Jerome) left) (X he said)) today)", tokens)
    assert '(X " (X (X Dr. Jerome) left ,) (X he said) ")' in tree


def test_currency_joins_the_amount():
    tokens = ["It", "cost", "$", "5", "million", "."]
    tree = reattach("(S It (X cost (X 5 million)))", tokens)
    assert "(X $ 5 million)" in tree


@pytest.mark.parametrize(
    "words_tree,tokens",
    [
        ("(S (X a b) (X c d))", ["``", "a", "b", ",", "c", "d", ".", "''"]),
        ("(S a (X b (X c d)))", ["(", "a", ")", "b", "--", "c", ";", "d", "!", "?"]),
        ("(S a b)", [",", "a", "b", "("]),
        ("(S (X (X a b) c) d)", ["a", "'", "b", "'", "c", ":", "d"]),
    ],
)
def test_restricted_to_the_words_the_tree_is_the_words_tree(words_tree, tokens):
    from nltk import Tree

    word_spans = set(tree_to_spans(Tree.fromstring(words_tree)))
    is_mark = [is_punctuation(token) for token in tokens]
    kept = [index for index, mark in enumerate(is_mark) if not mark]
    spans = punctuation.attach(sorted(word_spans), kept, punctuation.directions(tokens, None, is_mark))
    assert set(restrict_spans(spans, [not mark for mark in is_mark])) == word_spans
    assert (0, len(tokens)) in spans
    spans_to_tree(tokens, spans)  # a well-nested bracketing: no crossing spans


def scanning_attach(word_spans, word_positions, sides, tokens):
    """The brute-force rule: every mark scans all spans for the one it joins."""
    spans = {(word_positions[start], word_positions[end - 1] + 1) for start, end in word_spans}
    for position in range(len(sides)):
        ending_here = [span for span in spans if span[1] == position]
        if sides[position] == punctuation.LEFT and ending_here:
            largest = min(ending_here)
            spans.discard(largest)
            spans.add((largest[0], position + 1))
    partners = punctuation._pairs(sides, tokens)
    for position in range(len(sides) - 1, -1, -1):
        starting_after = [span for span in spans if span[0] == position + 1]
        if sides[position] == punctuation.RIGHT and starting_after:
            closed = [span for span in starting_after if span[1] == partners.get(position, -2) + 1]
            chosen = closed[0] if closed else max(starting_after, key=lambda span: span[1])
            spans.discard(chosen)
            spans.add((position, chosen[1]))
    if len(sides) >= 2:
        spans.add((0, len(sides)))
    return sorted(spans, key=lambda span: (span[0], -span[1]))


def test_attach_equals_the_scanning_rule_on_random_sentences():
    import random

    from onlstm.models.tree import decode_spans

    generator = random.Random(5)
    marks = [",", ".", "(", ")", "``", "''", '"', "$", "--", ";", "!", "'"]
    for _ in range(500):
        tokens = [generator.choice(marks) if generator.random() < 0.35 else f"w{index}" for index in range(20)]
        tokens = tokens[: generator.randint(1, 20)]
        is_mark = [is_punctuation(token) for token in tokens]
        kept = [index for index, mark in enumerate(is_mark) if not mark]
        if not kept:
            continue
        word_spans = decode_spans([generator.random() for _ in kept], generator.choice(["greedy", "split"]))
        sides = punctuation.directions(tokens, None, is_mark)
        expected = scanning_attach(word_spans, kept, sides, tokens)
        assert punctuation.attach(word_spans, kept, sides, tokens) == expected, tokens
