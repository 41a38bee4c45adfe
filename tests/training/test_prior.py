"""Choosing the right-branching prior on one half of dev: the figures are evaluate_model's on each half."""

import json

from onlstm.models.parser import Parser
from onlstm.training import prior
from onlstm.training.corpora import read_treebank
from onlstm.training.evaluate import evaluate_model, gold_files, parser_distances, prepare_gold_trees


def test_the_choice_is_the_best_mean_on_the_choosing_half(tiny_checkpoint, shared_data, tmp_path, capsys):
    out = tmp_path / "prior.json"
    assert prior.main([str(tiny_checkpoint), str(tiny_checkpoint), "--grid", "0,0.5,2", "--data", str(shared_data),
                       "--json", str(out), "--choose-on", "second"]) == 0
    result = json.loads(out.read_text())
    scores = result["checkpoints"][str(tiny_checkpoint)]
    golds = prepare_gold_trees(read_treebank(gold_files(data=shared_data)))
    distances = parser_distances(Parser.load(tiny_checkpoint), golds, "words")
    half = len(golds) // 2
    for strength in (0.0, 0.5, 2.0):
        second = evaluate_model(golds[half:], lambda _: distances[half:], "words", ("greedy",), False, (strength,))
        row = next(row for row in second["model"] if row["layer"] == 1)
        assert scores[str(strength)]["second"] == row["sentence_f1"]
    means = result["means"]
    assert result["strength"] == max((0.0, 0.5, 2.0), key=lambda strength: means[str(strength)]["second"])
    assert result["mean_f1_other_half"] == means[str(result["strength"])]["first"]
    assert "chosen on the second half" in capsys.readouterr().out


def test_a_bad_grid_is_refused(capsys):
    assert prior.main(["x.safetensors", "--grid", "0,strong"]) == 2
    assert "--grid takes numbers" in capsys.readouterr().err


def test_stamping_keeps_the_weights_and_sets_the_default(tiny_checkpoint, shared_data, tmp_path, capsys):
    from onlstm.models.checkpoint import load_release, save_release

    # a release that training wrote: its train_config is in the metadata
    original = load_release(tiny_checkpoint)
    trained = tmp_path / "trained.safetensors"
    save_release(trained, original.model, original.vocab, {**original.metadata, "train_config": {"seed": 7}})
    out = tmp_path / "stamped.safetensors"
    assert prior.main(["--stamp", "0.5", str(trained), "--out", str(out), "--data", str(shared_data)]) == 0
    assert "default right_branching_bias 0.5" in capsys.readouterr().out
    before, after = load_release(trained), load_release(out)
    assert after.digest == before.digest  # the same weights, bit for bit, in the same dtype
    assert after.metadata["default_right_branching_bias"] == 0.5
    assert after.metadata["train_config"] == {"seed": 7, "right_branching_bias": 0.5}
    assert Parser.load(out).default_right_branching_bias == 0.5
    golds = prepare_gold_trees(read_treebank(gold_files(data=shared_data)))
    distances = parser_distances(Parser.load(out), golds, "words")
    for bias, key in ((0.5, "dev_f1_per_layer"), (0.0, "dev_f1_per_layer_without_prior")):
        report = evaluate_model(golds, lambda _: distances, "words", ("greedy",), False, (bias,))
        expected = [row["sentence_f1"] for row in report["model"] if isinstance(row["layer"], int)]
        assert after.metadata[key] == expected
    assert prior.main(["--stamp", "0.5", str(trained), str(trained)]) == 2
