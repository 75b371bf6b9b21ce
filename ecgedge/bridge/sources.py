"""Byte sources for ``ecgedge stream``: a serial port, TCP, stdin, or the simulated device.

Every source gives raw bytes of the wire protocol (``firmware_bridge/PROTOCOL.md``); decoding is
:class:`~ecgedge.bridge.decoder.FrameDecoder`'s job, in the session
(:class:`~ecgedge.stream.session.StreamSession`). A source is opened once (:meth:`ByteSource.open`, which raises
:class:`~ecgedge.errors.StreamError` when the device cannot be reached at all, so a typo fails at
once), then :meth:`ByteSource.chunks` yields:

- ``bytes``: what arrived, in arrival order (``b""`` when ``idle_s`` passed with nothing, so the
  caller can redraw a view or notice an outage);
- :class:`LinkEvent`: the link went down (device unplugged, connection closed) or came back. Live
  links reconnect by themselves with backoff; what was lost meanwhile shows up as a gap in the
  sample index when data resumes.

The generator returns when the stream has ended for good (end of stdin, the simulator exited).

Units: ``idle_s`` and backoff delays in seconds (wall time), serial speeds in baud (bit/s), reads of
at most :data:`READ_BYTES` bytes.

Specs (:func:`source_from_spec`):

=============================  ===================================================================
``serial:DEVICE[@BAUD]``       a UART / USB-CDC port, or a pty (pyserial, ``ecgedge[serial]``)
``tcp://HOST:PORT``            connect to a device that serves its stream
``tcp-listen://HOST:PORT``     accept a device that connects to us (port 0: any free port)
``wfdb:RECORD[@SPEED]``        ``firmware_bridge/build/ecgsim`` streams a WFDB record (1 = real time,
                               0 = as fast as possible); built with make on first use. wfdb reads
                               the record (:mod:`ecgedge.data.device_samples`: every format, ECG
                               leads only, invalid samples sent as gaps); ecgsim plays its ADC integers
``stdin``                      bytes piped in (``ecgsim ... | ecgedge stream ... --source stdin``)
=============================  ===================================================================
"""

from __future__ import annotations

import os
import select
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

from ecgedge.errors import ConfigError, StreamError

READ_BYTES = 65536
DEFAULT_BAUD = 115200
SPEC_FORMS = "serial:DEVICE[@BAUD], tcp://HOST:PORT, tcp-listen://HOST:PORT, wfdb:RECORD[@SPEED] or stdin"


@dataclass(frozen=True)
class LinkEvent:
    """The link to the device went ``down`` or came back ``up``; ``detail`` says how."""

    state: str
    detail: str


Chunk = Union[bytes, LinkEvent]


class Backoff:
    """Reconnect delays: ``first_s`` doubling up to ``max_s``, reset on success."""

    def __init__(self, first_s: float = 0.05, max_s: float = 2.0):
        self.first_s, self.max_s = first_s, max_s
        self.delay = first_s

    def reset(self) -> None:
        self.delay = self.first_s

    def wait(self, idle_s: float) -> Iterator[bytes]:
        """Sleep the current delay (yielding ``b""`` every ``idle_s``), then double it."""
        deadline = time.monotonic() + self.delay
        self.delay = min(self.max_s, self.delay * 2)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, idle_s))
            yield b""


class ByteSource:
    """Base of the sources: ``open()``, then iterate ``chunks(idle_s)``, then ``close()``."""

    name = "source"

    def open(self) -> None:
        """Reach the device once; raise :class:`StreamError` if it cannot be reached."""

    def chunks(self, idle_s: float = 0.2) -> Iterator[Chunk]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (idempotent)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def _read_fd(fd: int, idle_s: float) -> bytes | None:
    """Bytes from ``fd`` within ``idle_s`` (``b""``: none yet), or None at end of file."""
    if not select.select([fd], [], [], idle_s)[0]:
        return b""
    data = os.read(fd, READ_BYTES)
    return data or None


class StdinSource(ByteSource):
    """Bytes piped into standard input; ends at end of file."""

    name = "stdin"

    def __init__(self, stream=None):
        self._stream = stream

    def open(self) -> None:
        stream = self._stream or sys.stdin
        if stream.isatty():
            raise StreamError("stdin is a terminal: pipe a device's bytes in "
                              "(ecgsim RECORD | ecgedge stream EXPORT --source stdin)")
        self._fd = stream.fileno()

    def chunks(self, idle_s: float = 0.2) -> Iterator[Chunk]:
        while (data := _read_fd(self._fd, idle_s)) is not None:
            yield data


