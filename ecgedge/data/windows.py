"""Windows cut from records, preprocessed once and cached as a memory-mapped array.

:func:`build_windows` reads every record under the data paths (in parallel worker processes),
keeps the requested leads, runs the shared preprocessing (``ecgedge.data.preprocess``) and cuts
``WindowConfig.samples``-long windows aligned to the record's end. Bad records are skipped and
named in :class:`LoadSummary` with their reason; nothing is silently dropped or padded.

Invalid samples (NaN/inf in the leads used: WFDB's "no sample" value, a channel absent from a
segment of a multi-segment record) cost only the windows that touch them: a window is usable when
no invalid sample lies in the input it is computed from, i.e. its own span, the settling period
before it (``PreprocessConfig.settle_s``, as at a record's start) and the resampler's FIR span
(:func:`clean_window_mask`). The preprocessing is causal, so an invalid stretch cannot reach the
windows before it; it is bridged by a straight line before filtering (no step for the filters to
ring on after it). Such windows are counted per record with the invalid sample ranges
(:attr:`LoadSummary.windows_skipped`); a record is skipped only when no window survives. Quality
checks (flat, saturated, implausible) look at the valid samples. Channels that are no ECG lead
(``ABP`` mmHg, ``PLETH`` NU ...) never reach here; the readers name them and the summary counts
them (:attr:`LoadSummary.ignored_channels`).

The cache lives in ``DataConfig.cache_dir`` (default ``$ECGEDGE_CACHE`` or ``~/.cache/ecgedge``)
under a key that hashes the bytes of every file a record reads (the sha256 of its header, data
files, annotations where read and label tables: :func:`~ecgedge.data.records.record_files`; a
missing file counts too), the label tables, leads, label scheme and every preprocessing and window
parameter, so a second run with the same inputs opens the memory map instead of preprocessing
thousands of records, and any changed byte rebuilds it. Content, not size and mtime: ``cp -p``,
``rsync -t`` and ``touch -r`` keep both through a same-size edit, and a stat key then served the old
windows. A hit reads every data file once (``benchmarks/test_window_cache_speed.py``, figures in
``docs/reliability-round3.md``).

Cached windows are band-passed mV (float32, not normalised): the trainer normalises per window
with :func:`ecgedge.data.preprocess.normalise_windows`, keeping the scale so the reconstruction
error can be reported in µV² as well as in normalised units.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from ecgedge.config import DataConfig, LabelScheme, PreprocessConfig, WindowConfig, config_to_dict
from ecgedge.data import labels as labelmaps
from ecgedge.data.preprocess import StreamingResampler, preprocess_signal, window_starts
from ecgedge.data.quality import nonfinite_problems, rate_problem, signal_problems
from ecgedge.data.records import (RecordRef, find_label_tables, find_orphan_data_files, find_records, load_label_table,
                                  read_record, record_files, select_leads)
from ecgedge.errors import BadRecord, DataNotFound
from ecgedge.hashing import file_sha256, value_sha256
from ecgedge.paths import cache_root

CACHE_VERSION = 3   # 2: invalid samples skip windows, not records; other channels ignored; 3: keyed by content


@dataclass
class LoadSummary:
    """What happened to every record found: used (with its window count) or skipped (with why); the
    ``orphans``, data files (``.mat``/``.dat``) without a header, which no record reads; the windows
    lost to invalid samples; the non-ECG channels left out."""

    found: int = 0
    used: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    windows_skipped: dict[str, str] = field(default_factory=dict)
    """Used records that lost windows to invalid samples: record id -> ``"2 of 9 windows: NaN in lead
    II at samples 100-179 (0.400-0.716 s)"``."""
    ignored_channels: dict[str, int] = field(default_factory=dict)
    """Channels read but no ECG lead, ``"ABP (mmHg)"`` -> number of records that have it."""

    def reasons(self) -> Counter:
        """Skip counts by reason class (the text before the first ':' or digit detail)."""
        return Counter(_reason_class(r) for r in self.skipped.values())

    def describe(self, max_names: int = 5) -> str:
        lines = [f"{self.found} records found, {len(self.used)} used ({sum(self.used.values())} windows), {len(self.skipped)} skipped"]
        by_reason: dict[str, list[str]] = {}
        for rid, reason in self.skipped.items():
            by_reason.setdefault(_reason_class(reason), []).append(rid)
        for reason, ids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
            more = f" +{len(ids) - max_names} more" if len(ids) > max_names else ""
            lines.append(f"  skipped {len(ids):>5}  {reason}: {', '.join(ids[:max_names])}{more}")
        if self.orphans:
            more = f" +{len(self.orphans) - max_names} more" if len(self.orphans) > max_names else ""
            names = ", ".join(os.path.basename(p) for p in self.orphans[:max_names])
            lines.append(f"  orphan  {len(self.orphans):>5}  data file without a header: {names}{more}")
        if self.windows_skipped:
            n = sum(int(r.split()[0]) for r in self.windows_skipped.values())
            lines.append(f"  windows skipped {n} in {len(self.windows_skipped)} record(s), touching invalid samples:")
            for rid, detail in list(self.windows_skipped.items())[:max_names]:
                lines.append(f"    {rid}: {detail}")
            if len(self.windows_skipped) > max_names:
                lines.append(f"    +{len(self.windows_skipped) - max_names} more")
        if self.ignored_channels:
            lines.append("  ignored channels: " + ", ".join(
                name if k == 1 else f"{name} x{k}" for name, k in sorted(self.ignored_channels.items(), key=lambda kv: (-kv[1], kv[0]))))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"found": self.found, "used": self.used, "skipped": self.skipped, "skip_reasons": dict(self.reasons()),
                "orphans": self.orphans, "windows_skipped": self.windows_skipped, "ignored_channels": self.ignored_channels}

    @classmethod
    def from_dict(cls, d: dict) -> LoadSummary:
        """The summary :meth:`to_dict` wrote (fields an older writer lacks are empty)."""
        return cls(found=d["found"], used=d["used"], skipped=d["skipped"], orphans=d.get("orphans", []),
                   windows_skipped=d.get("windows_skipped", {}), ignored_channels=d.get("ignored_channels", {}))


