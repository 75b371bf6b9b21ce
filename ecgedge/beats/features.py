"""Heart rate and rhythm features from a run of beats: the same code for a record and for a stream's
last N seconds (numpy only, a few loops over tens of RR intervals, portable to C).

Units: RR intervals in seconds (``_s``) or milliseconds (``_ms``), rates in beats per minute
(``bpm``), shares in [0, 1], entropies in nats. A feature that needs more beats than there are is
NaN (gradient-boosted trees and the stream both take NaN as "unknown"), never a made-up zero.

The features follow what the CinC-2017 winners and the RR-based AF detectors rest on (see
``../shared/reading/rhythm-models.md``): rate, spread and successive differences of RR (RMSSD,
pNN50/pNN20), the turning-point ratio (a random series turns at 2/3 of its points), sample entropy
and COSEn (Lake and Moorman's coefficient of sample entropy for AF in short series), the Poincaré
SD1/SD2, and ectopy indicators (premature beats and the pauses that follow them).
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields

import numpy as np

from ecgedge.beats.qrs import BeatFlag, Beats

# Heart rate: the median of the last RATE_BEATS RR intervals (a monitor's usual 8 to 16 beats;
# the median lets one missed or extra beat through without a jump).
RATE_BEATS = 8
# A beat is premature when its RR interval is below this share of the median RR around it.
PREMATURE_SHARE = 0.8


def heart_rate_bpm(rr_s: np.ndarray, n_last: int = RATE_BEATS) -> float:
    """Heart rate (bpm) from the median of the last ``n_last`` RR intervals (s); NaN without any."""
    rr = np.asarray(rr_s, dtype=np.float64)[-n_last:]
    rr = rr[np.isfinite(rr) & (rr > 0)]
    return 60.0 / float(np.median(rr)) if rr.size else math.nan


def rr_irregularity(rr_s: np.ndarray) -> float:
    """Median absolute successive RR difference over the median RR (dimensionless; about 0.02-0.05 in
    sinus rhythm, above 0.1 in atrial fibrillation); NaN with fewer than 3 RR intervals."""
    rr = np.asarray(rr_s, dtype=np.float64)
    if rr.size < 3:
        return math.nan
    return float(np.median(np.abs(np.diff(rr))) / np.median(rr))


@dataclass(frozen=True)
class RhythmFeatures:
    """Rhythm features of a run of beats (units in the field names; NaN where undefined)."""

    n_beats: float
    hr_bpm: float
    hr_min_bpm: float
    hr_max_bpm: float
    rr_mean_s: float
    rr_sd_s: float
    rr_cv: float
    rr_range_ratio: float
    rmssd_ms: float
    pnn50: float
    pnn20: float
    irregularity: float
    turning_point_ratio: float
    sample_entropy: float
    cosen: float
    sd1_ms: float
    sd2_ms: float
    sd1_sd2: float
    premature_share: float
    pause_max_s: float
    noisy_share: float
    searchback_share: float

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_array(self) -> np.ndarray:
        """The features in :meth:`names` order, float32 (the rhythm model's input)."""
        return np.asarray(astuple(self), dtype=np.float32)

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else round(float(v), 6))
                for k, v in zip(self.names(), astuple(self))}


