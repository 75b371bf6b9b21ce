"""``ecgedge evaluate beats``: score R-peak detections against reference beats, as ANSI/AAMI EC57 does.

**References.** WFDB records with an annotation file (``.atr`` by default; beat codes only, see
:func:`ecgedge.data.annotations.read_beat_reference`) and the CPSC-2019 layout (a folder with
``data/`` and ``ref/``; its 1-based ``R_peak`` indices become 0-based, :mod:`ecgedge.data.cpsc2019`).

**Detections.** ecgedge's own detector (:func:`ecgedge.beats.detect_beats`, the default),
``wfdb.processing.xqrs_detect`` followed by ``correct_peaks`` (the baseline of issue 23), or the
user's own (:func:`read_detections_file`: a CSV or JSON of 0-based sample indices per record, or
a WFDB annotation file beside each record).

Matching, the match window, the scored span and the figures are EC57's: see
:mod:`ecgedge.evaluate.beat_match`.
"""

from __future__ import annotations

import csv
import enum
import glob
import json
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ecgedge.data.annotations import BeatReference, read_beat_reference
from ecgedge.data.cpsc2019 import cpsc2019_data_files, is_cpsc2019_data_file, is_cpsc2019_folder, read_cpsc2019
from ecgedge.data.leads import lead_indices
from ecgedge.data.record_types import Record
from ecgedge.errors import BadRecord, ConfigError, DataNotFound, MissingLeads
from ecgedge.evaluate.beat_match import (CPSC2019_WINDOW_MS, EC57_LEARNING_S, EC57_WINDOW_MS, FLAG_NAMES,  # noqa: F401 (the face)
                                         SHORT_EDGE_S, SHORT_RECORD_S, BeatScore, match_beats, score_beats,
                                         scored_span, summarise, window_samples)
from ecgedge.fsio import FolderKind, atomic_write_text, claim_folder, owned_folder

REPORT_FORMAT = "ecgedge-beats-report/1"
REPORT_FILE = "beats.json"
TABLE_FILE = "beats.md"


# xqrs baseline: correct_peaks moves each detection to the largest deviation from a moving average
# (150 samples at 360 Hz, wfdb-python's demo: 0.42 s) within 100 ms. These settings reproduce issue
# 23's baseline figures (Se 100 / +P 100 on MIT-BIH 100, 92.22 / 99.78 on 208, whole records); the
# demo's radius of one beat at 230 bpm (261 ms) moves some detections of 100 and 208 onto T waves.
XQRS_SEARCH_S = 0.1
XQRS_SMOOTH_S = 150 / 360



class Layout(str, enum.Enum):
    """Where a record and its reference beats come from."""

    wfdb = "wfdb"            # .hea + signal files, reference beats in an annotation file beside it
    cpsc2019 = "cpsc2019"    # data/data_NNNNN.mat + ref/R_NNNNN.mat


class Detector(str, enum.Enum):
    """Which detector finds the beats scored (when no detections are passed in)."""

    ecgedge = "ecgedge"      # ecgedge.beats.detect_beats
    xqrs = "xqrs"            # wfdb.processing.xqrs_detect + correct_peaks (one lead)


# ---- records, references and detections ---------------------------------------------------------

@dataclass(frozen=True)
class BeatRecordRef:
    """A record to score: its id (``100``, ``data_00001``), layout and file (``.hea`` or ``data_*.mat``)."""

    record_id: str
    layout: Layout
    path: str


