"""Ray: parse_dataset on a local Ray (2 CPUs), iter_in_order, and `onlstm parse --ray ADDRESS`."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from onlstm.models.parser import Parser
from onlstm.models.trees.decoders import to_ptb_string
from onlstm.ray import iter_in_order

from ..helpers import REPO, TINY_TEXT

SENTENCES = [" ".join(TINY_TEXT[index % 4][: 3 + index % 6]).capitalize() + "." for index in range(60)]
# made-up words carry a warning: some blocks of the dataset have warnings, others none
SENTENCES[7::20] = ["Zorblax quibbled the frumious glorp."] * len(SENTENCES[7::20])


def test_iter_in_order_restores_the_order_streaming():
    rows = [{"id": index, "value": index * 10} for index in range(200)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert list(iter_in_order(shuffled)) == rows
    held = []

    def source() -> Iterator[dict]:
        for row in [rows[1], rows[0], rows[3], rows[2]]:
            held.append(row["id"])
            yield row

    ordered = iter_in_order(source())
    assert next(ordered) == rows[0] and held == [1, 0]  # the first row comes out before the input ends
    with pytest.raises(ValueError, match="2 never came"):
        list(iter_in_order([rows[0], rows[1], rows[3]]))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    context = ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_parse_dataset_equals_the_library(local_ray, tiny_checkpoint):
    import ray.data

    from onlstm.ray import parse_dataset

    parser = Parser.load(tiny_checkpoint)
    dataset = ray.data.from_items([{"id": index, "text": text} for index, text in enumerate(SENTENCES)],
                                  override_num_blocks=6)
    parsed = parse_dataset(dataset, checkpoint=str(tiny_checkpoint), rows_per_batch=8, layer=0)
    rows = list(iter_in_order(parsed))
    expected = parser.parse_many(SENTENCES, layer=0)
    assert [row["id"] for row in rows] == list(range(len(SENTENCES)))
    for row, text, result in zip(rows, SENTENCES, expected):
        assert row["text"] == text  # the input columns travel along
        assert list(row["tokens"]) == result.tokens
        assert row["tree"] == to_ptb_string(result.tree)
        assert [tuple(span) for span in row["spans"]] == result.spans
        assert row["perplexity"] == pytest.approx(result.perplexity)
        assert [text[start:end] for start, end in row["offsets"]] == result.tokens
        assert list(row["warnings"]) == result.warnings and row["unk_share"] == pytest.approx(result.unk_share, abs=1e-4)
    assert sum(1 for row in rows if len(row["warnings"])) == 3

    tokenized = ray.data.from_items([{"id": index, "words": result.tokens} for index, result in enumerate(expected)])
    parsed = parse_dataset(tokenized, column="words", tokenized=True, checkpoint=str(tiny_checkpoint),
                           decoder="split", right_branching_bias=0.7, all_layers=True, actors=1)
    by_id = {row["id"]: row for row in parsed.iter_rows()}
    split = parser.parse_many([result.tokens for result in expected], decoder="split", right_branching_bias=0.7)
    assert [by_id[index]["tree"] for index in range(len(split))] == [to_ptb_string(result.tree) for result in split]
    assert all(len(row["layer_distances"]) == 3 for row in by_id.values())
    with pytest.raises(ValueError, match="no column 'sentence'"):
        parse_dataset(tokenized, column="sentence")


@pytest.mark.slow
def test_command_line_on_a_ray_cluster_writes_what_the_plain_command_writes(local_ray, tiny_checkpoint, tmp_path):
    # 2,500 sentences: 3 chunks of onlstm parse, each a row of the Ray dataset
    source = tmp_path / "input.txt"
    source.write_text("".join(SENTENCES[index % len(SENTENCES)] + f" Number {index}.\n" for index in range(2500)))
    outputs = {}
    for name, extra in (("plain", []), ("ray", ["--ray", local_ray])):
        outputs[name] = tmp_path / f"{name}.jsonl"
        completed = subprocess.run(
            [sys.executable, "-m", "onlstm", "parse", str(source), "-o", str(outputs[name]), "--checkpoint",
             str(tiny_checkpoint), "--threads", "1", "--input-format", "lines", *extra], capture_output=True, text=True, cwd=REPO, timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert not error_level_lines(completed.stderr), completed.stderr[-3000:]
    assert outputs["ray"].read_text() == outputs["plain"].read_text()
    assert len(outputs["ray"].read_text().splitlines()) == 2500


def error_level_lines(stderr: str) -> list[str]:
    """Ray's C++ error lines (``[... E 123 456] core_worker.cc:...``) and Python ERROR or WARNING lines."""
    return [line for line in stderr.splitlines()
            if re.match(r"\[[^\]]* [EF] \d+ \d+\]", line) or re.search(r"\b(ERROR|WARNING|Traceback)\b", line)]


