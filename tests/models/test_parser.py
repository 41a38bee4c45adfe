"""The Parser facade on a tiny model: input forms, fields, batching independence, punctuation, warnings."""

import math
import os
import subprocess
import sys

import pytest
import torch

from onlstm.models.checkpoint import load_release, save_release
from onlstm.models.options import OptionError, ParseOptions
from onlstm.models.parser import Parser, ParseResult
from onlstm.models.text.sentences import Sentence
from onlstm.models.text.vocab import is_punctuation
from onlstm.models.trees.decoders import decode_spans, right_branching_spans, tree_to_spans


@pytest.fixture(scope="module")
def parser(tiny_checkpoint):
    return Parser.load(tiny_checkpoint)


SENTENCES = [
    "The cat sat on the mat .",
    "Stocks fell 5 % in heavy trading , analysts said .",
    "A dog chased the cat into the garden",
    "Hello",
    "the company said it expects earnings to rise sharply next year , and the market agreed",
]


def test_fields(parser):
    results = parser.parse_many(SENTENCES)
    assert len(results) == len(SENTENCES)
    for sentence, result in zip(SENTENCES, results):
        assert result.tokens == sentence.split()
        assert len(result.distances) == len(result.tokens)
        assert len(result.layer_distances) == parser.n_layers
        assert result.layer == parser.default_layer == 1
        assert math.isfinite(result.perplexity) and result.perplexity > 0
        assert result.tree.leaves() == result.tokens
        assert set(tree_to_spans(result.tree)) == set(result.spans)
        n = len(result.tokens)
        # binary over every token: each punctuation mark makes a node with the constituent it joins
        assert len(result.spans) == max(n - 1, 0)
        assert all(len(node) == 2 for node in result.tree.subtrees()) or n == 1
        if n >= 2:
            assert (0, n) in result.spans


def test_batched_equals_alone(parser):
    together = parser.parse_many(SENTENCES, batch_size=64)
    for sentence, batched in zip(SENTENCES, together):
        alone = parser.parse(sentence, batch_size=1)
        assert alone.spans == batched.spans
        assert alone.perplexity == pytest.approx(batched.perplexity, rel=1e-5)
        for a, b in zip(alone.layer_distances, batched.layer_distances):
            assert a == pytest.approx(b, abs=1e-6)


def test_perplexity_is_the_mean_nll_of_words_and_eos(parser):
    tokens = ["the", "cat", "sat"]
    result = parser.parse(tokens)
    ids = parser.vocab.encode(tokens)
    inputs = torch.tensor([[parser.vocab.eos_id] + ids])
    targets = torch.tensor([ids + [parser.vocab.eos_id]])
    with torch.no_grad():
        output = parser.model(inputs)
        log_probs = torch.log_softmax(parser.model.logits(output.hidden), -1)
    nll = -log_probs[0, torch.arange(4), targets[0]].mean().item()
    assert result.perplexity == pytest.approx(math.exp(nll), rel=1e-5)


def test_the_input_gate_builds_trees_from_its_own_distances(parser):
    from onlstm.training.evaluate import restrict_spans

    tokens = ["the", "cat", "sat", "on", "the", "mat", "."]
    words = tokens[:-1]
    with torch.no_grad():
        output = parser.model(torch.tensor([[parser.vocab.eos_id] + parser.vocab.encode(words)]))
    by_input = parser.parse(tokens, gate="input", layer=0, decoder="split", right_branching_bias=0)
    by_forget = parser.parse(tokens)
    assert by_input.options.gate == "input" and by_forget.options.gate == parser.default_gate == "forget"
    for layer in range(parser.n_layers):
        assert by_input.layer_distances[layer][:6] == pytest.approx(output.input_distances[layer, 0, 1:].tolist(),
                                                                   abs=1e-6)
        assert by_forget.layer_distances[layer][:6] == pytest.approx(output.distances[layer, 0, 1:].tolist(), abs=1e-6)
    # the split decoder's tree over the input gate's distances, the mark attached afterwards
    assert set(restrict_spans(by_input.spans, [True] * 6 + [False])) == \
        set(decode_spans(by_input.layer_distances[0][:6], "split"))
    assert parser.layer_distances([words], gate="input")[0] == [
        pytest.approx(distances[:6], abs=1e-6) for distances in by_input.layer_distances]
    with pytest.raises(OptionError, match="gate must be one of"):
        parser.layer_distances([words], gate="output")


