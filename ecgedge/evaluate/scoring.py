"""``ecgedge evaluate``: score a trained model on any labelled data set (a new hospital's records).

The model is a training run (a PyTorch classifier checkpoint, or the run folder holding ``best.pt``)
or an export folder (run by the torch-free runtime at one of its gated precisions). Either way the
records are cut into windows with the model's own preprocessing and window length
(:func:`~ecgedge.data.windows.build_windows`, which resamples records at another rate), every
window of a record is classified, and the record's prediction is the argmax of the mean of its
windows' softmax probabilities. Records that cannot be used are skipped and counted.

The evaluation folder::

    OUT/
      report.json      source, data, counts, skipped records, record- and window-level metrics with
                       95 % bootstrap intervals (records resampled), the aggregation rule, leakage
      confusion.json   record- and window-level confusion matrices (rows = truth)
      confusion.png    the record-level one
      predictions.csv  record id, truth, prediction, one probability column per class, windows

Leakage: when records of the data set were among the model's training records (by record id, or
by content hash for renamed copies; see :mod:`ecgedge.data.provenance`), the report says so and
:attr:`EvaluateResult.leakage` is truthy.

The export path imports no torch: a device (or a hospital's workstation) without it can evaluate.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ecgedge.bounds import problem as bound_problem
from ecgedge.config import DataConfig, LabelScheme, PreprocessConfig, WindowConfig, config_to_dict
from ecgedge.data.labels import class_names as scheme_classes
from ecgedge.data.preprocess import normalise_windows
from ecgedge.data.provenance import TrainingRecords, data_record_hashes, training_records_from_split
from ecgedge.data.records import find_records, read_record, select_leads
from ecgedge.data.windows import LoadSummary, build_windows
from ecgedge.errors import BadRecord, ConfigError, ShapeMismatch
from ecgedge.evaluate.metrics import bootstrap_intervals, classification_report, record_decisions
from ecgedge.runtime.softmax import softmax
from ecgedge.evaluate.plots import plot_confusion
from ecgedge.fsio import FolderKind, claim_folder, owned_folder
from ecgedge.hashing import file_sha256
from ecgedge.runtime.base import Backend, Precision
from ecgedge.shipped import resolve_source

REPORT_FORMAT = "ecgedge.evaluation/1"
AGGREGATION = ("record prediction = argmax of the mean of the softmax probabilities of all its windows "
               "(every window of the record, no cap); record truth = the record's label (atr: the majority of its windows' labels)")
LEAD_PROBE_RECORDS = 8  # records read up front to refuse a lead mismatch before reading the whole data set


class SourceKind(str, enum.Enum):
    checkpoint = "checkpoint"   # PyTorch classifier checkpoint (FP32, needs torch)
    export = "export"           # export folder with manifest.json (ONNX Runtime / TensorRT, no torch)


@dataclass(frozen=True)
class EvaluateConfig:
    """``ecgedge evaluate``: which model, on which labelled records, written where.

    ``source`` is a checkpoint file, a run folder (``best.pt``), an export folder or a shipped
    model's name. ``hop`` is the step between windows in samples at the model's rate (0 = the
    window length: back-to-back windows). ``precision`` and ``backend`` choose the artefact of an
    export folder (default: what its manifest recommends for ``ort-cpu``); a checkpoint runs in
    PyTorch FP32. ``bootstrap_repeats`` resamples of the records give the 95 % intervals.
    """

    source: str
    data: DataConfig
    labels: LabelScheme
    out: str
    hop: int = 0
    precision: Precision | None = None
    backend: Backend | None = None
    threads: int | None = None
    batch_size: int = 64
    bootstrap_repeats: int = 1000
    seed: int = 0
    public_key: str | None = None  # export folders: must be signed by this key (--key); a signature is checked anyway

    def __post_init__(self):
        object.__setattr__(self, "labels", LabelScheme(self.labels))
        if self.precision is not None:
            object.__setattr__(self, "precision", Precision(self.precision))
        if self.backend is not None:
            object.__setattr__(self, "backend", Backend(self.backend))
        if not self.data.paths:
            raise ConfigError("give at least one --data path")
        if self.hop < 0 or self.batch_size < 1:
            raise ConfigError(f"hop >= 0 and batch_size >= 1 required, got {self.hop}, {self.batch_size}")
        if why := bound_problem("bootstrap repeats", self.bootstrap_repeats):
            raise ConfigError(f"--bootstrap: {why}")


@dataclass
class Leakage:
    """Overlap of the evaluated records with the model's training records.

    ``by_id``: evaluated record ids that are training record ids. ``by_hash``: evaluated record id ->
    the training record whose content hash it shares (a renamed copy has a different id). ``checked``
    is False where the source names no training records (``note`` says why).
    """

    checked: bool
    note: str = ""
    training_records: int = 0
    hashes_known: bool = False
    by_id: list[str] = field(default_factory=list)
    by_hash: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> list[str]:
        return sorted(set(self.by_id) | set(self.by_hash))

    def __bool__(self) -> bool:
        return bool(self.records)

    def describe(self, evaluated: int) -> str:
        """One line: how many evaluated records match training records, and how."""
        renamed = len(set(self.by_hash) - set(self.by_id))
        id_only = len(set(self.by_id) - set(self.by_hash)) if self.hashes_known else 0
        how = [f"{len(self.by_id)} by record id"]
        how.append(f"{len(self.by_hash)} by content hash" if self.hashes_known else "content hashes not recorded")
        if renamed:
            how.append(f"{renamed} renamed cop{'y' if renamed == 1 else 'ies'}")
        if id_only:  # the same recording in another format or after resampling has other bytes: still warn
            how.append(f"{id_only} with the id only (other bytes: another format of the same recording, or a different one)")
        return (f"{len(self.records)} of {evaluated} evaluated records match the model's training records ({'; '.join(how)}): "
                "scores on them overstate how the model does on new data")

    def to_dict(self) -> dict:
        return {"checked": self.checked, "note": self.note, "training_records": self.training_records, "hashes_known": self.hashes_known,
                "records": len(self.records), "by_id_count": len(self.by_id), "by_hash_count": len(self.by_hash),
                "renamed_copies": sorted(set(self.by_hash) - set(self.by_id)),
                "id_only": sorted(set(self.by_id) - set(self.by_hash)) if self.hashes_known else [],
                "by_id": self.by_id, "by_hash": self.by_hash}


@dataclass
class ModelSource:
    """A model to score, whatever its form: what its input must be and how to run it."""

    path: Path
    kind: SourceKind
    name: str
    leads: tuple[str, ...]
    labels: tuple[str, ...]
    scheme: str | None
    preprocess: PreprocessConfig
    window_samples: int
    precision: Precision
    backend: str               # "torch" for a checkpoint
    identity: dict[str, Any]
    training: TrainingRecords | None
    training_note: str
    runner: Callable[[], Any]  # a fresh runner: ``with runner() as r: r.infer(x)``


@dataclass
class EvaluateResult:
    out: Path
    report: dict[str, Any]
    leakage: Leakage
    summary: LoadSummary

    @property
    def records(self) -> dict[str, Any]:
        return self.report["records"]


def source_name(text: str | Path) -> str:
    """A short name for ``text`` (a run folder's name for ``runs/NAME/best.pt``), for default folder names."""
    path = resolve_source(text)
    if path.is_file():
        return path.parent.name if path.name in ("best.pt", "last.pt") else path.stem
    return path.name if Path(text).exists() else str(text)


def open_source(cfg: EvaluateConfig) -> ModelSource:
    """The model ``cfg.source`` names; torch is imported only for a checkpoint."""
    path = resolve_source(cfg.source)
    name = source_name(cfg.source)
    if path.is_dir() and (path / "manifest.json").is_file():
        return _export_source(path, name, cfg)
    if (path.is_file() and path.suffix == ".pt") or (path.is_dir() and any((path / n).is_file() for n in ("best.pt", "last.pt"))):
        if cfg.backend is not None or cfg.precision not in (None, Precision.fp32):
            raise ConfigError(f"{path} is a PyTorch checkpoint (runs in FP32): --precision and --backend apply to export folders")
        return _checkpoint_source(path, name)
    raise ConfigError(f"{path} is neither a training run (a .pt checkpoint or a folder with best.pt) nor an export folder (manifest.json)")


def _checkpoint_source(path: Path, name: str) -> ModelSource:
    """A checkpoint as a model source: :func:`~ecgedge.evaluate.reference.usable_checkpoint`'s rule (a
    classifier of a finished run: what export refuses, evaluate refuses), run by the one PyTorch reference runner."""
    from ecgedge.evaluate.reference import TorchRunner, usable_checkpoint

    ckpt, _ = usable_checkpoint(path, "classifier", what="evaluate")
    tc = ckpt.train_config
    # The split beside the checkpoint first (a run folder that moved), then where the run was written.
    candidates = [Path(ckpt.path).parent / "split.json"] + ([Path(tc["run_dir"]) / "split.json"] if tc.get("run_dir") else [])
    training = next((t for t in map(training_records_from_split, candidates) if t is not None), None)
    note = "" if training else f"no split.json of the run found ({', '.join(map(str, candidates))}): leakage not checked"

    def runner():
        return TorchRunner.from_checkpoint(ckpt)

    return ModelSource(Path(ckpt.path), SourceKind.checkpoint, name, tuple(ckpt.leads), tuple(ckpt.labels), tc.get("labels"),
                       ckpt.preprocess, ckpt.window.samples, Precision.fp32, "torch",
                       {"checkpoint": str(ckpt.path), "checkpoint_sha256": file_sha256(ckpt.path), "epoch": ckpt.epoch},
                       training, note, runner)


def _export_source(folder: Path, name: str, cfg: EvaluateConfig) -> ModelSource:
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime.loader import runner_from_export

    manifest = load_manifest(folder, verify=True, public_key=cfg.public_key)
    backend = cfg.backend or Backend.ort_cpu
    # Built now (cheap, nothing runs until entered): a rejected artefact or a missing backend is refused
    # before any record is read, and the runner says which precision the manifest's policy picked.
    runner = runner_from_export(folder, cfg.precision, backend, threads=cfg.threads, manifest=manifest)
    assert runner.precision is not None  # a runner of an export folder runs one of its artefacts
    file = Path(runner.model_path).name
    trained = manifest.data.get("training_records")
    training = TrainingRecords.from_dict(trained, origin=str(folder / "manifest.json")) if trained else None
    note = "" if training else f"{folder}/manifest.json names no training records (exported before ecgedge recorded them): leakage not checked"
    status = next((a.get("status") for a in manifest.artefacts.values() if a.get("file") == file), None)
    return ModelSource(folder, SourceKind.export, name, manifest.leads, manifest.labels, manifest.data.get("label_scheme"),
                       manifest.preprocess_config(), manifest.window_samples, runner.precision, backend.value,
                       {"manifest": str(folder / "manifest.json"), "export_name": manifest.data.get("name"), "artefact": file,
                        "artefact_sha256": manifest.data.get("files", {}).get(file, {}).get("sha256"), "status": status,
                        "source_checkpoint_sha256": manifest.data.get("source", {}).get("checkpoint_sha256")},
                       training, note, lambda: runner)


def evaluate_source(cfg: EvaluateConfig, *, progress: bool = True) -> EvaluateResult:
    """Score ``cfg.source`` on the labelled records of ``cfg.data`` and write the evaluation folder ``cfg.out``.

    Raises:
        ConfigError: the scheme's classes are not the model's, or ``cfg.out`` is a foreign folder.
        ShapeMismatch: none of the records has the model's leads (one line naming both).
        DataNotFound: no usable record.
    """
    out = Path(cfg.out)
    evaluation_folder(out, cfg.data.paths)  # refused before minutes of work
    src = open_source(cfg)
    check_classes(src, cfg.labels)
    refs = find_records(cfg.data.paths)
    _check_leads(src, refs[: cfg.data.max_records] if cfg.data.max_records else refs, cfg.data.paths)

    hop = cfg.hop or src.window_samples
    window = WindowConfig(samples=src.window_samples, hop=hop, max_per_record=0)
    ws = build_windows(cfg.data, src.leads, src.preprocess, window, cfg.labels, progress=progress)
    if progress:
        tqdm.write(ws.summary.describe())
    to_model = _class_map(src, ws.class_names, cfg.labels)

    idx = np.flatnonzero(ws.labels >= 0)
    logits = []
    with src.runner() as runner:
        for start in tqdm(range(0, len(idx), cfg.batch_size), desc=f"evaluate ({src.backend} {src.precision.value})", unit="batch",
                          disable=not progress, leave=False):
            x, _ = normalise_windows(ws.windows[idx[start:start + cfg.batch_size]], src.preprocess)
            logits.append(runner.infer(x))
    probs = softmax(np.concatenate(logits).astype(np.float64))
    y_win = to_model[ws.labels[idx]]
    win_record = ws.window_record[idx]
    win_report = classification_report(y_win, probs.argmax(1), src.labels)
    recs, rec_truth, rec_probs = record_decisions(probs, y_win, win_record)
    rec_pred = rec_probs.argmax(1)
    rec_windows = np.bincount(np.searchsorted(recs, win_record), minlength=len(recs))
    rec_report = classification_report(rec_truth, rec_pred, src.labels)
    intervals = bootstrap_intervals(rec_truth, rec_pred, src.labels, repeats=cfg.bootstrap_repeats, seed=cfg.seed)
    record_ids = [ws.record_ids[r] for r in recs]

    leakage = leakage_of(src, cfg.data, record_ids)
    summary = ws.summary
    report = {
        "format": REPORT_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"given": str(cfg.source), "path": str(src.path), "kind": src.kind.value, "name": src.name,
                   "precision": src.precision.value, "backend": src.backend, "leads": list(src.leads), "labels": list(src.labels),
                   "label_scheme": src.scheme, **src.identity},
        "data": {"paths": list(cfg.data.paths), "labels": cfg.labels.value, "labels_file": cfg.data.labels_file},
        "preprocess": config_to_dict(src.preprocess),
        "window": {"samples": window.samples, "hop": window.hop, "fs_hz": src.preprocess.fs_hz,
                   "seconds": window.samples / src.preprocess.fs_hz, "max_per_record": "no cap"},
        "aggregation": AGGREGATION,
        "counts": {"records_found": summary.found, "records_used": len(summary.used), "records_scored": len(record_ids),
                   "records_skipped": len(summary.skipped), "windows": int(len(idx))},
        "skipped": summary.skipped,
        "skip_reasons": dict(summary.reasons()),
        "windows_skipped": summary.windows_skipped,   # windows lost to invalid samples, per record
        "ignored_channels": summary.ignored_channels,  # non-ECG channels left out, with record counts
        "records": rec_report.to_dict() | {"intervals": intervals, "interval_level": 0.95, "bootstrap_repeats": cfg.bootstrap_repeats,
                                          "bootstrap_seed": cfg.seed, "interval_method": "percentile bootstrap, records resampled with replacement"},
        # No intervals at window level: the windows of one record are not independent draws.
        "windows": win_report.to_dict(),
        "leakage": leakage.to_dict() | ({"warning": leakage.describe(len(record_ids))} if leakage else {}),
    }
    with evaluation_folder(out, (*cfg.data.paths, src.path)) as staging:
        (staging / "report.json").write_text(json.dumps(report, indent=2))
        (staging / "confusion.json").write_text(json.dumps({"class_names": list(src.labels), "rows": "truth", "columns": "prediction",
                                                           "records": rec_report.confusion.tolist(), "windows": win_report.confusion.tolist()}, indent=2))
        (staging / "predictions.csv").write_text(predictions_csv(record_ids, rec_truth, rec_pred, rec_probs, rec_windows, src.labels))
        title = f"{src.name} on {len(record_ids)} records: macro F1 {rec_report.macro_f1:.3f}"
        plot_confusion(rec_report.confusion, src.labels, staging / "confusion.png", title)
    return EvaluateResult(out, report, leakage, summary)


