"""The learner interface every method implements, built-in or plug-in.

A learner is a ``torch.nn.Module`` with its hyperparameters declared beside it
(``hparams``: name -> default; ``hparam_ranges``: name -> the interval a value
must lie in, such as ``"(0, 10]"``), that owns its optimiser and exposes:

* ``train_batches()``: what one training batch holds: episodes
  (:class:`EpisodeBatches`), labelled images (:class:`ImageBatches`), or
  ``None`` for a learner with nothing to train;
* ``train_step(batch) -> dict[str, float]``: one optimisation step;
* ``predict(episode) -> logits [N*Q, N]``: adapt to the support set and score
  the queries. Whatever is built from the support set stays a local value;
* optionally ``predict_sequences(x, y)`` for Santoro et al.'s per-instance
  protocol (see ``fewshot.protocols.per_instance``);
* optionally ``prepare(train, side)``: fit what is computed once from the whole
  training split with the trained embedding fixed (a closed-form or convex
  head of a zero-shot learner). The harness calls it before evaluating, with
  every training image embedded by ``embed`` and labelled by its class row, and
  those rows' descriptions. Hyperparameters listed in
  ``hparam_grid`` and not fixed with ``--hp`` are chosen on the validation
  classes by refitting with ``prepare``, as Xian et al. 2018 do.

A learner whose computation starts with an embedding that does not depend on
the episode overrides ``embed(x)`` and implements ``predict_embedded(episode)``
on episodes whose inputs have already been embedded; the harness can then embed
every test image once (same numbers, fewer forward passes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from fewshot.core.episode import Episode, LabelledImages
from fewshot.core.errors import FewshotError


@dataclass(frozen=True)
class TaskSpec:
    """What a learner is told when it is built: the benchmark cell and the shape of its data."""

    dataset: str
    protocol: str
    image_shape: tuple[int, ...]  # [C, H, W] for images, [D] for precomputed features
    ways: int
    shots: int
    queries: int
    train_classes: int  # class rows of the training split (a pretrained classifier's width)
    side: str = ""  # the class descriptions episodes carry ("attributes", "text"), "" for none
    side_dim: int = 0
    network: str = "conv4"  # the benchmark's backbone for learners that take it from there ("lenet" for digits)
    # Per-channel mean of the benchmark's training images in [0, 1], where its papers subtract it from the input
    # (Ganin et al.'s digit shifts); () elsewhere.
    pixel_mean: tuple[float, ...] = ()


def natural_images(task: TaskSpec) -> bool:
    """RGB images of a benchmark whose network is Conv-4 (miniImageNet and its kin, not the digit domains), where
    learners take their papers' miniImageNet settings rather than their Omniglot ones."""
    return len(task.image_shape) == 3 and task.image_shape[0] == 3 and task.network == "conv4"


@dataclass(frozen=True)
class EpisodeBatches:
    """Training batches of ``meta_batch`` episodes drawn from the training split."""

    ways: int
    shots: int
    queries: int
    meta_batch: int = 1


@dataclass(frozen=True)
class ImageBatches:
    """Training batches of labelled images from the training split (labels index its class rows); ``augment``:
    cropped, flipped and colour-jittered as Chen et al. 2019 train (``fewshot.core.augment``)."""

    batch_size: int
    augment: bool = False


