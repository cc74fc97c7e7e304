import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from fewshot.baselines.inner_loop import adapt, detached_parameters, meta_parameters
from fewshot.baselines.maml import MAML
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.learner import TaskSpec


def _episodes(count, ways, shots, queries, size=28):
    generator = torch.Generator().manual_seed(11)
    return [
        Episode(
            torch.rand(ways * shots, 1, size, size, generator=generator),
            grouped_labels(ways, shots),
            torch.rand(ways * queries, 1, size, size, generator=generator),
            grouped_labels(ways, queries),
            torch.arange(ways),
            seed=i,
        )
        for i in range(count)
    ]


def _plain_meta_gradient(net, batch, steps, lr, first_order):
    """learn2learn's MAML step written out: per task, copy, adapt with autograd.grad, backpropagate the query loss."""
    net.zero_grad()
    for episode in batch:
        params = dict(net.named_parameters())
        for _ in range(steps):
            loss = F.cross_entropy(functional_call(net, params, (episode.support_x,)), episode.support_y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
            params = {k: p - lr * g for (k, p), g in zip(params.items(), grads)}
        (F.cross_entropy(functional_call(net, params, (episode.query_x,)), episode.query_y) / len(batch)).backward()
    return {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize("threads", [1, 2])
def test_maml_meta_gradient_is_the_plain_loop_s(threads, monkeypatch):
    """In double precision, so that 1e-5 measures the mathematics and not float32 rounding; with
    two threads the meta-batch's tasks run two at a time."""
    real = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    try:
        _check_meta_gradients()
    finally:
        torch.set_num_threads(real)


def _check_meta_gradients():
    for first_order in (False, True):
        task = TaskSpec("glyphs", "scripts", (1, 28, 28), 3, 1, 2, 10)
        torch.manual_seed(0)
        learner = MAML(
            task,
            {
                **MAML.hparams,
                "inner_steps": 2,
                "inner_lr": 0.3,
                "meta_batch": 3,
                "meta_lr": 0.0,
                "first_order": first_order,
            },
        ).double()
        batch = [e.map_inputs(torch.Tensor.double) for e in _episodes(3, 3, 1, 11)]  # 33 queries: the large-batch path
        expected = _plain_meta_gradient(copy.deepcopy(learner.net), batch, 2, 0.3, first_order)
        learner.train_step(batch)  # meta_lr 0: the step leaves the parameters and their .grad
        for name, p in learner.net.named_parameters():
            assert torch.allclose(p.grad, expected[name], atol=1e-5, rtol=0), (first_order, name)


def _tiny_net():
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        nn.BatchNorm2d(2, track_running_stats=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 2),
    ).double()
    generator = torch.Generator().manual_seed(5)
    support = torch.rand(4, 1, 6, 6, generator=generator, dtype=torch.float64)
    query = torch.rand(6, 1, 6, 6, generator=generator, dtype=torch.float64)
    return net, support, torch.tensor([0, 0, 1, 1]), query, torch.tensor([0, 1, 0, 1, 0, 1])


def _functional(net):
    return lambda params, x: functional_call(net, params, (x,))


def _query_loss(net, flat, support, support_y, query, query_y, second_order):
    names, shapes = zip(*[(n, p.shape) for n, p in net.named_parameters()])
    sizes = [s.numel() for s in shapes]
    params = {n: t.reshape(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
    fast = adapt(_functional(net), params, support, support_y, 2, 0.5, second_order=second_order)
    return F.cross_entropy(functional_call(net, fast, (query,)), query_y)


def test_second_order_meta_gradient_matches_finite_differences():
    net, support, support_y, query, query_y = _tiny_net()
    flat = torch.cat([p.detach().flatten() for p in net.parameters()]).requires_grad_()
    exact = torch.autograd.grad(_query_loss(net, flat, support, support_y, query, query_y, True), flat)[0]
    h = 1e-6
    numeric = torch.stack(
        [
            (
                _query_loss(net, (flat.detach() + h * e).requires_grad_(), support, support_y, query, query_y, True)
                - _query_loss(net, (flat.detach() - h * e).requires_grad_(), support, support_y, query, query_y, True)
            )
            / (2 * h)
            for e in torch.eye(flat.numel(), dtype=torch.float64)
        ]
    )
    assert torch.allclose(exact, numeric, atol=1e-6, rtol=1e-5)
    first_order = torch.autograd.grad(_query_loss(net, flat, support, support_y, query, query_y, False), flat)[0]
    assert not torch.allclose(first_order, numeric, atol=1e-3), "the first-order gradient is only an approximation"


def test_adapting_never_changes_the_module():
    net, support, support_y, _, _ = _tiny_net()
    before = copy.deepcopy(net.state_dict())
    fast = adapt(_functional(net), detached_parameters(net), support, support_y, 3, 0.5, second_order=False)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(not torch.equal(fast[k], before[k]) for k in before), "every parameter moved"
    meta = meta_parameters(net)
    assert all(meta[k] is p for k, p in net.named_parameters())
