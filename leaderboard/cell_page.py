"""A cell's page on the site: every run of the cell, its seeds, the paired comparisons of its learners, and plots.

The runs shown on the matrix come first; earlier runs of the same configuration
and superseded runs (with why) are listed apart. The validation curve comes from
the history a run's checkpoint keeps, where the checkpoint is still on this
machine; nothing is drawn where none is found.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.core.errors import FewshotError
from fewshot.leaderboard.matrix import (
    COLUMN_FIELDS,
    Column,
    Matrix,
    backbone,
    benchmark_key,
    column_key,
    paired_runs,
    transductive,
)
from fewshot.leaderboard.runs import label
from fewshot.leaderboard.svg import Series, plot

e = html.escape


def checkpoint_history(run: dict[str, Any]) -> list[dict[str, float]] | None:
    """The training history kept by the run's checkpoint (as recorded, or by name in this machine's cache)."""
    recorded = run.get("checkpoint")
    if not recorded:
        return None
    from fewshot.core.paths import cache_dir
    from fewshot.run import checkpoint

    for path in (Path(recorded), cache_dir() / "checkpoints" / Path(recorded).name):
        if path.is_file():
            try:
                return list(checkpoint.load(path).get("history") or []) or None
            except FewshotError:
                continue
    return None


def table(head: list[str], rows: list[list[str]]) -> str:
    """A sortable HTML table; ``head`` is escaped here, ``rows`` hold cells already written as ``<td>``."""
    heads = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return f'<div class="scroll"><table class="sortable runs"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table></div>'


def td(value: Any, sort: Any = None, css: str = "") -> str:
    attributes = (f' data-sort="{e(str(sort))}"' if sort is not None else "") + (f' class="{css}"' if css else "")
    return f"<td{attributes}>{e(str(value))}</td>"


def reported(run: dict[str, Any]) -> str:
    """A run's mean ± interval as its protocol reports it: accuracy, or error rate."""
    mean, half = 100 * run["mean"], 100 * run["ci95"]
    return f"{100 - mean:.2f} ± {half:.2f} error" if run.get("report") == "error" else f"{mean:.2f} ± {half:.2f}"


def run_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for run in sorted(runs, key=lambda r: (label(r), r["seed"], r["id"])):
        found = run.get("figures") or {}
        figures = ", ".join(
            f"{k} {100 * v:.2f}" + (f" ± {100 * found[f'{k}_ci95']:.2f}" if f"{k}_ci95" in found else "")
            for k, v in found.items()
            if not k.endswith("_ci95")
        )
        commit = (run.get("code_commit") or "")[:10] or "not recorded"
        commit += " (dirty)" if run.get("code_dirty") else ""
        rows.append(
            [
                td(run["id"], run["id"]),
                td(label(run), css="wrap"),
                td(run.get("train_budget") or "none"),
                td(run["seed"], run["seed"]),
                td(reported(run), f"{100 * run['mean']:.4f}"),
                td(figures, css="wrap"),
                td(backbone(run)),
                td(transductive(run)),
                td(run.get("device") or "not recorded"),
                td(run.get("threads") or ""),
                td(commit),
                td(run.get("created") or ""),
            ]
        )
    return rows


RUN_HEAD = [
    "run", "learner", "budget", "seed", "mean ± 95%", "figures", "backbone", "transductive", "device", "threads", "commit",
    "recorded",
]  # fmt: skip


def runs_section(m: Matrix, column: Column, every_run: list[dict[str, Any]]) -> str:
    mine = [r for r in every_run if benchmark_key(r) == m.key and column_key(r) == column.key]
    shown_ids = {r["id"] for (_, c), entry in m.entries.items() if c == column.key for r in entry.runs}
    shown = [r for r in mine if r["id"] in shown_ids]
    earlier = [r for r in mine if r["id"] not in shown_ids and not r.get("superseded")]
    superseded = [r for r in mine if r.get("superseded")]
    parts = [f"<h2>Runs ({len(shown)} shown)</h2>", table(RUN_HEAD, run_rows(shown))]
    if earlier:
        parts += [
            f"<h2>Earlier runs of the same configurations ({len(earlier)})</h2>",
            "<p class='note'>A later run of the same learner, budget and seed is the one shown.</p>",
            table(RUN_HEAD, run_rows(earlier)),
        ]
    if superseded:
        rows = [
            [*row, td(r["superseded"]["why"], css="wrap"), td(r["superseded"].get("by") or "")]
            for r, row in zip(sorted(superseded, key=lambda r: (label(r), r["seed"], r["id"])), run_rows(superseded))
        ]
        parts += [f"<h2>Superseded runs ({len(superseded)}), not shown</h2>", table([*RUN_HEAD, "why", "by"], rows)]
    else:
        parts.append("<p class='note'>No run of this cell is superseded.</p>")
    return "".join(parts)


