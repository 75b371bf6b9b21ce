"""Bytes of many device connections -> one session's records, bed by bed, and the live strips.

The engine runs in a thread of its own (classification is CPU work; the gateway's event loop
keeps reading sockets and serving the page meanwhile). Its inbox gets, in arrival order,
``open`` / ``data`` / ``close`` messages per connection; it decodes each connection with its own
:class:`~ecgedge.bridge.decoder.FrameDecoder` (a frame never straddles two connections), names
the bed of each stream id (:meth:`Engine._bed`), and feeds the frames, keyed by bed, to ONE
:class:`WardSession`: the :class:`~ecgedge.stream.session.StreamSession` of ``ecgedge stream``
over one :class:`~ecgedge.stream.hub.StreamHub`, so a bed gets the records it would get alone
(``tests/test_ward.py`` proves it). Windows wait up to
:data:`~ecgedge.stream.session.BATCH_DELAY_S` so that those of many beds share inference calls,
as ``ecgedge stream`` does.

Out come :class:`Batch` es (records in order, with the wall time the data that completed each
arrived, for latency) for the writer, and every :data:`STRIP_EVERY_S` the live strip of each bed
(one lead, decimated for display) for the page. numpy + the stream package; never torch.
"""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

import numpy as np

from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import BeatFrame, DecodeError, Frame, LabelFrame
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.session import BATCH_DELAY_S, StreamSession
from ecgedge.ward.config import Limits
from ecgedge.ward.events import BedAssigned, BedLink, DeviceDropped, DeviceErrors, LinkState

#: How often the live strips go to the page (s): four updates a second draw a smooth 25-mm/s sweep.
STRIP_EVERY_S = 0.25
#: How often the wall-clock checks run (no data, the inoperable alert, error reports), s.
TICK_S = 0.2
#: The lead the strip shows when the device sends it (a central station's default ECG lead).
DISPLAY_LEAD = "II"
#: Arrival times kept per bed for latency (about 10 s of 40-ms frames).
ARRIVALS_KEPT = 256


class WardSession(StreamSession):
    """``ecgedge stream``'s session, fed decoded frames keyed by bed instead of bytes of one link.

    :meth:`feed_frames` hands frames someone else decoded (each connection has its own decoder) to
    :meth:`StreamSession.dispatch`, as :meth:`StreamSession.feed` does; decode errors stay with the
    connection that sent them.
    """

    def feed_frames(self, items: Iterable[Frame | LabelFrame | BeatFrame], now: float) -> None:
        """Frames (``stream_id``: the bed) in arrival order; their records wait for :meth:`flush`."""
        self._now = now
        for event in items:
            self.dispatch(event)

    def note_bed(self, bed: Hashable, event) -> None:
        """A gateway event about one bed, in order after the samples that bed sent before it."""
        self._push_run(bed)
        self.hub.note(event)


def rekeyed(frame, bed: str):
    """The frame with ``stream_id`` set to the bed's name (a shallow copy: the decoder's frame stays as it came)."""
    out = object.__new__(type(frame))
    out.__dict__.update(frame.__dict__, stream_id=bed)  # frozen: set past __setattr__, as Frame._from_wire does
    return out


@dataclass
class Batch:
    """Records of one flush, in order; ``arrived[i]``: wall time (``time.time()``) the bytes that
    completed record ``i`` arrived (None: a record no sample completes); ``strips``: strip chunks
    for the database; ``made``: wall time the engine handed it over."""

    records: list[dict]
    arrived: list[float | None]
    strips: list[dict] = field(default_factory=list)
    made: float = 0.0


@dataclass
class _Conn:
    id: int
    peer: str
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    beds: dict[int, str] = field(default_factory=dict)
    frames: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    errors_in_window: int = 0
    window_start: float = 0.0
    dropped: bool = False


@dataclass
class _Strip:
    """One bed's display lead: raw rows waiting (one contiguous run), the live samples for the page
    and the chunk for the database, decimated by ``stride`` at absolute sample indices."""

    lead: int
    lead_name: str
    stride: int
    fs: float  # after decimation
    gain_uv: float
    baseline: int
    raw: list = field(default_factory=list)  # rows of the display lead since the last render
    raw_first: int = -1  # source sample of raw[0]
    next_sample: int = -1  # source sample the next frame should start at
    live: list[int] = field(default_factory=list)
    live_first: int = -1  # decimated index of live[0]
    chunk: list[int] = field(default_factory=list)
    chunk_first: int = -1
    chunk_wall: float = 0.0


