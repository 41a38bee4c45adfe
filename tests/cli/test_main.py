"""The onlstm command: dispatch, and eval on a real (tiny) checkpoint."""

import json
import subprocess
import sys

import pytest

from onlstm.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("serve", "parse", "train", "eval"):
        assert command in out


def test_unknown_command(capsys):
    assert main(["fly"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_eval_scores_the_gate_it_is_told(tiny_checkpoint, shared_data, capsys):
    from onlstm.models.parser import Parser
    from onlstm.training.corpora import ptb_split_files, read_treebank
    from onlstm.training.evaluate import evaluate_model, parser_distances, prepare_gold_trees

    status = main(["eval", "--checkpoint", str(tiny_checkpoint), "--data", str(shared_data / "ptb-sample"),
                   "--gate", "input", "--decoder", "split", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)["reports"]["words"]
    assert report["gate"] == "input"
    golds = prepare_gold_trees(read_treebank(ptb_split_files(shared_data / "ptb-sample", "dev")))
    distances = parser_distances(Parser.load(tiny_checkpoint), golds, "words", gate="input")
    expected = evaluate_model(golds, lambda inputs: distances, mode="words", decoders=("split",),
                              right_branching_biases=[0.0])
    scored = {row["name"]: row["sentence_f1"] for row in report["model"]}
    assert scored == {row["name"]: row["sentence_f1"] for row in expected["model"]}
    forget = parser_distances(Parser.load(tiny_checkpoint), golds, "words")
    assert forget != distances  # the forget gate's distances would have scored other trees


def test_eval_on_a_checkpoint_prints_the_model_beside_the_baselines(tiny_checkpoint, shared_data, capsys):
    status = main(["eval", "--checkpoint", str(tiny_checkpoint), "--data", str(shared_data / "ptb-sample"),
                   "--mode", "both", "--json"])
    assert status == 0
    report = json.loads(capsys.readouterr().out)
    for mode in ("words", "raw"):
        rows = report["reports"][mode]
        assert [row["name"] for row in rows["baselines"]][:2] == ["left-branching", "right-branching"]
        right = next(row for row in rows["baselines"] if row["name"] == "right-branching")
        assert round(right["sentence_f1"], 1) == 39.3
        layers = {row["layer"] for row in rows["model"]}
        assert layers == {0, 1, 2, "mean"}
        assert all(0 <= row["sentence_f1"] <= 100 for row in rows["model"])
        assert rows["n_sentences"] == 328
    # the perplexity of what the model read: in raw mode the same figure as training's dev evaluation
    from onlstm.models.checkpoint import load_release
    from onlstm.training.config import TrainConfig
    from onlstm.training.dev_evaluation import evaluate_dev
    from onlstm.training.inputs import load_dev_trees

    release = load_release(tiny_checkpoint)
    config = TrainConfig(data_dir=str(shared_data), dev_corpus="ptb-dev")
    expected = evaluate_dev(release.model, release.vocab, config, load_dev_trees(config))["dev_perplexity"]
    raw, words = report["reports"]["raw"], report["reports"]["words"]
    assert raw["perplexity"] == pytest.approx(expected, rel=1e-6)
    assert 1 < words["perplexity"] and words["perplexity_tokens"] <= raw["perplexity_tokens"]


def test_eval_with_a_missing_checkpoint_says_so(tmp_path, shared_data, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["eval", "--checkpoint", str(missing), "--data", str(shared_data / "ptb-sample")]) == 2
    assert "nope.safetensors" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, options",
    [("train", ["--accumulate", "--adversarial-epsilon", "--resume"]), ("eval", ["--evalb", "--mode"]),
     ("sweep", ["--parallel", "--summarize"])],
)
@pytest.mark.slow
def test_python_dash_m_training_commands_help(command, options):
    result = subprocess.run([sys.executable, "-m", "onlstm", command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: onlstm {command}")
    assert all(option in result.stdout for option in options)
