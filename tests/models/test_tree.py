"""Tree induction: hand-made cases, and the decoders against brute-force definitions."""

import itertools
import random

import pytest
from nltk import Tree

from onlstm.models.trees.decoders import (
    balanced_spans,
    decode_spans,
    escape_token,
    greedy_spans,
    left_branching_spans,
    random_spans,
    right_branching_prior,
    right_branching_spans,
    spans_to_tree,
    split_spans,
    to_ptb_string,
    tree_to_nested,
    tree_to_spans,
)


def reference_build_tree(depth, sentence):
    """The ON-LSTM reference code's build_tree, transcribed: nested lists."""
    if len(depth) == 1:
        return sentence[0]
    index = max(range(len(depth)), key=lambda i: (depth[i], -i))  # numpy.argmax: first maximum
    parse_tree = []
    if index > 0:
        parse_tree.append(reference_build_tree(depth[:index], sentence[:index]))
    right = sentence[index]
    if index + 1 < len(depth):
        right = [right, reference_build_tree(depth[index + 1 :], sentence[index + 1 :])]
    if not parse_tree:
        return right
    parse_tree.append(right)
    return parse_tree


def nested_spans(tree, start=0):
    """Spans of >= 2 leaves of a nested-list tree."""
    if not isinstance(tree, list):
        return start + 1, set()
    end, spans = start, set()
    for child in tree:
        end, inner = nested_spans(child, end)
        spans |= inner
    if end - start >= 2:
        spans.add((start, end))
    return end, spans


def test_greedy_hand_made():
    # "the cat sat": largest distance at "sat" -> [[the cat] sat]
    assert set(greedy_spans([0.1, 0.2, 0.9])) == {(0, 3), (0, 2)}
    # largest at the first word -> [w0 [w1 w2]] (the word at the split starts the right part)
    assert set(greedy_spans([0.9, 0.2, 0.1])) == {(0, 3), (1, 3)}
    # [[a b] [c [d e]]]: max at c splits [a b] | [c, [d e]]
    assert set(greedy_spans([0.1, 0.3, 0.8, 0.5, 0.2])) == {(0, 5), (0, 2), (2, 5), (3, 5)}
    assert greedy_spans([0.5]) == []
    assert greedy_spans([0.5, 0.1]) == [(0, 2)]


def test_ties_take_the_first_maximum():
    assert set(greedy_spans([0.5, 0.5, 0.5])) == {(0, 3), (1, 3)}


@pytest.mark.parametrize("n", range(1, 9))
def test_greedy_matches_reference_transcription(n):
    rng = random.Random(n)
    for _ in range(200):
        distances = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.7, 0.9]) for _ in range(n)]
        expected = nested_spans(reference_build_tree(distances, list(range(n))))[1]
        assert set(greedy_spans(distances)) == expected


def test_greedy_rule_by_brute_force():
    """Every tree the greedy rule returns is the unique binary tree in which each node
    [lo, hi) with a non-empty left part is split before the first argmax of its span,
    and each node starting at its own argmax is [w, rest]: check by enumerating all
    binary trees over 6 tokens and all distance orderings."""

    def all_trees(lo, hi):
        if hi - lo == 1:
            yield frozenset()
            return
        for split in range(lo + 1, hi):
            for left in all_trees(lo, split):
                for right in all_trees(split, hi):
                    yield left | right | {(lo, hi)}

    def satisfies_rule(spans, distances):
        for lo, hi in spans:
            k = max(range(lo, hi), key=lambda i: (distances[i], -i))
            children = [span for span in spans if span != (lo, hi) and lo <= span[0] and span[1] <= hi]
            if k > lo:
                # the children are [lo, k) (or the word lo) and [k, hi) (or the word k)
                if k - lo >= 2 and (lo, k) not in children:
                    return False
                if hi - k >= 2 and (k, hi) not in children:
                    return False
            elif hi - lo > 2 and (lo + 1, hi) not in children:
                return False
        return True

    n = 6
    trees = [frozenset(tree) for tree in all_trees(0, n)]
    assert len(trees) == 42  # Catalan(5)
    for permutation in itertools.islice(itertools.permutations(range(n)), 0, 720, 7):
        distances = [value / n for value in permutation]
        matching = [tree for tree in trees if satisfies_rule(tree, distances)]
        assert matching == [frozenset(greedy_spans(distances))]


def test_split_decoder_is_binary_and_unbiased():
    # the largest boundary distance is between c and d -> [[a b c] [d e]]
    spans = split_spans([0.0, 0.1, 0.2, 0.9, 0.3])
    assert (0, 3) in spans and (3, 5) in spans
    assert len(spans) == 4  # a binary tree over n tokens has n - 1 nodes


@pytest.mark.parametrize("decoder", ["greedy", "split"])
def test_every_decoder_gives_a_full_binary_tree(decoder):
    rng = random.Random(0)
    for n in range(1, 30):
        distances = [rng.random() for _ in range(n)]
        spans = decode_spans(distances, decoder)
        assert len(spans) == max(n - 1, 0)
        tree = spans_to_tree([str(i) for i in range(n)], spans)
        assert tree.leaves() == [str(i) for i in range(n)]
        assert set(tree_to_spans(tree)) == set(spans)
        for subtree in tree.subtrees():
            assert len(subtree) in (1, 2)


@pytest.mark.parametrize("decoder", ["greedy", "split"])
def test_right_branching_prior_is_the_decoder_on_shifted_distances(decoder):
    rng = random.Random(1)
    for n in range(1, 25):
        distances = [rng.random() for _ in range(n)]
        assert decode_spans(distances, decoder, 0.0) == decode_spans(distances, decoder)
        for strength in (0.1, 0.4, -0.3):
            shifted = [distances[t] - strength * t / n for t in range(n)]
            assert right_branching_prior(distances, strength) == pytest.approx(shifted)
            assert decode_spans(distances, decoder, strength) == decode_spans(shifted, decoder)


