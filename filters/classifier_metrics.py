"""Metrics of a binary classifier from scores: precision, recall and F1 at a threshold, and ROC-AUC.

Small and dependency-free on purpose (no scikit-learn in the runtime): ROC-AUC is computed as the
Mann-Whitney U statistic, the probability that a random positive outscores a random negative, with ties
counted as one half (average ranks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve; `labels` are 1 (positive) or 0 (negative). NaN without both classes."""
    n_pos = sum(1 for label in labels if label == 1)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = average_rank
        start = end + 1
    positive_rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label == 1)
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass(frozen=True)
class BinaryReport:
    threshold: float
    n_positive: int
    n_negative: int
    precision: float
    recall: float
    f1: float
    accuracy: float
    roc_auc: float

    def format(self, title: str) -> str:
        return "\n".join(
            [
                f"{title}: {self.n_positive} positive, {self.n_negative} negative documents",
                f"  threshold  {self.threshold:.2f}",
                f"  precision  {self.precision:.3f}",
                f"  recall     {self.recall:.3f}",
                f"  F1         {self.f1:.3f}",
                f"  accuracy   {self.accuracy:.3f}",
                f"  ROC-AUC    {self.roc_auc:.3f}",
            ]
        )


def binary_report(labels: Sequence[int], scores: Sequence[float], threshold: float) -> BinaryReport:
    """Metrics of predicting positive when score >= threshold."""
    predicted = [score >= threshold for score in scores]
    tp = sum(1 for p, label in zip(predicted, labels, strict=True) if p and label == 1)
    fp = sum(1 for p, label in zip(predicted, labels, strict=True) if p and label != 1)
    fn = sum(1 for p, label in zip(predicted, labels, strict=True) if not p and label == 1)
    n_pos = sum(1 for label in labels if label == 1)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    correct = sum(1 for p, label in zip(predicted, labels, strict=True) if p == (label == 1))
    return BinaryReport(
        threshold=threshold,
        n_positive=n_pos,
        n_negative=len(labels) - n_pos,
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=correct / len(labels) if labels else float("nan"),
        roc_auc=roc_auc(labels, scores),
    )
