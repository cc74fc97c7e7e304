"""Class descriptions for zero-shot learning, and the zero-shot class split.

A zero-shot learner knows an unseen class only by a description: an attribute
vector or an embedding of a text about it (``Episode.side``). This module
builds the offline text embedding and splits classes so that each unseen class
is a new combination of attribute values that all occur among the seen ones.

``hashed_text_embedding`` needs no model and no download: each text is the sum
of signed hashed features of its words and of its words' character trigrams
(with word boundaries), L2-normalised. The hash is CRC-32, so the embedding is
the same on every machine and Python run (Python's ``hash`` of a string is
salted per process).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import torch

TEXT_DIM = 1024


def text_features(text: str) -> list[str]:
    """The hashed features of a text: its lower-cased words and their character trigrams."""
    features = []
    for word in text.lower().split():
        features.append(f"w:{word}")
        padded = f"<{word}>"
        features.extend(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))
    return features


def hashed_text_embedding(texts: Sequence[str], dim: int = TEXT_DIM) -> torch.Tensor:
    """``[len(texts), dim]`` unit vectors: signed feature hashing of words and character trigrams."""
    out = torch.zeros(len(texts), dim)
    for i, text in enumerate(texts):
        for feature in text_features(text):
            code = zlib.crc32(feature.encode())
            out[i, code % dim] += 1.0 if (code >> 31) & 1 else -1.0
    return torch.nn.functional.normalize(out, dim=1)


def zero_shot_split(attributes: torch.Tensor, unseen: int, val: int, seed: int) -> dict[str, np.ndarray]:
    """Class indices for ``train`` (seen), ``val`` and ``test`` (unseen), fixed by ``seed``.

    Classes are taken in a seeded order; one moves out of the seen set when
    every one of its attributes still occurs in some other seen class, so each
    val and test class is a new combination of values all seen in training.
    Classes whose attribute vector equals another class's are left out of every
    role (no description could tell them apart). Raises ``ValueError`` when
    fewer than ``unseen + val`` classes qualify.
    """
    binary = attributes.bool().numpy()
    _, row_of, counts = np.unique(binary, axis=0, return_inverse=True, return_counts=True)
    kept = np.flatnonzero(counts[row_of.reshape(-1)] == 1)
    occurrences = binary[kept].sum(0)
    moved: list[int] = []
    for c in np.random.default_rng(seed).permutation(kept):
        if len(moved) == unseen + val:
            break
        if (occurrences[binary[c]] >= 2).all():
            occurrences[binary[c]] -= 1
            moved.append(int(c))
    if len(moved) < unseen + val:
        raise ValueError(
            f"only {len(moved)} classes can be unseen with all their attributes seen; {unseen + val} were asked for"
        )
    return {"train": np.setdiff1d(kept, moved), "val": np.sort(moved[unseen:]), "test": np.sort(moved[:unseen])}
