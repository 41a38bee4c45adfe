"""Punctuation put back into a words-only tree where a treebank puts it, on hand-made trees."""

import pytest

from onlstm.models.text.vocab import is_punctuation
from onlstm.models.trees import punctuation
from onlstm.models.trees.decoders import decode_spans, spans_to_tree, to_ptb_string, tree_to_spans
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
    assert tree == "(S (X (X (X (X (X the man) ,) (X which left)) ,) sat) .)"
    assert "(X , which" not in tree


def test_the_final_mark_makes_a_binary_node_around_the_sentence():
    tokens = "The old man saw the dog with a telescope .".split()
    tree = reattach("(S (X (X The old) man) (X saw (X (X the dog) (X with (X a telescope)))))", tokens)
    assert tree == "(S (X (X (X The old) man) (X saw (X (X the dog) (X with (X a telescope))))) .)"


def test_closing_marks_join_what_they_close_and_opening_marks_what_follows():
    tokens = ["He", "said", "(", "quietly", ")", "that", "it", "was", "over", "."]
    tree = reattach("(S He (X said (X quietly (X that (X it (X was over))))))", tokens)
    assert "(X (X -LRB- quietly) -RRB-)" in tree
    assert "(X -RRB- " not in tree  # a closing bracket never starts a constituent
    assert tree.endswith(" .)")


def test_a_closing_bracket_stays_with_what_it_closes():
    tokens = ["Profits", "rose", "(", "see", "Table", "2", ")", "."]
    tree = reattach("(S Profits (X rose (X see (X Table 2))))", tokens)
    assert tree == "(S (X Profits (X rose (X (X -LRB- (X see (X Table 2))) -RRB-))) .)"


def test_brackets_enclose_what_the_words_tree_allows():
    # the words' tree joins "founded" with what follows the bracket: the brackets cannot enclose
    # "founded in 1998" without changing it, so each joins the largest constituent inside the pair
    tokens = ["The", "company", "(", "founded", "in", "1998", ")", "grew", "fast", "."]
    tree = reattach("(S (X The company) (X founded (X (X in 1998) (X grew fast))))", tokens)
    assert tree == "(S (X (X The company) (X (X -LRB- founded) (X (X (X in 1998) -RRB-) (X grew fast)))) .)"
    together = reattach("(S (X (X The company) (X founded (X in 1998))) (X grew fast))", tokens)
    assert "(X (X -LRB- (X founded (X in 1998))) -RRB-)" in together


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
    assert '(X (X " (X (X Dr. Jerome) left)) ")' in tree


def test_an_opening_quote_pairs_with_its_closing_quote_not_a_comma():
    tokens = ['"', "Dr.", "Jerome", "left", ",", "he", "said", '"', "today", "."]
    tree = reattach("(S (X (X (X Dr. Jerome) left) (X he said)) today)", tokens)
    assert tree == '(S (X (X (X " (X (X (X (X Dr. Jerome) left) ,) (X he said))) ") today) .)'


def test_a_quote_after_a_comma_still_closes_its_quotation():
    tokens = ['"', "Yes", ",", '"', "he", "said", "."]
    tree = reattach("(S (X Yes he) said)", tokens)
    assert tree.startswith('(S (X (X (X (X (X " Yes) ,) ")')


def test_currency_joins_the_amount():
    tokens = ["It", "cost", "$", "5", "million", "."]
    tree = reattach("(S It (X cost (X 5 million)))", tokens)
    assert "(X $ (X 5 million))" in tree


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
    assert (0, len(tokens)) in spans and len(set(spans)) == len(tokens) - 1
    assert is_binary(spans_to_tree(tokens, spans))  # well nested, two children everywhere


def is_binary(tree) -> bool:
    from nltk import Tree

    return all(len(node) == 2 for node in tree.subtrees()) if len(tree.leaves()) >= 2 else isinstance(tree, Tree)


class Node:
    """A node of the oracle's tree: children (Nodes or leaf positions) and a parent."""

    def __init__(self, children):
        self.children, self.parent = list(children), None
        for child in self.children:
            if isinstance(child, Node):
                child.parent = self

    def edge(self, side: int) -> int:
        node = self
        while isinstance(node, Node):
            node = node.children[side]
        return node


