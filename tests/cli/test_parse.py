"""`onlstm parse`: input formats, output formats, stdin/stdout, chunked streaming, worker processes, errors."""

from __future__ import annotations

import io
import json
import math
import random
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from nltk import Tree

from onlstm.cli import parse as parse_command
from onlstm.models import predict as predict_module
from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import escape_token, tree_to_spans

from ..helpers import build_evalb

SENTENCES = ["The cat sat on the mat.", "A dog chased the cat into the garden (quickly).", "Stocks fell 3 %."]


@pytest.fixture(scope="module")
def parser(tiny_checkpoint) -> Parser:
    return Parser.load(tiny_checkpoint)


def run(arguments, tiny_checkpoint, capsys, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = parse_command.main([*arguments, "--checkpoint", str(tiny_checkpoint)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lines_to_jsonl_has_the_api_fields(tmp_path, tiny_checkpoint, capsys, parser):
    source = tmp_path / "in.txt"
    source.write_text(SENTENCES[0] + "\n\n" + SENTENCES[1] + "\n" + SENTENCES[2] + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    code, _, err = run([str(source), "-o", str(output), "--input-format", "lines"], tiny_checkpoint, capsys)
    assert code == 0
    assert f"model onlstm-tiny-test (version {parser.version}, language en)" in err
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [record["index"] for record in records] == [0, 1, 2]
    assert [record["line"] for record in records] == [1, 3, 4]  # the blank line is skipped
    assert all(record["model"] == {"name": "onlstm-tiny-test", "version": parser.version, "language": "en"}
               for record in records)
    assert {record["language"] for record in records} == {"en"}
    assert all(record["unk_share"] >= 0 and isinstance(record["warnings"], list) for record in records)
    expected = parser.parse_many(SENTENCES)
    for sentence, record, alone in zip(SENTENCES, records, expected):
        assert [sentence[start:end] for start, end in record["offsets"]] == record["tokens"] == alone.tokens
        tree = Tree.fromstring(record["tree"])
        assert tree.leaves() == [escape_token(token) for token in record["tokens"]]
        assert sorted(map(tuple, record["spans"])) == sorted(tree_to_spans(tree))
        assert record["spans"] == [list(span) for span in alone.spans]
        assert math.isfinite(record["perplexity"]) and record["perplexity"] > 0
        assert len(record["distances"]) == len(record["tokens"]) and record["layer"] == 1
        assert "nested" in record and "layer_distances" not in record


def test_stdin_to_stdout_ptb(tiny_checkpoint, capsys, monkeypatch):
    code, out, err = run(["--format", "ptb", "--input-format", "lines"], tiny_checkpoint, capsys,
                         ("\n".join(SENTENCES) + "\n").encode(), monkeypatch)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 3
    trees = [Tree.fromstring(line) for line in lines]
    assert trees[1].leaves()[-3:] == ["quickly", "-RRB-", "."]
    assert "parsing" not in err  # no progress bar when stderr is not a terminal


def test_pretty_output_draws_the_words(tiny_checkpoint, capsys, monkeypatch):
    code, out, _ = run(["-", "--format", "pretty", "--input-format", "lines"], tiny_checkpoint, capsys,
                       b"The cat sat on the mat.\n", monkeypatch)
    assert code == 0
    assert out.startswith("# sentence 1 (line 1): perplexity")
    assert "model onlstm-tiny-test" in out.splitlines()[0]
    last_row = [line for line in out.splitlines() if line.strip()][-1]
    assert last_row.split() == ["The", "cat", "sat", "on", "the", "mat", "."]


def test_tokens_input_is_used_as_given(tiny_checkpoint, capsys, monkeypatch):
    code, out, _ = run(["--input-format", "tokens", "--layer", "2", "--decoder", "split", "--all-layers"],
                       tiny_checkpoint, capsys, b"the  CAT f(x) sat\n", monkeypatch)
    assert code == 0
    record = json.loads(out)
    assert record["tokens"] == ["the", "CAT", "f(x)", "sat"] and record["layer"] == 2
    assert record["offsets"] is None and len(record["layer_distances"]) == 3  # null, as over HTTP


def test_the_right_branching_prior_option(tiny_checkpoint, capsys, monkeypatch):
    from onlstm.models.parser import Parser

    words = "the company said it expects earnings to rise sharply next year"
    code, out, _ = run(["--input-format", "lines", "--right-branching-bias", "0.7"], tiny_checkpoint, capsys,
                       (words + "\n").encode(), monkeypatch)
    assert code == 0
    expected = Parser.load(tiny_checkpoint).parse(words, right_branching_bias=0.7)
    assert json.loads(out)["spans"] == [list(span) for span in expected.spans]
    code, _, err = run(["--right-branching-bias", "nan"], tiny_checkpoint, capsys, b"a b\n", monkeypatch)
    assert code == 2 and "--right-branching-bias must be a finite number between -100 and 100" in err


def test_the_gate_option(tiny_checkpoint, capsys, monkeypatch):
    from onlstm.models.parser import Parser

    words = "the company said it expects earnings to rise sharply next year"
    code, out, _ = run(["--input-format", "lines", "--gate", "input", "--decoder", "split"], tiny_checkpoint, capsys,
                       (words + "\n").encode(), monkeypatch)
    assert code == 0
    expected = Parser.load(tiny_checkpoint).parse(words, gate="input", decoder="split")
    record = json.loads(out)
    assert record["spans"] == [list(span) for span in expected.spans]
    assert record["distances"] == pytest.approx(expected.distances, abs=1e-6)
    with pytest.raises(SystemExit) as refused:  # argparse's choices: usage and the choices, exit status 2
        run(["--gate", "output"], tiny_checkpoint, capsys, b"a b\n", monkeypatch)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "--gate: invalid choice: 'output'" in err and "'input'" in err


def test_text_input_is_split_into_sentences_by_default(tiny_checkpoint, capsys, monkeypatch):
    text = "The cat sat\non the mat. A dog ran.\n\nStocks fell. The U.S. Steel Corp. rose 5%.\n"
    code, out, _ = run([], tiny_checkpoint, capsys, text.encode(), monkeypatch)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [record["tokens"][:3] for record in records] == [["The", "cat", "sat"], ["A", "dog", "ran"],
                                                           ["Stocks", "fell", "."], ["The", "U.S.", "Steel"]]
    for record in records:  # offsets count characters from the start of the input
        assert [text[start:end] for start, end in record["offsets"]] == record["tokens"]


def test_a_paragraph_read_as_one_line_is_refused_with_the_way_out(tiny_checkpoint, capsys, monkeypatch):
    paragraph = " ".join(["The cat sat on the mat."] * 60)  # over 360 tokens on one line
    code, out, err = run(["--input-format", "lines"], tiny_checkpoint, capsys, paragraph.encode(), monkeypatch)
    assert code == 2 and re.search(r"line 1 has \d{3} tokens", err) and "--input-format text" in err and out == ""
    code, out, _ = run(["--input-format", "lines", "--max-tokens", "0"], tiny_checkpoint, capsys,
                       paragraph.encode(), monkeypatch)
    assert code == 0 and len(out.splitlines()) == 1
    code, out, _ = run([], tiny_checkpoint, capsys, paragraph.encode(), monkeypatch)
    assert code == 0 and len(out.splitlines()) == 60


def test_the_checkpoint_comes_from_the_environment(tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("ONLSTM_CHECKPOINT", str(tiny_checkpoint))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"The cat sat.")))
    assert parse_command.main([]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"]["name"] == "onlstm-tiny-test"


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_large_input_streams_in_chunks_with_a_progress_bar(tmp_path, tiny_checkpoint, capsys, monkeypatch, parser,
                                                           restore_torch_threads):
    monkeypatch.setattr(predict_module, "CHUNK_SENTENCES", 7)
    lines = [f"the cat sat on mat number {index}" for index in range(50)]
    source = tmp_path / "many.txt"
    source.write_text("\n".join(lines) + "\n")
    code, out, err = run([str(source), "--format", "ptb", "--batch-size", "4", "--progress", "--threads", "1",
                          "--input-format", "lines"], tiny_checkpoint, capsys)
    assert code == 0
    assert torch.get_num_threads() == 1
    expected = [tree.pformat(margin=10**9) for tree in (result.tree for result in parser.parse_many(lines))]
    assert out.splitlines() == expected
    assert "parsing" in err and "100%" in err


@pytest.mark.parametrize(
    "arguments, code, message",
    [
        (["/no/such/file.txt"], 2, "cannot read"),
        (["--layer", "9"], 2, "--layer must be an integer between 0 and 2"),
        (["--punctuation", "model"], 2, "trained without punctuation"),
        (["--max-tokens", "-1"], 2, "--max-tokens"),
        (["--batch-size", "0"], 2, "--batch-size"),
        (["--workers", "0"], 2, "--workers"),
        (["--format", "ptb", "--all-layers"], 2, "--all-layers applies to --format jsonl (--format ptb writes the tree"),
        (["--tag-separator", "_"], 2, "--tag-separator applies to --input-format tagged"),
    ],
)
def test_bad_arguments_fail_with_a_message(arguments, code, message, tiny_checkpoint, capsys, monkeypatch):
    got, _, err = run(arguments, tiny_checkpoint, capsys, b"a cat\n", monkeypatch)
    assert got == code and message in err


def test_unreadable_input_and_broken_checkpoint(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    source = tmp_path / "latin1.txt"
    source.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    code, _, err = run([str(source)], tiny_checkpoint, capsys)
    assert code == 1 and "not UTF-8" in err
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"nope")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a cat\n")))
    assert parse_command.main(["--checkpoint", str(broken)]) == 1
    assert "cannot load the model" in capsys.readouterr().err


def test_empty_input_warns(tiny_checkpoint, capsys, monkeypatch):
    code, out, err = run([], tiny_checkpoint, capsys, b"\n  \n", monkeypatch)
    assert code == 0 and out == "" and "no sentences" in err


def test_ordered_map_keeps_the_order_and_reads_a_bounded_window_ahead():
    pulled, yielded = [], []
    lock = threading.Lock()

    def items():
        for index in range(40):
            with lock:
                # never more than `in_flight` items taken and not yet handed back
                assert len(pulled) - len(yielded) <= 4
                pulled.append(index)
            yield (index,)

    def slow_square(value):
        time.sleep(random.random() / 200)  # finish out of order
        return value * value

    with ThreadPoolExecutor(3) as executor:
        for result in predict_module.ordered_map(slow_square, items(), executor, in_flight=4):
            yielded.append(result)
    assert yielded == [index * index for index in range(40)]


@pytest.mark.slow
def test_workers_write_the_same_output_in_input_order(tmp_path, tiny_checkpoint, capsys, monkeypatch,
                                                      restore_torch_threads):
    monkeypatch.setattr(predict_module, "CHUNK_SENTENCES", 7)  # 8 chunks over 2 processes
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "(", "quickly", ")", "."]
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 14))) for _ in range(55)]
    source = tmp_path / "many.txt"
    source.write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    code, _, _ = run([str(source), "-o", str(one), "--batch-size", "4", "--threads", "1", "--input-format", "lines"],
                     tiny_checkpoint, capsys)
    assert code == 0
    code, _, err = run([str(source), "-o", str(two), "--batch-size", "4", "--workers", "2", "--threads", "1",
                        "--progress", "--input-format", "lines"], tiny_checkpoint, capsys)
    assert code == 0 and "100%" in err and "55 sentences" in err
    assert two.read_text() == one.read_text()
    records = [json.loads(line) for line in two.read_text().splitlines()]
    assert [record["index"] for record in records] == list(range(55))
    assert records[20]["line"] == 22  # after the blank line