def find_beat_records(paths: Sequence[str | Path]) -> tuple[list[BeatRecordRef], dict[str, str]]:
    """The records among ``paths`` and, by path, the ones that cannot be records (with the reason).

    A path may be a folder in the CPSC-2019 layout (``data/`` + ``ref/``), any other folder (searched
    recursively for WFDB ``.hea``, and for CPSC-2019 layout folders inside it), a ``.hea`` file or a
    record path without extension, a ``.dat``/``.mat`` beside its ``.hea``, a CPSC-2019
    ``data_NNNNN.mat``, or a glob of these (``'mitdb/1*.hea'``). A record reached twice is listed once.
    """
    refs: dict[str, BeatRecordRef] = {}
    problems: dict[str, str] = {}

    def add(ref: BeatRecordRef) -> None:
        refs.setdefault(os.path.abspath(ref.path), ref)

    def folder(p: Path) -> None:
        if is_cpsc2019_folder(p):
            for f in cpsc2019_data_files(p):
                add(BeatRecordRef(f.stem, Layout.cpsc2019, str(f)))
            return
        for hea in sorted(p.rglob("*.hea")):
            add(BeatRecordRef(hea.stem, Layout.wfdb, str(hea)))
        for sub in sorted(d for d in p.rglob("*") if d.is_dir() and is_cpsc2019_folder(d)):
            folder(sub)

    for given in map(str, paths):
        matches = [given] if Path(given).exists() or not glob.has_magic(given) else sorted(glob.glob(given, recursive=True))
        if not matches:
            problems[given] = "no file matches this pattern"
        for item in matches:
            p = Path(item)
            if p.is_dir():
                folder(p)
            elif p.suffix.lower() == ".mat" and is_cpsc2019_data_file(p):
                add(BeatRecordRef(p.stem, Layout.cpsc2019, str(p)))
            elif p.suffix.lower() == ".hea" and p.is_file():
                add(BeatRecordRef(p.stem, Layout.wfdb, str(p)))
            elif p.suffix.lower() in (".dat", ".mat", "") and p.with_name(p.stem + ".hea").is_file():
                add(BeatRecordRef(p.stem, Layout.wfdb, str(p.with_name(p.stem + ".hea"))))
            elif not p.exists() and not p.with_name(p.name + ".hea").exists():
                problems[item] = "no such file or folder"
            else:
                problems[item] = "not a WFDB record (no .hea) nor a CPSC-2019 data file (data/data_NNNNN.mat beside ref/)"
    return sorted(refs.values(), key=lambda r: (r.record_id, r.path)), problems


def read_beat_record(ref: BeatRecordRef, annotation: str = "atr") -> tuple[Record, BeatReference]:
    """The record (ECG leads in mV) and its reference beats, at the signal's sampling rate.

    Raises:
        BadRecord: a missing or unreadable reference or signal (the reference is read first).
    """
    if ref.layout == Layout.cpsc2019:
        return read_cpsc2019(ref.path)
    from ecgedge.data.records import read_record

    beats = read_beat_reference(ref.path, annotation)
    record = read_record(ref.path)
    if record.fs != beats.fs_hz:   # leads read at k samples per frame; annotations count frames
        k = record.fs / beats.fs_hz
        beats = BeatReference(beats.record, record.fs, record.signal.shape[1], np.round(beats.samples * k).astype(np.int64),
                              beats.symbols, tuple((int(round(a * k)), int(round(b * k))) for a, b in beats.unscored))
    return record, beats


def read_detections_file(path: str | Path) -> dict[str, np.ndarray]:
    """A user's detections per record id from a CSV or JSON file.

    CSV: a header row ``record,sample`` then one row per detection (``100,370``); JSON: an object
    ``{"100": [370, 662, ...], "data_00001": [...]}``. Samples are 0-based sample indices at the
    record's own sampling rate; a record id is the record's name (``100``; ``data_00001`` for
    CPSC-2019). A record listed with no samples has no detections; a record not listed is skipped.

    Raises:
        ConfigError: an unreadable file, or one in neither form.
    """
    p = Path(path)
    out: dict[str, list[int]] = {}
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text())
            if not isinstance(data, dict):
                raise ValueError("expected an object {record id: [sample, ...]}")
            for rid, samples in data.items():
                out[str(rid)] = [int(s) for s in samples]
        elif p.suffix.lower() == ".csv":
            with p.open(newline="") as fh:
                rows = csv.reader(fh)
                head = [h.strip().lower() for h in next(rows, [])]
                if head[:2] != ["record", "sample"]:
                    raise ValueError(f"expected the header row 'record,sample', found {','.join(head)!r}")
                for row in rows:
                    if row and row[0].strip():
                        out.setdefault(row[0].strip(), [])
                        if len(row) > 1 and row[1].strip():
                            out[row[0].strip()].append(int(float(row[1])))
        else:
            raise ValueError("expected a .csv or .json file")
    except OSError as exc:
        raise ConfigError(f"--detections {p}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--detections {p}: {exc}") from None
    return {rid: np.array(sorted(s), dtype=np.int64) for rid, s in out.items()}


