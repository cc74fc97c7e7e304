"""fewshot: a few-shot and meta-learning benchmark suite.

The engine lives here; datasets live in ``fewshot.tasks`` (the repository's
``tasks/`` folder), learners in ``fewshot.baselines`` (``baselines/``) and the
tables in ``fewshot.leaderboard`` (``leaderboard/``).

The Python API (``fewshot.api``) and the types a learner's author needs are
available here; they load on first use, so ``import fewshot`` (and the command
line's start) stays free of torch::

    import fewshot

    bench = fewshot.benchmark("glyphs", ways=5, shots=5)
    result = fewshot.evaluate(my_backbone_or_learner, bench)
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# In a source checkout that is imported without installing (``python -m fewshot``
# from the repository root), the card's folders sit beside this package rather
# than inside it; letting the package path include the repository root maps
# ``fewshot.tasks`` to ``tasks/`` exactly as the installed layout does.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "tasks", "__init__.py")) and not _os.path.isdir(
    _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "tasks")
):
    __path__.append(_root)

# Exported name -> the module that defines it, imported on first access.
_EXPORTS = {
    "benchmark": "fewshot.api",
    "evaluate": "fewshot.api",
    "register_learner": "fewshot.api",
    "unregister_learner": "fewshot.api",
    "EpisodeSet": "fewshot.api",
    "Result": "fewshot.api",
    "Learner": "fewshot.core.learner",
    "TaskSpec": "fewshot.core.learner",
    "EpisodeBatches": "fewshot.core.learner",
    "ImageBatches": "fewshot.core.learner",
    "Episode": "fewshot.core.episode",
    "LabelledImages": "fewshot.core.episode",
    "FewshotError": "fewshot.core.errors",
}

__all__ = [
    "Episode",
    "EpisodeBatches",
    "EpisodeSet",
    "FewshotError",
    "ImageBatches",
    "LabelledImages",
    "Learner",
    "Result",
    "TaskSpec",
    "__version__",
    "benchmark",
    "evaluate",
    "register_learner",
    "unregister_learner",
]

if TYPE_CHECKING:
    from fewshot.api import EpisodeSet, Result, benchmark, evaluate, register_learner, unregister_learner
    from fewshot.core.episode import Episode, LabelledImages
    from fewshot.core.errors import FewshotError
    from fewshot.core.learner import EpisodeBatches, ImageBatches, Learner, TaskSpec


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fewshot' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
