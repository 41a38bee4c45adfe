"""``training.step.TrainStep``: without a GPU it runs the step eagerly, and that step is a training step."""

import copy

import torch

from onlstm.models.network.onlstm import ONLSTMConfig, ONLSTMLanguageModel, activation_regularization
from onlstm.training.step import TrainStep

SMALL = dict(vocab_size=30, embedding_size=8, hidden_size=12, n_layers=2, chunk_size=4)


def test_on_a_cpu_cuda_graphs_fall_back_to_the_eager_step_which_trains_like_the_loop():
    torch.manual_seed(0)
    model = ONLSTMLanguageModel(ONLSTMConfig(**SMALL))
    twin = copy.deepcopy(model)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.5), 3, alpha=2.0, beta=1.0, clip=0.25,
                     cuda_graphs=True)
    assert not step.cuda_graphs and not step.graphs
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.5)
    twin_state = None
    generator = torch.Generator().manual_seed(1)
    for window in range(4):
        ids = torch.randint(0, 30, (3, 8), generator=generator)
        torch.manual_seed(100 + window)  # the same dropout masks on both sides
        nll, _ = step.step(ids[:, :-1], ids[:, 1:])
        torch.manual_seed(100 + window)
        twin_optimizer.zero_grad()
        detached = None if twin_state is None else [(h.detach(), c.detach()) for h, c in twin_state]
        output = twin(ids[:, :-1], state=detached)
        expected = twin.token_nll(output.hidden, ids[:, 1:]).mean()
        (expected + activation_regularization(output, 2.0, 1.0)).backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.25)
        twin_optimizer.step()
        twin_state = output.state
        torch.testing.assert_close(nll, expected.detach())
    for (name, parameter), twin_parameter in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(parameter, twin_parameter, msg=name)
    for (h, c), (twin_h, twin_c) in zip(step.state, twin_state):
        torch.testing.assert_close(h, twin_h.detach())
        torch.testing.assert_close(c, twin_c.detach())
