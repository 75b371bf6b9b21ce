"""Synthetic records in PhysioNet's "ecg-arrhythmia" (Chapman-Shaoxing) layout: :func:`write_wfdb_dataset`
writes :func:`ecgedge.data.synthetic.synthesize_ecg`'s 12-lead ECG as WFDB records (MATLAB v4 ``.mat``
+ ``.hea`` with ``#Dx`` SNOMED codes), so every command runs on a machine with no data.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.synthetic import DEFAULT_DATASET_RHYTHMS, SNOMED, SyntheticSpecError, checked_spec, synthesize_ecg


_GAIN_ADU_PER_MV = 1000
_RECORDS_PER_FOLDER = 100   # WFDBRecords/01/010 holds records 1-100, 01/011 101-200, ..., 02/020 1001-


def _record_folder(number: int) -> Path:
    sub = 10 + (number - 1) // _RECORDS_PER_FOLDER
    return Path("WFDBRecords") / f"{sub // 10:02d}" / f"{sub:03d}"


def _mat_v4(val: np.ndarray) -> bytes:
    """A MATLAB v4 file holding int16 matrix ``val``: 20-byte header + ``val\\0`` = 24 bytes, then the
    data column-major, i.e. sample-interleaved across leads, which is WFDB format 16 at offset 24."""
    rows, cols = val.shape
    header = np.array([30, rows, cols, 0, 4], dtype="<i4").tobytes()   # 30: little-endian int16 matrix
    return header + b"val\x00" + np.ascontiguousarray(val.T, dtype="<i2").tobytes()


def _header(name: str, val: np.ndarray, fs: float, stamp: str, comments: list[str]) -> str:
    lines = [f"{name} {val.shape[0]} {fs:g} {val.shape[1]} {stamp}"]
    for lead, row in zip(STANDARD_12_LEADS, val):
        checksum = (int(row.astype(np.int64).sum()) + 32768) % 65536 - 32768
        lines.append(f"{name}.mat 16+24 {_GAIN_ADU_PER_MV}/mV 16 0 {int(row[0])} {checksum} 0 {lead}")
    return "\n".join(lines + [f"#{c}" for c in comments]) + "\n"


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _timestamp(rng: np.random.Generator) -> str:
    """Upstream's record-line stamp, date first: ``23-Mar-2021 20:20:47``."""
    day, month, year = rng.integers(1, 29), _MONTHS[rng.integers(12)], rng.integers(2018, 2021)
    return f"{day:02d}-{month}-{year} {rng.integers(24):02d}:{rng.integers(60):02d}:{rng.integers(60):02d}"


def _patient_comments(rng: np.random.Generator, rhythm: str) -> list[str]:
    sex = "Male" if rng.random() < 0.56 else "Female"
    return [f"Age: {rng.integers(18, 90)}", f"Sex: {sex}", f"Dx: {SNOMED[rhythm]}",
            "Rx: Unknown", "Hx: Unknown", "Sx: Unknown"]


def write_wfdb_dataset(out_dir: str | Path, *, records_per_rhythm: int = 20,
                       rhythms: Sequence[str] = DEFAULT_DATASET_RHYTHMS, seed: int = 0,
                       duration_s: float = 10.0, fs: float = 500.0, progress: bool = False) -> list[Path]:
    """Write a synthetic data set in the PhysioNet "ecg-arrhythmia" (Chapman-Shaoxing) layout.

    Each record is ``<out_dir>/WFDBRecords/01/010/SYN00001.hea`` + ``.mat`` (100 records per folder,
    folders numbered as upstream: 01/010 ... 01/019, 02/020, ...): 12 leads I..V6, int16 at
    1000 adu/mV, the ``.mat`` a MATLAB v4 file with variable ``val`` (12, n), so the header's
    ``16+24`` is right; header comments ``#Age``, ``#Sex``, ``#Dx: <SNOMED code>``, ``#Rx``,
    ``#Hx``, ``#Sx`` as upstream, then ``#Synthetic: ecgedge <rhythm> seed=<seed>`` naming the
    :func:`synthesize_ecg` call that made it. Existing files of the same names are overwritten.

    Args:
        out_dir: data set root, created if missing.
        records_per_rhythm: records of each rhythm.
        rhythms: Chapman acronyms from :data:`RHYTHMS`.
        seed: data set seed; each record's own seed derives from it, the rhythm and its index.
        duration_s: record length in s.
        fs: sampling rate in Hz.
        progress: show a tqdm progress bar.

    Returns:
        The ``.hea`` paths, in record-number order. Records are numbered interleaved (SYN00001 is
        the first record of ``rhythms[0]``, SYN00002 of ``rhythms[1]``, ...), so any prefix of the
        data set is balanced.
    """
    rhythms = tuple(rhythms)
    for rhythm in rhythms:
        checked_spec(rhythm, STANDARD_12_LEADS, duration_s, fs, seed)
    if records_per_rhythm < 0:
        raise SyntheticSpecError(f"records_per_rhythm must be >= 0, got {records_per_rhythm}")
    jobs = [(i, rhythm) for i in range(records_per_rhythm) for rhythm in rhythms]
    paths = []
    for number, (i, rhythm) in enumerate(tqdm(jobs, desc="synthetic records", unit="rec", disable=not progress), 1):
        # Each record's seeds depend on (seed, rhythm, index) only: adding rhythms or records to a
        # data set leaves the existing records' signals unchanged.
        record_seed, meta_seed = np.random.SeedSequence([int(seed), zlib.crc32(rhythm.encode()), i]).generate_state(2)
        signal, _ = synthesize_ecg(rhythm, seed=int(record_seed), duration_s=duration_s, fs=fs)
        val = np.clip(np.round(signal.astype(np.float64) * _GAIN_ADU_PER_MV), -32768, 32767).astype(np.int16)
        meta = np.random.default_rng(meta_seed)
        stamp = _timestamp(meta)
        comments = _patient_comments(meta, rhythm) + [f"Synthetic: ecgedge {rhythm} seed={record_seed}"]
        name = f"SYN{number:05d}"
        folder = Path(out_dir) / _record_folder(number)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.mat").write_bytes(_mat_v4(val))
        (folder / f"{name}.hea").write_text(_header(name, val, fs, stamp, comments))
        paths.append(folder / f"{name}.hea")
    return paths
