"""The CinC ``.mat`` fallback: a WFDB record whose data files are MAT files (``val``, int16 adu,
signals x samples: CinC 2017/2020/2021 and ecg-arrhythmia) read with ``scipy.io.loadmat`` when
``wfdb`` cannot read it right.

``ecgedge.data.wfdb_files`` comes here in two cases only: ``wfdb.rdheader`` rejects the header (the
CinC-2017 ISO date ``2014-05-08 05:05:15``, a gain that is not a number, a garbled baseline), or a
signal's gain is missing or zero, which WFDB reads as its default of 200 adu/mV while every CinC
``.mat`` is written at 1000 adu/mV. Here the header's gain is used where it is a non-zero number
and 1000 adu/mV otherwise, the baseline as the header states it (0 where it states none), and the
format-16 "no sample" value -32768 becomes NaN as ``wfdb.rdrecord`` makes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.data.leads import channel_label, ecg_channel, mv_per_unit
from ecgedge.errors import BadRecord

CINC_MAT_GAIN = 1000.0   # adu/mV of every CinC / ecg-arrhythmia .mat file
WFDB_INVALID_16 = -32768  # format-16 "no sample" value (wfdb.rdrecord turns it into NaN too)


def check_mat_shape(f: Path, n_sig: int, n_samples: int, record_id: str) -> None:
    """A MAT v4 ``.mat`` states its matrix's rows x columns: they must be the header's signals x samples.

    Raises:
        BadRecord: unreadable or shorter than a MAT v4 header, or a shape other than the header's.
    """
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
        return   # MAT v5 or later: its shape is checked once loaded (read_mat_direct)
    if (rows, cols) != (n_sig, n_samples):
        raise BadRecord(record_id, f"data file {f.name} holds {rows} signals x {cols} samples, "
                                   f"the header states {n_sig} signals x {n_samples} samples")


def read_mat_direct(hea: Path, header, record_id: str) -> tuple[np.ndarray, list[str], list[str], float]:
    """``val`` of the header's ``.mat`` file(s) -> (ECG leads in mV, their names, ignored channels, fs in Hz).

    ``header`` is the fallback parser's reading (``wfdb_files.parse_header``). Channels that are no
    ECG lead (:func:`ecgedge.data.leads.ecg_channel`) are left out and named as ``"ABP (mmHg)"``.

    Raises:
        BadRecord: no ``val`` array, an unreadable file, or a shape other than the header's.
    """
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
    if header.n_samples is not None and adu.shape[1] != header.n_samples:
        what = "truncated data" if adu.shape[1] < header.n_samples else "data longer than its header"
        raise BadRecord(record_id, f"{what}: {adu.shape[1]} samples, the header states {header.n_samples}")
    keep = [i for i, s in enumerate(header.signals) if ecg_channel(s.name, s.units)]
    ignored = [channel_label(s.name, s.units) for i, s in enumerate(header.signals) if i not in keep]
    sigs = [header.signals[i] for i in keep]
    adu = adu[keep]
    gain = np.array([s.gain or CINC_MAT_GAIN for s in sigs])[:, None]
    baseline = np.array([s.baseline for s in sigs])[:, None]
    scale = np.array([mv_per_unit(s.units) for s in sigs])[:, None]
    signal = (adu - baseline) / gain * scale
    signal[adu == WFDB_INVALID_16] = np.nan
    return signal, [s.name for s in sigs], ignored, header.fs
