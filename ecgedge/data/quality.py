"""Signal checks on a (leads, samples) array in mV: NaN/inf, flat, saturated and implausibly large
leads, and the sampling rate a model's band needs.

numpy only (no wfdb, no torch): the streaming runtime calls :func:`signal_problems` on every
window (12 x 2048 float32 samples take about 0.07 ms), and the data layer calls it per record.

Where each check is applied, and why:

- **NaN/inf** make the windows that touch them unusable: ``read_record`` keeps them as NaN and
  ``ecgedge.data.windows`` skips those windows, naming the samples with :func:`nonfinite_problems`
  (the same wording as here); the flat/saturated checks then look at the valid samples.
- **Flat and saturated** leads are judged by callers on the leads they use: a pretraining job on
  lead II keeps a record whose V3 is flat, a 12-lead classifier skips it.

A lead is *flat* when its standard deviation is below ``flat_std_mv`` (an unplugged electrode or a
zero-filled channel). It is *saturated* when at least ``saturation_fraction`` of its samples sit
exactly at its own minimum or maximum: an amplifier or ADC at its rail clips many samples to one
value, while a real ECG touches its extremes only at a few samples per beat. It is *implausible*
when it reaches beyond ``max_abs_mv`` (default :data:`MAX_PLAUSIBLE_MV`): a wrong gain, not a heart.

A sampling rate below twice the band-pass upper edge (:func:`rate_problem`) cannot carry the band
the model was trained on: records at such a rate are skipped, stream windows are unreliable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Surface ECG QRS complexes stay within a few mV (about 5 mV in tall-voltage LVH, MIT-BIH's format 212
# clips at +-5.12 mV); 20 mV leaves room for baseline wander and pacing spikes while a wrong gain
# (1 adu/mV for 1000, a 1000x device gain) lands far beyond it.
MAX_PLAUSIBLE_MV = 20.0


def rate_problem(fs: float, band_high_hz: float) -> str:
    """Why ``fs`` (Hz) cannot carry a band-pass up to ``band_high_hz`` (Hz); "" when it can.

    The band needs a Nyquist frequency at or above its upper edge, so ``fs >= 2 * band_high_hz``
    (80 Hz for the default 40-Hz edge, ``PreprocessConfig.bandpass_high_hz``); e.g.
    ``"sampling rate too low: fs 0.5 Hz is below 80 Hz, twice the 40-Hz band edge"``.
    """
    need = 2.0 * band_high_hz
    if fs >= need:
        return ""
    return f"sampling rate too low: fs {fs:g} Hz is below {need:g} Hz, twice the {band_high_hz:g}-Hz band edge"


def signal_problems(
    signal_mv: np.ndarray,
    fs: float,
    lead_names: Sequence[str],
    *,
    flat_std_mv: float = 0.005,
    saturation_fraction: float = 0.05,
    max_abs_mv: float = MAX_PLAUSIBLE_MV,
) -> list[str]:
    """Human-readable problems of a multi-lead signal; an empty list when it is fine.

    Args:
        signal_mv: (n_leads, n_samples) signal in mV.
        fs: sampling rate in Hz (used to state where non-finite samples are, in seconds).
        lead_names: one name per row, used in the messages.
        flat_std_mv: a lead whose standard deviation is below this (mV) is flat; default 5 µV.
        saturation_fraction: a lead with at least this fraction of samples at its minimum or
            maximum is saturated; default 0.05 (5 %).
        max_abs_mv: a lead reaching beyond +-this (mV) has an implausible amplitude (a wrong
            gain); default :data:`MAX_PLAUSIBLE_MV`, 20 mV. Checked after flat and saturated.

    Returns:
        One message per problem, in lead order, e.g. ``"NaN in lead V2 at samples 100-180
        (0.200-0.360 s)"``, ``"lead III flat (std 0.0001 mV)"``, ``"lead V1 saturated (12% of
        samples at the rail)"``, ``"implausible amplitude: lead II reaches 1000 mV; check the
        gain"``. A lead with non-finite samples gets only the non-finite message.

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
    peak = np.zeros(len(lead_names))
    if finite_rows.any():
        ok = x if finite_rows.all() else x[finite_rows]
        lo = ok.min(axis=1, keepdims=True)
        hi = ok.max(axis=1, keepdims=True)
        std[finite_rows] = ok.std(axis=1)
        peak[finite_rows] = np.where(np.abs(lo) > np.abs(hi), lo, hi)[:, 0]
        at_rail[finite_rows] = np.count_nonzero(ok == lo, axis=1) + np.count_nonzero(ok == hi, axis=1)
    problems = []
    for i, name in enumerate(lead_names):
        if not finite_rows[i]:
            problems.append(_nonfinite_message(x[i], fs, name))
        elif std[i] < flat_std_mv:
            problems.append(f"lead {name} flat (std {std[i]:.2g} mV)")
        elif at_rail[i] / n >= saturation_fraction:
            problems.append(f"lead {name} saturated ({at_rail[i] / n:.0%} of samples at the rail)")
        elif abs(peak[i]) > max_abs_mv:
            problems.append(f"implausible amplitude: lead {name} reaches {peak[i]:.4g} mV; check the gain")
    return problems


def nonfinite_problems(signal_mv: np.ndarray, fs: float, lead_names: Sequence[str]) -> list[str]:
    """Only the NaN/inf part of :func:`signal_problems` (how the windowing names the invalid samples it skips)."""
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