def seeds_section(m: Matrix, column: Column) -> str:
    found = [(row, m.entry(row, column)) for row in m.rows if m.entry(row, column) is not None]
    seeds = sorted({s for _, entry in found if entry for s, _, _ in entry.seeds})
    rows = []
    for row, entry in found:
        assert entry is not None
        by_seed = {r["seed"]: r for r in entry.runs}
        cells = [td(f"{row.learner}, {row.budget}")]
        for seed in seeds:
            run = by_seed.get(seed)
            cells.append(
                td("not run", "") if run is None else td(f"{reported(run)} (run {run['id']})", 100 * run["mean"])
            )
        cells.append(td(entry.shown(), entry.value))
        rows.append(cells)
    head = ["learner, budget", *(f"seed {s}" for s in seeds), "shown on the matrix"]
    return "<h2>Figures by seed</h2>" + table(head, rows)


def comparison_section(m: Matrix, column: Column, accuracies: Callable[[dict[str, Any]], np.ndarray]) -> str:
    found = [(row, entry) for row in m.rows if (entry := m.entry(row, column)) is not None]
    if len(found) < 2:
        return "<h2>Paired comparisons</h2><p class='note'>One learner ran this cell: nothing to compare.</p>"
    rows = []
    for i, (row_a, a) in enumerate(found, 1):
        cells = [td(f"{i}. {row_a.learner}, {row_a.budget}", i)]
        for _, b in found:
            if a is b:
                cells.append(td("—", "", "diagonal"))
                continue
            d = paired_runs(a.runs, b.runs, accuracies)
            if d is None:
                cells.append(td("not paired", ""))
            else:
                css = "significant" if d.significant and d.mean < 0 else ("best" if d.significant else "")
                cells.append(td(f"{100 * d.mean:+.2f} ± {100 * d.ci95:.2f}", 100 * d.mean, css))
        rows.append(cells)
    heads = "".join(f'<th title="{e(r.learner)}, {e(r.budget)}">{i}</th>' for i, (r, _) in enumerate(found, 1))
    body = "".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    return (
        "<h2>Paired comparisons</h2><p class='legend'>Row minus column (columns numbered as the rows) in points, with "
        f"its 95% interval, paired {e(column.unit)} by {e(column.unit)} on identical episodes, seed by seed; green: "
        "the row is significantly better, red: significantly worse; not paired: no seed on identical episodes.</p>"
        f'<div class="scroll"><table class="comparisons"><thead><tr><th>row minus column</th>{heads}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def shots_plot(m: Matrix, column: Column) -> str:
    shots = COLUMN_FIELDS.index("shots")
    related = [
        c for c in m.columns if c.key[:shots] + c.key[shots + 1 :] == column.key[:shots] + column.key[shots + 1 :]
    ]
    if len(related) < 2:
        return "<p class='note'>Accuracy against shots: no other shot setting of this cell was run.</p>"
    series: list[Series] = []
    for row in m.rows:
        points = [(float(c.key[shots]), entry.value, entry.half) for c in related if (entry := m.entry(row, c))]
        if len(points) > 1:
            series.append((f"{row.learner}, {row.budget}", points))
    if not series:
        return "<p class='note'>Accuracy against shots: no learner ran this cell at another shot setting.</p>"
    left_out = "" if len(series) == len(m.rows) else " Learners run at one shot setting only are left out."
    return plot(series, "accuracy against shots", "shots per class", "accuracy %") + f"<p class='note'>{left_out}</p>"


def history_plot(m: Matrix, column: Column, history: Callable[[dict[str, Any]], list[dict[str, float]] | None]) -> str:
    series: list[Series] = []
    for row in m.rows:
        entry = m.entry(row, column)
        for run in entry.runs if entry else []:
            points = [(h["step"], 100 * h["val_acc"], 0.0) for h in history(run) or [] if "val_acc" in h]
            if points:
                series.append((f"{row.learner}, {row.budget}, seed {run['seed']}", points))
    if not series:
        return "<p class='note'>No training history recorded: no run of this cell has its checkpoint here.</p>"
    return plot(series, "validation accuracy against training steps", "training step", "validation accuracy %")


def cell_page(
    m: Matrix,
    column: Column,
    every_run: list[dict[str, Any]],
    accuracies: Callable[[dict[str, Any]], np.ndarray],
    history: Callable[[dict[str, Any]], list[dict[str, float]] | None],
) -> str:
    return "".join(
        [
            f"<p>Benchmark <a href='bench-{m.slug}.html'>{e(m.title)}</a>; cell: {e(column.description)}.</p>",
            runs_section(m, column, every_run),
            seeds_section(m, column),
            comparison_section(m, column, accuracies),
            "<h2>Plots</h2>",
            shots_plot(m, column),
            history_plot(m, column, history),
        ]
    )
