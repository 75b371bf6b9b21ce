"""What a ward gateway runs and the bounds it keeps: frozen dataclasses, defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from ecgedge.errors import ConfigError
from ecgedge.stream.monitor import CONCEAL_MAX_S, StreamSettings

DEFAULT_LISTEN = "tcp://127.0.0.1:5600"
DEFAULT_HTTP = "127.0.0.1:8600"


@dataclass(frozen=True)
class Limits:
    """Per-connection and gateway-wide bounds: one misbehaving device must never stall the others.

    Args:
        max_connections: devices connected at once; one more is accepted, told nothing and closed
            (a ``device_dropped`` record says so).
        max_bytes_per_s: a device's sustained byte rate (token bucket of ``burst_bytes``). A
            16-lead 1000-Hz int24 device sends about 52 KB/s; 512 KiB/s leaves room for 10 such
            devices' catch-up after a reconnect and drops a flood.
        burst_bytes: the bucket's size.
        max_inflight_bytes: bytes of one connection read but not yet decoded; past it the gateway
            stops reading that socket (TCP back-pressure) until the engine catches up.
        first_frame_s: seconds a new connection may take to send its first valid frame (slowloris,
            a port scanner, a wrong protocol).
        idle_s: seconds without a byte after which a connection is closed (a device sends 25
            frames a second; a half-open TCP connection would otherwise hold its slot for ever).
        max_decode_errors: decode errors in ``error_report_s`` that get a connection dropped as garbage.
        error_report_s: at most one ``device_errors`` record per connection per this many seconds.
        max_beds_per_connection: stream ids one connection may carry (the wire allows 256).
        max_subscribers: pages connected to the push channel at once.
        subscriber_queue: messages waiting for one page; a page that falls further behind is
            disconnected (its browser reconnects and gets a fresh snapshot), never waited for.
    """

    max_connections: int = 1024
    max_bytes_per_s: int = 512 * 1024
    burst_bytes: int = 2 * 1024 * 1024
    max_inflight_bytes: int = 256 * 1024
    first_frame_s: float = 10.0
    idle_s: float = 30.0
    max_decode_errors: int = 200
    error_report_s: float = 5.0
    max_beds_per_connection: int = 256
    max_subscribers: int = 32
    subscriber_queue: int = 2000

    def __post_init__(self):
        for name in ("max_connections", "max_bytes_per_s", "burst_bytes", "max_inflight_bytes", "max_decode_errors",
                     "max_beds_per_connection", "max_subscribers", "subscriber_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ward limit {name} must be at least 1, not {getattr(self, name)}")
        for name in ("first_frame_s", "idle_s", "error_report_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ward limit {name} must be > 0 s, not {getattr(self, name)}")


def ward_settings() -> StreamSettings:
    """The settings ``ecgedge stream`` runs with by default (its CLI's defaults): the ward classifies
    every bed the same way, so a bed gives the same events through either."""
    return StreamSettings(conceal_max_s=CONCEAL_MAX_S)


@dataclass(frozen=True)
class WardConfig:
    """``ecgedge ward``: which model, where devices and browsers connect, where events are kept.

    Args:
        export: export folder of the model (``manifest.json``).
        listen: ``tcp://HOST:PORT`` devices connect to (port 0: any free port); 127.0.0.1 by default.
        http: ``HOST:PORT`` of the central-station page (port 0: any free port).
        db: SQLite file (created with its folder's permission) or ``postgresql://...``.
        token: the page's token; None: a random one, printed at start.
        settings: how every bed is classified (default: ``ecgedge stream``'s, :func:`ward_settings`).
        precision, threads: which artefact runs, on how many intra-op threads (None: the stream's pick).
        limits: the bounds of :class:`Limits`.
        display_fs_hz: the live strip's rate (a lead decimated to at most this), Hz.
        strip_chunk_s: seconds of strip per database row (the history's strips around events).
        keep_strips_days: strips older than this are deleted (checked hourly; about 43 MB per bed-day);
            0: kept for ever. Events, alarms and summaries are never deleted.
    """

    export: str
    listen: str = DEFAULT_LISTEN
    http: str = DEFAULT_HTTP
    db: str = "ward.sqlite"
    token: str | None = None
    settings: StreamSettings = field(default_factory=ward_settings)
    precision: str | None = None
    threads: int = 1
    limits: Limits = Limits()
    display_fs_hz: float = 250.0
    strip_chunk_s: float = 10.0
    keep_strips_days: float = 7.0

    def __post_init__(self):
        if not self.keep_strips_days >= 0:
            raise ConfigError(f"--keep-strips-days must be >= 0 (0: for ever), not {self.keep_strips_days}")
        if not self.listen.startswith("tcp://"):
            raise ConfigError(f"--listen {self.listen!r}: expected tcp://HOST:PORT (devices connect to it)")
        host_port(self.listen[len("tcp://"):], "--listen")
        host_port(self.http, "--http")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("--token must be at least 8 characters (it guards the page and its alarms)")
        if not self.display_fs_hz > 0 or not self.strip_chunk_s > 0:
            raise ConfigError("display_fs_hz and strip_chunk_s must be > 0")


def host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); :class:`ConfigError` naming ``what`` if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} {text!r}: expected HOST:PORT with a port in 0..65535")
    return host.strip("[]"), int(port)
