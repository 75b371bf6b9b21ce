"""One receiving session: bytes from a source -> frames -> one monitor per bed -> JSON records.

    bytes --FrameDecoder--> frames --SequenceTracker (per stream id)--> samples in mV      (ecgedge.bridge)
          --StreamHub (one BedMonitor per stream id, windows of all beds batched)--> events

Every record is a typed event of :mod:`ecgedge.stream.events`; the session counts from the events'
fields and hands out their ``to_json()``, a dict with a ``type`` (the CLI writes one JSON line each):

==================  ======================  ===========================================================================
``session``         ``SessionStart``        first (from :func:`~ecgedge.stream.run.stream_from_export`): export, precision, labels, hop, source
``stream_start``    ``StreamStart``         a bed's first frame: ``stream``, ``sample``, ``fs_hz``, ``leads``, ``simulated``
``window``          ``WindowVerdict``       one per hop: ``t`` (s), ``samples`` [start, end) and ``new`` [start, end) at
                                            the source rate, ``quality`` ``ok`` with ``label`` and ``probs``, or
                                            ``unreliable`` with ``reason`` (and ``leads`` for lead-off); with
                                            ``concealed_samples`` (and ``concealed_new``, those in ``new``) when it holds
                                            concealed samples
``device_label``    ``DeviceLabel``         the device's own label for a window (a label frame, ``ecgsim --classify``):
                                            ``samples`` [start, end), ``label``, int8 ``scores``, and the host's
                                            ``host_label`` / ``host_quality`` for the window ending at the same sample,
                                            ``agree``
``device_beats``    ``DeviceBeats``         the device's own beats (a beat frame, ``ecgsim --beats`` / ``--classify``):
                                            ``samples`` [start, end) decided, ``beats``, ``beat_flags``, ``leads``; where
                                            the host detects beats too, ``compared`` device beats of which ``agree`` have
                                            a host beat within one sample (the frame waits for the host's hop)
``heart_rate``      ``HeartRate``           one per hop, after its ``window`` (:mod:`~ecgedge.stream.rate`): ``hr_bpm`` (median of the
                                            last ``rr_count`` <= 8 RR intervals), ``irregularity``, the ``beats`` found since
                                            the previous hop (source samples) and their ``beat_flags``
``rate_alarm``      ``RateAlarm``           ``asystole``, ``extreme_bradycardia`` or ``extreme_tachycardia`` ``raised`` or
                                            ``cleared`` (hysteresis), ``technical`` when the signal is too poor to decide
                                            (``reason``); ``hr_bpm``, ``last_beat``, ``since_beat_s``
``rhythm_change``   ``RhythmChange``        a label held ``held_windows`` reliable windows: ``from``, ``to``, ``confidence``
``quality``         ``QualityChange``       the signal became ``ok`` or ``unreliable`` (``reason``)
``gap``             ``SampleGap``           samples [start, end) never arrived (``frames_lost``); the stream recovers;
                                            ``concealed`` true: they were interpolated and the filters ran on
``alert``           ``SignalAlert``         ``ecg_signal_inoperable`` ``raised`` (no classified window for
                                            ``inoperable_after_s``; ``dark_s``, ``reason``) or ``cleared`` (classified again)
``restart``         ``StreamRestart``       the device's sample index went back (reboot): tracking starts over
``format_change``   ``StreamFormatChange``  sampling rate, leads, format, gain or baseline changed (``changed``)
``dropped_frame``   ``DroppedFrame``        a repeated or late frame (``reason`` ``repeat`` / ``out_of_order``)
``decode_error``    ``UndecodedBytes``      bytes that were not a frame: ``kind`` (``bad_crc``, ...), ``detail``, ``offset``
``link``            ``LinkChange``          the link went ``down`` or came back ``up`` (``detail``)
``no_data``         ``NoData``              no frame from a bed for ``seconds`` of wall time (once per silence)
``stream_error``    ``StreamRefused``       a bed whose leads the model cannot use (its frames are counted, not classified)
``tee_error``       ``TeeFailed``           the ``--tee`` copy failed (``path``, ``detail``, ``bytes`` saved before): it is
                                            dropped, classification goes on, and the summary repeats it as ``tee_error``
``summary``         ``SessionSummary``      last: bytes, frames, decode errors by kind, and per stream the samples
                                            received / lost (of which concealed) / classified / unreliable / pending
==================  ======================  ===========================================================================

Samples are accounted for: per stream, window ``new`` spans and the gaps not concealed tile the
sample index from the first frame on (a concealed gap lies inside a ``new`` span), so (without
device restarts) ``received + lost == next_sample - first_sample`` and
``classified + unreliable + pending == received`` (pending: the last part of a hop that no window
has reached yet); concealed samples are lost samples, counted again in ``concealed``, never as
classified.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable

import numpy as np

from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import BeatFrame, DecodeError, DeviceFlag, Frame, LabelFlag, LabelFrame, mv_from_adc
from ecgedge.bridge.sequence import FormatChange, Gap, OutOfOrder, Repeat, Restart, SequenceTracker
from ecgedge.bridge.sources import LinkEvent
from ecgedge.bounds import problem as bound_problem
from ecgedge.errors import ShapeMismatch
from ecgedge.stream.events import (
    AlertState,
    DeviceBeats,
    DeviceLabel,
    DropReason,
    DroppedFrame,
    Event,
    LinkChange,
    NoData,
    RhythmChange,
    SampleGap,
    SessionSummary,
    SignalAlert,
    StreamCounts,
    StreamFormatChange,
    StreamRefused,
    StreamRestart,
    StreamStart,
    UndecodedBytes,
    WindowVerdict,
)
from ecgedge.stream.monitor import CALIBRATION_FLAG, SATURATED_FLAG
from ecgedge.stream.hub import StreamHub


# A bed that sends nothing for this long (wall time) gets one ``no_data`` record.
STALL_S = 2.0
# An open run (a bed's contiguous frames not yet pushed to its monitor) is pushed once it holds more
# than this many seconds of samples or this many frames, so a bed holds a bounded amount between
# flushes: a second of 12 leads at 500 Hz is 48 KiB. A monitor takes a chunk of any length (its rings
# hold a window and two hops, and it cuts windows hop by hop), so the bound is about memory only.
RUN_MAX_S = 1.0
RUN_MAX_FRAMES = 64
# Longest wait of a window for others to share its inference call: a hop is a second, so a tenth of
# it costs the bedside nothing and lets one core batch the beds whose windows fall in that time.
BATCH_DELAY_S = 0.1
# Device beats are compared with the host's beats within this many samples (the C detector gives the
# Python one's beats: tests/test_qrs_c.py).
BEAT_AGREE_SAMPLES = 1
# Host beats kept per bed for that comparison, and device beat frames waiting for the host's hop.
HOST_BEATS_KEPT = 256
DEVICE_BEATS_WAITING = 64


def host_beats_of(event) -> tuple[int, tuple[int, ...]] | None:
    """``(hop end sample, beats found since the previous hop)`` of a host heart-rate event (the monitor's
    beats, :mod:`ecgedge.stream.rate`), else None."""
    if getattr(event, "hr_bpm", _NO_RATE) is _NO_RATE or not hasattr(event, "beats"):
        return None
    return int(event.sample), tuple(int(b) for b in event.beats)


_NO_RATE = object()


@dataclass
class _Run:
    """Contiguous frames of one stream with the same lead-off, device flags and calibration, pushed as one chunk.

    ``gains_uv`` (µV per ADC unit) and ``baselines`` (ADC units): each lead's calibration; ``parts``: the
    frames' raw samples, converted to mV once, at the push. ``max_samples``: the samples per lead (source
    rate) past which it is pushed at once (:data:`RUN_MAX_S`).
    """

    first_sample: int
    next_sample: int
    lead_off: int
    flags: int
    frames_lost: int | None
    gains_uv: tuple[float, ...]
    baselines: tuple[int, ...]
    max_samples: int
    parts: list[np.ndarray] = field(default_factory=list)


class StreamSession:
    """Decode, track and classify the bytes of one source (any number of beds, by stream id).

    Args:
        hub: the :class:`StreamHub` with an activated runner; a monitor per bed is opened on its
            first frame from the frame's sampling rate and leads.
        on_frame: called with every frame delivered (for live views).
        stall_s: wall seconds without a frame before a bed gets a ``no_data`` record.
    """

    def __init__(self, hub: StreamHub, *, on_frame: Callable[[Frame], None] | None = None, stall_s: float = STALL_S):
        self.hub = hub
        self.on_frame = on_frame
        self.stall_s = stall_s
        self.decoder = FrameDecoder()
        self.tracker = SequenceTracker()
        self.counts: dict[Hashable, StreamCounts] = {}
        self.link_changes: dict[str, int] = {"up": 0, "down": 0}
        self._runs: dict[Hashable, _Run] = {}
        self._last_frame: dict[Hashable, float] = {}
        self._stalled: set[Hashable] = set()
        self._now = 0.0
        # Device labels meet the host's verdicts by window end sample: the host's recent verdicts
        # (end sample -> (label or None where the model did not run, quality)), and device labels
        # still waiting for theirs.
        self._host: dict[Hashable, dict[int, tuple[str | None, str]]] = {}
        self._device_waiting: dict[Hashable, list[DeviceLabel]] = {}
        # Device beats meet the host's beats once a host hop has decided the same samples: per bed, the
        # host's recent beats and the end of its last hop (None: the host detects no beats), and
        # device beat frames still waiting for that hop.
        self._host_beats: dict[Hashable, list[int]] = {}
        self._host_beats_end: dict[Hashable, int] = {}
        self._beats_waiting: dict[Hashable, list[DeviceBeats]] = {}

    # ---- input --------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float | None = None, *, flush: bool = True) -> list[dict]:
        """Bytes in any chunking -> the records they complete, in order.

        With ``flush=False`` nothing is returned: each bed's contiguous samples wait (at most
        :data:`RUN_MAX_S` of them) and go to its monitor in one chunk, and the windows they complete
        wait in the hub, so that the windows of several reads, and of several beds, go to the model
        in one batch: call :meth:`flush` within the latency you accept. A bed's records come out in
        the same order whatever the reads and flushes, and so do decode errors and link changes
        among all records; records of different beds between two of those come out bed by bed.
        """
        self._now = time.monotonic() if now is None else now
        for event in self.decoder.feed(data):
            self.dispatch(event)
        return self.flush() if flush else []

    def dispatch(self, event: Frame | LabelFrame | BeatFrame | DecodeError) -> None:
        """One decoded item of the wire (a sample, label or beat frame, or a decode error) into the
        session, in arrival order; its records wait for :meth:`flush`. :meth:`feed` calls it for each
        item its decoder yields; a gateway that decodes each connection itself (``ecgedge ward``) calls it
        with the frames of all its connections."""
        if isinstance(event, DecodeError):
            self._push_runs()  # what was decoded before the error comes out before it
            self.hub.note(UndecodedBytes(event.kind, event.detail, event.offset))
        elif isinstance(event, BeatFrame):
            self._beat_frame(event)
        elif isinstance(event, LabelFrame):
            self._push_run(event.stream_id)  # the samples before it go first
            self.hub.note(DeviceLabel(event.stream_id, event.end_sample / event.fs_hz, event.first_sample,
                                      event.end_sample, event.label_text, event.scores,
                                      bool(event.flags & LabelFlag.LEAD_OFF)))
        else:
            self._frame(event)

    def flush(self) -> list[dict]:
        """Push the samples waiting for their monitors, classify the windows waiting in the hub (one
        batch); their records and events, in order."""
        self._push_runs()
        return self._account(self.hub.flush_items())

    @property
    def pending(self) -> int:
        """Records waiting for :meth:`flush`, plus one per bed whose samples wait to go to its monitor
        (they may complete windows): 0 when a flush has nothing to do."""
        return self.hub.pending + len(self._runs)

    def link(self, event: LinkEvent, source: str = "") -> list[dict]:
        """Record a link change (the samples it costs show up as a gap when data resumes); flushes."""
        self._push_runs()  # the samples that came before it
        self.hub.note(LinkChange(event.state, event.detail, source))
        return self.flush()

    def tick(self, now: float | None = None) -> list[dict]:
        """Wall-clock checks: a ``no_data`` record for each bed silent for ``stall_s``, and the
        ``ecg_signal_inoperable`` alert for a bed silent long enough (:meth:`BedMonitor.silence`)."""
        now = time.monotonic() if now is None else now
        out: list[Event] = []
        for sid, last in self._last_frame.items():
            if sid not in self._stalled and now - last >= self.stall_s:
                self._stalled.add(sid)
                c = self.counts[sid]
                out.append(NoData(sid, c.next_sample / c.fs_hz, c.next_sample, now - last))
            monitor = self.hub.monitors.get(sid)
            if monitor is not None and sid in self._stalled:
                self._push_run(sid)  # the monitor counts the stream time of every sample received
                out += monitor.silence(now - last)
        return self._account(out)

    def _beat_frame(self, frame: BeatFrame) -> None:
        """The device's beats (a beat frame) as a :class:`DeviceBeats` event, after the samples before it."""
        self._push_run(frame.stream_id)
        c = self.counts.get(frame.stream_id)
        names = c.leads if c is not None else ()
        leads = tuple(names[i] if i < len(names) else str(i) for i in range(16) if frame.leads >> i & 1)
        self.hub.note(DeviceBeats(frame.stream_id, frame.end_sample / frame.fs_hz, frame.from_sample, frame.end_sample,
                                  frame.samples, frame.flags, leads))

    def _frame(self, frame: Frame) -> None:
        sid = frame.stream_id
        tracked = self.tracker.push(frame)
        frames_lost = None
        for e in tracked.events:
            if isinstance(e, Gap):
                frames_lost = e.frames_lost  # the monitor reports the gap when it sees the jump
            elif isinstance(e, (Repeat, OutOfOrder)):
                self._push_run(sid)
                reason = DropReason.repeat if isinstance(e, Repeat) else DropReason.out_of_order
                self.hub.note(DroppedFrame(sid, e.seq, e.first_sample, reason))
            elif isinstance(e, Restart):
                self._push_run(sid)
                self.hub.note(StreamRestart(sid, e.expected_sample, e.first_sample))
                if sid in self.hub.monitors:
                    self.hub.restart(sid, "restart")
            elif isinstance(e, FormatChange):
                self._push_run(sid)
                self.hub.note(StreamFormatChange(sid, e.first_sample, e.changed))
                if {"fs_hz", "lead_ids"} & set(e.changed):
                    if sid in self.hub.monitors:
                        self.hub.restart(sid, "format change")
                    self._open(frame, new=False)
        if tracked.frame is None:
            return
        if sid not in self.counts:
            self._open(frame, new=True)
        c = self.counts[sid]
        c.frames += 1
        c.received += frame.samples_per_lead
        c.next_sample = frame.end_sample
        self._last_frame[sid] = self._now
        self._stalled.discard(sid)
        if self.on_frame is not None:
            self.on_frame(frame)
        if c.refused:
            return
        flags = frame.device_flags & (CALIBRATION_FLAG | SATURATED_FLAG)
        run = self._runs.get(sid)
        if not (run and run.next_sample == frame.first_sample and run.lead_off == frame.lead_off
                and run.flags == flags and frames_lost is None and run.gains_uv == frame.gains_uv
                and run.baselines == frame.baselines):
            self._push_run(sid)
            run = self._runs[sid] = _Run(frame.first_sample, frame.first_sample, frame.lead_off, flags, frames_lost,
                                         frame.gains_uv, frame.baselines, int(RUN_MAX_S * frame.fs_hz))
        run.parts.append(frame.samples)
        run.next_sample = frame.end_sample
        if run.next_sample - run.first_sample > run.max_samples or len(run.parts) >= RUN_MAX_FRAMES:
            self._push_run(sid)

    def _open(self, frame: Frame, *, new: bool) -> None:
        """Start a bed's monitor from its frame's sampling rate and leads (and its counts, if ``new``)."""
        sid = frame.stream_id
        if new:
            self.counts[sid] = StreamCounts(sid, frame.fs_hz, frame.lead_ids, frame.first_sample)
            self.hub.note(StreamStart(sid, frame.first_sample, frame.fs_hz, frame.lead_ids, tuple(self.hub.model.leads),
                                      bool(frame.flags & DeviceFlag.SIMULATED)))
        c = self.counts[sid]
        c.fs_hz, c.leads, c.refused = frame.fs_hz, frame.lead_ids, ""
        try:
            # a rate no ECG device has (ecgedge.bounds): refused once, here, for as long as the bed announces it
            # (0.3 Hz made every 20-sample frame a minute of stream, each hop a window event: a flood)
            if why := bound_problem("announced sampling rate", frame.fs_hz):
                raise ShapeMismatch(f"stream {sid}: {why}")
            self.hub.open(sid, fs_in=frame.fs_hz, lead_names=frame.lead_ids, start_reason="starting up" if new else "format change")
        except ShapeMismatch as exc:
            self.hub.monitors.pop(sid, None)
            c.refused = str(exc)
            self.hub.note(StreamRefused(sid, str(exc)))

    def _push_runs(self) -> None:
        """Every bed's waiting samples to its monitor, beds in the order their runs began."""
        for sid in list(self._runs):
            self._push_run(sid)

    def _push_run(self, sid: Hashable) -> None:
        """The bed's waiting samples (if any) to its monitor, as one chunk."""
        run = self._runs.pop(sid, None)
        if run is None:
            return
        raw = run.parts[0] if len(run.parts) == 1 else np.concatenate(run.parts, axis=1)
        samples = mv_from_adc(raw, run.gains_uv, run.baselines)
        lead_off = [i for i in range(samples.shape[0]) if run.lead_off >> i & 1]
        self.hub.push(sid, samples, run.first_sample, lead_off, device_flags=run.flags, frames_lost=run.frames_lost)

    # ---- accounting ---------------------------------------------------------------------------

    def _matched(self, events: list[Event]) -> list[Event]:
        """Device labels filled with the host's verdict for the same window (same end sample), in order.

        A device label normally arrives after the host's verdict for its window (the device sends it
        after the frame holding the window's last sample); one that arrives first waits for it, and
        comes out without a host label once a later host window has been cut.
        """
        out: list[Event] = []
        for e in events:
            hop = host_beats_of(e)
            if hop is not None:
                out.append(e)
                out += self._host_hop(e.stream, *hop)  # type: ignore[union-attr]
                continue
            if isinstance(e, DeviceBeats):
                out += self._device_beats(e)
                continue
            if isinstance(e, WindowVerdict):
                host = self._host.setdefault(e.stream, {})
                host[e.end_sample] = (e.label, "ok" if e.reliable else "unreliable")
                if len(host) > 64:
                    del host[next(iter(host))]
                out.append(e)
                waiting = self._device_waiting.get(e.stream, [])
                while waiting and waiting[0].end_sample <= e.end_sample:
                    out.append(self._with_host(waiting.pop(0)))
            elif isinstance(e, DeviceLabel):
                if e.end_sample in self._host.get(e.stream, {}):
                    out.append(self._with_host(e))
                else:
                    self._device_waiting.setdefault(e.stream, []).append(e)
            else:
                out.append(e)
        return out

    def _host_hop(self, sid: Hashable, end: int, beats: tuple[int, ...]) -> list[Event]:
        """A host hop's beats (decided up to ``end``): kept, and the device beat frames it has caught up with, compared."""
        kept = self._host_beats.setdefault(sid, [])
        kept += beats
        del kept[:-HOST_BEATS_KEPT]
        self._host_beats_end[sid] = end
        waiting = self._beats_waiting.get(sid, [])
        out: list[Event] = []
        while waiting and waiting[0].end_sample <= end:
            out.append(self._compared(waiting.pop(0)))
        return out

    def _device_beats(self, e: DeviceBeats) -> list[Event]:
        """A device beat frame: compared at once where the host's beats have reached its end, else waits
        (in order) for the host's next hop; out uncompared where the host detects no beats."""
        waiting = self._beats_waiting.setdefault(e.stream, [])
        if not waiting and self._host_beats_end.get(e.stream, -1) >= e.end_sample:
            return [self._compared(e)]
        waiting.append(e)
        if len(waiting) > DEVICE_BEATS_WAITING:  # no host hop for a long time (the host detects no beats)
            return [waiting.pop(0)]
        return []

    def _compared(self, e: DeviceBeats) -> DeviceBeats:
        host = self._host_beats.get(e.stream, [])
        agree = sum(any(abs(d - h) <= BEAT_AGREE_SAMPLES for h in host) for d in e.samples)
        return replace(e, compared=len(e.samples), agree=agree)

    def _with_host(self, e: DeviceLabel) -> DeviceLabel:
        host = self._host.get(e.stream, {})
        if e.end_sample not in host:
            return e
        label, quality = host[e.end_sample]
        return replace(e, host_label=label, host_quality=quality)

    def _account(self, events: list[Event]) -> list[dict]:
        """Count events into their beds' :class:`StreamCounts`, from their fields; their JSON records, in order."""
        events = self._matched(events)
        for e in events:
            if isinstance(e, LinkChange):
                self.link_changes[e.state] = self.link_changes.get(e.state, 0) + 1
            c = self.counts.get(getattr(e, "stream", None))  # session-wide events have no stream
            if c is None:
                continue
            if isinstance(e, WindowVerdict):
                n = e.end_sample - e.new_start - e.concealed_new  # concealed samples are lost ones
                if e.reliable:
                    c.classified += n
                    c.windows_ok += 1
                else:
                    c.unreliable += n
                    c.windows_unreliable += 1
            elif isinstance(e, SampleGap):
                c.lost += e.samples
                c.concealed += e.samples if e.concealed else 0
            elif isinstance(e, SignalAlert):
                if e.state is AlertState.raised:
                    c.inoperable_alerts += 1
            elif isinstance(e, RhythmChange):
                c.rhythm_changes += 1
                c.rhythm = e.rhythm
            elif isinstance(e, DeviceLabel):
                c.device_labels += 1
                if e.agree is not None:
                    c.device_compared += 1
                    c.device_agree += e.agree
            elif isinstance(e, DeviceBeats):
                c.device_beats += len(e.samples)
                if e.compared is not None and e.agree is not None:
                    c.device_beats_compared += e.compared
                    c.device_beats_agree += e.agree
            elif isinstance(e, DroppedFrame):
                c.dropped_frames += 1
            elif isinstance(e, StreamRestart):
                c.restarts += 1
            elif isinstance(e, StreamFormatChange):
                c.format_changes += 1
        return [e.to_json() for e in events]

    def summary_event(self, *, source: str | None = None, ended: str | None = None, elapsed_s: float | None = None,
                      tee_error: str = "") -> SessionSummary:
        """The final event: bytes, frames, decode errors by kind, link drops, a snapshot of each bed's counts;
        ``source``, ``ended``, ``elapsed_s`` (wall seconds) and ``tee_error`` when run from a source."""
        self._push_runs()  # each monitor's pending samples count every sample received
        stats = self.decoder.stats
        errors = {k: v for k, v in stats.items() if k not in ("bytes", "frames") and v}
        streams = []
        for sid, waiting in self._device_waiting.items():  # device labels no host window met: counted, never compared
            if sid in self.counts:
                self.counts[sid].device_labels += len(waiting)
            waiting.clear()
        for sid, frames in self._beats_waiting.items():  # device beats no host hop caught up with: counted only
            if sid in self.counts:
                self.counts[sid].device_beats += sum(len(f.samples) for f in frames)
            frames.clear()
        for sid, c in self.counts.items():
            monitor = self.hub.monitors.get(sid)
            pending = monitor.pending_samples if monitor is not None else c.received - c.classified - c.unreliable
            streams.append(replace(c, pending=pending))
        return SessionSummary(stats["bytes"], stats["frames"], errors, self.link_changes.get("down", 0), tuple(streams),
                              source=source, ended=ended, elapsed_s=elapsed_s, tee_error=tee_error)

    def summary(self, **run) -> dict:
        """The summary record (:meth:`summary_event` rendered)."""
        return self.summary_event(**run).to_json()
