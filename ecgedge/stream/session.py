"""One receiving session: bytes from a source -> frames -> one monitor per bed -> JSON records.

    bytes --FrameDecoder--> frames --SequenceTracker (per stream id)--> samples in mV      (ecgedge.bridge)
          --StreamHub (one BedMonitor per stream id, windows of all beds batched)--> events

Every record is a typed event of :mod:`ecgedge.stream.events`; the session counts from the events'
fields and hands out their ``to_json()``, a dict with a ``type`` (the CLI writes one JSON line each):

==================  ======================  ===========================================================================
``session``         ``SessionStart``        first (from :func:`stream_from_export`): export, precision, labels, hop, source
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
from typing import TYPE_CHECKING, Callable, Hashable, Iterable, Sequence

import numpy as np

from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import DecodeError, DeviceFlag, Frame, LabelFlag, LabelFrame, mv_from_adc
from ecgedge.bridge.sequence import FormatChange, Gap, OutOfOrder, Repeat, Restart, SequenceTracker
from ecgedge.bridge.sources import ByteSource, LinkEvent
from ecgedge.config import Backend, Precision
from ecgedge.errors import ArtefactError, ConfigError, ShapeMismatch, is_storage_error, storage_error
from ecgedge.manifest import passed_over, precision_for
from ecgedge.stream.events import (
    AlertState,
    DeviceLabel,
    DropReason,
    DroppedFrame,
    Event,
    LinkChange,
    NoData,
    RhythmChange,
    SampleGap,
    SessionStart,
    SessionSummary,
    SignalAlert,
    StreamCounts,
    StreamFormatChange,
    StreamRefused,
    StreamRestart,
    StreamStart,
    TeeFailed,
    UndecodedBytes,
    WindowVerdict,
)
from ecgedge.stream.monitor import CALIBRATION_FLAG, SATURATED_FLAG, ModelSpec, StreamSettings
from ecgedge.stream.hub import StreamHub

if TYPE_CHECKING:
    from ecgedge.runtime.base import Runner
    from ecgedge.runtime.triton_runner import TritonRunner

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
            if isinstance(event, DecodeError):
                self._push_runs()  # what was decoded before the error comes out before it
                self.hub.note(UndecodedBytes(event.kind, event.detail, event.offset))
            elif isinstance(event, LabelFrame):
                self._push_run(event.stream_id)  # the samples before it go first
                self.hub.note(DeviceLabel(event.stream_id, event.end_sample / event.fs_hz, event.first_sample,
                                          event.end_sample, event.label_text, event.scores,
                                          bool(event.flags & LabelFlag.LEAD_OFF)))
            else:
                self._frame(event)
        return self.flush() if flush else []

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
        for sid, c in self.counts.items():
            monitor = self.hub.monitors.get(sid)
            pending = monitor.pending_samples if monitor is not None else c.received - c.classified - c.unreliable
            streams.append(replace(c, pending=pending))
        return SessionSummary(stats["bytes"], stats["frames"], errors, self.link_changes.get("down", 0), tuple(streams),
                              source=source, ended=ended, elapsed_s=elapsed_s, tee_error=tee_error)

    def summary(self, **run) -> dict:
        """The summary record (:meth:`summary_event` rendered)."""
        return self.summary_event(**run).to_json()


def run_session(source: ByteSource, session: StreamSession, emit: Callable[[dict], None], *,
                watchers: Sequence = (), max_outage_s: float | None = None, idle_s: float = 0.2,
                batch_delay_s: float = BATCH_DELAY_S, tee=None) -> dict:
    """Read ``source`` until it ends (or has sent nothing for ``max_outage_s``), emitting every record.

    ``source`` must be open already (so a device that cannot be reached fails before anything is
    emitted). Windows wait up to ``batch_delay_s`` (or until the link is idle) so that those of
    many beds share one inference call. ``watchers`` (live views) get ``update(records, now)`` and
    ``close()``. ``tee`` is a binary file that receives every byte read; when writing it fails (a
    full disk) a ``tee_error`` record says so, the copy is dropped and the stream goes on. The
    summary record is emitted last (also after Ctrl-C or an error, which then propagate; its
    ``ended`` says which) and returned.
    """
    started = last_data = time.monotonic()
    waiting_since = None
    ended = "end of stream"
    tee_error, tee_bytes = "", 0

    def out(records: list[dict], now: float) -> None:
        for r in records:
            emit(r)
        for w in watchers:
            w.update(records, now)

    try:
        for item in source.chunks(idle_s):
            now = time.monotonic()
            records = []
            if isinstance(item, LinkEvent):
                records = session.link(item, source.name)
            elif item:
                if tee is not None:
                    try:
                        _write_all(tee, item)
                        tee_bytes += len(item)
                    except OSError as exc:
                        if not is_storage_error(exc):
                            raise
                        path = str(getattr(tee, "name", "the --tee file"))
                        tee_error = (f"{storage_error(exc, f'write the --tee copy {path}')}; the copy is dropped after "
                                     f"{tee_bytes} bytes, classification goes on")
                        records.append(TeeFailed(path, tee_error, tee_bytes).to_json())
                        tee = None  # dropped; the caller closes the file
                session.feed(item, now, flush=False)
                last_data = now
            if session.pending:
                waiting_since = now if waiting_since is None else waiting_since
                if not item or now - waiting_since >= batch_delay_s:
                    records += session.flush()
            if not session.pending:
                waiting_since = None
            out(records + session.tick(now), now)
            if max_outage_s is not None and now - last_data >= max_outage_s:
                ended = f"no data for {max_outage_s:g} s"
                break
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    except Exception as exc:  # not handled here: the summary says why the stream stopped, the error propagates
        ended = f"failed: {exc}"
        raise
    finally:
        source.close()
        now = time.monotonic()
        out(session.flush(), now)
        for w in watchers:
            w.close()
        summary = session.summary(source=source.name, ended=ended, elapsed_s=round(now - started, 3), tee_error=tee_error)
        emit(summary)
    return summary


@dataclass(frozen=True)
class StreamConfig:
    """``ecgedge stream``: which model, which source, how to classify and what to show.

    Args:
        export: export folder (``manifest.json``).
        source: source spec (:func:`~ecgedge.bridge.sources.source_from_spec`).
        settings: hop, hysteresis, gap concealment, inoperable alert.
        precision, backend, threads: which artefact runs where (``threads`` intra-op threads);
            ``precision`` None runs what :func:`~ecgedge.manifest.precision_for` picks (:func:`stream_precision`).
        sim_args: extra ecgsim options for a ``wfdb:`` source.
        max_outage_s: end when no byte has arrived for this long (None: wait for ever, as a
            bedside monitor does; stdin and wfdb sources end with their stream).
        show: draw the terminal strip chart (on ``show_to``); ``show_png``: folder for a PNG strip
            per event; ``show_lead``: which lead they draw.
        tee: file that receives every byte read (replay it with ``--source stdin``).
        server: ``grpc://HOST:PORT`` of a Triton server that runs the model instead of this process
            (:class:`~ecgedge.runtime.triton_runner.TritonRunner`); ``server_model`` its model name
            (default: the export's Triton model name).
        public_key: Ed25519 public key (PEM file); when given, an export whose ``manifest.sig``
            is missing or does not match it is refused (:func:`~ecgedge.manifest.load_manifest`).
    """

    export: str
    source: str
    settings: StreamSettings = StreamSettings()
    precision: Precision | None = None
    backend: Backend = Backend.ort_cpu
    threads: int | None = 1
    sim_args: tuple[str, ...] = ()
    max_outage_s: float | None = None
    show: bool = False
    show_png: str | None = None
    show_lead: str = "II"
    tee: str | None = None
    server: str | None = None
    server_model: str | None = None
    public_key: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "precision", Precision(self.precision) if self.precision else None)
        object.__setattr__(self, "backend", Backend(self.backend))
        object.__setattr__(self, "sim_args", tuple(self.sim_args))
        if self.server and self.precision:
            raise ConfigError("--precision picks a local artefact; with --server the server's model runs "
                              "(the export's triton/ repository says which)")
        if self.server_model and not self.server:
            raise ConfigError("--server-model names a model on a Triton server: give --server grpc://HOST:PORT too")


def stream_precision(manifest, backend: Backend) -> tuple[Precision, str]:
    """The precision a stream runs when none is asked for (:func:`~ecgedge.manifest.precision_for`), and
    a note for the session record when it is not the backend's first choice ("int8 is rejected in the
    export; running the fp32 artefact"). A stream never runs an artefact the gate rejected unless
    asked by name (and then the runtime refuses it).
    """
    try:
        precision = precision_for(manifest, backend)
    except ArtefactError as exc:
        raise ArtefactError(f"{exc}; name one with --precision to run it anyway") from None
    skipped = passed_over(manifest, backend, precision)
    return precision, f"{skipped} in the export; running the {precision.value} artefact" if skipped else ""


def stream_from_export(cfg: StreamConfig, emit: Callable[[dict], None], *, show_to=None) -> dict:
    """Classify the beds of ``cfg.source`` live with the model of ``cfg.export``; returns the summary.

    Loads the manifest (hashes verified), opens the source (a :class:`StreamError` if the device
    cannot be reached), runs :func:`run_session` and emits every record through ``emit``: first a
    ``session`` record (model, precision, settings, source), last the summary.
    """
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime import runner_from_export
    from ecgedge.stream.show import views_from_options
    from ecgedge.bridge.sources import source_from_spec

    manifest = load_manifest(cfg.export, public_key=cfg.public_key)
    source = source_from_spec(cfg.source, sim_args=cfg.sim_args)
    runner: Runner
    triton: TritonRunner | None = None
    if cfg.server:
        from ecgedge.runtime.triton_runner import triton_runner_from_export

        runner = triton = triton_runner_from_export(manifest, cfg.server, cfg.server_model)
        precision, why = runner.precision, ""
    else:
        precision, why = (cfg.precision, "") if cfg.precision else stream_precision(manifest, cfg.backend)
        runner = runner_from_export(cfg.export, precision, cfg.backend, threads=cfg.threads, manifest=manifest, verify=False)
    spec = ModelSpec.from_manifest(manifest)
    watchers = views_from_options(show=cfg.show, png_dir=cfg.show_png, lead=cfg.show_lead, out=show_to)
    try:
        # Unbuffered: a full disk shows at the write that hits it (reported, the copy dropped), not
        # at close, after the summary.
        tee = open(cfg.tee, "wb", buffering=0) if cfg.tee else None
    except OSError as exc:
        raise storage_error(exc, f"open the --tee file {cfg.tee}") from None
    try:
        with runner:
            session = StreamSession(StreamHub(runner, spec, cfg.settings), on_frame=_fan_out(watchers))
            source.open()
            start = SessionStart(str(manifest.folder), manifest.data.get("name"), precision.value if precision else None,
                                 "triton" if cfg.server else cfg.backend.value, tuple(spec.labels), tuple(spec.leads),
                                 round(spec.window_samples / spec.preprocess.fs_hz, 3), cfg.settings.hop_s,
                                 cfg.settings.hysteresis, source.name, note=why,
                                 **(dict(server=cfg.server, server_model=triton.model, server_platform=triton.platform)
                                    if triton is not None else {}))
            emit(start.to_json())
            return run_session(source, session, emit, watchers=watchers, max_outage_s=cfg.max_outage_s, tee=tee)
    finally:
        if tee is not None:
            tee.close()


def _write_all(f, data: bytes) -> None:
    """All of ``data`` to ``f`` (an unbuffered file may take part of it per call)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def refused_all(summary: dict) -> str:
    """Why the stream classified nothing because every bed was refused (their leads or rate do not
    fit the model), for a non-zero exit; ``""`` when any bed was classified or none came."""
    streams = summary.get("streams") or []
    if not streams or not all(s.get("refused") for s in streams):
        return ""
    return "every stream was refused: " + "; ".join(s["refused"] for s in streams)  # each names its stream


def _fan_out(watchers: Iterable) -> Callable[[Frame], None] | None:
    watchers = list(watchers)
    if not watchers:
        return None

    def on_frame(frame: Frame) -> None:
        for w in watchers:
            w.frame(frame)

    return on_frame

