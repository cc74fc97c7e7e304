"""Published numbers to print beside ours, with where they come from.

Keyed by (learner, dataset, protocol, ways, shots); accuracies in percent on
the same protocol (Omniglot ``vinyals``: 1,200 training characters with
rotations, 423 test characters, 28x28).
"""

from __future__ import annotations

PAPER_ACCURACY: dict[tuple[str, str, str, int, int], tuple[float, str]] = {
    ("protonet", "omniglot", "vinyals", 5, 1): (98.8, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 5, 5): (99.7, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 20, 1): (96.0, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 20, 5): (98.9, "Snell et al. 2017, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 5, 1): (98.1, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 5, 5): (98.9, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 20, 1): (93.8, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 20, 5): (98.5, "Vinyals et al. 2016, Table 1"),
    ("metanet", "omniglot", "vinyals", 5, 1): (98.95, "Munkhdalai and Yu 2017, Table 1"),
    ("metanet", "omniglot", "vinyals", 20, 1): (97.00, "Munkhdalai and Yu 2017, Table 1"),
    ("maml", "omniglot", "vinyals", 5, 1): (98.7, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 5, 5): (99.9, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 20, 1): (95.8, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 20, 5): (98.9, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("fomaml", "omniglot", "vinyals", 5, 1): (98.3, "Finn et al. 2017, Table 1, first-order approximation"),
    ("fomaml", "omniglot", "vinyals", 5, 5): (99.2, "Finn et al. 2017, Table 1, first-order approximation"),
    ("fomaml", "omniglot", "vinyals", 20, 1): (89.4, "Finn et al. 2017, Table 1, first-order approximation"),
    ("fomaml", "omniglot", "vinyals", 20, 5): (97.9, "Finn et al. 2017, Table 1, first-order approximation"),
    ("metasgd", "omniglot", "vinyals", 5, 1): (99.53, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 5, 5): (99.93, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 20, 1): (95.93, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 20, 5): (98.97, "Li et al. 2017, Table 1"),
    ("reptile", "omniglot", "vinyals", 5, 1): (95.39, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 5, 5): (98.90, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 20, 1): (88.14, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 20, 5): (96.65, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("anil", "omniglot", "vinyals", 20, 1): (96.2, "Raghu et al. 2020, Table 2"),
    ("anil", "omniglot", "vinyals", 20, 5): (98.0, "Raghu et al. 2020, Table 2"),
}

# Error rates (percent) of other systems on a protocol, quoted beside every learner's.
REFERENCE_ERRORS: dict[tuple[str, str], list[tuple[str, float]]] = {
    ("omniglot", "lake-runs"): [
        ("people", 4.5),
        ("Bayesian program learning", 3.3),
        ("Koch et al. Siamese net", 8.0),
        ("Lake et al. ConvNet", 13.5),
    ],
}


# Santoro et al. 2016, Table 1: Omniglot, 5 classes x 10 instances per episode, accuracy (percent)
# at the k-th presentation of a class; "people" is the human figure the paper quotes.
PRESENTATION_ACCURACY: dict[tuple[str, int, int], list[tuple[str, dict[int, float]]]] = {
    ("omniglot", 5, 10): [
        ("MANN (paper)", {1: 36.4, 2: 82.8, 3: 91.0, 4: 92.6, 5: 94.9, 10: 98.1}),
        ("people (paper)", {1: 34.5, 2: 57.3, 3: 70.1, 4: 71.8, 5: 81.4, 10: 92.4}),
    ],
}


def presentation_references(dataset: str, ways: int, instances: int) -> list[tuple[str, dict[int, float]]]:
    return PRESENTATION_ACCURACY.get((dataset, ways, instances), [])


def paper_accuracy(learner: str, dataset: str, protocol: str, ways: int, shots: int) -> tuple[float, str] | None:
    return PAPER_ACCURACY.get((learner, dataset, protocol, ways, shots))


def references_for(dataset: str, protocol: str) -> list[tuple[str, float]]:
    return REFERENCE_ERRORS.get((dataset, protocol), [])


# Xian, Lampert, Schiele and Akata 2018, "Zero-Shot Learning: A Comprehensive Evaluation of the Good, the Bad and
# the Ugly", TPAMI: ResNet-101 features, the proposed split (PS). zsl: per-class mean top-1 on the unseen classes
# (its ZSL table); gzsl: per-class mean top-1 on unseen (U) and seen (S) test images and their harmonic mean H
# (its GZSL table).
XIAN_2018 = "Xian et al. 2018"
ZERO_SHOT_ACCURACY: dict[tuple[str, str], dict[str, dict[str, float]]] = {
    ("dap", "CUB"): {"zsl": {"mean": 40.0}, "gzsl": {"unseen": 1.7, "seen": 67.9, "harmonic": 3.3}},
    ("conse", "CUB"): {"zsl": {"mean": 34.3}, "gzsl": {"unseen": 1.6, "seen": 72.2, "harmonic": 3.1}},
    ("devise", "CUB"): {"zsl": {"mean": 52.0}, "gzsl": {"unseen": 23.8, "seen": 53.0, "harmonic": 32.8}},
    ("eszsl", "CUB"): {"zsl": {"mean": 53.9}, "gzsl": {"unseen": 12.6, "seen": 63.8, "harmonic": 21.0}},
    ("dap", "AWA2"): {"zsl": {"mean": 46.1}, "gzsl": {"unseen": 0.0, "seen": 84.7, "harmonic": 0.0}},
    ("conse", "AWA2"): {"zsl": {"mean": 44.5}, "gzsl": {"unseen": 0.5, "seen": 90.6, "harmonic": 1.0}},
    ("devise", "AWA2"): {"zsl": {"mean": 59.7}, "gzsl": {"unseen": 17.1, "seen": 74.7, "harmonic": 27.8}},
    ("eszsl", "AWA2"): {"zsl": {"mean": 58.6}, "gzsl": {"unseen": 5.9, "seen": 77.8, "harmonic": 11.0}},
}


def zero_shot_paper(learner: str, dataset: str, protocol: str) -> dict[str, float] | None:
    """Xian et al.'s figures for an imported xlsa17 dataset (``xlsa17:AWA2``), if they report this learner on it."""
    family, _, name = dataset.partition(":")
    if family != "xlsa17":
        return None
    return ZERO_SHOT_ACCURACY.get((learner, name.upper()), {}).get(protocol)


def zero_shot_references(dataset: str, protocol: str, learner: str) -> list[tuple[str, str]]:
    figures = zero_shot_paper(learner, dataset, protocol)
    if figures is None:
        return []
    if "harmonic" in figures:
        return [(XIAN_2018, f"S {figures['seen']:g}%, U {figures['unseen']:g}%, H {figures['harmonic']:g}%")]
    return [(XIAN_2018, f"per-class mean accuracy {figures['mean']:g}%")]


# Unsupervised domain adaptation on digit shifts: target test accuracy in percent. Ganin et al. 2016
# (JMLR, "Domain-Adversarial Training of Neural Networks", Table 2) trained on all 60,000 MNIST digits and the
# full MNIST-M training set; our MNIST has 8,000 training digits. Tzeng et al. 2017 ("Adversarial Discriminative
# Domain Adaptation", Table 2) sample 2,000 MNIST and 1,800 USPS training images, as our MNIST <-> USPS shifts do.
GANIN_2016 = "Ganin et al. 2016, Table 2; their MNIST source is 60,000 digits, ours 8,000"
TZENG_2017 = "Tzeng et al. 2017, Table 2"
ADAPTATION_ACCURACY: dict[tuple[str, str, str], dict[str, tuple[float, str]]] = {
    ("mnist", "mnist-m", "uda"): {"none": (52.25, GANIN_2016), "dann": (76.66, GANIN_2016)},
    ("mnist", "mnist-m", "target-only"): {"none": (95.96, GANIN_2016)},
    ("mnist", "usps", "uda"): {"none": (75.2, TZENG_2017), "dann": (77.1, TZENG_2017), "confusion": (79.1, TZENG_2017)},
    ("usps", "mnist", "uda"): {"none": (57.1, TZENG_2017), "dann": (73.0, TZENG_2017), "confusion": (66.5, TZENG_2017)},
}


def adaptation_paper(protocol: str, source: str, target: str, adapt: str) -> tuple[float, str] | None:
    return ADAPTATION_ACCURACY.get((source, target, protocol), {}).get(adapt)


def adaptation_references(protocol: str, source: str, target: str, adapt: str) -> list[tuple[str, str]]:
    found = adaptation_paper(protocol, source, target, adapt)
    return [] if found is None else [(found[1], f"accuracy {found[0]:g}%")]


def paper_figure(run: dict) -> tuple[float, str] | None:
    """The published figure (percent, and where from) for a run's cell, where a paper reports its setting.

    A domain shift is the paper's cell only for the adaptation papers' shifts, with the papers' network (no
    hyperparameter changed); a zero-shot figure is the per-class mean, or H for generalized zero-shot.
    """
    from fewshot.leaderboard.runs import label

    if run.get("source"):
        if "(" in label(run):
            return None
        return adaptation_paper(run["protocol"], run["source"], run["target"], run.get("adaptation") or "none")
    zero_shot = zero_shot_paper(run["learner"], run["dataset"], run["protocol"])
    if zero_shot is not None:
        return zero_shot.get("harmonic", zero_shot.get("mean", 0.0)), XIAN_2018
    return paper_accuracy(run["learner"], run["dataset"], run["protocol"], run["ways"], run["shots"])