def _reason_class(reason: str) -> str:
    """The kind of a skip reason, its specifics dropped: 'lead V1 flat (std 0 mV); lead V2 flat ...'
    -> 'lead flat'; 'no Chapman rhythm among Dx 59118001, 164884008' -> 'no Chapman rhythm among Dx'."""
    head = reason.split(";")[0].split(":")[0].split("(")[0]
    head = re.sub(r"\blead \S+", "lead", head)
    head = re.sub(r"[\d.,]+", " ", head)
    return " ".join(head.split())


class WindowArray(Protocol):
    """Windows read on indexing, as an (N, leads, samples) float32 array would give them (a
    :class:`~ecgedge.data.store.WindowStore`, which keeps them on disk)."""

    @property
    def shape(self) -> tuple[int, int, int]: ...

    @property
    def dtype(self) -> np.dtype: ...

    def __len__(self) -> int: ...

    def __getitem__(self, key) -> np.ndarray: ...


@dataclass
class WindowSet:
    """Cached windows and their provenance.

    ``windows`` is (N, leads, samples) float32 band-passed mV (a read-only memory map);
    ``window_record[i]`` indexes ``record_ids`` and ``window_start[i]`` is the window's first
    sample in the preprocessed record; ``labels[i]`` indexes ``class_names`` (-1 when unlabeled).
    """

    windows: np.ndarray | WindowArray
    record_ids: list[str]
    window_record: np.ndarray
    window_start: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    leads: tuple[str, ...]
    summary: LoadSummary
    cache_dir: Path
    key: str

    def __len__(self) -> int:
        return len(self.window_record)

    def record_labels(self) -> np.ndarray:
        """One label per record (majority of its windows), -1 for unlabeled records."""
        out = np.full(len(self.record_ids), -1, dtype=np.int64)
        for r in range(len(self.record_ids)):
            lab = self.labels[self.window_record == r]
            lab = lab[lab >= 0]
            if len(lab):
                out[r] = np.bincount(lab).argmax()
        return out

    def windows_of_records(self, record_indices) -> np.ndarray:
        """Indices of the windows that belong to the given records."""
        return np.flatnonzero(np.isin(self.window_record, np.asarray(record_indices)))


