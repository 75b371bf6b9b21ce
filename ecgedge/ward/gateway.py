"""The ward gateway: devices over TCP, one engine, one database writer, the central-station page.

One process, one asyncio event loop for the sockets (devices and browsers) and two threads for the
work that would stall it: the :class:`~ecgedge.ward.engine.Engine` (decoding and classification)
and the writer (the database's one connection that writes). A record reaches the page only after
the transaction holding it has committed (:meth:`Gateway._write_loop`).

A misbehaving device is contained at its own socket (:class:`~ecgedge.ward.config.Limits`): its
bytes wait in a bounded buffer (the gateway stops reading it, and TCP pushes back, while the
engine is behind on it), a flood past its byte budget and garbage past its decode-error budget
close it, and so does silence before the first frame (slowloris) or for ``idle_s``. Every close
says why (``bed_link`` down with the reason, ``device_dropped``).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ecgedge.errors import ConfigError
from ecgedge.stream.hub import StreamHub
from ecgedge.ward.config import Limits, WardConfig, host_port
from ecgedge.ward.engine import Batch, Engine
from ecgedge.ward.events import BedLink, DeviceDropped, LinkState
from ecgedge.ward.store import WardReader, WardStore

#: Seconds of each bed's strip kept in memory for a page that connects (its first screen is full).
STRIP_TAIL_S = 10.0
#: How often idle and first-frame deadlines are checked, s.
SWEEP_S = 0.5
#: How often old strips are deleted (``WardConfig.keep_strips_days``), s.
PRUNE_EVERY_S = 3600.0
#: Latencies kept for /api/status and the benchmark.
LATENCIES_KEPT = 100_000


@dataclass
class _Device:
    """The gateway's side of one device connection."""

    id: int
    peer: str
    writer: asyncio.StreamWriter
    opened: float
    last_read: float
    tokens: float
    inflight: int = 0
    reason: str = ""
    dropped: bool = False  # closed by the gateway for breaking a limit
    lock: threading.Lock = field(default_factory=threading.Lock)
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def done(self, n: int) -> None:
        with self.lock:
            self.inflight -= n


@dataclass
class _Bed:
    bed: str
    state: dict = field(default_factory=dict)
    strip: deque = field(default_factory=deque)  # (index, uv) of the last STRIP_TAIL_S
    fs: float = 0.0
    lead: str = ""