def sample_entropy(x: np.ndarray, m: int = 2, r: float = 0.2) -> float:
    """Sample entropy (nats) of a series with template length ``m`` and tolerance ``r`` times its
    standard deviation (Richman and Moorman); NaN where no template of length ``m + 1`` matches."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < m + 2:
        return math.nan
    tol = r * float(np.std(x))
    if tol <= 0:
        return math.nan
    # Templates of length m and m + 1 over the same n - m starting points; pairs i < j.
    tm = np.lib.stride_tricks.sliding_window_view(x, m)[: n - m]
    dist_m = np.max(np.abs(tm[:, None, :] - tm[None, :, :]), axis=2)
    dist_next = np.abs(x[m:, None] - x[None, m:])
    upper = np.triu(np.ones((n - m, n - m), bool), 1)
    close = upper & (dist_m <= tol)
    b = int(close.sum())
    a = int((close & (dist_next <= tol)).sum())
    if a == 0 or b == 0:
        return math.nan
    return -math.log(a / b)


def rhythm_features(beats: Beats, *, start: int | None = None, end: int | None = None) -> RhythmFeatures:
    """Rhythm features of the beats between samples ``start`` and ``end`` (default: all).

    A stream passes the beats of its last N seconds; a record passes all of its beats.
    """
    s = beats.samples
    keep = np.ones(s.shape[0], bool)
    if start is not None:
        keep &= s >= start
    if end is not None:
        keep &= s < end
    s, flags = s[keep], beats.flags[keep]
    n = int(s.size)
    rr = np.diff(s) / beats.fs
    nan = math.nan
    if rr.size == 0:
        values = dict.fromkeys(RhythmFeatures.names(), nan)
        values.update(n_beats=float(n), noisy_share=_share(flags, BeatFlag.NOISY),
                      searchback_share=_share(flags, BeatFlag.SEARCHBACK))
        return RhythmFeatures(**values)
    d = np.diff(rr)
    hr = 60.0 / rr
    mean = float(rr.mean())
    sd = float(rr.std()) if rr.size > 1 else nan
    padded = np.concatenate([np.full(4, np.nan), rr, np.full(4, np.nan)])
    local = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, 9), axis=1)  # median of RR i-4 .. i+4
    premature = rr < PREMATURE_SHARE * local
    if d.size:
        sd1 = float(np.std(d) / math.sqrt(2))
        sd2_sq = 2 * sd ** 2 - sd1 ** 2 if rr.size > 1 else nan
        sd2 = math.sqrt(sd2_sq) if sd2_sq > 0 else nan
    else:
        sd1 = sd2 = nan
    tpr = nan
    if rr.size >= 3:
        turns = np.sum((rr[1:-1] - rr[:-2]) * (rr[1:-1] - rr[2:]) > 0)
        tpr = float(turns / (rr.size - 2))
    sampen = sample_entropy(rr) if rr.size >= 8 else nan
    cosen = sampen - math.log(mean) if not math.isnan(sampen) else nan
    return RhythmFeatures(
        n_beats=float(n),
        hr_bpm=heart_rate_bpm(rr, rr.size),
        hr_min_bpm=float(hr.min()),
        hr_max_bpm=float(hr.max()),
        rr_mean_s=mean,
        rr_sd_s=sd,
        rr_cv=sd / mean if rr.size > 1 else nan,
        rr_range_ratio=float(rr.max() / rr.min()),
        rmssd_ms=float(1000 * math.sqrt(np.mean(d ** 2))) if d.size else nan,
        pnn50=float(np.mean(np.abs(d) > 0.050)) if d.size else nan,
        pnn20=float(np.mean(np.abs(d) > 0.020)) if d.size else nan,
        irregularity=rr_irregularity(rr),
        turning_point_ratio=tpr,
        sample_entropy=sampen,
        cosen=cosen,
        sd1_ms=1000 * sd1 if not math.isnan(sd1) else nan,
        sd2_ms=1000 * sd2 if not math.isnan(sd2) else nan,
        sd1_sd2=sd1 / sd2 if not (math.isnan(sd1) or math.isnan(sd2) or sd2 == 0) else nan,
        premature_share=float(premature.mean()),
        pause_max_s=float(rr.max()),
        noisy_share=_share(flags, BeatFlag.NOISY),
        searchback_share=_share(flags, BeatFlag.SEARCHBACK),
    )


def _share(flags: np.ndarray, flag: BeatFlag) -> float:
    return float(np.mean((flags & int(flag)) != 0)) if flags.size else math.nan
