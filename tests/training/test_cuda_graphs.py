"""Training with CUDA graphs (``cuda_graphs``): the replayed step against the eager one.

The GPU tests are skipped without a CUDA device; ``benchmarks/gpu_session.sh`` runs them when a
GPU is lent.  On a CPU the setting changes nothing, which is tested everywhere.
"""

import copy
import json
import random

import pytest
import torch

from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel
from onlstm.training.config import load_preset
from onlstm.training.step import TrainStep
from onlstm.training.trainer import Trainer

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
NO_DROPOUT = ["model.dropout_output=0", "model.dropout_hidden=0", "model.dropout_input=0",
              "model.dropout_embedding=0", "model.dropconnect=0"]


@pytest.fixture
def tiny_config(shared_data):
    return load_preset("tiny").override(
        [f"data_dir={shared_data}", "max_steps=24", "eval_every=12", "checkpoint_every=12", "threads=1",
         "dev_max_sentences=20"]
    )


def losses(folder):
    return [json.loads(line)["loss"] for line in (folder / "steps.jsonl").read_text().splitlines()]


@pytest.mark.slow  # seconds on 2 cores: in the whole suite, not the quick one
def test_on_a_cpu_cuda_graphs_change_nothing(tiny_config, tmp_path):
    config = tiny_config.override(["device=cpu", "max_steps=6", "eval_every=6"])
    graphed = Trainer(config.override(["cuda_graphs=true"]), tmp_path / "graphed")
    assert graphed.graph_step is None
    graphed.fit()
    Trainer(config.override(["cuda_graphs=false"]), tmp_path / "eager").fit()
    assert losses(tmp_path / "graphed") == losses(tmp_path / "eager")


@needs_cuda
def test_replayed_gradients_equal_eager_ones_over_random_window_lengths():
    torch.manual_seed(0)
    sizes = dict(vocab_size=50, embedding_size=16, hidden_size=32, n_layers=3, chunk_size=8)
    no_dropout = dict(dropout_output=0, dropout_hidden=0, dropout_input=0, dropout_embedding=0, dropconnect=0)
    model = ONLSTMLanguageModel(ONLSTMConfig(**sizes, **no_dropout)).cuda()
    twin = copy.deepcopy(model)
    graphed = TrainStep(model, None, 4, cuda_graphs=True, warmup_steps=1, max_graphs=3)
    eager = TrainStep(twin, None, 4, cuda_graphs=False)
    optimizers = [torch.optim.Adam(network.parameters(), lr=0.003) for network in (model, twin)]
    lengths = random.Random(1)
    for index in range(40):
        ids = torch.randint(0, 50, (4, lengths.choice([5, 6, 7, 8, 9]) + 1), device="cuda")
        if index == 20:  # a fresh state, as after an epoch or a skipped step
            graphed.reset_state()
            eager.reset_state()
        if index == 25:  # a caller may drop the gradients; the next step brings them back
            optimizers[0].zero_grad(set_to_none=True)
        results = [step.step(ids[:, :-1], ids[:, 1:]) for step in (graphed, eager)]
        torch.testing.assert_close(results[0], results[1], rtol=1e-3, atol=1e-4)
        for optimizer in optimizers:
            optimizer.step()
    assert len(graphed.graphs) == 3  # the other two lengths ran eagerly past max_graphs
    for (name, parameter), twin_parameter in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(parameter, twin_parameter, rtol=1e-2, atol=1e-4, msg=name)


@needs_cuda
def test_a_gpu_run_with_cuda_graphs_follows_the_eager_run_and_resumes_exactly(tiny_config, tmp_path):
    config = tiny_config.override([*NO_DROPOUT, "device=cuda", "precision=fp32"])
    graphed = Trainer(config.override(["cuda_graphs=true"]), tmp_path / "graphed")
    graphed.fit()
    assert graphed.graph_step is not None and graphed.graph_step.graphs
    Trainer(config.override(["cuda_graphs=false"]), tmp_path / "eager").fit()
    assert losses(tmp_path / "graphed") == pytest.approx(losses(tmp_path / "eager"), rel=1e-3)

    stopped = tmp_path / "stopped"
    Trainer(config.override(["cuda_graphs=true", "max_steps=12"]), stopped).fit()
    Trainer(config.override(["cuda_graphs=true"]), stopped, resume=True).fit()
    assert losses(stopped) == pytest.approx(losses(tmp_path / "graphed"), rel=1e-3)


@needs_cuda
def test_bf16_and_dropout_train_under_cuda_graphs(tiny_config, tmp_path):
    trainer = Trainer(tiny_config.override(["device=cuda", "precision=bf16", "cuda_graphs=true", "max_steps=40"]),
                      tmp_path / "run")
    trainer.fit()
    assert trainer.graph_step.graphs
    values = losses(tmp_path / "run")
    assert len(values) == 40 and all(value == value for value in values)
    assert sum(values[-5:]) < sum(values[:5])
