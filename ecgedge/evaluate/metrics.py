"""Classification metrics in numpy (torch-free: the accuracy gate runs on the device too)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")

    def to_dict(self) -> dict:
        return {
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "accuracy": self.accuracy,
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


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def record_probabilities(window_probs: np.ndarray, window_record: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average window probabilities per record: returns (record indices, (R, classes) probabilities)."""
    records, inverse = np.unique(window_record, return_inverse=True)
    sums = np.zeros((len(records), window_probs.shape[1]))
    np.add.at(sums, inverse, window_probs)
    counts = np.bincount(inverse, minlength=len(records))[:, None]
    return records, sums / counts
