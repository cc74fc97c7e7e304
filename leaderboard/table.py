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

from fewshot.core.errors import FewshotError
from fewshot.run.harness import confidence95
from fewshot.leaderboard.papers import (XIAN_2018, adaptation_paper, paper_accuracy, presentation_references, references_for,
                                        zero_shot_paper)

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
        from fewshot.core import registry

        defaults = registry.learner(run["learner"]).hparams
    except FewshotError:
        defaults = {}
    chosen = json.loads(run.get("extra") or "{}").get("selection", {}).get("chosen", {})
    changed = [f"{k}={v}" for k, v in sorted(hp.items()) if k in defaults and defaults[k] != v and k not in chosen]
    if chosen:
        changed.append(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
                       + " chosen on val")
    adapt = json.loads(run.get("extra") or "{}").get("adapt")
    shown = run["learner"] + (f" + {adapt}" if adapt else "")
    return shown + (f" ({', '.join(changed)})" if changed else "")


def _shift(run: dict[str, Any]) -> str:
    extra = json.loads(run.get("extra") or "{}")
    return f"{extra['source']} → {extra['target']}" if extra.get("source") else ""


PER_INSTANCE = """
## Per-instance protocol (Santoro et al. 2016)

`fewshot eval --per-instance`: each test sequence shows the classes' images in a random order and the learner
predicts each label before it is given. Accuracy in percent (± 95% interval over sequences) at the k-th
presentation of a class; the paper's MANN and the human figures it quotes are below the measured rows.

"""
PRESENTATIONS = (1, 2, 3, 4, 5, 10)


def _mode(run: dict[str, Any]) -> str:
    return json.loads(run.get("extra") or "{}").get("mode", "episodic")


def _side(run: dict[str, Any]) -> str:
    return json.loads(run.get("extra") or "{}").get("side", "")