def test_attach_mode_keeps_the_words_only_tree(parser):
    """Punctuation removed before the model and reattached: restricting the tree to
    the words gives exactly the tree of the words alone."""
    from onlstm.training.evaluate import restrict_spans

    sentence = ["``", "Stocks", "fell", ",", "analysts", "said", ".", "''"]
    words = [token for token in sentence if token not in {"``", ",", ".", "''"}]
    with_punctuation = parser.parse(sentence, punctuation="attach")
    alone = parser.parse(words, punctuation="attach")
    keep = [token in words for token in sentence]
    assert set(restrict_spans(with_punctuation.spans, keep)) == set(alone.spans)
    # the closing quote and the full stop end the sentence's constituent; the opening quote starts it
    assert (0, len(sentence)) in with_punctuation.spans
    assert with_punctuation.tree.leaves() == sentence


def test_options_are_validated(parser):
    with pytest.raises(ValueError, match="layer"):
        parser.parse("a b", layer=5)
    with pytest.raises(ValueError, match="layer"):
        parser.parse("a b", layer=True)
    with pytest.raises(ValueError, match="decoder"):
        parser.parse("a b", decoder="cky")
    with pytest.raises(ValueError, match="sentence 2 has no tokens"):
        parser.parse_many(["a b", ""])
    split = parser.parse("the cat sat on the mat", decoder="split", layer=0)
    assert split.layer == 0 and len(split.spans) == 5


def test_the_right_branching_prior_decodes_the_shifted_distances(parser):
    sentence = SENTENCES[4].split()
    words = [token for token in sentence if not is_punctuation(token)]
    plain = parser.parse(words, right_branching_bias=0)
    assert parser.default_right_branching_bias == 0.0  # a release without the setting: no prior
    assert parser.parse(words).spans == plain.spans
    for decoder in ("greedy", "split"):
        for bias in (0.3, -0.3):
            result = parser.parse(words, decoder=decoder, right_branching_bias=bias)
            assert result.distances == plain.distances  # the model's, not the shifted ones
            assert result.spans == decode_spans(plain.distances, decoder, bias)
            for layer in range(parser.n_layers):
                assert result.layer_spans[layer] == decode_spans(plain.layer_distances[layer], decoder, bias)
    assert set(parser.parse(words, right_branching_bias=2.0 * len(words)).spans) == set(right_branching_spans(len(words)))
    # with punctuation attached, the words' tree is the prior's tree over the words
    from onlstm.training.evaluate import restrict_spans

    with_marks = parser.parse(sentence, right_branching_bias=0.4)
    alone = parser.parse(words, right_branching_bias=0.4)
    assert set(restrict_spans(with_marks.spans, [not is_punctuation(token) for token in sentence])) == set(alone.spans)


def test_a_release_carries_its_default_prior(tiny_checkpoint, tmp_path):
    release = load_release(tiny_checkpoint)
    path = tmp_path / "with-prior.safetensors"
    save_release(path, release.model, release.vocab, {**release.metadata, "default_right_branching_bias": 0.4},
                 dtype=torch.float32)
    biased = Parser.load(path)
    assert biased.default_right_branching_bias == 0.4
    words = SENTENCES[2].split()
    plain = biased.parse(words, right_branching_bias=0.0)
    assert biased.parse(words).spans == decode_spans(plain.distances, "greedy", 0.4)


@pytest.mark.parametrize("bad", [True, "0.4", float("nan"), float("inf"), 101.0, -1e9, [0.4]])
def test_a_bad_prior_is_refused_naming_the_range(parser, bad):
    with pytest.raises(OptionError, match=r"right_branching_bias must be a finite number between -100 and 100 .*got") \
            as refused:
        parser.parse("the cat sat", right_branching_bias=bad)
    assert (refused.value.code, refused.value.option) == ("invalid_right_branching_bias", "right_branching_bias")