_EVALUATION_FILES = ("report.json", "confusion.json", "predictions.csv", "confusion.png")


def evaluation_folder(out: Path, inputs):
    """The evaluation folder ``out`` as an owned folder (:mod:`ecgedge.fsio`): new, empty, or an
    earlier evaluation, whose own files are replaced (a user's files beside them are kept); a
    user's folder (their own ``report.json`` included) or one holding ``inputs`` is refused.
    Checks at once; the context manager this returns builds and swaps the folder in."""
    claim_folder(out, FolderKind.evaluation, replace=True, inputs=inputs, legacy=_legacy_evaluation)
    return owned_folder(out, FolderKind.evaluation, replace=True, inputs=inputs, legacy=_legacy_evaluation)


def _legacy_evaluation(folder: Path) -> list[str] | None:
    """The files of an evaluation written before folder markers (its ``report.json`` in ecgedge's format)."""
    try:
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT:
        return None
    return [n for n in _EVALUATION_FILES if (folder / n).is_file()]


def check_classes(src: ModelSource, scheme: LabelScheme) -> None:
    """Refuse (:class:`ConfigError`) a label scheme whose classes the model cannot be scored on."""
    if scheme == LabelScheme.atr:
        return  # the data's annotations define the classes: checked once they are read
    want = scheme_classes(scheme)
    if set(want) != set(src.labels):
        hint = f"; evaluate it with --labels {src.scheme}" if src.scheme and src.scheme != scheme.value else ""
        raise ConfigError(f"{src.name} classifies {', '.join(src.labels)} ({src.scheme or 'unknown scheme'}); "
                          f"--labels {scheme.value} gives {', '.join(want)}{hint}")