def test_ptb_with_preterminals_and_tagged_input(tiny_checkpoint, capsys, monkeypatch):
    tagged = b"The/DT cat/NN sat/VBD on/IN the/DT mat/NN ./.\nStocks/NNS fell/VBD\n"
    code, out, _ = run(["--input-format", "tagged", "--format", "ptb", "--preterminals"], tiny_checkpoint, capsys,
                       tagged, monkeypatch)
    assert code == 0
    first, second = (Tree.fromstring(line) for line in out.splitlines())
    assert [(leaf, tag) for leaf, tag in first.pos()] == [("The", "DT"), ("cat", "NN"), ("sat", "VBD"), ("on", "IN"),
                                                         ("the", "DT"), ("mat", "NN"), (".", ".")]
    assert second.pos() == [("Stocks", "NNS"), ("fell", "VBD")]
    code, out, _ = run(["--input-format", "lines", "--format", "ptb", "--preterminals"], tiny_checkpoint, capsys,
                       b"The cat (really) sat.\n", monkeypatch)
    assert code == 0 and {tag for _, tag in Tree.fromstring(out).pos()} == {"T"}
    assert "(T -LRB-)" in out
    code, _, err = run(["--input-format", "tagged"], tiny_checkpoint, capsys, b"The/DT cat\n", monkeypatch)
    assert code == 2 and "'cat' is not word/TAG" in err
    code, _, err = run(["--preterminals"], tiny_checkpoint, capsys, b"The cat.\n", monkeypatch)
    assert code == 2 and "--format ptb" in err


