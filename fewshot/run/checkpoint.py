"""Checkpoints: learner and optimiser state, RNG state and the training position, in one file.

Written atomically (a temporary file renamed into place) and read back with
``torch.load(weights_only=True)``, so a checkpoint can hold tensors and plain
containers only, never code. Because training batch ``t`` is a pure function of
(seed, t), the sampler position is just the step count.

``torch.save`` writes a zip archive with a CRC-32 per member, which
``torch.load`` never checks: a flipped byte in the weights loads silently.
:func:`read` checks every CRC first (about 1 ms per MB), so a damaged
checkpoint is refused, or, when it is a cached one, trained anew.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from fewshot.core.data import DamagedFile, atomic_write, first_line, notice, verify_zip
from fewshot.core.errors import FewshotError

FORMAT = "fewshot-checkpoint/1"
# The type of each field a checkpoint may hold, checked on load: a colleague's file is read, not trusted.
FIELDS: dict[str, type | tuple[type, ...]] = {
    "learner": str,
    "complete": bool,
    "step": int,
    "elapsed": (int, float),
    "config": dict,
    "hparams": dict,
    "history": list,
    "state": dict,
    "rng": torch.Tensor,
}


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


class Unusable(FewshotError):
    """A checkpoint that cannot be used; ``reason`` says why, the message also how to fix it."""

    def __init__(self, path: Path, reason: str, fix: str):
        super().__init__(f"checkpoint {path} {reason}; {fix}")
        self.reason = reason


def load(path: Path, learner: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint; ``learner`` is the name it must have been trained by."""
    path = Path(path)
    if not path.is_file():
        raise FewshotError(f"no checkpoint at {path}: check the path, or leave out --checkpoint to train one")
    try:
        payload = read(path)
    except DamagedFile as err:
        raise Unusable(
            path, f"is corrupt or not a fewshot checkpoint: {err}", "train a new one with `fewshot train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise Unusable(
            path, f"is not a fewshot checkpoint (format {FORMAT} expected)", "train one with `fewshot train`"
        )
    wrong = next((k for k, kind in FIELDS.items() if k in payload and not isinstance(payload[k], kind)), None)
    if wrong is not None:
        raise Unusable(
            path,
            f"is not a fewshot checkpoint (its {wrong} is a {type(payload[wrong]).__name__})",
            "train one with `fewshot train`",
        )
    if learner is not None and payload.get("learner") != learner:
        raise Unusable(
            path,
            f"was trained by {payload.get('learner')!r}, not {learner!r}",
            f"pass --learner {payload.get('learner')} or another checkpoint",
        )
    return payload


def load_cached(path: Path, learner: str) -> dict[str, Any]:
    """A checkpoint of the cache, or ``{}`` after a line on stderr when it is unusable: it is trained anew."""
    try:
        return load(path, learner)
    except Unusable as err:
        notice(f"the cached checkpoint {path} {err.reason}; training it anew")
        return {}


def read(path: Path) -> Any:
    """What ``torch.save`` wrote to ``path``: every member's CRC-32 checked first, then only tensors and plain
    containers unpickled, torch's warnings silenced. Anything wrong raises :class:`DamagedFile` saying what."""
    verify_zip(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before it refuses a file
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        message = str(err)
        if "Unsupported global" in message:  # torch's explanation runs to paragraphs; its reason is one line
            reason = next(line for line in message.splitlines() if "Unsupported global" in line)
            raise DamagedFile(f"it holds code, not only tensors: {first_line(reason.strip())}") from None
        raise DamagedFile(f"{type(err).__name__}: {first_line(err)}") from None


def restore(learner_module, payload: dict[str, Any], path: Path) -> None:
    """Load a checkpoint's state into a freshly built learner, explaining any mismatch."""
    try:
        learner_module.load_training_state(payload["state"])
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
        raise FewshotError(
            f"checkpoint {path} does not fit this configuration ({first_line(err)}); it was trained on "
            f"{payload.get('config', {}).get('dataset')}/{payload.get('config', {}).get('protocol')}"
        ) from None
