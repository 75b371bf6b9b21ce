"""ECG records on disk -> :class:`Record` (float32 mV, leads x samples): the only module that knows file formats.

Formats (:class:`RecordFormat`), each identified by one file (:class:`RecordRef`):

- ``wfdb``: a PhysioNet ``.hea`` header with its data files, read by ``wfdb.rdrecord`` in physical
  units: MIT-BIH format 212 ``.dat``, and the CinC 2017/2020/2021 and ecg-arrhythmia ``.mat``
  files (format ``16+24``: int16 after a 24-byte MAT v4 header). Quirk: some CinC-era headers
  carry a non-standard date (``2014-05-08``) or a gain that is missing, zero or not a number, and
  ``wfdb.rdrecord`` fails or silently applies WFDB's default of 200 adu/mV. Those ``.mat`` records
  are read directly (``scipy.io.loadmat``, key ``val``) with the header's gain where it is a
  non-zero number and 1000 adu/mV otherwise (the gain every CinC ``.mat`` is written with), in mV
  where the units field is garbled, baseline as the header states it (0 where it states none).
- ``chapman_csv``: a Chapman-Shaoxing figshare CSV (``ECGData/`` with a header row I..V6,
  ``ECGDataDenoised/`` without one; detected per file): 12 columns in µV at 500 Hz.
- ``sph_h5``: an SPH (Shandong Provincial Hospital) HDF5 file, dataset ``ecg`` of shape (12, N),
  float16 in mV, 500 Hz unless the ``fs`` column of ``metadata.csv`` says otherwise.

Every signal is converted to mV (units ``uV``/``µV``/``V``/``mV`` in any case), lead names to their
canonical spelling (``AVR`` -> ``aVR``; others such as ``MLII``, ``ECG`` kept).

Labels (:attr:`Record.labels`, raw codes as the source gives them; ``ecgedge.data.labels`` maps
them to classes), first source that has the record wins:

1. an explicit label table passed to :func:`read_record` (:class:`LabelTable`);
2. the header comment ``#Dx:`` / ``# Dx:`` (SNOMED-CT codes);
3. a table beside the record, found and parsed once per process: ``REFERENCE.csv`` in the folder
   of a WFDB record (CinC 2017), ``metadata.csv`` in the folder of an SPH file, ``Diagnostics.xlsx``
   in the folder of a Chapman CSV or its parent (the figshare layout).

What counts as a bad record: :func:`read_record` raises :class:`~ecgedge.errors.BadRecord`
(naming the record) for an unreadable header, a missing data file, a data file that holds fewer
or more samples than its header states (formats 16/212/24/32 by size, MAT v4 ``.mat`` by its
stated shape), unknown units and NaN/inf samples, because such a record is unusable whatever it is used for. Flat and saturated
leads are *not* checked here: callers apply :func:`ecgedge.data.quality.signal_problems` to the
leads they use (a pretraining job on lead II keeps a record whose V3 is flat).

wfdb, h5py and openpyxl (the ``train`` extra) are imported only when a record of their format is read.
"""

from __future__ import annotations

import csv
import enum
import functools
import importlib
import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.leads import canonical_lead_name, lead_indices
from ecgedge.data.quality import nonfinite_problems
from ecgedge.errors import BadRecord, ConfigError, DataNotFound, EcgEdgeError, MissingLeads


class RecordFormat(str, enum.Enum):
    """On-disk record formats (see module doc)."""

    wfdb = "wfdb"
    chapman_csv = "chapman_csv"
    sph_h5 = "sph_h5"


class LabelSource(str, enum.Enum):
    """What kind of codes :attr:`Record.labels` holds."""

    snomed = "snomed"        # SNOMED-CT codes as strings (#Dx: comments, SPH metadata.csv)
    chapman = "chapman"      # Chapman acronyms (Diagnostics.xlsx Rhythm column): SB, AFIB, ...
    cinc2017 = "cinc2017"    # CinC 2017 letters N, A, O, ~ (REFERENCE.csv)
    none = "none"            # no label found