def detections_xqrs(signal_mv: np.ndarray, fs: float) -> np.ndarray:
    """``wfdb.processing.xqrs_detect`` on one lead, then ``correct_peaks`` (to the largest deviation
    from a 0.42-s moving average within 100 ms): sample indices."""
    from wfdb import processing

    x = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64).ravel())
    found = processing.xqrs_detect(x, fs, verbose=False)
    if len(found) == 0:
        return np.zeros(0, dtype=np.int64)
    fixed = processing.correct_peaks(x, found, search_radius=max(1, int(round(XQRS_SEARCH_S * fs))),
                                     smooth_window_size=max(1, int(round(XQRS_SMOOTH_S * fs))), peak_dir="compare")
    return np.unique(np.asarray(fixed, dtype=np.int64))


def detections_ecgedge(signal_mv: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray | None]:
    """ecgedge's detector (:func:`ecgedge.beats.detect_beats`) on every lead of ``signal_mv`` ((leads, n)
    mV; more than one: its multi-lead mode): samples, per-beat flags.

    Raises:
        ConfigError: this installation has no ``ecgedge.beats.detect_beats``.
    """
    try:
        from ecgedge.beats import detect_beats  # type: ignore[attr-defined]
    except ImportError:
        raise ConfigError("ecgedge's beat detector (ecgedge.beats.detect_beats) is not in this installation; "
                          "score --detector xqrs or your own --detections") from None
    beats = detect_beats(np.asarray(signal_mv, dtype=np.float64), float(fs))
    if float(beats.fs) != float(fs):
        raise ValueError(f"detect_beats answered at {beats.fs} Hz for a {fs} Hz signal")   # a bug, not the user's
    return np.asarray(beats.samples, dtype=np.int64), np.asarray(beats.flags)


# ---- the command --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BeatsEvalConfig:
    """``ecgedge evaluate beats``.

    Args:
        paths: records, folders or globs (:func:`find_beat_records`).
        out: report folder (new or empty; an earlier evaluation folder with ``overwrite``).
        detector: which detector runs when ``detections`` is None.
        detections: the user's detections instead: a ``.csv``/``.json`` file
            (:func:`read_detections_file`), or a WFDB annotation extension (``qrs``) read beside each
            WFDB record.
        annotation: extension of the reference annotation files (``atr``).
        window_ms: match window, ms (None: 150 for WFDB records, 75 for CPSC-2019).
        learning_s, end_s: seconds not scored at the start and the end (None: :func:`scored_span`).
        leads: leads given to the detector, by name (``MLII``; several for ecgedge's multi-lead mode);
            empty: the record's first lead.
        plots: write one PNG per record; ``panels``: at most this many zoomed panels of
            ``panel_s`` seconds around errors on records longer than a minute.
        overwrite: replace the evaluation folder ``out`` when it holds one already (only the files
            ecgedge wrote there: :mod:`ecgedge.fsio`).
    """

    paths: tuple[str, ...]
    out: str
    detector: Detector = Detector.ecgedge
    detections: str | None = None
    annotation: str = "atr"
    window_ms: float | None = None
    learning_s: float | None = None
    end_s: float | None = None
    leads: tuple[str, ...] = ()
    plots: bool = True
    panels: int = 6
    panel_s: float = 4.0
    overwrite: bool = False

    def __post_init__(self):
        if not self.paths:
            raise DataNotFound("no records to score: give WFDB records, folders or a CPSC-2019 folder")
        if self.window_ms is not None and not self.window_ms > 0:
            raise ConfigError(f"--window-ms {self.window_ms}: the match window must be positive (EC57: 150 ms)")
        for name, v in (("--learning-s", self.learning_s), ("--end-s", self.end_s)):
            if v is not None and not v >= 0:
                raise ConfigError(f"{name} {v}: seconds not scored cannot be negative")
        if self.detections is None and Detector(self.detector) == Detector.xqrs and len(self.leads) > 1:
            raise ConfigError(f"--detector xqrs takes one lead; got --lead {' --lead '.join(self.leads)}")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.annotation):
            raise ConfigError(f"--ann {self.annotation!r}: expected an annotation file extension such as atr")


