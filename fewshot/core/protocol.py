"""The protocol interface: how a benchmark cell is scored, reported, compared and tabled.

A dataset's protocol (``vinyals``, ``zsl``, ``uda``) says which classes and
images each role sees; an evaluation protocol, the plug-in kind defined here,
says how a learner is scored on them: episodes, labelled sequences, every test
class at once, every target image. Each is one file in ``fewshot/protocols/``
registered under the ``fewshot.protocols`` entry-point group, exactly as a
third-party protocol would be, and owns:

* ``matches`` / ``resolve``: which command lines it scores, and turning their
  words into a :class:`Cell`;
* ``check``: whether a learner can be scored this way (one line if not);
* ``validator`` and ``evaluate``: scoring during training and at test time;
* ``figures`` and ``report``: the numbers it records beside the mean, and the
  lines ``fewshot eval`` prints;
* ``compare``: how two of its runs pair (episode by episode, image by image...);
* ``leaderboard_section``: its table on the leaderboard.

The engine calls these methods and never names a protocol. A protocol with
``flag_help`` is chosen on the command line by ``--KIND`` (its ``options``
become integer options of ``fewshot eval`` and ``fewshot train``); the others
are chosen by ``matches``, of which exactly one registered protocol must say yes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from fewshot.core.errors import FewshotError

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from fewshot.core.data import Benchmark
    from fewshot.core.learner import Learner
    from fewshot.core.sampler import EpisodeSource
    from fewshot.run.evaluation import EvalResult
    from fewshot.run.experiment import Setup

DEFAULT_QUERIES = 15
DEFAULT_EPISODES = 600


@dataclass(frozen=True)
class Cell:
    """A benchmark cell: with the learner's configuration it fixes every number of a result."""

    dataset: str
    protocol: str  # the dataset's protocol: its class split
    ways: int
    shots: int
    queries: int
    episodes: int  # the units scored: episodes, sequences, classes or images
    seed: int
    split: str = "test"
    kind: str = ""  # the evaluation protocol that scores the cell (a registered fewshot.protocols name)
    side: str = ""  # the class descriptions episodes carry (zero-shot), "" for none
    source: str = ""  # domain shifts: the source and target domains
    target: str = ""


@dataclass(frozen=True)
class Words:
    """What a command line (or the Python API) says of a cell before a protocol reads it; None: not said."""

    ways: int | str | None = None  # a number, or "all": every class of the test split
    shots: int | None = None
    queries: int | None = None
    episodes: int | None = None
    seed: int = 0
    kind: str | None = None  # the protocol chosen by its flag, if any
    options: Mapping[str, int | None] = field(default_factory=dict)  # the chosen protocol's own options


@dataclass(frozen=True)
class Section:
    """A protocol's part of the leaderboard: a heading, what its numbers mean, and the table."""

    title: str
    intro: str
    table: pd.DataFrame
    # Points to plot, one chart per ``chart`` value: columns chart, label, mean and ci95 (percent); or None.
    points: pd.DataFrame | None = None


