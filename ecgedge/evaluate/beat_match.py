"""Matching detections to reference beats and the per-record figures, as ANSI/AAMI EC57 does
(the part of ``ecgedge evaluate beats`` that any caller scoring beats uses: the stream's heart-rate
scoring, tests, a user's own detections).

**Matching** (:func:`match_beats`) is bxb's, the reference implementation EC57 cites (WFDB's
``bxb.c``, revision of 24 November 2002), ported: walking both sequences in time order, a
detection and a reference beat are paired when they lie within the match window of each other
(``|t - T| <= window``, inclusive as in bxb and in CPSC-2019's scoring script) and neither has a
better partner next in line; every beat and detection is used at most once. A reference beat left
unpaired is a miss (FN), a detection left unpaired a false detection (FP). The pairs are found over
the whole record and only then counted, so a pair that straddles the edge of the scored span
counts by its reference beat: TP when the reference beat is scored, nothing otherwise (bxb's rule
at the start of its test period). ``wfdb.processing.compare_annotations`` is not used: its
window is exclusive (``< window``), it has no scored span, and its +P divides by every detection.

**Match window.** 150 ms (EC57, bxb's default) for WFDB records; 75 ms for the CPSC-2019 layout,
the challenge's own tolerance. ``window_ms`` overrides both.

**Scored span** (:func:`scored_span`). EC57 (bxb) starts the comparison 5 minutes into a record:
the first 5 minutes are the algorithm's learning period. bxb scores to the end of the record (its
test period ends with the record; no end margin), and so does this for records of 10 minutes or
more. A record shorter than 10 minutes cannot spare 5 of them; for those (CPSC-2019's 10-s records
among them) the first and last 0.5 s are not scored, which is what CPSC-2019's ``score_2019.py``
does (reference R peaks in [0.5 s, 9.5 s], detections counted in the same span). ``learning_s``
and ``end_s`` override both rules. Reference ventricular flutter/fibrillation episodes (``[`` to
``]``) are not scored either (bxb skips them). Shutdown (``~`` with subtype bits 4 and 5 set) is
not treated specially.

**Figures.** Per record: TP, FN, FP, Se = TP/(TP+FN), +P = TP/(TP+FP), F1 = 2TP/(2TP+FN+FP), and
the mean and 95th percentile of |detection - reference| over the pairs, in ms. Gross: the
counts summed over records (and the timing errors pooled); average: the mean of the per-record
figures (EC57 reports both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ecgedge.errors import BadRecord

EC57_WINDOW_MS = 150.0       # bxb's default match window
CPSC2019_WINDOW_MS = 75.0    # the challenge's tolerance (score_2019.py: THR = 0.075 s)
EC57_LEARNING_S = 300.0      # bxb -f default: the first 5 minutes are the learning period
SHORT_RECORD_S = 600.0       # below this, 5 minutes of learning would leave too little to score
SHORT_EDGE_S = 0.5           # CPSC-2019: R peaks scored in [0.5 s, 9.5 s] of its 10-s records
FLAG_NAMES = {1: "noise", 2: "concealed_gap", 4: "search_back"}   # ecgedge.beats.Beats.flags bits


def window_samples(window_ms: float, fs: float) -> int:
    """The match window in whole samples: the largest ``|t - T|`` that matches (75 ms at 500 Hz: 37)."""
    return int(math.floor(window_ms / 1000.0 * fs + 1e-9))


def match_beats(reference: np.ndarray, detections: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair detections with reference beats as bxb does (module doc): indices into each, pair by pair.

    Args:
        reference, detections: sample indices, each sorted ascending.
        window: the match window in samples (inclusive: ``|t - T| <= window`` can match).

    Returns:
        ``(ref_index, det_index)``, int64 arrays of equal length, increasing.
    """
    ref = [int(x) for x in np.asarray(reference)]
    det = [int(x) for x in np.asarray(detections)]
    n, m = len(ref), len(det)
    end = 1 << 62   # bxb's huge_time: past the last annotation of either file
    pr: list[int] = []
    pd: list[int] = []
    i = j = 0
    while i < n or j < m:
        T = ref[i] if i < n else end
        Tn = ref[i + 1] if i + 1 < n else end
        t = det[j] if j < m else end
        tn = det[j + 1] if j + 1 < m else end
        if t < T:
            # bxb case 1: pair t with T unless the next detection is the better partner of T
            if T - t <= window and (T - t < abs(T - tn) or abs(Tn - tn) < abs(T - tn)):
                pr.append(i)
                pd.append(j)
                i += 1
            j += 1   # paired, or (case 2) a false detection
        else:
            # bxb case 3: pair T with t unless the next reference beat is the better partner of t
            if t - T <= window and (t - T < abs(t - Tn) or abs(tn - Tn) < abs(t - Tn)):
                pr.append(i)
                pd.append(j)
                j += 1
            i += 1   # paired, or (case 4) a missed beat
    return np.array(pr, dtype=np.int64), np.array(pd, dtype=np.int64)


