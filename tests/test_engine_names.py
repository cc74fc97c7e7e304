"""The engine names no plug-in: a new learner, dataset, protocol or adaptation method touches one file.

Every string in the engine's code (not its docstrings) is checked against every
registered name: a string that *is* a name is a branch or a default on a plug-in
(``if kind == "images"``, ``default="glyphs"``); a learner or dataset name inside a
message is advice that goes stale ("choose finetune"). The plug-ins themselves
(``fewshot/protocols/``, ``baselines/``, ``tasks/``) and the papers' published
figures (``leaderboard/papers.py``, a table keyed by the names the papers use) are
not the engine.
"""

import ast
import re
from pathlib import Path

import pytest

from fewshot.core import registry

REPO = Path(__file__).resolve().parent.parent
# migrations.py translates the first edition's records, whose blobs hold the protocols' names: history, not a branch.
ENGINE = sorted(
    [p for p in (REPO / "fewshot").rglob("*.py") if "protocols" not in p.parts and p.name != "migrations.py"]
    + [p for p in (REPO / "leaderboard").glob("*.py") if p.name != "papers.py"]
)


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The strings of a module's code, less its docstrings and the keys of dicts and subscripts (``z["images"]``
    reads an array, it does not name a protocol)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
        elif isinstance(node, ast.Dict):
            skipped.update(id(key) for key in node.keys if key is not None)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped
    ]


def _names() -> dict[str, str]:
    found = {}
    for kind in registry.GROUPS:
        for name in registry.names(kind):
            found[name] = kind
    return found


def test_the_engine_is_known():
    assert len(ENGINE) > 20 and any(p.name == "experiment.py" for p in ENGINE)
    assert {"episodic", "images", "protonet", "glyphs", "dann"} <= set(_names())


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(REPO)))
def test_no_engine_module_names_a_plug_in(path):
    names = _names()
    wordy = {n for n, kind in names.items() if kind in ("learner", "dataset")}
    found = []
    for line, text in _code_strings(path):
        for name in names:
            if text == name or (name in wordy and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)):
                found.append(f"line {line}: {names[name]} {name!r} in {text!r}")
    assert not found, "\n".join(found)
