"""Leaderboard tables and paired comparisons: pure functions of the recorded runs.

Each registered protocol tables its own runs (``Protocol.leaderboard_section``)
and pairs two of them (``Protocol.compare``); this module puts the sections
together and checks that two runs may be compared at all. When a configuration
was run more than once, its latest run is shown; superseded runs are not
shown, and the header says how many are hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fewshot.core import registry
from fewshot.core.errors import FewshotError
from fewshot.core.protocol import Section
from fewshot.leaderboard.matrix import Matrix, matrices
from fewshot.leaderboard.runs import CELL, label
from fewshot.leaderboard.selection import is_validation, selection_section

HEADER = """# fewshot leaderboard

Built by `fewshot leaderboard` from {runs} recorded runs{hidden}. First, per benchmark, a matrix of learners x
cells; then each evaluation protocol's own table, what its numbers mean written under its heading. The same
matrices, sortable and with every run, seed and paired comparison, are a site:
`fewshot leaderboard --format html --output DIR`.
"""

MATRICES = """
## Benchmarks: learners x cells

Each entry is the mean ± 95% interval in percent: over seeds (Student's t, the seeds' figures in brackets) where a
cell was run at several seeds, else over its episodes (classes, images, sequences). **Bold**: the best in its
column; ▼: significantly worse than the best, paired unit by unit on identical episodes, seed by seed (the 95%
interval of the difference excludes zero); no mark: no significant difference; ·: not paired with the best (no
seed on identical episodes, or the paired units rank the entry above the best: H is not a mean over classes). "paper" is the published figure for the same setting, and our difference from it.
"""


def sections(runs: list[dict[str, Any]]) -> list[Section]:
    """Every protocol's section of the runs it scored, in the protocols' order."""
    found = []
    for name in registry.names("protocol"):
        protocol = registry.protocol(name)()
        section = protocol.leaderboard_section([r for r in runs if r["protocol_kind"] == protocol.kind])
        if section is not None:
            found.append((protocol.order, name, section))
    return [section for *_, section in sorted(found, key=lambda entry: entry[:2])]


def render(
    runs: list[dict[str, Any]],
    fmt: str,
    hidden: int = 0,
    accuracies: Callable[[dict[str, Any]], np.ndarray] | None = None,
) -> str:
    """The leaderboard of ``runs`` as Markdown or CSV; ``hidden`` superseded runs are counted.

    Markdown holds each benchmark's matrix, then each protocol's table; ``accuracies`` (a run's per-unit scores)
    lets the matrices mark which entries are significantly worse than their column's best.
    """
    validation, total = selection_section(runs), len(runs)
    runs = [r for r in runs if not is_validation(r)]  # test figures only: validation runs have their own section
    parts = sections(runs)
    if not parts and validation is None:
        return (
            "no runs recorded yet: `fewshot eval --learner NAME --ways 5 --shots 1` records one (`fewshot learners`)\n"
        )
    parts += [validation] if validation is not None else []
    if fmt == "csv":
        return "\n".join(section.table.to_csv(index=False) for section in parts)
    unknown = sorted({r["protocol_kind"] for r in runs} - set(registry.names("protocol")))
    hidden_text = f" ({hidden} superseded runs hidden: `fewshot runs --all` lists them)" if hidden else ""
    missing = f"\nRuns of protocols not installed here are left out: {', '.join(unknown)}.\n" if unknown else ""
    text = HEADER.format(runs=total, hidden=hidden_text) + missing + MATRICES
    for found in matrices(runs, accuracies):
        text += f"\n### {found.title}\n\n{markdown(matrix_frame(found))}\n"
    for section in parts:
        text += f"\n## {section.title}\n\n{section.intro}\n\n{markdown(section.table)}\n"
    return text


def markdown(frame: Any) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


MARKS = {"best": "**{}**", "worse": "{} ▼", "unpaired": "{} ·"}


def matrix_frame(found: Matrix) -> Any:
    """A benchmark's matrix as a table of texts: learners as rows, cells as columns."""
    import pandas as pd

    rows = []
    for row in found.rows:
        shown = {
            "learner": row.learner,
            "backbone": row.backbone,
            "budget": row.budget,
            "device": row.device,
            "transductive": row.transductive,
        }
        for column in found.columns:
            entry = found.entry(row, column)
            if entry is None:
                shown[column.title] = "not run"
                continue
            text = MARKS.get(entry.status, "{}").format(entry.shown())
            ids = ", ".join(str(i) for _, _, i in entry.seeds)  # every figure names the runs it comes from
            if len(entry.runs) > 1:
                figures = ", ".join(f"{100 - v if entry.error else v:.2f}" for _, v, _ in entry.seeds)
                text += f" (runs {ids}; seeds {figures})"
            else:
                text += f" (run {ids})"
            if entry.paper is not None:
                text += f"; paper {entry.paper[0]:g} ({entry.difference:+.2f})"
            shown[column.title] = text
        rows.append(shown)
    return pd.DataFrame(rows)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Paired difference A - B in percentage points over identical episodes (images, classes), with its interval."""
    differing = [k for k in (*CELL, "protocol_kind") if a[k] != b[k]]
    if differing or a["episodes_digest"] != b["episodes_digest"]:
        what = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in differing) or "the episodes' images differ"
        raise FewshotError(
            f"runs {a['id']} and {b['id']} were not evaluated on identical episodes ({what}); "
            f"compare two runs of the same benchmark cell"
        )
    if len(a["accuracies"]) != len(b["accuracies"]):
        raise FewshotError(f"runs {a['id']} and {b['id']} have different per-episode records; compare complete runs")
    outcome = registry.protocol(a["protocol_kind"])().compare(a, b)
    return {
        "a": label(a),
        "b": label(b),
        "run_a": a["id"],
        "run_b": b["id"],
        "unit": outcome["unit"],
        "pairs": outcome["pairs"],
        "difference": round(100 * outcome["difference"], 4),
        "ci95": round(100 * outcome["ci95"], 4),
        "significant": outcome["significant"],
        "verdict": outcome["verdict"],
    }
