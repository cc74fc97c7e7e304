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


def class_scores(per_class: torch.Tensor, seen: torch.Tensor) -> dict[str, float]:
    """The score of an all-classes evaluation from its per-class accuracies (fractions) and which classes were seen.

    With no seen class (zero-shot): ``mean`` is the per-class mean and ``ci95``
    1.96 standard errors over classes. With seen and unseen classes
    (generalized): ``seen`` (S), ``unseen`` (U), their intervals, and
    ``harmonic`` = ``mean`` = H, whose interval comes from S's and U's by the
    delta method (they are means over disjoint classes, hence independent).
    """
    from fewshot.run.harness import confidence95

    accuracy = per_class.double().numpy()
    seen = seen.bool().numpy()
    if not seen.any() or seen.all():
        return {"mean": float(accuracy.mean()), "ci95": confidence95(accuracy)}
    s, u = float(accuracy[seen].mean()), float(accuracy[~seen].mean())
    s_ci, u_ci = confidence95(accuracy[seen]), confidence95(accuracy[~seen])
    h = harmonic_mean(s, u)
    total = s + u
    ds, du = (2 * u * u / total**2, 2 * s * s / total**2) if total > 0 else (0.0, 0.0)
    h_ci = float(((ds * s_ci) ** 2 + (du * u_ci) ** 2) ** 0.5)
    return {"seen": s, "unseen": u, "harmonic": h, "mean": h, "seen_ci95": s_ci, "unseen_ci95": u_ci, "ci95": h_ci}