@dataclass
class Record:
    """One ECG record in memory.

    ``signal`` is (n_leads, n_samples) float32 in mV at ``fs`` Hz; ``lead_names`` are canonical
    (I II III aVR aVL aVF V1..V6; others as the source names them). ``labels`` are raw codes of kind
    ``label_source``. ``rhythm_annotations`` are ``(sample, rhythm)`` changes from a WFDB ``.atr``
    (sample indices at ``fs``, sorted; filled only when asked for). ``source`` is the file read.
    """

    record_id: str
    signal: np.ndarray
    fs: float
    lead_names: tuple[str, ...]
    labels: tuple[str, ...] = ()
    label_source: LabelSource | str = LabelSource.none
    source: str = ""
    rhythm_annotations: tuple[tuple[int, str], ...] = ()

    def __post_init__(self):
        self.signal = np.asarray(self.signal, dtype=np.float32)
        self.fs = float(self.fs)
        self.lead_names = tuple(self.lead_names)
        self.labels = tuple(str(x) for x in self.labels)
        self.label_source = LabelSource(self.label_source)
        self.rhythm_annotations = tuple((int(s), str(r)) for s, r in self.rhythm_annotations)
        if self.signal.ndim != 2 or self.signal.shape[0] != len(self.lead_names):
            raise ValueError(f"{self.record_id}: signal of shape {self.signal.shape} does not match "
                             f"{len(self.lead_names)} lead name(s) {self.lead_names}")
        if not self.fs > 0:
            raise ValueError(f"{self.record_id}: sampling rate must be positive, got {self.fs} Hz")

    @property
    def duration_s(self) -> float:
        """Length of the record in seconds."""
        return self.signal.shape[1] / self.fs


@dataclass(frozen=True)
class RecordRef:
    """A record found on disk: the file that identifies it, its format and id (no data read yet)."""

    path: str
    format: RecordFormat | str
    record_id: str

    def __post_init__(self):
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "format", RecordFormat(self.format))


