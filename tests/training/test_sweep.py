"""The sweep runner: runs side by side, one folder each, and the table built from their logs."""

import json

import pytest

from onlstm.cli.sweep import main
from onlstm.training.sweep import load_plan, markdown_table, summarize


def write_plan(tmp_path, runs, shared=()):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"preset": "tiny", "set": list(shared), "runs": runs}))
    return plan


def test_plan_is_checked(tmp_path):
    with pytest.raises(ValueError, match="no runs"):
        load_plan(write_plan(tmp_path, []))
    with pytest.raises(ValueError, match="unique"):
        load_plan(write_plan(tmp_path, [{"name": "a"}, {"name": "a"}]))
    with pytest.raises(ValueError, match="folder name"):
        load_plan(write_plan(tmp_path, [{"name": "../a"}]))


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_two_runs_in_parallel_and_their_table(tmp_path, shared_data, capsys):
    shared = [f"data_dir={shared_data}", "max_steps=4", "eval_every=2", "threads=1", "dev_max_sentences=20"]
    plan = write_plan(tmp_path, [{"name": "seed1", "set": ["seed=1"]}, {"name": "broken", "set": ["corpora=nowhere"]}], shared)
    out = tmp_path / "sweep"
    assert main([str(plan), "--out", str(out), "--parallel", "2"]) == 1  # one run fails: the sweep says so
    summary = json.loads((out / "summary.json").read_text())
    assert summary["statuses"] == {"seed1": 0, "broken": 2}
    assert "nowhere" in (out / "broken" / "train.log").read_text()
    [row] = summary["runs"]
    metrics = [json.loads(line) for line in (out / "seed1" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [2, 4] and row["steps"] == 4
    assert row["best_dev_f1"] == max(m["dev_f1"] for m in metrics)
    assert row["best_dev_perplexity"] == min(m["dev_perplexity"] for m in metrics)
    table = capsys.readouterr().out
    assert table.splitlines()[2].startswith("| seed1 | 4 | ") and table == markdown_table(summarize(out)) + "\n"


def test_selection_bias_chooses_on_one_half_and_scores_the_other():
    from onlstm.training.sweep import selection_bias

    # two evaluations, two layers: halves [[first half per layer], [second half per layer]]
    rows = [
        {"step": 100, "dev_f1_per_layer": [0, 0], "dev_f1_per_layer_halves": [[40.0, 50.0], [45.0, 30.0]]},
        {"step": 200, "dev_f1_per_layer": [0, 0], "dev_f1_per_layer_halves": [[42.0, 44.0], [47.0, 41.0]]},
    ]
    result = selection_bias(rows)
    # first half: its own best is 50 (step 100, layer 1); chosen on the second half -> step 200, layer 0 -> 42
    assert result["first"] == {"selected_here": 50.0, "selected_on_other_half": 42.0, "step": 200, "layer": 0}
    # second half: its own best is 47; chosen on the first half -> step 100, layer 1 -> 30
    assert result["second"] == {"selected_here": 47.0, "selected_on_other_half": 30.0, "step": 100, "layer": 1}
    assert result["mean_gap"] == (8.0 + 17.0) / 2
    assert selection_bias([{"step": 1, "dev_f1_per_layer": [1.0]}]) is None


def test_a_run_selected_on_held_out_perplexity_is_tabulated_without_dev_f1(tmp_path):
    run = tmp_path / "sweep" / "es-s1"
    run.mkdir(parents=True)
    rows = [{"step": 500, "dev_perplexity": 210.0}, {"step": 1000, "dev_perplexity": 150.5},
            {"step": 1500, "dev_perplexity": 152.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    [row] = summarize(tmp_path / "sweep")
    assert row["best_step"] == 1000 and row["best_dev_perplexity"] == 150.5 and row["steps"] == 1500
    assert row["best_dev_f1"] is None and row["dev_f1_per_layer_at_best"] == []
    assert markdown_table([row]).splitlines()[2] == "| es-s1 | 1500 | - | - | 150.5 | 150.5 | - | - |"


def test_the_gpu_session_groups_a_plan_by_language_and_bundles_the_lowest_perplexity_run(tmp_path):
    from benchmarks.gpu_session import lowest_perplexity_run, plan_languages

    plan = {"set": ["max_steps=0"], "runs": [{"name": "en-s1", "set": ["seed=1"]},
                                             {"name": "es-s1", "set": ["language=es", "seed=1"]},
                                             {"name": "es-s2", "set": ["language=es", "seed=2"]},
                                             {"name": "es-s3", "set": ["language=es", "seed=3"]}]}
    assert plan_languages(plan) == {"es": ["es-s1", "es-s2", "es-s3"]}
    for name, perplexity in (("es-s1", 140.0), ("es-s2", 131.0), ("es-s3", 120.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "choice.json").write_text(json.dumps({"heldout_perplexity": perplexity}))
        if name != "es-s3":  # stopped before it wrote its release: not a candidate
            (tmp_path / name / "best.safetensors").write_bytes(b"")
    assert lowest_perplexity_run(tmp_path, ["es-s1", "es-s2", "es-s3"]) == "es-s2"
    assert lowest_perplexity_run(tmp_path, ["missing"]) is None
