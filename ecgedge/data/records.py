"""ECG records on disk -> :class:`Record` (float32 mV, ECG leads x samples): finding records and
reading one, whatever its format. The entry point of the data layer; each format has its module:

================================  ===================================================================
``ecgedge.data.record_types``     :class:`Record`, :class:`RecordRef`, :class:`LabelTable`, the enums
``ecgedge.data.wfdb_files``       WFDB through ``wfdb.rdheader``/``wfdb.rdrecord``; our header parser
                                  only where wfdb rejects a header
``ecgedge.data.mat_files``        the CinC ``.mat`` fallback (``scipy.io.loadmat``, 1000 adu/mV)
``ecgedge.data.chapman_csv``      Chapman-Shaoxing figshare CSV (µV, 500 Hz)
``ecgedge.data.sph_h5``           SPH HDF5 (``ecg`` (12, N) float16 mV)
``ecgedge.data.label_tables``     ``REFERENCE.csv``, ``metadata.csv``, ``Diagnostics.xlsx``; label precedence
``ecgedge.data.leads``            lead names and aliases; which channels are ECG leads; units -> mV
================================  ===================================================================

Formats (:class:`RecordFormat`), each identified by one file (:class:`RecordRef`): ``wfdb`` (a
``.hea`` header), ``chapman_csv`` (a ``.csv``), ``sph_h5`` (an ``.h5``).

Every record comes out in mV with canonical lead names (``AVR`` -> ``aVR``; ``MLII``, ``ECG`` kept).
Channels that are no ECG lead (``ABP`` mmHg, ``PLETH`` NU, ``HR`` bpm, ``RESP`` ...) are left out of
the signal and named in :attr:`Record.ignored_channels`; a record with no ECG lead is refused.

Labels (:attr:`Record.labels`, raw codes as the source gives them; ``ecgedge.data.labels`` maps
them to classes), first source that has the record wins: an explicit label table passed to
:func:`read_record`; the header comment ``#Dx:`` / ``# Dx:``; a table beside the record.

What counts as a bad record: :func:`read_record` raises :class:`~ecgedge.errors.BadRecord`
(naming the record) for an unreadable header, a missing data file, a data file that holds fewer
or more samples than its header states, no ECG lead and no samples, because such a record is
unusable whatever it is used for. Invalid samples (NaN: WFDB's "no sample" value, a channel absent
from a segment) are *kept*: the windowing (``ecgedge.data.windows``) skips the windows that touch
them and refuses a record only when no window survives. Flat and saturated leads are not checked
here either: callers apply :func:`ecgedge.data.quality.signal_problems` to the leads they use.

wfdb, h5py and openpyxl (the ``train`` extra) are imported only when a record of their format is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ecgedge.data.chapman_csv import is_record_csv, read_chapman_csv
from ecgedge.data.label_tables import find_label_tables, load_label_table
from ecgedge.data.leads import canonical_lead_name, lead_indices
from ecgedge.data.record_types import LabelSource, LabelTable, Record, RecordFormat, RecordRef
from ecgedge.data.scan import files_under
from ecgedge.data.sph_h5 import read_sph_h5
from ecgedge.data.wfdb_files import data_files, parse_header, read_wfdb
from ecgedge.errors import BadRecord, DataNotFound, MissingLeads

__all__ = ["LabelSource", "LabelTable", "Record", "RecordFormat", "RecordRef", "canonical_lead_name", "find_label_tables",
           "find_orphan_data_files", "find_records", "load_label_table", "read_record", "record_files", "select_leads"]


def select_leads(record: Record, leads: Sequence[str]) -> np.ndarray:
    """The requested leads of ``record``, (len(leads), n_samples) float32 mV, in the requested order.

    Leads are matched by :func:`ecgedge.data.leads.lead_indices`: any case, MIT-BIH's ``MLI``,
    ``MLII``, ``MLIII`` stand for I, II, III and back, and a single-lead record serves a
    single-lead request whatever the names (CinC 2017's ``ECG`` for a lead-II model).

    Raises:
        BadRecord: a requested lead is missing, e.g. ``"missing lead(s) V3, V4; record has I, II, III"``.
    """
    try:
        return record.signal[lead_indices(record.lead_names, leads)]
    except MissingLeads as exc:
        raise BadRecord(record.record_id, f"missing lead(s) {', '.join(exc.missing)}; record has {', '.join(record.lead_names)}") from None


# ------------------------------------------------------------------------------------ finding records

def find_records(paths: Sequence[str | Path] | str | Path) -> list[RecordRef]:
    """Every record in ``paths`` (files or folders, searched recursively), sorted by record id then path.

    ``.hea`` -> ``wfdb`` (a ``.mat``/``.dat`` given explicitly stands for its ``.hea``); ``.h5`` ->
    ``sph_h5``; ``.csv`` -> ``chapman_csv`` inside a folder named ``ECGData``/``ECGDataDenoised``,
    or anywhere when its first line is the 12 lead names I..V6 or 12 numbers. Label tables
    (``REFERENCE.csv``, ``metadata.csv``, ``Diagnostics.xlsx``), ``.atr`` and data files are not
    records. A multi-segment WFDB record is listed once, by its master header: the segment
    headers it names in its folder (and its layout header) are parts of that recording, not
    records. A file reached twice is listed once.

    Raises:
        DataNotFound: a path does not exist, or no record is found (the message names the paths).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    absent = [str(p) for p in paths if not Path(p).exists()]
    if absent:
        raise DataNotFound(f"no such file or folder: {', '.join(absent)}")
    refs: dict[str, RecordRef] = {}
    for p in map(Path, paths):
        if p.is_file():
            ref = _ref_for_file(p, explicit=True)
            if ref is not None:
                refs.setdefault(ref.path, ref)
            continue
        for f in files_under(p):
            ref = _ref_for_file(f, explicit=False)
            if ref is not None:
                refs.setdefault(ref.path, ref)
    parts = _segment_headers(r for r in refs.values() if r.format == RecordFormat.wfdb)
    refs = {path: ref for path, ref in refs.items() if path not in parts}
    if not refs:
        raise DataNotFound(f"no ECG records (WFDB .hea, Chapman .csv, SPH .h5) in {', '.join(map(str, paths)) or 'no paths'}")
    return sorted(refs.values(), key=lambda r: (r.record_id, r.path))


def _segment_headers(refs) -> set[str]:
    """Absolute paths of the segment headers named by the multi-segment master headers among ``refs``
    (a master's record line is ``name/segments ...``; only its first line is read here)."""
    parts: set[str] = set()
    for ref in refs:
        try:
            with open(ref.path, encoding="latin-1") as fh:
                first = next((line for line in fh if line.strip() and not line.startswith("#")), "")
        except OSError:
            continue
        if "/" not in (first.split() or [""])[0]:
            continue
        try:
            header = parse_header(Path(ref.path), ref.record_id)
        except BadRecord:
            continue
        folder = Path(ref.path).parent
        parts.update(os.path.abspath(folder / f"{seg}.hea") for seg in header.segments if seg != "~")
    return parts


def find_orphan_data_files(paths: Sequence[str | Path] | str | Path) -> list[str]:
    """Data files (``.mat``, ``.dat``) in ``paths`` that no WFDB header names, sorted absolute paths.

    Such a file is no record (:func:`find_records` cannot read it without its header) and not
    silently nothing either: batch jobs count and name it in their summary. A data file given
    explicitly without its ``.hea`` is an orphan too. Paths that do not exist are left to
    :func:`find_records` to report.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    by_folder: dict[Path, list[Path]] = {}
    for p in map(Path, paths):
        for f in ([p] if p.is_file() else files_under(p) if p.is_dir() else []):
            by_folder.setdefault(f.parent, []).append(f)
    orphans: set[str] = set()
    for folder, files in by_folder.items():
        data = [f for f in files if f.suffix.lower() in (".mat", ".dat") and not f.with_suffix(".hea").is_file()]
        if not data:
            continue
        named: set[str] = set()   # a header may name a data file of another stem (multi-file records)
        for hea in folder.glob("*.hea"):
            try:
                named.update(s.file for s in parse_header(hea, hea.stem).signals)
            except BadRecord:
                continue
        orphans.update(os.path.abspath(f) for f in data if f.name not in named)
    return sorted(orphans)


def _ref_for_file(f: Path, *, explicit: bool) -> RecordRef | None:
    suffix = f.suffix.lower()
    if suffix == ".hea":
        return RecordRef(os.path.abspath(f), RecordFormat.wfdb, f.stem)
    if explicit and suffix in (".mat", ".dat") and f.with_suffix(".hea").is_file():
        return RecordRef(os.path.abspath(f.with_suffix(".hea")), RecordFormat.wfdb, f.stem)
    if suffix in (".h5", ".hdf5"):
        return RecordRef(os.path.abspath(f), RecordFormat.sph_h5, f.stem)
    if suffix == ".csv" and is_record_csv(f):
        return RecordRef(os.path.abspath(f), RecordFormat.chapman_csv, f.stem)
    return None


# ------------------------------------------------------------------------------------- reading records

def read_record(ref: RecordRef | str | Path, *, label_table: LabelTable | str | Path | None = None,
                with_annotations: bool = False) -> Record:
    """Read one record into memory (float32 mV, ECG leads only), with its raw labels.

    Args:
        ref: a :class:`RecordRef`, or a path: ``.hea`` (or the record name without extension, or
            its ``.mat``/``.dat``), ``.csv``, ``.h5``.
        label_table: a :class:`LabelTable` (or the path of one) that takes precedence over header
            labels for the records it lists (see module doc for the order).
        with_annotations: read the WFDB ``.atr`` beside the record into ``rhythm_annotations``
            (``aux_note`` entries ``(N``, ``(AFIB`` ...: leading ``(`` and trailing NUL stripped).
            A record without an ``.atr`` gets none.

    Invalid samples are NaN in the signal (see module doc); other channels are in ``ignored_channels``.

    Raises:
        BadRecord: unreadable or inconsistent header, missing or truncated data file, no ECG lead,
            no samples, unreadable annotations.
    """
    ref = as_record_ref(ref)
    table = load_label_table(label_table) if isinstance(label_table, (str, Path)) else label_table
    path = Path(ref.path)
    if not path.is_file():
        raise BadRecord(ref.record_id, f"no such file: {path}")
    if ref.format == RecordFormat.wfdb:
        record = read_wfdb(path, ref.record_id, table, with_annotations)
    elif ref.format == RecordFormat.chapman_csv:
        record = read_chapman_csv(path, ref.record_id, table)
    else:
        record = read_sph_h5(path, ref.record_id, table)
    if record.signal.shape[1] == 0:
        raise BadRecord(ref.record_id, "no samples")
    return record


def record_files(ref: RecordRef | str | Path, *, with_annotations: bool = False) -> list[Path]:
    """Every file :func:`read_record` may open for ``ref``, whether or not it exists now (one that
    appears changes what is read): the record file; for WFDB the data files its header names (for a
    multi-segment record each segment's header and data files), the ``REFERENCE.csv`` beside it and,
    ``with_annotations``, its ``.atr``; the label table a Chapman CSV or SPH file would read beside
    it. The cache of windows is keyed on these files' sizes and mtimes.

    Raises:
        BadRecord: an unreadable WFDB header (or one naming a file outside its folder).
    """
    ref = as_record_ref(ref)
    path = Path(ref.path)
    if ref.format == RecordFormat.chapman_csv:
        return [path, path.parent / "Diagnostics.xlsx", path.parent.parent / "Diagnostics.xlsx"]
    if ref.format == RecordFormat.sph_h5:
        return [path, path.parent / "metadata.csv"]
    data = data_files(path, ref.record_id)
    return [path, *data, path.parent / "REFERENCE.csv", *([path.with_suffix(".atr")] if with_annotations else [])]


def as_record_ref(ref: RecordRef | str | Path) -> RecordRef:
    """``ref`` itself, or the :class:`RecordRef` of a path (its format from the suffix; a WFDB record by its ``.hea``)."""
    if isinstance(ref, RecordRef):
        return ref
    p = Path(ref)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return RecordRef(os.path.abspath(p), RecordFormat.chapman_csv, p.stem)
    if suffix in (".h5", ".hdf5"):
        return RecordRef(os.path.abspath(p), RecordFormat.sph_h5, p.stem)
    hea = p if suffix == ".hea" else p.with_suffix(".hea") if suffix in (".mat", ".dat") else p.with_name(p.name + ".hea")
    return RecordRef(os.path.abspath(hea), RecordFormat.wfdb, hea.stem)
