"""Santoro et al.'s per-instance protocol: an episode's images as one labelled sequence.

An episode of N classes x K instances (support only) is shown in a random
order fixed by the episode. At each step the learner predicts the image's
label before seeing it; the label arrives with the next step. The score is
accuracy by presentation: over the steps that show a class for the k-th time,
k = 1..K (the first presentation can only be a guess). A learner takes part
by implementing ``predict_sequences``; the engine knows nothing else of it.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from fewshot.core.errors import FewshotError
from fewshot.run.harness import EvalResult, episodes_digest
from fewshot.core.learner import Learner
from fewshot.core.sampler import EpisodePlan, EpisodeSource

SANTORO_PRESENTATIONS = (1, 2, 3, 4, 5, 10)


def sequence_order(plan: EpisodePlan) -> np.ndarray:
    """The order of the episode's support images in its sequence: a pure function of the episode."""
    return np.random.Generator(np.random.Philox(key=plan.seed)).permutation(len(plan.support_items))


def presentations(labels: torch.Tensor) -> torch.Tensor:
    """For each step of ``labels`` [B, T], how many times its class has been shown up to and including it."""
    one_hot = torch.nn.functional.one_hot(labels)
    return (one_hot.cumsum(dim=1) * one_hot).sum(dim=2)


def accuracy_by_presentation(correct: torch.Tensor, labels: torch.Tensor, instances: int) -> torch.Tensor:
    """[B, instances]: per sequence, the share of correct steps among those showing a class for the k-th time."""
    shown = presentations(labels) - 1
    if int(shown.max()) >= instances:
        raise ValueError(f"a class is shown more than {instances} times")
    hits = torch.zeros(labels.shape[0], instances, dtype=torch.float64)
    counts = torch.zeros_like(hits)
    hits.scatter_add_(1, shown, correct.double())
    counts.scatter_add_(1, shown, torch.ones_like(hits[:, :1]).expand_as(shown).contiguous())
    return hits / counts


def check_learner(name: str, learner_cls: type[Learner]) -> None:
    if not learner_cls.predicts_sequences():
        raise FewshotError(f"{name} does not predict labelled sequences, so it cannot run --per-instance; "
                           f"use a learner that implements predict_sequences (such as mann)")


def evaluate_sequences(learner: Learner, source: EpisodeSource, episodes: int, instances: int,
                       device: torch.device | str = "cpu", batch: int = 50, progress: bool = False) -> EvalResult:
    """Per-instance accuracy of ``learner`` on episodes ``0..episodes-1`` of ``source`` (support sets only)."""
    was_training = learner.training
    learner.eval()
    start = time.perf_counter()
    plans = [source.plan(i) for i in range(episodes)]
    by_presentation = np.empty((episodes, instances))
    overall = np.empty(episodes)
    bar = tqdm(total=episodes, desc="evaluate", unit="ep", disable=None if progress else True, leave=False)
    try:
        for first in range(0, episodes, batch):
            chunk = plans[first:first + batch]
            orders = [torch.from_numpy(sequence_order(plan)) for plan in chunk]
            episodes_ = [source.materialize(plan) for plan in chunk]
            x = torch.stack([e.support_x[o] for e, o in zip(episodes_, orders)]).to(device)
            y = torch.stack([e.support_y[o] for e, o in zip(episodes_, orders)]).to(device)
            with torch.no_grad():
                logits = learner.predict_sequences(x, y)
            ways = episodes_[0].ways
            if tuple(logits.shape) != (*y.shape, ways):
                raise RuntimeError(f"predict_sequences returned shape {tuple(logits.shape)}, expected {(*y.shape, ways)}")
            correct = (logits.argmax(2) == y).cpu()
            by_presentation[first:first + len(chunk)] = accuracy_by_presentation(correct, y.cpu(), instances).numpy()
            overall[first:first + len(chunk)] = correct.double().mean(1).numpy()
            bar.update(len(chunk))
    finally:
        bar.close()
        learner.train(was_training)
    return EvalResult(overall, time.perf_counter() - start, episodes_digest(plans), False,
                      by_presentation=by_presentation)