class Protocol:
    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    unit: ClassVar[str] = "episode"  # what one recorded per-unit score is: episode, sequence, class, image
    flag_help: ClassVar[str] = ""  # non-empty: chosen with --KIND on the command line
    options: ClassVar[Mapping[str, tuple[int, str]]] = {}  # its own integer options: name -> (default, help)
    order: ClassVar[int] = 50  # where its section stands on the leaderboard
    # Whether its cells score images of the training classes (domain adaptation), so that labelled training images
    # held out from training can stand for its test images (``--select training-domain``, ``oracle``).
    scores_training_classes: ClassVar[bool] = False

    # -- choosing the cell -------------------------------------------------------------------
    @classmethod
    def matches(cls, bench: Benchmark, words: Words) -> bool:
        """Whether a command line without a protocol flag is scored by this protocol."""
        return False

    def resolve(self, bench: Benchmark, words: Words) -> Cell:
        raise FewshotError(f"protocol {self.kind} must implement resolve")

    def training_words(self, bench: Benchmark, words: Words) -> Words:
        """The words ``fewshot train`` resolves: the protocol's defaults for what the user left out."""
        return words

    # -- learners ----------------------------------------------------------------------------
    def check(self, name: str, learner: type[Learner], cell: Cell) -> None:
        """Refuse, in one line, a learner this protocol cannot score."""

    def wants_sides(self, cell: Cell) -> bool:
        """Whether the cell's episodes carry class descriptions even for a learner that does not ask for them:
        a zero-shot cell has nothing else to know its classes by."""
        return cell.shots == 0

    def validator(self, setup: Setup, learner: Learner, device: torch.device) -> Callable[[], float] | None:
        """Validation accuracy during training (on the val split), or None."""
        return None

    def test_source(self, setup: Setup) -> EpisodeSource | None:
        """The episodes scored, for protocols that score episodes."""
        return None

    def evaluate(
        self,
        setup: Setup,
        learner: Learner,
        device: torch.device,
        *,
        use_cache: bool | None = None,
        progress: bool = False,
    ) -> EvalResult:
        raise FewshotError(f"protocol {self.kind} must implement evaluate")

    # -- reporting ---------------------------------------------------------------------------
    def figures(self, result: EvalResult) -> dict[str, float]:
        """Figures recorded beside the mean (fractions): the store keeps them, ``--json`` shows them."""
        return {}

    def report(self, setup: Setup, result: EvalResult) -> list[str]:
        """The lines ``fewshot eval`` prints for a result (before the timing line)."""
        raise FewshotError(f"protocol {self.kind} must implement report")

    def compare(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        """A minus B, paired unit by unit: the runs' per-unit scores must be of the same units."""
        from fewshot.core.stats import paired_difference

        paired = paired_difference(a["accuracies"], b["accuracies"])
        return {
            "unit": self.unit,
            "pairs": paired.pairs,
            "difference": paired.mean,
            "ci95": paired.ci95,
            "significant": paired.significant,
            "verdict": paired.verdict(f"run {a['id']}", f"run {b['id']}"),
        }

    def leaderboard_section(self, runs: list[dict[str, Any]]) -> Section | None:
        """This protocol's table of ``runs`` (its own, the latest of each configuration), or None."""
        return None


def choose(bench: Benchmark, words: Words) -> Protocol:
    """The protocol that scores ``words`` on ``bench``: the one named by its flag, else the one that matches."""
    from fewshot.core import registry

    if words.kind is not None:
        return registry.protocol(words.kind)()
    found = [registry.protocol(name) for name in registry.names("protocol")]
    matching = [cls for cls in found if cls.matches(bench, words)]
    if len(matching) != 1:
        flags = ", ".join(f"--{cls.kind}" for cls in found if cls.flag_help)
        said = "no protocol" if not matching else "protocols " + ", ".join(cls.kind for cls in matching)
        raise FewshotError(
            f"{bench.dataset}/{bench.protocol}: {said} can score these options; "
            f"choose one with {flags or 'a protocol flag'}"
        )
    return matching[0]()


def require_unsaid(bench: Benchmark, words: Words, reason: str, *names: str) -> None:
    """Refuse options a protocol fixes itself (``reason`` says why), naming the first one given."""
    for name in names:
        if getattr(words, name) is not None:
            raise FewshotError(f"{bench.dataset}/{bench.protocol} {reason}; leave out --{name}")


# The results store's seed column is a signed 64-bit integer. Every generator a seed feeds takes the whole range
# as it is, so a seed below 2**32 draws exactly the numbers it always drew: the sampler's Philox key (128 bits),
# torch.manual_seed and torch.Generator.manual_seed (64 bits), numpy's default_rng seed sequences (any size).
# Nothing seeds numpy's legacy RandomState (32 bits) with a run's seed; episodes hand learners their own
# 31-bit ``Episode.seed``.
MAX_SEED = 2**63 - 1
MAX_STEPS = 10_000_000  # a training budget's steps: over 300 times the longest default budget here (30000steps)
MAX_MINUTES = 7 * 24 * 60  # a training budget's minutes: a week
MAX_EPISODES = 100_000  # the plans of the episodes are held in memory; 600 already give an interval of about 1 point


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise FewshotError(f"--seed must be between 0 and {MAX_SEED} (2**63-1), got {seed}")


# What scoring holds per episode besides its integers: the plan object and its three arrays, an accuracy.
PLAN_OVERHEAD_BYTES = 512


def memory_needed(cell: Cell, image_shape: tuple[int, ...]) -> int:
    """Bytes an evaluation of ``cell`` holds at once, estimated before any work: every episode's plan (class rows
    and item ids, int64) and accuracy, and one episode's float32 images."""
    per_class = cell.shots + max(cell.queries, 1)
    pixels = 1
    for side in image_shape:
        pixels *= side
    plans = cell.episodes * (PLAN_OVERHEAD_BYTES + 8 * cell.ways * (1 + per_class))
    return plans + 4 * cell.ways * per_class * pixels


def available_memory() -> int | None:
    """Bytes of memory free for a run (MemAvailable on Linux, else the physical memory), or None if unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(cell: Cell, image_shape: tuple[int, ...], available: int | None = None) -> None:
    """Refuse, in one line and before any work, a cell whose evaluation cannot fit in memory."""
    available = available_memory() if available is None else available
    needed = memory_needed(cell, image_shape)
    if available is not None and needed > available:
        raise FewshotError(
            f"{cell.episodes:,} episodes of {cell.ways} ways x {cell.shots + cell.queries} images need about "
            f"{_size(needed)}, more than the {_size(available)} free: lower --episodes, --ways, --shots or --queries"
        )


def _size(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB" if count >= 2**30 else f"{count / 2**20:,.0f} MiB"
