"""The leaderboard as a static site: ``fewshot leaderboard --format html --output DIR``.

Plain files that work from ``file://`` with no network: an overview with every
benchmark's matrix (learners x cells), a page per benchmark with its matrix and
its protocol's own table, and a page per cell (``leaderboard/cell_page.py``).
Tables sort by any column and filter by text with the few lines of
``site_assets/site.js``; plots are inline SVG written in Python. Every text
that comes from the store is escaped.
"""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.core.errors import FewshotError
from fewshot.leaderboard.matrix import Column, Matrix, Row, matrices, plural
from fewshot.leaderboard.selection import is_validation, selection_section

ASSETS = Path(__file__).parent / "site_assets"
e = html.escape

LEGEND = """Each cell is the mean ± 95% interval in percent: over seeds (Student's t) where a cell was run at several
seeds, each seed's figure on hover; over its episodes (classes, images, sequences) for one seed. Under it, the
paper's figure for the same setting and our difference from it. Colour: <span class="key best">best</span> in
its column; <span class="key tied">no significant difference</span> from the best and <span class="key
worse">significantly worse</span>, paired unit by unit on identical episodes, seed by seed (95% interval of the
difference excludes zero); <span class="key unpaired">not paired</span>: no seed on the best's episodes. A cell's
figure links to its page: every run, the seeds, the paired comparisons and plots."""


def page(title: str, body: str, filter_box: bool = True) -> str:
    box = (
        '<label>Filter rows: <input id="filter" type="search" placeholder="learner, backbone, device…"></label>'
        if filter_box
        else ""
    )
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><link rel='icon' href='data:,'><link rel='stylesheet' href='site.css'>"
        "<script src='site.js' defer></script></head><body>"
        f"<nav><a href='index.html'>fewshot leaderboard</a></nav><h1>{e(title)}</h1>{box}{body}</body></html>\n"
    )


def matrix_table(m: Matrix) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in ("learner", "backbone", "budget", "device", "transductive"))
    head += "".join(f'<th title="{e(c.description)}">{e(c.title)}</th>' for c in m.columns)
    rows = []
    for row in m.rows:
        cells = [f"<td>{e(v)}</td>" for v in (row.learner, row.backbone, row.budget, row.device, row.transductive)]
        cells[0] = f'<td class="learner">{e(row.learner)}</td>'
        cells[2] = f'<td data-sort="{_steps(row.budget)}">{e(row.budget)}</td>'
        cells += [entry_cell(m, row, c) for c in m.columns]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table class="sortable matrix"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _steps(budget: str) -> str:
    """A budget's number for sorting (steps or minutes), empty for none."""
    return "".join(ch for ch in budget if ch.isdigit() or ch == ".")


def entry_cell(m: Matrix, row: Row, column: Column) -> str:
    entry = m.entry(row, column)
    if entry is None:
        return '<td class="entry not-run" data-sort="">not run</td>'
    seeds = [f"seed {s}: {100 - v if entry.error else v:.2f} (run {i})" for s, v, i in entry.seeds]
    hover = "; ".join(seeds)
    if entry.versus_best is not None:
        d = entry.versus_best
        hover += (
            f"; the column's best minus this: {100 * d.mean:+.2f} ± {100 * d.ci95:.2f} points over {d.pairs} "
            f"paired {plural(column.unit)}"
        )
    if entry.status == "unpaired":
        hover += (
            "; not paired with the column's best: no seed on identical episodes"
            if entry.versus_best is None
            else f"; paired {plural(column.unit)} rank it above the column's best: the figure shown is not their mean"
        )
    shown = entry.shown()
    many = f' <span class="seeds">({len(entry.runs)} seeds)</span>' if len(entry.runs) > 1 else ""
    paper = ""
    if entry.paper is not None:
        paper = (
            f'<div class="paper" title="{e(entry.paper[1])}">paper {entry.paper[0]:g} ({entry.difference:+.2f})</div>'
        )
    value = 100 - entry.value if entry.error else entry.value
    return (
        f'<td class="entry {entry.status}" data-sort="{value:.4f}" title="{e(hover)}">'
        f'<a href="cell-{m.column_slug(column)}.html">{e(shown)}</a>{many}{paper}</td>'
    )


