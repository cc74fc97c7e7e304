"""Learners and datasets by name, through entry points.

Built-ins register in the project's ``pyproject.toml`` under the same
entry-point groups a third-party package uses (``fewshot.learners``,
``fewshot.datasets``, ``fewshot.adaptations``, ``fewshot.protocols``), so a plug-in is found exactly like a
built-in. A class may also be registered by a Python call (:func:`register`, behind
``fewshot.register_learner``), for a notebook: such a registration lasts as
long as the process and is found beside the entry points.
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from fewshot.core.errors import FewshotError

GROUPS = {"learner": "fewshot.learners", "dataset": "fewshot.datasets", "adaptation": "fewshot.adaptations",
          "protocol": "fewshot.protocols"}

# Classes registered in this process by ``register``: kind -> name -> class.
_IN_PROCESS: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}


@lru_cache(maxsize=None)
def _entries(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in entry_points(group=GROUPS[kind]):
        if entry.name in found and found[entry.name].value != entry.value:
            raise FewshotError(f"two {kind}s are registered as {entry.name!r}: {found[entry.name].value} and {entry.value}")
        found[entry.name] = entry
    return found


def names(kind: str) -> list[str]:
    return sorted({*_entries(kind), *_IN_PROCESS[kind]})


def register(kind: str, name: str, obj: Any) -> None:
    """Register ``obj`` as ``name`` in this process only; a name already taken (by an entry point or an
    earlier registration) is an error that lists the taken names."""
    if name in _entries(kind) or name in _IN_PROCESS[kind]:
        raise FewshotError(f"a {kind} is already registered as {name!r}: choose another name "
                           f"(taken: {', '.join(names(kind))})")
    _IN_PROCESS[kind][name] = obj


def unregister(kind: str, name: str) -> None:
    """Forget a registration made by :func:`register` (entry points cannot be unregistered)."""
    if name not in _IN_PROCESS[kind]:
        registered = ", ".join(sorted(_IN_PROCESS[kind])) or "none"
        raise FewshotError(f"no {kind} {name!r} was registered in this process (registered: {registered})")
    del _IN_PROCESS[kind][name]


def get(kind: str, name: str) -> Any:
    """The registered class; an unknown name lists the known ones."""
    if name in _IN_PROCESS[kind]:
        return _IN_PROCESS[kind][name]
    entries = _entries(kind)
    if name not in entries:
        known = ", ".join(names(kind)) or "none (is fewshot installed? `pip install .`)"
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
