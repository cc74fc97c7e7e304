"""Learners and datasets by name, through entry points.

Built-ins register in the project's ``pyproject.toml`` under the same
entry-point groups a third-party package uses (``fewshot.learners``,
``fewshot.datasets``, ``fewshot.adaptations``, ``fewshot.protocols``), so a plug-in is found exactly like a built-in.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from fewshot.core.errors import FewshotError

GROUPS = {"learner": "fewshot.learners", "dataset": "fewshot.datasets", "adaptation": "fewshot.adaptations",
          "protocol": "fewshot.protocols"}


@lru_cache(maxsize=None)
def _entries(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in entry_points(group=GROUPS[kind]):
        if entry.name in found and found[entry.name].value != entry.value:
            raise FewshotError(f"two {kind}s are registered as {entry.name!r}: {found[entry.name].value} and {entry.value}")
        found[entry.name] = entry
    return found


def names(kind: str) -> list[str]:
    return sorted(_entries(kind))


def get(kind: str, name: str) -> Any:
    """The registered class; an unknown name lists the known ones."""
    entries = _entries(kind)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none (is fewshot installed? `pip install .`)"
        raise FewshotError(f"unknown {kind} {name!r}: known {kind}s are {known} (see `fewshot {kind}s`)")
    try:
        return entries[name].load()
    except Exception as err:  # a broken plug-in must not take the whole command line down with a traceback
        raise FewshotError(f"{kind} {name!r} could not be loaded from {entries[name].value}: {type(err).__name__}: {err}") from err


def learner(name: str) -> Any:
    return get("learner", name)


def adaptation(name: str) -> Any:
    return get("adaptation", name)


def protocol(name: str) -> Any:
    return get("protocol", name)


def dataset(name: str) -> Any:
    """The dataset registered as ``name``; ``family:NAME`` (``xlsa17:AWA2``) is one of a family's imported datasets."""
    family, sep, variant = name.partition(":")
    cls = get("dataset", family)
    if not sep:
        return cls()
    if not getattr(cls, "variants", False):
        raise FewshotError(f"dataset {family!r} has no variants: write --dataset {family}")
    if not variant:
        raise FewshotError(f"--dataset {name!r}: name the imported dataset after the colon, as in {family}:AWA2")
    return cls(variant)
