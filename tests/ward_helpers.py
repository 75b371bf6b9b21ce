"""Helpers of the ward tests (tests/test_ward.py, tests/test_ward_page.py): a device client over a
real socket, a gateway running in a thread, ecgsim devices. A plain module, not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.synthetic import synthesize_ecg

REPO = Path(__file__).resolve().parents[1]
FS, SPF = 500.0, 20


def signal_adu(rhythm: str = "SR", seconds: float = 30.0, seed: int = 0, leads=STANDARD_12_LEADS) -> np.ndarray:
    """A synthetic 12-lead record at 500 Hz in ADC units of 1 µV."""
    x = synthesize_ecg(rhythm, seed=seed, duration_s=seconds, fs=FS, leads=leads)[0]
    return np.round(x * 1000).astype(np.int64)


def frames_of(adu: np.ndarray, stream_id: int, first: int = 0, seq: int = 0, leads=STANDARD_12_LEADS) -> list[bytes]:
    out = []
    for k, a in enumerate(range(0, adu.shape[1] - SPF + 1, SPF)):
        out.append(encode_frame(Frame(stream_id=stream_id, seq=(seq + k) % 65536, first_sample=first + a, fs_hz=FS,
                                      lead_ids=tuple(leads), samples=adu[:, a:a + SPF], gain_uv=1.0)))
    return out


class Device(threading.Thread):
    """A bedside device over a real TCP socket: sends a looped record at ``speed`` x real time,
    reconnects with backoff when the link drops, and goes on counting its sample index (as a
    device that kept sampling)."""

    def __init__(self, port: int, stream_id: int, adu: np.ndarray, *, speed: float = 5.0, host: str = "127.0.0.1"):
        super().__init__(daemon=True)
        self.port, self.stream_id, self.adu, self.speed, self.host = port, stream_id, adu, speed, host
        self.sent_frames = 0
        self.connects = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        n = self.adu.shape[1] // SPF * SPF
        frame_no, t0 = 0, time.monotonic()
        sock = None
        while not self._stop_event.is_set():
            if sock is None:
                try:
                    sock = socket.create_connection((self.host, self.port), timeout=1.0)
                    self.connects += 1
                except OSError:
                    time.sleep(0.1)
                    frame_no = int((time.monotonic() - t0) * FS * self.speed / SPF)  # the device kept sampling
                    continue
            first = frame_no * SPF
            idx = np.arange(first, first + SPF) % n
            data = encode_frame(Frame(stream_id=self.stream_id, seq=frame_no % 65536, first_sample=first, fs_hz=FS,
                                      lead_ids=STANDARD_12_LEADS, samples=self.adu[:, idx], gain_uv=1.0))
            due = t0 + (frame_no + 1) * SPF / FS / self.speed
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            try:
                sock.sendall(data)
                self.sent_frames += 1
            except OSError:
                sock.close()
                sock = None
            frame_no += 1
        if sock is not None:
            sock.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


class GatewayThread:
    """A :class:`~ecgedge.ward.gateway.Gateway` on its own event loop in a thread; ``records``: every
    record it published, in order (the page's view, before trimming)."""

    def __init__(self, export: Path, db: Path | str, **cfg):
        from ecgedge.manifest import load_manifest
        from ecgedge.runtime import runner_from_export
        from ecgedge.stream.hub import StreamHub
        from ecgedge.stream.monitor import ModelSpec
        from ecgedge.ward.config import WardConfig
        from ecgedge.ward.gateway import Gateway

        self.cfg = WardConfig(export=str(export), listen="tcp://127.0.0.1:0", http="127.0.0.1:0", db=str(db),
                              token="test-token-123", **cfg)
        self.runner = runner_from_export(export, "fp32", threads=1).__enter__()
        self.hub = StreamHub(self.runner, ModelSpec.from_manifest(load_manifest(export)), self.cfg.settings)
        self.gateway = Gateway(self.cfg, self.hub, model_name="test", log=lambda line: None)
        self.records: list[dict] = []
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main():
            await self.gateway.start()
            publish = self.gateway._publish

            def capture(out, batch):
                self.records.extend(batch.records)
                publish(out, batch)

            self.gateway._publish = capture  # type: ignore[method-assign]
            self._ready.set()
            await self.gateway.wait()

        asyncio.run(main())

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        assert self._ready.wait(30), "the gateway did not start"
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self.gateway.loop.call_soon_threadsafe(self.gateway.request_stop)
            self._thread.join(30)
        self.runner.__exit__(None, None, None)

    @property
    def port(self) -> int:
        return self.gateway.listen_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_address[1]}"

    def wait_for(self, pred, timeout: float = 20.0, what: str = "a record"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in list(self.records) if pred(r)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ward_process(export: Path, db: Path, port: int, http_port: int = 0, token: str = "test-token-123") -> tuple[subprocess.Popen, str]:
    """``ecgedge ward`` as a child process; returns it and its page URL once it listens."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ecgedge", "ward", str(export), "--listen", f"tcp://127.0.0.1:{port}",
                             "--http", f"127.0.0.1:{http_port}", "--db", str(db), "--token", token, "--precision", "fp32"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            raise AssertionError(f"ecgedge ward exited ({proc.wait()}) before listening")
        if line.startswith("PAGE "):
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
            return proc, line.split()[1]
    proc.kill()
    raise AssertionError("ecgedge ward did not start in 60 s")


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ecgsim_record(tmp: Path, shared_data: Path | None, rhythm: str = "SR") -> tuple[list[str], str]:
    """ecgsim's arguments for a device: a real Chapman record from ../shared/data where present, else a
    synthetic record as raw ADC integers (``--raw``); and what it plays."""
    if shared_data is not None:
        rec = shared_data / "chapman" / "WFDBRecords" / "01" / "010" / "JS00001"
        if rec.with_suffix(".hea").is_file():
            return [str(rec)], f"Chapman {rec.name}"
    raw = tmp / f"synthetic-{rhythm}.i16"
    adu = signal_adu(rhythm, 20.0)
    raw.write_bytes(adu.T.astype("<i2").tobytes())
    return ["--raw", str(raw), "--fs", "500", "--leads", "12", "--gain-uv", "1", "--lead-names", ",".join(STANDARD_12_LEADS)], \
        f"synthetic {rhythm}"


def announced(text: str, prefix: str) -> str | None:
    m = re.search(rf"^{prefix} (\S+)", text, re.M)
    return m.group(1) if m else None
