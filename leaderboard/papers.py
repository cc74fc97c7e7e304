"""Published numbers to print beside ours, with where they come from.

Keyed by (learner, dataset, protocol, ways, shots, backbone); accuracies in percent on
the same protocol (Omniglot ``vinyals``: 1,200 training characters with
rotations, 423 test characters, 28x28). The backbone is the network a run names
with ``--hp backbone=conv4|resnet12``; a run that names none used its dataset's
default, ``conv4`` (the papers' four 3x3 conv blocks). A figure is shown only
beside a run of its backbone: a ResNet-12 paper figure is never compared with a
Conv-4 run. Where a hyperparameter makes a learner another method of the papers
(``VARIANTS``: Baseline++ is ``finetune`` with ``head=cosine``, matching networks
with full-context embeddings ``matchingnet`` with ``fce=True``), the learner is
keyed as the leaderboard labels it, ``finetune (head=cosine)``.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BACKBONE = "conv4"

RAVI_2017 = "Ravi and Larochelle 2017, Table 1"
FINN_2017_FO = "Finn et al. 2017, Table 1, first-order approximation (transductive batch norm)"
FINN_2017_MINI = "Finn et al. 2017, Table 1 (32 filters; transductive batch norm)"
FINN_2017_MINI_FO = "Finn et al. 2017, Table 1, first-order approximation (32 filters; transductive batch norm)"
SNELL_2017_MINI = "Snell et al. 2017, Table 2"
LEE_2019_RESNET = "Lee et al. 2019, Table 3 (their ResNet-12 ProtoNet)"
LEE_2019_CIFAR_FS = "Lee et al. 2019, Table 2 (Bertinetto et al. 2019's figure)"
LEE_2019_FC100 = "Lee et al. 2019, Table 2 (Oreshkin et al. 2018's figure)"
LEE_2019_CIFAR_RESNET = "Lee et al. 2019, Table 2 (their ResNet-12 ProtoNet)"

PAPER_ACCURACY: dict[tuple[str, str, str, int, int, str], tuple[float, str]] = {
    ("protonet", "omniglot", "vinyals", 5, 1, "conv4"): (98.8, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 5, 5, "conv4"): (99.7, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 20, 1, "conv4"): (96.0, "Snell et al. 2017, Table 1"),
    ("protonet", "omniglot", "vinyals", 20, 5, "conv4"): (98.9, "Snell et al. 2017, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 5, 1, "conv4"): (98.1, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 5, 5, "conv4"): (98.9, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 20, 1, "conv4"): (93.8, "Vinyals et al. 2016, Table 1"),
    ("matchingnet", "omniglot", "vinyals", 20, 5, "conv4"): (98.5, "Vinyals et al. 2016, Table 1"),
    ("metanet", "omniglot", "vinyals", 5, 1, "conv4"): (98.95, "Munkhdalai and Yu 2017, Table 1"),
    ("metanet", "omniglot", "vinyals", 20, 1, "conv4"): (97.00, "Munkhdalai and Yu 2017, Table 1"),
    ("maml", "omniglot", "vinyals", 5, 1, "conv4"): (98.7, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 5, 5, "conv4"): (99.9, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 20, 1, "conv4"): (95.8, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("maml", "omniglot", "vinyals", 20, 5, "conv4"): (98.9, "Finn et al. 2017, Table 1 (transductive batch norm)"),
    ("fomaml", "omniglot", "vinyals", 5, 1, "conv4"): (98.3, FINN_2017_FO),
    ("fomaml", "omniglot", "vinyals", 5, 5, "conv4"): (99.2, FINN_2017_FO),
    ("fomaml", "omniglot", "vinyals", 20, 1, "conv4"): (89.4, FINN_2017_FO),
    ("fomaml", "omniglot", "vinyals", 20, 5, "conv4"): (97.9, FINN_2017_FO),
    ("metasgd", "omniglot", "vinyals", 5, 1, "conv4"): (99.53, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 5, 5, "conv4"): (99.93, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 20, 1, "conv4"): (95.93, "Li et al. 2017, Table 1"),
    ("metasgd", "omniglot", "vinyals", 20, 5, "conv4"): (98.97, "Li et al. 2017, Table 1"),
    ("reptile", "omniglot", "vinyals", 5, 1, "conv4"): (95.39, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 5, 5, "conv4"): (98.90, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 20, 1, "conv4"): (88.14, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "omniglot", "vinyals", 20, 5, "conv4"): (96.65, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("anil", "omniglot", "vinyals", 20, 1, "conv4"): (96.2, "Raghu et al. 2020, Table 2"),
    ("anil", "omniglot", "vinyals", 20, 5, "conv4"): (98.0, "Raghu et al. 2020, Table 2"),
    # miniImageNet on Ravi and Larochelle's split (64/16/20 classes), 5-way, 84x84. Matching networks are Ravi and
    # Larochelle's re-run on this split: Vinyals et al.'s own miniImageNet figures were on another class split.
    ("matchingnet", "mini-imagenet", "ravi", 5, 1, "conv4"): (43.40, RAVI_2017 + ", matching net re-run on this split"),
    ("matchingnet", "mini-imagenet", "ravi", 5, 5, "conv4"): (51.09, RAVI_2017 + ", matching net re-run on this split"),
    ("matchingnet (fce=True)", "mini-imagenet", "ravi", 5, 1, "conv4"): (
        43.56,
        RAVI_2017 + ", matching net FCE re-run",
    ),
    ("matchingnet (fce=True)", "mini-imagenet", "ravi", 5, 5, "conv4"): (
        55.31,
        RAVI_2017 + ", matching net FCE re-run",
    ),
    ("metalstm", "mini-imagenet", "ravi", 5, 1, "conv4"): (43.44, RAVI_2017),
    ("metalstm", "mini-imagenet", "ravi", 5, 5, "conv4"): (60.60, RAVI_2017),
    ("maml", "mini-imagenet", "ravi", 5, 1, "conv4"): (48.70, FINN_2017_MINI),
    ("maml", "mini-imagenet", "ravi", 5, 5, "conv4"): (63.11, FINN_2017_MINI),
    ("fomaml", "mini-imagenet", "ravi", 5, 1, "conv4"): (48.07, FINN_2017_MINI_FO),
    ("fomaml", "mini-imagenet", "ravi", 5, 5, "conv4"): (63.15, FINN_2017_MINI_FO),
    ("reptile", "mini-imagenet", "ravi", 5, 1, "conv4"): (47.07, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("reptile", "mini-imagenet", "ravi", 5, 5, "conv4"): (62.74, "Nichol et al. 2018, Table 1 (non-transductive)"),
    ("protonet", "mini-imagenet", "ravi", 5, 1, "conv4"): (49.42, SNELL_2017_MINI + " (trained on 30-way episodes)"),
    ("protonet", "mini-imagenet", "ravi", 5, 5, "conv4"): (68.20, SNELL_2017_MINI + " (trained on 20-way episodes)"),
    ("anil", "mini-imagenet", "ravi", 5, 1, "conv4"): (46.7, "Raghu et al. 2020, Table 2"),
    ("anil", "mini-imagenet", "ravi", 5, 5, "conv4"): (61.5, "Raghu et al. 2020, Table 2"),
    ("protonet", "mini-imagenet", "ravi", 5, 1, "resnet12"): (59.25, LEE_2019_RESNET),
    ("protonet", "mini-imagenet", "ravi", 5, 5, "resnet12"): (75.60, LEE_2019_RESNET),
    # tieredImageNet (Ren et al.'s split), 5-way.
    ("protonet", "tiered-imagenet", "ren", 5, 1, "conv4"): (
        53.31,
        "Lee et al. 2019, Table 1 (Ren et al. 2018's figure)",
    ),
    ("protonet", "tiered-imagenet", "ren", 5, 5, "conv4"): (
        72.69,
        "Lee et al. 2019, Table 1 (Ren et al. 2018's figure)",
    ),
    ("protonet", "tiered-imagenet", "ren", 5, 1, "resnet12"): (61.74, LEE_2019_RESNET),
    ("protonet", "tiered-imagenet", "ren", 5, 5, "resnet12"): (80.00, LEE_2019_RESNET),
    # CIFAR-FS (Bertinetto et al.'s split) and FC100 (Oreshkin et al.'s), 5-way, 32x32: Lee et al. 2019, Table 2,
    # quoting Bertinetto et al. 2019 for CIFAR-FS at Conv-4 and Oreshkin et al. 2018 for FC100 at Conv-4.
    ("maml", "cifar-fs", "bertinetto", 5, 1, "conv4"): (58.9, LEE_2019_CIFAR_FS + " (32 filters)"),
    ("maml", "cifar-fs", "bertinetto", 5, 5, "conv4"): (71.5, LEE_2019_CIFAR_FS + " (32 filters)"),
    ("protonet", "cifar-fs", "bertinetto", 5, 1, "conv4"): (55.5, LEE_2019_CIFAR_FS),
    ("protonet", "cifar-fs", "bertinetto", 5, 5, "conv4"): (72.0, LEE_2019_CIFAR_FS),
    ("protonet", "cifar-fs", "bertinetto", 5, 1, "resnet12"): (72.2, LEE_2019_CIFAR_RESNET),
    ("protonet", "cifar-fs", "bertinetto", 5, 5, "resnet12"): (83.5, LEE_2019_CIFAR_RESNET),
    ("protonet", "fc100", "oreshkin", 5, 1, "conv4"): (35.3, LEE_2019_FC100),
    ("protonet", "fc100", "oreshkin", 5, 5, "conv4"): (48.6, LEE_2019_FC100),
    ("protonet", "fc100", "oreshkin", 5, 1, "resnet12"): (37.5, LEE_2019_CIFAR_RESNET),
    ("protonet", "fc100", "oreshkin", 5, 5, "resnet12"): (52.5, LEE_2019_CIFAR_RESNET),
}

# Not listed, for want of a source this suite could read (issue 20): Li et al. 2017's Meta-SGD on miniImageNet;
# Chen et al. 2019's Baseline and Baseline++ (``finetune``, ``finetune (head=cosine)``), MatchingNet, ProtoNet
# and MAML on miniImageNet and CUB (``cub``/``chen``), at Conv-4 and ResNet.

# Figures of methods the suite has no learner for, beside the same cells: never shown beside a run, kept so that a
# comparison in the text can cite them. MetaOptNet-SVM: Lee et al. 2019, Tables 1 and 2 (ResNet-12, trained on the
# training classes alone); TADAM: Oreshkin et al. 2018, as Lee et al. 2019, Tables 1 and 2 quote it (ResNet-12).
OTHER_METHODS: dict[tuple[str, str, str, int, int, str], tuple[float, str]] = {
    ("metaoptnet-svm", "mini-imagenet", "ravi", 5, 1, "resnet12"): (62.64, "Lee et al. 2019, Table 1"),
    ("metaoptnet-svm", "mini-imagenet", "ravi", 5, 5, "resnet12"): (78.63, "Lee et al. 2019, Table 1"),
    ("metaoptnet-svm", "tiered-imagenet", "ren", 5, 1, "resnet12"): (65.99, "Lee et al. 2019, Table 1"),
    ("metaoptnet-svm", "tiered-imagenet", "ren", 5, 5, "resnet12"): (81.56, "Lee et al. 2019, Table 1"),
    ("metaoptnet-svm", "cifar-fs", "bertinetto", 5, 1, "resnet12"): (72.0, "Lee et al. 2019, Table 2"),
    ("metaoptnet-svm", "cifar-fs", "bertinetto", 5, 5, "resnet12"): (84.2, "Lee et al. 2019, Table 2"),
    ("metaoptnet-svm", "fc100", "oreshkin", 5, 1, "resnet12"): (41.1, "Lee et al. 2019, Table 2"),
    ("metaoptnet-svm", "fc100", "oreshkin", 5, 5, "resnet12"): (55.5, "Lee et al. 2019, Table 2"),
    ("tadam", "mini-imagenet", "ravi", 5, 1, "resnet12"): (58.50, "Lee et al. 2019, Table 1 (Oreshkin et al. 2018)"),
    ("tadam", "mini-imagenet", "ravi", 5, 5, "resnet12"): (76.70, "Lee et al. 2019, Table 1 (Oreshkin et al. 2018)"),
    ("tadam", "fc100", "oreshkin", 5, 1, "resnet12"): (40.1, "Lee et al. 2019, Table 2 (Oreshkin et al. 2018)"),
    ("tadam", "fc100", "oreshkin", 5, 5, "resnet12"): (56.1, "Lee et al. 2019, Table 2 (Oreshkin et al. 2018)"),
}

# A hyperparameter value that makes a learner another of the papers' methods: its figures are keyed by the learner
# as the leaderboard labels such a run.
VARIANTS: dict[str, tuple[str, Any]] = {"finetune": ("head", "cosine"), "matchingnet": ("fce", True)}


def paper_learner(learner: str, hparams: dict[str, Any]) -> str:
    """The learner's key in ``PAPER_ACCURACY``: its name, or ``name (hp=value)`` for a variant of ``VARIANTS``."""
    hp, value = VARIANTS.get(learner, ("", None))
    return f"{learner} ({hp}={value})" if hp and hparams.get(hp) == value else learner


