"""Matrices of learners x cells, one per benchmark: what the site and LEADERBOARD.md show.

A benchmark is a dataset's protocol scored by one evaluation protocol; its
columns are cells (shift, side, ways, shots, queries, episodes, split) and its
rows learners (label and training budget). An entry holds the latest run of
each seed: over several seeds it reads mean ± Student's t interval of the
seeds' figures, over one seed the run's own interval over its units. In each
column the best entry is compared with every other, paired unit by unit on
identical episodes (the store's episodes digest), seed by seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fewshot.core.stats import PairedDifference, paired_difference, seed_interval
from fewshot.leaderboard.papers import paper_figure
from fewshot.leaderboard.runs import as_dict, label, latest

Accuracies = Callable[[dict[str, Any]], np.ndarray]

COLUMN_FIELDS = ("source", "target", "side", "ways", "shots", "queries", "episodes", "split")


def benchmark_key(run: dict[str, Any]) -> tuple[str, str, str]:
    return (run["protocol_kind"], run["dataset"], run["protocol"])


def column_key(run: dict[str, Any]) -> tuple:
    return tuple(run.get(k) or "" if k in ("source", "target", "side") else run[k] for k in COLUMN_FIELDS)


def row_key(run: dict[str, Any]) -> tuple[str, str]:
    return (label(run), run.get("train_budget") or "none")


def backbone(run: dict[str, Any]) -> str:
    """The network the run recorded, else the one its hyperparameters name ("auto" names none), else
    "not recorded"."""
    hp = as_dict(run["hparams"])
    named = hp.get("backbone") or hp.get("network")
    return str(run.get("backbone") or (named if named != "auto" else None) or "not recorded")


def transductive(run: dict[str, Any]) -> str:
    """yes or no, from the run's column, else from the learner's note on the protocol; else "not recorded"."""
    if run.get("transductive") is not None:
        return "yes" if run["transductive"] else "no"
    note = (run.get("protocol_note") or "").lower()
    if "non-transductive" in note:
        return "no"
    return "yes" if "transductive" in note else "not recorded"


@dataclass
class Column:
    key: tuple
    title: str  # what tells it from the benchmark's other columns
    description: str  # the whole cell
    unit: str


@dataclass
class Entry:
    """One learner on one cell: the latest run of each seed, and how it stands against its column's best."""

    runs: list[dict[str, Any]]  # by seed
    value: float  # accuracy, percent
    half: float  # 95% half-width, percent
    error: bool  # reported as an error rate
    paper: tuple[float, str] | None
    status: str = "alone"  # best, tied, worse, unpaired, alone (nothing to compare with)
    versus_best: PairedDifference | None = None

    @property
    def seeds(self) -> list[tuple[int, float, int]]:
        return [(r["seed"], 100 * r["mean"], r["id"]) for r in self.runs]

    def shown(self) -> str:
        v, half = self.value, self.half
        return f"{100 - v:.2f} ± {half:.2f} error" if self.error else f"{v:.2f} ± {half:.2f}"

    @property
    def difference(self) -> float | None:
        """Ours minus the paper's, in points of what is reported (accuracy or error)."""
        if self.paper is None:
            return None
        ours = 100 - self.value if self.error else self.value
        return ours - self.paper[0]


@dataclass
class Row:
    key: tuple[str, str]
    backbone: str
    device: str
    transductive: str

    @property
    def learner(self) -> str:
        return self.key[0]

    @property
    def budget(self) -> str:
        return self.key[1]


@dataclass
class Matrix:
    key: tuple[str, str, str]
    runs: list[dict[str, Any]]  # the latest of each configuration
    columns: list[Column]
    rows: list[Row]
    entries: dict[tuple[tuple, tuple], Entry] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.key[0]

    @property
    def title(self) -> str:
        return f"{self.key[1]}/{self.key[2]} ({self.key[0]})"

    @property
    def slug(self) -> str:
        return slug("-".join(self.key))

    def entry(self, row: Row, column: Column) -> Entry | None:
        return self.entries.get((row.key, column.key))

    def column_slug(self, column: Column) -> str:
        return slug(f"{self.slug}-{column.description}")


def slug(text: str) -> str:
    """A file name of letters, digits and dashes for ``text`` (with a short hash, so two texts never share one)."""
    import hashlib
    import re

    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def matrices(runs: list[dict[str, Any]], accuracies: Accuracies | None = None) -> list[Matrix]:
    """One matrix per benchmark of ``runs`` (not superseded), benchmarks and columns in a stable order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:  # by benchmark first: two evaluation protocols may score the same numbers of a cell
        groups.setdefault(benchmark_key(run), []).append(run)
    return [build(key, latest(group), accuracies) for key, group in sorted(groups.items(), key=_benchmark_order)]


def _benchmark_order(item: tuple[tuple, Any]) -> tuple:
    """The protocols' order on the leaderboard, then dataset and protocol; a protocol not installed goes last."""
    from fewshot.core import registry
    from fewshot.core.errors import FewshotError

    try:
        order = registry.protocol(item[0][0]).order
    except FewshotError:
        order = 1000
    return (order, item[0])