@dataclass
class BeatsEvaluation:
    """What :func:`evaluate_beats` wrote: the report, its markdown table, the folder and its files."""

    report: dict
    table: str
    out: Path
    files: list[Path]
    scores: list[BeatScore]


def evaluate_beats(cfg: BeatsEvalConfig, *, log: Callable[[str], None] = print) -> BeatsEvaluation:
    """Score every record of ``cfg.paths`` and write ``beats.json``, ``beats.md`` and ``beats-RECORD.png``.

    A record that cannot be scored (no reference annotation file, an unreadable file, no detections
    for it in the user's file, a missing lead) is skipped with one line through ``log`` and counted
    in the report.

    The folder is built beside ``cfg.out`` and swapped in whole (:func:`ecgedge.fsio.owned_folder`):
    a new or empty folder, or with ``cfg.overwrite`` an evaluation folder of ecgedge's; a user's
    files there are carried over, never replaced.

    Raises:
        DataNotFound: no record could be scored.
        ConfigError: ``cfg.out`` is not ecgedge's to write (or holds an evaluation and ``cfg.overwrite``
            is not set), or an option is invalid.
    """
    out = Path(cfg.out)
    inputs = [p for p in (*cfg.paths, cfg.detections or "") if p and Path(p).exists()]
    claim_folder(out, FolderKind.evaluation, replace=cfg.overwrite, inputs=inputs)   # refuse before the work
    refs, problems = find_beat_records(cfg.paths)
    skipped: dict[str, str] = {}
    for path, why in problems.items():
        skipped[path] = why
        log(f"skipped {path}: {why}")
    user = _user_detections(cfg.detections)
    scores: list[BeatScore] = []
    plotted: list[tuple[BeatScore, np.ndarray, str]] = []
    details: list[dict] = []
    for ref in refs:
        try:
            score, signal, info = _score_record(ref, cfg, user)
        except BadRecord as exc:
            skipped[ref.record_id] = exc.reason
            log(f"skipped {ref.record_id}: {exc.reason}")
            continue
        except MissingLeads as exc:
            skipped[ref.record_id] = str(exc)
            log(f"skipped {ref.record_id}: {exc}")
            continue
        scores.append(score)
        details.append(info)
        plotted.append((score, signal, info["lead"]))
    if not scores:
        raise DataNotFound(f"no record scored ({len(skipped)} skipped: {'; '.join(f'{k}: {v}' for k, v in list(skipped.items())[:3])}"
                           f"{' ...' if len(skipped) > 3 else ''})")
    summary = summarise(scores)
    source = ({"kind": "file" if Path(cfg.detections).suffix.lower() in (".csv", ".json") else "annotations", "detections": cfg.detections}
              if cfg.detections else {"kind": "detector", "detector": Detector(cfg.detector).value})
    report: dict = {
        "format": REPORT_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "detections": source,
        "reference": {"annotation": cfg.annotation, "beat_codes": "WFDB isqrs (wfdb.io.annotation.is_qrs)"},
        "conventions": {
            "matching": "bxb (EC57's reference comparator), one-to-one, |detection - reference| <= window",
            "window_ms": cfg.window_ms if cfg.window_ms is not None else {"wfdb": EC57_WINDOW_MS, "cpsc2019": CPSC2019_WINDOW_MS},
            "not_scored": [_span_rule(cfg.learning_s, cfg.end_s), "reference VF episodes ([ to ])"],
            "gross": "TP, FN, FP summed over records; timing errors pooled",
            "average": "mean of the per-record figures",
        },
        "records": [s.to_json() | d for s, d in zip(scores, details)],
        "summary": summary,
        "counts": {"found": len(refs) + len(problems), "scored": len(scores), "skipped": len(skipped)},
        "skipped": skipped,
    }
    table = markdown_table(scores, summary)
    names = [REPORT_FILE, TABLE_FILE] + ([f"beats-{_safe(s.record)}.png" for s in scores] if cfg.plots else [])
    report["files"] = names
    with owned_folder(out, FolderKind.evaluation, replace=cfg.overwrite, inputs=inputs) as staging:
        if cfg.plots:
            from ecgedge.evaluate.plots import plot_beat_record

            for score, signal, lead in plotted:
                plot_beat_record(signal, score, staging / f"beats-{_safe(score.record)}.png",
                                 title=f"{score.record} ({lead}): {_describe(score)}", panels=cfg.panels, panel_s=cfg.panel_s)
        atomic_write_text(staging / TABLE_FILE, _markdown(report, table))
        atomic_write_text(staging / REPORT_FILE, json.dumps(report, indent=1))
    return BeatsEvaluation(report, table, out, [out / n for n in names], scores)


