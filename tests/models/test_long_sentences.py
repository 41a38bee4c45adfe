"""A sentence longer than Python's recursion reaches: a right-branching chain of n words is a tree n
levels deep, and json, pickle, NLTK's printer and ``Tree.fromstring`` all recurse through it.  Every
way out of the library writes or carries such a tree without recursion (the token limits are settings
a user may raise: ``--max-tokens 0``, ``ONLSTM_MAX_TOKENS_PER_SENTENCE``)."""

import io
import json
import pickle
import random

import pytest
from nltk import Tree

from onlstm.models import json_text
from onlstm.models.parser import Parser
from onlstm.models.predict import LONGEST_DRAWING, predict
from onlstm.models.trees.decoders import bracketing_spans, random_spans, spans_to_tree, to_ptb_string, tree_to_spans
from onlstm.records import result_from_record

WORDS = 1500  # past the ~1,000 levels where recursion stops


@pytest.fixture(scope="module")
def chain(tiny_checkpoint):
    """A 1,500-word sentence parsed into the right-branching chain (the strongest prior)."""
    parser = Parser.load(tiny_checkpoint)
    return parser, parser.parse(["the"] * WORDS, right_branching_bias=100, all_layers=True)


def random_value(rng: random.Random, depth: int = 0):
    """A random JSON value: strings that need escapes, numbers, literals, nested lists and dicts."""
    kind = rng.randrange(8 if depth < 6 else 5)
    return [lambda: rng.choice(["a", "北京", 'q"uote', "\\", "é\n", ""]), lambda: rng.randint(-5, 10**12),
            lambda: rng.random() * 1e6, lambda: rng.choice([True, False]), lambda: None,
            lambda: [random_value(rng, depth + 1) for _ in range(rng.randrange(4))],
            lambda: tuple(random_value(rng, depth + 1) for _ in range(rng.randrange(3))),
            lambda: {f"k{index}": random_value(rng, depth + 1) for index in range(rng.randrange(4))}][kind]()


def test_dumps_writes_what_json_writes(random_values=200):
    rng = random.Random(7)
    for _ in range(random_values):
        item = random_value(rng)
        for separators in ((", ", ": "), (",", ":")):
            assert json_text.dumps(item, separators) == json.dumps(item, ensure_ascii=False, separators=separators)


def test_the_deep_reader_reads_what_json_reads(random_values=300):
    """The explicit-stack reader (what loads falls back on past json's depth) against json.loads:
    the same value from valid text in any layout, the same error and position from text with one
    character deleted or inserted."""
    rng = random.Random(8)
    for _ in range(random_values):
        text = json.dumps(random_value(rng), ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1, "\t"]))
        text = rng.choice(["", " ", "\n"]) + text + rng.choice(["", " \r\n"])
        assert json_text._read_deep(text) == json.loads(text)
        position = rng.randrange(len(text) + 1)
        for broken in (text[:position] + text[position + 1:], text[:position] + rng.choice('[]{},:"1 x') + text[position:]):
            try:
                expected = json.loads(broken)
            except json.JSONDecodeError as error:
                with pytest.raises(json.JSONDecodeError) as refused:
                    json_text._read_deep(broken)
                assert (refused.value.msg, refused.value.pos) == (error.msg, error.pos), broken
            else:
                assert json_text._read_deep(broken) == expected


def test_loads_reads_bytes_at_any_depth_as_json_reads_them():
    """Bytes in JSON's encodings (what an HTTP answer holds), shallow and past json's depth."""
    for depth in (3, 3000):
        text = "[" * depth + '"é"' + "]" * depth
        for encoded in (text.encode(), bytearray(text.encode()), text.encode("utf-16"), text.encode("utf-8-sig")):
            node, levels = json_text.loads(encoded), 0
            while isinstance(node, list):
                node, levels = node[0], levels + 1
            assert (levels, node) == (depth, "é")
    with pytest.raises(json.JSONDecodeError):
        json_text.loads(("[" * 3000 + "1,]" + "]" * 2999).encode())