def scored_span(n_samples: int, fs: float, *, learning_s: float | None = None, end_s: float | None = None) -> tuple[int, int]:
    """The samples ``[start, stop)`` whose beats are scored (module doc: EC57's 5-minute learning period
    for records of 10 minutes or more, 0.5 s at each end of shorter ones; ``learning_s``/``end_s``
    in seconds override the start and the end margin).

    Raises:
        BadRecord: nothing is left to score (the record is shorter than the two margins).
    """
    long = n_samples / fs >= SHORT_RECORD_S
    first = learning_s if learning_s is not None else (EC57_LEARNING_S if long else SHORT_EDGE_S)
    last = end_s if end_s is not None else (0.0 if long else SHORT_EDGE_S)
    start, stop = int(round(first * fs)), n_samples - int(round(last * fs))
    if stop <= start:
        raise BadRecord("", f"{n_samples / fs:g} s long: nothing left to score after {first:g} s of learning period "
                            f"and {last:g} s at the end (set --learning-s / --end-s)")
    return start, stop


@dataclass(frozen=True)
class BeatScore:
    """One record's detections against its reference beats (module doc for the conventions).

    ``span``: the scored samples ``[start, stop)``, ``unscored``: spans inside it left out; ``errors_ms``: detection minus reference time of
    each scored pair, ms; ``misses`` / ``false_detections``: sample indices of the FN reference beats
    and FP detections; ``reference`` / ``detections``: every reference beat and detection of the record.
    """

    record: str
    fs_hz: float
    window_ms: float
    span: tuple[int, int]
    tp: int
    fn: int
    fp: int
    errors_ms: np.ndarray
    misses: np.ndarray
    false_detections: np.ndarray
    reference: np.ndarray
    detections: np.ndarray
    flags: dict = field(default_factory=dict)
    unscored: tuple[tuple[int, int], ...] = ()

    @property
    def se(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def ppv(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fn + self.fp)

    @property
    def mean_abs_error_ms(self) -> float:
        return float(np.abs(self.errors_ms).mean()) if len(self.errors_ms) else float("nan")

    @property
    def p95_abs_error_ms(self) -> float:
        return float(np.percentile(np.abs(self.errors_ms), 95)) if len(self.errors_ms) else float("nan")

    def to_json(self) -> dict:
        return {"record": self.record, "fs_hz": self.fs_hz, "window_ms": self.window_ms,
                "scored_from_s": round(self.span[0] / self.fs_hz, 3), "scored_to_s": round(self.span[1] / self.fs_hz, 3),
                "reference_beats": self.tp + self.fn, "detections": self.tp + self.fp,
                "tp": self.tp, "fn": self.fn, "fp": self.fp,
                "se": _round(self.se), "ppv": _round(self.ppv), "f1": _round(self.f1),
                "mean_abs_error_ms": _round(self.mean_abs_error_ms, 2), "p95_abs_error_ms": _round(self.p95_abs_error_ms, 2),
                "misses": self.misses.tolist(), "false_detections": self.false_detections.tolist(),
                **({"flags": self.flags} if self.flags else {})}


def score_beats(reference: np.ndarray, detections: np.ndarray, fs: float, *, window_ms: float = EC57_WINDOW_MS,
                span: tuple[int, int] | None = None, unscored: Sequence[tuple[int, int]] = (), record: str = "",
                flags: np.ndarray | None = None) -> BeatScore:
    """Score ``detections`` against ``reference`` (both sample indices at ``fs`` Hz; sorted here).

    Args:
        window_ms: match window, ms (150: EC57; 75: CPSC-2019).
        span: scored samples ``[start, stop)`` (None: every sample).
        unscored: ``(start, end)`` sample spans where nothing is scored (reference VF).
        flags: per-detection bit masks (``ecgedge.beats.Beats.flags``): counted among all scored
            detections and among the false ones.
    """
    ref = np.sort(np.asarray(reference, dtype=np.int64))
    order = np.argsort(np.asarray(detections, dtype=np.int64), kind="stable")
    det = np.asarray(detections, dtype=np.int64)[order]
    w = window_samples(window_ms, fs)
    ri, di = match_beats(ref, det, w)

    def scored(x: np.ndarray) -> np.ndarray:
        ok = np.ones(len(x), dtype=bool) if span is None else (x >= span[0]) & (x < span[1])
        for a, b in unscored:
            ok &= ~((x >= a) & (x <= b))
        return ok

    ref_in, det_in = scored(ref), scored(det)
    ref_paired = np.zeros(len(ref), dtype=bool)
    ref_paired[ri] = True
    det_paired = np.zeros(len(det), dtype=bool)
    det_paired[di] = True
    counted = ref_in[ri]
    errors = (det[di[counted]] - ref[ri[counted]]) * 1000.0 / fs
    fp_mask = det_in & ~det_paired
    flag_counts: dict = {}
    if flags is not None and len(flags) == len(det):
        f = np.asarray(flags)[order].astype(np.int64)
        for bit, name in FLAG_NAMES.items():
            flag_counts[name] = {"detections": int(((f & bit) > 0)[det_in].sum()), "false": int(((f & bit) > 0)[fp_mask].sum())}
    return BeatScore(record, float(fs), float(window_ms), span or (0, int(max(ref.max(initial=0), det.max(initial=0)) + 1)),
                     tp=int(counted.sum()), fn=int((ref_in & ~ref_paired).sum()), fp=int(fp_mask.sum()),
                     errors_ms=errors, misses=ref[ref_in & ~ref_paired], false_detections=det[fp_mask],
                     reference=ref, detections=det, flags=flag_counts, unscored=tuple(unscored))


def summarise(scores: Sequence[BeatScore]) -> dict:
    """``gross`` (counts summed over records, timing errors pooled) and ``average`` (mean of the
    per-record Se, +P, F1 and timing figures, over the records where each is defined)."""
    tp, fn, fp = (sum(getattr(s, k) for s in scores) for k in ("tp", "fn", "fp"))
    errors = np.abs(np.concatenate([s.errors_ms for s in scores])) if scores else np.zeros(0)
    gross = {"records": len(scores), "reference_beats": tp + fn, "detections": tp + fp, "tp": tp, "fn": fn, "fp": fp,
             "se": _round(_ratio(tp, tp + fn)), "ppv": _round(_ratio(tp, tp + fp)), "f1": _round(_ratio(2 * tp, 2 * tp + fn + fp)),
             "mean_abs_error_ms": _round(float(errors.mean()) if len(errors) else float("nan"), 2),
             "p95_abs_error_ms": _round(float(np.percentile(errors, 95)) if len(errors) else float("nan"), 2)}

    def mean(values) -> float | None:
        v = [x for x in values if not math.isnan(x)]
        return _round(float(np.mean(v))) if v else None

    average = {"records": len(scores), "se": mean(s.se for s in scores), "ppv": mean(s.ppv for s in scores),
               "f1": mean(s.f1 for s in scores), "mean_abs_error_ms": mean(s.mean_abs_error_ms for s in scores),
               "p95_abs_error_ms": mean(s.p95_abs_error_ms for s in scores)}
    return {"gross": gross, "average": average}


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), digits)
