"""What the importers' tests put in a pickle to spoil it: a payload that would run a command when loaded, a class
of the tests' own, and a dict with a key left out."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class Payload:
    """Unpickled, it would create ``marker``: a test checks that it never does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Foreign:
    """A class of its own, as a pickle written by some other project's code would carry."""


def without(key: Any) -> Callable[[dict], dict]:
    return lambda content: {k: v for k, v in content.items() if k != key}
