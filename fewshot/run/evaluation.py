"""Evaluation primitives the protocols compose: episodes 0..M-1, every class at once, every image.

They know nothing of any particular learner: they call ``predict`` (or ``embed``
and ``predict_embedded`` through the embedding cache) and measure.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fewshot.core.data import ClassImages, DamagedFile, Split, atomic_write, notice
from fewshot.core.episode import Episode, grouped_labels
from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner
from fewshot.core.paths import cache_dir
from fewshot.core.sampler import EpisodePlan, EpisodeSource, ImagePool, render
from fewshot.core.stats import mean_interval
from fewshot.run.checkpoint import read


@dataclass
class EvalResult:
    accuracies: np.ndarray
    seconds: float
    digest: str
    cached: bool
    table_source: str = "none"  # where the embedding table came from: "disk", "computed" or "none"
    by_presentation: np.ndarray | None = None  # per-instance protocol: [episodes, instances] accuracies
    # All-classes evaluation: ``accuracies`` are per class; the score and its interval (S, U, H when generalized).
    scores: dict[str, float] | None = None

    @property
    def mean(self) -> float:
        return self.scores["mean"] if self.scores else float(self.accuracies.mean())

    @property
    def ci95(self) -> float:
        return self.scores["ci95"] if self.scores else mean_interval(self.accuracies)

    @property
    def episodes_per_s(self) -> float:
        return len(self.accuracies) / self.seconds if self.seconds > 0 else math.inf


def episodes_digest(plans: list[EpisodePlan]) -> str:
    """A fingerprint of exactly which classes and images every episode used."""
    h = hashlib.sha256()
    for plan in plans:
        for array in (plan.class_ids, plan.support_items, plan.query_items):
            h.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def _accuracy(logits: torch.Tensor, episode: Episode) -> float:
    expected = (episode.query_y.numel(), episode.ways)
    if tuple(logits.shape) != expected:
        raise RuntimeError(f"predict returned logits of shape {tuple(logits.shape)}, expected {expected}")
    return float((logits.argmax(1) == episode.query_y).float().mean())


def evaluate(
    learner: Learner,
    source: EpisodeSource,
    episodes: int,
    device: torch.device | str = "cpu",
    use_cache: bool | None = None,
    embed_batch: int = 128,
    persist: bool = False,
    progress: bool = False,
) -> EvalResult:
    """Accuracy of ``learner`` on episodes ``0..episodes-1`` of ``source``.

    With the embedding cache (the default for learners that override ``embed``)
    each test image is embedded once, in batches, and episodes gather their
    embeddings by index; the numbers are those of the plain path. With
    ``persist`` the table covers every image of the split and is kept on disk,
    keyed by the learner's weights and hyperparameters and the decoded data,
    so later evaluations of the same checkpoint on any cell of that split
    embed nothing.
    """
    use_cache = learner.caches_embeddings() if use_cache is None else use_cache
    was_training = learner.training
    learner.eval()
    start = time.perf_counter()
    plans = [source.plan(i) for i in range(episodes)]
    accuracies = np.empty(episodes)
    table_source = "none"
    bar = tqdm(total=episodes, desc="evaluate", unit="ep", disable=None if progress else True, leave=False)
    try:
        if use_cache:
            needed = np.unique(np.concatenate([np.concatenate([p.support_items, p.query_items]) for p in plans]))
            items, table, table_source = embedding_table(learner, source, needed, device, embed_batch, persist)
            for i, plan in enumerate(plans):
                episode = _embedded_episode(plan, source, items, table, device)
                accuracies[i] = _accuracy(learner.predict_embedded(episode), episode)
                bar.update()
        else:
            for i, plan in enumerate(plans):
                episode = source.materialize(plan).to(device)
                accuracies[i] = _accuracy(learner.predict(episode), episode)
                bar.update()
    finally:
        bar.close()
        learner.train(was_training)
    return EvalResult(accuracies, time.perf_counter() - start, episodes_digest(plans), use_cache, table_source)


def _embedded_episode(
    plan: EpisodePlan, source: EpisodeSource, items: np.ndarray, table: torch.Tensor, device
) -> Episode:
    """The episode of ``plan`` with its inputs gathered from an embedding table (rows of sorted ``items``)."""
    ways = len(plan.class_ids)
    gather = lambda ids: table[torch.from_numpy(np.searchsorted(items, ids)).to(device)]  # noqa: E731
    side = getattr(source, "side", None)  # zero-shot samplers carry every class's description
    return Episode(
        support_x=gather(plan.support_items),
        support_y=grouped_labels(ways, len(plan.support_items) // ways).to(device),
        query_x=gather(plan.query_items),
        query_y=grouped_labels(ways, len(plan.query_items) // ways).to(device),
        class_ids=torch.from_numpy(plan.class_ids),
        seed=plan.seed,
        side=None if side is None else side[torch.from_numpy(plan.class_ids)].to(device),
        support_items=torch.from_numpy(plan.support_items),
        query_items=torch.from_numpy(plan.query_items),
    )


def evaluate_all_classes(
    learner: Learner,
    data: ClassImages,
    split: Split,
    side: torch.Tensor,
    device: torch.device | str = "cpu",
    batch: int = 1024,
    embedded: torch.Tensor | None = None,
) -> EvalResult:
    """Every image of ``split`` scored against all of its classes at once, known by ``side`` alone.

    The zero-shot protocols of Xian et al. 2018: ``accuracies`` are per class
    (their mean, per-class mean top-1, is the score of ``all-classes``; the
    ``gzsl`` protocol scores seen and unseen classes apart).
    The images go to ``predict`` as the queries of episodes with no support,
    ``batch`` at a time, each with every class and its description; with
    ``embedded`` (the split's images already embedded, in ``ImagePool.items``
    order) they go to ``predict_embedded`` instead.
    """
    was_training = learner.training
    learner.eval()
    start = time.perf_counter()
    pool = ImagePool(data, split)
    items, rows = pool.items()
    class_ids = torch.from_numpy(pool.classes)
    descriptions = side[class_ids].to(device)
    predicted = torch.empty(len(items), dtype=torch.int64)
    try:
        with torch.no_grad():
            for first in range(0, len(items), batch):
                chosen = slice(first, first + batch)
                x = (render(data, items[chosen]) if embedded is None else embedded[chosen]).to(device)
                labels = torch.from_numpy(rows[chosen].copy()).to(device)
                episode = Episode(
                    x[:0],
                    labels[:0],
                    x,
                    labels,
                    class_ids,
                    side=descriptions,
                    query_items=torch.from_numpy(items[chosen]),
                )
                logits = learner.predict(episode) if embedded is None else learner.predict_embedded(episode)
                if tuple(logits.shape) != (len(labels), len(class_ids)):
                    raise RuntimeError(
                        f"predict returned logits of shape {tuple(logits.shape)}, "
                        f"expected {(len(labels), len(class_ids))}"
                    )
                predicted[first : first + batch] = logits.argmax(1).cpu()
    finally:
        learner.train(was_training)
    labels = torch.from_numpy(rows.copy())
    # float32 sums of 0/1 are exact; the division rounds to float32, as every recorded run's did
    correct = (predicted == labels).float()
    per_class = torch.zeros(len(class_ids)).index_add_(0, labels, correct)
    counts = torch.bincount(labels, minlength=len(class_ids))
    if bool((counts == 0).any()):
        raise FewshotError(f"class row {int(torch.nonzero(counts == 0)[0])} of the split has no test images")
    plan = EpisodePlan(pool.classes, np.empty(0, dtype=np.int64), items, 0)
    return EvalResult(
        (per_class / counts).double().numpy(), time.perf_counter() - start, episodes_digest([plan]), False
    )


@torch.no_grad()
def predicted_classes(
    classify: Callable[[torch.Tensor], torch.Tensor],
    data: ClassImages,
    items: np.ndarray,
    batch: int,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The class ``classify`` (images to logits) gives each image of ``items``, in batches of ``batch``."""
    return np.concatenate(
        [
            classify(render(data, items[first : first + batch]).to(device)).argmax(1).cpu().numpy()
            for first in range(0, len(items), batch)
        ]
    )


