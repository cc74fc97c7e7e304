"""Learners and datasets by name, through entry points.

Built-ins register in the project's ``pyproject.toml`` under the same
entry-point groups a third-party package uses (``fewshot.learners``,
``fewshot.datasets``, ``fewshot.adaptations``, ``fewshot.protocols``, ``fewshot.importers``), so a plug-in is
found exactly like a built-in. A class may also be registered by a Python call (:func:`register`, behind
``fewshot.register_learner``), for a notebook: such a registration lasts as long as the process and is
found beside the entry points. Datasets imported into the cache (``fewshot data import``) are found by
name beside the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any, cast

from fewshot.core.dataset import Dataset, Importer, import_record, imported_names
from fewshot.core.errors import FewshotError

GROUPS = {
    "learner": "fewshot.learners",
    "dataset": "fewshot.datasets",
    "adaptation": "fewshot.adaptations",
    "protocol": "fewshot.protocols",
    "importer": "fewshot.importers",
}

# Classes registered in this process by ``register``: kind -> name -> class.
_IN_PROCESS: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}


@cache
def _entries(kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in entry_points(group=GROUPS[kind]):
        if entry.name in found and found[entry.name].value != entry.value:
            raise FewshotError(
                f"two {kind}s are registered as {entry.name!r}: {found[entry.name].value} and {entry.value}"
            )
        found[entry.name] = entry
    return found


def names(kind: str) -> list[str]:
    return sorted({*_entries(kind), *_IN_PROCESS[kind]})


def register(kind: str, name: str, obj: Any) -> None:
    """Register ``obj`` as ``name`` in this process only; a name already taken (by an entry point or an
    earlier registration) is an error that lists the taken names."""
    if name in _entries(kind) or name in _IN_PROCESS[kind]:
        raise FewshotError(
            f"a {kind} is already registered as {name!r}: choose another name (taken: {', '.join(names(kind))})"
        )
    _IN_PROCESS[kind][name] = obj


def unregister(kind: str, name: str) -> None:
    """Forget a registration made by :func:`register` (entry points cannot be unregistered)."""
    if name not in _IN_PROCESS[kind]:
        registered = ", ".join(sorted(_IN_PROCESS[kind])) or "none"
        raise FewshotError(f"no {kind} {name!r} was registered in this process (registered: {registered})")
    del _IN_PROCESS[kind][name]


def imported_datasets() -> list[str]:
    """The datasets imported into the cache, but for any a registered dataset's name hides."""
    registered = set(names("dataset"))
    return [name for name in imported_names() if name not in registered]


def get(kind: str, name: str) -> Any:
    """The registered class; an unknown name lists the known ones."""
    if name in _IN_PROCESS[kind]:
        return _IN_PROCESS[kind][name]
    entries = _entries(kind)
    if name not in entries:
        known = ", ".join(names(kind)) or "none (is fewshot installed? `pip install .`)"
        imported = ", ".join(imported_datasets()) if kind == "dataset" else ""
        also = f"; imported: {imported}" if imported else ""
        raise FewshotError(f"unknown {kind} {name!r}: known {kind}s are {known}{also} (see `fewshot {kind}s`)")
    try:
        return entries[name].load()
    except Exception as err:  # a broken plug-in must not take the whole command line down with a traceback
        raise FewshotError(
            f"{kind} {name!r} could not be loaded from {entries[name].value}: {type(err).__name__}: {err}"
        ) from err


def learner(name: str) -> Any:
    return get("learner", name)


def adaptation(name: str) -> Any:
    return get("adaptation", name)


def protocol(name: str) -> Any:
    return get("protocol", name)


def importer(name: str) -> Importer:
    """The importer registered as format ``name`` (`fewshot data import FORMAT`)."""
    return _checked("importer", name, Importer)()


def default_dataset() -> str:
    """The name of the one registered dataset that declares itself the default (``Dataset.default``)."""
    chosen = [name for name in names("dataset") if dataset_class(name).default]
    if len(chosen) != 1:
        said = "none" if not chosen else " and ".join(chosen)
        raise FewshotError(
            f"--dataset is required: {said} of the registered datasets is the default (see `fewshot datasets`)"
        )
    return chosen[0]


def dataset_class(name: str) -> type[Dataset]:
    """The class registered as dataset ``name``, checked to implement the dataset interface."""
    return _checked("dataset", name, Dataset)


def _checked(kind: str, name: str, interface: type) -> Any:
    cls = get(kind, name)
    if not (isinstance(cls, type) and issubclass(cls, interface)):
        raise FewshotError(
            f"{kind} {name!r} ({cls!r}) does not subclass {interface.__module__}.{interface.__name__}: "
            f"the engine reads {kind}s only through that interface"
        )
    return cls


def dataset(name: str) -> Dataset:
    """The dataset registered as ``name``; ``family:NAME`` (``xlsa17:AWA2``) is one of a family's imported
    datasets; a name no dataset is registered as is looked up among the imported ones (`fewshot data import`),
    whose record names the importer (the format) that reads it."""
    family, sep, variant = name.partition(":")
    if not sep and family not in names("dataset"):
        record = import_record(name)
        if record is not None:
            if record["format"] not in names("importer"):
                raise FewshotError(f"{name} was imported by the {record['format']!r} importer, which is not installed")
            return importer(record["format"]).dataset(name, record)
    cls = dataset_class(family)
    if not sep:
        return cls()
    if not cls.variants:
        raise FewshotError(f"dataset {family!r} has no variants: write --dataset {family}")
    if not variant:
        raise FewshotError(f"--dataset {name!r}: name the imported dataset after the colon, as in {family}:AWA2")
    # A dataset that declares variants takes the variant's name (Dataset.variants).
    return cast(Callable[[str], Dataset], cls)(variant)
