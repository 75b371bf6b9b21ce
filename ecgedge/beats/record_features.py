"""Features of a single-lead ECG segment: its beats' rhythm, its beats' shape and its signal — the
input of the rhythm trees (:mod:`ecgedge.train.rhythm_trees`). numpy/scipy only.

The same function serves a whole record and a stream's last N seconds: :func:`record_features`
takes a signal segment (mV at ``fs`` Hz) and, optionally, the beats already found in it (sample
indices into the segment; :func:`beats_in_segment` cuts and shifts a stream's beats). Without
beats it runs :func:`~ecgedge.beats.qrs.detect_beats` on the segment.

Every feature is rate-independent (times in seconds, the beat template resampled to fixed times),
so a model trained on 300-Hz CinC-2017 records serves a 250-Hz stream. NaN marks a feature that
the segment cannot define (too few beats, a flat line): the trees route it as "missing".

Feature groups and units (:func:`feature_names` gives the order of :attr:`RecordFeatures.values`):

* **rhythm** (:class:`~ecgedge.beats.features.RhythmFeatures`, 22): rate (bpm), RR statistics (s, ms),
  pNN50/pNN20, irregularity, turning-point ratio, sample entropy, COSEn, Poincaré SD1/SD2 (ms),
  premature-beat share, longest pause (s), NOISY and SEARCHBACK beat shares.
* **rr** (7): RR 10th and 90th percentiles over the median RR, median absolute deviation over the
  median, largest successive difference over the median (all dimensionless), lag-1 autocorrelation
  of RR, entropy (nats) of the RR histogram in bins of 5 % of the median RR, share of RR intervals
  more than 15 % away from the median.
* **signal** (15): duration (s); 0.5-99.5 percentile range and SD (mV); ``clip_share``: share of
  samples in runs of at least 3 identical values at the segment's extremes (a saturated front end);
  ``flat_share``: share of 0.2-s blocks with a peak-to-peak under 0.02 mV; Welch band powers as
  shares of the total (0-0.5, 0.5-4, 4-9, 9-15, 15-40 and 40 Hz up to fs/2), log10 of the total power
  (mV²), spectral entropy (nats) and dominant frequency (Hz) within 0.5-40 Hz.
* **morphology** (14, on the 0.5-40 Hz band-passed segment): beats averaged (count); ``polarity``
  (+1 where the R peak stands above the template's median, -1 below); R amplitude (mV, the median
  template's) and its coefficient of variation over beats; correlation of each beat with the median
  template: mean, 10th percentile and the share under 0.8; QRS width (ms, where the template stays
  above 30 % of its R amplitude around R); P-wave amplitude (-250 to -80 ms) and T-wave extreme (+150
  to +450 ms) over R (signed, polarity-corrected); ST level (+80 to +120 ms) over R; the beats'
  P-region correlation with the template's (mean: organised atrial activity versus f-waves);
  residual RMS of beats minus the template over R (the whole beat, and the P region alone).
* **template** (24): the median beat from -250 to +450 ms at 24 equally spaced times, over R and
  polarity-corrected (dimensionless).

Cost: about 9 ms of CPU per 30-s record beyond the detector's 8 ms (median of 200 CinC-2017 records; ``docs/rhythm-trees.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from ecgedge.beats.features import RhythmFeatures, rhythm_features
from ecgedge.beats.qrs import Beats, QrsConfig, detect_beats

# Changing any computation below changes FEATURE_VERSION (it keys the feature cache and is written
# into the export's manifest, so a model is never fed features of another definition).
FEATURE_VERSION = 1

TEMPLATE_BEFORE_S = 0.25
TEMPLATE_AFTER_S = 0.45
TEMPLATE_POINTS = 24
P_REGION_S = (-0.25, -0.08)
T_REGION_S = (0.15, 0.45)
ST_REGION_S = (0.08, 0.12)
BAND_EDGES_HZ = (0.0, 0.5, 4.0, 9.0, 15.0, 40.0)
MORPH_BAND_HZ = (0.5, 40.0)
FLAT_BLOCK_S = 0.2
FLAT_PP_MV = 0.02
LOW_CORRELATION = 0.8
RR_OUTLIER_SHARE = 0.15

RR_NAMES = ("rr_p10_rel", "rr_p90_rel", "rr_mad_rel", "drr_max_rel", "rr_acf1", "rr_hist_entropy",
            "rr_outlier_share")
SIGNAL_NAMES = ("duration_s", "range_mv", "sd_mv", "clip_share", "flat_share", "power_0_0p5", "power_0p5_4",
                "power_4_9", "power_9_15", "power_15_40", "power_40_up", "log10_power_mv2", "spectral_entropy",
                "dominant_hz")
MORPH_NAMES = ("template_beats", "polarity", "r_amp_mv", "r_amp_cv", "beat_corr_mean", "beat_corr_p10",
               "beat_corr_low_share", "qrs_width_ms", "p_amp_rel", "t_amp_rel", "st_rel", "p_corr_mean",
               "residual_rel", "p_residual_rel")
TEMPLATE_NAMES = tuple(f"template_{i:02d}" for i in range(TEMPLATE_POINTS))


def feature_names() -> tuple[str, ...]:
    """Names of :attr:`RecordFeatures.values`, in order."""
    return RhythmFeatures.names() + RR_NAMES + SIGNAL_NAMES + MORPH_NAMES + TEMPLATE_NAMES


@dataclass(frozen=True)
class RecordFeatures:
    """Features of one segment: ``values`` float32 in :func:`feature_names` order (NaN = undefined)."""

    values: np.ndarray
    n_beats: int

    def to_json(self) -> dict:
        return {k: (None if not math.isfinite(float(v)) else round(float(v), 6)) for k, v in zip(feature_names(), self.values)}


def beats_in_segment(beats: Beats, start: int, end: int) -> Beats:
    """The beats with ``start <= sample < end``, shifted so that ``start`` is sample 0 (a stream's
    last N seconds: ``start = end - N * fs``)."""
    keep = (beats.samples >= start) & (beats.samples < end)
    return Beats(beats.samples[keep] - start, beats.flags[keep], beats.fs)


def record_features(signal_mv: np.ndarray, fs: float, *, beats: Beats | None = None,
                    qrs: QrsConfig | None = None) -> RecordFeatures:
    """Features of a single-lead segment (``(n,)`` or ``(1, n)`` samples in mV at ``fs`` Hz).

    ``beats``: the segment's beats (sample indices into the segment, as :func:`beats_in_segment`
    gives); by default :func:`detect_beats` finds them with ``qrs`` (default settings).
    """
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim == 2:
        if x.shape[0] != 1:
            raise ValueError(f"record_features takes one lead; got {x.shape[0]} leads")
        x = x[0]
    x = _fill_nan(x)
    if beats is None:
        beats = detect_beats(x, fs, cfg=qrs)
    rhythm = rhythm_features(beats).to_array().astype(np.float64)
    rr = np.diff(beats.samples) / fs
    values = np.concatenate([rhythm, _rr_extra(rr), _signal_features(x, fs), *_morphology(x, fs, beats.samples)])
    return RecordFeatures(values.astype(np.float32), len(beats))


def _fill_nan(x: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    if bad.all():
        return np.zeros_like(x)
    idx = np.arange(x.size)
    x = x.copy()
    x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return x


def _rr_extra(rr: np.ndarray) -> np.ndarray:
    out = np.full(len(RR_NAMES), np.nan)
    if rr.size < 2:
        return out
    med = float(np.median(rr))
    if med <= 0:
        return out
    rel = rr / med
    out[0], out[1] = np.percentile(rel, [10, 90])
    out[2] = float(np.median(np.abs(rel - 1.0)))
    out[3] = float(np.max(np.abs(np.diff(rel))))
    if rr.size >= 4 and np.std(rr) > 0:
        c = rr - rr.mean()
        out[4] = float(np.sum(c[1:] * c[:-1]) / np.sum(c * c))
    counts = np.bincount(np.clip(np.floor(rel / 0.05).astype(np.int64), 0, 200))
    p = counts[counts > 0] / rr.size
    out[5] = float(-np.sum(p * np.log(p)))
    out[6] = float(np.mean(np.abs(rel - 1.0) > RR_OUTLIER_SHARE))
    return out


def _runs_of_equal(x: np.ndarray, min_len: int = 3) -> np.ndarray:
    """Mask of samples inside runs of at least ``min_len`` identical consecutive values."""
    change = np.flatnonzero(np.diff(x) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [x.size]])
    mask = np.zeros(x.size, bool)
    for s, e in zip(starts[ends - starts >= min_len], ends[ends - starts >= min_len]):
        mask[s:e] = True
    return mask


def _signal_features(x: np.ndarray, fs: float) -> np.ndarray:
    out = np.full(len(SIGNAL_NAMES), np.nan)
    n = x.size
    out[0] = n / fs
    if n < 2:
        return out
    lo, hi = np.percentile(x, [0.5, 99.5])
    out[1] = float(hi - lo)
    out[2] = float(np.std(x))
    span = float(x.max() - x.min())
    if span > 0:
        extreme = (x >= x.max() - 0.01 * span) | (x <= x.min() + 0.01 * span)
        out[3] = float(np.mean(_runs_of_equal(x) & extreme))
    else:
        out[3] = 1.0
    block = max(1, int(round(FLAT_BLOCK_S * fs)))
    nb = n // block
    if nb:
        b = x[: nb * block].reshape(nb, block)
        out[4] = float(np.mean(np.ptp(b, axis=1) < FLAT_PP_MV))
    nper = min(n, int(round(2 * fs)))
    f, p = sps.welch(x - x.mean(), fs=fs, nperseg=nper)
    total = float(p.sum())
    if total > 0:
        edges = (*BAND_EDGES_HZ, fs / 2 + 1)
        for i in range(len(edges) - 1):
            out[5 + i] = float(p[(f >= edges[i]) & (f < edges[i + 1])].sum() / total)
        out[11] = math.log10(total * (f[1] - f[0]))
        band = (f >= MORPH_BAND_HZ[0]) & (f <= MORPH_BAND_HZ[1])
        pb = p[band]
        if pb.sum() > 0:
            q = pb / pb.sum()
            q = q[q > 0]
            out[12] = float(-np.sum(q * np.log(q)))
            out[13] = float(f[band][int(np.argmax(pb))])
    else:
        out[11] = -np.inf
    out[11] = out[11] if np.isfinite(out[11]) else np.nan
    return out


def _bandpass(x: np.ndarray, fs: float) -> np.ndarray:
    high = min(MORPH_BAND_HZ[1], 0.45 * fs)
    sos = sps.butter(2, [MORPH_BAND_HZ[0], high], btype="bandpass", fs=fs, output="sos")
    if x.size <= 3 * (2 * len(sos) + 1) * 2:
        return x - x.mean()
    return sps.sosfiltfilt(sos, x)


def _region(times: np.ndarray, region: tuple[float, float]) -> np.ndarray:
    return (times >= region[0]) & (times < region[1])


def _corr_rows(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with ``t`` (NaN for a constant row)."""
    ac = a - a.mean(axis=1, keepdims=True)
    tc = t - t.mean()
    den = np.sqrt((ac * ac).sum(axis=1) * (tc * tc).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ac @ tc) / den, np.nan)