PERSIST_LIMIT_BYTES = 256 << 20  # feature maps of partly frozen networks are recomputed rather than stored


def embedding_table(
    learner: Learner, source: EpisodeSource, needed: np.ndarray, device, batch: int, persist: bool
) -> tuple[np.ndarray, torch.Tensor, str]:
    """(sorted item ids, their embeddings, "disk" or "computed")."""
    path = None
    if persist and source.data.key:
        items = source.items()
        path = cache_dir() / "embeddings" / f"{_embedding_key(learner, source.data.key, items)}.pt"
        if path.exists():
            stored = _stored_table(path, items)
            if stored is not None:
                return items, stored.to(device), "disk"
    else:
        items = needed
    table = embed_items(learner, source.data, items, device, batch)
    if path is not None and table.numel() * table.element_size() <= PERSIST_LIMIT_BYTES:
        buffer = io.BytesIO()
        torch.save({"items": torch.from_numpy(items), "table": table.cpu()}, buffer)
        try:
            atomic_write(path, lambda f: f.write(buffer.getvalue()))
        except OSError:
            pass  # an unwritable cache only costs time
    return items, table, "computed"


def _stored_table(path: Path, items: np.ndarray) -> torch.Tensor | None:
    """The embedding table stored at ``path`` for ``items``, or None (after a line on stderr) when it is
    damaged: it is recomputed and replaced. Its CRC-32s are checked (``checkpoint.read``), and its shape."""
    try:
        stored = read(path)
        if not isinstance(stored, dict) or not isinstance(stored.get("table"), torch.Tensor):
            raise DamagedFile("it holds no embedding table")
        table, stored_items = stored["table"], stored.get("items")
        if not isinstance(stored_items, torch.Tensor) or not np.array_equal(stored_items.numpy(), items):
            raise DamagedFile("its images are not the split's")
        if table.dim() < 2 or table.shape[0] != len(items):
            raise DamagedFile(f"its table of shape {tuple(table.shape)} is not one row per image")
    except DamagedFile as err:
        notice(f"the embedding cache entry {path} is damaged ({err}): embedding the images again")
        return None
    return table


def embed_items(learner: Learner, data: ClassImages, items: np.ndarray, device, batch: int) -> torch.Tensor:
    """``learner.embed`` of the images of ``items``, ``batch`` at a time, without gradients."""
    with torch.no_grad():
        return torch.cat(
            [learner.embed(render(data, items[i : i + batch]).to(device)) for i in range(0, len(items), batch)]
        )


def _embedding_key(learner: Learner, data_key: str, items: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{type(learner).__module__}.{type(learner).__qualname__}|{data_key}|".encode())
    h.update(json.dumps(learner.hp, sort_keys=True, default=str).encode())
    for name, tensor in learner.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(np.ascontiguousarray(items, dtype=np.int64).tobytes())
    return h.hexdigest()[:32]
