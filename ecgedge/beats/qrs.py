"""One QRS detector for training, ``evaluate``, the stream and the device: causal, chunk-invariant.

Based on **Pan and Tompkins (1985)**, because its every stage is a few arithmetic operations per
sample with a fixed, known delay (so it runs causally in a stream, fits a microcontroller beside
the model, and ports to C line for line), and because its decision logic (two adaptive
thresholds, a refractory period, search-back and T-wave discrimination) is what makes the simple
energy signal robust; a wavelet detector would cost a filter bank per lead for no decisive gain on
the records we measured. The stages, for a signal in mV at ``fs`` Hz (any rate from 100 Hz up):

1. **Band-pass** 5-20 Hz (Butterworth, second order, second-order sections, per lead): keeps
   the QRS's energy, removes baseline wander, most of the P and T waves and mains hum. The state
   starts at the steady state of the first sample (no start-up transient).
2. **Slope energy**: the central difference ``(y[n] - y[n-2]) * fs / 2`` (mV/s), squared, summed
   over the leads in use (the multi-lead mode: every lead adds its slope energy).
3. **Moving-window integration** over ``integration_s`` (120 ms): one hump per QRS complex.
4. **Candidates**: samples of the integrated signal that are the largest within
   ``±candidate_s`` (80 ms; ties go to the earliest). Deciding one needs ``candidate_s`` of
   look-ahead, which is the detector's fixed decision delay beyond the filters'.
5. **Decision** (per candidate, in time order): a candidate above ``THR1 = NPK + 0.25 (SPK - NPK)``
   and at least ``refractory_s`` (200 ms) after the last beat is a beat, unless it comes within
   ``twave_s`` (360 ms) of the last beat with less than half that beat's maximal slope (a T wave);
   ``SPK`` is the lower quartile of the last 8 beats' peak heights (Pan and Tompkins' running mean
   lets a run of large ectopic beats lift the threshold above the normal beats between them) and
   ``NPK`` a running mean (weight 1/8) of the other candidates' heights. No candidate below the
   height of a 0.1 mV QRS (``min_qrs_mv``) is a beat, so a quiet flat line stays beat-free.
   Thresholds are learned on the first ``learning_s`` (2 s) of signal, and re-learned after a
   concealed gap restarts the detector's clock.
6. **Search-back**: once ``searchback_rr`` (1.66) times the mean of the last 8 RR intervals
   passes with no beat, the largest candidate above ``THR1 / 2`` (and outside the refractory and
   T-wave zones) since the last beat is taken as a beat (flag ``SEARCHBACK``). A deadline that
   passes with nothing to take lowers the beat-peak level, so a lasting fall in amplitude is
   followed within about two RR intervals.
7. **R-peak location**: in the input signal (mV, no filter delay), within ``±locate_s`` (60 ms)
   of the QRS's steepest slope (corrected for the band-pass's group delay), on the lead with the
   most slope energy there: the largest deviation above the window's median, or below it where the
   complex is mainly negative (QS complexes, many PVCs: the negative deviation is above
   ``negative_ratio``, 1.6, times the positive one). Positions are input sample indices.

Every stage is causal and keeps its state between pushes (filters carry ``zi``; buffers keep
the look-back the later stages need), so the beats do not depend on how the signal is cut into
chunks: a record pushed whole and the same record pushed in 40-ms frames give identical beats
(``tests/test_beats.py`` proves it). A beat is reported about ``candidate_s + integration_s / 2``
plus the filters' delay (about 0.2 s) after its R peak; a search-back beat once the search-back
deadline passes.

Each beat carries flags (:class:`BeatFlag`): ``NOISY`` when the noise-peak level is above
``noise_ratio`` (0.35) of the beat-peak level or the beat's window saturates, ``CONCEALED`` when
a sample within the beat's QRS window was concealed (interpolated over a lost frame) by the caller,
``SEARCHBACK`` for beats found by search-back.

The same algorithm, stage for stage, is ``firmware_bridge/src/ecgb_qrs.c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from ecgedge.beats.beat_types import MIN_FS_HZ, BeatFlag, Beats, QrsConfig  # noqa: F401 (the detector's face)
from ecgedge.beats.stages import band_pass, energy_floor, group_delay_samples, lower_quartile, running_max  # noqa: F401
from ecgedge.errors import ShapeMismatch


@dataclass
class _Candidate:
    n: int  # sample index of the integrated signal's peak
    height: float  # integrated slope energy there
    slope: float  # largest slope energy in the integration window before it


@dataclass
class _State:
    spk0: float = 0.0  # the beat-peak level learned at the start
    spk: float = 0.0  # the beat-peak level now: the lower quartile of ``peaks``, or ``spk0`` without any (set with them)
    peaks: list[float] = field(default_factory=list)  # integrated heights of the last beats
    npk: float = 0.0
    last_beat: int = -1  # candidate index (integrated-signal time) of the last beat
    anchor: int = -1  # the last search-back deadline that passed empty (or -1)
    slopes: list[float] = field(default_factory=list)  # maximal slope energy of the last beats
    rr: list[int] = field(default_factory=list)  # last RR intervals, samples
    pending: list[_Candidate] = field(default_factory=list)  # candidates since the last beat
    learned: bool = False
    clock0: int = 0  # first sample of the current learning period


class StreamingQrsDetector:
    """Pan-Tompkins-style QRS detection, chunk by chunk (see the module docstring).

    ``push(chunk)`` takes (leads, n) samples in mV at ``fs`` Hz (or a 1-D single lead) and returns
    the :class:`Beats` decided by then; ``finish()`` decides the last samples at the end of a
    record. ``leads`` picks the rows to use (default: all, the multi-lead mode). Memory is bounded:
    the buffers keep a few seconds.
    """

    def __init__(self, fs: float, n_leads: int = 1, *, leads: list[int] | None = None, cfg: QrsConfig | None = None,
                 first_sample: int = 0):
        if not (isinstance(fs, (int, float)) and math.isfinite(fs) and fs >= MIN_FS_HZ):
            raise ShapeMismatch(f"QRS detection needs a sampling rate of at least {MIN_FS_HZ:g} Hz, not {fs} Hz")
        self.cfg = cfg or QrsConfig()
        self.fs = float(fs)
        self.n_leads = int(n_leads)
        self.leads = list(range(self.n_leads)) if leads is None else [int(i) for i in leads]
        self._all_leads = list(range(self.n_leads))
        if not self.leads or any(not 0 <= i < self.n_leads for i in self.leads):
            raise ShapeMismatch(f"QRS leads {self.leads} are not among the {self.n_leads} lead(s) of the signal")
        c = self.cfg
        self.first_sample = int(first_sample)
        self.sos = sps.butter(2, [c.band_low_hz, min(c.band_high_hz, 0.45 * self.fs)], btype="bandpass", fs=self.fs, output="sos")
        self.w_int = max(1, round(c.integration_s * self.fs))
        self.r_cand = max(1, round(c.candidate_s * self.fs))
        self.refractory = round(c.refractory_s * self.fs)
        self.twave = round(c.twave_s * self.fs)
        self.learning = round(c.learning_s * self.fs)
        self.locate = max(1, round(c.locate_s * self.fs))
        self.delay = group_delay_samples(self.sos, self.fs) + 1  # band-pass + central difference
        self.floor = energy_floor(self.sos, self.w_int, self.fs, self.cfg.min_qrs_mv)
        self._zi: np.ndarray | None = None
        self._prev2 = np.zeros((len(self.leads), 2))  # band-passed samples n-2, n-1 (central difference)
        self._csum = np.zeros(self.w_int)  # running sum of the slope energy, last w_int values
        # Look-back buffers, indexed by absolute sample n (index n - self._base of the views below, which
        # hold samples self._base to self.n). They are views of preallocated arrays (index n - self._phys)
        # that new samples are written into; the kept samples move to the front only when one fills up.
        self._keep = max(self.learning, round(4.0 * self.fs)) + self.w_int + 2 * self.locate + 4 * self.r_cand
        self._base = 0
        self._phys = 0
        n_used = len(self.leads)
        self._bufs: tuple[np.ndarray, ...] = (np.zeros((n_used, 0)), np.zeros(0), np.zeros(0), np.zeros((n_used, 0)), np.zeros(0, bool))
        self._energy = self._bufs[0]  # per-lead slope energy
        self._total = self._bufs[1]  # slope energy summed over the leads
        self._integ = self._bufs[2]
        self._located = self._bufs[3]  # the input (mV), for R-peak location
        self._concealed = self._bufs[4]
        self._none = Beats.empty(self.fs)
        self._held = np.zeros(len(self.leads))  # last finite sample per lead, mV (NaN and Inf hold it)
        self.n = 0  # samples pushed
        self._decided = 0  # candidates are decided for integrated samples < this
        self._state = _State()

    # ------------------------------------------------------------------ public
    @property
    def decision_delay_s(self) -> float:
        """Seconds from an R peak to its report (search-back beats excepted)."""
        return (self.delay + (self.w_int - 1) / 2 + self.r_cand) / self.fs

    def restart(self) -> None:
        """Forget the thresholds and RR history (after a gap the caller could not conceal): the next
        ``learning_s`` re-learn them. Filter states continue."""
        self._state = _State(clock0=self.n)
        self._decided = max(self._decided, self.n)

    def push(self, chunk: np.ndarray, concealed: np.ndarray | None = None) -> Beats:
        """Add (leads, n) samples in mV (``concealed``: optional bool per sample, True where the caller
        interpolated over lost data) and return the beats decided so far."""
        x, cflag = self._prepared(chunk, concealed)
        if not x.shape[1]:
            return self._none
        y, self._zi = band_pass(self.sos, x, self._state_before(x))
        return self._filtered(x, y, cflag)

    @staticmethod
    def push_many(detectors: "list[StreamingQrsDetector]", chunks: list[np.ndarray],
                  concealed: "list[np.ndarray | None] | None" = None) -> list[Beats]:
        """``[d.push(x, c) for d, x, c in zip(detectors, chunks, concealed)]``, bit for bit, with one
        band-pass call (``sosfilt``) for each set of detectors with the same sections and chunk length,
        their leads as the rows of one array (sosfilt runs every row alone with its own state, so
        stacking rows changes no sum), as :meth:`ecgedge.data.preprocess.StreamingBandpass.push_many`
        does for the preprocessing. The slope energy and the moving-window integration run on those
        rows too (element by element, and ``cumsum`` along a row is the same sequential scan as on
        the row alone); the candidates and decisions run per detector."""
        concealed = concealed if concealed is not None else [None] * len(detectors)
        prepared = [d._prepared(x, c) for d, x, c in zip(detectors, chunks, concealed)]
        out: list[Beats | None] = [None] * len(detectors)
        groups: dict[tuple, list[int]] = {}
        for i, (d, (x, _)) in enumerate(zip(detectors, prepared)):
            if not x.shape[1]:
                out[i] = d._none
            else:
                groups.setdefault((d.sos.tobytes(), x.shape[1], x.shape[0], d.w_int, d.r_cand, d.fs), []).append(i)
        for members in groups.values():
            if len(members) == 1:
                i = members[0]
                d, (x, c) = detectors[i], prepared[i]
                y, d._zi = band_pass(d.sos, x, d._state_before(x))
                out[i] = d._filtered(x, y, c)
                continue
            dets = [detectors[i] for i in members]
            xs = [prepared[i][0] for i in members]
            zi = np.concatenate([d._state_before(x) for d, x in zip(dets, xs)], axis=1)
            y, zf = band_pass(dets[0].sos, np.concatenate(xs), zi)
            rows = xs[0].shape[0]
            e, prev2 = dets[0]._slope_energy(np.concatenate([d._prev2 for d in dets]), y)
            total = e if rows == 1 else np.stack([e[j:j + rows].sum(axis=0) for j in range(0, e.shape[0], rows)])
            csum = np.concatenate([np.stack([d._csum for d in dets]), total], axis=1)
            integ = dets[0]._integrated(csum)
            windows: dict[int, list[int]] = {}  # the detectors ready to decide, by the length of their window
            for k, (d, x) in enumerate(zip(dets, xs)):
                a, b = k * rows, (k + 1) * rows
                d._zi = zf[:, a:b]
                d._prev2 = prev2[a:b]
                d._csum = csum[k, -d.w_int:]
                d._append(e[a:b], total[k], integ[k], x, prepared[members[k]][1])
                d.n += x.shape[1]
                if d._learn():
                    windows.setdefault(min(d.n - d.r_cand, d.n) - d._decided, []).append(k)
                else:
                    out[members[k]] = d._none
            for ks in windows.values():
                found = StreamingQrsDetector._candidates_many(
                    [dets[k] for k in ks], [(dets[k]._decided, min(dets[k].n - dets[k].r_cand, dets[k].n)) for k in ks])
                for k, cands in zip(ks, found):
                    out[members[k]] = dets[k]._decide(dets[k].n - dets[k].r_cand, candidates=cands)
        return out  # type: ignore[return-value]  # every slot is filled above

    def _prepared(self, chunk: np.ndarray, concealed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The leads in use of a chunk (float64, non-finite samples held) and its concealed mask (None: none concealed)."""
        x = np.asarray(chunk, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[0] != self.n_leads:
            raise ShapeMismatch(f"chunk of shape {x.shape}; the QRS detector expects ({self.n_leads}, n) samples in mV")
        m = x.shape[1]
        if m == 0:
            return x, None
        if self.leads != self._all_leads:
            x = x[self.leads]
        cflag = None if concealed is None else np.asarray(concealed, bool).reshape(m).copy()
        finite = np.isfinite(x)
        if not finite.all():
            # Hold the last finite value (a step would look like a QRS); the samples count as concealed.
            x = x.copy()
            for r in range(x.shape[0]):
                ok = finite[r]
                if ok.all():
                    continue
                last = np.where(ok, np.arange(m), -1)
                np.maximum.accumulate(last, out=last)
                x[r] = np.where(last >= 0, x[r][np.maximum(last, 0)], self._held[r])
            lost = np.asarray(~finite.all(axis=0))
            cflag = lost if cflag is None else cflag | lost
        self._held = x[:, -1].copy()
        return x, cflag

    def _state_before(self, x: np.ndarray) -> np.ndarray:
        """The band-pass state before ``x``; at the start, the steady state of its first sample."""
        if self._zi is None:
            self._zi = sps.sosfilt_zi(self.sos)[:, None, :] * x[None, :, 0, None]
            self._prev2 = np.zeros((len(self.leads), 2))
        return self._zi

    def _filtered(self, x: np.ndarray, y: np.ndarray, cflag: np.ndarray | None) -> Beats:
        """The stages after the band-pass (``y``) for the samples ``x``: slope energy, integration,
        candidates and decisions; the beats decided so far."""
        e, self._prev2 = self._slope_energy(self._prev2, y)
        total = e.sum(axis=0) if e.shape[0] > 1 else e[0]
        csum = np.concatenate([self._csum, total])
        integ = self._integrated(csum[None, :])[0]
        self._csum = csum[-self.w_int:]
        return self._take(x, e, total, integ, cflag)

    def _slope_energy(self, prev2: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared central difference (mV/s) of band-passed rows ``y`` after their last two samples
        ``prev2``, and the rows' last two samples now."""
        ext = np.concatenate([prev2, y], axis=1)
        d = (ext[:, 2:] - ext[:, :-2]) * (self.fs / 2.0)
        return d * d, ext[:, -2:]

    def _integrated(self, csum: np.ndarray) -> np.ndarray:
        """Moving-window integration as a difference of a running sum that carries over between pushes:
        ``csum`` holds rows of the last ``w_int`` running sums, then the new slope energies, which it turns
        (in place) into running sums. cumsum is a sequential scan, so the sums (and the beats) do not
        depend on the chunking (nor on how many rows are scanned at once)."""
        w = self.w_int
        np.cumsum(csum[:, w - 1:], axis=1, out=csum[:, w - 1:])
        return (csum[:, w:] - csum[:, :-w]) / w

    def _take(self, x: np.ndarray, e: np.ndarray, total: np.ndarray, integ: np.ndarray, cflag: np.ndarray | None) -> Beats:
        self._append(e, total, integ, x, cflag)
        self.n += x.shape[1]
        return self._decide(self.n - self.r_cand)

    def finish(self) -> Beats:
        """Decide the last samples (end of a record: no look-ahead remains)."""
        return self._decide(self.n, final=True)

    # ------------------------------------------------------------------ stages
    def _append(self, e: np.ndarray, total: np.ndarray, integ: np.ndarray, loc: np.ndarray, cflag: np.ndarray | None) -> None:
        m = e.shape[1]
        at = self.n - self._phys  # where the new samples go in the arrays
        bufs = self._bufs
        if at + m > bufs[1].shape[0]:  # full: move the kept samples to the front (of larger arrays if need be)
            lo = self._base - self._phys
            kept = at - lo
            cap = max(bufs[1].shape[0], kept + m + 2 * self._keep)
            if cap > bufs[1].shape[0]:
                new = tuple(np.zeros(b.shape[:-1] + (cap,), b.dtype) for b in bufs)
            else:
                new = bufs
            for old, b in zip(bufs, new):
                b[..., :kept] = old[..., lo:at]
            self._bufs = bufs = new
            self._phys, at = self._base, kept
        end = at + m
        bufs[0][:, at:end] = e
        bufs[1][at:end] = total
        bufs[2][at:end] = integ
        bufs[3][:, at:end] = loc
        bufs[4][at:end] = False if cflag is None else cflag
        # Trim to what later stages may look back at (pending candidates, learning, location).
        oldest_needed = self.n + m - self._keep
        if self._state.pending:
            oldest_needed = min(oldest_needed, self._state.pending[0].n - self.w_int - 2 * self.locate - self.delay)
        if not self._state.learned:
            oldest_needed = min(oldest_needed, self._state.clock0)
        if oldest_needed > self._base:
            self._base = oldest_needed
        lo = self._base - self._phys
        self._energy, self._total, self._integ = bufs[0][:, lo:end], bufs[1][lo:end], bufs[2][lo:end]
        self._located, self._concealed = bufs[3][:, lo:end], bufs[4][lo:end]

    def _candidates(self, lo: int, hi: int) -> list[_Candidate]:
        """Candidates with ``lo <= n < hi``: the integrated signal's strict maximum over
        ``[n - r, n)`` and its maximum over ``(n, n + r]`` (samples beyond the end count as absent)."""
        return StreamingQrsDetector._candidates_many([self], [(lo, hi)])[0]

    @staticmethod
    def _candidates_many(detectors: "list[StreamingQrsDetector]", windows: list[tuple[int, int]]) -> list[list[_Candidate]]:
        """:meth:`_candidates` of detectors with the same ``r_cand`` and ``w_int`` over windows
        ``(lo, hi)`` of the same length, as the rows of one array (running maxima, exact, row by row)."""
        width = windows[0][1] - windows[0][0]
        if width <= 0:
            return [[] for _ in detectors]
        r, w = detectors[0].r_cand, detectors[0].w_int
        full = np.empty((len(detectors), width + 2 * r))  # the integrated signal over [lo - r, hi + r)
        full.fill(-np.inf)
        energy = np.empty((len(detectors), width + w - 1))  # the summed slope energy over [lo - w + 1, hi)
        energy.fill(-np.inf)
        for k, (d, (lo, hi)) in enumerate(zip(detectors, windows)):
            a, b = max(lo - r, d._base), min(hi + r, d.n)
            full[k, a - (lo - r):b - (lo - r)] = d._integ[a - d._base:b - d._base]
            a = max(lo - w + 1, d._base)
            energy[k, a - (lo - w + 1):hi - (lo - w + 1)] = d._total[a - d._base:hi - d._base]
        centre = full[:, r:r + width]
        # peak[j] = max(full[j:j + r]) for every j (a running maximum, exact): the r samples before a
        # centre start at its index k, the r after it at k + r + 1.
        peak = running_max(full, r)
        is_peak = (centre > peak[:, :width]) & (centre >= peak[:, r + 1:r + 1 + width]) & (centre > 0)
        rows, ks = np.nonzero(is_peak)
        out: list[list[_Candidate]] = [[] for _ in detectors]
        if not rows.size:
            return out
        # A candidate's slope: the largest slope energy in the integration window up to it (w samples);
        # for one detector, window by window (a few candidates cost less than a running maximum).
        rows_, ks_ = rows.tolist(), ks.tolist()
        if len(detectors) == 1:
            slopes = [float(energy[0, k:k + w].max()) for k in ks_]
        else:
            slopes = running_max(energy, w)[rows, ks].tolist()
        for row, k, c, e in zip(rows_, ks_, centre[rows, ks].tolist(), slopes):
            out[row].append(_Candidate(windows[row][0] + k, c, e))
        return out

    def _learn(self, final: bool = False) -> bool:
        """Learn the thresholds once ``learning_s`` of signal (or the end of the record) is in; whether learned."""
        st = self._state
        if not st.learned:
            if self.n - st.clock0 < self.learning and not final:
                return False
            seg = self._integ[st.clock0 - self._base:min(self.n, st.clock0 + self.learning) - self._base]
            if seg.size == 0:
                return False
            st.spk0 = st.spk = float(seg.max()) / 3.0
            st.npk = float(seg.mean()) / 2.0
            st.learned = True
            self._decided = max(self._decided, st.clock0)
        return True

    def _decide(self, upto: int, final: bool = False, candidates: list[_Candidate] | None = None) -> Beats:
        """Decide the candidates up to ``upto`` (``candidates``: those :meth:`_candidates` gives, found already)."""
        if not self._learn(final):
            return self._none
        upto = min(upto, self.n)
        found: list[tuple[int, int]] = []
        for c in self._candidates(self._decided, upto) if candidates is None else candidates:
            self._searchback_before(c.n, found)
            self._classify(c, found)
        self._decided = max(self._decided, upto)
        self._searchback_before(self._decided, found)
        if not found:
            return self._none
        return Beats(np.array([p for p, _ in found], np.int64) + self.first_sample, np.array([f for _, f in found], np.uint8), self.fs)

    def _threshold(self) -> float:
        st = self._state
        spk = self._spk()
        return st.npk + self.cfg.threshold_fraction * (spk - st.npk)

    def _spk(self) -> float:
        """The beat-peak level: the lower quartile of the last ``rr_memory`` beats' heights."""
        st = self._state
        return st.spk

    def _rr_mean(self) -> float:
        rr = self._state.rr
        return sum(rr) / len(rr) if rr else self.cfg.initial_rr_s * self.fs

    def _classify(self, c: _Candidate, found: list) -> None:
        st = self._state
        since = c.n - st.last_beat if st.last_beat >= 0 else None
        if since is not None and since < self.refractory:
            return  # within the refractory period: neither beat nor noise
        if c.height > max(self._threshold(), self.floor) and not self._is_twave(c, since):
            self._accept(c, found, BeatFlag.NONE)
            return
        st.npk = 0.125 * c.height + 0.875 * st.npk
        if st.last_beat >= 0:  # search-back looks back to the last beat: before the first, nothing is kept
            st.pending.append(c)

    def _is_twave(self, c: _Candidate, since: int | None) -> bool:
        st = self._state
        return (since is not None and since < self.twave and bool(st.slopes)
                and c.slope < self.cfg.twave_slope_ratio * st.slopes[-1])

    def _searchback_before(self, n: int, found: list) -> None:
        """Search back while the search-back deadline lies before sample ``n``. A deadline that passes
        with nothing to take lowers the beat-peak level to the tallest candidate since the last beat
        (at most half the level, never below the floor; the next beat sets it again) and sets the
        next deadline one search-back interval later: a lasting fall in QRS amplitude is followed
        within about two RR intervals, while a flat or quiet line (asystole) stays beat-free."""
        st = self._state
        while st.last_beat >= 0 and n > self._deadline():
            deadline = self._deadline()
            thr2 = 0.5 * self._threshold()
            best = None
            for c in st.pending:
                since = c.n - st.last_beat
                if c.n > deadline or since < self.refractory or self._is_twave(c, since) or c.height <= max(thr2, self.floor):
                    continue
                if best is None or c.height > best.height:
                    best = c
            if best is None:
                tallest = max((c.height for c in st.pending if c.n <= deadline), default=0.0)
                st.spk0 = max(min(0.5 * self._spk(), tallest), self.floor)
                st.peaks = []
                st.spk = st.spk0
                st.npk = min(st.npk, 0.5 * st.spk0)
                st.pending = [c for c in st.pending if c.n > deadline]
                st.anchor = int(math.ceil(deadline))
                continue
            self._accept(best, found, BeatFlag.SEARCHBACK)

    def _deadline(self) -> float:
        st = self._state
        return max(st.last_beat, st.anchor) + self.cfg.searchback_rr * self._rr_mean()

    def _accept(self, c: _Candidate, found: list, flag: BeatFlag) -> None:
        st = self._state
        if st.last_beat >= 0:
            st.rr.append(c.n - st.last_beat)
            del st.rr[: -self.cfg.rr_memory]
        st.peaks.append(c.height)
        del st.peaks[: -self.cfg.rr_memory]
        st.spk = lower_quartile(st.peaks)
        st.last_beat = c.n
        st.slopes.append(c.slope)
        del st.slopes[: -self.cfg.rr_memory]
        st.pending = [p for p in st.pending if p.n > c.n]
        peak, flags = self._locate(c)
        if st.npk > self.cfg.noise_ratio * self._spk():
            flags |= BeatFlag.NOISY
        found.append((peak, int(flags | flag)))

    def _locate(self, c: _Candidate) -> tuple[int, BeatFlag]:
        """R-peak position (input sample) of the QRS whose integrated hump peaks at ``c.n``."""
        i = c.n - self._base
        lo_e = max(0, i - self.w_int + 1)
        steep = lo_e + int(self._total[lo_e:i + 1].argmax())
        lead = int(self._energy[:, lo_e:i + 1].sum(axis=1).argmax()) if self._energy.shape[0] > 1 else 0
        centre = steep - self.delay  # the steepest slope, in input time
        lo = max(0, centre - self.locate)
        hi = min(self._located.shape[1], centre + self.locate + 1)
        seg = self._located[lead, lo:hi]
        part = seg.copy()
        part.partition(seg.size // 2)
        dev = seg - float(part[seg.size // 2])  # baseline: the median
        k_pos, k_neg = int(dev.argmax()), int(dev.argmin())
        # The R wave is the positive peak unless the complex is mainly negative (QS, many PVCs).
        k = k_neg if -dev[k_neg] > self.cfg.negative_ratio * dev[k_pos] else k_pos
        peak_buf = lo + k
        flags = BeatFlag.NONE
        # The QRS window, cut at the candidate's look-ahead (what every chunking has seen when the
        # candidate is decided), so that the flag does not depend on when the beat is accepted.
        if self._concealed[max(0, peak_buf - self.locate):min(peak_buf + self.locate + 1, i + self.r_cand)].any():
            flags |= BeatFlag.CONCEALED
        return self._base + peak_buf, flags


def detect_beats(signal_mv: np.ndarray, fs: float, *, leads: list[int] | None = None, cfg: QrsConfig | None = None,
                 concealed: np.ndarray | None = None) -> Beats:
    """Beats of a whole record: (leads, n) or (n,) samples in mV at ``fs`` Hz.

    Exactly the streaming detector fed one chunk and finished (so a record and its stream give the
    same beats). ``leads`` picks rows (default all: the multi-lead mode).
    """
    x = np.asarray(signal_mv, dtype=np.float64)
    x2 = x[None, :] if x.ndim == 1 else x
    det = StreamingQrsDetector(fs, x2.shape[0], leads=leads, cfg=cfg)
    return Beats.concat([det.push(x2, concealed), det.finish()], fs)
