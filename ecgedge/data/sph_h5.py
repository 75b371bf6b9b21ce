"""SPH (Shandong Provincial Hospital) HDF5 records -> :class:`Record`: dataset ``ecg`` of shape
(12, N), float16 in mV, leads I..V6, 500 Hz unless the ``fs`` column of ``metadata.csv`` beside the
file says otherwise (labels come from the same table). NaN samples are kept as invalid samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.label_tables import beside_table, labels_for
from ecgedge.data.record_types import LabelTable, Record
from ecgedge.data.scan import optional_import
from ecgedge.errors import BadRecord

SPH_FS = 500.0


def read_sph_h5(path: Path, record_id: str, table: LabelTable | None) -> Record:
    """Read one SPH record (module doc).

    Raises:
        BadRecord: not an HDF5 file, no ``ecg`` dataset, or a shape other than (12, n_samples).
    """
    h5py = optional_import("h5py", "reading SPH .h5 records")
    try:
        with h5py.File(path, "r") as f:
            if "ecg" not in f:
                raise BadRecord(record_id, f"no 'ecg' dataset in {path.name} (has {', '.join(f.keys()) or 'nothing'})")
            mv = np.asarray(f["ecg"][()])
    except OSError as exc:
        raise BadRecord(record_id, f"unreadable HDF5 file {path.name}: {exc}") from None
    if mv.ndim != 2 or mv.shape[0] != len(STANDARD_12_LEADS):
        raise BadRecord(record_id, f"'ecg' has shape {mv.shape}, expected (12, n_samples)")
    beside = beside_table(record_id, path.parent / "metadata.csv")
    labels, source = labels_for(record_id, table, (), beside)
    fs = next((t.fs[record_id] for t in (table, beside) if t is not None and record_id in t.fs), SPH_FS)
    return Record(record_id, mv, fs, STANDARD_12_LEADS, labels, source, str(path))