class Learner(nn.Module):
    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    hparams: ClassVar[Mapping[str, Any]] = {}
    hparam_choices: ClassVar[Mapping[str, tuple]] = {}
    # The interval each numeric hyperparameter must lie in: name -> "(0, 10]", "[1, 4096]", "[0, 1)" ("inf" for
    # no bound). One left out gets a generic check (see ``hparam_range``); ``--hp`` values outside are refused.
    hparam_ranges: ClassVar[Mapping[str, str]] = {}
    # Values runs recorded for a hyperparameter whose default has since become a sentinel meaning the same
    # there (a 0 for "the paper's"): the leaderboard reads them as the default, so those runs keep their row.
    recorded_defaults: ClassVar[Mapping[str, Any]] = {}
    # Former names of renamed hyperparameters -> their names now: runs recorded the former; --hp says the new one.
    renamed_hparams: ClassVar[Mapping[str, str]] = {}
    # Defaults chosen on validation data: name -> how ("training-domain: runs 260-270"); a run records those its
    # command left to the default (``fewshot.core.selection``). A default taken from the paper needs no entry.
    chosen_on: ClassVar[Mapping[str, str]] = {}
    # Hyperparameters read only by predict: they may differ from a checkpoint's.
    eval_hparams: ClassVar[frozenset[str]] = frozenset()
    # Which fields of the benchmark cell training depends on (others reuse one checkpoint).
    trains_on: ClassVar[tuple[str, ...]] = ("ways", "shots")
    # Training budget per dataset ("*" for any other): "2000steps" or "10min".
    default_budget: ClassVar[Mapping[str, str]] = {"*": "1000steps"}
    needs_support: ClassVar[bool] = True
    # Zero-shot learners: whether support images, when an episode has them, are used or ignored.
    uses_support: ClassVar[bool] = True
    # Which descriptions the learner can read (zero-shot learners); empty for none.
    reads_sides: ClassVar[tuple[str, ...]] = ()
    # Hyperparameters chosen on the validation classes when not fixed with --hp: name -> candidate values.
    hparam_grid: ClassVar[Mapping[str, tuple]] = {}
    # How the learner meets the benchmark's episodes, where that differs from the usual; the leaderboard's protocol column shows it.
    protocol_note: str = ""  # a class default; an instance may name its own (Reptile's transductive mode, Adapted)
    # Whether predict classifies an episode's queries together (batch statistics of the query batch, say), so a
    # query's label may depend on the others: recorded with every run and shown beside its figure.
    transductive: bool = False

    def __init__(self, task: TaskSpec, hp: Mapping[str, Any]):
        super().__init__()
        self.task = task
        self.hp = dict(hp)

    # -- training -------------------------------------------------------------------------
    def train_batches(self) -> EpisodeBatches | ImageBatches | None:
        return None

    # ``batch`` is what ``train_batches`` promises: a list of Episodes for EpisodeBatches, LabelledImages for
    # ImageBatches; each learner annotates the one it asks for, hence Any here.
    def train_step(self, batch: Any) -> dict[str, float]:
        raise FewshotError(f"{type(self).__name__} declares training batches but has no train_step")

    # -- evaluation -----------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def predict(self, episode: Episode) -> torch.Tensor:
        return self.predict_embedded(episode.map_inputs(self.embed))

    def predict_embedded(self, episode: Episode) -> torch.Tensor:
        raise FewshotError(f"{type(self).__name__} must implement predict or predict_embedded")

    @classmethod
    def caches_embeddings(cls) -> bool:
        return cls.embed is not Learner.embed

    def predict_sequences(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-instance protocol (``fewshot.protocols.per_instance``): logits [B, T, N] for labelled sequences
        ``x`` [B, T, ...], ``y`` [B, T]; the prediction at step t may use only the labels of steps before t."""
        raise FewshotError(f"{type(self).__name__} does not predict labelled sequences")

    @classmethod
    def predicts_sequences(cls) -> bool:
        return cls.predict_sequences is not Learner.predict_sequences

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over the training split's classes (learners that train a classifier of them): the
        unsupervised domain adaptation protocol scores target images this way."""
        raise FewshotError(f"{type(self).__name__} has no classifier over its training classes")

    @classmethod
    def classifies(cls) -> bool:
        return cls.classify is not Learner.classify

    def network_name(self) -> str:
        """The network the learner scores with, as recorded beside its runs: its ``backbone`` module's class, or
        else that of its largest module."""
        network = getattr(self, "backbone", None)
        if not isinstance(network, nn.Module):
            children = list(self.children())
            if not children:
                return "none"
            network = max(children, key=lambda m: sum(p.numel() for p in m.parameters()))
        return type(network).__name__

    def before_evaluation(self) -> None:
        """Called once before the test evaluation, after training (AdaBN recomputes statistics here)."""

    def prepare(self, train: LabelledImages, side: torch.Tensor) -> None:
        """Fit what depends on the whole training split (embedded); see the module's docstring."""

    @classmethod
    def prepares(cls) -> bool:
        return cls.prepare is not Learner.prepare

    # -- checkpoints ----------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """Parameters, buffers and the state of every optimiser and scheduler the learner owns."""
        owned = {
            name: value.state_dict()
            for name, value in vars(self).items()
            if isinstance(value, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler))
        }
        return {"model": self.state_dict(), "optimizers": owned}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["model"])
        for name, value in state.get("optimizers", {}).items():
            getattr(self, name).load_state_dict(value)