def backbone_of(hparams: dict[str, Any]) -> str:
    """The backbone a run's hyperparameters name (``--hp backbone=...``), else the dataset's default, conv4."""
    return str(hparams.get("backbone") or DEFAULT_BACKBONE).lower()


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


def paper_accuracy(
    learner: str, dataset: str, protocol: str, ways: int, shots: int, backbone: str = DEFAULT_BACKBONE
) -> tuple[float, str] | None:
    return PAPER_ACCURACY.get((learner, dataset, protocol, ways, shots, backbone))


def run_paper_accuracy(run: dict[str, Any]) -> tuple[float, str] | None:
    """The figure for a run's learner (or its variant), cell and backbone, from its hyperparameters."""
    from fewshot.leaderboard.runs import as_dict

    hparams = as_dict(run.get("hparams"))
    learner = paper_learner(run["learner"], hparams)
    return paper_accuracy(learner, run["dataset"], run["protocol"], run["ways"], run["shots"], backbone_of(hparams))


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


# Bousmalis et al. 2016 ("Domain Separation Networks", NeurIPS, Table 1) reran the baselines on MNIST -> MNIST-M with
# every method's hyperparameters chosen on 1,000 labelled MNIST-M training images (our --select oracle); their MMD
# is Long et al. 2015's multi-kernel MMD (DAN). A second opinion beside the primary papers' figures.
BOUSMALIS_2016 = "Bousmalis et al. 2016, Table 1; chosen on 1,000 labelled MNIST-M images"
SECOND_ADAPTATION_ACCURACY: dict[tuple[str, str, str], dict[str, tuple[float, str]]] = {
    ("mnist", "mnist-m", "uda"): {
        "none": (56.6, BOUSMALIS_2016),
        "coral": (57.7, BOUSMALIS_2016),
        "dan": (76.9, BOUSMALIS_2016),
        "dann": (77.4, BOUSMALIS_2016),
    },
    ("mnist", "mnist-m", "target-only"): {"none": (98.7, BOUSMALIS_2016)},
}


def adaptation_paper(protocol: str, source: str, target: str, adapt: str) -> tuple[float, str] | None:
    """The figure a leaderboard entry is compared with: the method's own paper's where it reports the shift, else
    Bousmalis et al.'s rerun."""
    key = (source, target, protocol)
    return ADAPTATION_ACCURACY.get(key, {}).get(adapt) or SECOND_ADAPTATION_ACCURACY.get(key, {}).get(adapt)


def adaptation_references(protocol: str, source: str, target: str, adapt: str) -> list[tuple[str, str]]:
    """Every published figure for the shift and method: the primary paper's, then Bousmalis et al.'s rerun."""
    key = (source, target, protocol)
    found = [table.get(key, {}).get(adapt) for table in (ADAPTATION_ACCURACY, SECOND_ADAPTATION_ACCURACY)]
    return [(citation, f"accuracy {value:g}%") for value, citation in filter(None, found)]


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
    return run_paper_accuracy(run)
