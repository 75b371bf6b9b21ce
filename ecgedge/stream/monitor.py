"""Streaming rhythm classification for beds: samples in, window verdicts and rhythm events out.

numpy + the shared preprocessing + ``ecgedge.runtime``; never torch. A :class:`BedMonitor` takes
chunks of samples in mV with their first-sample index at the source rate, runs the *same* causal
preprocessing as training (``StreamingPreprocessor``, so a window here equals the offline window
ending at the same sample), and every ``hop_s`` seconds cuts the latest ``window_samples`` at the
model rate. :class:`~ecgedge.stream.hub.StreamHub` batches the ready windows of many beds into one inference call.

Sample bookkeeping. A *segment* is a run of contiguous samples since the stream started or since
the last gap. Windows end every hop at model-rate sample ``k * hop`` (k = 1, 2, ...) after the
segment start, and model-rate index ``n`` maps to source index
``segment_start + round(n * fs_in / fs_model)``. Each window verdict owns the source samples
``new = [previous window end, its end)``, so verdicts and reported gaps tile the stream: every
sample is classified, reported unreliable, or reported lost (plus, at the end, less than one hop
that no window has reached yet). A *concealed* gap (below) lies inside the ``new`` span of a
verdict, which says how many of its samples were concealed (``concealed_new``): those samples
are counted as lost, never as classified.

Nothing is hidden:

- a **gap** (lost frames, a disconnect) is reported with its sample range; the window that would
  have ended across it is reported ``unreliable`` (reason ``gap``), the filters restart after it,
  and windows that would reach back over the gap or into the filters' settling period are
  ``unreliable`` too; the stream recovers by itself;
- a **short gap** (at most ``StreamSettings.conceal_max_s``, e.g. one or two lost frames on a lossy
  radio link) is *concealed* instead: filled per lead by the straight line from the last sample
  before it to the first after it (mV, source rate), so the filters run on and the windows that
  contain it are classified. The gap is still reported (``"concealed": true``) and every window
  holding concealed samples says how many (``concealed_samples``): concealed, never silently normal;
- when no window has been classified for ``StreamSettings.inoperable_after_s`` of stream (a dead
  or flat link, an electrode off, gap after gap) the monitor raises one **technical alert**
  ``ecg_signal_inoperable`` (:class:`~ecgedge.stream.events.SignalAlert`), and clears it with the next classified window;
- a source rate below twice the model's band-pass upper edge (``ecgedge.data.quality.rate_problem``),
  **lead-off** flags, device flags (calibration pulse, ADC saturated) and flat, saturated,
  implausibly large (a wrong gain) or non-finite leads (``ecgedge.data.quality``) make a window
  ``unreliable`` with the reason, never a rhythm;
- rhythm-change **events** use hysteresis: a new label must win ``hysteresis`` consecutive reliable
  windows before the monitor raises it, as a bedside monitor would. A change of signal quality
  (``ok`` <-> ``unreliable``) is raised at once.

Everything a monitor yields is a typed event of :mod:`ecgedge.stream.events` (verdicts, gaps,
alerts, quality and rhythm changes); ``to_json()`` gives its record.

Memory per bed is bounded: ring buffers of about one window plus two hops (model rate and source
rate) and the filter states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Iterable

import numpy as np

from ecgedge.data.leads import chosen_lead_row, lead_indices
from ecgedge.data.preprocess import StreamingPreprocessor, normalise_windows, resampling_ratio
from ecgedge.data.quality import RunningSignalChecks, rate_problem, signal_problems
from ecgedge.errors import MissingLeads, ShapeMismatch
from ecgedge.stream.events import AlertState, Event, QualityChange, RhythmChange, SampleGap, SignalAlert, WindowVerdict
from ecgedge.stream.rate import BedBeats
from ecgedge.stream.settings import (  # noqa: F401 (re-exported: the monitor's face)
    CALIBRATION_FLAG, CONCEAL_MAX_S, INOPERABLE_AFTER_S, NOISE_LABELS, SATURATED_FLAG, ModelSpec, StreamSettings,
    device_flag_names)
from ecgedge.stream.ring import Ring


class BedMonitor:
    """One bed's stream: ``push(samples_mv, first_sample, lead_off)`` -> records and window verdicts, in order.

    Args:
        stream_id: the bed's name in every record (the protocol's stream id).
        fs_in: the source's sampling rate in Hz.
        lead_names: the source's leads, one per row of the samples pushed. The model's leads are
            picked from them by name (:func:`ecgedge.data.leads.lead_indices`: MLII counts as II,
            MLI as I); a single-lead model takes a single-lead
            source whatever its name. A missing lead is a :class:`ShapeMismatch` at once, never a
            silent zero lead.
        model: the model's leads, labels, preprocessing and window length.
        settings: hop, hysteresis, gap concealment and the inoperable alert.
        start_reason: reason given by the windows before the first classifiable one ("starting up";
            "format change" when the monitor replaces one whose stream changed rate or leads).
        defer: leave the filtering and the cutting of each window to :func:`~ecgedge.stream.ward.cut_pending` (how
            :class:`~ecgedge.stream.hub.StreamHub` preprocesses all its beds in one vectorised pass per
            hop): where a window becomes due, ``push`` returns a :class:`~ecgedge.stream.ward.PendingWindows` in its place,
            which ``cut_pending`` fills with the verdicts (and alerts) ``push`` would have returned
            there, the same ones, except that a verdict's ``window`` is the model-rate window in mV
            (float32), which the hub z-scores (:func:`normalise_windows`) with the others of its
            inference call. Default False: ``push`` cuts every window itself, z-scored.
    """

    def __init__(self, stream_id: Hashable, *, fs_in: float, lead_names: Iterable[str], model: ModelSpec,
                 settings: StreamSettings = StreamSettings(), start_reason: str = "starting up",
                 defer: bool = False):
        self.stream_id = stream_id
        self.defer = defer
        self.due: PendingWindows | None = None  # windows due but not cut yet (defer)
        self.fs_in = float(fs_in)
        self.model = model
        self.cfg = model.preprocess
        self.settings = settings
        self.lead_names = tuple(str(n) for n in lead_names)
        try:
            if settings.source_lead is not None:
                self.lead_index = [chosen_lead_row(self.lead_names, settings.source_lead, model.leads)]
            else:
                self.lead_index = lead_indices(self.lead_names, model.leads)
        except MissingLeads as exc:
            hint = "" if settings.source_lead is not None or len(model.leads) != 1 else \
                "; a single-lead model can read another lead: --lead NAME (or --lead 2, by position)"
            raise ShapeMismatch(f"stream {stream_id} carries leads {', '.join(self.lead_names)}; "
                                f"the model needs {', '.join(exc.missing)} too{hint}") from None
        # A source too slow for the model's band is monitored (gaps, alerts) but never classified.
        self.rate_problem = rate_problem(self.fs_in, self.cfg.bandpass_high_hz)
        self.up, self.down = resampling_ratio(self.fs_in, self.cfg.fs_hz)  # fs_in * up / down = fs_model
        self.window = model.window_samples
        self.hop_out = max(1, int(round(settings.hop_s * self.cfg.fs_hz)))
        self.hop_in = max(1, self._in_offset(self.hop_out))
        self.window_in = self._in_offset(self.window)
        # Windows are cut after every piece of at most one hop, so a window's samples are still in
        # the rings when it is cut: one window plus two hops (and the resampler's lag) is enough.
        self._raw_capacity = self.window_in + 2 * self.hop_in + self.down // self.up + 4
        self._out_capacity = self.window + 2 * self.hop_out + 4
        # The signal checks keep two blocks per hop (window starts split them): a window and two hops' worth.
        self._check_blocks = 2 * (self.window // self.hop_out + 3)
        self.current: str | None = None  # the rhythm last raised
        self.quality: str | None = None  # "ok" / "unreliable" of the last verdict
        self._candidate: tuple[str | None, int] = (None, 0)
        self.next_sample: int | None = None  # source index the next push should start at
        self._open = False  # a segment is in progress
        self._next_cause = start_reason  # why the next segment starts (reason of its warm-up verdicts)
        # Whole source samples: 0.1 s at 500 Hz conceals 50 (two 20-sample frames), at 360 Hz 36.
        self.conceal_max = int(settings.conceal_max_s * self.fs_in + 1e-9)
        self._concealed: list[tuple[int, int]] = []  # concealed [start, end) still inside a coming window
        # Stream seconds since the last classified window, counted in stream order from the verdicts'
        # ``new`` spans and the gaps not concealed, so restarts and rate changes do not upset it.
        self.dark_s = 0.0
        self.inoperable = False  # the ecg_signal_inoperable alert is raised
        # Beats, heart rate and rate alarms (ecgedge.stream.rate): fed at every window end.
        self.rate = BedBeats(stream_id, self.fs_in, model.leads, settings.rate_alarms) if settings.beats else None

    # ---- sample bookkeeping -------------------------------------------------------------------

    def _in_offset(self, n_out: int) -> int:
        """Source-rate offset of model-rate offset ``n_out``: round(n_out * fs_in / fs_model), halves up."""
        return (2 * n_out * self.down + self.up) // (2 * self.up)

    def _in_sample(self, n_out: int) -> int:
        """Source-rate sample index of model-rate sample ``n_out`` of the current segment."""
        return self.segment_start + self._in_offset(n_out)

    @property
    def _next(self) -> int:
        """``next_sample`` inside a segment (the first segment's start sets it)."""
        assert self.next_sample is not None, "no segment has started"
        return self.next_sample

    def _start_segment(self, first_sample: int, cause: str) -> None:
        self.pre = StreamingPreprocessor(self.cfg, self.fs_in, len(self.lead_index))
        self.unfiltered: list[np.ndarray] = []  # samples received, not yet through the filters (< one hop)
        # float32: the model's input type, which normalise_windows rounds to anyway (same values).
        self.out = Ring(len(self.lead_index), self._out_capacity, dtype=np.float32)
        self.raw = Ring(len(self.lead_index), self._raw_capacity)
        self.lead_off = Ring(len(self.lead_index), self._raw_capacity, dtype=bool)
        self.flags = Ring(1, self._raw_capacity, dtype=np.uint16)
        if cause != "gap":  # a new stream (start, device restart, new layout): nothing before it counts
            self.stream_start = first_sample
        self.segment_start = first_sample
        self.cause = cause
        self.first_full = self.window + self.cfg.settle_samples  # model samples before a classifiable window
        self.next_end = self.hop_out
        self.last_end = first_sample  # source index up to which verdicts account for the samples
        self.next_sample = first_sample
        self._concealed = []
        self.checks = RunningSignalChecks(len(self.lead_index), self._check_blocks)
        self._checked = 0  # segment offset up to which the raw samples have been added to the checks
        self._start_k = 1  # the next window (its end is model sample k * hop) whose start splits a block
        self._open = True
        if self.rate is not None:
            self.rate.start(first_sample, after_gap=cause == "gap")

    def _end_segment(self, reason: str) -> list[Event]:
        """Close the current segment: its samples after the last window go into one unreliable verdict."""
        items: list[Event] = []
        if self._open and self._next > self.last_end:
            end = self._next
            items += self._final(WindowVerdict(self.stream_id, end / self.fs_in, max(self.stream_start, end - self.window_in),
                                               end, self.last_end, reliable=False, reason=reason))
            self.last_end = end
        self._open = False
        self._next_cause = reason
        return items

    @property
    def pending_samples(self) -> int:
        """Samples received that no verdict accounts for yet: less than a hop (plus the resampler's lag),
        and with ``defer`` the windows due that :func:`~ecgedge.stream.ward.cut_pending` has not cut yet."""
        return self._next - self.last_end - self._concealed_in(self.last_end, self._next) if self._open else 0

    def _concealed_in(self, start: int, end: int) -> int:
        """Concealed samples of the current segment in source samples ``[start, end)``."""
        return sum(max(0, min(end, b) - max(start, a)) for a, b in self._concealed)

    def _final(self, v: WindowVerdict) -> list[Event]:
        """A verdict is cut: count its concealed samples, run the beats and the inoperable clock; the
        verdict, any inoperable alert, its heart rate and any rate alarm (judged with the inoperable
        alert as it stood before this verdict)."""
        beats: list[Event] = []
        if self.rate is not None and self.rate.active:
            self._feed_beats(v.end_sample)
            beats += self.rate.hop(v.t_s, v.end_sample, self._rate_signal_problem)
        if self._concealed:
            v.concealed = self._concealed_in(v.start_sample, v.end_sample)
            v.concealed_new = self._concealed_in(v.new_start, v.end_sample)
            # Windows only move forward: a span ending before this one's start is in no later window.
            self._concealed = [(a, b) for a, b in self._concealed if b > v.start_sample]
        return [v, *self._clock((v.end_sample - v.new_start) / self.fs_in, v.reliable, v.t_s, v.end_sample, v.reason), *beats]

    def qrs_samples(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The QRS lead's source samples ``[start, end)`` of this segment (mV; NaN where its electrode is
        off, so the detector holds its last value and finds no beat there) and which were concealed."""
        assert self.rate is not None
        n, at = end - start, end - self.segment_start
        lead = self.rate.lead
        x = self.raw.last(n, at)[lead]
        off = self.lead_off.last(n, at)[lead]
        if off.any():
            x = np.where(off, np.nan, x)
        concealed = None
        if self._concealed:
            concealed = np.zeros(n, dtype=bool)
            for a, b in self._concealed:
                concealed[max(a, start) - start:max(min(b, end) - start, 0)] = True
        return x, concealed

    def _feed_beats(self, end: int) -> None:
        """Feed the detector the QRS lead's samples up to stream sample ``end``."""
        assert self.rate is not None
        if end > self.rate.fed:
            self.rate.feed(*self.qrs_samples(self.rate.fed, end))

    def _rate_signal_problem(self, seconds: float) -> str:
        """The monitor's reason why the QRS lead's last ``seconds`` (up to the samples fed) are too poor
        for a rate alarm (:mod:`ecgedge.stream.rate`): the inoperable alert, the lead off, device flags;
        ``""`` when none (the samples themselves are checked by the caller)."""
        assert self.rate is not None
        if self.inoperable:
            return "ecg_signal_inoperable alert raised"
        at = self.rate.fed - self.segment_start
        n = min(int(round(seconds * self.fs_in)), at, self.lead_off.capacity)
        if n <= 0:
            return ""
        if self.lead_off.last(n, at)[self.rate.lead].any():
            return f"lead-off: {self.rate.lead_name}"
        flags = int(np.bitwise_or.reduce(self.flags.last(n, at)[0]))
        return f"device: {device_flag_names(flags)}" if flags else ""

    def _clock(self, seconds: float, classified: bool, t_s: float, sample: int, reason: str) -> list[SignalAlert]:
        """Advance the time without classification by ``seconds`` of stream; the alert it raises or clears."""
        if classified:
            cleared = [SignalAlert(self.stream_id, t_s, sample, AlertState.cleared, self.dark_s)] if self.inoperable else []
            self.dark_s, self.inoperable = 0.0, False
            return cleared
        self.dark_s += seconds
        return self._raise_if_dark(self.dark_s, t_s, sample, reason)

    def _raise_if_dark(self, dark_s: float, t_s: float, sample: int, reason: str) -> list[SignalAlert]:
        after = self.settings.inoperable_after_s
        # 1e-9 s: the clock is a sum of hops in float seconds (0.178 s at 360 Hz ...), the limit a round number.
        if self.inoperable or not after or dark_s < after - 1e-9:
            return []
        self.inoperable = True
        return [SignalAlert(self.stream_id, t_s, sample, AlertState.raised, dark_s, reason)]

    def silence(self, silent_s: float) -> list[SignalAlert]:
        """Nothing has arrived for ``silent_s`` seconds of wall time (a dead link): the alert, if that
        with the stream time already without a classified window reaches ``inoperable_after_s``.

        The stream clock cannot see time in which no sample arrives; this is how a caller that
        watches the wall clock (:meth:`StreamSession.tick <ecgedge.stream.session.StreamSession.tick>`)
        raises the alert for a link that went silent. The gap is counted when data resumes.
        """
        if self.next_sample is None:
            return []
        self.settle()
        pending = (self.next_sample - self.last_end) / self.fs_in if self._open else 0.0
        return self._raise_if_dark(self.dark_s + pending + silent_s, self.next_sample / self.fs_in, self.next_sample, "no data")

    # ---- input --------------------------------------------------------------------------------

    def restart(self, reason: str = "restart") -> list[Event]:
        """End the current segment (device restart, format change); the next push starts a new one at its index."""
        self.settle()
        return self._end_segment(reason)

    def push(self, samples_mv: np.ndarray, first_sample: int, lead_off: Iterable[int] = (), *,
             device_flags: int = 0, frames_lost: int | None = None) -> list[Event]:
        """Feed ``(source leads, n)`` samples in mV starting at source sample ``first_sample``.

        Args:
            samples_mv: one row per source lead (``lead_names``).
            first_sample: source-rate index of the first column. An index past the expected one is a
                gap: reported, and concealed when it is at most ``conceal_max`` samples (and the
                samples around it are finite), else the filters restart after it. Samples before
                the expected index were seen already and are dropped.
            lead_off: indices of source leads whose electrode is off during these samples.
            device_flags: the protocol's device flags for these samples (calibration pulse and ADC
                saturated make windows unreliable).
            frames_lost: frames the gap before these samples lost (as the sequence tracker counts them).

        Returns:
            :class:`SampleGap`, :class:`WindowVerdict` and :class:`SignalAlert` in stream order. Verdicts ready for
            inference carry their normalised ``window``; :class:`StreamHub` fills ``label``/``probs``
            and then calls :meth:`resolve` for the events that depend on them. With ``defer``, a
            :class:`~ecgedge.stream.ward.PendingWindows` stands where windows became due, until :func:`~ecgedge.stream.ward.cut_pending` (or
            this monitor's next discontinuous ``push``, ``restart`` or ``silence``) cuts them.
        """
        x = np.asarray(samples_mv, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(self.lead_names):
            raise ShapeMismatch(f"stream {self.stream_id}: samples of shape {x.shape}; "
                                f"expected ({len(self.lead_names)} leads, n)")
        x = x[self.lead_index]
        first_sample = int(first_sample)
        items: list[Event] = []
        off = np.zeros(len(self.lead_index), dtype=bool)
        for lead in lead_off:
            if lead in self.lead_index:
                off[self.lead_index.index(lead)] = True
        bad_flags = int(device_flags) & (CALIBRATION_FLAG | SATURATED_FLAG)
        if self.due is not None and (not self._open or first_sample != self._next):
            self.settle()  # a gap or a new segment: the due windows come first
        if not self._open:
            self._start_segment(first_sample, self._next_cause)
        elif first_sample > self._next:
            start, end = self._next, first_sample
            gap = SampleGap(self.stream_id, start, end, self.fs_in, frames_lost)
            if self._concealable(gap, x):
                gap.concealed = True
                items.append(gap)
                # The concealed samples carry what held on either side: an electrode off or a
                # calibration pulse before or after the gap keeps its windows unreliable.
                before_off, before_flags = self.lead_off.last(1)[:, 0], int(self.flags.last(1)[0, 0])
                self._concealed.append((start, end))
                items += self._write(self._interpolated(gap.samples, x[:, 0]), off | before_off, bad_flags | before_flags)
            else:
                items += self._end_segment("gap")
                items.append(gap)
                items += self._clock(gap.samples / self.fs_in, False, end / self.fs_in, end, "gap")
                self._start_segment(first_sample, "gap")
        elif first_sample < self._next:  # already seen: keep only what is new
            skip = self._next - first_sample
            if skip >= x.shape[-1]:
                return items
            x, first_sample = x[:, skip:], self._next
        return items + self._write(x, off, bad_flags)

    def _concealable(self, gap: SampleGap, x: np.ndarray) -> bool:
        """A gap short enough to conceal, between a sample of this segment and one that arrived, both finite."""
        return (gap.samples <= self.conceal_max and x.shape[-1] > 0 and self.raw.total > 0
                and bool(np.isfinite(x[:, 0]).all()) and bool(np.isfinite(self.raw.last(1)).all()))

    def _interpolated(self, n: int, after: np.ndarray) -> np.ndarray:
        """``n`` samples per lead on the straight line from the last sample written to ``after`` (mV), both excluded."""
        before = self.raw.last(1)[:, 0]
        return before[:, None] + (after - before)[:, None] * (np.arange(1, n + 1) / (n + 1))

    def _write(self, x: np.ndarray, off: np.ndarray, bad_flags: int) -> list[Event]:
        """Append contiguous samples of the current segment; the verdicts (and alerts) of the windows they complete."""
        items: list[Event] = []
        for a in range(0, x.shape[-1], self.hop_in):
            piece = x[:, a:a + self.hop_in]
            n = piece.shape[-1]
            self.raw.write(piece)
            self.lead_off.fill(off, n)
            self.flags.fill(np.uint16(bad_flags), n)
            # A non-finite sample would stay in the IIR state for ever: the filters see 0 mV there,
            # while the raw ring keeps it, so every window containing it is reported unreliable.
            self.unfiltered.append(piece if np.isfinite(piece).all() else np.nan_to_num(piece, nan=0.0, posinf=0.0, neginf=0.0))
            self.next_sample = self._next + n
            # The filters run once per window, on everything received since: the preprocessing is
            # chunk-invariant, so this equals filtering every frame, at a fraction of the calls.
            # (Before the next window's end has arrived, no window can be cut.)
            if self.next_sample >= self._in_sample(self.next_end):
                self.settle()  # (with ``defer``) the window due before this one is cut first, in order
                if self.defer:
                    # What has arrived by now bounds the windows cut here, as it would bound them in
                    # _cut_windows: the source samples, and the outputs the resampler will have made of them.
                    self.due = PendingWindows(self, self._next, self.pre.resampler.outputs_after(self._next - self.segment_start))
                    items.append(self.due)  # type: ignore[arg-type]  # a place held for events
                else:
                    self.filter_received()
                    items += self._cut_windows()
        return items

    def settle(self) -> None:
        """Cut the windows due now, alone (``defer``); their events fill the :class:`~ecgedge.stream.ward.PendingWindows` that held their place."""
        if self.due is not None:
            self.filter_received()
            self.cut_due(copy=True)  # the rings move on before the hub reads the window

    # The deferred cut's interface (``due``, ``unfiltered``, these methods): public, because
    # :func:`~ecgedge.stream.ward.cut_pending` cuts many beds' due windows in one pass with them.

    def take_unfiltered(self) -> np.ndarray:
        """The samples received since the last filtering, (leads, n) mV, handed over and forgotten."""
        x = self.unfiltered[0] if len(self.unfiltered) == 1 else np.concatenate(self.unfiltered, axis=1)
        self.unfiltered.clear()
        return x

    def filter_received(self) -> None:
        """Run the samples received since the last filtering through this bed's own filters into its ring."""
        if self.unfiltered:
            self.out.write(self.pre.push(self.take_unfiltered()))

    def cut_due(self, copy: bool) -> list[WindowVerdict]:
        """Fill the pending place with the windows due there, in mV (copies, or views of the ring that
        hold until the next push); return the verdicts among them."""
        due, self.due = self.due, None
        assert due is not None
        due.items = self._cut_windows(due.limit_in, due.limit_out, window="copy" if copy else "view")
        return [v for v in due.items if isinstance(v, WindowVerdict)]

    def _cut_windows(self, limit_in: int | None = None, limit_out: int | None = None, *, window: str = "normalised") -> list[Event]:
        """Cut every window whose samples have arrived (up to source sample ``limit_in`` and model-rate
        sample ``limit_out``, when given). ``window``: what a verdict carries, the z-scored window, or
        the window in mV (float32) as a ``"copy"`` or a ``"view"`` of the ring, for a caller that
        z-scores many at once."""
        items: list[Event] = []
        limit_in = self._next if limit_in is None else limit_in
        limit_out = self.out.total if limit_out is None else min(limit_out, self.out.total)
        while True:
            end_out = self.next_end
            end_in = self._in_sample(end_out)
            if limit_out < end_out or limit_in < end_in:
                return items
            self._check_to(end_in - self.segment_start)
            if end_out < self.first_full:  # not a full, settled window since the segment started
                start_in = max(self.stream_start, self._in_sample(end_out - self.window))
                # A window reaching back over the segment start overlaps the gap (or the time before
                # the stream); a later one still holds the filters' start-up transient.
                reason = self.cause if end_out < self.window or self.cause == "starting up" else f"settling after {self.cause}"
                items += self._final(WindowVerdict(self.stream_id, end_in / self.fs_in, start_in, end_in, self.last_end,
                                                   reliable=False, reason=reason))
            else:
                items += self._final(self._verdict(end_out, end_in, window))
            self.last_end = end_in
            self.next_end += self.hop_out

    def _check_to(self, end: int) -> None:
        """Add the raw samples up to segment offset ``end`` to the signal checks, once each, in blocks
        that end at window ends and window starts, so every window is a run of whole blocks."""
        for a, b in self._check_spans(end):
            self.checks.add(self.raw.last(b - a, b), a)

    def _check_spans(self, end: int) -> list[tuple[int, int]]:
        """The blocks ``[a, b)`` (segment offsets) that bring the signal checks up to ``end``; the caller adds them."""
        spans = []
        while self._checked < end:
            start = self._in_offset(self._start_k * self.hop_out - self.window)
            if start <= self._checked:
                self._start_k += 1
                continue
            stop = min(start, end)
            spans.append((self._checked, stop))
            self._checked = stop
        return spans

    def first_due_end(self) -> int | None:
        """Source sample at which the first window due (``defer``) ends; None if none is due (for
        :func:`~ecgedge.stream.ward.cut_pending`, which feeds many beds' QRS detectors at once)."""
        assert self.due is not None
        end_out = self.next_end
        if end_out <= min(self.due.limit_out, self.out.total) and self._in_sample(end_out) <= self.due.limit_in:
            return self._in_sample(end_out)
        return None

    def due_blocks(self) -> list[tuple[np.ndarray, int]]:
        """(samples, segment offset) of the check blocks the due windows need, bookkeeping moved on:
        what :meth:`_cut_windows` would add, for :func:`~ecgedge.stream.ward.cut_pending` to add for many beds at once."""
        assert self.due is not None
        limit_in, limit_out = self.due.limit_in, min(self.due.limit_out, self.out.total)
        end_out, end = self.next_end, None
        while end_out <= limit_out and self._in_sample(end_out) <= limit_in:
            end, end_out = self._in_sample(end_out) - self.segment_start, end_out + self.hop_out
        return [] if end is None else [(self.raw.last(b - a, b), a) for a, b in self._check_spans(end)]

    def _verdict(self, end_out: int, end_in: int, window: str = "normalised") -> WindowVerdict:
        start_in = self._in_sample(end_out - self.window)
        v = WindowVerdict(self.stream_id, end_in / self.fs_in, start_in, end_in, self.last_end, reliable=True)
        n, end = end_in - start_in, end_in - self.segment_start
        off = self.lead_off.last(n, end).any(axis=1)
        flags = int(np.bitwise_or.reduce(self.flags.last(n, end)[0]))
        if self.rate_problem:
            v.reliable, v.reason = False, self.rate_problem
        elif off.any():
            v.leads = tuple(self.model.leads[i] for i in np.flatnonzero(off))
            v.reliable, v.reason = False, f"lead-off: {', '.join(v.leads)}"
        elif flags:
            v.reliable, v.reason = False, f"device: {device_flag_names(flags)}"
        elif not self.checks.clearly_clean(end - n, end) and (
                problems := signal_problems(self.raw.last(n, end), self.fs_in, self.model.leads)):
            v.reliable, v.reason = False, "; ".join(problems)
        else:
            # Each lead's samples contiguous in memory, as in the offline windows training saw: numpy's
            # float32 sums group their terms by memory layout, so this window equals the offline one bit
            # for bit (the fancy-indexed copy this replaces was lead-minor: ~1e-6 off, 3x slower to z-score).
            # normalise_windows z-scores every window alone, so many stacked give these same bits.
            w = self.out.last(self.window, end_out)
            v.window = (normalise_windows(w[None], self.cfg)[0][0] if window == "normalised"
                        else np.array(w) if window == "copy" else w)
        return v

    # ---- events -------------------------------------------------------------------------------

    def resolve(self, v: WindowVerdict) -> list[QualityChange | RhythmChange]:
        """Apply hysteresis to a finished verdict; return the quality / rhythm-change events it causes."""
        events: list[QualityChange | RhythmChange] = []
        quality = "ok" if v.reliable else "unreliable"
        if quality != self.quality:
            events.append(QualityChange(self.stream_id, v.t_s, v.end_sample, v.reliable, "" if v.reliable else v.reason))
            self.quality = quality
        if not v.reliable:
            # One bad window does not end a rhythm (the unreliable line says why); it does reset the
            # count towards a new one, so an event always rests on consecutive good windows.
            self._candidate = (None, 0)
            return events
        label, count = self._candidate
        count = count + 1 if v.label == label else 1
        self._candidate = (v.label, count)
        if v.label != self.current and count >= self.settings.hysteresis:
            assert v.label is not None  # a reliable verdict has been classified (StreamHub.flush_items)
            events.append(RhythmChange(self.stream_id, v.t_s, v.end_sample, self.current, v.label, count,
                                       v.probs.get(v.label, 0.0)))
            self.current = v.label
        return events


@dataclass(eq=False)
class PendingWindows:
    """The place, in a deferring monitor's output, of windows that became due in a ``push``: the
    events :func:`~ecgedge.stream.ward.cut_pending` (or the monitor's next ``push``, ``restart`` or ``silence``) cuts
    there. ``limit_in`` / ``limit_out``: the source and model-rate samples that had arrived then."""

    monitor: BedMonitor
    limit_in: int
    limit_out: int
    items: list[Event] | None = None  # None until cut

    @property
    def cut(self) -> bool:
        return self.items is not None