def _class_map(src: ModelSource, data_classes, scheme: LabelScheme) -> np.ndarray:
    """Model output index of each of the data's classes (matched by name)."""
    unknown = [c for c in data_classes if c not in src.labels]
    if unknown:
        raise ConfigError(f"the data's {scheme.value} classes {', '.join(unknown)} are not among the model's {', '.join(src.labels)}")
    return np.array([src.labels.index(c) for c in data_classes], dtype=np.int64)


def _check_leads(src: ModelSource, refs, paths) -> None:
    """Refuse at once when a sample of the records cannot serve the model's leads (a 12-lead model on a
    single-lead set would otherwise read every record only to skip each one)."""
    step = max(1, len(refs) // LEAD_PROBE_RECORDS)
    readable, have = 0, Counter[str]()
    for ref in refs[::step][:LEAD_PROBE_RECORDS]:
        try:
            rec = read_record(ref)
        except BadRecord:
            continue
        readable += 1
        try:
            select_leads(rec, src.leads)
            return
        except BadRecord:
            have[f"{', '.join(rec.lead_names)} ({len(rec.lead_names)} lead{'s' if len(rec.lead_names) > 1 else ''})"] += 1
    if readable:
        raise ShapeMismatch(f"{src.name} needs {len(src.leads)} lead{'s' if len(src.leads) > 1 else ''} {', '.join(src.leads)}; "
                            f"the records in {', '.join(map(str, paths))} have {'; '.join(have)} "
                            f"(none of {readable} records read can serve the model)")


def leakage_of(src: ModelSource, data: DataConfig, record_ids: list[str]) -> Leakage:
    """Which of the scored records the model was trained on (by id and content hash), or why that is not known."""
    if src.training is None:
        return Leakage(checked=False, note=src.training_note)
    train = src.training
    train_ids = set(train.ids)
    by_id = [r for r in record_ids if r in train_ids]
    by_hash: dict[str, str] = {}
    if train.sha256:
        owner = {sha: rid for rid, sha in train.sha256.items()}
        for rid, sha in data_record_hashes(DataConfig(paths=data.paths, max_records=data.max_records), record_ids).items():
            if sha in owner:
                by_hash[rid] = owner[sha]
    note = "" if train.sha256 else "the source records training ids only (no content hashes): renamed copies cannot be found"
    return Leakage(True, note, len(train.ids), bool(train.sha256), by_id, dict(sorted(by_hash.items())))


def predictions_csv(record_ids, truth, pred, probs, windows, labels) -> str:
    """``predictions.csv``: one row per record (id, truth, prediction, each class's probability, windows)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["record_id", "truth", "predicted", *(f"p_{c}" for c in labels), "windows"])
    for rid, t, p, pr, n in zip(record_ids, truth, pred, probs, windows):
        w.writerow([rid, labels[t], labels[p], *(f"{v:.6f}" for v in pr), int(n)])
    return buf.getvalue()