def _morphology(x: np.ndarray, fs: float, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    morph = np.full(len(MORPH_NAMES), np.nan)
    tmpl_out = np.full(TEMPLATE_POINTS, np.nan)
    before, after = int(round(TEMPLATE_BEFORE_S * fs)), int(round(TEMPLATE_AFTER_S * fs))
    r = np.asarray(r, dtype=np.int64)
    r = r[(r - before >= 0) & (r + after < x.size)]
    morph[0] = float(r.size)
    if r.size < 2:
        return morph, tmpl_out
    y = _bandpass(x, fs)
    beats = y[r[:, None] + np.arange(-before, after + 1)[None, :]]   # (beats, samples)
    times = np.arange(-before, after + 1) / fs
    template = np.median(beats, axis=0)
    base = float(np.median(template))
    polarity = 1.0 if template[before] - base >= 0 else -1.0
    morph[1] = polarity
    tp = polarity * (template - base)
    bp = polarity * (beats - base)
    r_amp = float(tp[before])
    morph[2] = r_amp
    amps = bp[:, before]
    if abs(amps.mean()) > 0:
        morph[3] = float(np.std(amps) / abs(amps.mean()))
    corr = _corr_rows(beats, template)
    corr = corr[np.isfinite(corr)]
    if corr.size:
        morph[4] = float(corr.mean())
        morph[5] = float(np.percentile(corr, 10))
        morph[6] = float(np.mean(corr < LOW_CORRELATION))
    if r_amp <= 0:
        return morph, tmpl_out
    above = tp >= 0.3 * r_amp
    left = before
    while left > 0 and above[left - 1]:
        left -= 1
    right = before
    while right < tp.size - 1 and above[right + 1]:
        right += 1
    morph[7] = 1000.0 * (right - left + 1) / fs
    p_reg, t_reg, st_reg = _region(times, P_REGION_S), _region(times, T_REGION_S), _region(times, ST_REGION_S)
    morph[8] = float(tp[p_reg].max() / r_amp)
    t_seg = tp[t_reg]
    morph[9] = float(t_seg[int(np.argmax(np.abs(t_seg)))] / r_amp)
    morph[10] = float(tp[st_reg].mean() / r_amp)
    pc = _corr_rows(beats[:, p_reg], template[p_reg])
    pc = pc[np.isfinite(pc)]
    if pc.size:
        morph[11] = float(pc.mean())
    resid = bp - tp[None, :]
    morph[12] = float(np.sqrt(np.mean(resid ** 2)) / r_amp)
    morph[13] = float(np.sqrt(np.mean(resid[:, p_reg] ** 2)) / r_amp)
    grid = np.linspace(-TEMPLATE_BEFORE_S, TEMPLATE_AFTER_S, TEMPLATE_POINTS)
    tmpl_out[:] = np.interp(grid, times, tp) / r_amp
    return morph, tmpl_out