class Gateway:
    """A running ward: call :meth:`start` in an event loop, then :meth:`wait` until stopped.

    Args:
        cfg: the :class:`~ecgedge.ward.config.WardConfig`.
        hub: the :class:`StreamHub` (its runner activated) every bed shares.
        model_name: written into the database's session row.
        log: where the start-up lines go (``LISTEN HOST:PORT``, ``PAGE URL``, ...).
    """

    def __init__(self, cfg: WardConfig, hub: StreamHub, *, model_name: str = "", log: Callable[[str], None] | None = None):
        self.cfg, self.hub, self.model_name = cfg, hub, model_name
        self.limits: Limits = cfg.limits
        self.token = cfg.token or secrets.token_urlsafe(18)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.devices: dict[int, _Device] = {}
        self.beds: dict[str, _Bed] = {}
        self.alarms: dict[int, dict] = {}
        self.subscribers: set[asyncio.Queue] = set()
        self.latencies: deque = deque(maxlen=LATENCIES_KEPT)
        self.cpu_s = {"write": 0.0, "push": 0.0}
        self.counts = {"records": 0, "events": 0, "windows": 0, "batches": 0, "dropped_subscribers": 0}
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self._writes: queue.Queue = queue.Queue(maxsize=512)
        self.failure: BaseException | None = None
        self.listen_address: tuple[str, int] = ("", 0)
        self.http_address: tuple[str, int] = ("", 0)

    # ---- life cycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = WardStore(self.cfg.db)
        self.session_id = self.store.start_session(self.model_name, self.cfg.listen, self.cfg.http)
        self._mark_stale_beds()
        with WardReader(self.cfg.db) as reader:
            self.alarms = {a["id"]: a for a in reader.alarms()}
            for b in reader.beds():
                self.beds[b["bed"]] = _Bed(b["bed"], {k: v for k, v in b.items() if v is not None})
        self.engine = Engine(self.hub, self.session_id, self._from_engine, live_strips=self._strips_from_engine,
                             drop=self._drop_from_engine, on_error=lambda exc: self._failed("the engine", exc), limits=self.limits, display_fs_hz=self.cfg.display_fs_hz,
                             strip_chunk_s=self.cfg.strip_chunk_s)
        self._writer = threading.Thread(target=self._write_loop, name="ward-writer", daemon=True)
        self._writer.start()
        self.engine.start()
        host, port = host_port(self.cfg.listen[len("tcp://"):], "--listen")
        try:
            self.server = await asyncio.start_server(self._device, host, port, reuse_address=True)
        except OSError as exc:
            raise ConfigError(f"cannot listen for devices on {host}:{port}: {exc.strerror or exc}") from None
        self.listen_address = self.server.sockets[0].getsockname()[:2]
        await self._start_http()
        self._sweeper = asyncio.create_task(self._sweep())
        for h, what in ((host, "--listen"), (self.http_address[0], "--http")):
            if h not in ("127.0.0.1", "localhost", "::1"):
                self.log(f"warning: {what} binds {h}: devices or browsers on other machines can reach it (the page needs its token)")
        self.log(f"LISTEN {self.listen_address[0]}:{self.listen_address[1]}")
        self.log(f"PAGE {self.url}")
        self.log(f"DB {self.cfg.db if not self.cfg.db.startswith('postgres') else 'postgresql'} (session {self.session_id})")

    @property
    def url(self) -> str:
        return f"http://{self.http_address[0]}:{self.http_address[1]}/?token={self.token}"

    async def _start_http(self) -> None:
        import uvicorn

        from ecgedge.ward.web import app_for

        host, port = host_port(self.cfg.http, "--http")
        try:
            sock = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            raise ConfigError(f"cannot serve the page on {host}:{port}: {exc.strerror or exc}") from None
        self.http_address = sock.getsockname()[:2]

        class _Server(uvicorn.Server):
            def capture_signals(self):  # the gateway handles SIGINT/SIGTERM itself (stops devices, then the page)
                import contextlib

                return contextlib.nullcontext()

        config = uvicorn.Config(app_for(self), log_level="warning", lifespan="off", access_log=False, ws="none")
        self.http = _Server(config)
        self._http_task = asyncio.create_task(self.http.serve(sockets=[sock]))

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        """Run until :meth:`request_stop` (SIGINT/SIGTERM when started by :func:`run_ward`), then stop in order:
        devices (each bed's link goes down), the engine's last records, the writer, the page."""
        await self._stop.wait()
        self.server.close()
        for dev in list(self.devices.values()):
            dev.reason = "the gateway stopped"
            dev.writer.close()
        await asyncio.to_thread(self.engine.stop)
        self._writes.put(None)
        await asyncio.to_thread(self._writer.join, 30)
        self._sweeper.cancel()
        self.http.should_exit = True
        for q in list(self.subscribers):
            q.put_nowait(None)
        await asyncio.wait([self._http_task], timeout=5)
        self.store.end_session()
        self.store.close()

    def _mark_stale_beds(self) -> None:
        """Beds whose link the database still shows up belong to a gateway that did not stop (killed):
        their link goes down now (no telemetry until their device reconnects)."""
        with WardReader(self.cfg.db) as reader:
            stale = [b for b in reader.beds() if b["link"] == LinkState.up.value]
        if stale:
            self.store.write([BedLink(b["bed"], LinkState.down, "the previous gateway stopped without closing it", b["peer"] or "", 0,
                                      self.session_id).to_json() for b in stale])

    # ---- devices ---------------------------------------------------------------------------------------

    async def _device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_addr = writer.get_extra_info("peername") or ("?", 0)
        peer = f"{peer_addr[0]}:{peer_addr[1]}"
        cid = next(self._ids)
        if len(self.devices) >= self.limits.max_connections:
            writer.close()
            self._refused(DeviceDropped(peer, f"more than {self.limits.max_connections} devices connected", cid, self.session_id))
            return
        now = time.monotonic()
        dev = self.devices[cid] = _Device(cid, peer, writer, now, now, float(self.limits.burst_bytes))
        self.engine.open(cid, peer)
        last = now
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    dev.reason = dev.reason or "connection closed by the device"
                    break
                now = time.monotonic()
                dev.last_read = now
                dev.tokens = min(float(self.limits.burst_bytes), dev.tokens + (now - last) * self.limits.max_bytes_per_s) - len(data)
                last = now
                if dev.tokens < 0:
                    dev.reason = f"flood: more than {self.limits.max_bytes_per_s} bytes/s sustained"
                    self._drop_now(dev)
                    break
                with dev.lock:
                    dev.inflight += len(data)
                self.engine.data(cid, data, time.time(), dev.done)
                while dev.inflight > self.limits.max_inflight_bytes and not dev.reason:
                    await asyncio.sleep(0.02)  # back-pressure: this socket waits, the others do not
                if dev.reason:
                    break
        except (ConnectionError, OSError) as exc:
            dev.reason = dev.reason or f"connection lost: {exc}"
        finally:
            self.devices.pop(cid, None)
            self.engine.close(cid, dev.reason or "connection closed", dropped=dev.dropped)
            writer.close()

    def _refused(self, event: DeviceDropped) -> None:
        self._writes.put(Batch([event.to_json()], [None], [], time.time()))

    def _drop_now(self, dev: _Device) -> None:
        dev.dropped = True
        transport = dev.writer.transport
        if transport is not None:
            transport.abort()

    def _drop_from_engine(self, cid: int, reason: str) -> None:
        def drop():
            dev = self.devices.get(cid)
            if dev is not None:
                dev.reason = reason
                self._drop_now(dev)
        self._to_loop(drop)

    async def _sweep(self) -> None:
        """Close connections that sent no frame within ``first_frame_s`` or nothing for ``idle_s``."""
        while True:
            await asyncio.sleep(SWEEP_S)
            now = time.monotonic()
            for dev in list(self.devices.values()):
                conn = self.engine.conns.get(dev.id)
                if conn is not None and conn.frames == 0 and now - dev.opened > self.limits.first_frame_s:
                    dev.reason = f"no valid frame within {self.limits.first_frame_s:g} s of connecting"
                elif now - dev.last_read > self.limits.idle_s:
                    dev.reason = f"nothing received for {self.limits.idle_s:g} s"
                else:
                    continue
                self._drop_now(dev)

    # ---- engine -> writer -> page ---------------------------------------------------------------------

    def _from_engine(self, batch: Batch) -> None:
        self._writes.put(batch)  # blocks the engine while the writer is 512 batches behind: back-pressure

    def _strips_from_engine(self, strips: list[dict]) -> None:
        self._to_loop(self._publish_strips, strips)

    def _write_loop(self) -> None:
        next_prune = 0.0
        while True:
            item = self._writes.get()
            if item is None:
                return
            if self.failure is not None:
                continue  # stopping after a failure: drained so the engine never blocks on it
            t0 = time.thread_time()
            try:
                if self.cfg.keep_strips_days and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    self.store.prune_strips(time.time() - self.cfg.keep_strips_days * 86400)
                if isinstance(item, tuple):  # ("ack", alarm id, by, future)
                    _, alarm_id, by, fut = item
                    row = self.store.acknowledge(alarm_id, by)
                    self._to_loop(self._acked, row, fut)
                    continue
                out = self.store.write(item.records, item.strips)
            except Exception as exc:  # nothing is shown that was not kept: the gateway stops, and says why
                self._failed("the database writer", exc)
                continue
            self.cpu_s["write"] += time.thread_time() - t0
            self._to_loop(self._publish, out, item)

    def _failed(self, what: str, exc: BaseException) -> None:
        """A thread of the gateway failed: stop (a central station that silently stops keeping or
        showing events is worse than one that stops); :func:`run_ward` raises it after the shutdown."""
        if self.failure is None:
            self.failure = exc
            self.log(f"error: {what} failed ({type(exc).__name__}: {exc}); the gateway stops")
            self._to_loop(self.request_stop)

    def _to_loop(self, fn, *args) -> None:
        """Run ``fn(*args)`` in the event loop, from another thread; nothing once the loop has closed
        (an engine finishing its last records after a shutdown that stopped waiting for it)."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def _publish(self, out: list[dict], batch: Batch) -> None:
        t0 = time.thread_time()
        now = time.time()
        self.counts["batches"] += 1
        self.counts["records"] += len(batch.records)
        self.counts["windows"] += sum(r["type"] == "window" for r in batch.records)
        for arrived in batch.arrived:
            if arrived is not None:
                self.latencies.append(now - arrived)
        pushed = []
        for r in out:
            if r["type"] == "alarm":
                self.alarms[r["id"]] = r
                pushed.append(r)
                continue
            if "id" in r:
                self.counts["events"] += 1
            bed = r.get("stream")
            if bed is not None:
                self._bed_state(str(bed), r)
            pushed.append(_for_page(r))
        self._send({"type": "batch", "records": pushed, "ts": now})
        self.cpu_s["push"] += time.thread_time() - t0

    def _bed_state(self, bed: str, r: dict) -> None:
        b = self.beds.get(bed)
        if b is None:
            b = self.beds[bed] = _Bed(bed)
        kind, s = r["type"], b.state
        s["last_seen"] = r["ts"]
        if kind == "window":
            s["quality"] = r.get("quality")
            if r.get("reason"):
                s["reason"] = r["reason"]
        elif kind == "heart_rate":
            s["hr_bpm"] = r.get("hr_bpm")
        elif kind == "rhythm_change":
            s["rhythm"] = r.get("to")
        elif kind == "quality":
            s["quality"] = r.get("quality")
            s["reason"] = r.get("reason", "")
        elif kind == "bed_link":
            s["link"], s["peer"] = r.get("state"), r.get("peer")
        elif kind == "stream_start":
            s["fs_hz"], s["leads"] = r.get("fs_hz"), ",".join(r.get("leads", []))

    def _publish_strips(self, strips: list[dict]) -> None:
        t0 = time.thread_time()
        for m in strips:
            b = self.beds.get(m["stream"])
            if b is None:
                b = self.beds[m["stream"]] = _Bed(m["stream"])
            if b.fs != m["fs"] or (b.strip and b.strip[-1][0] + len(b.strip[-1][1]) != m["index"]):
                b.strip.clear()
            b.fs, b.lead = m["fs"], m["lead"]
            b.strip.append((m["index"], m["uv"]))
            while sum(len(u) for _, u in b.strip) > STRIP_TAIL_S * b.fs and len(b.strip) > 1:
                b.strip.popleft()
        self._send({"type": "strips", "strips": strips})
        self.cpu_s["push"] += time.thread_time() - t0

    def _send(self, message: dict) -> None:
        import json

        if not self.subscribers:
            return
        text = json.dumps(message, separators=(",", ":"))
        for q in list(self.subscribers):
            try:
                q.put_nowait(text)
            except asyncio.QueueFull:  # a page too slow to follow: dropped, never waited for (it reconnects)
                self.subscribers.discard(q)
                self.counts["dropped_subscribers"] += 1
                q.put_nowait(None) if not q.full() else None

    def snapshot(self) -> dict:
        """What a page needs on connecting: every bed's state and strip tail, the open alarms."""
        beds = []
        for b in sorted(self.beds.values(), key=lambda b: _bed_order(b.bed)):
            strip = {"fs": b.fs, "lead": b.lead, "index": b.strip[0][0], "uv": [v for _, u in b.strip for v in u]} if b.strip else None
            beds.append({"bed": b.bed, **b.state, "strip": strip})
        alarms = sorted((a for a in self.alarms.values() if a["cleared"] is None or a["acked"] is None), key=lambda a: -a["id"])
        return {"type": "snapshot", "beds": beds, "alarms": alarms, "session": self.session_id, "ts": time.time()}

    async def acknowledge(self, alarm_id: int, by: str) -> dict | None:
        fut = self.loop.create_future()
        self._writes.put(("ack", alarm_id, by, fut))
        return await fut

    def _acked(self, row: dict | None, fut: asyncio.Future) -> None:
        if row is not None:
            self.alarms[row["id"]] = row
            self._send({"type": "batch", "records": [row], "ts": time.time()})
        fut.set_result(row)

    def status(self) -> dict:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 4) if lat else None

        return {"session": self.session_id, "devices": len(self.devices), "beds": len(self.beds),
                "subscribers": len(self.subscribers), **self.counts, "latency_p50_s": q(0.5), "latency_p99_s": q(0.99),
                "cpu_s": {**self.engine.cpu_s, **self.cpu_s}}


