"""Scores of the zero-shot protocols (Xian, Lampert, Schiele and Akata 2018, "Zero-Shot Learning: A
Comprehensive Evaluation of the Good, the Bad and the Ugly", TPAMI).

Zero-shot accuracy is averaged per class, then over classes (per-class mean
top-1), so that classes with many test images do not dominate. In generalized
zero-shot learning the label space is every class, seen and unseen; the score
is the per-class mean accuracy on the seen classes' test images (S), on the
unseen classes' (U), and their harmonic mean H = 2SU / (S + U), which is high
only when both are.
"""
from __future__ import annotations

import torch


def per_class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Accuracy on each of ``classes`` (``[len(classes)]``), from predicted and true labels of test images."""
    correct = (predicted == labels).float()
    accuracy = torch.empty(len(classes))
    for i, c in enumerate(classes.tolist()):
        mine = labels == c
        if not bool(mine.any()):
            raise ValueError(f"class {c} has no test images")
        accuracy[i] = correct[mine].mean()
    return accuracy


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2SU / (S + U), 0 when both are 0."""
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def generalized_scores(predicted: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor,
                       unseen: torch.Tensor) -> dict[str, float]:
    """S, U and H in percent, keyed ``seen``, ``unseen``, ``harmonic`` and ``mean`` (= H, the cell's figure)."""
    s = 100 * per_class_accuracy(predicted, labels, seen).mean().item()
    u = 100 * per_class_accuracy(predicted, labels, unseen).mean().item()
    h = harmonic_mean(s, u)
    return {"seen": s, "unseen": u, "harmonic": h, "mean": h}