def query_loss_step(
    optimizer: torch.optim.Optimizer,
    batch: list[Episode],
    query_logits: Callable[[Episode], torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    workers: int = 1,
    max_grad_norm: float | None = None,
) -> dict[str, float]:
    """One optimiser step on the queries' loss averaged over a batch of episodes
    (its gradient's norm clipped to ``max_grad_norm`` if given).

    Each episode is backpropagated as soon as it is scored, so only one
    episode's graph is alive at a time. With ``workers > 1`` that many episodes
    are scored at once on threads, each running its operations on one core:
    for small per-episode graphs (MAML's inner loops) this uses the cores better
    than splitting every small operation between them. The episodes' gradients
    are then summed in batch order, so the result does not depend on which
    thread finished first. Returns the mean loss and accuracy.
    """
    if workers > 1 and len(batch) > 1:
        return _threaded_query_loss_step(optimizer, batch, query_logits, loss_fn, workers, max_grad_norm)
    optimizer.zero_grad()
    loss_sum, correct = 0.0, 0.0
    for episode in batch:
        logits = query_logits(episode)
        loss = loss_fn(logits, episode.query_y) / len(batch)
        loss.backward()
        loss_sum += loss.item()
        correct += (logits.argmax(1) == episode.query_y).float().mean().item() / len(batch)
    clipped_step(optimizer, max_grad_norm)
    return {"loss": loss_sum, "acc": correct}


def classification_step(
    optimizer: torch.optim.Optimizer, logits_of: Callable[[torch.Tensor], torch.Tensor], batch: LabelledImages
) -> dict[str, float]:
    """One optimiser step on the cross-entropy of a batch of labelled images (pretraining a classifier)."""
    optimizer.zero_grad()
    logits = logits_of(batch.x)
    loss = F.cross_entropy(logits, batch.y)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "acc": (logits.argmax(1) == batch.y).float().mean().item()}


def clipped_step(optimizer: torch.optim.Optimizer, max_grad_norm: float | None) -> None:
    """``optimizer.step()`` after clipping the norm of its parameters' gradients to ``max_grad_norm`` (if given)."""
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], max_grad_norm)
    optimizer.step()


def _threaded_query_loss_step(optimizer, batch, query_logits, loss_fn, workers, max_grad_norm) -> dict[str, float]:
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]

    def episode_gradients(episode: Episode):
        logits = query_logits(episode)
        loss = loss_fn(logits, episode.query_y) / len(batch)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return loss.item(), (logits.argmax(1) == episode.query_y).float().mean().item() / len(batch), grads

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(episode_gradients, batch))
    finally:
        torch.set_num_threads(threads)
    optimizer.zero_grad()
    for i, p in enumerate(params):
        for _, _, grads in results:
            if grads[i] is not None:
                p.grad = grads[i] if p.grad is None else p.grad + grads[i]
    clipped_step(optimizer, max_grad_norm)
    return {"loss": sum(r[0] for r in results), "acc": sum(r[1] for r in results)}


def paper_defaults(hp: Mapping[str, Any], by_ways: Mapping[int, Mapping[str, Any]], ways: int) -> dict[str, Any]:
    """``hp`` with every hyperparameter left at 0 ("the paper's") set from ``by_ways``, the paper's
    settings per number of ways: the row of the largest way count not above ``ways`` (else the smallest)."""
    fitting = [w for w in by_ways if w <= ways]
    paper = by_ways[max(fitting) if fitting else min(by_ways)]
    return {**hp, **{name: value for name, value in paper.items() if name in hp and not hp[name]}}


class HasHparams(Protocol):
    """What declares hyperparameters: a learner or a domain adaptation method."""

    hparams: ClassVar[Mapping[str, Any]]
    hparam_choices: ClassVar[Mapping[str, tuple]]
    hparam_ranges: ClassVar[Mapping[str, str]]


