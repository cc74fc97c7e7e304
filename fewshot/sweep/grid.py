"""A grid: learners x benchmark cells x seeds, with a training budget and test episodes per tier.

A grid is a TOML file::

    name = "glyphs"
    seeds = [0, 1, 2]
    learners = ["protonet", "matchingnet"]        # or [[learner]] tables with named variants

    [[learner]]
    name = "maml"
    variants = { paper = { inner_lr = 0.4 } }     # each variant is one set of --hp overrides

    [[cell]]
    dataset = "glyphs"
    ways = 5
    shots = [1, 5]                                # a list gives one cell per value

    [tier.smoke]
    budget = "5steps"                             # or a table by learner, family or "*"
    episodes = 20
    threads = 1

A cell's keys are the words of ``fewshot eval``: dataset, protocol, ways, shots,
queries, side, kind (a protocol chosen by its flag) with its ``options``, adapt,
source and target (or ``shift = "a->b"``), target_labels, select and val_images
(a model-selection regime: the cell scores validation data), ``hp`` (hyperparameters
the cell's learners take there), ``episodes`` ("all": the protocol's own count,
for protocols that score every test image) and ``learners`` to give a cell its
own. A tier's keys: budget ("default": the learner's own),
episodes, threads (per job), device, cpus and gpus (what a Ray task asks for),
seeds (instead of the grid's).

Everything that can be checked without reading a dataset is checked when the
grid is read, and a mistake is one line naming the file and the line.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshot.core import registry
from fewshot.core.errors import FewshotError
from fewshot.core.learner import resolve_hparams
from fewshot.core.protocol import check_seed
from fewshot.core.selection import REGIMES
from fewshot.run.job import Job
from fewshot.run.training import Budget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

TIERS = ("smoke", "cpu", "gpu")
DEFAULT_BUDGET = "default"  # the learner's own budget for the dataset
ALL = "all"  # a cell's episodes: the protocol's own count (every test image or class), not the tier's
GRID_KEYS = {"name", "description", "seeds", "learners", "learner", "cell", "tier"}
LEARNER_KEYS = {"name", "variants"}
CELL_KEYS = {
    "dataset", "protocol", "ways", "shots", "queries", "side", "kind", "options", "adapt", "source", "target",
    "shift", "target_labels", "learners", "hp", "episodes", "select", "val_images",
}  # fmt: skip
LISTABLE = (
    "dataset", "protocol", "ways", "shots", "queries", "side", "adapt", "shift", "target_labels", "select", "val_images",
)  # fmt: skip
TIER_KEYS = {"budget", "episodes", "threads", "device", "cpus", "gpus", "seeds"}


@dataclass(frozen=True)
class Variant:
    learner: str
    name: str  # "" for the learner's defaults
    hp: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Tier:
    name: str
    budget: dict[str, str] = field(default_factory=dict)  # by learner, family or "*"; absent: the learner's own
    episodes: int | None = None
    threads: int = 1
    device: str = "cpu"
    cpus: float = 1.0
    gpus: float = 0.0
    seeds: tuple[int, ...] | None = None

    def budget_for(self, learner: str) -> str | None:
        family = getattr(registry.learner(learner), "family", "")
        for key in (learner, family, "*"):
            if key in self.budget:
                chosen = self.budget[key]
                return None if chosen == DEFAULT_BUDGET else chosen
        return None


@dataclass(frozen=True)
class Grid:
    path: Path
    name: str
    description: str
    seeds: tuple[int, ...]
    variants: tuple[Variant, ...]
    cells: tuple[dict[str, Any], ...]  # one dict of eval words per cell, lists expanded
    tiers: dict[str, Tier]

    def tier(self, name: str) -> Tier:
        if name not in self.tiers:
            raise FewshotError(f"{self.path}: no [tier.{name}] in the grid; it has {', '.join(self.tiers) or 'none'}")
        return self.tiers[name]

    def jobs(self, tier_name: str) -> list[Job]:
        """Every job of the tier, seeds outermost, so that a sweep cut short has covered every cell once."""
        tier = self.tier(tier_name)
        jobs = []
        for seed in tier.seeds or self.seeds:
            for cell in self.cells:
                names = cell.get("learners")
                for variant in self.variants:
                    if names is not None and variant.learner not in names:
                        continue
                    words = {k: v for k, v in cell.items() if k not in ("learners", "hp", "episodes")}
                    episodes = cell.get("episodes", tier.episodes)
                    jobs.append(
                        Job(
                            variant.learner,
                            seed=seed,
                            hp=tuple(sorted({**dict(variant.hp), **dict(cell.get("hp", ()))}.items())),
                            variant=variant.name,
                            budget=tier.budget_for(variant.learner),
                            episodes=None if episodes == ALL else episodes,
                            device=tier.device,
                            threads=tier.threads,
                            **words,
                        )
                    )
        return jobs


class GridError(FewshotError):
    pass


def standard_grids() -> dict[str, Path]:
    """The grids shipped with the suite (``leaderboard/grids/``), by name."""
    import fewshot.leaderboard

    folder = Path(fewshot.leaderboard.__file__).parent / "grids"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def load(path: str | Path) -> Grid:
    """Read and check a grid file; a bare name (``glyphs``) that is no file names a standard grid."""
    path = Path(path)
    if not path.exists() and path.name == str(path) and not path.suffix:
        standard = standard_grids()
        if str(path) not in standard:
            raise FewshotError(
                f"no grid file {path}, and no standard grid of that name: give a TOML file or one of "
                f"{', '.join(standard)}"
            )
        path = standard[str(path)]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FewshotError(f"cannot read grid {path} ({err}); give the path of a TOML grid file") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FewshotError(f"{path}: not valid TOML ({err})") from None
    return _Reader(path, text).grid(raw)


class _Reader:
    """Builds a Grid, saying which line of the file holds a mistake."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def fail(self, message: str, *needles: Any) -> GridError:
        line = self.line_of(*needles)
        where = f"{self.path}:{line}" if line else str(self.path)
        return GridError(f"{where}: {message}")

    def line_of(self, *needles: Any) -> int | None:
        """The first line that holds every needle (a key or a value as written in TOML); None when none does."""
        patterns = [re.compile(_pattern(n)) for n in needles if n is not None]
        for number, line in enumerate(self.lines, 1):
            code = line.split("#", 1)[0]
            if patterns and all(p.search(code) for p in patterns):
                return number
        return None

    def grid(self, raw: dict[str, Any]) -> Grid:
        self.unknown_keys(raw, GRID_KEYS, "grid")
        name = raw.get("name", self.path.stem)
        seeds = self.seeds(raw.get("seeds", [0]), "seeds")
        variants = self.variants(raw)
        if not variants:
            raise self.fail("the grid names no learner: add learners = [...] or [[learner]] tables")
        cells = self.cells(raw.get("cell", []), {v.learner for v in variants})
        tiers = {tier: self.tier(tier, spec) for tier, spec in self.table(raw.get("tier", {}), "tier").items()}
        if not tiers:
            raise self.fail("the grid has no tier: add [tier.smoke] (budget, episodes) at least")
        return Grid(self.path, str(name), str(raw.get("description", "")), seeds, tuple(variants), cells, tiers)

    def table(self, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} must be a table", what)
        return value

    def unknown_keys(self, table: dict[str, Any], known: set[str], what: str) -> None:
        for key in table:
            if key not in known:
                raise self.fail(f"unknown key {key!r} in {what}: known keys are {', '.join(sorted(known))}", key)

    def seeds(self, value: Any, key: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(s, int) for s in value):
            raise self.fail(f"{key} must be a list of whole numbers, such as [0, 1, 2]", key)
        for seed in value:
            try:
                check_seed(seed)
            except FewshotError as err:
                raise self.fail(str(err), key) from None
        return tuple(value)

    def variants(self, raw: dict[str, Any]) -> list[Variant]:
        plain = raw.get("learners", [])
        if not isinstance(plain, list) or not all(isinstance(n, str) for n in plain):
            raise self.fail("learners must be a list of learner names", "learners")
        tables = raw.get("learner", [])
        if not isinstance(tables, list):
            raise self.fail("[[learner]] must be an array of tables", "learner")
        variants: list[Variant] = []
        for name in plain:
            self.known_learner(name)
            variants.append(Variant(name, ""))
        for table in tables:
            self.unknown_keys(table, LEARNER_KEYS, "[[learner]]")
            name = table.get("name")
            if not isinstance(name, str):
                raise self.fail('each [[learner]] needs name = "LEARNER"', "learner")
            self.known_learner(name)
            named = self.table(table.get("variants", {"": {}}), "variants")
            for variant, hp in named.items():
                words = self.hparams(name, self.table(hp, f"variant {variant}"))
                variants.append(Variant(name, variant, words))
        seen: set[tuple[str, str]] = set()
        for v in variants:
            if (v.learner, v.name) in seen:
                raise self.fail(f"learner {v.learner} (variant {v.name or 'default'}) is named twice", v.learner)
            seen.add((v.learner, v.name))
        return variants

    def known_learner(self, name: str) -> None:
        if name not in registry.names("learner"):
            raise self.fail(f"unknown learner {name!r}: `fewshot learners` lists them", name)

    def hparams(self, learner: str, hp: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        words = {str(k): _word(v) for k, v in hp.items()}
        own = {k: v for k, v in words.items() if "." not in k}  # METHOD.NAME belongs to an adaptation method
        try:
            resolve_hparams(registry.learner(learner), own, learner)
        except FewshotError as err:
            bad = next((k for k in own if k in str(err)), None)
            raise self.fail(str(err), bad) from None
        return tuple(sorted(words.items()))

    def cells(self, tables: Any, learners: set[str]) -> tuple[dict[str, Any], ...]:
        if not isinstance(tables, list) or not tables:
            raise self.fail("the grid has no [[cell]]: add one (dataset, ways, shots)")
        cells: list[dict[str, Any]] = []
        for table in tables:
            self.unknown_keys(table, CELL_KEYS, "[[cell]]")
            cells.extend(self.expand(table, learners))
        return tuple(cells)

    def expand(self, table: dict[str, Any], learners: set[str]) -> Iterable[dict[str, Any]]:
        if "shift" in table and ("source" in table or "target" in table):
            raise self.fail('give shift = "SOURCE->TARGET" or source and target, not both', "shift")
        own = table.get("learners")
        if own is not None:
            if not isinstance(own, list) or not all(isinstance(n, str) for n in own):
                raise self.fail("a cell's learners must be a list of learner names", "learners")
            for name in own:
                self.known_learner(name)
                if name not in learners:
                    raise self.fail(f"the cell names learner {name!r}, which the grid does not list", name)
        lists = {k: v if isinstance(v, list) else [v] for k, v in table.items() if k in LISTABLE}
        for values in itertools.product(*lists.values()):
            words = dict(zip(lists, values))
            self.check_cell(words)
            if "shift" in words:
                source, _, target = str(words.pop("shift")).partition("->")
                words["source"], words["target"] = source.strip(), target.strip()
            for key in ("source", "target", "kind"):
                if key in table:
                    words[key] = table[key]
            if "options" in table:
                options = self.table(table["options"], "options")
                words["options"] = tuple(sorted((str(k), int(v)) for k, v in options.items()))
            if own is not None:
                words["learners"] = tuple(own)
            if "hp" in table:
                hp = self.table(table["hp"], "hp")
                for name in own or sorted(learners):  # every learner the cell runs must know them
                    words["hp"] = self.hparams(name, hp)
            if "episodes" in table:
                episodes = table["episodes"]
                if episodes != ALL and (not isinstance(episodes, int) or episodes < 1):
                    raise self.fail('a cell\'s episodes: a whole number of at least 1, or "all"', "episodes")
                words["episodes"] = episodes
            yield words

    def check_cell(self, words: dict[str, Any]) -> None:
        dataset = words.get("dataset")
        if dataset is not None:
            if dataset not in registry.names("dataset"):
                raise self.fail(f"unknown dataset {dataset!r}: `fewshot datasets` lists them", dataset)
            protocols = registry.dataset_class(dataset).protocols
            if words.get("protocol") is not None and words["protocol"] not in protocols:
                raise self.fail(
                    f"unknown {dataset} protocol {words['protocol']!r}: choose one of {', '.join(protocols)}",
                    words["protocol"],
                )
        adapt = words.get("adapt", "none")
        if adapt != "none" and adapt not in registry.names("adaptation"):
            raise self.fail(f"unknown adaptation method {adapt!r}: `fewshot learners` lists them", adapt)
        for key in ("shots", "queries", "target_labels"):
            if key in words and (not isinstance(words[key], int) or words[key] < 0):
                raise self.fail(f"{key} must be a whole number, zero or more", key)
        if "select" in words and words["select"] not in REGIMES:
            raise self.fail(
                f"select {words['select']!r} is no selection regime: choose one of {', '.join(REGIMES)}",
                words["select"],
            )
        if "val_images" in words and (not isinstance(words["val_images"], int) or words["val_images"] < 1):
            raise self.fail("val_images must be a whole number of at least 1", "val_images")
        if "val_images" in words and "select" not in words:
            raise self.fail("val_images sizes the held-out images of a select regime: add select", "val_images")
        ways = words.get("ways")
        if ways is not None and ways != "all" and (not isinstance(ways, int) or ways < 2):
            raise self.fail('ways must be a whole number of at least 2, or "all"', "ways")
        if "shift" in words and "->" not in str(words["shift"]):
            raise self.fail(f'shift {words["shift"]!r}: write it as "SOURCE->TARGET"', "shift")

    def tier(self, name: str, spec: Any) -> Tier:
        if name not in TIERS:
            raise self.fail(f"unknown tier {name!r}: tiers are {', '.join(TIERS)}", f"tier.{name}")
        spec = self.table(spec, f"tier.{name}")
        self.unknown_keys(spec, TIER_KEYS, f"[tier.{name}]")
        budget = spec.get("budget", {})
        budgets = {"*": budget} if isinstance(budget, str) else self.table(budget, "budget")
        for key, value in budgets.items():
            if not isinstance(value, str):
                raise self.fail(f'budget {value!r}: write a string such as "500steps" or "default"', key)
            if value != DEFAULT_BUDGET:
                try:
                    parsed = Budget.parse(value)
                except FewshotError as err:
                    raise self.fail(str(err).replace("--budget", "budget"), value) from None
                if parsed.steps == 0:
                    raise self.fail(f"budget {value!r}: train for at least 1 step", value)
            families = {getattr(registry.learner(n), "family", "") for n in registry.names("learner")}
            if key != "*" and key not in registry.names("learner") and key not in families:
                raise self.fail(
                    f"budget for {key!r}: name a learner, a family ({', '.join(sorted(families))}) or *", key
                )
        episodes = spec.get("episodes")
        if episodes is not None and (not isinstance(episodes, int) or episodes < 1):
            raise self.fail("episodes must be a whole number of at least 1", "episodes")
        threads = spec.get("threads", 1)
        if not isinstance(threads, int) or threads < 1:
            raise self.fail("threads must be a whole number of at least 1", "threads")
        device = spec.get("device", "cpu")
        if device not in ("cpu", "cuda", "auto"):
            raise self.fail(f"device {device!r}: choose cpu, cuda or auto", "device")
        cpus, gpus = spec.get("cpus", float(threads)), spec.get("gpus", 1.0 if device == "cuda" else 0.0)
        for key, value in (("cpus", cpus), ("gpus", gpus)):
            if not isinstance(value, (int, float)) or value < 0:
                raise self.fail(f"{key} must be a number, zero or more", key)
        seeds = self.seeds(spec["seeds"], "seeds") if "seeds" in spec else None
        return Tier(name, dict(budgets), episodes, threads, device, float(cpus), float(gpus), seeds)


def _word(value: Any) -> str:
    """A TOML value as the word ``--hp NAME=VALUE`` would carry."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pattern(needle: Any) -> str:
    """A regular expression for a key or value as it appears in a line of TOML."""
    text = re.escape(str(needle))
    return rf"(^|[^\w.-]){text}($|[^\w.-])"
