"""Rhythm trees: record features (:mod:`ecgedge.beats.record_features`) into scikit-learn's
``HistGradientBoostingClassifier``, chosen and measured by stratified k-fold cross-validation.

Why this library: ``skl2onnx`` converts ``HistGradientBoostingClassifier`` to one ONNX-ML
``TreeEnsembleClassifier`` node (NaN routing included), which the standard onnxruntime CPU build
runs, so the runtime needs nothing beyond onnxruntime; scikit-learn is pure wheels with no native
library of its own to ship, and its histogram trees train the 6,529 CinC-2017 records in seconds.
LightGBM or XGBoost would add a native dependency and an onnxmltools converter for no gain on a
table of 5,000 rows and 81 columns.

The recipe (:func:`train_rhythm_trees`)::

    features of every record (cached by content: the sha256 of each record's data file bytes)
      -> a fixed test split (the ids given, e.g. the shipped CNN's test records, or a seeded
         stratified 20 %), set aside and scored once at the end
      -> k-fold stratified cross-validation on the remaining (development) records: challenge
         score (mean F1 of N, A, O) and per-class F1, mean and SD over folds
      -> one model fitted on all development records, scored on the test split
      -> the run folder: config.json, split.json, cv.json, metrics.json, trees.pkl, check.npz

Seeded throughout: the folds, the test split and the trees (``random_state``) come from ``seed``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ecgedge.beats.qrs import QrsConfig
from ecgedge.beats.record_features import FEATURE_VERSION, feature_names, record_features
from ecgedge.config import ClassWeighting
from ecgedge.data.labels import CINC2017, record_label
from ecgedge.data.provenance import record_content_sha256
from ecgedge.data.records import RecordRef, find_records, read_record
from ecgedge.data.splits import split_records
from ecgedge.errors import BadRecord, ConfigError, DataNotFound
from ecgedge.evaluate.metrics import bootstrap_intervals, classification_report
from ecgedge.fsio import FolderKind, atomic_write_bytes, owned_folder
from ecgedge.hashing import value_sha256
from ecgedge.paths import cache_root

RUN_FILES = ("config.json", "split.json", "cv.json", "metrics.json", "trees.pkl", "check.npz")
CLASSES = CINC2017  # N, A, O, ~


@dataclass(frozen=True)
class TreesConfig:
    """The model: gradient-boosted trees' settings (scikit-learn names) and class weighting."""

    max_iter: int = 400
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 1.0
    class_weighting: ClassWeighting = ClassWeighting.inverse
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "class_weighting", ClassWeighting(self.class_weighting))
        if self.max_iter < 1 or self.max_leaf_nodes < 2 or self.min_samples_leaf < 1:
            raise ConfigError(f"trees need max_iter >= 1, max_leaf_nodes >= 2, min_samples_leaf >= 1; got {self}")
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be in (0, 1], not {self.learning_rate}")


@dataclass(frozen=True)
class RhythmTreesConfig:
    """A training run: records, where the run goes, the fixed test split, the folds, the trees.

    ``test_records``: ids forming the fixed test split (records not found are ignored); empty: a
    seeded stratified ``test_fraction`` of the records. ``jobs``: processes for feature extraction.
    """

    data: tuple[str, ...]
    run_dir: str
    trees: TreesConfig = field(default_factory=TreesConfig)
    folds: int = 5
    test_fraction: float = 0.2
    test_records: tuple[str, ...] = ()
    max_records: int = 0
    jobs: int = 1
    seed: int = 0
    cache: bool = True
    overwrite: bool = False

    def __post_init__(self):
        if self.folds < 2:
            raise ConfigError(f"cross-validation needs at least 2 folds, not {self.folds}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), not {self.test_fraction}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["trees"]["class_weighting"] = self.trees.class_weighting.value
        d["test_records"] = {"count": len(self.test_records), "sha256": value_sha256(sorted(self.test_records))}
        return d


# ------------------------------------------------------------------------------------- features


@dataclass
class FeatureTable:
    """Features of labelled records: ``X`` (records, features) float32, ``y`` class indices into ``CLASSES``."""

    record_ids: list[str]
    y: np.ndarray
    X: np.ndarray
    sha256: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    extract_ms: list[float] = field(default_factory=list)


def _cache_file(qrs: QrsConfig) -> Path:
    key = value_sha256({"version": FEATURE_VERSION, "names": feature_names(), "qrs": qrs.to_json()})[:16]
    return cache_root() / "rhythm-features" / f"v{FEATURE_VERSION}-{key}.npz"


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            return {str(s): row for s, row in zip(z["sha256"], z["X"])}
    except (OSError, KeyError, ValueError):
        return {}


def _save_cache(path: Path, rows: dict[str, np.ndarray]) -> None:
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, sha256=np.array(list(rows), dtype="U64"), X=np.stack(list(rows.values())).astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())


