"""Prefetched training batches: the same batches as the plain loop, in any order of asking; pinning keeps
every tensor's values; nothing is prefetched off CUDA."""

import threading

import pytest
import torch

from fewshot.core.episode import LabelledImages, random_episode
from fewshot.run import prefetch
from fewshot.run.prefetch import Prefetched, for_device, pinned


def batch_at(step):
    return [random_episode(3, 1, 2, seed=step), random_episode(3, 1, 2, seed=1000 + step)]


def same(a, b):
    return all(torch.equal(x.support_x, y.support_x) and torch.equal(x.query_y, y.query_y) for x, y in zip(a, b))


def test_prefetched_batches_are_the_plain_ones_in_any_order():
    made = []

    def recorded(step):
        made.append((step, threading.current_thread().name))
        return batch_at(step)

    with Prefetched(recorded) as fetch:
        for step in (0, 1, 2, 7, 8, 3):  # a jump drops the prepared batch and starts again from there
            assert same(fetch(step), batch_at(step)), step
    assert any(name.startswith("fewshot-prefetch") for _, name in made), "the next batch is made on the thread"
    assert {step for step, _ in made} >= {0, 1, 2, 3, 7, 8}


def test_prepare_runs_on_every_batch_served():
    with Prefetched(batch_at, prepare=lambda batch: [e.support_x.sum() for e in batch]) as fetch:
        assert torch.equal(fetch(4)[0], batch_at(4)[0].support_x.sum())
        assert torch.equal(fetch(5)[1], batch_at(5)[1].support_x.sum())


def test_pinned_walks_lists_and_dataclasses(monkeypatch):
    """Pinning needs a GPU driver; here each tensor is marked instead, to check every one is reached."""
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: t + 1000)
    images = LabelledImages(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))
    out = pinned([images, random_episode(2, 1, 1)])
    assert torch.equal(out[0].x, images.x + 1000) and torch.equal(out[0].y, images.y + 1000)
    assert (out[1].query_x >= 1000).all() and (out[1].support_y >= 1000).all()


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_nothing_is_prefetched_on_a_cpu(device):
    assert for_device(batch_at, device) is None
    on_cuda = prefetch.for_device(batch_at, "cuda")  # a CUDA run gets one (no GPU is needed to build it)
    assert on_cuda is not None
    on_cuda.close()
