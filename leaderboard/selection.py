"""The validation runs choices were made on (``--select REGIME``), shown apart from the test figures.

A run recorded with split ``val`` scored validation data under a model-selection
regime (``fewshot.core.selection``). It never enters a benchmark's matrix or a
protocol's table of test figures; this section lists such runs, grouped by the
comparison they belong to (benchmark, regime, cell and training budget), the
best variant of each group first.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fewshot.core.protocol import Section
from fewshot.core.stats import seed_interval
from fewshot.leaderboard.runs import as_dict, label, latest, shift

TITLE = "Model selection: validation runs"
LEGEND = """Runs that scored validation data, on which hyperparameters, defaults and design variants are chosen;
no test image or test class was read by them. `regime`: training-domain (labelled source training images held out
from training), oracle (a labelled target validation split carved from the target training images, held out) or
val-classes (validation classes, trained without them). Within each comparison (same benchmark, regime, cell and
budget) the variants are sorted best first: the mean over the seeds shown ± the 95% interval of that mean over seeds
(Student's t), or a single seed's own interval."""


def is_validation(run: dict[str, Any]) -> bool:
    return run.get("split") == "val"


def selection_section(runs: list[dict[str, Any]]) -> Section | None:
    """The validation runs among ``runs`` (their latest of each configuration), as one table."""
    import pandas as pd

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in latest([r for r in runs if is_validation(r)]):
        cell = "all classes" if run.get("ways") == "all" else f"{run['ways']}-way {run['shots']}-shot"
        if run.get("unit") not in (None, "episode"):  # scored unit by unit (images, classes): their number
            cell = f"{run['episodes']} {run['unit']}s"
        comparison = (
            run["dataset"],
            run["protocol"],
            shift(run),
            as_dict(run.get("selection")).get("regime", "?"),
            cell,
            run.get("train_budget") or "none",
        )
        groups.setdefault((*comparison, label(run)), []).append(run)
    table = []
    for (dataset, protocol, shifted, regime, cell, budget, shown), group in groups.items():
        group = sorted(group, key=lambda r: r["seed"])
        values = np.array([100 * r["mean"] for r in group])
        half = seed_interval(values) if len(values) > 1 else 100 * group[0]["ci95"]
        table.append(
            {
                "benchmark": f"{dataset}/{protocol}" + (f", {shifted}" if shifted else ""),
                "regime": regime,
                "cell": cell,
                "budget": budget,
                "learner": shown,
                "validation accuracy %": f"{values.mean():.2f} ± {half:.2f}",
                "seeds": ", ".join(f"{v:.2f}" for v in values),
                "runs": ", ".join(str(r["id"]) for r in group),
                "_sort": ((dataset, protocol, shifted, regime, cell, budget), -values.mean()),
            }
        )
    if not table:
        return None
    table.sort(key=lambda row: row.pop("_sort"))
    return Section(TITLE, LEGEND, pd.DataFrame(table))