def _one_record(args: tuple[RecordRef, bool]) -> tuple[str, str | None, str, np.ndarray | None, float, str]:
    """(record id, label or None, content sha256, features or None when not asked, ms, why skipped)."""
    ref, want = args
    try:
        sha = record_content_sha256(ref)
        rec = read_record(ref)
        label = record_label(rec, "cinc2017")
        if rec.signal.shape[0] != 1:
            return ref.record_id, None, sha, None, 0.0, f"{rec.signal.shape[0]} leads; the rhythm trees take one"
        if not want:
            return ref.record_id, label, sha, None, 0.0, ""
        t = time.perf_counter()
        f = record_features(rec.signal[0], rec.fs).values
        return ref.record_id, label, sha, f, 1000 * (time.perf_counter() - t), ""
    except BadRecord as exc:
        return ref.record_id, None, "", None, 0.0, str(exc)


def feature_table(paths: Sequence[str | Path], *, max_records: int = 0, jobs: int = 1, cache: bool = True,
                  log: Callable[[str], None] | None = None) -> FeatureTable:
    """Features and CinC-2017 labels of the records under ``paths`` (single lead; others skipped).

    Features are cached under the ecgedge cache by each record's content sha256 (its data file
    bytes), the feature version and the detector settings: a renamed copy hits, an edited record misses.
    """
    refs = find_records(list(paths))
    if max_records:
        refs = refs[:max_records]
    if not refs:
        raise DataNotFound(f"no records under {', '.join(map(str, paths))}")
    qrs = QrsConfig()
    cfile = _cache_file(qrs)
    cached = _load_cache(cfile) if cache else {}
    shas = {}
    for ref in refs:
        try:
            shas[ref.record_id] = record_content_sha256(ref)
        except BadRecord:
            shas[ref.record_id] = ""
    work = [(ref, shas[ref.record_id] not in cached) for ref in refs]
    n_new = sum(w for _, w in work)
    if log:
        log(f"{len(refs)} records; features cached for {len(refs) - n_new}, extracting {n_new} ({jobs} process(es))")
    if jobs > 1 and n_new > 50:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_one_record, work, chunksize=32))
    else:
        results = [_one_record(w) for w in work]
    table = FeatureTable([], np.zeros(0, np.int64), np.zeros((0, len(feature_names())), np.float32), [])
    rows, ys = [], []
    for rid, label, sha, f, ms, why in results:
        if label is None:
            table.skipped[rid] = why
            continue
        if f is not None:
            cached[sha] = f
            table.extract_ms.append(ms)
        table.record_ids.append(rid)
        table.sha256.append(sha)
        ys.append(CLASSES.index(label))
        rows.append(cached[sha])
    if not rows:
        raise DataNotFound("no usable labelled single-lead records (CinC-2017 labels N, A, O, ~)")
    table.X = np.stack(rows).astype(np.float32)
    table.y = np.asarray(ys, dtype=np.int64)
    if cache and n_new:
        _save_cache(cfile, cached)
    return table


# ------------------------------------------------------------------------------------- model