@dataclass(frozen=True)
class WindowJob:
    """One record to cut into windows (picklable: worker processes run :func:`usable_windows`'s jobs);
    the window cache and the window store (``ecgedge.data.store``) both build their windows from these."""

    ref: RecordRef
    leads: tuple[str, ...]
    scheme: LabelScheme | None
    preprocess: PreprocessConfig
    window: WindowConfig
    label_table_paths: tuple[str, ...]


def _tables(paths: tuple[str, ...]) -> list:
    # load_label_table caches by path, size and mtime: a table edited between two builds is read again
    return [load_label_table(p) for p in paths]


def _label_table_for(record_id: str, tables: list):
    for t in tables:
        if record_id in t:
            return t
    return None


@dataclass
class _RecordWindows:
    """What a worker hands back for one record (``error`` set when it is skipped)."""

    record_id: str
    source: str
    windows: np.ndarray | None = None
    starts: list[int] | None = None
    labels: list[str] | None = None
    error: str | None = None
    windows_skipped: str = ""
    ignored_channels: tuple[str, ...] = ()


def clean_window_mask(invalid: np.ndarray, fs_in: float, starts, window: int, preprocess: PreprocessConfig) -> np.ndarray:
    """Which windows no invalid input sample reaches (see module doc).

    Args:
        invalid: (n_samples,) bool, True where a lead used has an invalid sample (input rate ``fs_in`` Hz).
        starts: window starts in the preprocessed record (samples at ``preprocess.fs_hz``).
        window: window length in preprocessed samples.

    Returns:
        (len(starts),) bool. A window ``[s, s + window)`` at ``fs_hz`` depends on the inputs from
        ``(s - settle)`` output samples minus the resampler's FIR span up to its last sample: the
        causal chain reads nothing later, and the band-pass forgets a disturbance within the settle
        time as it does the record's start.
    """
    fs_out = preprocess.fs_hz
    resampler = StreamingResampler(fs_in, fs_out, 1)
    fir_in = 0 if resampler.identity else int(np.ceil(len(resampler.h) / resampler.up))   # input samples
    bad_before = np.concatenate([[0], np.cumsum(invalid)])
    n = len(invalid)
    out = np.zeros(len(starts), dtype=bool)
    for k, s in enumerate(starts):
        first = max(0, int(np.floor((s - preprocess.settle_samples) * fs_in / fs_out)) - fir_in - 1)
        last = min(n, int(np.ceil((s + window - 1) * fs_in / fs_out)) + 1)   # exclusive
        out[k] = bad_before[last] == bad_before[first]
    return out


