"""Leaderboard tables and paired comparisons: pure functions of the recorded runs.

A cell is a learner (with its hyperparameters and training budget) on a
benchmark: dataset, protocol, split, ways, shots, queries, episodes, seed.
When a cell was run more than once, the latest run is shown.
"""
from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import numpy as np
import pandas as pd

from fewshot.errors import FewshotError
from fewshot.harness import confidence95
from fewshot.leaderboard.papers import paper_accuracy, references_for

CELL = ("dataset", "protocol", "split", "ways", "shots", "queries", "episodes", "seed")
LEGEND = """# fewshot leaderboard

Built by `fewshot leaderboard` from {runs} recorded runs. A row is a learner (with the hyperparameters
that differ from its defaults, and its training budget) on a benchmark cell: dataset, protocol, ways, shots,
15 queries per class unless the protocol fixes them, the episodes shown, seed 0. Accuracy is the mean over
episodes in percent, ± 1.96 standard errors; "published" is the paper's figure for the same protocol.

"""


def _label(run: dict[str, Any]) -> str:
    """The learner's name with the hyperparameters it ran with that differ from its defaults."""
    hp = json.loads(run["hparams"]) if isinstance(run["hparams"], str) else run["hparams"]
    try:
        from fewshot import registry

        defaults = registry.learner(run["learner"]).hparams
    except FewshotError:
        defaults = {}
    changed = [f"{k}={v}" for k, v in sorted(hp.items()) if k in defaults and defaults[k] != v]
    return run["learner"] + (f" ({', '.join(changed)})" if changed else "")


def rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    latest: dict[tuple, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        key = (_label(run), run.get("train_budget"), *(run[k] for k in CELL))
        latest[key] = run
    table = []
    for run in latest.values():
        report = json.loads(run.get("extra") or "{}").get("report", "accuracy")
        mean, ci = 100 * run["mean"], 100 * run["ci95"]
        paper = paper_accuracy(run["learner"], run["dataset"], run["protocol"], run["ways"], run["shots"])
        refs = references_for(run["dataset"], run["protocol"])
        published = f"{paper[0]:.1f} ({paper[1]})" if paper else "; ".join(f"{who} {err:g}% error" for who, err in refs)
        table.append({
            "dataset": run["dataset"], "protocol": run["protocol"], "ways": run["ways"], "shots": run["shots"],
            "queries": run["queries"], "learner": _label(run),
            "result": f"{100 - mean:.2f} ± {ci:.2f} error" if report == "error" else f"{mean:.2f} ± {ci:.2f}",
            "mean": round(mean, 4), "ci95": round(ci, 4), "paper": published, "episodes": run["episodes"],
            "seed": run["seed"], "training": f"{run.get('train_budget') or 'none'}",
            "device": run.get("device"), "run": run["id"],
        })
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    return frame.sort_values(["dataset", "protocol", "ways", "shots", "mean"], ascending=[True, True, True, True, False],
                             ignore_index=True)


def render(runs: list[dict[str, Any]], fmt: str) -> str:
    frame = rows(runs)
    if frame.empty:
        return "no runs recorded yet: `fewshot eval --learner protonet --ways 5 --shots 1` records one\n"
    if fmt == "csv":
        return frame.to_csv(index=False)
    shown = frame[["dataset", "protocol", "ways", "shots", "learner", "result", "paper", "episodes", "training", "run"]]
    shown = shown.rename(columns={"result": "accuracy % (± 95% interval)", "paper": "published"})
    if fmt == "md":
        return LEGEND.format(runs=len(runs)) + _markdown(shown) + "\n"
    return _html(frame, shown)


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _html(frame: pd.DataFrame, shown: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    for (dataset, protocol, ways, shots), group in frame.groupby(["dataset", "protocol", "ways", "shots"], sort=True):
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(group) + 1.0))
        ax.errorbar(group["mean"], range(len(group)), xerr=group["ci95"], fmt="o", capsize=3)
        ax.set_yticks(range(len(group)), group["learner"])
        ax.set_xlabel("accuracy % (95% interval)")
        ax.set_title(f"{dataset}/{protocol} {ways}-way {shots}-shot")
        ax.invert_yaxis()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        figures.append(f'<img alt="{html.escape(f"{dataset} {protocol} {ways}-way {shots}-shot")}" '
                       f'src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">')
    return ("<!doctype html><html><head><meta charset='utf-8'><title>fewshot leaderboard</title></head><body>"
            "<h1>fewshot leaderboard</h1>" + shown.to_html(index=False, escape=True) + "".join(figures) + "</body></html>\n")


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Paired difference A - B in percentage points over identical episodes, with its 95% interval."""
    differing = [k for k in CELL if a[k] != b[k]]
    if differing or a["episodes_digest"] != b["episodes_digest"]:
        what = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in differing) or "the episodes' images differ"
        raise FewshotError(f"runs {a['id']} and {b['id']} were not evaluated on identical episodes ({what}); "
                           f"compare two runs of the same benchmark cell")
    if len(a["accuracies"]) != len(b["accuracies"]):
        raise FewshotError(f"runs {a['id']} and {b['id']} have different per-episode records; compare complete runs")
    difference = 100 * (np.asarray(a["accuracies"]) - np.asarray(b["accuracies"]))
    mean, ci = float(difference.mean()), confidence95(difference)
    if mean - ci > 0:
        verdict = f"run {a['id']} is better (the interval excludes zero)"
    elif mean + ci < 0:
        verdict = f"run {b['id']} is better (the interval excludes zero)"
    else:
        verdict = "no significant difference (the interval includes zero)"
    return {"a": _label(a), "b": _label(b), "episodes": len(difference), "difference": round(mean, 4),
            "ci95": round(ci, 4), "verdict": verdict, "run_a": a["id"], "run_b": b["id"]}
