"""Training for a budget: ``train_step`` on the learner's declared batches, with checkpoints and exact resume.

The loop knows nothing of any particular learner: it feeds batch ``t`` (a pure
function of t), calls ``train_step``, validates now and then, and saves the
state, step, elapsed time and RNG state so that a killed training resumes to
the same weights.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from fewshot.core.errors import FewshotError, Interrupted
from fewshot.core.learner import Learner
from fewshot.core.protocol import MAX_MINUTES, MAX_STEPS
from fewshot.run.prefetch import for_device as prefetched_for


@dataclass(frozen=True)
class Budget:
    """A training budget in steps (``500steps``) or minutes (``10min``), at most MAX_STEPS or MAX_MINUTES.
    ``0steps`` parses (a learner with nothing to train declares it); a run asks for it with --allow-untrained."""

    steps: int | None = None
    minutes: float | None = None

    @classmethod
    def parse(cls, text: str) -> Budget:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(steps?|min|minutes?)\s*", str(text))
        if not m:
            raise FewshotError(f"--budget {text!r}: write a number of steps (500steps) or minutes (10min)")
        value, unit = m.groups()
        if unit.startswith("step"):
            if "." in value:
                raise FewshotError(f"--budget {text!r}: steps are a whole number")
            if int(value) > MAX_STEPS:
                raise FewshotError(f"--budget {text!r}: at most {MAX_STEPS:,} steps")
            return cls(steps=int(value))
        if float(value) <= 0:
            raise FewshotError(f"--budget {text!r}: minutes must be positive")
        if float(value) > MAX_MINUTES:
            raise FewshotError(f"--budget {text!r}: at most {MAX_MINUTES:,} minutes (a week)")
        return cls(minutes=float(value))

    def done(self, step: int, seconds: float) -> bool:
        if self.steps is not None:
            return step >= self.steps
        assert self.minutes is not None, "a budget has steps or minutes"
        return seconds >= self.minutes * 60

    def __str__(self) -> str:
        return f"{self.steps}steps" if self.steps is not None else f"{self.minutes:g}min"


@dataclass
class TrainOutcome:
    steps: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0


def train(
    learner: Learner,
    batch_at: Callable[[int], Any],
    budget: Budget,
    *,
    save_checkpoint: Callable[[dict[str, Any], bool], None],
    device: torch.device | str = "cpu",
    validate: Callable[[], float] | None = None,
    validate_every: int = 500,
    checkpoint_every: int = 500,
    resume: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Run ``train_step`` on ``batch_at(step)`` until the budget is spent.

    ``save_checkpoint(progress, complete)`` receives the state, step, elapsed
    time and RNG state every ``checkpoint_every`` steps, on Ctrl-C and at the
    end; ``resume`` (such a progress dict) continues exactly, because batch
    ``t`` depends on t alone and the RNG state is restored.
    """
    step, elapsed, history = 0, 0.0, []
    if resume is not None:
        step, elapsed, history = int(resume["step"]), float(resume["elapsed"]), list(resume["history"])
        torch.set_rng_state(resume["rng"])
    resumed_from = step
    total = budget.steps if budget.steps is not None else None
    bar = tqdm(
        total=total,
        initial=step,
        desc="train",
        unit="step",
        disable=None if progress else True,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    val_acc = history[-1].get("val_acc") if history else None

    def save(complete: bool) -> None:
        save_checkpoint(
            {
                "step": step,
                "elapsed": elapsed,
                "history": history,
                "rng": torch.get_rng_state(),
                "state": learner.training_state(),
            },
            complete,
        )

    learner.train()
    started = time.perf_counter() - elapsed
    prefetch = prefetched_for(batch_at, device)  # on CUDA: batch t+1 gathered and pinned during step t
    fetch = batch_at if prefetch is None else prefetch
    with _stop_requests() as stop, prefetch or contextlib.nullcontext():
        while not budget.done(step, elapsed):
            metrics = learner.train_step(_to(fetch(step), device))
            step += 1
            elapsed = time.perf_counter() - started
            record = {"step": float(step), **{k: float(v) for k, v in metrics.items()}}
            if validate is not None and (step % validate_every == 0 or budget.done(step, elapsed)):
                val_acc = validate()
                learner.train()
                record["val_acc"] = val_acc
                history.append(record)
            elif step % 50 == 0:
                history.append(record)
            bar.update()
            bar.set_postfix(
                {k: f"{v:.3f}" for k, v in metrics.items()} | ({"val": f"{val_acc:.3f}"} if val_acc is not None else {})
            )
            if stop.requested:  # Ctrl-C lands between whole steps, so the saved state resumes exactly
                save(complete=False)
                bar.close()
                raise Interrupted(f"interrupted at step {step}; progress is saved: run the same command to resume")
            if step % checkpoint_every == 0 and not budget.done(step, elapsed):
                save(complete=False)
    bar.close()
    save(complete=True)
    return TrainOutcome(step, elapsed, history, resumed_from)


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _stop_requests():
    """Turn the first Ctrl-C into a request honoured after the current step; a second one stops at once."""
    request = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


def _to(batch: Any, device) -> Any:
    if isinstance(batch, list):
        return [b.to(device) for b in batch]
    return batch.to(device)
