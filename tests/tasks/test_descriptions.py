import zlib

import numpy as np
import pytest
import torch

from fewshot.tasks.descriptions import hashed_text_embedding, text_features, zero_shot_split


def test_text_features_are_words_and_bounded_character_trigrams():
    assert text_features("Ab C") == ["w:ab", "c:<ab", "c:ab>", "w:c", "c:<c>"]


def test_the_text_embedding_is_signed_crc32_hashing_normalised():
    # CRC-32, not Python's salted hash, so the embedding is the same in every process.
    expected = torch.zeros(64)
    for feature in ("w:ab", "c:<ab", "c:ab>"):
        code = zlib.crc32(feature.encode())
        expected[code % 64] += 1.0 if code >> 31 else -1.0
    embedding = hashed_text_embedding(["AB", "LATIN SMALL LETTER A WITH ACUTE"], dim=64)
    assert torch.allclose(embedding[0], expected / expected.norm())
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2))


def test_names_that_share_words_are_closer_than_names_that_do_not():
    e = hashed_text_embedding(
        ["LATIN SMALL LETTER E WITH ACUTE", "LATIN SMALL LETTER A WITH ACUTE", "GEORGIAN LETTER CIL"]
    )
    assert e[0] @ e[1] > 0.5 > e[0] @ e[2]


def _attributes(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_every_unseen_class_is_a_new_combination_of_seen_values():
    generator = torch.Generator().manual_seed(0)
    attributes = (torch.rand(300, 40, generator=generator) < 0.15).float()
    split = zero_shot_split(attributes, unseen=40, val=20, seed=3)
    train, val, test = split["train"], split["val"], split["test"]
    assert len(test) == 40 and len(val) == 20
    assert not set(train) & set(test) and not set(train) & set(val) and not set(val) & set(test)
    seen = attributes[train].sum(0) > 0
    for c in np.concatenate([val, test]):
        assert seen[attributes[c].bool()].all()
    assert zero_shot_split(attributes, 40, 20, seed=3)["test"].tolist() == test.tolist()
    assert zero_shot_split(attributes, 40, 20, seed=4)["test"].tolist() != test.tolist()


def test_classes_with_identical_descriptions_take_no_role():
    attributes = _attributes([[1, 0, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [0, 1, 0]])
    split = zero_shot_split(attributes, unseen=1, val=0, seed=0)
    everything = np.concatenate(list(split.values()))
    assert 0 not in everything and 1 not in everything and len(everything) == 4


def test_asking_for_more_unseen_classes_than_qualify_is_an_error():
    attributes = _attributes([[1, 0], [0, 1], [1, 1]])
    with pytest.raises(ValueError, match="can be unseen"):
        zero_shot_split(attributes, unseen=3, val=0, seed=0)