def climbing_attach(word_spans, word_positions, sides, tokens):
    """The rule written as the tree insertion it is: each mark climbs from its neighbouring leaf,
    through every ancestor, to the node it joins (no span index)."""
    n = len(sides)
    if not word_positions:
        return [(start, n) for start in range(n - 1)]
    spans = sorted({(word_positions[start], word_positions[end - 1] + 1) for start, end in word_spans},
                   key=lambda span: (span[1] - span[0]))
    leaf_parent, nodes = {}, {}
    for start, end in spans:  # smallest first: children exist before their parents
        inside = [span for span in nodes if start <= span[0] and span[1] <= end and nodes[span].parent is None]
        members = sorted([(span[0], nodes[span]) for span in inside] +
                         [(position, position) for position in word_positions
                          if start <= position < end and position not in leaf_parent], key=lambda item: item[0])
        nodes[start, end] = node = Node(child for _, child in members)
        for child in node.children:
            if not isinstance(child, Node):
                leaf_parent[child] = node
    root = [nodes[span] for span in nodes if nodes[span].parent is None] or [word_positions[0]]
    state = {"root": root[0]}

    def parent_of(item):
        return item.parent if isinstance(item, Node) else leaf_parent.get(item)

    def edge(item, side):
        return item.edge(side) if isinstance(item, Node) else item

    def replace(old, new_children, mark):
        parent = parent_of(old)
        new = Node(new_children)
        leaf_parent[mark] = new
        if not isinstance(old, Node):
            leaf_parent[old] = new
        if parent is None:
            state["root"] = new
        else:
            parent.children[parent.children.index(old)] = new
            new.parent = parent

    def chain(anchor, side):
        found = [anchor]
        while parent_of(found[-1]) is not None and edge(parent_of(found[-1]), side) == anchor:
            found.append(parent_of(found[-1]))
        return found

    placed = [side is None for side in sides]
    partners = punctuation._pairs(sides, tokens)
    for position in range(n - 1, -1, -1):
        if sides[position] == punctuation.RIGHT:
            anchor = placed.index(True, position + 1)
            closing = partners.get(position)
            candidates = [item for item in chain(anchor, 0) if closing is None or edge(item, 1) < closing]
            replace(candidates[-1], [position, candidates[-1]], position)
            placed[position] = True
    closing_of = {closing: opening for opening, closing in partners.items()}
    for position in range(n):
        if sides[position] == punctuation.LEFT:
            opening = closing_of.get(position)
            climbed = chain(position - 1, 1)
            inside = [item for item in climbed[1:] if opening is None or edge(item, 0) >= opening]
            joined = (inside or climbed[1:] or climbed)[-1]
            replace(joined, [joined, position], position)
    found, pending = [], [state["root"]]
    while pending:
        item = pending.pop()
        if isinstance(item, Node):
            found.append((item.edge(0), item.edge(1) + 1))
            pending.extend(item.children)
    return sorted(found, key=lambda span: (span[0], -span[1]))


def test_attach_equals_the_climbing_rule_on_random_sentences():
    import random

    from onlstm.models.trees.decoders import decode_spans

    generator = random.Random(5)
    marks = [",", ".", "(", ")", "``", "''", '"', "$", "--", ";", "!", "'", "“", "”"]
    for _ in range(1000):
        tokens = [generator.choice(marks) if generator.random() < 0.35 else f"w{index}" for index in range(20)]
        tokens = tokens[: generator.randint(1, 20)]
        is_mark = [is_punctuation(token) for token in tokens]
        kept = [index for index, mark in enumerate(is_mark) if not mark]
        word_spans = decode_spans([generator.random() for _ in kept], generator.choice(["greedy", "split"]))
        sides = punctuation.directions(tokens, None, is_mark)
        spans = punctuation.attach(word_spans, kept, sides, tokens)
        assert spans == climbing_attach(word_spans, kept, sides, tokens), tokens
        assert len(set(spans)) == len(tokens) - 1 and is_binary(spans_to_tree(tokens, spans)), tokens
        if kept:
            assert set(restrict_spans(spans, [not mark for mark in is_mark])) == set(word_spans), tokens


def test_a_chain_of_thousands_of_marks_attaches_in_linear_time():
    import time

    tokens = ["word"] + ["!"] * 5000 + ["word"] + ["("] * 3000 + ["word"]
    is_mark = [is_punctuation(token) for token in tokens]
    kept = [index for index, mark in enumerate(is_mark) if not mark]
    started = time.perf_counter()
    spans = punctuation.attach([(0, 3), (1, 3)], kept, punctuation.directions(tokens, None, is_mark), tokens)
    assert len(spans) == len(tokens) - 1
    assert time.perf_counter() - started < 5  # quadratic would take minutes


@pytest.mark.slow
def test_the_bundled_model_gives_binary_trees_over_all_of_dev(shared_data):
    """Raw dev sentences, punctuation included: every layer, decoder and prior gives n - 1 spans,
    and restricted to the words, the words-only tree."""
    from onlstm.models.parser import Parser
    from onlstm.training.corpora import read_treebank
    from onlstm.training.evaluate import gold_files, prepare_gold_trees

    golds = prepare_gold_trees(read_treebank(gold_files(data=shared_data)))
    parser = Parser.load()
    sentences = [list(gold.tokens) for gold in golds]
    for decoder in ("greedy", "split"):
        for bias in (0.0, parser.default_right_branching_bias):
            results = parser.parse_many(sentences, decoder=decoder, right_branching_bias=bias, with_perplexity=False)
            for tokens, result in zip(sentences, results):
                is_mark = [is_punctuation(token) for token in tokens]
                words = [token for token, mark in zip(tokens, is_mark) if not mark]
                for layer in range(parser.n_layers):
                    spans = result.layer_spans[layer]
                    assert len(set(spans)) == len(tokens) - 1, tokens
                    assert all(len(node) == 2 for node in result.layer_tree(layer).subtrees()) or len(tokens) == 1
                    expected = decode_spans(result.layer_distances[layer], decoder, bias) if not any(is_mark) else \
                        decode_spans([d for d, mark in zip(result.layer_distances[layer], is_mark) if not mark],
                                     decoder, bias)
                    if len(words) >= 1 and any(is_mark):
                        assert set(restrict_spans(spans, [not mark for mark in is_mark])) == set(expected)