def test_right_branching_prior_leans_right_and_left():
    rng = random.Random(2)
    for n in range(2, 25):
        distances = [rng.random() for _ in range(n)]
        # the prior lowers each next token by strength / n = 2, more than any two distances in [0, 1) differ
        assert set(decode_spans(distances, "greedy", 2.0 * n)) == set(right_branching_spans(n))
        assert set(decode_spans(distances, "split", 2.0 * n)) == set(right_branching_spans(n))
        assert set(decode_spans(distances, "split", -2.0 * n)) == set(left_branching_spans(n))
    # a near tie goes to the earlier token: [[a b] [c d]] becomes [a [b [c d]]]
    distances = [0.5, 0.6, 0.61, 0.1]
    assert set(decode_spans(distances, "greedy")) == {(0, 4), (0, 2), (2, 4)}
    assert set(decode_spans(distances, "greedy", 0.1)) == {(0, 4), (1, 4), (2, 4)}


def test_unknown_decoder_is_refused():
    with pytest.raises(ValueError, match="unknown decoder"):
        decode_spans([0.1], "cky")


def test_tree_leaves_and_ptb_string_escape_brackets():
    tokens = ["He", "(", "really", ")", "left"]
    spans = greedy_spans([0.1, 0.2, 0.3, 0.4, 0.9])
    tree = spans_to_tree(tokens, spans)
    assert tree.leaves() == tokens
    text = to_ptb_string(tree)
    assert "-LRB-" in text and "-RRB-" in text and "( " not in text
    parsed = Tree.fromstring(text)
    assert len(parsed.leaves()) == 5
    assert set(tree_to_spans(parsed)) == set(spans)


def nltk_ptb_string(tree, preterminals=None):
    """The brute-force rendering: nltk's own pformat of a deep copy with escaped leaves."""
    escaped = tree.copy(deep=True)
    for index, position in enumerate(escaped.treepositions("leaves")):
        leaf = escape_token(escaped[position])
        if preterminals is None:
            escaped[position] = leaf
        else:
            label = preterminals if isinstance(preterminals, str) else preterminals[index]
            escaped[position] = Tree(escape_token(label), [leaf])
    return escaped.pformat(margin=10**9)


def test_ptb_string_is_nltk_s_pformat_of_the_escaped_tree():
    generator = random.Random(3)
    vocabulary = ["the", "(", ")", "a(b", "c)d", "-LRB-", "{", "}", "[", "]", "x", "N", "é"]
    trees = [Tree("S", []), Tree("S", ["alone"]), Tree.fromstring("(S (NP (DT the) (NN cat)) (VP sat) (. .))")]
    for _ in range(200):
        tokens = [generator.choice(vocabulary) for _ in range(generator.randint(1, 12))]
        trees.append(spans_to_tree(tokens, random_spans(len(tokens), generator)))
    for tree in trees:
        assert to_ptb_string(tree) == nltk_ptb_string(tree)
        assert to_ptb_string(tree, "T") == nltk_ptb_string(tree, "T")
        tags = [generator.choice(["NN", "-LRB-", "(", "DT"]) for _ in tree.leaves()]
        assert to_ptb_string(tree, tags) == nltk_ptb_string(tree, tags)
    with pytest.raises(ValueError, match="2 preterminal labels for 3 leaves"):
        to_ptb_string(spans_to_tree(["a", "b", "c"], [(0, 3), (0, 2)]), ["T", "T"])


def test_nested_form():
    tree = spans_to_tree(["a", "b", "c"], [(0, 3), (0, 2)])
    assert tree_to_nested(tree) == [["a", "b"], "c"]
    assert tree_to_nested(spans_to_tree(["x"], [])) == "x"


def test_baselines():
    assert left_branching_spans(4) == [(0, 4), (0, 3), (0, 2)]
    assert right_branching_spans(4) == [(0, 4), (1, 4), (2, 4)]
    assert set(balanced_spans(5)) == {(0, 5), (0, 3), (0, 2), (3, 5)}


def test_spans_must_cover_the_sentence():
    with pytest.raises(ValueError, match="whole sentence"):
        spans_to_tree(["a", "b", "c"], [(0, 2)])


def test_trees_deeper_than_pythons_call_stack():
    """A right-branching chain is as deep as the sentence is long: every tree function walks
    it without recursion (5,000 tokens, five times Python's default recursion limit)."""
    n = 5000
    tokens = [f"w{index}" for index in range(n)]
    for spans, side in ((decode_spans([0.5] * n, "greedy", 2.0 * n), -1), (decode_spans([0.5] * n, "split", -2.0 * n), 0)):
        tree = spans_to_tree(tokens, spans)
        assert set(tree_to_spans(tree)) == set(spans)
        text = to_ptb_string(tree, preterminals=["T"] * n)
        assert text.count("(T ") == n and text.count("(") == text.count(")") == 2 * n - 1
        nested, depth = tree_to_nested(tree), 0
        while isinstance(nested, list):  # down the chain: the last child (right) or the first (left)
            nested, depth = nested[side], depth + 1
        assert depth == n - 1
    chain = spans_to_tree(tokens[:4], right_branching_spans(4))
    assert tree_to_nested(chain) == ["w0", ["w1", ["w2", "w3"]]]
    assert to_ptb_string(chain) == "(S w0 (X w1 (X w2 w3)))"