@pytest.mark.slow
def test_evalb_reads_the_trees(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    """EVALB scores our trees against themselves without a single error sentence: 100 F."""
    evalb = build_evalb(tmp_path)
    text = "The cat sat on the mat. Stocks fell 3% in heavy trading (on Friday). \"Why?\" she asked.\n"
    code, out, _ = run(["--format", "ptb", "--preterminals"], tiny_checkpoint, capsys, text.encode(), monkeypatch)
    assert code == 0 and len(out.splitlines()) == 3
    trees = tmp_path / "trees.mrg"
    trees.write_text(out)
    parameters = tmp_path / "unlabelled.prm"
    parameters.write_text("LABELED 0\nDELETE_LABEL S\nDELETE_LABEL_FOR_LENGTH T\n")
    scored = subprocess.run([evalb, "-p", str(parameters), str(trees), str(trees)], capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr
    assert re.search(r"Number of Error sentence\s*=\s*0\b", scored.stdout), scored.stdout[-1500:]
    assert re.search(r"Bracketing FMeasure\s*=\s*100\.00", scored.stdout), scored.stdout[-1500:]


@pytest.mark.parametrize("device, message", [
    ("banana", "--device: 'banana' is not a device; use cpu, cuda or cuda:N"),
    ("cuda", "--device: device 'cuda' was asked for but torch sees no CUDA GPU; use cpu"),
])
def test_a_device_that_cannot_be_used_is_one_line_naming_the_flag(device, message, tiny_checkpoint, capsys,
                                                                  monkeypatch):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, out, err = run(["--device", device], tiny_checkpoint, capsys, b"a cat\n", monkeypatch)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {message}"]


def test_a_binary_file_is_refused_counting_lines_from_one(tmp_path, tiny_checkpoint, capsys):
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary")
    code, _, err = run([str(binary)], tiny_checkpoint, capsys)
    assert code == 1 and f"error: {binary} is not UTF-8 text (near line 1)" in err and "iconv -f latin1 -t utf-8" in err


def test_writing_a_file_says_where_and_how_many(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    output = tmp_path / "trees.ptb"
    code, out, err = run(["-o", str(output), "--format", "ptb"], tiny_checkpoint, capsys,
                         b"The cat sat. A dog ran.\n", monkeypatch)
    assert code == 0 and out == "" and len(output.read_text().splitlines()) == 2
    assert re.search(rf"onlstm parse: wrote 2 sentences \(ptb\) to {re.escape(str(output))} in \d+\.\d s", err)
    code, out, err = run(["--format", "ptb"], tiny_checkpoint, capsys, b"The cat sat.\n", monkeypatch)
    assert code == 0 and "wrote" not in err  # to stdout, the trees are the report


def test_language_chooses_the_bundled_model_or_checks_the_checkpoint(tmp_path, capsys, monkeypatch):
    from onlstm.models.languages import LANGUAGES, Language, bundled_languages

    from ..releases import make_release

    monkeypatch.delenv("ONLSTM_CHECKPOINT", raising=False)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("¿Qué hora es? Son las tres.".encode())))
    spanish = make_release(tmp_path, "es")
    assert parse_command.main(["--language", "es", "--checkpoint", str(spanish)]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [record["language"] for record in records] == ["es", "es"] and records[0]["tokens"][0] == "¿"
    assert "language es" in captured.err
    # a checkpoint of another language: one line naming the flag and the release's language
    assert parse_command.main(["--language", "nl", "--checkpoint", str(spanish)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --language must be 'es'") and error.count("\n") == 1
    # no bundled model of the language: the bundled ones are named, and --checkpoint as the way out (every
    # language the package knows ships its model, so a known one without a file is added for the test)
    monkeypatch.setitem(LANGUAGES, "fr", Language("fr", "French", "fr.safetensors"))
    unbundled = next(code for code in LANGUAGES if code not in bundled_languages())
    assert parse_command.main(["--language", unbundled]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --language must be a language with a bundled model, one of en")
    assert "--checkpoint" in error
    assert parse_command.main(["--language", "English"]) == 2
    assert capsys.readouterr().err.startswith("error: --language must be a two-letter lowercase ISO 639-1 code")
    # the checkpoint from the environment is named when it is the one refused
    monkeypatch.setenv("ONLSTM_CHECKPOINT", str(spanish))
    assert parse_command.main(["--language", "nl"]) == 2
    assert f"$ONLSTM_CHECKPOINT is {spanish}" in capsys.readouterr().err


def test_language_en_is_the_bundled_english_model(capsys, monkeypatch):
    monkeypatch.delenv("ONLSTM_CHECKPOINT", raising=False)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"The cat sat.")))
    assert parse_command.main(["--language", "en", "--format", "ptb"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == Parser.load().parse("The cat sat.").to_dict()["tree"]
    assert "language en" in captured.err
