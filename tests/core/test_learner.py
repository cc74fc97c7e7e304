import pytest

from fewshot.core.errors import FewshotError
from fewshot.core.learner import Learner, parse_hp_options, resolve_hparams


class Toy(Learner):
    hparams = {"lr": 0.1, "steps": 5, "head": "linear", "flag": False}
    hparam_choices = {"head": ("linear", "cosine")}


def test_overrides_take_the_type_of_the_default():
    hp = resolve_hparams(Toy, {"lr": "0.5", "steps": "7", "head": "cosine", "flag": "true"}, "toy")
    assert hp == {"lr": 0.5, "steps": 7, "head": "cosine", "flag": True}
    assert resolve_hparams(Toy, {}, "toy") == Toy.hparams


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"nope": "1"}, "unknown hyperparameter 'nope' for toy: its hyperparameters are flag, head, lr, steps"),
        ({"steps": "1.5"}, "expected an integer"),
        ({"lr": "fast"}, "expected a finite number"),
        ({"flag": "maybe"}, "expected true or false"),
        ({"head": "mlp"}, "choose one of linear, cosine"),
    ],
)
def test_bad_overrides_are_refused(overrides, message):
    with pytest.raises(FewshotError, match=message):
        resolve_hparams(Toy, overrides, "toy")


def test_hp_options_parse():
    assert parse_hp_options(("lr=0.1", " head = cosine ")) == {"lr": "0.1", "head": "cosine"}
    with pytest.raises(FewshotError, match="name=value"):
        parse_hp_options(("lr",))
