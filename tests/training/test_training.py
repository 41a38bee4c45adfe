"""Training: gradient accumulation, FGM, batching, and an end-to-end tiny run with resume."""

import json
import logging
import platform
import random
import re

import pytest
import torch

from onlstm.cli.train import main
from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from onlstm.training.adversarial import FGM
from onlstm.training.batching import batchify, windows
from onlstm.training.config import TrainConfig, load_preset
from onlstm.training.optimization import accumulate_gradients
from onlstm.training.train import train

NO_DROPOUT = dict(dropout_output=0.0, dropout_hidden=0.0, dropout_input=0.0, dropout_embedding=0.0, dropconnect=0.0)
NO_AUTOCAST = torch.autocast("cpu", enabled=False)


def tiny_lm(seed=0, **overrides):
    torch.manual_seed(seed)
    config = ONLSTMConfig(
        vocab_size=30, embedding_size=8, hidden_size=12, n_layers=2, chunk_size=4, **{**NO_DROPOUT, **overrides}
    )
    return ONLSTMLanguageModel(config)


def gradients(model, inputs, targets, batch_size, accumulate, epsilon=0.0):
    model.zero_grad(set_to_none=True)
    config = TrainConfig(batch_size=batch_size, accumulate=accumulate, alpha=2.0, beta=1.0, adversarial_epsilon=epsilon)
    states = [model.init_state(batch_size) for _ in range(accumulate)]
    fgm = FGM(model.embedding, epsilon) if epsilon else None
    loss, _ = accumulate_gradients(model, inputs, targets, states, config, fgm, NO_AUTOCAST)
    return loss, {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


def test_accumulation_equals_the_large_batch_gradient():
    model = tiny_lm()
    data = torch.randint(0, 30, (8, 11))
    inputs, targets = data[:, :-1], data[:, 1:]
    loss_big, big = gradients(model, inputs, targets, batch_size=8, accumulate=1)
    loss_small, small = gradients(model, inputs, targets, batch_size=2, accumulate=4)
    assert loss_small == pytest.approx(loss_big, rel=1e-5)
    for name in big:
        torch.testing.assert_close(small[name], big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fgm_composes_with_accumulation():
    model = tiny_lm()
    data = torch.randint(0, 30, (4, 9))
    inputs, targets = data[:, :-1], data[:, 1:]
    # with FGM, each micro-batch attacks along its own gradient: accumulation of 2 x 2
    # equals two separate single-micro-batch passes summed with weight 1/2
    _, accumulated = gradients(model, inputs, targets, batch_size=2, accumulate=2, epsilon=0.5)
    _, first = gradients(model, inputs[:2], targets[:2], batch_size=2, accumulate=1, epsilon=0.5)
    _, second = gradients(model, inputs[2:], targets[2:], batch_size=2, accumulate=1, epsilon=0.5)
    for name in accumulated:
        torch.testing.assert_close(accumulated[name], (first[name] + second[name]) / 2, rtol=1e-4, atol=1e-6)
    _, clean = gradients(model, inputs, targets, batch_size=2, accumulate=2)
    assert not torch.allclose(accumulated["embedding.weight"], clean["embedding.weight"])


def test_fgm_restores_embeddings_bit_identically_and_attack_raises_the_loss():
    torch.manual_seed(0)
    model = tiny_lm()
    data = torch.randint(0, 30, (4, 13))
    inputs, targets = data[:, :-1], data[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):  # a briefly trained model, so the gradient is informative
        optimizer.zero_grad()
        model.token_nll(model(inputs).hidden, targets).mean().backward()
        optimizer.step()
    fgm = FGM(model.embedding, epsilon=1.0)
    before = model.embedding.weight.detach().clone()
    optimizer.zero_grad()
    fgm.mark()
    clean = model.token_nll(model(inputs).hidden, targets).mean()
    clean.backward()
    assert fgm.attack()
    with torch.no_grad():
        adversarial = model.token_nll(model(inputs).hidden, targets).mean()
    fgm.restore()
    assert adversarial.item() > clean.item()
    assert torch.equal(model.embedding.weight, before)


def test_windows_cover_the_stream_once():
    data = batchify(torch.arange(1000), 4)
    assert data.shape == (4, 250)
    rng = random.Random(0)
    covered = []
    for position, inputs, targets in windows(data, 0, 20, rng, True):
        assert torch.equal(targets[:, :-1], inputs[:, 1:])
        covered.extend(range(position, position + inputs.size(1)))
    assert covered == list(range(249))
    with pytest.raises(ValueError, match="too small"):
        batchify(torch.arange(5), 4)


def test_presets_load_and_validate():
    for name in ("tiny", "cpu", "default", "gpu-paper"):
        load_preset(name).validate()
    paper = load_preset("gpu-paper")
    assert (paper.model.n_layers, paper.model.hidden_size, paper.model.embedding_size, paper.model.chunk_size) == (3, 1150, 400, 10)
    with pytest.raises(ValueError, match="no preset"):
        load_preset("huge")
    config = load_preset("tiny").override(["lr=0.1", "corpora=ptb-train,ptb-lm", "random_bptt=false"])
    assert config.lr == 0.1 and config.corpora == ["ptb-train", "ptb-lm"] and config.random_bptt is False
    with pytest.raises(ValueError, match="learning_rate: unknown field; .*the fields are corpora"):
        config.override(["learning_rate=1"])
    with pytest.raises(ValueError, match="field=value"):
        config.override(["lr"])


def test_the_model_config_is_nested_once_and_older_flat_configs_still_load():
    from onlstm.models.checkpoint import load_release
    from onlstm.models.parser import DEFAULT_CHECKPOINT

    config = load_preset("tiny").override(["model.hidden_size=128", "corpora=a.txt,b.txt", "betas=0.9,0.99"])
    assert isinstance(config.model, ONLSTMConfig) and config.model.hidden_size == 128
    assert config.corpora == ["a.txt", "b.txt"] and config.betas == (0.9, 0.99)
    assert config.model_for_vocabulary(77) == ONLSTMConfig(**{**config.model.__dict__, "vocab_size": 77})
    assert TrainConfig.from_dict(config.to_dict()) == config
    # releases written before the model was nested hold a flat train_config: the model's fields beside the others
    nested = load_preset("default").to_dict()
    flat = {**{key: value for key, value in nested.items() if key != "model"}, **nested["model"]}
    assert TrainConfig.from_dict(flat) == load_preset("default")
    # the bundled model was trained with the default preset (on one thread, its one resume
    # checkpoint at the end), and carries the preset's right-branching prior as its default
    bundled = load_release(DEFAULT_CHECKPOINT).metadata
    assert TrainConfig.from_saved(bundled["train_config"]).differences(load_preset("default")) == {
        "threads": (1, 0), "checkpoint_every": (2000, 100)}
    assert bundled["default_right_branching_bias"] == load_preset("default").right_branching_bias == 0.4


@pytest.mark.parametrize(
    "arguments, words",
    [
        (["--set", "lr=abc"], ["lr:", "valid number", "'abc'"]),
        (["--set", "learning_rate=0.1"], ["learning_rate: unknown field", "the fields are", "model.hidden_size"]),
        (["--set", "lrate=0.1"], ["lrate: unknown field; did you mean lr or"]),
        (["--resume"], ["--resume:", "holds no last.pt to continue from; leave out --resume"]),
        (["--set", "hidden_size=10"], ["hidden_size", "write model.hidden_size"]),
        (["--accumulate", "-1"], ["accumulate:", "greater than 0"]),
        (["--set", "optimizer=rmsprop"], ["optimizer:", "'adam', 'adamw' or 'sgd'"]),
        (["--set", "model.chunk_size=7"], ["model:", "chunk_size 7 must divide"]),
        (["--set", "model.dropconnect=1.5"], ["dropconnect", "[0, 1)"]),
    ],
)
def test_a_bad_setting_is_refused_at_start_naming_the_field(tmp_path, caplog, arguments, words):
    caplog.set_level("ERROR", logger="onlstm.training")
    run = tmp_path / "run"
    assert main(["--preset", "tiny", "--out", str(run), *arguments]) == 2
    [message] = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    for word in words:
        assert word in message, (word, message)
    assert not run.exists()


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def tiny_config(shared_data):
    return load_preset("tiny").override(
        [
            f"data_dir={shared_data}",
            "max_steps=16",
            "eval_every=8",
            "checkpoint_every=4",
            "threads=1",
            "dev_max_sentences=30",
        ]
    )


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_tiny_run_trains_checkpoints_evaluates_and_resumes_exactly(tiny_config, tmp_path):
    from onlstm.models.parser import Parser

    whole = tmp_path / "whole"
    train(tiny_config, whole)
    losses = [row["loss"] for row in read_jsonl(whole / "steps.jsonl")]
    assert len(losses) == 16
    assert losses[-1] < losses[0]
    metrics = read_jsonl(whole / "metrics.jsonl")
    assert [row["step"] for row in metrics] == [8, 16]
    assert all(len(row["dev_f1_per_layer"]) == 3 for row in metrics)
    assert all(0 <= row["dev_unk_share"] < 0.5 for row in metrics)
    parser = Parser.load(whole / "best.safetensors")
    assert parser.metadata["default_layer"] in range(3)
    assert parser.parse("the market fell sharply").tree.leaves() == ["the", "market", "fell", "sharply"]
    assert (whole / "curves.png").stat().st_size > 1000

    # the same run, stopped after 8 steps, then resumed: identical following losses
    interrupted = tmp_path / "interrupted"
    train(tiny_config.override(["max_steps=8"]), interrupted)
    train(tiny_config, interrupted, resume=True)
    resumed = [row["loss"] for row in read_jsonl(interrupted / "steps.jsonl")]
    assert resumed == pytest.approx(losses, rel=1e-6, abs=1e-7)

    # what cannot apply to a resumed run is refused, from the library and from the command line
    with pytest.raises(ValueError, match=r"cannot change accumulate \(saved 1, asked 2\) on --resume"):
        train(tiny_config.override(["accumulate=2", "max_steps=20"]), interrupted, resume=True)
    for flags in (["--accumulate", "2"], ["--set", "model.hidden_size=32"], ["--corpora", "ptb-lm"]):
        assert main(["--out", str(interrupted), "--resume", "--max-steps", "20", *flags]) == 2
    assert [row["step"] for row in read_jsonl(interrupted / "steps.jsonl")] == list(range(1, 17))


@pytest.mark.slow
def test_keep_releases_writes_every_evaluation_s_weights(tiny_config, tmp_path):
    from onlstm.models.parser import Parser

    train(tiny_config.override(["max_steps=4", "eval_every=2", "keep_releases=true"]), tmp_path / "run")
    kept = sorted(path.name for path in (tmp_path / "run").glob("release-step*.safetensors"))
    assert kept == ["release-step2.safetensors", "release-step4.safetensors"]
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for row in metrics:
        parser = Parser.load(tmp_path / "run" / f"release-step{row['step']}.safetensors")
        assert parser.metadata["steps"] == row["step"]
        assert parser.metadata["dev_perplexity"] == pytest.approx(row["dev_perplexity"])


@pytest.mark.slow
def test_dropconnect_sampler_reaches_every_layer_and_the_average(tiny_config, tmp_path):
    from onlstm.training.trainer import Trainer

    assert load_preset("default").dropconnect_sampler == "torch"  # the stream the bundled model was trained on
    assert TrainConfig().dropconnect_sampler == "native"
    for sampler, native in (("torch", False), ("native", True)):
        trainer = Trainer(tiny_config.override([f"dropconnect_sampler={sampler}", "average_decay=0.9"]),
                          tmp_path / sampler)
        for model in (trainer.model, trainer.average.module):
            assert [layer.native_dropconnect for layer in model.layers] == [native] * 3


def test_command_line_reports_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run"), "--corpora", str(empty)]) == 2
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run"), "--set", "batch_size=0"]) == 2


def test_precision_picks_autocast_per_device():
    from onlstm.training.devices import make_autocast

    cpu = torch.device("cpu")
    assert not make_autocast("auto", cpu)._enabled and not make_autocast("fp32", cpu)._enabled
    bf16 = make_autocast("bf16", cpu)
    assert bf16._enabled and bf16.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16").validate()


@pytest.mark.slow
def test_init_from_a_release_fine_tunes_its_weights_and_vocabulary(tiny_config, tmp_path):
    from onlstm.models.checkpoint import load_release

    base = tmp_path / "base"
    train(tiny_config.override(["max_steps=4", "eval_every=4"]), base)
    start = load_release(base / "best.safetensors")
    # another corpus and other layer sizes asked for: the release's vocabulary and shape win
    text = tmp_path / "domain.txt"
    text.write_text("the protein binds the receptor .\nthe receptor folds .\n" * 400)
    config = tiny_config.override(
        [
            f"init_from={base / 'best.safetensors'}",
            f"corpora={text}",
            "model.hidden_size=128",
            "punctuation=keep",
            "max_steps=1",
            "eval_every=1",
        ]
    )
    frozen = tmp_path / "frozen"
    train(config.override(["lr=0"]), frozen)  # a step of size 0: the weights are the release's
    saved = json.loads((frozen / "config.json").read_text())
    assert saved["model"]["hidden_size"] == 64 and saved["model"]["vocab_size"] == len(start.vocab)
    assert saved["punctuation"] == "drop"  # the release read words only: its vocabulary has no punctuation
    after = load_release(frozen / "last.safetensors")
    assert after.vocab.itos == start.vocab.itos
    assert after.metadata["training_unk_share"] > 0.25  # "protein", "binds", "receptor" are not WSJ's words
    for name, tensor in start.model.state_dict().items():
        torch.testing.assert_close(after.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    tuned = tmp_path / "tuned"
    train(config, tuned)  # a real step moves them
    moved = load_release(tuned / "last.safetensors").model.state_dict()
    assert not torch.equal(moved["embedding.weight"], start.model.state_dict()["embedding.weight"])
    missing = str(tmp_path / "nothing.safetensors")
    assert main(["--preset", "tiny", "--out", str(tmp_path / "bad"), "--init-from", missing]) == 2


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_frozen_layers_keep_their_weights_and_their_trees(tiny_config, tmp_path):
    from onlstm.models.checkpoint import load_release

    base = tmp_path / "base"
    train(tiny_config.override(["max_steps=4", "eval_every=4"]), base)
    start = load_release(base / "best.safetensors").model.state_dict()
    config = tiny_config.override(
        [f"init_from={base / 'best.safetensors'}", "freeze=embedding,layers.0", "max_steps=6", "eval_every=3",
         "average_decay=0.9"]
    )
    tuned = tmp_path / "tuned"
    train(config, tuned)
    after = load_release(tuned / "last.safetensors").model.state_dict()
    for name, tensor in start.items():
        if name == "embedding.weight" or name.startswith("layers.0."):
            torch.testing.assert_close(after[name], tensor, rtol=0, atol=0, msg=name)  # kept bit for bit
        else:
            assert not torch.equal(after[name], tensor), name  # trained
    metrics = read_jsonl(tuned / "metrics.jsonl")
    # the first layer's trees come from the kept weights alone: the same F1 at every evaluation
    assert len({row["dev_f1_per_layer"][0] for row in metrics}) == 1
    with pytest.raises(ValueError, match=r"freeze: 'layer.0' names no parameter of the model; use one of .*layers\.0"):
        train(config.override(["freeze=layer.0"]), tmp_path / "typo")


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_a_right_branching_prior_scores_dev_and_becomes_the_release_default(tiny_config, tmp_path):
    from onlstm.models.parser import Parser
    from onlstm.training.evaluate import evaluate_model, model_input
    from onlstm.training.inputs import load_dev_trees

    plain, leaning = tmp_path / "plain", tmp_path / "leaning"
    train(tiny_config.override(["max_steps=4"]), plain)
    train(tiny_config.override(["max_steps=4", "right_branching_bias=0.6"]), leaning)
    plain_rows, leaning_rows = read_jsonl(plain / "metrics.jsonl"), read_jsonl(leaning / "metrics.jsonl")
    assert [row["train_loss"] for row in leaning_rows] == [row["train_loss"] for row in plain_rows]  # decoding only
    for before, after in zip(plain_rows, leaning_rows):
        assert after["dev_f1_per_layer_without_prior"] == pytest.approx(before["dev_f1_per_layer"])
        assert "dev_f1_per_layer_without_prior" not in before
    parser = Parser.load(leaning / "last.safetensors")
    assert parser.default_right_branching_bias == 0.6 and Parser.load(plain / "last.safetensors").default_right_branching_bias == 0
    # the recorded F1 is the release's own with its default prior
    golds = load_dev_trees(tiny_config)  # prepared for scoring
    distances = parser.layer_distances([model_input(gold, "words") for gold in golds], 64, "model")
    report = evaluate_model(golds, lambda _: distances, "words", ("greedy",), False, (0.6,))
    f1s = [row["sentence_f1"] for row in report["model"] if isinstance(row["layer"], int)]
    assert f1s == pytest.approx(leaning_rows[-1]["dev_f1_per_layer"], abs=0.05)


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_weight_averaging_releases_the_average_and_leaves_the_online_path_unchanged(tiny_config, tmp_path):
    from onlstm.models.checkpoint import load_release, load_resume

    plain, averaged = tmp_path / "plain", tmp_path / "averaged"
    train(tiny_config, plain)
    train(tiny_config.override(["average_decay=0.9"]), averaged)
    # the optimizer's path (losses) is the same: the schedule follows the online weights
    assert [row["loss"] for row in read_jsonl(averaged / "steps.jsonl")] == pytest.approx(
        [row["loss"] for row in read_jsonl(plain / "steps.jsonl")], rel=1e-6, abs=1e-7
    )
    plain_rows, averaged_rows = read_jsonl(plain / "metrics.jsonl"), read_jsonl(averaged / "metrics.jsonl")
    for before, after in zip(plain_rows, averaged_rows):
        assert after["online_dev_perplexity"] == pytest.approx(before["dev_perplexity"], rel=1e-5)
        assert after["online_dev_f1_per_layer"] == pytest.approx(before["dev_f1_per_layer"], abs=1e-6)
        assert after["dev_perplexity"] != pytest.approx(before["dev_perplexity"], rel=1e-4)
        # the two halves of dev, scored apart, average (by sentence count) to the whole
        first, second = after["dev_f1_per_layer_halves"]
        n = 30  # dev_max_sentences: halves of 15
        for layer, whole in enumerate(after["dev_f1_per_layer"]):
            assert (first[layer] * (n // 2) + second[layer] * (n - n // 2)) / n == pytest.approx(whole)

    # the release holds the averaged weights: decay 0.9 over 16 steps, from the initial weights
    state = load_resume(averaged / "last.pt")
    online = state["model"]
    average = {key.removeprefix("module."): value for key, value in state["average"].items()}
    release = load_release(averaged / "last.safetensors").model.state_dict()
    name = "embedding.weight"
    assert not torch.allclose(online[name], average[name])
    assert torch.allclose(release[name].float(), average[name], atol=1e-3)

    # resuming keeps the average: the same figures as the uninterrupted run
    interrupted = tmp_path / "interrupted"
    config = tiny_config.override(["average_decay=0.9"])
    train(config.override(["max_steps=8"]), interrupted)
    train(config, interrupted, resume=True)
    assert read_jsonl(interrupted / "metrics.jsonl")[-1]["dev_perplexity"] == pytest.approx(
        averaged_rows[-1]["dev_perplexity"], rel=1e-6
    )


def subnormals_survive() -> bool:
    return (torch.tensor([1e-39]) * 2).item() != 0.0


@pytest.mark.slow
def test_training_steps_flush_subnormals_and_the_setting_is_restored(tiny_config, tmp_path, monkeypatch):
    from onlstm.training.trainer import Trainer

    seen = []
    step = Trainer.train_step

    def watched_step(self, inputs, targets):
        seen.append(subnormals_survive())
        return step(self, inputs, targets)

    monkeypatch.setattr(Trainer, "train_step", watched_step)
    assert subnormals_survive()
    train(tiny_config.override(["max_steps=2", "eval_every=2"]), tmp_path / "run")
    assert seen == [False, False]  # flushed in every step
    assert subnormals_survive()  # and torch's default again afterwards


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="MXCSR is x86's")
def test_subnormals_are_flushed_in_every_thread_of_torchs_pool():
    from onlstm.models.network import native
    from onlstm.training.devices import flush_subnormals

    if native.kernels() is None or not native.kernels().layer_threads_shared:
        pytest.skip("needs the C kernels built with OpenMP")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tiny = torch.full((1 << 22,), 1e-39)  # large enough for torch to split the product over both threads
        assert (tiny * 2 != 0).all()
        with flush_subnormals():
            assert (tiny * 2 == 0).all()  # set_flush_denormal alone leaves the second thread's half
        assert (tiny * 2 != 0).all()
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_each_evaluation_is_logged_once_labelled_and_the_end_says_where_the_model_is(tiny_config, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="onlstm.training")
    out = tmp_path / "run"
    train(tiny_config.override(["max_steps=4", "eval_every=2"]), out)
    messages = [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if re.match(r"layer \d+ greedy", message)]  # no unlabelled rows
    evaluations = [message for message in messages if re.match(r"step \d+: dev perplexity", message)]
    assert len(evaluations) == 2
    assert all(re.search(r"dev sentence F1 \(greedy\) layer 0 [\d.]+, layer 1 [\d.]+, layer 2 [\d.]+", message)
               for message in evaluations)
    done = [message for message in messages if message.startswith("done:")]
    assert len(done) == 1 and str(out / "best.safetensors") in done[0] and str(out / "last.pt") in done[0]
