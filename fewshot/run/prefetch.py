"""Training batches gathered one step ahead on a thread, in pinned memory, while a GPU runs the current step.

On CUDA the sampler's gather (and any augmentation) of batch t+1 runs on the CPU while the GPU trains on batch
t, and page-locked ("pinned") host memory lets the copy to the GPU run asynchronously (``non_blocking``). Batch t
is a pure function of t, so prefetching changes when a batch is made, never what it holds: the numbers are
those of the plain loop. On a CPU the gather runs in the loop itself, since a second thread would only take
the cores the training step uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch


def pinned(batch: Any) -> Any:
    """``batch`` (tensors, lists of them, dataclasses holding them) with every tensor in pinned memory."""
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, list):
        return [pinned(item) for item in batch]
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: pinned(getattr(batch, f.name)) for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch


class Prefetched:
    """``batch_at`` with batch t+1 prepared on a thread while batch t is used; ``prepare`` (``pinned`` on CUDA)
    is applied to each batch on that thread. Asking for another step than the next drops the prepared batch."""

    def __init__(self, batch_at: Callable[[int], Any], prepare: Callable[[Any], Any] = lambda batch: batch):
        self.batch_at, self.prepare = batch_at, prepare
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fewshot-prefetch")
        self.ahead: tuple[int, Future] | None = None

    def _make(self, step: int) -> Any:
        return self.prepare(self.batch_at(step))

    def __call__(self, step: int) -> Any:
        if self.ahead is not None and self.ahead[0] == step:
            batch = self.ahead[1].result()
        else:
            batch = self._make(step)
        self.ahead = (step + 1, self.pool.submit(self._make, step + 1))
        return batch

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetched:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def for_device(batch_at: Callable[[int], Any], device: torch.device | str) -> Prefetched | None:
    """A :class:`Prefetched` over ``batch_at`` for a CUDA device (pinning each batch); None elsewhere."""
    if torch.device(device).type != "cuda":
        return None
    return Prefetched(batch_at, pinned)