def overview(ms: list[Matrix], runs: int, hidden: int, validation: bool = False) -> str:
    hidden_text = f" ({hidden} superseded runs not shown; each cell's page lists them)" if hidden else ""
    index = "".join(f"<li><a href='#{m.slug}'>{e(m.title)}</a></li>" for m in ms)
    if validation:
        index += "<li><a href='selection.html'>Model selection: the validation runs choices were made on</a></li>"
    parts = [
        f"<p>Built by <code>fewshot leaderboard --format html</code> from {runs} recorded runs{e(hidden_text)}.</p>",
        f'<p class="legend">{LEGEND}</p><ul>{index}</ul>',
    ]
    for m in ms:
        parts.append(
            f"<section id='{m.slug}'><h2><a href='bench-{m.slug}.html'>{e(m.title)}</a></h2>{matrix_table(m)}</section>"
        )
    return page("fewshot leaderboard", "".join(parts))


def benchmark_page(m: Matrix) -> str:
    from fewshot.core import registry

    parts = [f'<p class="legend">{LEGEND}</p>', matrix_table(m)]
    try:
        section = registry.protocol(m.kind)().leaderboard_section(m.runs)
    except FewshotError:
        section = None
        parts.append(f"<p class='note'>The protocol {e(m.kind)} is not installed here: its own table is left out.</p>")
    if section is not None:
        table = section.table.to_html(index=False, escape=True, border=0, classes="sortable")
        parts.append(
            f"<h2>{e(section.title)}</h2><p class='legend'>{e(section.intro)}</p><div class='scroll'>{table}</div>"
        )
    cells = "".join(f"<li><a href='cell-{m.column_slug(c)}.html'>{e(c.description)}</a></li>" for c in m.columns)
    parts.append(f"<h2>Cells</h2><ul>{cells}</ul>")
    return page(m.title, "".join(parts))


def pages(
    runs: list[dict[str, Any]],
    every_run: list[dict[str, Any]],
    accuracies: Callable[[dict[str, Any]], np.ndarray],
    history: Callable[[dict[str, Any]], list[dict[str, float]] | None],
) -> dict[str, str]:
    """Every page of the site by file name: ``runs`` are shown, ``every_run`` (superseded too) listed on cell pages."""
    from fewshot.leaderboard.cell_page import cell_page

    validation = selection_section(runs)
    ms = matrices([r for r in runs if not is_validation(r)], accuracies)
    hidden = len(every_run) - len(runs)
    found = {"index.html": overview(ms, len(runs), hidden, validation is not None)}
    if validation is not None:
        table = validation.table.to_html(index=False, escape=True, border=0, classes="sortable")
        found["selection.html"] = page(
            validation.title, f"<p class='legend'>{e(validation.intro)}</p><div class='scroll'>{table}</div>"
        )
    for m in ms:
        found[f"bench-{m.slug}.html"] = benchmark_page(m)
        for column in m.columns:
            found[f"cell-{m.column_slug(column)}.html"] = page(
                f"{m.title}: {column.description}", cell_page(m, column, every_run, accuracies, history)
            )
    return found


def write_site(store: Any, out: Path) -> Path:
    """Write the site of ``store``'s runs into the folder ``out``; returns the overview's path."""
    from fewshot.leaderboard.cell_page import checkpoint_history

    cache: dict[int, np.ndarray] = {}

    def accuracies(run: dict[str, Any]) -> np.ndarray:
        if run["id"] not in cache:
            cache[run["id"]] = np.asarray(store.run(run["id"])["accuracies"], dtype=np.float64)
        return cache[run["id"]]

    found = pages(store.runs(), store.runs(include_superseded=True), accuracies, checkpoint_history)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FewshotError(f"{out} is a file: --format html writes a folder of pages; choose a folder for --output")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in found.items():
        (out / name).write_text(text, encoding="utf-8")
    for asset in ("site.css", "site.js"):
        shutil.copyfile(ASSETS / asset, out / asset)
    return out / "index.html"
