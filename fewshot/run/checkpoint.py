"""Checkpoints: learner and optimiser state, RNG state and the training position, in one file.

Written atomically (a temporary file renamed into place) and read back with
``torch.load(weights_only=True)``, so a checkpoint can hold tensors and plain
containers only, never code. Because training batch ``t`` is a pure function of
(seed, t), the sampler position is just the step count.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from fewshot.core.data import atomic_write
from fewshot.core.errors import FewshotError

FORMAT = "fewshot-checkpoint/1"


def save(path: Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, **payload}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        atomic_write(Path(path), lambda f: f.write(buffer.getvalue()))
    except OSError as err:
        raise FewshotError(
            f"cannot write checkpoint {path}: {err}; choose a writable path or set FEWSHOT_CACHE"
        ) from err


def load(path: Path, learner: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint; ``learner`` is the name it must have been trained by."""
    path = Path(path)
    if not path.is_file():
        raise FewshotError(f"no checkpoint at {path}: check the path, or leave out --checkpoint to train one")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FewshotError(
            f"checkpoint {path} is corrupt or not a fewshot checkpoint ({first[:160]}); "
            f"train a new one with `fewshot train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FewshotError(
            f"checkpoint {path} is not a fewshot checkpoint (format {FORMAT} expected); train one with `fewshot train`"
        )
    if learner is not None and payload.get("learner") != learner:
        raise FewshotError(
            f"checkpoint {path} was trained by {payload.get('learner')!r}, not {learner!r}: "
            f"pass --learner {payload.get('learner')} or another checkpoint"
        )
    return payload


def restore(learner_module, payload: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's state into a freshly built learner, explaining any mismatch."""
    try:
        learner_module.load_training_state(payload["state"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0]
        raise FewshotError(
            f"checkpoint {path} does not fit this configuration ({first[:200]}); it was trained on "
            f"{payload.get('config', {}).get('dataset')}/{payload.get('config', {}).get('protocol')}"
        ) from None
