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
