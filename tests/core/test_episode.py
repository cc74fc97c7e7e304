import pytest
import torch

from fewshot.core.episode import Episode, grouped_labels, random_episode


def _episode(**changes):
    fields = {
        "support_x": torch.zeros(10, 1, 4, 4),
        "support_y": grouped_labels(5, 2),
        "query_x": torch.zeros(15, 1, 4, 4),
        "query_y": grouped_labels(5, 3),
        "class_ids": torch.arange(5),
    }
    fields.update(changes)
    return Episode(**fields)


def test_shape_properties():
    episode = _episode()
    assert (episode.ways, episode.shots, episode.queries) == (5, 2, 3)
    embedded = episode.map_inputs(lambda x: x.flatten(1))
    assert embedded.support_x.shape == (10, 16) and embedded.query_y is episode.query_y
    assert _episode(support_x=torch.zeros(0, 1, 4, 4), support_y=torch.zeros(0, dtype=torch.long)).shots == 0


def test_an_all_classes_query_set_may_hold_any_number_of_images_per_class():
    episode = _episode(
        support_x=torch.zeros(0, 1, 4, 4),
        support_y=torch.zeros(0, dtype=torch.long),
        query_x=torch.zeros(7, 1, 4, 4),
        query_y=torch.tensor([0, 0, 0, 1, 2, 4, 4]),
    )
    assert episode.query_y.numel() == 7 and episode.ways == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"support_y": grouped_labels(5, 3)},
        {"query_x": torch.zeros(14, 1, 4, 4)},
        {"support_x": torch.zeros(9, 1, 4, 4), "support_y": torch.zeros(9, dtype=torch.long)},
        {"class_ids": torch.arange(0)},
        {"side": torch.zeros(4, 3)},
        {"query_y": torch.zeros(15, 1, dtype=torch.long)},
    ],
)
def test_malformed_episodes_are_refused(changes):
    with pytest.raises(ValueError):
        _episode(**changes)


def test_a_random_episode_is_fixed_by_its_seed_and_shaped_by_its_cell():
    episode = random_episode(4, 2, 3, seed=5)
    assert episode.support_x.shape == (8, 1, 28, 28) and episode.query_x.shape == (12, 1, 28, 28)
    assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(episode.query_x, random_episode(4, 2, 3, seed=5).query_x)
    assert not torch.equal(episode.query_x, random_episode(4, 2, 3, seed=6).query_x)