def _user_detections(detections: str | None) -> dict[str, np.ndarray] | str | None:
    """The user's detections: a mapping (CSV/JSON), an annotation extension, or None."""
    if detections is None:
        return None
    if Path(detections).suffix.lower() in (".csv", ".json") or os.sep in detections or Path(detections).exists():
        return read_detections_file(detections)
    if not re.fullmatch(r"[A-Za-z0-9_]+", detections):
        raise ConfigError(f"--detections {detections!r}: expected a .csv or .json file, or an annotation file extension such as qrs")
    return detections


def _score_record(ref: BeatRecordRef, cfg: BeatsEvalConfig, user) -> tuple[BeatScore, np.ndarray, dict]:
    record, beats = read_beat_record(ref, cfg.annotation)
    rows = lead_indices(record.lead_names, cfg.leads) if cfg.leads else [0]
    lead = ", ".join(record.lead_names[i] for i in rows)
    signal = record.signal[rows].astype(np.float64)
    n = signal.shape[1]
    flags = None
    if isinstance(user, dict):
        if ref.record_id not in user:
            raise BadRecord(ref.record_id, f"no detections for record {ref.record_id} in {cfg.detections}")
        det = user[ref.record_id]
    elif isinstance(user, str):
        if ref.layout != Layout.wfdb:
            raise BadRecord(ref.record_id, f"--detections {user} reads WFDB annotation files; a CPSC-2019 record has none "
                                           "(pass a CSV or JSON of detections)")
        try:
            det = read_beat_reference(ref.path, user).samples
        except BadRecord as exc:
            raise BadRecord(ref.record_id, f"detections: {exc.reason}") from None
    elif Detector(cfg.detector) == Detector.xqrs:
        det = detections_xqrs(signal[0], record.fs)
    else:
        det, flags = detections_ecgedge(signal, record.fs)
    if len(det) and (det.min() < 0 or det.max() >= n):
        raise BadRecord(ref.record_id, f"detections outside the record's samples 0..{n - 1} (min {det.min()}, max {det.max()})")
    window = cfg.window_ms if cfg.window_ms is not None else (CPSC2019_WINDOW_MS if ref.layout == Layout.cpsc2019 else EC57_WINDOW_MS)
    try:
        span = scored_span(n, record.fs, learning_s=cfg.learning_s, end_s=cfg.end_s)
    except BadRecord as exc:
        raise BadRecord(ref.record_id, exc.reason) from None
    score = score_beats(beats.samples, det, record.fs, window_ms=window, span=span, unscored=beats.unscored,
                        record=ref.record_id, flags=flags)
    return score, signal[0], {"layout": ref.layout.value, "path": ref.path, "lead": lead, "duration_s": round(n / record.fs, 3)}