def _for_page(r: dict) -> dict:
    """A record as the page gets it: the per-hop ones without what the page does not draw."""
    if r["type"] == "window":
        return {k: r[k] for k in ("type", "stream", "t", "quality", "label", "reason", "ts") if k in r}
    if r["type"] == "heart_rate":
        return {k: r[k] for k in ("type", "stream", "t", "hr_bpm", "irregularity", "ts") if k in r}
    return r


def _bed_order(bed: str):
    return (0, int(bed), "") if bed.isdigit() else (1, 0, bed)


def ward_extra_missing() -> str:
    """Why the ward cannot serve its page here (its extra is not installed), or ``""``."""
    import importlib

    absent = []
    for name in ("starlette", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return (f"ecgedge ward serves its page with starlette and uvicorn ({', '.join(absent)} missing): "
            "pip install 'ecgedge[ward]'") if absent else ""


def run_ward(cfg: WardConfig, *, log: Callable[[str], None] | None = None, on_start: Callable[[Gateway], None] | None = None,
             seconds: float | None = None) -> dict:
    """``ecgedge ward``: load the model (as ``ecgedge stream`` does), run the gateway until SIGINT/SIGTERM
    (or for ``seconds``); ``on_start`` is called with the listening gateway (to start devices). Returns
    the gateway's :meth:`~Gateway.status` at the end."""
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime import runner_from_export
    from ecgedge.stream.monitor import ModelSpec
    from ecgedge.stream.run import stream_precision
    from ecgedge.config import Backend, Precision

    missing = ward_extra_missing()
    if missing:
        raise ConfigError(missing)
    manifest = load_manifest(cfg.export)
    precision = Precision(cfg.precision) if cfg.precision else stream_precision(manifest, Backend.ort_cpu)[0]
    runner = runner_from_export(cfg.export, precision, Backend.ort_cpu, threads=cfg.threads, manifest=manifest, verify=False)
    spec = ModelSpec.from_manifest(manifest)

    async def main() -> dict:
        with runner:
            gateway = Gateway(cfg, StreamHub(runner, spec, cfg.settings),
                              model_name=f"{manifest.data.get('name')} ({precision.value})", log=log)
            await gateway.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, gateway.request_stop)
            if on_start is not None:
                on_start(gateway)
            if seconds is not None:
                loop.call_later(seconds, gateway.request_stop)
            await gateway.wait()
            if gateway.failure is not None:
                raise gateway.failure
            return gateway.status()

    return asyncio.run(main())
