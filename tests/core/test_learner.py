import pytest

from fewshot.core.errors import FewshotError
from fewshot.core.learner import Interval, Learner, describe_hparams, parse_hp_options, resolve_hparams


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


class Ranged(Learner):
    hparams = {"lr": 0.1, "inner_lr": 0.0, "hidden": 64, "dropout": 0.5, "scale": -1.0, "steps": 5, "head": "linear"}
    hparam_ranges = {"hidden": "[1, 4096]", "dropout": "[0, 1)"}
    hparam_choices = {"head": ("linear", "cosine")}


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("hidden", "0", "--hp hidden=0: ranged's hidden must be in [1, 4096], got 0"),
        ("hidden", str(10**30), f"--hp hidden={10**30}: ranged's hidden must be in [1, 4096], got {10**30}"),
        ("dropout", "1", "--hp dropout=1: ranged's dropout must be in [0, 1), got 1.0"),
        ("dropout", "-0.1", "--hp dropout=-0.1: ranged's dropout must be in [0, 1), got -0.1"),
        # generic checks of what is not declared: a learning rate above 0 (at least 0 where the default is 0),
        ("lr", "0", "--hp lr=0: ranged's lr must be in (0, inf), got 0.0"),
        ("inner_lr", "-1", "--hp inner_lr=-1: ranged's inner_lr must be in [0, inf), got -1.0"),
        # and a count between 0 and what torch's and numpy's C APIs take
        ("steps", "-1", "--hp steps=-1: ranged's steps must be in [0, 2147483647], got -1"),
        ("steps", str(2**31), f"--hp steps={2**31}: ranged's steps must be in [0, 2147483647], got {2**31}"),
        ("lr", "nan", "--hp lr=nan: expected a finite number, like the default 0.1"),
        ("steps", "abc", "--hp steps=abc: expected an integer, like the default 5"),
    ],
)
def test_values_outside_a_hyperparameter_s_range_are_refused_in_one_line(name, text, message):
    with pytest.raises(FewshotError) as caught:
        resolve_hparams(Ranged, {name: text}, "ranged")
    assert str(caught.value) == message


def test_values_inside_the_ranges_pass():
    edges = {"hidden": "1", "dropout": "0", "lr": "1e-9", "inner_lr": "0", "scale": "-5", "steps": "0"}
    assert resolve_hparams(Ranged, edges, "ranged") == {**Ranged.hparams, **{k: float(v) for k, v in edges.items()}}
    assert resolve_hparams(Ranged, {"hidden": "4096", "dropout": "0.999"}, "ranged")["hidden"] == 4096


def test_an_adaptation_s_values_are_named_as_hp_names_them():
    from fewshot.core import registry

    with pytest.raises(FewshotError) as caught:
        resolve_hparams(registry.adaptation("dann"), {"weight": "-1"}, "dann", prefix="dann.")
    assert str(caught.value) == "--hp dann.weight=-1: dann's weight must be in [0, 1000], got -1.0"


def test_interval_notation():
    assert str(Interval.parse(" ( 0 , 10 ] ")) == "(0, 10]"
    assert str(Interval.parse("[1, 1e9]")) == "[1, 1e9]" and str(Interval.parse("[0, inf)")) == "[0, inf)"
    half_open = Interval.parse("[0, 1)")
    assert 0 in half_open and 0.5 in half_open and 1 not in half_open and -1e-9 not in half_open
    assert 1e300 in Interval.parse("(0, inf)") and 0.0 not in Interval.parse("(0, inf)")
    for bad in ("0, 1", "[1, 0]", "[a, 1]", "[nan, 1]", "{0, 1}"):
        with pytest.raises(FewshotError, match="write an interval such as"):
            Interval.parse(bad)


def test_describe_hparams_shows_the_ranges_and_choices():
    assert describe_hparams(Ranged) == (
        "lr=0.1 in (0, inf); inner_lr=0.0 in [0, inf); hidden=64 in [1, 4096]; dropout=0.5 in [0, 1); "
        "scale=-1.0; steps=5 in [0, 2147483647]; head=linear of linear|cosine"
    )


def test_every_registered_learner_and_method_declares_a_range_for_each_number():
    from fewshot.core import registry

    for kind, get in (("learner", registry.learner), ("adaptation", registry.adaptation)):
        for name in registry.names(kind):
            cls = get(name)
            assert set(cls.hparam_ranges) <= set(cls.hparams), (name, set(cls.hparam_ranges) - set(cls.hparams))
            for hp, default in cls.hparams.items():
                if isinstance(default, bool) or not isinstance(default, (int, float)) or hp in cls.hparam_choices:
                    continue
                assert hp in cls.hparam_ranges, f"{name} declares no range for {hp}"
                assert default in Interval.parse(cls.hparam_ranges[hp]), f"{name}'s default {hp}={default}"