def _latest(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[tuple, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        latest[(_label(run), run.get("train_budget"), _mode(run), _side(run), _shift(run), *(run[k] for k in CELL))] = run
    return list(latest.values())


ALL_CLASSES = """
## Zero-shot, every test class at once (Xian et al. 2018's protocols)

`fewshot eval --ways all --shots 0`: every test image is labelled among all the test split's classes, known by
their descriptions (the side column) alone. zsl: per-class mean accuracy on the unseen classes, ± 1.96 standard
errors over classes. gzsl: the label space holds seen and unseen classes; S and U are the per-class mean
accuracies on the seen and unseen classes' test images, H = 2SU / (S + U) (its interval by the delta method).
Hyperparameters marked "chosen on val" were chosen on the validation classes.

"""


def all_classes_rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The all-classes zero-shot runs, with Xian et al.'s figures beside imported xlsa17 datasets."""
    table = []
    for run in _latest([r for r in runs if _mode(r) == "all-classes"]):
        scores = {k: 100 * v for k, v in json.loads(run["extra"]).get("scores", {}).items()}
        row = {"dataset": run["dataset"], "protocol": run["protocol"], "side": _side(run), "classes": run["ways"],
               "shots": run["shots"], "learner": _label(run)}
        if "harmonic" in scores:
            row.update({"per-class accuracy % / S": f"{scores['seen']:.2f} ± {scores['seen_ci95']:.2f}",
                        "U": f"{scores['unseen']:.2f} ± {scores['unseen_ci95']:.2f}",
                        "H": f"{scores['harmonic']:.2f} ± {scores['ci95']:.2f}"})
        else:
            row.update({"per-class accuracy % / S": f"{100 * run['mean']:.2f} ± {100 * run['ci95']:.2f}",
                        "U": "", "H": ""})
        paper = zero_shot_paper(run["learner"], run["dataset"], run["protocol"])
        if paper is None:
            row["published"] = ""
        elif "harmonic" in paper:
            row["published"] = f"S {paper['seen']:g}, U {paper['unseen']:g}, H {paper['harmonic']:g} ({XIAN_2018})"
        else:
            row["published"] = f"{paper['mean']:g} ({XIAN_2018})"
        row.update({"training": run.get("train_budget") or "none", "run": run["id"], "_sort": -run["mean"]})
        table.append(row)
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    frame = frame.sort_values(["dataset", "protocol", "side", "_sort"], ignore_index=True)
    return frame.drop(columns="_sort")


ADAPTATION = """
## Unsupervised domain adaptation (`--protocol uda`)

`fewshot eval --learner finetune --dataset digits --source S --target T --adapt METHOD`: trained on labelled
source images and unlabelled target training images, scored on every target test image (in fixed seeded batches
of 100, so `fewshot compare` pairs two runs image batch by image batch). One row per shift and method: the mean
over the seeds shown, ± the 95% interval of that mean over seeds (Student's t), then each seed's accuracy;
"target-only" is the ceiling, the same network trained on the labelled target training images. Network: Ganin et
al.'s LeNet (network lenet-bn: the same with batch norm, which AdaBN needs). A seed's figure depends on the
device that trained it (and, on a CPU, on the number of threads), so the device is shown.

"""


def adaptation_rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The image-scored domain adaptation runs, one row per shift and method over seeds, with the papers' figures."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in _latest([r for r in runs if _mode(r) == "images"]):
        extra = json.loads(run["extra"])
        method = "target-only" if run["protocol"] == "target-only" else extra.get("adapt", "none")
        key = (run["dataset"], extra.get("source"), extra.get("target"), run["protocol"], _label(run), method,
               run.get("train_budget"))
        groups.setdefault(key, []).append(run)
    table = []
    for (dataset, source, target, protocol, label, method, budget), group in groups.items():
        group = sorted(group, key=lambda r: r["seed"])
        values = np.array([100 * r["mean"] for r in group])
        half = _t95(len(values)) * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        paper = None if "(" in label else \
            adaptation_paper(protocol, source, target, "none" if method == "target-only" else method)  # papers' settings only
        table.append({"dataset": dataset, "shift": f"{source} → {target}",
                      "method": "target-only (ceiling)" if method == "target-only" else method,
                      "learner": label, "accuracy % (mean over seeds ± 95%)":
                          f"{values.mean():.2f} ± {half:.2f}" if len(values) > 1 else f"{values.mean():.2f}",
                      "seeds": ", ".join(f"{v:.2f}" for v in values),
                      "published": f"{paper[0]:g} ({paper[1]})" if paper else "",
                      "training": budget or "none",
                      "device": ", ".join(sorted({r.get("device") or "?" for r in group})),
                      "runs": ", ".join(str(r["id"]) for r in group),
                      "_sort": (source, target, method != "none", method == "target-only", -values.mean())})
    table.sort(key=lambda row: row.pop("_sort"))
    return pd.DataFrame(table)


def _t95(n: int) -> float:
    """The two-sided 95% quantile of Student's t with n - 1 degrees of freedom (n samples)."""
    table = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
    return table.get(n, 1.96 if n > 30 else 2.2)


def presentation_rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """The per-instance runs: accuracy at the k-th presentation, beside the paper's figures for the same shape."""
    table, cells = [], []
    for run in _latest([r for r in runs if _mode(r) == "per-instance"]):
        extra = json.loads(run["extra"])
        row = {"dataset": run["dataset"], "protocol": run["protocol"], "classes": run["ways"],
               "instances": run["shots"], "learner": _label(run)}
        for k in PRESENTATIONS:
            if k <= run["shots"]:
                mean, ci = 100 * extra["presentation_accuracy"][k - 1], 100 * extra["presentation_ci95"][k - 1]
                row[f"{_ordinal(k)}"] = f"{mean:.1f} ± {ci:.1f}"
        row.update({"sequences": run["episodes"], "training": run.get("train_budget") or "none", "run": run["id"]})
        table.append(row)
        cells.append((run["dataset"], run["protocol"], run["ways"], run["shots"]))
    for dataset, protocol, ways, instances in sorted(set(cells)):
        for who, values in presentation_references(dataset, ways, instances):
            table.append({"dataset": dataset, "protocol": protocol, "classes": ways, "instances": instances,
                          "learner": who, **{_ordinal(k): f"{v:.1f}" for k, v in values.items()},
                          "sequences": "", "training": "", "run": ""})
    frame = pd.DataFrame(table)
    return frame.fillna("") if not frame.empty else frame


def _ordinal(k: int) -> str:
    return f"{k}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(k, 'th') }"


def _protocol(run: dict[str, Any]) -> str:
    """The run's protocol, with the learner's note on how it meets the episodes (MANN's sequence, say)."""
    note = json.loads(run.get("extra") or "{}").get("protocol_note")
    if note is None:  # recorded before runs kept their note: the learner's current one
        try:
            from fewshot.core import registry

            note = registry.learner(run["learner"]).protocol_note
        except FewshotError:
            note = ""
    side, shift = _side(run), _shift(run)
    shown = f"{run['protocol']} ({note})" if note else run["protocol"]
    shown = f"{shown}, {shift}" if shift else shown
    return f"{shown}, described by {side}" if side else shown


def rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    table = []
    for run in _latest([r for r in runs if _mode(r) == "episodic"]):
        report = json.loads(run.get("extra") or "{}").get("report", "accuracy")
        mean, ci = 100 * run["mean"], 100 * run["ci95"]
        shifted = bool(_shift(run))  # a domain shift is not the paper's cell
        paper = None if shifted else paper_accuracy(run["learner"], run["dataset"], run["protocol"], run["ways"],
                                                    run["shots"])
        refs = [] if shifted else references_for(run["dataset"], run["protocol"])
        published = f"{paper[0]:g} ({paper[1]})" if paper else "; ".join(f"{who} {err:g}% error" for who, err in refs)
        table.append({
            "dataset": run["dataset"], "protocol": run["protocol"], "ways": run["ways"], "shots": run["shots"],
            "queries": run["queries"], "learner": _label(run),
            "result": f"{100 - mean:.2f} ± {ci:.2f} error" if report == "error" else f"{mean:.2f} ± {ci:.2f}",
            "mean": round(mean, 4), "ci95": round(ci, 4), "paper": published, "episodes": run["episodes"],
            "seed": run["seed"], "training": f"{run.get('train_budget') or 'none'}",
            "device": run.get("device"), "run": run["id"], "protocol_shown": _protocol(run),
        })
    frame = pd.DataFrame(table)
    if frame.empty:
        return frame
    return frame.sort_values(["dataset", "protocol", "ways", "shots", "mean"], ascending=[True, True, True, True, False],
                             ignore_index=True)


def render(runs: list[dict[str, Any]], fmt: str) -> str:
    frame, sequences, everything = rows(runs), presentation_rows(runs), all_classes_rows(runs)
    adapted = adaptation_rows(runs)
    if frame.empty and sequences.empty and everything.empty and adapted.empty:
        return "no runs recorded yet: `fewshot eval --learner protonet --ways 5 --shots 1` records one\n"
    if fmt == "csv":
        return "\n".join(part.to_csv(index=False) for part in (frame, everything, adapted, sequences) if not part.empty)
    shown = frame[["dataset", "protocol_shown", "ways", "shots", "learner", "result", "paper", "episodes", "training",
                   "run"]] if not frame.empty else frame
    shown = shown.rename(columns={"protocol_shown": "protocol", "result": "accuracy % (± 95% interval)",
                                  "paper": "published"})
    if fmt == "md":
        text = LEGEND.format(runs=len(runs)) + (_markdown(shown) + "\n" if not shown.empty else "")
        text += (ALL_CLASSES + _markdown(everything) + "\n") if not everything.empty else ""
        text += (ADAPTATION + _markdown(adapted) + "\n") if not adapted.empty else ""
        return text + (PER_INSTANCE + _markdown(sequences) + "\n" if not sequences.empty else "")
    return _html(frame, shown, sequences, everything)


def _markdown(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _html(frame: pd.DataFrame, shown: pd.DataFrame, sequences: pd.DataFrame, everything: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    for (dataset, protocol, ways, shots), group in (frame.groupby(["dataset", "protocol", "ways", "shots"], sort=True)
                                                if not frame.empty else []):
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
            "<h1>fewshot leaderboard</h1>" + shown.to_html(index=False, escape=True) + "".join(figures)
            + ("<h2>Zero-shot, every test class at once</h2>" + everything.to_html(index=False, escape=True)
               if not everything.empty else "")
            + ("<h2>Per-instance protocol (Santoro et al. 2016)</h2>" + sequences.to_html(index=False, escape=True)
               if not sequences.empty else "") + "</body></html>\n")


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