def test_punctuation_model_is_refused_for_a_vocabulary_without_punctuation(parser):
    assert not parser.reads_punctuation
    with pytest.raises(OptionError, match="punctuation must be 'attach' for .* trained without punctuation") as refused:
        parser.parse("The cat sat .", punctuation="model")
    assert refused.value.code == "unsupported_option"


def test_only_punctuation(parser):
    result = parser.parse(["!", "?"])
    assert result.tokens == ["!", "?"] and result.spans == [(0, 2)]
    assert parser.parse(["(", "!", "?", ")"]).spans == [(0, 4), (1, 4), (2, 4)]  # right-branching over marks
    assert math.isfinite(result.perplexity)


# --- input forms -----------------------------------------------------------------------------


def test_one_string_is_one_sentence_and_one_token_list_too(parser):
    from_text = parser.parse("The cat sat on the mat.")
    from_tokens = parser.parse(["The", "cat", "sat", "on", "the", "mat", "."])
    assert isinstance(from_text, ParseResult) and isinstance(from_tokens, ParseResult)
    assert from_text.tokens == from_tokens.tokens == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert from_text.spans == from_tokens.spans
    assert from_text.offsets == [(0, 3), (4, 7), (8, 11), (12, 14), (15, 18), (19, 22), (22, 23)]
    assert from_tokens.offsets is None


def test_lists_of_sentences_give_lists(parser):
    results = parser.parse([["the", "cat"], Sentence.from_text("A dog ran.")])
    assert [result.tokens for result in results] == [["the", "cat"], ["A", "dog", "ran", "."]]
    assert parser.parse([]) == []
    many = parser.parse_many(["The cat sat.", ["a", "dog"]])
    assert [len(result.tokens) for result in many] == [4, 2]


def test_a_list_of_raw_sentences_is_refused_with_the_way_out(parser):
    with pytest.raises(ValueError, match="ONE tokenized sentence.*parse_many"):
        parser.parse(["The cat sat.", "The dog ran."])


@pytest.mark.parametrize("bad", [42, None, {"text": "a"}, b"bytes"])
def test_wrong_types_name_what_is_accepted(parser, bad):
    with pytest.raises(TypeError, match="str"):
        parser.parse(bad)


def test_parse_many_names_a_wrong_item(parser):
    with pytest.raises(TypeError, match="sentence 2 is a int"):
        parser.parse_many(["a b", 7])


def test_parse_text_splits_and_keeps_offsets(parser):
    text = "The cat sat. The dog ran."
    results = parser.parse_text(text)
    assert [result.tokens for result in results] == [["The", "cat", "sat", "."], ["The", "dog", "ran", "."]]
    for result in results:
        assert [text[start:end] for start, end in result.offsets] == result.tokens


def test_parse_iter_streams_in_order(parser):
    def sentences():
        for index in range(25):
            yield ["the", "cat"] if index % 2 else "A dog ran after the cat."

    streamed = parser.parse_iter(sentences(), chunk_size=4)
    first = next(streamed)  # a generator: nothing is parsed before it is asked for
    rest = list(streamed)
    assert len(rest) == 24 and first.tokens[0] == "A"
    assert [result.tokens for result in [first, *rest]] == [result.tokens for result in parser.parse_many(sentences())]
    with pytest.raises(TypeError):
        next(parser.parse_iter("one sentence"))