def test_dumps_at_any_depth_and_its_refusals():
    deep: list = ["z"]
    for index in range(2000):  # 4,000 levels: lists and dicts
        deep = [index, {"child": deep}]
    text = json_text.dumps(deep, (",", ":"))
    assert json_text.dumps(deep) == text.replace(",", ", ").replace(":", ": ")
    node, depth = json_text.loads(text), 0
    while isinstance(node, list) and len(node) == 2:
        assert node[0] == 1999 - depth
        node, depth = node[1]["child"], depth + 1
    assert (depth, node) == (2000, ["z"])
    with pytest.raises(TypeError, match="keys must be str"):
        json_text.dumps({1: "a"})
    with pytest.raises(ValueError):
        json_text.dumps([float("nan")])
    assert json_text.dumps([float("nan")], allow_nan=True) == "[NaN]"


def test_jsonl_and_pretty_outputs_of_a_long_sentence(chain):
    parser, result = chain
    lines = [" ".join(["the"] * WORDS), "a short one ."]
    output = io.StringIO()
    predict(parser, lines, output, input_format="tokens", max_tokens=0, right_branching_bias=100)
    records = [json_text.loads(line) for line in output.getvalue().splitlines()]
    assert [len(record["tokens"]) for record in records] == [WORDS, 4]
    depth, node = 0, records[0]["nested"]
    while isinstance(node, list):
        depth, node = depth + 1, node[1]
    assert depth == WORDS - 1 and records[0]["spans"] == [list(span) for span in result.spans]

    drawn = io.StringIO()
    predict(parser, lines, drawn, input_format="tokens", max_tokens=0, right_branching_bias=100, format="pretty")
    text = drawn.getvalue()
    assert f"# {WORDS} words: too long to draw (at most {LONGEST_DRAWING})" in text
    assert to_ptb_string(result.tree) in text.splitlines()
    after = text.split(to_ptb_string(result.tree))[1]
    assert after.count("# sentence 2") == 1 and "short" in after and "too long" not in after  # still drawn


def test_a_long_result_pickles_and_reads_back_from_its_record(chain):
    _, result = chain
    again = pickle.loads(pickle.dumps(result))
    assert (again.tokens, again.spans, list(again.layer_spans)) == (result.tokens, result.spans, list(result.layer_spans))
    assert tree_to_spans(again.tree) == sorted(result.spans, key=lambda span: (span[0], -span[1]))

    record = json_text.loads(json_text.dumps(result.to_dict(True)))
    back = result_from_record(record)
    assert back.spans == result.spans and [list(spans) for spans in back.layer_spans] == \
        [sorted(spans, key=lambda span: (span[0], -span[1])) for spans in result.layer_spans]


def test_bracketing_spans_against_nltk():
    rng = random.Random(3)
    for length in range(1, 30):
        for _ in range(10):
            tokens = [rng.choice(["a", "(", ")", "-LRB-", "x.y", "北京"]) for _ in range(length)]
            text = to_ptb_string(spans_to_tree(tokens, random_spans(length, rng)))
            assert bracketing_spans(text) == tree_to_spans(Tree.fromstring(text)), text
    with pytest.raises(ValueError, match="closes no bracket"):
        bracketing_spans("(S a b))")
    with pytest.raises(ValueError, match="not closed"):
        bracketing_spans("(S (X a b)")


def test_a_drawing_of_wide_characters_keeps_its_columns_on_a_terminal():
    """A Chinese character takes two columns on a terminal: the drawing, read with each one as two
    columns ("xx"), is the drawing of the same tree over ASCII words of those widths."""
    from onlstm.models.predict import ascii_tree

    words = ["北京", "是", "中国", "的", "首都", "a"]
    spans = random_spans(len(words), random.Random(5))
    as_columns = ascii_tree(spans_to_tree(words, spans)).translate({ord(char): "xx" for char in "北京是中国的首都"})
    assert as_columns == ascii_tree(spans_to_tree(["xxxx", "xx", "xxxx", "xx", "xxxx", "a"], spans))
    assert ascii_tree(spans_to_tree(words, spans)).rstrip().splitlines()[-1].split() == words