def build(key: tuple[str, str, str], runs: list[dict[str, Any]], accuracies: Accuracies | None) -> Matrix:
    cells: dict[tuple, dict[tuple, list[dict[str, Any]]]] = {}
    for run in runs:
        cells.setdefault(column_key(run), {}).setdefault(row_key(run), []).append(run)
    columns = titled(sorted(cells, key=_column_order), {k: next(iter(v.values()))[0] for k, v in cells.items()})
    rows_runs: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        rows_runs.setdefault(row_key(run), []).append(run)
    matrix = Matrix(key, runs, columns, [])
    for column in columns:
        for rkey, group in cells[column.key].items():
            matrix.entries[(rkey, column.key)] = entry(sorted(group, key=lambda r: r["seed"]))
        rank(matrix, column, accuracies)

    def order(rk: tuple) -> tuple:  # by the first column, then the next...; not run last
        return tuple((0, -e.value) if (e := matrix.entries.get((rk, c.key))) else (1, 0.0) for c in columns)

    matrix.rows = [
        Row(
            rk,
            ", ".join(sorted({backbone(r) for r in group})),
            ", ".join(sorted({r.get("device") or "not recorded" for r in group})),
            ", ".join(sorted({transductive(r) for r in group})),
        )
        for rk, group in sorted(rows_runs.items(), key=lambda item: (order(item[0]), item[0]))
    ]
    return matrix


def _column_order(key: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, int) else (1, 0, v) for v in key)


def titled(keys: list[tuple], examples: dict[tuple, dict[str, Any]]) -> list[Column]:
    """Columns named by what tells them apart (shift, side, ways and shots...), described whole."""
    parts = []
    for key in keys:
        fields = dict(zip(COLUMN_FIELDS, key))
        unit = examples[key].get("unit") or "episode"
        parts.append(
            (
                f"{fields['source']} → {fields['target']}" if fields["source"] else "",
                f"described by {fields['side']}" if fields["side"] else "",
                f"{fields['ways']}-way {fields['shots']}-shot",
                count(fields["queries"], "query", "queries") if fields["queries"] else "",
                count(fields["episodes"], unit, plural(unit)),
                f"{fields['split']} split",
                unit,
            )
        )
    varying = [i for i in range(6) if len({p[i] for p in parts}) > 1]
    columns = []
    for key, p in zip(keys, parts):
        shown = [p[i] or "no shift" if i == 0 else p[i] for i in varying]
        title = ", ".join(s for s in shown if s) or ", ".join(s for s in p[:3] if s)
        columns.append(Column(key, title, ", ".join(s for s in p[:6] if s), p[6]))
    return columns


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "ch", "sh", "x")) else "s")


def entry(runs: list[dict[str, Any]]) -> Entry:
    values = np.array([100 * r["mean"] for r in runs])
    half = seed_interval(values) if len(runs) > 1 else 100 * runs[0]["ci95"]
    return Entry(runs, float(values.mean()), float(half), runs[0].get("report") == "error", paper_figure(runs[0]))


def rank(matrix: Matrix, column: Column, accuracies: Accuracies | None) -> None:
    """Mark the column's best entry and compare every other with it, paired on identical episodes seed by seed."""
    found = [e for (_, c), e in matrix.entries.items() if c == column.key]
    if len(found) < 2 or accuracies is None:
        return
    best = max(found, key=lambda e: e.value)
    best.status = "best"
    for other in found:
        if other is best:
            continue
        other.versus_best = paired_runs(best.runs, other.runs, accuracies)
        if other.versus_best is None or (other.versus_best.significant and other.versus_best.mean < 0):
            other.status = "unpaired"  # no seed on the same episodes, or the units rank the other way than the figure
        else:
            other.status = "worse" if other.versus_best.significant else "tied"


def paired_runs(a: list[dict[str, Any]], b: list[dict[str, Any]], accuracies: Accuracies) -> PairedDifference | None:
    """A minus B over the units of the seeds both ran on identical episodes; None if no seed pairs."""
    by_seed = {r["seed"]: r for r in b}
    left, right = [], []
    for run in a:
        other = by_seed.get(run["seed"])
        if other is None or other["episodes_digest"] != run["episodes_digest"] or other.get("unit") != run.get("unit"):
            continue
        x, y = accuracies(run), accuracies(other)
        if len(x) and len(x) == len(y):
            left.append(x)
            right.append(y)
    if not left:
        return None
    return paired_difference(np.concatenate(left), np.concatenate(right))
