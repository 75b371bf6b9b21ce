"""Classification metrics in numpy (torch-free: the accuracy gate runs on the device too)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecgedge.runtime.softmax import softmax


CINC2017_SCORED = ("N", "A", "O")


@dataclass
class ClassificationReport:
    """Macro/weighted F1, per-class F1 and the confusion matrix (rows = truth, columns = prediction)."""

    class_names: tuple[str, ...]
    confusion: np.ndarray
    per_class_f1: np.ndarray
    support: np.ndarray

    @property
    def macro_f1(self) -> float:
        """Mean F1 over the classes present in the truth (absent classes would count 0 or NaN)."""
        present = self.support > 0
        return float(self.per_class_f1[present].mean()) if present.any() else float("nan")

    @property
    def weighted_f1(self) -> float:
        total = self.support.sum()
        return float((self.per_class_f1 * self.support).sum() / total) if total else float("nan")

    @property
    def challenge_score(self) -> float | None:
        """The PhysioNet/CinC 2017 score: the mean F1 of N (normal), A (AF) and O (other rhythm); the
        noisy class ~ is scored beside it, not in it. ``None`` for label sets without N, A and O."""
        if not set(CINC2017_SCORED) <= set(self.class_names):
            return None
        return float(np.mean([self.per_class_f1[self.class_names.index(c)] for c in CINC2017_SCORED]))

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    def to_dict(self) -> dict:
        return {
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "accuracy": self.accuracy,
            **({"challenge_score": self.challenge_score} if self.challenge_score is not None else {}),
            "per_class_f1": {c: float(f) for c, f in zip(self.class_names, self.per_class_f1)},
            "support": {c: int(s) for c, s in zip(self.class_names, self.support)},
            "class_names": list(self.class_names),
            "confusion": self.confusion.tolist(),
        }


def classification_report(y_true, y_pred, class_names) -> ClassificationReport:
    """Report for integer labels in ``range(len(class_names))``."""
    k = len(class_names)
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    return ClassificationReport(tuple(class_names), cm, f1, cm.sum(1))


def record_decisions(window_probs: np.ndarray, window_labels: np.ndarray, window_record: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record-level truth and probabilities from window-level ones: a record's truth is the majority
    label of its windows, its probabilities the mean of its windows' (predict with ``argmax(1)``).

    Returns (record indices, (R,) truth labels, (R, classes) probabilities); one pass over the windows.
    """
    records, rprobs = record_probabilities(window_probs, window_record)
    inverse = np.searchsorted(records, window_record)
    votes = np.zeros((len(records), window_probs.shape[1]), dtype=np.int64)
    np.add.at(votes, (inverse, np.asarray(window_labels, dtype=np.int64)), 1)
    return records, votes.argmax(1), rprobs


def record_probabilities(window_probs: np.ndarray, window_record: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average window probabilities per record: returns (record indices, (R, classes) probabilities)."""
    records, inverse = np.unique(window_record, return_inverse=True)
    sums = np.zeros((len(records), window_probs.shape[1]))
    np.add.at(sums, inverse, window_probs)
    counts = np.bincount(inverse, minlength=len(records))[:, None]
    return records, sums / counts


def bootstrap_intervals(y_true, y_pred, class_names, *, repeats: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of record-level metrics: records resampled with replacement.

    Returns ``{metric: [low, high]}`` for macro F1, weighted F1, accuracy, the challenge score (where
    the label set has N, A, O) and each class's F1 (``f1_CLASS``). ``repeats`` resamples, seeded.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    if n == 0:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(repeats):
        i = rng.integers(0, n, n)
        rep = classification_report(y_true[i], y_pred[i], class_names)
        vals = {"macro_f1": rep.macro_f1, "weighted_f1": rep.weighted_f1, "accuracy": rep.accuracy}
        if rep.challenge_score is not None:
            vals["challenge_score"] = rep.challenge_score
        vals |= {f"f1_{c}": float(f) for c, f, s in zip(class_names, rep.per_class_f1, rep.support) if s > 0}
        for k, v in vals.items():
            draws.setdefault(k, []).append(v)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {k: [float(np.percentile(v, lo)), float(np.percentile(v, hi))] for k, v in draws.items()}
def scores_from_logits(logits: np.ndarray, window_labels: np.ndarray, window_record: np.ndarray, class_names, *,
                       intervals: bool = False) -> dict:
    """Window-level and record-level classification reports from logits (shared with the gate).

    A record's prediction is the argmax of its windows' mean softmax probabilities. ``intervals``
    adds percentile-bootstrap 95 % intervals of the record-level figures (1000 resamples of the
    records, seeded) as ``records["intervals_95"]``."""
    probs = softmax(logits.astype(np.float64))
    windows = classification_report(window_labels, probs.argmax(1), class_names)
    _, rec_truth, rprobs = record_decisions(probs, window_labels, window_record)
    records = classification_report(rec_truth, rprobs.argmax(1), class_names).to_dict()
    if intervals:
        records["intervals_95"] = bootstrap_intervals(rec_truth, rprobs.argmax(1), class_names)
    return {"windows": windows.to_dict(), "records": records}