class Engine:
    """Decode, name beds, classify and account for every device connection of a ward.

    Args:
        hub: the :class:`StreamHub` (activated runner, model, settings) every bed shares.
        session_id: the database's number for this gateway run (in generated bed names and records).
        deliver: called (in the engine thread) with each :class:`Batch`; must not block for long.
        live_strips: called with a list of strip messages (``{"type": "strip", ...}``) every :data:`STRIP_EVERY_S`.
        drop: called with (connection id, reason) when a connection must be closed (garbage).
        limits: the decode-error bounds of :class:`~ecgedge.ward.config.Limits`.
        display_fs_hz, strip_chunk_s: the strip's rate and database chunk length.
    """

    def __init__(self, hub: StreamHub, session_id: int, deliver: Callable[[Batch], None], *,
                 live_strips: Callable[[list[dict]], None] = lambda s: None,
                 drop: Callable[[int, str], None] = lambda c, r: None, on_error: Callable[[BaseException], None] | None = None,
                 limits: Limits = Limits(),
                 display_fs_hz: float = 250.0, strip_chunk_s: float = 10.0, batch_delay_s: float = BATCH_DELAY_S):
        self.session = WardSession(hub, on_frame=self._on_frame)
        self.session_id = session_id
        self.deliver, self.live_strips, self.drop, self.on_error = deliver, live_strips, drop, on_error
        self.limits = limits
        self.display_fs_hz, self.strip_chunk_s, self.batch_delay_s = display_fs_hz, strip_chunk_s, batch_delay_s
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.conns: dict[int, _Conn] = {}
        self.holder: dict[str, int] = {}  # bed -> connection carrying it now
        self.known: set[str] = set()  # beds seen in this run
        self._strips: dict[str, _Strip] = {}
        self._arrivals: dict[str, deque] = {}
        self._arrival_now = 0.0
        self._strip_chunks: list[dict] = []
        self.cpu_s = {"decode": 0.0, "classify": 0.0}
        self._thread: threading.Thread | None = None

    # ---- the gateway's side (any thread) ---------------------------------------------------------

    def open(self, conn: int, peer: str) -> None:
        self.inbox.put(("open", conn, peer))

    def data(self, conn: int, data: bytes, arrived: float, done: Callable[[int], None] | None = None) -> None:
        """Bytes of a connection (``arrived``: ``time.time()`` when read); ``done(len)`` once decoded."""
        self.inbox.put(("data", conn, data, arrived, done))

    def close(self, conn: int, reason: str, *, dropped: bool = False) -> None:
        """The connection ended (``reason``); ``dropped``: the gateway closed it for breaking a limit."""
        self.inbox.put(("close", conn, reason, dropped))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_reporting, name="ward-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.inbox.put(("stop",))
        if self._thread is not None:
            self._thread.join(timeout)

    # ---- the engine thread ------------------------------------------------------------------------

    def _run_reporting(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a bug (or a model that fails): the gateway must stop, not go quiet
            if self.on_error is None:
                raise
            self.on_error(exc)

    def run(self) -> None:
        waiting_since: float | None = None
        last_tick = last_strip = time.monotonic()
        stopping = False
        backlog: deque = deque()
        while not stopping:
            if not backlog:
                try:
                    backlog.append(self.inbox.get(timeout=0.02))
                except queue.Empty:
                    pass
            idle = not backlog
            while True:
                try:
                    backlog.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            t0 = time.thread_time()
            # Messages are handled for at most half a batch delay at a time, so that a backlog (more
            # beds than the core keeps up with) still gets its windows flushed and its stop heard.
            budget = now + self.batch_delay_s / 2
            while backlog:
                m = backlog.popleft()
                if m[0] == "stop":
                    stopping = True
                    break
                self._handle(m, now)
                if time.monotonic() > budget:
                    break
            t1 = time.thread_time()
            self.cpu_s["decode"] += t1 - t0
            now = time.monotonic()
            records: list[dict] = []
            if self.session.pending:
                waiting_since = now if waiting_since is None else waiting_since
                if idle or stopping or now - waiting_since >= self.batch_delay_s:
                    records += self.session.flush()
            if not self.session.pending:
                waiting_since = None
            if now - last_tick >= TICK_S or stopping:
                last_tick = now
                records += self.session.tick(now)
                records += self._error_reports(now)
            self.cpu_s["classify"] += time.thread_time() - t1
            if stopping:
                for conn in list(self.conns):
                    self._close(conn, "the gateway stopped")
                records += self.session.flush()
                self._cut_chunks(force=True)
            if records or self._strip_chunks:
                self._deliver(records)
            if now - last_strip >= STRIP_EVERY_S:
                last_strip = now
                self._send_live()
        for m in backlog:  # data after the stop is dropped; its done() callbacks still run
            if m[0] == "data" and m[4] is not None:
                m[4](len(m[2]))

    def _deliver(self, records: list[dict]) -> None:
        arrived = [self._arrival_of(r) for r in records]
        chunks, self._strip_chunks = self._strip_chunks, []
        self.deliver(Batch(records, arrived, chunks, time.time()))

    def _handle(self, m: tuple, now: float) -> None:
        kind = m[0]
        if kind == "open":
            self.conns[m[1]] = _Conn(m[1], m[2], window_start=now)
        elif kind == "close":
            conn = self.conns.get(m[1])
            if m[3] and conn is not None:
                self._drop(conn, m[2])
            self._close(m[1], m[2])
        elif kind == "data":
            _, cid, data, arrived, done = m
            conn = self.conns.get(cid)
            if conn is not None and not conn.dropped:
                self._arrival_now = arrived
                self._decode(conn, data, now)
            if done is not None:
                done(len(data))

    def _decode(self, conn: _Conn, data: bytes, now: float) -> None:
        frames = []
        for event in conn.decoder.feed(data):
            if isinstance(event, DecodeError):
                conn.errors[event.kind.value] = conn.errors.get(event.kind.value, 0) + 1
                conn.errors_in_window += 1
                continue
            bed = self._bed(conn, event.stream_id)
            if bed is None:
                continue
            conn.frames += 1
            frames.append(rekeyed(event, bed))
        if frames:
            self.session.feed_frames(frames, now)
        if conn.errors_in_window > self.limits.max_decode_errors:
            self._drop(conn, f"garbage: {conn.errors_in_window} decode errors within {self.limits.error_report_s:g} s")

    def _bed(self, conn: _Conn, stream_id: int) -> str | None:
        """The bed a connection's stream id feeds: the stream id itself when it is not 0 and no
        other connection holds it, else a name the gateway makes (``s{session}c{connection}[-{id}]``)
        and says so (a ``bed_assigned`` record)."""
        bed = conn.beds.get(stream_id)
        if bed is not None:
            return bed
        if len(conn.beds) >= self.limits.max_beds_per_connection:
            self._drop(conn, f"more than {self.limits.max_beds_per_connection} stream ids on one connection")
            return None
        name = str(stream_id)
        if stream_id == 0 or self.holder.get(name, conn.id) != conn.id:
            reason = ("the device sent stream id 0 (not configured)" if stream_id == 0
                      else f"stream id {stream_id} is already connected (connection {self.holder[name]})")
            name = f"s{self.session_id}c{conn.id}" + (f"-{stream_id}" if stream_id else "")
            self.session.note_bed(name, BedAssigned(name, stream_id, conn.peer, reason, self.session_id))
        conn.beds[stream_id] = name
        self.holder[name] = conn.id
        detail = "reconnected" if name in self.known else "connected"
        self.known.add(name)
        self.session.note_bed(name, BedLink(name, LinkState.up, detail, conn.peer, conn.id, self.session_id))
        return name

    def _drop(self, conn: _Conn, reason: str) -> None:
        if conn.dropped:
            return
        conn.dropped = True
        self.session.hub.note(DeviceDropped(conn.peer, reason, conn.id, self.session_id, tuple(conn.beds.values()),  # type: ignore[arg-type]
                                            sum(conn.errors.values()), conn.decoder.stats["bytes"]))
        self.drop(conn.id, reason)

    def _close(self, cid: int, reason: str) -> None:
        conn = self.conns.pop(cid, None)
        if conn is None:
            return
        if conn.errors_in_window:
            self._report_errors(conn)
        for bed in conn.beds.values():
            if self.holder.get(bed) == cid:
                del self.holder[bed]
                self.session.note_bed(bed, BedLink(bed, LinkState.down, reason, conn.peer, cid, self.session_id))

    def _error_reports(self, now: float) -> list[dict]:
        for conn in self.conns.values():
            if now - conn.window_start >= self.limits.error_report_s:
                if conn.errors_in_window:
                    self._report_errors(conn)
                conn.window_start, conn.errors_in_window = now, 0
        return []

    def _report_errors(self, conn: _Conn) -> None:
        self.session.hub.note(DeviceErrors(conn.peer, conn.id, self.session_id, dict(conn.errors),  # type: ignore[arg-type]
                                           tuple(conn.beds.values())))
        conn.errors = {}

    # ---- latency and strips -------------------------------------------------------------------------

    def _arrival_of(self, record: dict) -> float | None:
        """Wall time the frame holding the record's last sample arrived (None: no sample, or forgotten)."""
        bed = record.get("stream")
        arrivals = self._arrivals.get(bed) if isinstance(bed, str) else None
        if not arrivals:
            return None
        sample = record.get("samples", [None, None])[1] if "samples" in record else record.get("sample")
        if not isinstance(sample, int):
            return None
        ends = [e for e, _ in arrivals]
        i = bisect.bisect_left(ends, sample)
        return arrivals[i][1] if i < len(arrivals) else None

    def _on_frame(self, frame: Frame) -> None:
        # Per frame only bookkeeping: the display lead's samples are decimated and scaled a run at
        # a time (:meth:`_render`), four times a second, not frame by frame.
        bed = str(frame.stream_id)
        arrivals = self._arrivals.get(bed)
        if arrivals is None:
            arrivals = self._arrivals[bed] = deque(maxlen=ARRIVALS_KEPT)
        if arrivals and arrivals[-1][0] >= frame.end_sample:
            arrivals.clear()  # the device restarted its sample index
        arrivals.append((frame.end_sample, self._arrival_now))
        strip = self._strips.get(bed)
        lead = strip.lead if strip is not None else -1
        if strip is None or lead >= frame.n_leads or strip.lead_name != frame.lead_ids[lead] \
                or strip.stride != max(1, round(frame.fs_hz / self.display_fs_hz)) \
                or strip.gain_uv != frame.gains_uv[lead] or strip.baseline != frame.baselines[lead]:
            if strip is not None:
                self._render(bed, strip, cut=True)
            lead = frame.lead_ids.index(DISPLAY_LEAD) if DISPLAY_LEAD in frame.lead_ids else 0
            stride = max(1, round(frame.fs_hz / self.display_fs_hz))
            strip = self._strips[bed] = _Strip(lead, frame.lead_ids[lead], stride, frame.fs_hz / stride, frame.gains_uv[lead],
                                               frame.baselines[lead])
        elif frame.first_sample != strip.next_sample:  # a gap or a restart: what came before is drawn and cut there
            self._render(bed, strip, cut=True)
        if not strip.raw:
            strip.raw_first = frame.first_sample
            if not strip.chunk:
                strip.chunk_wall = self._arrival_now - frame.samples_per_lead / frame.fs_hz
        strip.raw.append(frame.samples[lead])
        strip.next_sample = frame.end_sample

    def _render(self, bed: str, strip: _Strip, *, cut: bool = False) -> None:
        """Decimate and scale the strip's waiting rows into its live samples and database chunk;
        ``cut``: the run ends here (a gap, a restart, a new format): send and store what it holds."""
        if strip.raw:
            raw = strip.raw[0] if len(strip.raw) == 1 else np.concatenate(strip.raw)
            first = -(-strip.raw_first // strip.stride) * strip.stride  # the first kept source sample
            kept = raw[first - strip.raw_first::strip.stride]
            uv = np.rint((kept.astype(np.float64) - strip.baseline) * strip.gain_uv)
            values = np.clip(uv, -32767, 32767).astype(np.int64).tolist()
            index = first // strip.stride
            if not strip.live:
                strip.live_first = index
            if not strip.chunk:
                strip.chunk_first = index
            strip.live += values
            strip.chunk += values
            # the next render starts where this one's stride left off
            strip.raw = []
            if len(strip.chunk) >= self.strip_chunk_s * strip.fs:
                self._cut_chunk(bed, strip)
        if cut:
            self._cut_chunk(bed, strip)
            if strip.live:
                self.live_strips([self._strip_message(bed, strip)])

    def _cut_chunk(self, bed: str, strip: _Strip) -> None:
        if strip.chunk:
            self._strip_chunks.append({"bed": bed, "ts": strip.chunk_wall, "first": strip.chunk_first, "fs": strip.fs,
                                       "lead": strip.lead_name,
                                       "uv": np.asarray(strip.chunk, dtype="<i2").tobytes()})
            strip.chunk = []
            strip.chunk_wall = self._arrival_now

    def _cut_chunks(self, force: bool = False) -> None:
        for bed, strip in self._strips.items():
            self._render(bed, strip, cut=True)

    def _send_live(self) -> None:
        out = []
        for bed, strip in self._strips.items():
            self._render(bed, strip)
            if strip.live:
                out.append(self._strip_message(bed, strip))
        if out:
            self.live_strips(out)

    @staticmethod
    def _strip_message(bed: str, strip: _Strip) -> dict:
        msg = {"type": "strip", "stream": bed, "fs": strip.fs, "lead": strip.lead_name, "index": strip.live_first,
               "uv": strip.live}
        strip.live = []
        return msg