def _bridge_invalid(sig: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``sig`` with each lead's invalid stretches replaced by a straight line between the valid samples
    around them (the first/last valid value at the ends; 0 for a lead with none)."""
    out = np.array(sig, dtype=np.float64)
    idx = np.arange(out.shape[1])
    for lead in out:
        ok = np.isfinite(lead) & ~invalid
        lead[:] = np.interp(idx, idx[ok], lead[ok]) if ok.any() else 0.0
    return out


def _windows_for_record(job: WindowJob) -> _RecordWindows:
    """Worker: the windows of one record, or why it is skipped."""
    ref = job.ref
    ignored: tuple[str, ...] = ()
    try:
        table = _label_table_for(ref.record_id, _tables(job.label_table_paths))
        rec = read_record(ref, label_table=table, with_annotations=job.scheme == LabelScheme.atr)
        ignored = rec.ignored_channels
        if slow := rate_problem(rec.fs, job.preprocess.bandpass_high_hz):
            raise BadRecord(rec.record_id, slow)
        sig = select_leads(rec, job.leads)
        invalid = ~np.isfinite(sig).all(axis=0)
        if invalid.all():
            raise BadRecord(rec.record_id, "; ".join(nonfinite_problems(sig, rec.fs, job.leads)))
        problems = signal_problems(sig[:, ~invalid] if invalid.any() else sig, rec.fs, job.leads)
        if problems:
            raise BadRecord(rec.record_id, "; ".join(problems))
        record_label = None
        if job.scheme is not None and job.scheme != LabelScheme.atr:
            record_label = labelmaps.record_label(rec, job.scheme)
        pre = preprocess_signal(_bridge_invalid(sig, invalid) if invalid.any() else sig, rec.fs, job.preprocess)
        cap = 0 if invalid.any() else job.window.max_per_record   # capped after the unusable windows are out
        starts = window_starts(pre.shape[-1], job.window.samples, job.window.hop, job.preprocess.settle_samples, cap)
        if not starts:
            need = (job.window.samples + job.preprocess.settle_samples) / job.preprocess.fs_hz
            raise BadRecord(rec.record_id, f"too short: {rec.duration_s:.2f} s < {need:.2f} s (window + settling)")
        skipped_detail = ""
        if invalid.any():
            clean = clean_window_mask(invalid, rec.fs, starts, job.window.samples, job.preprocess)
            where = "; ".join(nonfinite_problems(sig, rec.fs, job.leads))
            if not clean.any():
                raise BadRecord(rec.record_id, f"every window touches invalid samples: {where}")
            lost = len(starts) - int(clean.sum())
            starts = [s for s, ok in zip(starts, clean) if ok]
            if job.window.max_per_record:
                starts = starts[-job.window.max_per_record:]
            if lost:
                skipped_detail = f"{lost} of {lost + int(clean.sum())} windows: {where}"
        if job.scheme == LabelScheme.atr:
            fs = job.preprocess.fs_hz
            win_labels = [labelmaps.window_label(rec.rhythm_annotations, s / fs, (s + job.window.samples) / fs, rec.fs) for s in starts]
            keep = [(s, lab) for s, lab in zip(starts, win_labels) if lab is not None]
            if not keep:
                raise BadRecord(rec.record_id, "no rhythm annotation covers any window")
            starts = [s for s, _ in keep]
            labels: list[str] | None = [lab for _, lab in keep]
        else:
            labels = None if record_label is None else [record_label] * len(starts)
        w = np.stack([pre[:, s:s + job.window.samples] for s in starts]).astype(np.float32)
        return _RecordWindows(rec.record_id, rec.source, w, starts, labels, None, skipped_detail, ignored)
    except BadRecord as exc:
        return _RecordWindows(exc.record, ref.path, error=exc.reason, ignored_channels=ignored)


def usable_windows(jobs: list, workers: int, summary: LoadSummary, *, desc: str, progress: bool):
    """Read ``jobs`` in parallel; yield (record id, source, windows, starts, labels) of each usable
    record, in order. Bad records and repeated record ids go into ``summary.skipped`` with their
    reason, lost windows into ``summary.windows_skipped``, non-ECG channels into
    ``summary.ignored_channels``; the caller marks what it used."""
    for r in tqdm(_run_jobs(jobs, workers), total=len(jobs), desc=desc, unit="rec", disable=not progress):
        for channel in r.ignored_channels:
            summary.ignored_channels[channel] = summary.ignored_channels.get(channel, 0) + 1
        if r.error is not None:
            summary.skipped[r.record_id] = r.error
        elif r.record_id in summary.used:
            summary.skipped[f"{r.record_id} ({r.source})"] = "duplicate record id: kept the first one"
        else:
            if r.windows_skipped:
                summary.windows_skipped[r.record_id] = r.windows_skipped
            yield r.record_id, r.source, r.windows, r.starts, r.labels


def default_cache_root() -> Path:
    return cache_root()


def build_windows(
    data: DataConfig,
    leads: tuple[str, ...],
    preprocess: PreprocessConfig,
    window: WindowConfig,
    scheme: LabelScheme | None = None,
    *,
    progress: bool = True,
) -> WindowSet:
    """Read, preprocess and window every record under ``data.paths`` (cached; see module doc).

    Raises :class:`DataNotFound` when no record is found or none is usable; otherwise bad records
    are skipped and listed in the summary.
    """
    refs = find_records(data.paths)
    if data.max_records:
        refs = refs[: data.max_records]
    tables = [str(p) for p in ([data.labels_file] if data.labels_file else find_label_tables(data.paths))]
    orphans = find_orphan_data_files(data.paths)
    key = value_sha256({
        "version": CACHE_VERSION,
        "records": [_record_content(r, scheme == LabelScheme.atr) for r in refs],
        "tables": [(t, _content(t)) for t in tables],
        "orphans": orphans,
        "leads": leads,
        "scheme": scheme.value if scheme else None,
        "preprocess": config_to_dict(preprocess),
        "window": config_to_dict(window),
    })[:20]
    root = Path(data.cache_dir) if data.cache_dir else default_cache_root()
    cache = root / "windows" / key
    if (cache / "index.json").is_file():
        return _open_cache(cache, key)

    jobs = [WindowJob(r, tuple(leads), scheme, preprocess, window, tuple(tables)) for r in refs]
    workers = data.workers or min(4, os.cpu_count() or 1)
    root.joinpath("windows").mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root / "windows"))
    summary = LoadSummary(found=len(refs), orphans=orphans)
    record_ids: list[str] = []
    sources: list[str] = []
    window_record: list[int] = []
    window_start: list[int] = []
    label_names: list[str | None] = []
    n_windows = 0
    try:
        with open(tmp / "windows.f32", "wb") as out:
            for rid, source, w, starts, labs in usable_windows(jobs, workers, summary, desc="reading records", progress=progress):
                out.write(np.ascontiguousarray(w).tobytes())
                r = len(record_ids)
                record_ids.append(rid)
                sources.append(source)
                window_record += [r] * len(starts)
                window_start += list(starts)
                label_names += labs if labs is not None else [None] * len(starts)
                summary.used[rid] = len(starts)
                n_windows += len(starts)
        if not n_windows:
            raise DataNotFound(f"no usable windows in {', '.join(data.paths)}\n{summary.describe()}")
        class_names = scheme_class_names(scheme, label_names)
        lookup = {c: i for i, c in enumerate(class_names)}
        labels = np.array([lookup.get(x, -1) if x is not None else -1 for x in label_names], dtype=np.int64)
        np.save(tmp / "window_record.npy", np.asarray(window_record, dtype=np.int64))
        np.save(tmp / "window_start.npy", np.asarray(window_start, dtype=np.int64))
        np.save(tmp / "labels.npy", labels)
        index = {
            "version": CACHE_VERSION,
            "shape": [n_windows, len(leads), window.samples],
            "dtype": "float32",
            "units": "mV, band-passed, not normalised",
            "leads": list(leads),
            "record_ids": record_ids,
            "sources": sources,
            "class_names": list(class_names),
            "summary": summary.to_dict(),
        }
        (tmp / "index.json").write_text(json.dumps(index))
        if cache.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            tmp.rename(cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _open_cache(cache, key)


def _run_jobs(jobs, workers):
    if workers <= 1 or len(jobs) < 8:
        return map(_windows_for_record, jobs)
    pool = ProcessPoolExecutor(max_workers=workers)

    def gen():
        try:
            yield from pool.map(_windows_for_record, jobs, chunksize=8)
        finally:
            pool.shutdown(cancel_futures=True)

    return gen()


def scheme_class_names(scheme: LabelScheme | None, observed) -> tuple[str, ...]:
    """The classes of ``scheme`` given the raw labels ``observed`` (None entries ignored); () without a scheme."""
    if scheme is None:
        return ()
    return tuple(labelmaps.class_names(scheme, observed=[x for x in observed if x is not None]))


def _content(path: str | Path) -> str | None:
    """The sha256 of ``path``'s bytes: what a cache key holds for each data file. Size and mtime are
    not enough: ``cp -p``, ``rsync -t`` and ``touch -r`` keep both through a same-size edit."""
    try:
        return file_sha256(path)
    except OSError:   # missing or unreadable: the key says so, and the record is read (and skipped) anew
        return None


def _record_content(ref: RecordRef, with_annotations: bool) -> list:
    """(path, sha256) of every file reading ``ref`` opens: any changed byte, or a deleted file, changes the key."""
    try:
        files = record_files(ref, with_annotations=with_annotations)
    except BadRecord:   # its header's bytes are in the key; reading it again names the reason
        files = [Path(ref.path)]
    return [(str(f), _content(f)) for f in files]


def _open_cache(cache: Path, key: str) -> WindowSet:
    index = json.loads((cache / "index.json").read_text())
    windows = np.memmap(cache / "windows.f32", dtype=np.float32, mode="r", shape=tuple(index["shape"]))
    s = index["summary"]
    return WindowSet(
        windows=windows,
        record_ids=index["record_ids"],
        window_record=np.load(cache / "window_record.npy"),
        window_start=np.load(cache / "window_start.npy"),
        labels=np.load(cache / "labels.npy"),
        class_names=tuple(index["class_names"]),
        leads=tuple(index["leads"]),
        summary=LoadSummary.from_dict(s),
        cache_dir=cache,
        key=key,
    )
