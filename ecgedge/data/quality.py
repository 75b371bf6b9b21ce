"""Signal checks on a (leads, samples) array in mV: NaN/inf, flat leads, saturated leads.

numpy only (no wfdb, no torch): the streaming runtime calls :func:`signal_problems` on every
window (12 x 2048 float32 samples take about 0.07 ms), and the data layer calls it per record.

Where each check is applied, and why:

- **NaN/inf** make a record unusable, so :func:`ecgedge.data.records.read_record` itself rejects
  them (with :func:`nonfinite_problems`, the same wording as here).
- **Flat and saturated** leads are judged by callers on the leads they use: a pretraining job on
  lead II keeps a record whose V3 is flat, a 12-lead classifier skips it.

A lead is *flat* when its standard deviation is below ``flat_std_mv`` (an unplugged electrode or a
zero-filled channel). It is *saturated* when at least ``saturation_fraction`` of its samples sit
exactly at its own minimum or maximum: an amplifier or ADC at its rail clips many samples to one
value, while a real ECG touches its extremes only at a few samples per beat.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def signal_problems(
    signal_mv: np.ndarray,
    fs: float,
    lead_names: Sequence[str],
    *,
    flat_std_mv: float = 0.005,
    saturation_fraction: float = 0.05,
) -> list[str]:
    """Human-readable problems of a multi-lead signal; an empty list when it is fine.

    Args:
        signal_mv: (n_leads, n_samples) signal in mV.
        fs: sampling rate in Hz (used to state where non-finite samples are, in seconds).
        lead_names: one name per row, used in the messages.
        flat_std_mv: a lead whose standard deviation is below this (mV) is flat; default 5 µV.
        saturation_fraction: a lead with at least this fraction of samples at its minimum or
            maximum is saturated; default 0.05 (5 %).

    Returns:
        One message per problem, in lead order, e.g. ``"NaN in lead V2 at samples 100-180
        (0.200-0.360 s)"``, ``"lead III flat (std 0.0001 mV)"``, ``"lead V1 saturated (12% of
        samples at the rail)"``. A lead with non-finite samples gets only the non-finite message.

    Raises:
        ValueError: ``signal_mv`` is not 2-D or its rows do not match ``lead_names`` (a bug in the caller).
    """
    x = _check_shape(signal_mv, lead_names)
    n = x.shape[1]
    if n == 0:
        return ["no samples"]
    finite_rows = np.isfinite(x).all(axis=1)
    std = np.full(len(lead_names), np.nan)
    at_rail = np.zeros(len(lead_names))
    if finite_rows.any():
        ok = x if finite_rows.all() else x[finite_rows]
        lo = ok.min(axis=1, keepdims=True)
        hi = ok.max(axis=1, keepdims=True)
        std[finite_rows] = ok.std(axis=1)
        at_rail[finite_rows] = np.count_nonzero(ok == lo, axis=1) + np.count_nonzero(ok == hi, axis=1)
    problems = []
    for i, name in enumerate(lead_names):
        if not finite_rows[i]:
            problems.append(_nonfinite_message(x[i], fs, name))
        elif std[i] < flat_std_mv:
            problems.append(f"lead {name} flat (std {std[i]:.2g} mV)")
        elif at_rail[i] / n >= saturation_fraction:
            problems.append(f"lead {name} saturated ({at_rail[i] / n:.0%} of samples at the rail)")
    return problems


def nonfinite_problems(signal_mv: np.ndarray, fs: float, lead_names: Sequence[str]) -> list[str]:
    """Only the NaN/inf part of :func:`signal_problems` (what ``read_record`` rejects a record for)."""
    x = _check_shape(signal_mv, lead_names)
    bad = ~np.isfinite(x).all(axis=1)
    return [_nonfinite_message(x[i], fs, lead_names[i]) for i in np.flatnonzero(bad)]


def _check_shape(signal_mv, lead_names) -> np.ndarray:
    x = np.asarray(signal_mv)
    if x.ndim != 2 or x.shape[0] != len(lead_names):
        raise ValueError(f"signal of shape {x.shape} does not match {len(lead_names)} lead name(s) {tuple(lead_names)}")
    return x


def _nonfinite_message(lead: np.ndarray, fs: float, name: str) -> str:
    bad = ~np.isfinite(lead)
    idx = np.flatnonzero(bad)
    kinds = np.isnan(lead[idx])
    what = "NaN" if kinds.all() else "inf" if not kinds.any() else "NaN/inf"
    first, last = int(idx[0]), int(idx[-1])
    runs = 1 + int(np.count_nonzero(np.diff(idx) > 1))
    where = f"sample {first}" if first == last else f"samples {first}-{last}"
    seconds = f"{first / fs:.3f} s" if first == last else f"{first / fs:.3f}-{last / fs:.3f} s"
    if runs == 1:
        return f"{what} in lead {name} at {where} ({seconds})"
    return f"{what} in lead {name} at {len(idx)} samples in {runs} runs, {where} ({seconds})"