def markdown_table(scores: Sequence[BeatScore], summary: Mapping) -> str:
    """Per-record rows, then the gross and average rows (Se, +P in %; timing errors in ms)."""
    head = ["| record | window (ms) | beats | TP | FN | FP | Se (%) | +P (%) | F1 | mean \\|err\\| (ms) | p95 \\|err\\| (ms) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def pct(x) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"

    def num(x, fmt: str) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    rows = [f"| {s.record} | {s.window_ms:g} | {s.tp + s.fn} | {s.tp} | {s.fn} | {s.fp} | {pct(s.se)} | {pct(s.ppv)} | "
            f"{num(s.f1, '.4f')} | {num(s.mean_abs_error_ms, '.1f')} | {num(s.p95_abs_error_ms, '.1f')} |" for s in scores]
    g, a = summary["gross"], summary["average"]
    rows.append(f"| **gross** ({g['records']} records) | | {g['reference_beats']} | {g['tp']} | {g['fn']} | {g['fp']} | {pct(g['se'])} | "
                f"{pct(g['ppv'])} | {num(g['f1'], '.4f')} | {num(g['mean_abs_error_ms'], '.1f')} | {num(g['p95_abs_error_ms'], '.1f')} |")
    rows.append(f"| **average** of records | | | | | | {pct(a['se'])} | {pct(a['ppv'])} | {num(a['f1'], '.4f')} | "
                f"{num(a['mean_abs_error_ms'], '.1f')} | {num(a['p95_abs_error_ms'], '.1f')} |")
    return "\n".join(head + rows)


def _markdown(report: dict, table: str) -> str:
    src = report["detections"]
    what = src.get("detector") or src.get("detections")
    c = report["conventions"]
    w = c["window_ms"]
    window = (f"{w['wfdb']:g} ms (WFDB records), {w['cpsc2019']:g} ms (CPSC-2019 records)" if isinstance(w, dict) else f"{w:g} ms")
    lines = [f"# Beat detection scored: {what}", "",
             f"Matching: {c['matching']}; window: {window}. Not scored: {'; '.join(c['not_scored'])}. "
             f"Gross: {c['gross']}; average: {c['average']}.", "", table, ""]
    if report["skipped"]:
        lines += [f"Skipped ({len(report['skipped'])}):", ""] + [f"- {k}: {v}" for k, v in report["skipped"].items()] + [""]
    return "\n".join(lines)


def _span_rule(learning_s: float | None, end_s: float | None) -> str:
    def rule(value: float | None, long: float, short: float) -> str:
        return f"{value:g} s" if value is not None else f"{long:g} s (records >= {SHORT_RECORD_S:g} s), {short:g} s (shorter)"

    return (f"the first {rule(learning_s, EC57_LEARNING_S, SHORT_EDGE_S)} of each record (EC57's learning period; "
            f"CPSC-2019's edge); the last {rule(end_s, 0.0, SHORT_EDGE_S)}")


def _describe(s: BeatScore) -> str:
    return f"Se {pct_or_dash(s.se)}, +P {pct_or_dash(s.ppv)}, {s.fn} FN, {s.fp} FP (window {s.window_ms:g} ms)"


def pct_or_dash(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.2f} %"


def _safe(record_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", record_id)


__all__ = ["BeatRecordRef", "BeatScore", "BeatsEvalConfig", "BeatsEvaluation", "Detector", "Layout",
           "evaluate_beats", "find_beat_records", "match_beats", "read_beat_record", "read_detections_file", "score_beats",
           "scored_span", "summarise"]