@dataclass(frozen=True)
class Interval:
    """A range of numbers in interval notation: ``[1, 4096]``, ``(0, 10]``, ``[0, 1)``, ``[0, inf)``."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    _PATTERN: ClassVar[re.Pattern[str]] = re.compile(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^\]\)\s]+)\s*([\])])\s*")

    @classmethod
    def parse(cls, text: str) -> Interval:
        m = cls._PATTERN.fullmatch(text)
        try:
            low, high = (float(m.group(2)), float(m.group(3))) if m else (math.nan, math.nan)
        except ValueError:
            low, high = math.nan, math.nan
        if m is None or not low <= high:  # NaN compares false: unparsable bounds land here too
            raise FewshotError(f"hyperparameter range {text!r}: write an interval such as (0, 10] or [1, inf)")
        return cls(low, high, m.group(1) == "(", m.group(4) == ")")

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        def shown(x: float) -> str:  # short (1e9, 0.001) where that is exact, else every digit (2147483647)
            if math.isinf(x):
                return "inf" if x > 0 else "-inf"
            short = f"{x:g}".replace("e+0", "e").replace("e+", "e")
            return short if float(short) == x else str(int(x)) if float(x).is_integer() else repr(x)

        return f"{'(' if self.low_open else '['}{shown(self.low)}, {shown(self.high)}{')' if self.high_open else ']'}"


# Integers with no declared range: counts of something, passed on to torch and numpy, whose C APIs take int64.
MAX_GENERIC_INT = 2**31 - 1


def hparam_range(cls: type[HasHparams], name: str) -> Interval | None:
    """The interval ``name``'s value must lie in: the declared one, else a generic one from its default (an integer
    default of 0 or more: a count in [0, 2**31-1]; a learning rate, a float named ``lr`` or ``*_lr``: above 0, or
    at least 0 where the default is 0, "the paper's"); None for text, flags, choices and other numbers (any finite
    one)."""
    declared = cls.hparam_ranges.get(name)
    if declared is not None:
        return Interval.parse(declared)
    default = cls.hparams.get(name)
    if name in cls.hparam_choices or isinstance(default, bool) or not isinstance(default, (int, float)):
        return None
    if isinstance(default, int):
        return Interval(0 if default >= 0 else -MAX_GENERIC_INT, MAX_GENERIC_INT)
    if "lr" in name.split("_") and default >= 0:
        return Interval(0.0, math.inf, low_open=default > 0, high_open=True)
    return None


def describe_hparams(cls: type[HasHparams]) -> str:
    """``name=default`` for each hyperparameter, with the range its values must lie in or the choices it has."""
    described = []
    for name, default in cls.hparams.items():
        interval = hparam_range(cls, name)
        choices = cls.hparam_choices.get(name)
        if choices:
            described.append(f"{name}={default} of {'|'.join(str(c) for c in choices)}")
        else:
            described.append(f"{name}={default}" + (f" in {interval}" if interval is not None else ""))
    return "; ".join(described)


def _convert(name: str, text: str, default: Any, choices: tuple | None) -> Any:
    try:
        if isinstance(default, bool):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value: Any = lowered in ("true", "1", "yes")
        elif isinstance(default, int):
            value = int(text)
        elif isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):  # 1e999 parses as inf: a run would train on it and record it
                raise ValueError
        else:
            value = text
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a finite number"}.get(type(default), "text")
        raise FewshotError(f"--hp {name}={text}: expected {kind}, like the default {default!r}") from None
    if choices and value not in choices:
        raise FewshotError(f"--hp {name}={text}: choose one of {', '.join(map(str, choices))}")
    return value


def resolve_hparams(
    cls: type[HasHparams], overrides: Mapping[str, str], learner_name: str, prefix: str = ""
) -> dict[str, Any]:
    """The learner's defaults with ``--hp name=value`` overrides applied; unknown names, and values outside a
    hyperparameter's range (``hparam_range``), are an error. ``prefix``: how ``--hp`` names them (``dann.``)."""
    hp = dict(cls.hparams)
    renamed = getattr(cls, "renamed_hparams", {})
    for name, text in overrides.items():
        if name in renamed:
            raise FewshotError(
                f"--hp {prefix}{name} is now called {prefix}{renamed[name]}: write --hp {prefix}{renamed[name]}={text}"
            )
        if name not in hp:
            known = ", ".join(sorted(hp)) or "none"
            raise FewshotError(f"unknown hyperparameter {name!r} for {learner_name}: its hyperparameters are {known}")
        value = _convert(prefix + name, str(text), cls.hparams[name], cls.hparam_choices.get(name))
        interval = hparam_range(cls, name)
        if interval is not None and value not in interval:
            raise FewshotError(
                f"--hp {prefix}{name}={text}: {learner_name}'s {name} must be in {interval}, got {value}"
            )
        hp[name] = value
    return hp


def parse_hp_options(options: tuple[str, ...]) -> dict[str, str]:
    parsed = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or not name.strip():
            raise FewshotError(f"--hp {option!r}: write it as name=value")
        parsed[name.strip()] = value.strip()
    return parsed