def test_parse_iter_skips_the_blank_lines_of_a_file(parser, tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("The cat sat on the mat.\n\n  \nStocks fell sharply.\n", encoding="utf-8")
    with path.open(encoding="utf-8") as lines:  # the README's example, a file with a blank line
        results = list(parser.parse_iter(lines))
    assert [result.tokens[0] for result in results] == ["The", "Stocks"]
    with pytest.raises(ValueError, match="sentence 2 has no tokens"):
        list(parser.parse_iter(["A cat.", []]))  # an empty token list is still refused


# --- unknown words and warnings ---------------------------------------------------------------


def test_unknown_word_share_and_warning(parser):
    known = parser.parse("the cat sat on the mat")
    assert known.unk_share == 0 and known.warnings == []
    made_up = parser.parse("Zorblax quinfed the vlorpish grendelwarts .")
    assert made_up.unk_share == pytest.approx(4 / 5)
    assert any("outside the model's vocabulary" in warning for warning in made_up.warnings)
    record = made_up.to_dict()
    assert record["unk_share"] == pytest.approx(0.8) and record["warnings"] == made_up.warnings


def test_other_scripts_are_warned_about(parser):
    result = parser.parse("Это предложение написано по-русски.")
    assert any("Latin" in warning for warning in result.warnings)


def test_all_layers_give_trees(parser):
    result = parser.parse("the company said it expects earnings to rise .", decoder="split")
    record = result.to_dict(all_layers=True)
    assert len(record["layer_trees"]) == parser.n_layers == len(record["layer_distances"])
    assert record["layer_trees"][result.layer] == record["tree"]
    assert result.layer_tree(0).leaves() == result.tokens


def test_other_layers_are_decoded_when_read_and_behave_as_lists(parser):
    import pickle

    from onlstm.models.trees import punctuation
    from onlstm.models.trees.decoders import decode_spans

    text = "“ Yes , ” the company said ( quietly ) , “ earnings will rise . ”"
    result = parser.parse(text)
    assert result.layer_spans._done.count(None) == parser.n_layers - 1  # only the tree's layer so far
    tokens, is_mark = result.tokens, [is_punctuation(token) for token in result.tokens]
    kept = [index for index, mark in enumerate(is_mark) if not mark]
    sides = punctuation.directions(tokens, result.sentence.offsets, is_mark)
    words = [[layer[index] for index in kept] for layer in result.layer_distances]
    expected = [punctuation.attach(decode_spans(layer, "greedy"), kept, sides, tokens) for layer in words]
    assert result.layer_spans == expected and list(result.layer_spans) == expected
    assert result.layer_spans[-1] == expected[-1] and result.layer_spans[1:] == expected[1:]
    assert result.layer_spans[result.layer] == result.spans
    copy = pickle.loads(pickle.dumps(result))
    assert copy.layer_spans == expected and type(copy.layer_spans) is list
    assert repr(result.layer_spans) == repr(expected)


CHILD_PARSES = """
import multiprocessing, sys, torch
from onlstm.models.parser import Parser
torch.set_num_threads(2)
parser = Parser.load(sys.argv[1])
parser.parse_many(["the cat sat on the mat"] * 64)          # the parent's OpenMP pool is now running

def parse_in_child(text):
    return parser.parse(text).tokens

with multiprocessing.get_context("fork").Pool(1) as pool:  # as spaCy's nlp.pipe(n_process=2) does
    print(pool.apply_async(parse_in_child, ("the dog ran after the cat",)).get(timeout=60))
"""


@pytest.mark.slow
def test_a_forked_child_parses_after_the_parent_used_threads(tiny_checkpoint, tmp_path):
    script = tmp_path / "forked.py"
    script.write_text(CHILD_PARSES)
    result = subprocess.run([sys.executable, str(script), str(tiny_checkpoint)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['the', 'dog', 'ran', 'after', 'the', 'cat']"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_bundled_model_parses_on_a_gpu_as_on_the_cpu():
    """Inference on CUDA (the packed layers on the per-step path, TF32 off) gives the CPU's trees."""
    sentences = [
        "the company said it expects earnings to rise in the fourth quarter".split(),
        "stocks fell sharply".split(),
        "a spokesman for the bank declined to comment on the report , which was published on monday .".split(),
        ["hello"],
    ]
    cpu = Parser.load().parse_many(sentences, batch_size=3)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        gpu = Parser.load(device="cuda").parse_many(sentences, batch_size=3)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    for on_cpu, on_gpu in zip(cpu, gpu):
        assert on_gpu.spans == on_cpu.spans
        assert on_gpu.distances == pytest.approx(on_cpu.distances, abs=1e-4)
        assert on_gpu.perplexity == pytest.approx(on_cpu.perplexity, rel=1e-4)


# --- ParseOptions and binary trees everywhere -------------------------------------------------


def test_options_travel_as_one_object_with_the_models_defaults_filled_in(parser):
    options = ParseOptions(layer=0, decoder="split")
    result = parser.parse("The cat sat on the mat .", options)
    assert result.options == ParseOptions(layer=0, decoder="split", gate="forget", punctuation="attach", right_branching_bias=0.0,
                                          punctuation_first=False, language="en")  # the release has no language: English
    assert result.options.resolved and result.layer == 0
    # keyword values are laid over the object, and equal to it when they say the same
    assert parser.parse("The cat sat on the mat .", options, layer=1).layer == 1
    assert parser.parse("The cat sat on the mat .", layer=0, decoder="split").spans == result.spans
    assert parser.resolve(options) == result.options and hash(parser.resolve(options)) == hash(result.options)
    assert result.to_dict().keys() == parser.parse("a b", layer=0).to_dict().keys()
    assert "layer_trees" in parser.parse("a b", all_layers=True).to_dict()


@pytest.mark.parametrize("values,code,option", [
    ({"layer": 5}, "invalid_layer", "layer"),
    ({"layer": True}, "invalid_layer", "layer"),
    ({"layer": "1"}, "invalid_layer", "layer"),
    ({"decoder": "cky"}, "invalid_decoder", "decoder"),
    ({"gate": "output"}, "invalid_gate", "gate"),
    ({"punctuation": "drop"}, "invalid_punctuation", "punctuation"),
    ({"all_layers": "yes"}, "invalid_all_layers", "all_layers"),
    ({"punctuation_first": 1}, "invalid_punctuation_first", "punctuation_first"),
    ({"beam": 3}, "unknown_option", "beam"),
    ({"language": "english"}, "invalid_language", "language"),
    ({"language": "es"}, "language_unavailable", "language"),
    ({"language": "xx"}, "unknown_language", "language"),
])
def test_every_bad_option_has_a_stable_code_and_names_the_option(parser, values, code, option):
    with pytest.raises(OptionError) as refused:
        parser.parse("a b", **values)
    assert (refused.value.code, refused.value.option) == (code, option)
    assert str(refused.value).startswith(option)
    flag = "--" + option.replace("_", "-")
    assert refused.value.message_for(flag).startswith(flag + " ")
    with pytest.raises(TypeError, match="ParseOptions"):
        parser.parse("a b", {"layer": 1})


def test_options_are_frozen():
    options = ParseOptions(layer=1)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        options.layer = 2  # type: ignore[misc]
    assert options.replace(layer=2).layer == 2 and options.layer == 1


def test_the_decoder_names_are_the_trees_decoders():
    from onlstm.models.options import DECODER_NAMES, Decoder
    from onlstm.models.trees.decoders import DECODERS

    assert tuple(DECODERS) == DECODER_NAMES == Decoder.__args__


HOSTILE = [
    ["(", "a", ")"], ["``", "a", "''"], ['"', "a", "b", '"', "."], [".", ",", "a", "b"], ["a", "b", "(", "["],
    ["!", "?", "..."], ["(", "(", "a", ")", ")"], ["a", ")", "b", "(", "c"], ["“", "a", "”", "‘", "b", "’", "."],
    ["-LRB-", "a", "b", "-RRB-", "c", "--", "d", ";", "e", ":", "f", "!", "?"], ["$", "5", "%", "#", "a"],
    ["a", "'", "b", "'", "c", '"', "d", '"', "e", "«", "f", "»"], [","], ["a"],
]


@pytest.mark.parametrize("tokens", HOSTILE)
def test_hostile_marks_give_binary_trees(parser, tokens):
    for decoder in ("greedy", "split"):
        for bias in (0.0, 0.4, -3.0):
            result = parser.parse(tokens, decoder=decoder, right_branching_bias=bias)
            assert len(set(result.spans)) == len(tokens) - 1
            assert all(len(node) == 2 for node in result.tree.subtrees()) or len(tokens) == 1
            assert result.tree.leaves() == tokens