@dataclass(frozen=True, eq=False)
class LabelTable(Mapping):
    """A parsed label table: a read-only mapping record id -> raw labels, plus where they came from.

    ``source`` says what the labels are (``chapman`` acronyms, ``cinc2017`` letters, ``snomed``
    codes); ``fs`` holds sampling rates (Hz) a table states per record (SPH ``metadata.csv``).
    Tables are cached per process and shared: do not modify ``labels``.
    """

    source: LabelSource
    labels: dict[str, tuple[str, ...]]
    path: str = ""
    fs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "source", LabelSource(self.source))

    def __getitem__(self, record_id: str) -> tuple[str, ...]:
        return self.labels[record_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"LabelTable(source={self.source.value!r}, records={len(self.labels)}, path={self.path!r})"


# --------------------------------------------------------------------------------------------- leads

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

_CHAPMAN_CSV_FOLDERS = {"ECGData", "ECGDataDenoised"}
_TABLE_NAMES = {"reference.csv", "metadata.csv", "diagnostics.xlsx"}


def find_records(paths: Sequence[str | Path] | str | Path) -> list[RecordRef]:
    """Every record in ``paths`` (files or folders, searched recursively), sorted by record id then path.

    ``.hea`` -> ``wfdb`` (a ``.mat``/``.dat`` given explicitly stands for its ``.hea``); ``.h5`` ->
    ``sph_h5``; ``.csv`` -> ``chapman_csv`` inside a folder named ``ECGData``/``ECGDataDenoised``,
    or anywhere when its first line is the 12 lead names I..V6 or 12 numbers. Label tables
    (``REFERENCE.csv``, ``metadata.csv``, ``Diagnostics.xlsx``), ``.atr`` and data files are not
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
        for f in _files_under(p):
            ref = _ref_for_file(f, explicit=False)
            if ref is not None:
                refs.setdefault(ref.path, ref)
    if not refs:
        raise DataNotFound(f"no ECG records (WFDB .hea, Chapman .csv, SPH .h5) in {', '.join(map(str, paths)) or 'no paths'}")
    return sorted(refs.values(), key=lambda r: (r.record_id, r.path))


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
        for f in ([p] if p.is_file() else _files_under(p) if p.is_dir() else []):
            by_folder.setdefault(f.parent, []).append(f)
    orphans: set[str] = set()
    for folder, files in by_folder.items():
        data = [f for f in files if f.suffix.lower() in (".mat", ".dat") and not f.with_suffix(".hea").is_file()]
        if not data:
            continue
        named = set()   # a header may name a data file of another stem (multi-file records)
        for hea in folder.glob("*.hea"):
            try:
                named.update(s.file for s in _parse_header(hea, hea.stem).signals)
            except BadRecord:
                continue
        orphans.update(os.path.abspath(f) for f in data if f.name not in named)
    return sorted(orphans)


def _files_under(folder: Path) -> Iterator[Path]:
    seen = set()
    for root, dirs, files in os.walk(folder, followlinks=True):   # data sets are often symlinked in
        real = os.path.realpath(root)
        if real in seen:   # a link loop
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            yield Path(root, name)


def _ref_for_file(f: Path, *, explicit: bool) -> RecordRef | None:
    suffix = f.suffix.lower()
    if suffix == ".hea":
        return RecordRef(os.path.abspath(f), RecordFormat.wfdb, f.stem)
    if explicit and suffix in (".mat", ".dat") and f.with_suffix(".hea").is_file():
        return RecordRef(os.path.abspath(f.with_suffix(".hea")), RecordFormat.wfdb, f.stem)
    if suffix in (".h5", ".hdf5"):
        return RecordRef(os.path.abspath(f), RecordFormat.sph_h5, f.stem)
    if suffix == ".csv" and _is_record_csv(f):
        return RecordRef(os.path.abspath(f), RecordFormat.chapman_csv, f.stem)
    return None


def _is_record_csv(f: Path) -> bool:
    if f.name.lower() in _TABLE_NAMES or f.name.lower().startswith("reference"):
        return False
    if f.parent.name in _CHAPMAN_CSV_FOLDERS:
        return True
    fields = _first_csv_fields(f)
    return len(fields) == 12 and (all(map(_is_number, fields)) or tuple(map(canonical_lead_name, fields)) == STANDARD_12_LEADS)


def _first_csv_fields(f: Path) -> list[str]:
    try:
        with open(f, encoding="utf-8-sig", errors="replace") as fh:
            line = fh.readline(4096)
    except OSError:
        return []
    return [x.strip().strip('"') for x in line.strip().split(",")]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------------------------- label tables

def find_label_tables(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """Label tables (``REFERENCE.csv``, SPH ``metadata.csv``, Chapman ``Diagnostics.xlsx``) for ``paths``.

    Searched recursively inside each given folder, and in the two folders above it (a given file
    counts as its folder). Only tables whose content :func:`load_label_table` understands are
    returned (a CPSC 2018 ``REFERENCE.csv`` is not); sorted, without duplicates.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    candidates: set[Path] = set()
    for p in map(Path, paths):
        p = Path(os.path.abspath(p))
        folder = p.parent if p.is_file() else p
        if p.is_file():
            candidates.add(p)
            candidates.update(folder.iterdir())
        elif p.is_dir():
            candidates.update(_files_under(p))
        for parent in (folder.parent, folder.parent.parent):
            if parent.is_dir():
                candidates.update(parent.iterdir())
    return sorted(c for c in candidates if c.name.lower() in _TABLE_NAMES and c.is_file() and _table_kind(c) is not None)


def _table_kind(path: Path) -> LabelSource | None:
    """What a label table holds, from its name and first line; None when it is not one we read."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return LabelSource.chapman
    if suffix != ".csv":
        return None
    fields = _first_csv_fields(path)
    if "ECG_ID" in fields and "SNOMEDCTCode" in fields:
        return LabelSource.snomed
    if len(fields) == 2 and all(fields):
        return LabelSource.cinc2017
    return None


def load_label_table(path: str | Path) -> LabelTable:
    """Parse a label table into a :class:`LabelTable` (cached per process by path, size and mtime).

    - Chapman ``Diagnostics.xlsx``: ``Rhythm`` for both the ``FileName`` (``MUSE_...``) and
      ``"JS%05d" % (i + 1)`` of data row ``i`` (0-based; the ecg-arrhythmia WFDB release numbers
      records in table order). Source ``chapman``.
    - CinC 2017 ``REFERENCE.csv`` (no header, ``A00001,N``): source ``cinc2017``.
    - SPH ``metadata.csv`` (``ECG_ID`` ``SPH00001.h5``, ``SNOMEDCTCode`` ``"426177001,427393009"``,
      optional ``fs``): source ``snomed``; sampling rates in :attr:`LabelTable.fs`.

    Records with an empty label cell are left out, so other label sources can supply them.

    Raises:
        ConfigError: the file is missing, unreadable, or not one of these tables.
    """
    path = Path(os.path.abspath(path))
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"label table {path}: {exc.strerror or exc}") from None
    return _load_label_table(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load_label_table(path: str, size: int, mtime_ns: int) -> LabelTable:
    kind = _table_kind(Path(path))
    if kind == LabelSource.chapman:
        return _chapman_table(path)
    if kind == LabelSource.snomed:
        return _sph_table(path)
    if kind == LabelSource.cinc2017:
        return _cinc2017_table(path)
    raise ConfigError(f"label table {path}: not a Chapman Diagnostics.xlsx, CinC 2017 REFERENCE.csv or SPH metadata.csv")


def _chapman_table(path: str) -> LabelTable:
    openpyxl = _optional_import("openpyxl", "reading Chapman Diagnostics.xlsx")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:   # openpyxl raises zipfile, KeyError and its own errors for a bad file
        raise ConfigError(f"label table {path}: unreadable workbook ({exc})") from None
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip().lower() if h is not None else "" for h in next(rows, ())]
        if "filename" not in header or "rhythm" not in header:
            raise ConfigError(f"label table {path}: first sheet needs FileName and Rhythm columns, has {header}")
        name_col, rhythm_col = header.index("filename"), header.index("rhythm")
        labels: dict[str, tuple[str, ...]] = {}
        for i, row in enumerate(rows):
            rhythm = _cell(row, rhythm_col)
            if not rhythm:
                continue
            labels["JS%05d" % (i + 1)] = (rhythm,)
            if name := _cell(row, name_col):
                labels[name] = (rhythm,)
    finally:
        wb.close()
    return LabelTable(LabelSource.chapman, labels, path)


def _cell(row: tuple, col: int) -> str:
    value = row[col] if col < len(row) else None
    return "" if value is None else str(value).strip()


def _cinc2017_table(path: str) -> LabelTable:
    labels: dict[str, tuple[str, ...]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for line_no, row in enumerate(csv.reader(fh), 1):
            row = [x.strip() for x in row]
            if not any(row):
                continue
            if len(row) != 2 or not all(row):
                raise ConfigError(f"label table {path}: line {line_no} is {','.join(row)!r}, expected 'record,label'")
            labels[row[0]] = (row[1],)
    return LabelTable(LabelSource.cinc2017, labels, path)


def _sph_table(path: str) -> LabelTable:
    labels: dict[str, tuple[str, ...]] = {}
    rates: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            rid = Path((row.get("ECG_ID") or "").strip()).stem
            if not rid:
                continue
            codes = tuple(c.strip() for c in (row.get("SNOMEDCTCode") or "").split(",") if c.strip())
            if codes:
                labels[rid] = codes
            fs = (row.get("fs") or "").strip()
            if _is_number(fs) and float(fs) > 0:
                rates[rid] = float(fs)
    return LabelTable(LabelSource.snomed, labels, path, rates)


def _beside_table(record_id: str, *candidates: Path) -> LabelTable | None:
    """The first readable table among ``candidates`` (files that may not exist); None if none is."""
    for path in candidates:
        if path.is_file() and _table_kind(path) is not None:
            try:
                return load_label_table(path)
            except ConfigError as exc:
                raise BadRecord(record_id, str(exc)) from None
    return None


# ------------------------------------------------------------------------------------- reading records

def read_record(ref: RecordRef | str | Path, *, label_table: LabelTable | str | Path | None = None,
                with_annotations: bool = False) -> Record:
    """Read one record into memory (float32 mV), with its raw labels.

    Args:
        ref: a :class:`RecordRef`, or a path: ``.hea`` (or the record name without extension, or
            its ``.mat``/``.dat``), ``.csv``, ``.h5``.
        label_table: a :class:`LabelTable` (or the path of one) that takes precedence over header
            labels for the records it lists (see module doc for the order).
        with_annotations: read the WFDB ``.atr`` beside the record into ``rhythm_annotations``
            (``aux_note`` entries ``(N``, ``(AFIB`` ...: leading ``(`` and trailing NUL stripped).
            A record without an ``.atr`` gets none.

    Raises:
        BadRecord: unreadable or inconsistent header, missing or truncated data file, unknown
            units, NaN/inf samples, unreadable annotations.
    """
    ref = _as_ref(ref)
    table = load_label_table(label_table) if isinstance(label_table, (str, Path)) else label_table
    path = Path(ref.path)
    if not path.is_file():
        raise BadRecord(ref.record_id, f"no such file: {path}")
    if ref.format == RecordFormat.wfdb:
        record = _read_wfdb(path, ref.record_id, table, with_annotations)
    elif ref.format == RecordFormat.chapman_csv:
        record = _read_chapman_csv(path, ref.record_id, table)
    else:
        record = _read_sph_h5(path, ref.record_id, table)
    if record.signal.shape[1] == 0:
        raise BadRecord(ref.record_id, "no samples")
    problems = nonfinite_problems(record.signal, record.fs, record.lead_names)
    if problems:
        raise BadRecord(ref.record_id, "; ".join(problems))
    return record


def record_files(ref: RecordRef | str | Path, *, with_annotations: bool = False) -> list[Path]:
    """Every file :func:`read_record` may open for ``ref``, whether or not it exists now (one that
    appears changes what is read): the record file; for WFDB the data files its header names, the
    ``REFERENCE.csv`` beside it and, ``with_annotations``, its ``.atr``; the label table a Chapman CSV
    or SPH file would read beside it. The cache of windows is keyed on these files' sizes and mtimes.

    Raises:
        BadRecord: an unreadable WFDB header (or one naming a file outside its folder).
    """
    ref = _as_ref(ref)
    path = Path(ref.path)
    if ref.format == RecordFormat.chapman_csv:
        return [path, path.parent / "Diagnostics.xlsx", path.parent.parent / "Diagnostics.xlsx"]
    if ref.format == RecordFormat.sph_h5:
        return [path, path.parent / "metadata.csv"]
    header = _parse_header(path, ref.record_id)
    data = dict.fromkeys(path.parent / s.file for s in header.signals if s.file != "~")
    return [path, *data, path.parent / "REFERENCE.csv", *([path.with_suffix(".atr")] if with_annotations else [])]


def _as_ref(ref: RecordRef | str | Path) -> RecordRef:
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


def _labels(record_id: str, table: LabelTable | None, header_labels: tuple[str, ...],
            beside: LabelTable | None) -> tuple[tuple[str, ...], LabelSource]:
    if table is not None and record_id in table:
        return table[record_id], table.source
    if header_labels:
        return header_labels, LabelSource.snomed
    if beside is not None and record_id in beside:
        return beside[record_id], beside.source
    return (), LabelSource.none


# WFDB ------------------------------------------------------------------------------------------------

# Bytes per sample of the WFDB formats whose file size follows from the sample count (the
# compressed FLAC formats 508/516/524 do not), to call a short file truncated before reading it.
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "24": 3, "32": 4, "310": 4 / 3, "311": 4 / 3}
_EXACT_SIZE_FORMATS = {"16", "212", "24", "32"}   # wfdb writes these without padding beyond the last sample
_MV_PER_UNIT = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "nv": 1e-6, "v": 1e3}
_CINC_MAT_GAIN = 1000.0   # adu/mV of every CinC / ecg-arrhythmia .mat file
_WFDB_INVALID_16 = -32768  # format-16 "no sample" value (wfdb.rdrecord turns it into NaN too)
_DX = re.compile(r"^Dx\s*:\s*(.*)$", re.IGNORECASE)


@dataclass
class _Signal:
    file: str
    fmt: str
    byte_offset: int
    gain: float | None      # adu per unit; None where the header's gain is missing, zero or not a number
    baseline: int
    units: str
    name: str


@dataclass
class _Header:
    fs: float
    n_samples: int | None
    signals: list[_Signal]
    comments: list[str]
    multi_segment: bool


def _parse_header(path: Path, record_id: str) -> _Header:
    """A tolerant reading of a WFDB header: what the fallback and the file checks need."""
    def bad(reason: str) -> BadRecord:
        return BadRecord(record_id, f"unreadable header {path.name}: {reason}")

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise bad(exc.strerror or str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Headers written on Windows carry Latin-1 comments ("# Médecin: ..."): every byte decodes,
        # and a binary file is still caught by its NUL bytes or its record line. (wfdb.rdrecord
        # reads headers as ASCII, dropping such bytes, so it accepts them too.)
        text = raw.decode("latin-1")
    if "\x00" in text:
        raise bad("not a text file")
    lines = [line.strip() for line in text.splitlines()]
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    fields = [line.split() for line in lines if line and not line.startswith("#")]
    if not fields:
        raise bad("no record line")
    rec = fields[0]
    try:
        n_sig = int(rec[1])
        fs = float(re.match(r"[0-9.eE+-]*", rec[2]).group()) if len(rec) > 2 else 250.0   # WFDB's default rate
    except (IndexError, ValueError):
        raise bad(f"record line {' '.join(rec)!r} needs '<name> <signals> <fs> [<samples>]'") from None
    if n_sig < 0 or not fs > 0:
        raise bad(f"record line {' '.join(rec)!r}: {n_sig} signals at {fs} Hz")
    n_samples = int(rec[3]) if len(rec) > 3 and rec[3].isdigit() else None
    if "/" in rec[0]:   # a multi-segment record: its segments are headers of their own
        for seg in fields[1:]:
            _check_inside(seg[0], path, record_id)
        return _Header(fs, n_samples, [], comments, True)
    if len(fields) - 1 < n_sig:
        raise bad(f"{n_sig} signals announced, {len(fields) - 1} signal lines found")
    signals = []
    for i, tok in enumerate(fields[1:1 + n_sig]):
        fmt = re.fullmatch(r"(\d+)(?:x\d+)?(?::-?\d+)?(?:\+(\d+))?", tok[1]) if len(tok) > 1 else None
        if fmt is None:
            raise bad(f"signal line {' '.join(tok)!r} has no valid format")
        _check_inside(tok[0], path, record_id)
        gain_field = tok[2] if len(tok) > 2 else ""
        parts = re.fullmatch(r"([^(/]*)(?:\((-?\d+)\))?(?:/(.*))?", gain_field)
        gain_text, base_text, units = parts.groups() if parts else ("", None, gain_field.partition("/")[2])
        gain = float(gain_text) if _is_number(gain_text) and float(gain_text) != 0 else None
        adc_zero = int(tok[4]) if len(tok) > 4 and re.fullmatch(r"-?\d+", tok[4]) else 0
        baseline = int(base_text) if base_text is not None else adc_zero
        name = " ".join(tok[8:]) or f"lead{i + 1}"
        signals.append(_Signal(tok[0], fmt.group(1), int(fmt.group(2) or 0), gain, baseline, units or "mV", name))
    return _Header(fs, n_samples, signals, comments, False)


def _check_inside(name: str, hea: Path, record_id: str) -> None:
    """A file a header names is read from the header's folder: an absolute name or one through ``..``
    would read a file elsewhere (the name is checked, not resolved: data sets are often symlinked in)."""
    if name != "~" and (os.path.isabs(name) or ".." in Path(name).parts):
        raise BadRecord(record_id, f"header names a file outside the record's folder: {name} (in {hea.name})")


def _check_data_files(hea: Path, header: _Header, record_id: str) -> None:
    by_file: dict[str, list[_Signal]] = {}
    for s in header.signals:
        if s.file != "~":   # "~" = no data file (a signal with no samples stored)
            by_file.setdefault(s.file, []).append(s)
    for name, sigs in by_file.items():
        f = hea.parent / name
        if not f.is_file():
            raise BadRecord(record_id, f"missing data file {name}")
        if header.n_samples is None or any(s.fmt not in _BYTES_PER_SAMPLE for s in sigs):
            continue
        need = sigs[0].byte_offset + math.ceil(header.n_samples * sum(_BYTES_PER_SAMPLE[s.fmt] for s in sigs))
        size = f.stat().st_size
        if size < need:
            raise BadRecord(record_id, f"truncated data file {name}: {size} bytes, the header's "
                                       f"{header.n_samples} samples x {len(sigs)} signals need {need}")
        # A longer file means the header misdescribes it (8 signals named for a 12-lead file would be
        # read as 8 scrambled leads), for the formats whose size is exact; a .mat states its shape.
        if name.lower().endswith(".mat"):
            _check_mat_shape(f, len(sigs), header.n_samples, record_id)
        elif size > need and all(s.fmt in _EXACT_SIZE_FORMATS for s in sigs):
            raise BadRecord(record_id, f"data file {name} holds {size} bytes, the header's "
                                       f"{header.n_samples} samples x {len(sigs)} signals need {need}")


def _check_mat_shape(f: Path, n_sig: int, n_samples: int, record_id: str) -> None:
    """A MAT v4 ``.mat`` states its matrix's rows x columns: they must be the header's signals x samples."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(20)
    except OSError as exc:
        raise BadRecord(record_id, f"unreadable data file {f.name}: {exc.strerror or exc}") from None
    if len(head) < 20:
        raise BadRecord(record_id, f"truncated data file {f.name}: {len(head)} bytes")
    for order in "<>":
        mopt, rows, cols, imagf, _ = np.frombuffer(head, dtype=f"{order}i4")
        if 0 <= mopt < 5000 and mopt // 1000 == (0 if order == "<" else 1) and imagf in (0, 1) and rows >= 0 and cols >= 0:
            break
    else:
        return   # MAT v5 or later: its shape is checked once loaded (_read_mat_direct)
    if (rows, cols) != (n_sig, n_samples):
        raise BadRecord(record_id, f"data file {f.name} holds {rows} signals x {cols} samples, "
                                   f"the header states {n_sig} signals x {n_samples} samples")


def _read_wfdb(hea: Path, record_id: str, table: LabelTable | None, with_annotations: bool) -> Record:
    header = _parse_header(hea, record_id)
    _check_data_files(hea, header, record_id)
    all_mat = bool(header.signals) and all(s.file.lower().endswith(".mat") for s in header.signals)
    direct = all_mat and any(s.gain is None or s.units.lower() not in _MV_PER_UNIT for s in header.signals)
    if not direct:
        wfdb = _optional_import("wfdb", "reading WFDB records")
        try:
            rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=True)
        except Exception as exc:   # wfdb raises ValueError, TypeError, IndexError, HeaderSyntaxError ... for bad headers
            if not all_mat:
                raise BadRecord(record_id, f"unreadable WFDB record: {exc}") from None
            direct = True
        else:
            names = list(rec.sig_name or [f"lead{i + 1}" for i in range(rec.n_sig)])
            units = list(rec.units or ["mV"] * rec.n_sig)
            p = rec.p_signal if rec.p_signal is not None else np.zeros((0, rec.n_sig))
            signal = p.T * _mv_scale(record_id, names, units)[:, None]
            fs = float(rec.fs)
    if direct:
        signal, names, fs = _read_mat_direct(hea, header, record_id)
    dx = next((m.group(1) for c in header.comments if (m := _DX.match(c))), "")
    header_labels = tuple(c.strip() for c in dx.split(",") if c.strip())
    beside = None if header_labels else _beside_table(record_id, hea.parent / "REFERENCE.csv")
    labels, source = _labels(record_id, table, header_labels, beside)
    annotations = _rhythm_annotations(hea, record_id) if with_annotations else ()
    return Record(record_id, signal, fs, tuple(map(canonical_lead_name, names)), labels, source, str(hea), annotations)


def _mv_scale(record_id: str, names: Sequence[str], units: Sequence[str | None]) -> np.ndarray:
    scale = []
    for name, unit in zip(names, units):
        factor = _MV_PER_UNIT.get((unit or "mV").strip().lower())
        if factor is None:
            raise BadRecord(record_id, f"lead {name} is in {unit!r}, not a voltage unit (mV, uV, V)")
        scale.append(factor)
    return np.asarray(scale)


def _read_mat_direct(hea: Path, header: _Header, record_id: str) -> tuple[np.ndarray, list[str], float]:
    """The CinC ``.mat`` fallback: ``val`` (signals x samples, int16 adu) -> mV (see module doc)."""
    from scipy.io import loadmat

    rows = []
    for name in dict.fromkeys(s.file for s in header.signals):
        try:
            val = loadmat(str(hea.parent / name))["val"]
        except KeyError:
            raise BadRecord(record_id, f"no 'val' array in {name}") from None
        except Exception as exc:   # scipy raises ValueError, TypeError, MatReadError ... for a corrupt file
            raise BadRecord(record_id, f"unreadable data file {name}: {exc}") from None
        rows.append(np.atleast_2d(val))
    widths = {r.shape[1] for r in rows}
    adu = np.concatenate(rows, axis=0) if len(widths) == 1 else None
    if adu is None or adu.shape[0] != len(header.signals):
        raise BadRecord(record_id, f"data of shape {[r.shape for r in rows]} does not match the header's {len(header.signals)} signals")
    if header.n_samples is not None:
        if adu.shape[1] != header.n_samples:
            what = "truncated data" if adu.shape[1] < header.n_samples else "data longer than its header"
            raise BadRecord(record_id, f"{what}: {adu.shape[1]} samples, the header states {header.n_samples}")
    names = [s.name for s in header.signals]
    gain = np.array([s.gain or _CINC_MAT_GAIN for s in header.signals])[:, None]
    baseline = np.array([s.baseline for s in header.signals])[:, None]
    units = [s.units if s.gain and s.units.lower() in _MV_PER_UNIT else "mV" for s in header.signals]
    signal = (adu - baseline) / gain * _mv_scale(record_id, names, units)[:, None]
    signal[adu == _WFDB_INVALID_16] = np.nan
    return signal, names, header.fs


def _rhythm_annotations(hea: Path, record_id: str) -> tuple[tuple[int, str], ...]:
    if not hea.with_suffix(".atr").is_file():
        return ()
    wfdb = _optional_import("wfdb", "reading WFDB annotations")
    try:
        ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
    except Exception as exc:   # wfdb's errors for a corrupt annotation file are not one type
        raise BadRecord(record_id, f"unreadable annotation file {hea.stem}.atr: {exc}") from None
    out = []
    for sample, note in zip(ann.sample, ann.aux_note or [""] * len(ann.sample)):
        if note and note.startswith("("):
            rhythm = note[1:].rstrip("\x00 \t\r\n")
            if rhythm:
                out.append((int(sample), rhythm))
    return tuple(sorted(out, key=lambda a: a[0]))


# Chapman CSV ----------------------------------------------------------------------------------------

_CHAPMAN_FS = 500.0   # figshare release: 10 s at 500 Hz


def _read_chapman_csv(path: Path, record_id: str, table: LabelTable | None) -> Record:
    fields = _first_csv_fields(path)
    has_header = bool(fields) and not all(map(_is_number, fields))
    names = tuple(map(canonical_lead_name, fields)) if has_header else STANDARD_12_LEADS
    try:
        uv = np.loadtxt(path, delimiter=",", skiprows=int(has_header), dtype=np.float64, ndmin=2, encoding="utf-8-sig")
    except (ValueError, OSError) as exc:
        raise BadRecord(record_id, f"malformed CSV {path.name}: {exc}") from None
    if uv.shape[1] != len(names):
        raise BadRecord(record_id, f"CSV {path.name} has {uv.shape[1]} columns, expected {len(names)} ({', '.join(names)})")
    beside = _beside_table(record_id, path.parent / "Diagnostics.xlsx", path.parent.parent / "Diagnostics.xlsx")
    labels, source = _labels(record_id, table, (), beside)
    return Record(record_id, uv.T / 1000.0, _CHAPMAN_FS, names, labels, source, str(path))


# SPH HDF5 -------------------------------------------------------------------------------------------

_SPH_FS = 500.0


def _read_sph_h5(path: Path, record_id: str, table: LabelTable | None) -> Record:
    h5py = _optional_import("h5py", "reading SPH .h5 records")
    try:
        with h5py.File(path, "r") as f:
            if "ecg" not in f:
                raise BadRecord(record_id, f"no 'ecg' dataset in {path.name} (has {', '.join(f.keys()) or 'nothing'})")
            mv = np.asarray(f["ecg"][()])
    except OSError as exc:
        raise BadRecord(record_id, f"unreadable HDF5 file {path.name}: {exc}") from None
    if mv.ndim != 2 or mv.shape[0] != len(STANDARD_12_LEADS):
        raise BadRecord(record_id, f"'ecg' has shape {mv.shape}, expected (12, n_samples)")
    beside = _beside_table(record_id, path.parent / "metadata.csv")
    labels, source = _labels(record_id, table, (), beside)
    fs = next((t.fs[record_id] for t in (table, beside) if t is not None and record_id in t.fs), _SPH_FS)
    return Record(record_id, mv, fs, STANDARD_12_LEADS, labels, source, str(path))


def _optional_import(module: str, purpose: str):
    try:
        with warnings.catch_warnings():
            # wfdb 4.3 calls a pandas API deprecated in pandas 3 while importing: not ours to show.
            warnings.filterwarnings("ignore", message="The inplace keyword", module="wfdb")
            return importlib.import_module(module)
    except ImportError:
        raise EcgEdgeError(f"{purpose} needs the '{module}' package: pip install 'ecgedge[train]'") from None
