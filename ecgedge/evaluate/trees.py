"""``ecgedge evaluate`` on a rhythm-trees export: each record's features
(:func:`~ecgedge.beats.record_features.record_features`, the whole record) through the ONNX trees
(:class:`~ecgedge.runtime.trees_runner.TreesRunner`), scored at record level with the same report,
bootstrap intervals, leakage check and evaluation folder as every other model
(:func:`~ecgedge.evaluate.scoring.evaluate_source` hands a trees export here).

A record is one decision (there are no windows): the report's ``windows`` section repeats the
record-level one and ``counts.windows`` is the number of records scored.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ecgedge.beats.qrs import MIN_FS_HZ
from ecgedge.beats.record_features import FEATURE_VERSION, feature_names, record_features
from ecgedge.config import PreprocessConfig
from ecgedge.data.labels import record_label
from ecgedge.data.provenance import TrainingRecords
from ecgedge.data.records import find_records, read_record
from ecgedge.data.windows import LoadSummary
from ecgedge.errors import BadRecord, DataNotFound
from ecgedge.evaluate.metrics import bootstrap_intervals, classification_report
from ecgedge.evaluate.plots import plot_confusion
from ecgedge.evaluate.scoring import (REPORT_FORMAT, EvaluateConfig, EvaluateResult, ModelSource, SourceKind, check_classes,
                                      evaluation_folder, leakage_of, predictions_csv, source_name)
from ecgedge.runtime.base import Precision
from ecgedge.runtime.trees_runner import TreesRunner
from ecgedge.shipped import resolve_source

AGGREGATION = "record prediction = argmax of the trees' class probabilities for the record's features (the whole record, one lead)"


def features_of_records(paths, *, labels, labels_file: str | None = None, max_records: int = 0, progress: bool = False):
    """(record ids, data labels, features (R, F) float32, LoadSummary) of the labelled single-lead records under ``paths``."""
    refs = find_records(list(paths))
    if max_records:
        refs = refs[:max_records]
    summary = LoadSummary(found=len(refs))
    ids, truth, rows = [], [], []
    for ref in tqdm(refs, desc="features", unit="record", disable=not progress, leave=False):
        try:
            rec = read_record(ref, label_table=labels_file)
            label = record_label(rec, labels)
            if rec.signal.shape[0] != 1:
                raise BadRecord(ref.record_id, f"{rec.signal.shape[0]} leads: the rhythm trees take a single-lead record")
            if rec.fs < MIN_FS_HZ:
                raise BadRecord(ref.record_id, f"sampled at {rec.fs:g} Hz: the QRS detector needs at least {MIN_FS_HZ:g} Hz")
        except BadRecord as exc:
            summary.skipped[ref.record_id] = exc.reason
            continue
        ids.append(rec.record_id)
        truth.append(label)
        rows.append(record_features(rec.signal[0], rec.fs).values)
        summary.used[rec.record_id] = 1
    X = np.stack(rows) if rows else np.zeros((0, len(feature_names())), np.float32)
    return ids, truth, X, summary


def evaluate_trees(cfg: EvaluateConfig, *, progress: bool = True) -> EvaluateResult:
    """Score the trees export ``cfg.source`` on ``cfg.data`` and write the evaluation folder ``cfg.out``."""
    out = Path(cfg.out)
    evaluation_folder(out, cfg.data.paths)
    folder = resolve_source(cfg.source)
    runner = TreesRunner(folder, threads=cfg.threads or 1)
    runner.check_features(feature_names(), FEATURE_VERSION)
    m = runner.manifest
    trained = m.data.get("training_records")
    file = Path(runner.model_path).name
    src = ModelSource(folder, SourceKind.export, source_name(cfg.source), m.leads, m.labels, m.data.get("label_scheme"),
                      PreprocessConfig(), 0, Precision.fp32, "ort-cpu",
                      {"manifest": str(folder / "manifest.json"), "export_name": m.data.get("name"), "artefact": file,
                       "artefact_sha256": m.data.get("files", {}).get(file, {}).get("sha256"), "status": "reference",
                       "model_kind": m.data.get("kind"), "feature_version": FEATURE_VERSION},
                      TrainingRecords.from_dict(trained, origin=str(folder / "manifest.json")) if trained else None,
                      "" if trained else f"{folder}/manifest.json names no training records: leakage not checked", lambda: runner)
    check_classes(src, cfg.labels)
    ids, truth_names, X, summary = features_of_records(cfg.data.paths, labels=cfg.labels, labels_file=cfg.data.labels_file,
                                                       max_records=cfg.data.max_records, progress=progress)
    if not ids:
        raise DataNotFound(f"no usable labelled single-lead record under {', '.join(cfg.data.paths)}")
    unknown = sorted(set(truth_names) - set(src.labels))
    if unknown:
        raise DataNotFound(f"the data's classes {', '.join(unknown)} are not among the model's {', '.join(src.labels)}")
    truth = np.array([src.labels.index(t) for t in truth_names], dtype=np.int64)
    with runner:
        pred, probs = runner.decide(X)
    rep = classification_report(truth, pred, src.labels)
    intervals = bootstrap_intervals(truth, pred, src.labels, repeats=cfg.bootstrap_repeats, seed=cfg.seed)
    leakage = leakage_of(src, cfg.data, ids)
    report = {
        "format": REPORT_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"given": str(cfg.source), "path": str(folder), "kind": src.kind.value, "name": src.name, "precision": "fp32",
                   "backend": "ort-cpu", "leads": list(src.leads), "labels": list(src.labels), "label_scheme": src.scheme, **src.identity},
        "data": {"paths": list(cfg.data.paths), "labels": cfg.labels.value, "labels_file": cfg.data.labels_file},
        "features": {"version": FEATURE_VERSION, "count": len(feature_names())},
        "aggregation": AGGREGATION,
        "counts": {"records_found": summary.found, "records_used": len(summary.used), "records_scored": len(ids),
                   "records_skipped": len(summary.skipped), "windows": len(ids)},
        "skipped": summary.skipped,
        "skip_reasons": dict(summary.reasons()),
        "records": rep.to_dict() | {"intervals": intervals, "interval_level": 0.95, "bootstrap_repeats": cfg.bootstrap_repeats,
                                    "bootstrap_seed": cfg.seed, "interval_method": "percentile bootstrap, records resampled with replacement"},
        "windows": rep.to_dict() | {"note": "one decision per record: the same as records"},
        "leakage": leakage.to_dict() | ({"warning": leakage.describe(len(ids))} if leakage else {}),
    }
    with evaluation_folder(out, (*cfg.data.paths, folder)) as staging:
        (staging / "report.json").write_text(json.dumps(report, indent=2))
        (staging / "confusion.json").write_text(json.dumps({"class_names": list(src.labels), "rows": "truth", "columns": "prediction",
                                                           "records": rep.confusion.tolist(), "windows": rep.confusion.tolist()}, indent=2))
        (staging / "predictions.csv").write_text(predictions_csv(ids, truth, pred, probs, np.ones(len(ids), np.int64), src.labels))
        plot_confusion(rep.confusion, src.labels, staging / "confusion.png", f"{src.name} on {len(ids)} records: macro F1 {rep.macro_f1:.3f}")
    return EvaluateResult(out, report, leakage, summary)
