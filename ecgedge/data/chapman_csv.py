"""Chapman-Shaoxing figshare CSV records -> :class:`Record`: 12 columns I..V6 in µV at 500 Hz.

``ECGData/`` files carry a header row of lead names, ``ECGDataDenoised/`` files none (detected per
file). Labels come from ``Diagnostics.xlsx`` in the file's folder or its parent (the figshare layout).
Empty or non-numeric cells are refused as a malformed file; ``nan`` cells are invalid samples (NaN).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.label_tables import TABLE_NAMES, beside_table, labels_for
from ecgedge.data.leads import canonical_lead_name
from ecgedge.data.record_types import LabelTable, Record
from ecgedge.data.scan import first_csv_fields, is_number
from ecgedge.errors import BadRecord

CHAPMAN_FS = 500.0   # figshare release: 10 s at 500 Hz
CHAPMAN_CSV_FOLDERS = {"ECGData", "ECGDataDenoised"}


def is_record_csv(f: Path) -> bool:
    """Whether a ``.csv`` is a record: inside ``ECGData``/``ECGDataDenoised``, or anywhere when its first
    line is the 12 lead names or 12 numbers; label tables never are."""
    if f.name.lower() in TABLE_NAMES or f.name.lower().startswith("reference"):
        return False
    if f.parent.name in CHAPMAN_CSV_FOLDERS:
        return True
    fields = first_csv_fields(f)
    return len(fields) == 12 and (all(map(is_number, fields)) or tuple(map(canonical_lead_name, fields)) == STANDARD_12_LEADS)


def read_chapman_csv(path: Path, record_id: str, table: LabelTable | None) -> Record:
    """Read one Chapman CSV record (module doc).

    Raises:
        BadRecord: a malformed file, or a column count other than its header's (12 without one).
    """
    fields = first_csv_fields(path)
    has_header = bool(fields) and not all(map(is_number, fields))
    names = tuple(map(canonical_lead_name, fields)) if has_header else STANDARD_12_LEADS
    try:
        uv = np.loadtxt(path, delimiter=",", skiprows=int(has_header), dtype=np.float64, ndmin=2, encoding="utf-8-sig")
    except (ValueError, OSError) as exc:
        raise BadRecord(record_id, f"malformed CSV {path.name}: {exc}") from None
    if uv.shape[1] != len(names):
        raise BadRecord(record_id, f"CSV {path.name} has {uv.shape[1]} columns, expected {len(names)} ({', '.join(names)})")
    beside = beside_table(record_id, path.parent / "Diagnostics.xlsx", path.parent.parent / "Diagnostics.xlsx")
    labels, source = labels_for(record_id, table, (), beside)
    return Record(record_id, uv.T / 1000.0, CHAPMAN_FS, names, labels, source, str(path))
