"""The CPSC-2019 QRS-detection layout (China Physiological Signal Challenge 2019): a folder holding
``data/data_NNNNN.mat`` (key ``ecg``: (5000, 1) float64 in mV, one lead, 500 Hz, 10 s) and
``ref/R_NNNNN.mat`` (key ``R_peak``: the expert-checked R-peak positions as **1-based** sample
indices, MATLAB's convention; here they become 0-based like every sample index in ecgedge).

The files state no sampling rate and no lead name: 500 Hz is the challenge's, and the lead is called
``ECG`` (the challenge does not name it).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ecgedge.data.annotations import BeatReference
from ecgedge.data.record_types import Record
from ecgedge.errors import BadRecord

CPSC2019_FS = 500.0
CPSC2019_LEAD = "ECG"
_DATA = re.compile(r"data_(\d+)\.mat$")


def is_cpsc2019_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the CPSC-2019 layout (it holds ``data/`` and ``ref/``)."""
    p = Path(path)
    return (p / "data").is_dir() and (p / "ref").is_dir()


def is_cpsc2019_data_file(path: str | Path) -> bool:
    """Whether ``path`` is a ``data_NNNNN.mat`` inside a CPSC-2019 layout folder."""
    p = Path(path)
    return bool(_DATA.search(p.name)) and p.parent.name == "data" and is_cpsc2019_folder(p.parent.parent)


def cpsc2019_data_files(folder: str | Path) -> list[Path]:
    """The ``data/data_NNNNN.mat`` files of a CPSC-2019 layout folder, sorted."""
    return sorted(f for f in (Path(folder) / "data").iterdir() if _DATA.search(f.name))


def cpsc2019_reference_file(data_file: str | Path) -> Path:
    """``ref/R_NNNNN.mat`` of ``data/data_NNNNN.mat``."""
    p = Path(data_file)
    m = _DATA.search(p.name)
    if m is None:
        raise BadRecord(p.stem, f"{p.name} is not a CPSC-2019 data file (data_NNNNN.mat)")
    return p.parent.parent / "ref" / f"R_{m.group(1)}.mat"


def read_cpsc2019(data_file: str | Path) -> tuple[Record, BeatReference]:
    """One CPSC-2019 record and its reference R peaks (0-based sample indices at 500 Hz).

    Raises:
        BadRecord: a missing or unreadable file, no ``ecg``/``R_peak`` array, a signal that is not
            one lead, or R peaks outside the signal.
    """
    from scipy.io import loadmat

    p = Path(data_file)
    rid = p.stem
    ref_file = cpsc2019_reference_file(p)
    if not ref_file.is_file():
        raise BadRecord(rid, f"no reference file {ref_file.parent.name}/{ref_file.name}, so no reference beats to score against")
    try:
        ecg = np.asarray(loadmat(str(p))["ecg"], dtype=np.float64)
        peaks = np.asarray(loadmat(str(ref_file))["R_peak"], dtype=np.float64).ravel()
    except KeyError as exc:
        raise BadRecord(rid, f"no {exc} array in its CPSC-2019 files (expected 'ecg' in data_*.mat, 'R_peak' in R_*.mat)") from None
    except Exception as exc:   # scipy raises ValueError, TypeError, MatReadError ... for a corrupt file
        raise BadRecord(rid, f"unreadable CPSC-2019 file: {exc}") from None
    if ecg.ndim != 2 or 1 not in ecg.shape:
        raise BadRecord(rid, f"'ecg' has shape {ecg.shape}; CPSC-2019 stores one lead as (samples, 1)")
    signal = ecg.reshape(1, -1)
    n = signal.shape[1]
    samples = np.sort(np.round(peaks).astype(np.int64) - 1)   # 1-based (MATLAB) -> 0-based
    if len(samples) and (samples[0] < 0 or samples[-1] >= n):
        raise BadRecord(rid, f"R_peak holds indices outside 1..{n} (min {samples[0] + 1}, max {samples[-1] + 1})")
    record = Record(rid, signal, CPSC2019_FS, (CPSC2019_LEAD,), source=str(p))
    return record, BeatReference(str(p), CPSC2019_FS, n, samples, ("",) * len(samples))