class _ReconnectingSource(ByteSource):
    """A link we open ourselves and reopen with backoff when it drops (serial port, TCP client).

    Subclasses give ``_connect()`` (the link, or :class:`StreamError`), ``_read(link)`` (bytes, or
    an ``OSError`` / ``"why"`` string when the link is gone), ``_release(link)`` and ``_up_detail``.
    """

    def __init__(self, up_detail: str):
        self._link: Any = None  # what _connect opens (a serial port, a socket), while connected
        self._up_detail = up_detail
        self._backoff = Backoff()

    def _connect(self):
        raise NotImplementedError

    def _read(self, link) -> bytes | str:
        raise NotImplementedError

    def _release(self, link) -> None:
        link.close()

    def open(self) -> None:
        self._link = self._connect()

    def chunks(self, idle_s: float = 0.2) -> Iterator[Chunk]:
        while True:
            if self._link is None:
                try:
                    self._link = self._connect()
                except StreamError:
                    yield from self._backoff.wait(idle_s)
                    continue
                self._backoff.reset()
                yield LinkEvent("up", self._up_detail)
            if not select.select([self._link], [], [], idle_s)[0]:
                yield b""
                continue
            try:
                data = self._read(self._link)
            except OSError as exc:
                data = f"{exc.strerror or exc}"
            if isinstance(data, str):
                self.close()
                yield LinkEvent("down", data)
                continue
            yield data

    def close(self) -> None:
        if self._link is not None:
            try:
                self._release(self._link)
            except OSError:
                pass
            self._link = None


