"""The evaluation protocols: which one scores a command line, and what each computes, on small exact cases."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fewshot.core import registry
from fewshot.core.data import Benchmark, ClassImages, ClassInfo, Split
from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner
from fewshot.core.protocol import Cell, Protocol, Words, choose
from fewshot.protocols.all_classes import per_class_accuracy
from fewshot.protocols.gzsl import GeneralizedZeroShot
from fewshot.protocols.images import Images
from fewshot.run.evaluation import EvalResult


def _bench(**changes) -> Benchmark:
    labels = torch.arange(6).repeat_interleave(4)
    data = ClassImages(
        torch.zeros(24, 1, 4, 4, dtype=torch.uint8), labels, tuple(ClassInfo(f"c{c}", "g") for c in range(6))
    )
    splits = {"train": Split.of([0, 1]), "val": Split.of([2]), "test": Split.of([3, 4, 5])}
    return Benchmark(**{"dataset": "toy", "protocol": "p", "data": data, "splits": splits, **changes})


@pytest.mark.parametrize(
    "changes, words, kind",
    [
        ({}, Words(ways=3, shots=1), "episodic"),
        ({}, Words(ways="all", shots=0), "all-classes"),
        ({"zero_shot": True}, Words(), "all-classes"),  # a zero-shot protocol scores every class unless told a number
        ({"zero_shot": True}, Words(ways=3), "episodic"),
        ({"evaluation": "gzsl", "zero_shot": True}, Words(), "gzsl"),
        ({"evaluation": "images"}, Words(), "images"),
        ({}, Words(ways=3, kind="per-instance"), "per-instance"),  # a protocol chosen by its flag
    ],
)
def test_exactly_one_protocol_scores_each_command_line(changes, words, kind):
    assert choose(_bench(**changes), words).kind == kind


def test_every_registered_protocol_implements_the_interface():
    for name in registry.names("protocol"):
        cls = registry.protocol(name)
        assert cls.kind == name and cls.summary and cls.unit
        for method in ("resolve", "evaluate", "report"):
            assert getattr(cls, method) is not getattr(Protocol, method), f"{name} must implement {method}"
        assert cls.flag_help or cls.matches is not Protocol.matches, f"{name} can never be chosen"


def test_a_protocol_fixes_what_it_scores_and_refuses_the_rest():
    cell = choose(_bench(evaluation="images", source="a", target="b"), Words()).resolve(
        _bench(evaluation="images", source="a", target="b"), Words()
    )
    assert (cell.kind, cell.ways, cell.episodes) == ("images", 2, 12)  # 2 training classes, 12 test images
    with pytest.raises(FewshotError, match="leave out --shots"):
        Images().resolve(_bench(evaluation="images"), Words(shots=1))
    with pytest.raises(FewshotError, match="--seed must be between 0 and 9223372036854775807"):
        choose(_bench(), Words(ways=3, shots=1, seed=-1)).resolve(_bench(), Words(ways=3, shots=1, seed=-1))


def test_accuracy_is_averaged_per_class_not_per_image():
    labels = torch.tensor([0, 0, 0, 0, 1])
    predicted = torch.tensor([0, 0, 0, 0, 0])  # 4 of 5 images right, but class 1 entirely wrong
    assert per_class_accuracy(predicted, labels, torch.tensor([0, 1])).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="class 2 has no test images"):
        per_class_accuracy(torch.tensor([0]), torch.tensor([0]), torch.tensor([0, 2]))


def test_generalized_zero_shot_scores_seen_and_unseen_classes_and_their_harmonic_mean():
    per_class = EvalResult(np.array([1.0, 0.5, 0.5, 0.0]), 1.0, "d", False)  # seen {0, 1}, unseen {2, 3}
    scores = GeneralizedZeroShot().scored(per_class, torch.tensor([True, True, False, False])).scores
    assert scores["seen"] == pytest.approx(0.75) and scores["unseen"] == pytest.approx(0.25)
    assert scores["harmonic"] == pytest.approx(0.375) and scores["mean"] == scores["harmonic"]
    s_half, u_half = 1.96 * np.std([1.0, 0.5], ddof=1) / 2**0.5, 1.96 * np.std([0.5, 0.0], ddof=1) / 2**0.5
    assert scores["ci95"] == pytest.approx(((0.125 * s_half) ** 2 + (1.125 * u_half) ** 2) ** 0.5)  # delta method
    with pytest.raises(FewshotError, match="seen and unseen"):
        GeneralizedZeroShot().scored(per_class, torch.zeros(4, dtype=torch.bool))


class _FirstPixelClassifier(Learner):
    """Classifies an image as the class row written in its first pixel (as a fraction of 255)."""

    def classify(self, x):
        return torch.nn.functional.one_hot((x[:, 0, 0, 0] * 255).round().long(), 3).float()


def test_images_are_scored_one_by_one_with_a_wilson_interval():
    bench = _bench(evaluation="images", source="a", target="b")
    bench.data.images[:, 0, 0, 0] = (bench.data.labels - 3).clamp(min=0).to(torch.uint8)  # its test class row...
    bench.data.images[12, 0, 0, 0] = 1  # ...except one test image of class 3 (row 0)
    cell = Images().resolve(bench, Words())
    setup = SimpleNamespace(bench=bench, cell=cell, name="toy", adapt="none")
    result = Images().evaluate(setup, _FirstPixelClassifier(None, {}), torch.device("cpu"))
    assert len(result.accuracies) == 12 and result.accuracies.sum() == 11  # one outcome per image
    assert set(np.unique(result.accuracies)) == {0.0, 1.0}
    low, high = result.scores["wilson_low"], result.scores["wilson_high"]
    assert low < 11 / 12 < high <= 1.0 and result.ci95 == pytest.approx((high - low) / 2)
    again = Images().evaluate(setup, _FirstPixelClassifier(None, {}), torch.device("cpu"))
    assert np.array_equal(again.accuracies, result.accuracies) and again.digest == result.digest


def test_a_protocol_option_without_its_protocol_is_refused():
    from fewshot.cli.app import protocol_words

    with pytest.raises(FewshotError, match="--instances belongs to the per-instance protocol; add --per-instance"):
        protocol_words(5, None, None, None, 0, None, {"instances": 3})
    words = protocol_words(5, None, None, None, 0, "per-instance", {"instances": 3})
    assert words.options == {"instances": 3} and words.kind == "per-instance"


def test_cells_name_their_protocol():
    assert Cell("d", "p", 5, 1, 15, 600, 0, kind="episodic").kind == "episodic"
