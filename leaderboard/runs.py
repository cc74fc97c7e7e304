"""What every leaderboard section needs of a recorded run: its label, its shift, the latest run of each row.

A run is a row of the results store (``fewshot.records.store``), read through
its columns; no section parses a blob.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any

from fewshot.core.errors import FewshotError

CELL = ("dataset", "protocol", "split", "ways", "shots", "queries", "episodes", "seed")


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON-valued column (hparams, selection, adaptation_hparams) as a dict."""
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def label(run: dict[str, Any]) -> str:
    """The learner's name, its adaptation method, and the hyperparameters that differ from its defaults."""
    hp = as_dict(run["hparams"])
    try:
        from fewshot.core import registry

        cls = registry.learner(run["learner"])
        defaults, renamed = cls.hparams, cls.renamed_hparams
        hp = {renamed.get(k, k): v for k, v in hp.items()}
        hp.update({k: defaults[k] for k, v in cls.recorded_defaults.items() if hp.get(k) == v})
    except FewshotError:
        defaults = {}
    chosen = as_dict(run.get("selection")).get("chosen", {})
    changed = [f"{k}={v}" for k, v in sorted(hp.items()) if k in defaults and defaults[k] != v and k not in chosen]
    if chosen:
        changed.append(
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
            + " chosen on val"
        )
    if run.get("train_budget") == "0steps":  # --allow-untrained: the network as initialised
        changed.insert(0, "untrained")
    adaptation = run.get("adaptation") or "none"
    if adaptation != "none":
        try:
            from fewshot.core import registry

            method_defaults = registry.adaptation(adaptation).hparams
        except FewshotError:
            method_defaults = {}
        method_hp = as_dict(run.get("adaptation_hparams"))
        changed += [
            f"{adaptation}.{k}={v}"
            for k, v in sorted(method_hp.items())
            if k in method_defaults and method_defaults[k] != v
        ]
    shown = run["learner"] + (f" + {adaptation}" if adaptation != "none" else "")
    return shown + (f" ({', '.join(changed)})" if changed else "")


def chosen_on(run: dict[str, Any]) -> str:
    """The regimes that chose the defaults a run kept (``training-domain``, ``oracle``, ``val-classes``), or ""."""
    defaults = as_dict(run.get("selection")).get("defaults") or {}
    return ", ".join(sorted({str(how).split(":", 1)[0] for how in defaults.values()}))


def shift(run: dict[str, Any]) -> str:
    """``source → target`` for a run across a domain shift, else empty."""
    return f"{run['source']} → {run['target']}" if run.get("source") else ""


def protocol_shown(run: dict[str, Any]) -> str:
    """The dataset's protocol, with the learner's note on how it meets the episodes, the shift and the side."""
    note = run.get("protocol_note") or ""
    shown = f"{run['protocol']} ({note})" if note else run["protocol"]
    shown = f"{shown}, {shift(run)}" if shift(run) else shown
    return f"{shown}, described by {run['side']}" if run.get("side") else shown


def latest(runs: list[dict[str, Any]], *more: Callable[[dict[str, Any]], Hashable]) -> list[dict[str, Any]]:
    """The latest run of each configuration (label, budget, side, shift, cell, and ``more`` keys)."""
    found: dict[tuple, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        key = (
            label(run),
            run.get("train_budget"),
            run.get("side"),
            shift(run),
            *(run[k] for k in CELL),
            *(f(run) for f in more),
        )
        found[key] = run
    return list(found.values())


def percent(value: float, half: float) -> str:
    return f"{100 * value:.2f} ± {100 * half:.2f}"