@pytest.mark.slow
def test_a_local_ray_run_that_goes_well_prints_only_the_command_s_own_lines(tiny_checkpoint, tmp_path):
    pytest.importorskip("ray")
    source = tmp_path / "input.txt"
    source.write_text("".join(sentence + "\n" for sentence in SENTENCES))
    output = tmp_path / "ray.ptb"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    completed = subprocess.run(
        [sys.executable, "-m", "onlstm", "parse", str(source), "-o", str(output), "--checkpoint", str(tiny_checkpoint),
         "--threads", "1", "--workers", "1", "--input-format", "lines", "--format", "ptb", "--ray"],
        capture_output=True, text=True, cwd=REPO, timeout=600, env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(output.read_text().splitlines()) == len(SENTENCES)
    assert not error_level_lines(completed.stderr), completed.stderr[-3000:]
    assert all(line.startswith("onlstm parse: ") for line in completed.stderr.splitlines()), completed.stderr[-3000:]


def test_parse_dataset_checks_the_options_before_starting_anything():
    pytest.importorskip("ray")
    from onlstm.models.options import OptionError, ParseOptions
    from onlstm.ray import parse_dataset

    class NotADataset:
        def columns(self):
            raise AssertionError("the dataset was touched")

    with pytest.raises(OptionError) as caught:
        parse_dataset(NotADataset(), ParseOptions(layer=1), decoder="beam")
    assert caught.value.option == "decoder"


@pytest.mark.slow
def test_each_row_is_parsed_in_its_language(local_ray, tiny_checkpoint, tmp_path):
    import ray.data

    from onlstm.models.languages import LanguageError
    from onlstm.ray import parse_dataset

    from ..releases import make_release

    spanish = make_release(tmp_path, "es", seed=1)
    texts = [("en", "The cat sat on the mat."), ("es", "¿Dónde está el gato?"), ("en", "A dog ran."),
             ("es", "El gato duerme.")]
    dataset = ray.data.from_items([{"id": index, "lang": language, "text": text}
                                   for index, (language, text) in enumerate(texts)])
    parsed = parse_dataset(dataset, language_column="lang", actors=1,
                           checkpoints={"en": str(tiny_checkpoint), "es": str(spanish)})
    rows = list(iter_in_order(parsed))
    expected = {"en": Parser.load(tiny_checkpoint), "es": Parser.load(spanish)}
    for row, (language, text) in zip(rows, texts):
        result = expected[language].parse(text)
        assert (row["language"], row["model"]) == (language, expected[language].name)
        assert list(row["tokens"]) == result.tokens and row["tree"] == to_ptb_string(result.tree)
    assert list(rows[1]["tokens"])[0] == "¿"  # tokenized as Spanish in the actor
    every_row_spanish = parse_dataset(dataset.drop_columns(["lang"]), language="es", checkpoint=str(spanish),
                                      actors=1)  # the first call's actor may still hold one of the two CPUs
    assert {row["language"] for row in every_row_spanish.iter_rows()} == {"es"}
    with pytest.raises(LanguageError) as refused:  # no model of it: refused before any actor starts
        parse_dataset(dataset, language="xx")
    assert refused.value.code == "unknown_language"
