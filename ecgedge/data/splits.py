"""Record-level, stratified, seeded splits (windows of one record never straddle two parts).

:func:`split_records` gives the paper's 8:2 train/test split (``test_fraction=0.2``) and carves a
validation part out of the training records for picking the best epoch. :func:`subsample` draws a
stratified fraction of the training records (the 100/50/25 % experiment) and :func:`bootstrap`
a with-replacement resample of them. Classes with a single record go to training (they cannot
be both learned and tested); the split records that fact in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Split:
    """Indices into a record list."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    notes: list[str] = field(default_factory=list)

    def to_dict(self, record_ids: list[str]) -> dict:
        return {part: [record_ids[i] for i in getattr(self, part)] for part in ("train", "val", "test")} | {"notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict, record_ids: list[str]) -> "Split":
        pos = {r: i for i, r in enumerate(record_ids)}
        missing = [r for part in ("train", "val", "test") for r in d[part] if r not in pos]
        if missing:
            raise KeyError(f"split names records not in the window set: {missing[:5]}")
        train, val, test = (np.array([pos[r] for r in d[part]], dtype=np.int64) for part in ("train", "val", "test"))
        return cls(train, val, test, notes=d.get("notes", []))


def _stratified_take(indices: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator, min_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``indices`` into (taken, rest) with ``fraction`` of each class taken; ``min_keep`` per class stays in rest."""
    taken, rest = [], []
    for c in np.unique(labels[indices]):
        members = indices[labels[indices] == c]
        members = members[rng.permutation(len(members))]
        k = int(round(fraction * len(members)))
        k = min(max(k, 1 if fraction > 0 else 0), max(len(members) - min_keep, 0))
        taken.append(members[:k])
        rest.append(members[k:])
    cat = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(taken), cat(rest)


def split_records(record_labels: np.ndarray, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0) -> Split:
    """Stratified train/val/test split of records by their label (-1 = unlabeled, treated as a class)."""
    labels = np.asarray(record_labels)
    rng = np.random.default_rng(seed)
    all_idx = np.arange(len(labels))
    test, train = _stratified_take(all_idx, labels, test_fraction, rng, min_keep=1)
    val, train = _stratified_take(train, labels, val_fraction, rng, min_keep=1) if val_fraction > 0 else (np.zeros(0, np.int64), train)
    notes = []
    for c, n in zip(*np.unique(labels, return_counts=True)):
        if n < 2:
            notes.append(f"class {c} has {n} record: training only, not tested")
    return Split(train, val, test, notes)


def subsample(train: np.ndarray, record_labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """A stratified ``fraction`` of the training records (at least one per class)."""
    if fraction >= 1.0:
        return np.asarray(train)
    taken, _ = _stratified_take(np.asarray(train), np.asarray(record_labels), fraction, np.random.default_rng(seed), min_keep=0)
    return taken


def bootstrap(train: np.ndarray, seed: int) -> np.ndarray:
    """Resample training records with replacement (same size), as the paper's repeated runs do."""
    rng = np.random.default_rng(seed)
    train = np.asarray(train)
    return train[rng.integers(0, len(train), size=len(train))]