def class_weights(y: np.ndarray, weighting: ClassWeighting, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Per-class weight (``inverse``: n / (k n_c); ``sqrt``: its square root; ``none``: 1)."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    w = np.ones(n_classes)
    if weighting != ClassWeighting.none:
        w[present] = counts.sum() / (present.sum() * counts[present])
        if weighting == ClassWeighting.sqrt:
            w = np.sqrt(w)
    return w


def fit_trees(X: np.ndarray, y: np.ndarray, cfg: TreesConfig, *, threads: int = 1):
    """A fitted ``HistGradientBoostingClassifier`` (no early stopping: every iteration, seeded).

    ``threads`` caps its OpenMP threads: on a shared 2-core machine two threads ran 15 times slower
    than one (spinning OpenMP workers); parallelism comes from fitting folds in processes instead.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=cfg.min_samples_leaf, l2_regularization=cfg.l2_regularization, early_stopping=False,
        random_state=cfg.seed)
    w = class_weights(y, cfg.class_weighting)[y]
    with threadpool_limits(limits=threads):
        return model.fit(X, y, sample_weight=w)


def _fold(args: tuple[np.ndarray, np.ndarray, np.ndarray, TreesConfig]) -> np.ndarray:
    X, y, test, cfg = args
    train = np.setdiff1d(np.arange(len(y)), test)
    return fit_trees(X[train], y[train], cfg).predict(X[test])


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint index sets, each class dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        members = members[rng.permutation(members.size)]
        for i, m in enumerate(members):
            parts[i % folds].append(int(m))
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def _summary(reports: list[dict]) -> dict:
    keys = ["challenge_score", "macro_f1", "accuracy"] + [f"f1_{c}" for c in CLASSES]
    vals = {k: [r["challenge_score"] if k == "challenge_score" else r["per_class_f1"][k[3:]] if k.startswith("f1_") else r[k]
                for r in reports] for k in keys}
    return {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "folds": [float(x) for x in v]}
            for k, v in vals.items()}


def cross_validate(X: np.ndarray, y: np.ndarray, cfg: TreesConfig, *, folds: int = 5, seed: int = 0, jobs: int = 1,
                   log: Callable[[str], None] | None = None) -> dict:
    """Stratified ``folds``-fold CV: per-fold reports, mean and SD (``ddof=1``) over folds, the
    out-of-fold report (every record predicted once). ``jobs`` processes fit folds side by side."""
    parts = stratified_folds(y, folds, seed)
    oof = np.zeros(len(y), np.int64)
    reports = []
    work = [(X, y, test, cfg) for test in parts]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            preds = list(pool.map(_fold, work))
    else:
        preds = [_fold(w) for w in work]
    for k, (test, pred) in enumerate(zip(parts, preds)):
        oof[test] = pred
        rep = classification_report(y[test], pred, CLASSES).to_dict()
        reports.append(rep)
        if log:
            log(f"  fold {k + 1}/{folds}: challenge {rep['challenge_score']:.3f}  "
                + "  ".join(f"{c} {rep['per_class_f1'][c]:.3f}" for c in CLASSES))
    return {"folds": folds, "seed": seed, "records": int(len(y)), "summary": _summary(reports), "per_fold": reports,
            "out_of_fold": classification_report(y, oof, CLASSES).to_dict()}


# ------------------------------------------------------------------------------------- the run


@dataclass
class TreesRun:
    run_dir: Path
    cv: dict
    test: dict
    model: object


def test_split(table: FeatureTable, cfg: RhythmTreesConfig) -> np.ndarray:
    """Indices of the fixed test records: the given ids, else a seeded stratified share."""
    if cfg.test_records:
        wanted = set(cfg.test_records)
        idx = np.asarray([i for i, r in enumerate(table.record_ids) if r in wanted], dtype=np.int64)
        if idx.size == 0:
            raise DataNotFound("none of the given test records is among the records found")
        return idx
    return split_records(table.y, test_fraction=cfg.test_fraction, val_fraction=0.0, seed=cfg.seed).test


def train_rhythm_trees(cfg: RhythmTreesConfig, *, log: Callable[[str], None] = print) -> TreesRun:
    """The recipe in the module doc; returns the run folder, CV summary, test metrics and the model."""
    t0 = time.perf_counter()
    table = feature_table(cfg.data, max_records=cfg.max_records, jobs=cfg.jobs, cache=cfg.cache, log=log)
    test = test_split(table, cfg)
    dev = np.setdiff1d(np.arange(len(table.y)), test)
    log(f"{len(table.y)} records ({len(table.skipped)} skipped): {dev.size} development, {test.size} test")
    log(f"{cfg.folds}-fold cross-validation on the development records")
    cv = cross_validate(table.X[dev], table.y[dev], cfg.trees, folds=cfg.folds, seed=cfg.seed, jobs=cfg.jobs, log=log)
    s = cv["summary"]
    log(f"CV challenge score {s['challenge_score']['mean']:.3f} ± {s['challenge_score']['sd']:.3f} (SD over folds)")
    model = fit_trees(table.X[dev], table.y[dev], cfg.trees)
    pred = model.predict(table.X[test])
    rep = classification_report(table.y[test], pred, CLASSES)
    test_metrics = {"records": int(test.size), **rep.to_dict(),
                    "intervals_95": bootstrap_intervals(table.y[test], pred, CLASSES, seed=cfg.seed)}
    log(f"test ({test.size} records): challenge score {rep.challenge_score:.3f} "
        f"{[round(v, 3) for v in test_metrics['intervals_95']['challenge_score']]}")
    ids = np.asarray(table.record_ids)
    rng = np.random.default_rng(cfg.seed)
    check = np.sort(rng.choice(test, size=min(256, test.size), replace=False))
    extract = np.asarray(table.extract_ms) if table.extract_ms else np.zeros(0)
    with owned_folder(cfg.run_dir, FolderKind.run, replace=cfg.overwrite, inputs=cfg.data) as stage:
        (stage / "config.json").write_text(json.dumps(cfg.to_json(), indent=2))
        (stage / "split.json").write_text(json.dumps({
            "test": ids[test].tolist(), "development": ids[dev].tolist(), "skipped": table.skipped, "seed": cfg.seed,
            "train_used": ids[dev].tolist(),
            "train_sha256": {table.record_ids[i]: table.sha256[i] for i in dev}}, indent=2))
        (stage / "cv.json").write_text(json.dumps(cv, indent=2))
        (stage / "metrics.json").write_text(json.dumps({
            "test": test_metrics, "cv_summary": s, "feature_version": FEATURE_VERSION, "features": list(feature_names()),
            "feature_ms": {"records": int(extract.size), "mean": float(extract.mean()) if extract.size else math.nan,
                           "median": float(np.median(extract)) if extract.size else math.nan},
            "train_s": round(time.perf_counter() - t0, 1)}, indent=2))
        (stage / "trees.pkl").write_bytes(pickle.dumps(model))
        np.savez(stage / "check.npz", X=table.X[check], y=table.y[check], record_ids=ids[check])
    return TreesRun(Path(cfg.run_dir), cv, test_metrics, model)


def load_trees_run(run_dir: str | Path):
    """(model, metrics, split, config) of a run folder :func:`train_rhythm_trees` wrote.

    ``trees.pkl`` is a pickle: load only run folders you made (an export carries ONNX, never a pickle).
    """
    run = Path(run_dir)
    missing = [f for f in RUN_FILES if not (run / f).is_file()]
    if missing:
        raise DataNotFound(f"{run} is not a rhythm-trees run folder: missing {', '.join(missing)}")
    model = pickle.loads((run / "trees.pkl").read_bytes())
    read = lambda name: json.loads((run / name).read_text())  # noqa: E731
    return model, read("metrics.json"), read("split.json"), read("config.json")


def test_records_of_export(folder: str | Path) -> tuple[str, ...]:
    """The record ids an export's accuracy gate scored (``gate.records`` of its manifest): a CNN's
    held-out test records, so the trees are tested on exactly the records the CNN was."""
    from ecgedge.manifest import load_manifest
    from ecgedge.shipped import resolve_source

    m = load_manifest(resolve_source(str(folder)))
    ids = (m.data.get("gate") or {}).get("records") or []
    if not ids:
        raise DataNotFound(f"{folder}: its manifest lists no gate records")
    return tuple(ids)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
