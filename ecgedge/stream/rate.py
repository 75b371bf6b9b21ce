"""A bed's beats, heart rate and rate alarms: the one QRS detector (:mod:`ecgedge.beats`) inside the monitor.

:class:`BedBeats` runs :class:`~ecgedge.beats.StreamingQrsDetector` on the bed's **source-rate signal
(mV, before the model's preprocessing) of one lead**: lead II where the model has it (MLII counts as
II), else the model's first lead. Why that signal and that lead:

- the detector has its own 5-20 Hz band-pass and locates the R peak on the signal it is given, so the
  model's 0.5-40 Hz band-pass and resampling would only add their delay (and move the R peak by
  their group delay); on the source signal beat positions are exact source sample indices, and the
  beats equal ``detect_beats`` on the record (the figures ``ecgedge evaluate beats`` reports);
- one lead, because the detector's cost grows with its leads and the target is at most 20 % of the
  monitor's CPU time per hop (met in a hub with inference, not yet for the monitors alone; measured by
  ``benchmarks/test_beats_stream.py``, figures in ``docs/beats-stream.md``); lead II (MLII) is where the QRS is tallest in most patients and
  the lead the detector was measured on (MIT-BIH MLII: gross Se 99.8 % / +P 99.9 % over 100 + 208).
  A model without lead II takes its first lead.

The detector is fed at every window end (every hop), with the samples since the previous one, so a
hop's beats are those decided from the samples up to its end, whatever the chunking of the input:
``ecgedge stream`` (frames) and a :class:`~ecgedge.stream.hub.StreamHub` fed directly give the same
events. Concealed gaps pass the detector's ``concealed`` mask; a gap that restarts the filters calls
``restart()`` (the thresholds re-learn, the RR history starts over: an RR interval never spans lost
data); a lead-off electrode's samples reach the detector as NaN (held, flagged concealed: no beat is
found in them), non-finite samples likewise.

Every hop emits a :class:`~ecgedge.stream.events.HeartRate`: the heart rate, the median of the last
:data:`~ecgedge.beats.RATE_BEATS` (8) RR intervals, the RR irregularity of the same intervals, and
the beats found since the previous hop.

**Rate alarms** (IEC 60601-2-27's asystole, extreme bradycardia and extreme tachycardia;
:class:`RateAlarmSettings`), each a :class:`~ecgedge.stream.events.RateAlarm` raised once and cleared
with hysteresis, judged at every hop end:

- **asystole**: no beat for ``asystole_s`` (4 s) of *decided* signal, i.e. up to the hop end less the
  detector's decision delay (:attr:`~ecgedge.beats.StreamingQrsDetector.decision_delay_s`, about
  0.2 s): a pause shorter than ``asystole_s`` never raises it, however the hop falls. Raised at the
  first hop end at least ``asystole_s`` + the decision delay after the last beat: **delay from the
  last beat at most ``asystole_s`` + decision delay + ``hop_s``** (4 + 0.2 + 1 = 5.2 s by default,
  within the 6 s the issue asks; ``since_beat_s`` in the event is the delay itself). Cleared when
  :data:`CLEAR_BEATS` (2) beats have come since it was raised and the last pause is shorter than
  ``asystole_s``. Judged from the start of the stream (or of the signal after a gap), never across
  lost samples;
- **extreme bradycardia / tachycardia**: the heart rate (from at least ``min_rr`` RR intervals) below
  ``brady_bpm`` (40) / above ``tachy_bpm`` (140); cleared once it is ``hysteresis_bpm`` (5) back
  inside (45 / 135 bpm). The median of 8 RR intervals turns when 5 of them have the new rate:
  **delay after a sudden change 5 to 6 RR intervals + 0.2 s + ``hop_s``** (6 when the change falls
  mid-interval; measured on MIT-BIH 100 time-compressed to about 160 bpm: 2.4-3.1 s, stretched to
  about 35 bpm: 9.0-10.1 s). Not judged while asystole is raised (the rate
  is that of the beats before it).

Each has a **technical** variant, raised instead when its condition holds but the signal is too poor
to decide (the monitor's own checks, reused): the ``ecg_signal_inoperable`` alert raised, the QRS
lead off, a calibration pulse or ADC saturation flagged, or the QRS lead's last ``asystole_s`` of
samples non-finite, saturated or of implausible amplitude (:func:`ecgedge.data.quality.signal_problems`;
a *flat* lead is no technical problem here: a flat line with its electrodes on is what asystole
looks like), and for the rate alarms also half or more of the beats behind the rate flagged noisy or
concealed. A technical alarm whose signal recovers while the condition still holds is cleared and
raised as the physiological one; a physiological one stays raised if the signal degrades.

Below the detector's 100-Hz floor (:data:`~ecgedge.beats.qrs.MIN_FS_HZ`) no beat is detected: every
hop's heart rate is None and no rate alarm is judged.

numpy + scipy (the detector); never torch.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from ecgedge.beats import RATE_BEATS, BeatFlag, StreamingQrsDetector
from ecgedge.beats.qrs import MIN_FS_HZ
from ecgedge.data.leads import lead_indices
from ecgedge.data.quality import FLAT_STD_MV, signal_problems
from ecgedge.errors import ConfigError, MissingLeads
from ecgedge.stream.events import AlertState, HeartRate, RateAlarm, RateAlarmKind
from ecgedge.stream.ring import Ring

# IEC 60601-2-27's usual defaults: asystole after 4 s without a beat, extreme bradycardia below
# 40 bpm, extreme tachycardia above 140 bpm (adult monitors default to 40 / 140 or nearby).
ASYSTOLE_S = 4.0
BRADY_BPM = 40.0
TACHY_BPM = 140.0
# A rate alarm clears 5 bpm inside its limit: a rate that hovers at the limit raises it once.
RATE_HYSTERESIS_BPM = 5.0
# Beats that must follow an asystole before it clears: one beat can be an escape beat or an artefact.
CLEAR_BEATS = 2
# RR intervals a rate alarm needs (half of the 8 the heart rate uses): one or two RR intervals after
# the start or a gap are too few to call a rate extreme.
MIN_RR = RATE_BEATS // 2
# Beats flagged noisy or concealed, as a share of those behind the rate, from which a rate alarm is technical.
POOR_BEAT_SHARE = 0.5
# A beat's QRS amplitude: peak-to-peak within +-60 ms of its R peak (a QRS lasts 80-120 ms).
QRS_HALF_S = 0.06
# A pause is "active" (the detector missed beats, or artefact: a technical asystole) when at least
# ACTIVITY_BLOCKS of its 200-ms blocks reach half the last beats' QRS amplitude. A flat line, low
# noise or P waves without QRS (ventricular standstill: a few tenths of a QRS) stay quiet. One block
# is enough: a QRS-sized deflection the detector did not take as a beat puts its judgement in doubt
# (MIT-BIH 208 at 1384 s: MLII drops to 0.1 mV for 4 s, but one PVC still shows; the beats are in V1).
# DEFAULT_QRS_MV stands in before any beat. The pause is looked at from T_WAVE_END_S after the last
# beat on: its T wave (up to ~0.4 s after the R peak) is no activity.
T_WAVE_END_S = 0.45
ACTIVITY_BLOCK_S = 0.2
ACTIVITY_SHARE = 0.5
ACTIVITY_BLOCKS = 1
DEFAULT_QRS_MV = 1.0


@dataclass(frozen=True)
class RateAlarmSettings:
    """The rate alarms' limits (module docstring: their delays).

    Args:
        asystole_s: seconds without a beat that raise ``asystole`` (default 4; 0: never).
        brady_bpm: heart rate (bpm) below which ``extreme_bradycardia`` is raised (default 40; 0: never).
        tachy_bpm: heart rate (bpm) above which ``extreme_tachycardia`` is raised (default 140; 0: never).
        hysteresis_bpm: how far (bpm) back inside its limit the rate must come to clear a rate alarm (default 5).
        min_rr: RR intervals a rate alarm needs (default :data:`MIN_RR`, 4; at most ``RATE_BEATS``).
    """

    asystole_s: float = ASYSTOLE_S
    brady_bpm: float = BRADY_BPM
    tachy_bpm: float = TACHY_BPM
    hysteresis_bpm: float = RATE_HYSTERESIS_BPM
    min_rr: int = MIN_RR

    def __post_init__(self):
        for name in ("asystole_s", "brady_bpm", "tachy_bpm", "hysteresis_bpm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"rate alarm setting {name} must be >= 0, got {value}")
        if self.tachy_bpm and self.brady_bpm and self.tachy_bpm - self.hysteresis_bpm <= self.brady_bpm + self.hysteresis_bpm:
            raise ConfigError(f"extreme tachycardia above {self.tachy_bpm:g} bpm and bradycardia below {self.brady_bpm:g} bpm "
                              f"leave no normal rate between their {self.hysteresis_bpm:g}-bpm hysteresis bands")
        if not 1 <= self.min_rr <= RATE_BEATS:
            raise ConfigError(f"min_rr must be 1 to {RATE_BEATS} RR intervals, got {self.min_rr}")


def qrs_lead(model_leads: Sequence[str]) -> int:
    """Row (among the model's leads) the detector runs on: lead II (MLII counts), else the first."""
    try:
        return lead_indices(list(model_leads), ["II"])[0]
    except MissingLeads:
        return 0


class BedBeats:
    """One bed's QRS detector, RR history and rate alarms (module docstring).

    Args:
        stream_id: the bed's name in its events.
        fs_in: the source's sampling rate, Hz.
        lead_names: the model's leads (the rows the monitor keeps); the detector runs on :func:`qrs_lead`'s.
        settings: the rate alarms' limits.
    """

    def __init__(self, stream_id: Hashable, fs_in: float, lead_names: Sequence[str], settings: RateAlarmSettings = RateAlarmSettings()):
        self.stream_id = stream_id
        self.fs = float(fs_in)
        self.lead = qrs_lead(lead_names)
        self.lead_name = str(lead_names[self.lead])
        self.settings = settings
        self.detector: StreamingQrsDetector | None = None
        self.delay = 0  # the detector's decision delay, source samples
        self.shift = 0  # stream sample index minus detector sample index (segments, gaps)
        self.fed = 0  # stream index up to which the detector has been fed
        self.judged_from = 0  # stream index from which a pause counts (start of the signal since a gap)
        # The QRS lead's last samples (mV, NaN where unknown): the pause's activity and the signal checks.
        self._recent = Ring(1, max(1, int(math.ceil((max(settings.asystole_s, ASYSTOLE_S) + 4.0) * self.fs))))
        # (stream sample, flags, QRS amplitude in mV) of the last beats.
        self._beats: deque[tuple[int, int, float]] = deque(maxlen=RATE_BEATS + 1)
        self._new: list[tuple[int, int]] = []  # beats since the last hop
        self._rate: tuple[float, float, int] | None = None  # (heart rate, irregularity, RR intervals) of the beats in _beats
        self.raised: dict[RateAlarmKind, RateAlarm] = {}  # alarms raised now
        self._beats_since: dict[RateAlarmKind, int] = {}  # beats found since each alarm was raised
        self._reference = False  # judged from reference beats (``reference``), not from a detector

    @classmethod
    def reference(cls, stream_id: Hashable, fs: float, settings: RateAlarmSettings = RateAlarmSettings()) -> "BedBeats":
        """Heart rate and rate alarms from reference beats (``add`` them, then ``hop``): the same rules,
        no detector, no decision delay, no signal; how ``ecgedge evaluate stream`` computes the reference."""
        bed = cls(stream_id, fs, ["II"], settings)
        bed._reference = True
        return bed

    def carry_alarms(self, old: "BedBeats") -> None:
        """Take over the raised alarms of the bed's previous monitor (a format change starts a new one):
        they stay raised until this one clears them."""
        self.raised, self._beats_since = dict(old.raised), dict(old._beats_since)

    @property
    def active(self) -> bool:
        """Whether beats are detected at all (the source rate is at least the detector's floor)."""
        return self.fs >= MIN_FS_HZ

    def start(self, first_sample: int, after_gap: bool) -> None:
        """A segment of contiguous samples starts at ``first_sample``: after a gap the detector restarts
        (thresholds re-learned, filter states kept), else (a new stream, a device restart) a new one."""
        if not self.active:
            return
        if after_gap and self.detector is not None:
            self.detector.restart()
        else:
            self.detector = StreamingQrsDetector(self.fs, 1)
            self.delay = int(math.ceil(self.detector.decision_delay_s * self.fs))
        self.shift = first_sample - self.detector.n
        self.fed = self.judged_from = first_sample
        self._recent = Ring(1, self._recent.capacity)
        self._beats.clear()  # an RR interval never spans lost samples
        self._rate = None

    def feed(self, lead_mv: np.ndarray, concealed: np.ndarray | None) -> None:
        """The QRS lead's next samples (mV, NaN where unknown) from ``self.fed`` on; ``concealed`` per sample."""
        if self.detector is None or not lead_mv.shape[-1]:
            return
        self._took(lead_mv, self.detector.push(lead_mv, concealed))

    @staticmethod
    def feed_many(beds: "Sequence[BedBeats]", chunks: Sequence[np.ndarray], concealed: Sequence[np.ndarray | None]) -> None:
        """``[b.feed(x, c) for b, x, c in zip(beds, chunks, concealed)]`` with the detectors' band-pass as the
        rows of one array (:meth:`StreamingQrsDetector.push_many`): the same beats, bit for bit."""
        todo = [i for i, (b, x) in enumerate(zip(beds, chunks)) if b.detector is not None and x.shape[-1]]
        found = StreamingQrsDetector.push_many([beds[i].detector for i in todo], [chunks[i] for i in todo],  # type: ignore[misc]
                                               [concealed[i] for i in todo])
        for i, f in zip(todo, found):
            beds[i]._took(chunks[i], f)

    def _took(self, lead_mv: np.ndarray, found) -> None:
        self._recent.write(lead_mv[None, :])
        self.fed += lead_mv.shape[-1]
        if len(found):
            self.add(found.samples + self.shift, found.flags)

    def add(self, samples: np.ndarray, flags: np.ndarray) -> None:
        """Beats found (stream sample indices, :class:`BeatFlag` bits)."""
        for s, f in zip(np.asarray(samples).tolist(), np.asarray(flags).tolist()):
            self._beats.append((s, f, self._amplitude(s)))
            self._new.append((s, f))
            for kind in self._beats_since:
                self._beats_since[kind] += 1

    def _amplitude(self, sample: int) -> float:
        """Peak-to-peak (mV) of the QRS lead within +-QRS_HALF_S of a beat; NaN where not at hand."""
        x = self._span(sample - round(QRS_HALF_S * self.fs), sample + round(QRS_HALF_S * self.fs) + 1)
        if not x.size:
            return math.nan
        hi, lo = float(x.max()), float(x.min())  # both finite exactly when every sample is (NaN propagates)
        return hi - lo if math.isfinite(hi) and math.isfinite(lo) else math.nan

    def _span(self, start: int, end: int) -> np.ndarray:
        """The QRS lead's samples ``[start, end)`` (stream indices), clipped to those still kept."""
        total, first = self._recent.total, self.fed - self._recent.total  # ring index 0 is stream sample ``first``
        a, b = max(start - first, total - self._recent.capacity, 0), min(end - first, total)
        return self._recent.last(b - a, b)[0] if b > a else np.zeros(0)

    def rr_s(self) -> np.ndarray:
        """The last RR intervals (s), at most ``RATE_BEATS``."""
        s = np.array([b[0] for b in self._beats], dtype=np.float64)
        return np.diff(s) / self.fs

    def hop(self, t_s: float, end: int, signal_problem=None) -> list[HeartRate | RateAlarm]:
        """The hop ending at stream sample ``end`` (all fed): its :class:`HeartRate` and the rate alarms it
        raises or clears. ``signal_problem(seconds) -> str``: the monitor's reason (lead-off, device
        flags, the inoperable alert) why its last ``seconds`` are too poor to decide (``""``: none);
        asked only where an alarm condition holds."""
        if self._new or self._rate is None:  # the rate changes with the beats only
            self._rate = _rate_of([b[0] for b in self._beats], self.fs)
        hr, irr, n_rr = self._rate
        new, self._new = self._new, []
        out: list[HeartRate | RateAlarm] = [HeartRate(self.stream_id, t_s, end, None if math.isnan(hr) else hr, n_rr,
                                                      None if math.isnan(irr) else irr,
                                                      tuple(s for s, _ in new), tuple(f for _, f in new))]
        if self.detector is None and not self._reference:
            return out
        st = self.settings
        last = self._beats[-1][0] if self._beats else None
        since = last if last is not None else self.judged_from
        decided = end - self.delay
        pause_s, since_s = (decided - since) / self.fs, (end - since) / self.fs
        hr_or_none = None if math.isnan(hr) else hr
        A = RateAlarmKind
        if st.asystole_s and (A.asystole in self.raised or pause_s >= st.asystole_s):
            holds = pause_s >= st.asystole_s
            clears = not holds and self._beats_since.get(A.asystole, 0) >= CLEAR_BEATS

            def asystole_problem() -> str:
                return self._signal_problem(st.asystole_s, signal_problem) or self._pause_activity(since, decided)

            out += self._update(A.asystole, holds, clears, t_s, end, hr_or_none, last, since_s, asystole_problem)
        if A.asystole in self.raised:
            return out  # the rate is that of the beats before the pause
        if n_rr >= st.min_rr:  # extreme bradycardia and tachycardia: from enough RR intervals only

            def rate_problem() -> str:
                return self._signal_problem(st.asystole_s or ASYSTOLE_S, signal_problem) or self._poor_beats()

            for kind, holds, back in ((A.bradycardia, bool(st.brady_bpm) and hr < st.brady_bpm, hr >= st.brady_bpm + st.hysteresis_bpm),
                                      (A.tachycardia, bool(st.tachy_bpm) and hr > st.tachy_bpm, hr <= st.tachy_bpm - st.hysteresis_bpm)):
                if kind in self.raised or holds:
                    out += self._update(kind, holds, back, t_s, end, hr, last, None, rate_problem)
        return out

    def _signal_problem(self, seconds: float, external) -> str:
        """Why the QRS lead's last ``seconds`` are too poor to decide: the monitor's reason, else its
        samples' (non-finite, saturated, implausible; not flat)."""
        if self._reference:
            return ""
        why = external(seconds) if external is not None else ""
        return why or flat_or_fine(self._span(self.fed - round(seconds * self.fs), self.fed), self.fs, self.lead_name)

    def _pause_activity(self, since: int, decided: int) -> str:
        """Why a pause is no asystole the detector can vouch for: QRS-sized deflections in it (blocks of
        :data:`ACTIVITY_BLOCK_S` whose peak-to-peak reaches :data:`ACTIVITY_SHARE` of the last beats'
        QRS) in at least :data:`ACTIVITY_BLOCKS` blocks: beats it missed, or artefact. ``""``: a quiet pause."""
        if self._reference:
            return ""
        amps = [a for _, _, a in list(self._beats)[-3:] if math.isfinite(a)]
        qrs_mv = _median(amps) if amps else DEFAULT_QRS_MV
        x = self._span(since + round(T_WAVE_END_S * self.fs), decided)
        block = max(1, round(ACTIVITY_BLOCK_S * self.fs))
        n = x.size // block
        if n == 0:
            return ""
        blocks = x[:n * block].reshape(n, block)
        active = int(np.count_nonzero(np.ptp(blocks, axis=1) >= ACTIVITY_SHARE * qrs_mv))
        if active >= ACTIVITY_BLOCKS:
            return f"QRS-sized activity in the pause ({active} of {n} {ACTIVITY_BLOCK_S * 1000:.0f}-ms blocks) but no beat detected"
        return ""

    def _poor_beats(self) -> str:
        flags = np.array([f for _, f, _ in self._beats], dtype=np.int64)
        poor = (flags & int(BeatFlag.NOISY | BeatFlag.CONCEALED)) != 0
        if poor.size and poor.mean() >= POOR_BEAT_SHARE:
            return f"{int(poor.sum())} of the last {poor.size} beats noisy or concealed"
        return ""

    def _update(self, kind: RateAlarmKind, holds: bool, clears: bool, t_s: float, end: int, hr: float | None,
                last: int | None, since_s: float | None, problem) -> list[RateAlarm]:
        """Raise, clear or upgrade one alarm. ``holds``: its condition holds now; ``clears``: the
        hysteresis lets it clear; ``problem() -> str``: why the signal is too poor to decide."""
        now = self.raised.get(kind)
        if now is not None and not now.technical and not clears:
            return []  # a physiological alarm stays until it clears
        out: list[RateAlarm] = []
        if holds:
            why = problem()
            technical = bool(why)
            if now is not None and now.technical == technical:
                return []
            if now is not None:  # a technical alarm whose signal recovered: the physiological one replaces it
                out.append(self._clear(kind, t_s, end, hr, last, since_s))
            alarm = RateAlarm(self.stream_id, t_s, end, kind, AlertState.raised, technical, hr, last, since_s, why)
            self.raised[kind] = alarm
            self._beats_since[kind] = 0
            return out + [alarm]
        if now is not None and (clears or now.technical):
            out.append(self._clear(kind, t_s, end, hr, last, since_s))
        return out

    def _clear(self, kind: RateAlarmKind, t_s: float, end: int, hr: float | None, last: int | None,
               since_s: float | None) -> RateAlarm:
        was = self.raised.pop(kind)
        self._beats_since.pop(kind, None)
        return RateAlarm(self.stream_id, t_s, end, kind, AlertState.cleared, was.technical, hr, last, since_s)


def _median(values: list[float]) -> float:
    """``numpy.median`` of a short list of floats (the mean of the middle two for an even count), bit
    for bit, without numpy's overhead (the heart rate takes three medians of at most 8 values per hop)."""
    v = sorted(values)
    h = len(v) // 2
    return v[h] if len(v) % 2 else (v[h - 1] + v[h]) / 2.0


def _rate_of(samples: list[int], fs: float) -> tuple[float, float, int]:
    """(:func:`~ecgedge.beats.heart_rate_bpm`, :func:`~ecgedge.beats.rr_irregularity`, RR intervals) of beats at
    ``samples`` (at most ``RATE_BEATS + 1``), bit for bit, in plain Python: a few values, where numpy's
    per-call overhead would be most of the monitor's rate cost."""
    rr = [(b - a) / fs for a, b in zip(samples, samples[1:])]
    last = [r for r in rr[-RATE_BEATS:] if math.isfinite(r) and r > 0]
    hr = 60.0 / _median(last) if last else math.nan
    irr = _median([abs(b - a) for a, b in zip(rr, rr[1:])]) / _median(rr) if len(rr) >= 3 else math.nan
    return hr, irr, len(rr)


def flat_or_fine(lead_mv: np.ndarray, fs: float, name: str) -> str:
    """Why one lead's samples (mV) are too poor for a rate alarm: :func:`signal_problems` of it, except
    that a flat lead is fine (asystole with the electrodes on is a flat line); ``""`` when fine."""
    x = np.asarray(lead_mv, dtype=np.float64)[None, :]
    if not x.size:
        return ""
    finite = np.isfinite(x)
    if not finite.all():  # signal_problems would count the samples from the span's start: say the span
        return f"NaN in lead {name}: {int((~finite).sum())} of its last {x.shape[1]} samples ({x.shape[1] / fs:.1f} s)"
    if float(x.std()) < FLAT_STD_MV:
        return ""
    return "; ".join(signal_problems(x, fs, [name]))
