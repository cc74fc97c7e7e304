"""The Python API: a benchmark cell's episodes, scoring a learner or any feature extractor, and
registering a learner without packaging it.

Everything here is a thin layer over the functions the command line uses
(``fewshot.run.experiment`` and ``fewshot.run.harness``), so episode ``i`` of a
benchmark is the episode ``fewshot eval`` scores as episode ``i``, and a result
recorded here sits beside the command line's in the results store.

A cell's episodes (the offline ``glyphs`` dataset needs no download):

>>> import torch
>>> import fewshot
>>> bench = fewshot.benchmark("glyphs", ways=5, shots=5, queries=15, episodes=100)
>>> bench
EpisodeSet(glyphs/scripts, test split: 5-way 5-shot, 15 queries, 100 episodes, seed 0)
>>> len(bench)
100
>>> episode = bench[0]
>>> episode.support_x.shape, episode.query_x.shape
(torch.Size([25, 1, 28, 28]), torch.Size([75, 1, 28, 28]))
>>> episode.support_y.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5 + [4] * 5
True
>>> episode.support_x.dtype, float(episode.support_x.min()) >= 0.0, float(episode.support_x.max()) <= 1.0
(torch.float32, True, True)

The same episodes through a ``DataLoader``, with any number of worker processes:

>>> loader = bench.loader(num_workers=2, batch_size=4)
>>> batch = next(iter(loader))
>>> len(batch), batch[0].ways, batch[0].shots
(4, 5, 5)
>>> torch.equal(batch[3].query_x, bench[3].query_x)
True

Any network that maps images ``[B, C, H, W]`` to features ``[B, D]`` is scored
as a nearest-centroid classifier (chance is 20% here):

>>> from fewshot.core.backbones import Conv4
>>> result = fewshot.evaluate(Conv4(), bench)
>>> result.episodes, result.accuracies.shape, result.mean > 0.4
(100, (100,), True)

With ``record=`` the run goes to a results file, where ``fewshot leaderboard
--results FILE`` and ``fewshot compare`` find it:

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "results.sqlite"
>>> result = fewshot.evaluate(Conv4(), bench, episodes=20, record=path, name="conv4-untrained")
>>> from fewshot.records.store import ResultsStore
>>> run = ResultsStore(path).run(result.run_id)
>>> run["learner"], run["dataset"], run["ways"], run["shots"], run["episodes"], len(run["accuracies"])
('conv4-untrained', 'glyphs', 5, 5, 20, 20)

A learner defined in a notebook, registered for this process: the command
line's functions (``fewshot.run.experiment.make_setup``, training, checkpoints)
then find it by name, as they find an installed one:

>>> @fewshot.register_learner
... class PixelMean(fewshot.Learner):
...     '''Nearest class mean on raw pixels: nothing to train.'''
...
...     def embed(self, x):
...         return x.flatten(1)
...
...     def predict_embedded(self, episode):
...         means = episode.support_x.view(episode.ways, episode.shots, -1).mean(1)
...         return -torch.cdist(episode.query_x, means)
>>> from fewshot.core import registry
>>> registry.learner("pixelmean") is PixelMean
True
>>> fewshot.evaluate(PixelMean(bench.task, PixelMean.hparams), bench).mean > 0.4
True
>>> fewshot.unregister_learner("pixelmean")
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fewshot.core import registry
from fewshot.core.data import Benchmark
from fewshot.core.episode import Episode
from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner, TaskSpec
from fewshot.core.protocol import DEFAULT_EPISODES, Cell, check_memory
from fewshot.core.sampler import EpisodeSampler, EpisodeSource
from fewshot.records.store import ResultsStore, check_writable
from fewshot.run import evaluation, experiment

SPLITS = ("train", "val", "test")


class EpisodeSet:
    """The episodes of one benchmark cell, in the order ``fewshot eval`` scores them.

    Built by :func:`benchmark`. ``bench[i]`` is episode ``i`` (an :class:`~fewshot.core.episode.Episode`
    of float images in [0, 1]), a pure function of the cell, its seed and ``i``;
    ``len(bench)`` is the cell's number of episodes. Indices run from 0 to
    ``len(bench) - 1``; any other, negative ones included, is an ``IndexError``.

    >>> bench = benchmark("glyphs", ways=5, shots=1, episodes=10)
    >>> [episode.ways for episode in bench][:3], bench.shots, bench.queries
    ([5, 5, 5], 1, 15)
    >>> bench[10]
    Traceback (most recent call last):
    ...
    IndexError: episode 10 of a set of 10 (indices 0 to 9)
    """

    def __init__(self, bench: Benchmark, cell: Cell, source: EpisodeSource):
        self.benchmark = bench  # the dataset under its protocol: decoded images and class splits
        self.cell = cell
        self.source = source

    @property
    def dataset(self) -> str:
        return self.cell.dataset

    @property
    def protocol(self) -> str:
        return self.cell.protocol

    @property
    def split(self) -> str:
        return self.cell.split

    @property
    def ways(self) -> int:
        return self.cell.ways

    @property
    def shots(self) -> int:
        return self.cell.shots

    @property
    def queries(self) -> int:
        return self.cell.queries

    @property
    def seed(self) -> int:
        return self.cell.seed

    @property
    def task(self) -> TaskSpec:
        """What a learner is built with for this cell: ``MyLearner(bench.task, MyLearner.hparams)``."""
        train = self.benchmark.split("train")
        return TaskSpec(
            self.dataset,
            self.protocol,
            tuple(self.benchmark.data.image_shape),
            self.ways,
            self.shots,
            self.queries,
            len(train) if train is not None else 0,
            network=self.benchmark.network,
        )

    def __len__(self) -> int:
        return self.cell.episodes

    def __getitem__(self, index: int) -> Episode:
        i = operator.index(index)
        if not 0 <= i < len(self):
            raise IndexError(f"episode {i} of a set of {len(self)} (indices 0 to {len(self) - 1})")
        return self.source[i]

    def __iter__(self) -> Iterator[Episode]:
        return (self.source[i] for i in range(len(self)))

    def __repr__(self) -> str:
        shift = f", {self.cell.source} -> {self.cell.target}" if self.cell.source else ""
        return (
            f"EpisodeSet({self.dataset}/{self.protocol}{shift}, {self.split} split: {self.ways}-way "
            f"{self.shots}-shot, {self.queries} queries, {len(self)} episodes, seed {self.seed})"
        )

    def loader(
        self, num_workers: int = 0, batch_size: int | None = None, shuffle: bool = False, **kwargs: Any
    ) -> DataLoader:
        """A ``torch.utils.data.DataLoader`` of the episodes: one :class:`Episode` per item, or a list of
        ``batch_size`` episodes.

        Episodes depend on their index alone, so any ``num_workers`` gives the
        same episodes in the same order. Each worker runs torch on one thread.
        ``shuffle=True`` draws the order from a generator seeded with the
        cell's seed (pass ``generator=`` to choose another). Other keyword
        arguments go to the ``DataLoader`` (``pin_memory``, ``prefetch_factor``,
        ``multiprocessing_context``, ...).

        Workers pay off when building an episode costs more than sending it
        between processes: a 28x28 episode is built in about 0.3 ms, and on a
        2-core machine ``num_workers=0`` gave 3,800 glyphs episodes/s where
        two workers gave 120 to 170.

        >>> bench = benchmark("glyphs", ways=5, shots=1, episodes=6)
        >>> [len(batch) for batch in bench.loader(batch_size=4)]
        [4, 2]
        """
        if shuffle and kwargs.get("generator") is None and kwargs.get("sampler") is None:
            kwargs["generator"] = torch.Generator().manual_seed(self.seed)
        kwargs["worker_init_fn"] = functools.partial(_init_worker, kwargs.get("worker_init_fn"))
        # Unbatched (batch_size None), the loader hands the collate function one episode, not a list.
        collate: Callable[[Any], Any] = _one if batch_size is None else list
        return DataLoader(
            _Indexed(self.source, len(self)),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            collate_fn=collate,
            **kwargs,
        )


class _Indexed(torch.utils.data.Dataset):
    """What a loader's workers receive: the episode source alone (a benchmark's description
    functions need not pickle)."""

    def __init__(self, source: EpisodeSource, episodes: int):
        self.source, self.episodes = source, episodes

    def __len__(self) -> int:
        return self.episodes

    def __getitem__(self, index: int) -> Episode:
        return self.source[index]


def _one(episode: Episode) -> Episode:
    return episode


def _init_worker(then: Callable[[int], None] | None, worker_id: int) -> None:
    torch.set_num_threads(1)  # workers x threads must not exceed the cores
    if then is not None:
        then(worker_id)


def benchmark(
    dataset: str,
    protocol: str | None = None,
    *,
    ways: int,
    shots: int,
    queries: int | None = None,
    episodes: int = DEFAULT_EPISODES,
    split: str = "test",
    seed: int = 0,
    data_root: str | Path | None = None,
    source: str | None = None,
    target: str | None = None,
    select: str | None = None,
) -> EpisodeSet:
    """The episodes of a benchmark cell, as ``fewshot eval`` draws them.

    ``dataset`` and ``protocol`` as in ``fewshot datasets`` (``protocol=None``
    is the dataset's default); ``queries=None`` is the protocol's default
    (15 in most); ``source`` and ``target`` name the domains of a cross-domain
    cell (``glyphs``: ``sans``, ``serif``, ``mono``). Data is read from
    ``data_root``, else ``$FEWSHOT_DATA``.

    ``split="test"`` gives the test episodes a leaderboard cell is scored on;
    ``"val"`` the validation episodes training reports on and ``"train"``
    training episodes, for a training loop of one's own. Each split and role
    has its own stream of random numbers, so the three never share an episode.
    ``select="val-classes"`` gives the episodes of ``fewshot eval --select
    val-classes`` instead (``split="train"``: the training episodes that regime
    trains on): choices are made on these, and no test class is in any of them.

    Few-shot cells only: zero-shot (``--shots 0``) and image-classification
    (domain adaptation) protocols are evaluated with ``fewshot eval``.

    >>> benchmark("glyphs", ways=5, shots=1, split="val", seed=3)
    EpisodeSet(glyphs/scripts, val split: 5-way 1-shot, 15 queries, 600 episodes, seed 3)
    >>> benchmark("glyphs", ways=0, shots=1)
    Traceback (most recent call last):
    ...
    fewshot.core.errors.FewshotError: --ways must be at least 1, got 0
    >>> benchmark("glyphs", ways=5.5, shots=1)
    Traceback (most recent call last):
    ...
    fewshot.core.errors.FewshotError: ways=5.5: expected a whole number
    """
    ways, shots, queries, episodes, seed = (
        _whole(label, value)
        for label, value in (
            ("ways", ways),
            ("shots", shots),
            ("queries", queries),
            ("episodes", episodes),
            ("seed", seed),
        )
    )
    if split not in SPLITS:
        raise FewshotError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    if select and split == "val":
        raise FewshotError(
            f"split='val' with select={select!r}: a selection scores its regime's validation split, which is "
            f"split='test' under select; leave split out"
        )
    bench = experiment.open_benchmark(dataset, protocol, data_root, source=source, target=target, select=select)
    name = f"{bench.dataset}/{bench.protocol}"
    if bench.evaluation:
        scored = registry.protocol(bench.evaluation)
        raise FewshotError(
            f"{name} is scored by the {scored.kind} protocol (each {scored.unit}), not by episodes: "
            f"evaluate it with `fewshot eval`"
        )
    if bench.zero_shot:
        raise FewshotError(
            f"{name} is a zero-shot protocol, whose classes are known by their descriptions: "
            f"evaluate it with `fewshot eval`"
        )
    if shots is not None and shots < 1:
        raise FewshotError(f"shots must be at least 1, got {shots} (zero-shot cells are evaluated with `fewshot eval`)")
    scored = "val" if bench.selection and split == "test" else split  # a selection view scores its validation split
    cell = dataclasses.replace(experiment.resolve_cell(bench, ways, shots, queries, episodes, seed), split=scored)
    if split == "test" or split in bench.fixed:
        episodes_of = experiment.test_source(bench, cell)
    else:
        found = bench.split(split)
        if found is None:
            raise FewshotError(f"{name} has no {split} split")
        # The roles of the command line's own samplers: validation during training, training batches.
        episodes_of = EpisodeSampler(
            bench.data,
            found,
            cell.ways,
            cell.shots,
            cell.queries,
            cell.seed,
            role=split,
            name=f"the {name} {split} split",
        )
        check_memory(cell, tuple(bench.data.image_shape))
    return EpisodeSet(bench, cell, episodes_of)


def _whole(name: str, value: Any) -> Any:
    """``value`` as an int if it is a whole number (None stays None): a float, text or flag is refused in one line,
    as the command line refuses ``--ways 5.5``."""
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool)):
        return None if value is None else int(value)
    raise FewshotError(f"{name}={value!r}: expected a whole number")


class NearestCentroid(Learner):
    """Nearest class mean on the features of a fixed network: how :func:`evaluate` scores a plain module.

    Each support image and query is mapped to features by ``features`` (images
    ``[B, C, H, W]``, float32 in [0, 1], to ``[B, D]``; more dimensions are
    flattened); a class is the mean of its support features, and a query's
    logits are the negative squared Euclidean distances to the class means
    (Snell et al. 2017's prototypes, Mensink et al. 2013's nearest class mean).
    Nothing is trained, and every test image is embedded once.
    """

    family = "metric"
    paper = "nearest class mean (Mensink et al. 2013) on the given features"

    def __init__(self, task: TaskSpec, hp: Mapping[str, Any], features: nn.Module):
        super().__init__(task, hp)
        self.features = features

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.features(x)
        if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FewshotError(
                f"{type(self.features).__name__} must map images {tuple(x.shape)} to features "
                f"[{x.shape[0]}, D]; it returned {shape}"
            )
        return out.flatten(1)

    @torch.no_grad()
    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        means = episode.support_x.reshape(episode.ways, -1, episode.support_x.shape[-1]).mean(1)
        return -torch.cdist(episode.query_x, means).pow(2)


@dataclass(frozen=True, eq=False)
class Result:
    """A scored cell: mean accuracy and the half-width of its 95% interval (fractions, 1.96 standard
    errors over episodes), each episode's accuracy, and the run's id in the results file if recorded.
    ``digest`` fingerprints exactly which classes and images the episodes used."""

    mean: float
    ci95: float
    accuracies: np.ndarray
    episodes: int
    seconds: float
    digest: str
    run_id: int | None = None

    def __str__(self) -> str:
        return f"accuracy {100 * self.mean:.2f}% ± {100 * self.ci95:.2f} (95% interval over {self.episodes} episodes)"

    def __repr__(self) -> str:
        return (
            f"Result(mean={self.mean:.4f}, ci95={self.ci95:.4f}, episodes={self.episodes}, "
            f"seconds={self.seconds:.2f}, digest={self.digest!r}, run_id={self.run_id})"
        )


def evaluate(
    model: Learner | nn.Module,
    bench: EpisodeSet,
    episodes: int | None = None,
    *,
    record: str | Path | None = None,
    name: str | None = None,
    device: str | torch.device = "cpu",
    hparams: Mapping[str, Any] | None = None,
) -> Result:
    """Score ``model`` on the first ``episodes`` episodes of ``bench`` (all of them by default).

    ``model`` is a :class:`~fewshot.core.learner.Learner` (scored exactly as
    ``fewshot eval`` scores it, through its embedding cache if it has one), or
    any ``torch.nn.Module`` that maps images ``[B, C, H, W]`` (float32 in
    [0, 1]) to features ``[B, D]``: that is scored as a nearest-centroid
    classifier (:class:`NearestCentroid`). The model is moved to ``device``
    (as ``Module.to`` does, in place; ``"auto"`` picks CUDA when there is one) and
    left in the train or eval mode it had.

    With ``record=PATH`` the run is appended to that results file as learner
    ``name`` (default: the model's class name) with ``hparams`` (default: a
    learner's own), and ``Result.run_id`` is its id.

    >>> bench = benchmark("glyphs", ways=5, shots=1, episodes=20)
    >>> pixels = nn.Flatten()  # nearest centroid on raw pixels
    >>> result = evaluate(pixels, bench)
    >>> result.episodes, round(result.mean, 4) == round(float(result.accuracies.mean()), 4)
    (20, True)
    """
    if not isinstance(bench, EpisodeSet):
        raise TypeError(f"evaluate scores the episodes of fewshot.benchmark(...), not a {type(bench).__name__}")
    count = len(bench) if episodes is None else _whole("episodes", episodes)
    if not 1 <= count <= len(bench):
        raise FewshotError(f"episodes={count}: the set has {len(bench)}; choose 1 to {len(bench)}")
    if record is not None:
        check_writable(Path(record))  # before any work
    device_ = experiment.resolve_device(device) if isinstance(device, str) else torch.device(device)
    if isinstance(model, Learner):
        learner, wrapped = model, False
        if learner.prepares() or learner.reads_sides:
            raise FewshotError(
                f"{type(learner).__name__} reads class descriptions or fits heads on the training "
                f"split: evaluate it with `fewshot eval`"
            )
    elif isinstance(model, nn.Module):
        learner, wrapped = NearestCentroid(bench.task, {}, model), True
    else:
        raise TypeError(f"evaluate takes a fewshot Learner or a torch.nn.Module, not a {type(model).__name__}")
    modes = {module: module.training for module in model.modules()}
    try:
        learner.to(device_)
        learner.before_evaluation()
        scored = evaluation.evaluate(learner, bench.source, count, device_)
    finally:
        for module, training in modes.items():
            module.training = training
    run_id = None
    if record is not None:
        run_id = ResultsStore(Path(record)).record(
            _run(
                learner,
                bench,
                count,
                scored,
                device_,
                name or type(model).__name__,
                dict(hparams) if hparams is not None else ({} if wrapped else dict(learner.hp)),
                wrapped,
            ),
            scored.accuracies,
        )
    accuracies = scored.accuracies.copy()
    accuracies.setflags(write=False)
    return Result(scored.mean, scored.ci95, accuracies, count, scored.seconds, scored.digest, run_id)


def _run(
    learner: Learner,
    bench: EpisodeSet,
    count: int,
    scored: evaluation.EvalResult,
    device: torch.device,
    name: str,
    hparams: dict[str, Any],
    wrapped: bool,
) -> dict[str, Any]:
    """The store's row for this evaluation: the command line's, with no training."""
    cell = dataclasses.replace(bench.cell, episodes=count)
    setup = experiment.Setup(name, type(learner), hparams, bench.benchmark, cell)
    untrained = experiment.Trained(learner, None, None, 0, 0.0)
    run = experiment.run_record(setup, untrained, scored, device)
    extra = {
        **json.loads(run.get("extra") or "{}"),
        "recorded_by": "fewshot.evaluate",
        **({"scored_as": "nearest centroid of the model's features"} if wrapped else {}),
    }
    return {**run, "train_steps": None, "train_seconds": None, "extra": json.dumps(extra)}


L = TypeVar("L", bound=type[Learner])

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@overload
def register_learner(cls: L, name: str | None = None) -> L: ...


@overload
def register_learner(cls: None = None, name: str | None = None) -> Callable[[L], L]: ...


def register_learner(cls: L | None = None, name: str | None = None) -> L | Callable[[L], L]:
    """Register a :class:`~fewshot.core.learner.Learner` subclass under ``name`` (default: its class name
    in lower case) for this process, so the command line's functions find it by name like an installed
    learner (``experiment.make_setup(name, ...)``, training, cached checkpoints).

    For a notebook: the registration lasts until the process ends (or
    :func:`unregister_learner`), and other processes (``fewshot`` on the command
    line) do not see it; a learner for everyone registers through the
    ``fewshot.learners`` entry point. A name already taken is an error.
    Returns the class, so it also works as a decorator, with or without a name:

    >>> @register_learner(name="my-pixels")
    ... class Pixels(Learner):
    ...     def predict(self, episode):
    ...         means = episode.support_x.flatten(1).view(episode.ways, episode.shots, -1).mean(1)
    ...         return -torch.cdist(episode.query_x.flatten(1), means)
    >>> registry.learner("my-pixels").__name__
    'Pixels'
    >>> register_learner(Pixels, "my-pixels")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fewshot.core.errors.FewshotError: a learner is already registered as 'my-pixels': choose another name (taken: ...)
    >>> unregister_learner("my-pixels")
    """
    if cls is None:
        return functools.partial(register_learner, name=name)
    if not (isinstance(cls, type) and issubclass(cls, Learner)):
        raise TypeError(f"register_learner takes a subclass of fewshot.Learner, not {cls!r}")
    name = cls.__name__.lower() if name is None else name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FewshotError(
            f"learner name {name!r}: use letters, numbers, '-' and '_', starting with a letter or number"
        )
    registry.register("learner", name, cls)
    return cls


def unregister_learner(name: str) -> None:
    """Undo :func:`register_learner` (learners installed through entry points stay)."""
    registry.unregister("learner", name)
