"""fewshot: a few-shot and meta-learning benchmark suite.

The engine lives here; datasets live in ``fewshot.tasks`` (the repository's
``tasks/`` folder), learners in ``fewshot.baselines`` (``baselines/``) and the
tables in ``fewshot.leaderboard`` (``leaderboard/``).
"""
import os as _os

__version__ = "0.1.0"

# In a source checkout that is imported without installing (``python -m fewshot``
# from the repository root), the card's folders sit beside this package rather
# than inside it; letting the package path include the repository root maps
# ``fewshot.tasks`` to ``tasks/`` exactly as the installed layout does.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "tasks", "__init__.py")) and not _os.path.isdir(
    _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "tasks")
):
    __path__.append(_root)  # type: ignore[name-defined]