class SerialSource(_ReconnectingSource):
    """A serial port (UART, USB-CDC) or a pty, through pyserial; reopens the port when it drops."""

    def __init__(self, device: str, baud: int = DEFAULT_BAUD):
        self.device, self.baud = device, baud
        self.name = f"serial:{device}@{baud}"
        super().__init__(f"{device} reopened")

    def _connect(self):
        try:
            import serial
        except ImportError:
            raise StreamError("serial sources need pyserial: pip install 'ecgedge[serial]'") from None
        try:
            return serial.Serial(self.device, self.baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise StreamError(f"cannot open {self.device}: {exc}") from None

    def _read(self, port) -> bytes | str:
        import serial

        try:
            data = port.read(READ_BYTES)
        except serial.SerialException as exc:  # an OSError subclass in pyserial; said here for clarity
            return f"{self.device}: {exc}"
        # Readable but empty: the other end is gone (pyserial raises for most ports).
        return data or f"{self.device}: device returned no data"


class TcpSource(_ReconnectingSource):
    """Connect to a device serving its stream over TCP; reconnect with backoff when it drops."""

    def __init__(self, host: str, port: int, connect_timeout_s: float = 5.0):
        self.host, self.port, self.connect_timeout_s = host, port, connect_timeout_s
        self.name = f"tcp://{host}:{port}"
        super().__init__(f"reconnected to {host}:{port}")

    def _connect(self) -> socket.socket:
        try:
            return socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as exc:
            raise StreamError(f"cannot connect to {self.name}: {exc.strerror or exc}") from None

    def _read(self, sock) -> bytes | str:
        try:
            data = sock.recv(READ_BYTES)
        except OSError as exc:
            return f"connection lost: {exc.strerror or exc}"
        return data or "connection closed by the device"


class TcpListenSource(ByteSource):
    """Accept a device that connects to us, one connection at a time; accept again when it drops.

    With port 0 a free port is picked; the address is in :attr:`address` and printed on stderr as
    ``LISTEN HOST:PORT`` (as ecgsim does) so a device or a script can find it.
    """

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.name = f"tcp-listen://{host}:{port}"
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None

    def open(self) -> None:
        try:
            self._server = socket.create_server((self.host, self.port))
        except OSError as exc:
            raise StreamError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = self._server.getsockname()[1]
        self.name = f"tcp-listen://{self.host}:{self.port}"
        print(f"LISTEN {self.host}:{self.port}", file=sys.stderr, flush=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def chunks(self, idle_s: float = 0.2) -> Iterator[Chunk]:
        server = self._server
        if server is None:
            raise StreamError(f"{self.name}: chunks() before open()")
        while True:
            if self._conn is None:
                if not select.select([server], [], [], idle_s)[0]:
                    yield b""
                    continue
                self._conn, peer = server.accept()
                yield LinkEvent("up", f"device connected from {peer[0]}:{peer[1]}")
            try:
                if not select.select([self._conn], [], [], idle_s)[0]:
                    yield b""
                    continue
                data = self._conn.recv(READ_BYTES)
                why = "connection closed by the device"
            except OSError as exc:
                data, why = b"", f"connection lost: {exc.strerror or exc}"
            if not data:
                self._conn.close()
                self._conn = None
                yield LinkEvent("down", why)
                continue
            yield data

    def close(self) -> None:
        for sock in (self._conn, self._server):
            if sock is not None:
                sock.close()
        self._conn = self._server = None


def ecgsim_path(build: bool = True) -> Path:
    """The simulated device: an installed wheel's compiled ``ecgedge/_bin/ecgsim``, else a source checkout's
    ``firmware_bridge/build/ecgsim``, built with make when missing (``build``); see :mod:`ecgedge.installation`."""
    from ecgedge.installation import executable

    return executable("ecgsim", build=build)


class SimulatorSource(ByteSource):
    """The C simulated device (``ecgsim``) streaming a WFDB record, read from its stdout.

    ecgsim parses no WFDB: it hands the record to the host's reader
    (:mod:`ecgedge.data.device_samples`, through wfdb: any storage format, the ECG leads with their own
    gains, invalid samples not sent), which runs ecgsim again on the record's ADC integers. A record
    the reader refuses ends the stream with :class:`StreamError` naming the reason.

    Args:
        record: WFDB record path without extension (``.../JS00001``).
        speed: 1 = real time, 50 = 50x, 0 = as fast as possible.
        sim_args: further ecgsim options (``--loop``, ``--drop-frames 5,10-12``, ``--lead-off V1@20-25``, ...).
    """

    def __init__(self, record: str, speed: float = 1.0, sim_args: Sequence[str] = ()):
        self.record, self.speed, self.sim_args = record, speed, tuple(sim_args)
        self.name = f"wfdb:{record}@{speed:g}"
        self._proc: subprocess.Popen | None = None

    def open(self) -> None:
        if not Path(f"{self.record}.hea").is_file():
            raise ConfigError(f"no WFDB record at {self.record} (expected {self.record}.hea)")
        cmd = [str(ecgsim_path()), "--quiet", "--speed", f"{self.speed:g}", *self.sim_args, self.record]
        # ecgsim hands the record to the host's reader: this Python (it has ecgedge), not python3 on PATH.
        env = {**os.environ, "ECGSIM_PYTHON": os.environ.get("ECGSIM_PYTHON", sys.executable)}
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def chunks(self, idle_s: float = 0.2) -> Iterator[Chunk]:
        proc = self._proc
        if proc is None or proc.stdout is None or proc.stderr is None:
            raise StreamError(f"{self.name}: chunks() before open()")
        fd = proc.stdout.fileno()
        while (data := _read_fd(fd, idle_s)) is not None:
            yield data
        rc = proc.wait()
        if rc != 0:
            err = proc.stderr.read().decode(errors="replace").strip()
            raise StreamError(f"the simulated device failed (exit {rc}): {err}")

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
            self._proc.wait()
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()
            self._proc = None


def _host_port(rest: str, spec: str, *, allow_zero: bool) -> tuple[str, int]:
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 if allow_zero else 1) <= int(port) <= 65535:
        raise ConfigError(f"--source {spec!r}: expected HOST:PORT with a port in "
                          f"{'0' if allow_zero else '1'}..65535 (forms: {SPEC_FORMS})")
    return host.strip("[]"), int(port)


def source_from_spec(spec: str, *, sim_args: Sequence[str] | str = ()) -> ByteSource:
    """The byte source a ``--source`` spec names (see the module docstring); :class:`ConfigError` if malformed.

    ``sim_args`` (a sequence, or one shell-quoted string) go to ecgsim for a ``wfdb:`` source.
    """
    spec = spec.strip()
    if isinstance(sim_args, str):
        sim_args = shlex.split(sim_args)
    if sim_args and not spec.startswith("wfdb:"):
        raise ConfigError("simulator options only apply to a wfdb: source")
    if spec in ("stdin", "-"):
        return StdinSource()
    if spec.startswith("serial:"):
        device, sep, baud = spec[len("serial:"):].rpartition("@")
        if not sep:
            device, baud = baud, str(DEFAULT_BAUD)
        if not device or not baud.isdigit() or int(baud) <= 0:
            raise ConfigError(f"--source {spec!r}: expected serial:DEVICE[@BAUD], e.g. serial:/dev/ttyUSB0@921600")
        return SerialSource(device, int(baud))
    if spec.startswith("tcp://"):
        return TcpSource(*_host_port(spec[len("tcp://"):], spec, allow_zero=False))
    if spec.startswith("tcp-listen://"):
        return TcpListenSource(*_host_port(spec[len("tcp-listen://"):], spec, allow_zero=True))
    if spec.startswith("wfdb:"):
        record, sep, speed = spec[len("wfdb:"):].rpartition("@")
        if not sep:
            record, speed = speed, "1"
        try:
            speed_x = float(speed)
        except ValueError:
            speed_x = -1.0
        if not record or not speed_x >= 0:
            raise ConfigError(f"--source {spec!r}: expected wfdb:RECORD[@SPEED] with SPEED >= 0 "
                              "(1 = real time, 0 = as fast as possible)")
        return SimulatorSource(record, speed_x, sim_args)
    raise ConfigError(f"--source {spec!r} is not a source; expected {SPEC_FORMS}")
