"""Label tables beside records, and which labels a record gets.

Tables read (:func:`load_label_table`, cached per process by path, size and mtime):

- Chapman ``Diagnostics.xlsx`` (``FileName`` and ``Rhythm`` columns; row ``i`` is also record ``JS%05d``
  of ``i + 1``): source ``chapman``;
- CinC 2017 ``REFERENCE.csv`` (``A00001,N``): source ``cinc2017``;
- SPH ``metadata.csv`` (``ECG_ID``, ``SNOMEDCTCode``, optional ``fs``): source ``snomed``.

A record's labels come from the first source that has it (:func:`labels_for`): an explicit table
passed to ``read_record``; the header comment ``#Dx:`` / ``# Dx:`` (SNOMED-CT codes); the table
beside the record (:func:`beside_table`).
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import Sequence

from ecgedge.data.record_types import LabelSource, LabelTable
from ecgedge.data.scan import files_under as _files_under
from ecgedge.data.scan import first_csv_fields as _first_csv_fields
from ecgedge.data.scan import is_number as _is_number
from ecgedge.data.scan import optional_import as _optional_import
from ecgedge.errors import BadRecord, ConfigError

TABLE_NAMES = {"reference.csv", "metadata.csv", "diagnostics.xlsx"}
"""File names (lower case) of the label tables we read; such files are never records."""
_TABLE_NAMES = TABLE_NAMES


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


def beside_table(record_id: str, *candidates: Path) -> LabelTable | None:
    """The first readable table among ``candidates`` (files that may not exist); None if none is."""
    for path in candidates:
        if path.is_file() and _table_kind(path) is not None:
            try:
                return load_label_table(path)
            except ConfigError as exc:
                raise BadRecord(record_id, str(exc)) from None
    return None


def labels_for(record_id: str, table: LabelTable | None, header_labels: tuple[str, ...],
            beside: LabelTable | None) -> tuple[tuple[str, ...], LabelSource]:
    """The labels of ``record_id`` and their kind: the explicit ``table`` where it lists the record, else
    the header's Dx codes, else the table ``beside`` the record, else none."""
    if table is not None and record_id in table:
        return table[record_id], table.source
    if header_labels:
        return header_labels, LabelSource.snomed
    if beside is not None and record_id in beside:
        return beside[record_id], beside.source
    return (), LabelSource.none
