"""The C side of the streaming link: unit tests, and ecgsim streaming real records to the Python decoder.

Builds firmware_bridge/ with make (skips without make and a C compiler). ecgsim reads no WFDB itself:
wfdb reads each record (``ecgedge.data.device_samples``) and ecgsim plays its ADC integers from an
interchange file (``--raw``). The record tests compare what arrives with
``wfdb.rdrecord(..., physical=False).d_signal``: exact, sample for sample.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import socket
import subprocess
import tempfile
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import DecodeError, DecodeErrorKind, DeviceFlag, Frame
from ecgedge.data.device_samples import device_recording_from_wfdb
from ecgedge.bridge.sequence import Gap, SequenceTracker
from ecgedge.config import STANDARD_12_LEADS
from helpers import ecgsim_announces

pytestmark = pytest.mark.c

BRIDGE = Path(__file__).resolve().parents[1] / "firmware_bridge"
MITDB_FS = 360


def _record(shared_data: Path, *parts: str) -> Path:
    path = shared_data.joinpath(*parts)
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"record {path} not found")
    return path



@pytest.fixture()
def mitdb_100(shared_data) -> Path:
    return _record(shared_data, "mitdb", "100")


@pytest.fixture()
def chapman_js00001(shared_data) -> Path:
    return _record(shared_data, "chapman", "WFDBRecords", "01", "010", "JS00001")


def _digital(wfdb, record: Path, n: int | None = None) -> np.ndarray:
    """(n_leads, n) raw ADC integers of a record, as wfdb reads them."""
    return wfdb.rdrecord(str(record), sampto=n, physical=False).d_signal.T


def _ecgsim(build: Path, *args: object, timeout: float = 30) -> bytes:
    done = subprocess.run([str(build / "ecgsim"), "--quiet", *map(str, args)], capture_output=True, timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _device(record: Path, folder: Path) -> list[str]:
    """ecgsim options that play ``record`` as wfdb reads it, from an interchange file written into ``folder``."""
    recording = device_recording_from_wfdb(record)
    raw = folder / f"{record.name}.i32"
    recording.write_raw(raw)
    return recording.ecgsim_args(raw)


def _play(build: Path, record: Path, *args: object, timeout: float = 30) -> bytes:
    """``record`` through ecgsim's stdout with these further options."""
    with tempfile.TemporaryDirectory(prefix="ecgsim-test-") as tmp:
        return _ecgsim(build, *_device(record, Path(tmp)), *args, timeout=timeout)


class Received:
    """Everything a receiver made of a byte stream: frames, errors, tracker events, samples."""

    def __init__(self, data: bytes, n_leads: int, n_samples: int):
        self.decoder = FrameDecoder()
        tracker = SequenceTracker()
        self.frames: list[Frame] = []
        self.errors: list[DecodeError] = []
        self.events: list = []
        for event in self.decoder.feed(data):
            if isinstance(event, DecodeError):
                self.errors.append(event)
                continue
            result = tracker.push(event)
            self.events += result.events
            if result.frame is not None:
                self.frames.append(result.frame)
        self.gaps = [e for e in self.events if isinstance(e, Gap)]
        self.end = tracker.next_sample(0) or 0
        self.samples = np.zeros((n_leads, n_samples), np.int64)
        self.seen = np.zeros(n_samples, bool)
        for f in self.frames:
            self.samples[:, f.first_sample:f.end_sample] = f.samples
            self.seen[f.first_sample:f.end_sample] = True

    def assert_accounted_for(self) -> None:
        """Every sample index up to the last frame was delivered once or reported missing, never both."""
        spans = sorted([(f.first_sample, f.end_sample) for f in self.frames] + [(g.start, g.end) for g in self.gaps])
        assert spans[0][0] == 0
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "overlap or unreported hole"
        assert spans[-1][1] == self.end


def test_c_unit_tests_pass(build):
    done = subprocess.run(["make", "--no-print-directory", "-C", str(BRIDGE), "test"], capture_output=True,
                          text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", lines[-1]), lines[-1]


@pytest.mark.data
def test_mitdb_100_over_stdout_is_exact(build, wfdb, mitdb_100):
    seconds = 10
    n = seconds * MITDB_FS
    got = Received(_play(build, mitdb_100, "--speed", 0, "--seconds", seconds), 2, n)
    assert got.errors == [] and got.events == [] and got.end == n
    np.testing.assert_array_equal(got.samples, _digital(wfdb, mitdb_100, n))  # exact: raw ADC integers
    first = got.frames[0]
    assert first.lead_ids == ("MLII", "V5") and first.fs_hz == MITDB_FS
    assert (first.gain_uv, first.baseline) == (5.0, 1024)  # 200 adu/mV, ADC zero 1024
    assert first.flags == DeviceFlag.SIMULATED and first.lead_off == 0
    physical = wfdb.rdrecord(str(mitdb_100), sampto=n).p_signal.T
    mv = np.concatenate([f.samples_mv() for f in got.frames], axis=1)
    np.testing.assert_allclose(mv, physical, rtol=0, atol=1e-12)


@pytest.mark.data
def test_chapman_mat_16_plus_24_is_exact(build, wfdb, chapman_js00001):
    source = _digital(wfdb, chapman_js00001)
    got = Received(_play(build, chapman_js00001, "--speed", 0), 12, source.shape[1])
    assert got.errors == [] and got.events == [] and got.end == 5000
    np.testing.assert_array_equal(got.samples, source)
    assert got.frames[0].lead_ids == STANDARD_12_LEADS and got.frames[0].fs_hz == 500
    assert (got.frames[0].gain_uv, got.frames[0].baseline) == (1.0, 0)


@pytest.fixture()
def damaged_mitdb(build, mitdb_100) -> bytes:
    """60 s of record 100 with about one flipped bit per 10 000 and one dropped byte per 10 000."""
    return _play(build, mitdb_100, "--speed", 0, "--seconds", 60, "--flip-bits", 1e-4, "--drop-bytes", 1e-4,
                   "--seed", 7)


@pytest.mark.data
def test_faults_are_reported_and_every_delivered_sample_is_true(build, wfdb, mitdb_100, damaged_mitdb):
    n = 60 * MITDB_FS
    got = Received(damaged_mitdb, 2, n)
    assert got.decoder.stats["bad_crc"] > 0
    assert got.gaps and sum(g.n_samples for g in got.gaps) == n - got.seen.sum() - (n - got.end)
    source = _digital(wfdb, mitdb_100, n)
    np.testing.assert_array_equal(got.samples[:, got.seen], source[:, got.seen])
    got.assert_accounted_for()
    assert 0.9 * n < got.seen.sum() < n  # most frames survive a 1e-4 error rate
    # Deterministic for a seed.
    assert _play(build, mitdb_100, "--speed", 0, "--seconds", 60, "--flip-bits", 1e-4, "--drop-bytes", 1e-4,
                   "--seed", 7) == damaged_mitdb


@pytest.mark.data
def test_dropped_frames_are_exact_gaps(build, mitdb_100):
    data = _play(build, mitdb_100, "--speed", 0, "--seconds", 2, "--samples-per-frame", 10, "--drop-frames", "5,10-12")
    got = Received(data, 2, 2 * MITDB_FS)
    assert got.errors == []
    assert got.gaps == [Gap(0, 50, 60, frames_lost=1), Gap(0, 100, 130, frames_lost=3)]


@pytest.mark.data
def test_c_and_python_decoders_report_the_same_events(build, damaged_mitdb):
    rng = random.Random(3)
    data = bytearray(damaged_mitdb)
    for _ in range(20):  # line noise bursts, with and without zero bytes
        pos = rng.randrange(len(data))
        data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500)))
    data = bytes(data)
    dump = subprocess.run([str(build / "ecgbdump"), "--chunk", "7"], input=data, capture_output=True, timeout=30)
    assert dump.returncode == 0, dump.stderr.decode()
    c_lines = [json.loads(line) for line in dump.stdout.splitlines()]
    c_stats = c_lines.pop()["stats"]
    decoder = FrameDecoder()
    events = decoder.feed(data)
    assert c_stats == decoder.stats
    assert len(c_lines) == len(events)
    for c, py in zip(c_lines, events):
        if isinstance(py, DecodeError):
            assert c == {"error": py.kind.value}
        else:
            f = c["frame"]
            assert (f["seq"], f["first_sample"], f["fs_mhz"], f["gain_uv"], f["baseline"], tuple(f["lead_ids"])) == (
                py.seq, py.first_sample, py.fs_mhz, py.gain_uv, py.baseline, py.lead_ids)
            assert (tuple(f["gains_uv"]), tuple(f["baselines"])) == (py.gains_uv, py.baselines)
            np.testing.assert_array_equal(np.array(f["samples"]), py.samples)
    assert {DecodeErrorKind.BAD_CRC, DecodeErrorKind.BAD_COBS} <= {e.kind for e in events if isinstance(e, DecodeError)}


def test_v2_stream_c_and_python_agree_under_damage(build, tmp_path):
    # Per-lead gains (protocol v2) from a raw file, damaged on the wire: both decoders report the
    # same events, and every frame carries each lead's own gain and baseline.
    n = 20_000
    adu = np.random.default_rng(5).integers(-2000, 2000, size=(n, 3))
    raw = tmp_path / "three.i16"
    raw.write_bytes(adu.astype("<i2").tobytes())
    data = _ecgsim(build, "--raw", raw, "--fs", 360, "--leads", 3, "--gain-uv", "5,2.5,1", "--baseline", "1024,-3,0",
                   "--lead-names", "MLII,V5,V1", "--speed", 0, "--flip-bits", 1e-4, "--drop-bytes", 1e-4, "--seed", 3)
    dump = subprocess.run([str(build / "ecgbdump"), "--chunk", "5"], input=data, capture_output=True, timeout=30)
    c_lines = [json.loads(line) for line in dump.stdout.splitlines()]
    c_stats = c_lines.pop()["stats"]
    decoder = FrameDecoder()
    events = decoder.feed(data)
    assert c_stats == decoder.stats and len(c_lines) == len(events)
    frames = [e for e in events if isinstance(e, Frame)]
    assert 0 < len(frames) < len(events) and decoder.stats["bad_crc"] > 0
    for c, py in zip(c_lines, events):
        if isinstance(py, Frame):
            assert c["frame"]["version"] == 2 and c["frame"]["gains_uv"] == [5.0, 2.5, 1.0]
            assert (tuple(c["frame"]["gains_uv"]), tuple(c["frame"]["baselines"])) == (py.gains_uv, py.baselines)
            np.testing.assert_array_equal(np.array(c["frame"]["samples"]), py.samples)
            np.testing.assert_array_equal(py.samples, adu[py.first_sample:py.end_sample].T)
        else:
            assert c == {"error": py.kind.value}
    assert {f.baselines for f in frames} == {(1024, -3, 0)}


@pytest.mark.data
def test_lead_off_injection(build, wfdb, mitdb_100):
    n = 3 * MITDB_FS
    data = _play(build, mitdb_100, "--speed", 0, "--seconds", 3, "--lead-off", "V5@1-2", "--lead-off", "0@1.5-1.6:rail")
    got = Received(data, 2, n)
    expected = _digital(wfdb, mitdb_100, n).copy()
    t = np.arange(n) / MITDB_FS
    v5_off = (t >= 1) & (t < 2)
    mlii_off = (t >= 1.5) & (t < 1.6)
    expected[1, v5_off] = 1024  # the baseline: 0 mV
    expected[0, mlii_off] = 2047  # the rail of a 12-bit (format 212) ADC
    np.testing.assert_array_equal(got.samples, expected)
    for f in got.frames:
        span = slice(f.first_sample, f.end_sample)
        assert bool(f.lead_off & 0b10) == v5_off[span].any()
        assert bool(f.lead_off & 0b01) == mlii_off[span].any()
        assert f.leads_off == tuple(name for bit, name in ((1, "MLII"), (2, "V5")) if f.lead_off & bit)


@pytest.mark.data
def test_raw_input_and_loop(build, wfdb, chapman_js00001, tmp_path):
    source = _digital(wfdb, chapman_js00001)
    raw = tmp_path / "js00001.i16"
    raw.write_bytes(source.T.astype("<i2").tobytes())
    n = 12_000  # 2.4 passes over a 5000-sample record
    data = _ecgsim(build, "--raw", raw, "--fs", 500, "--leads", 12, "--gain-uv", 1, "--speed", 0, "--loop",
                   "--max-samples", n)
    got = Received(data, 12, n)
    assert got.errors == [] and got.events == [] and got.end == n
    np.testing.assert_array_equal(got.samples, source[:, np.arange(n) % source.shape[1]])
    assert got.frames[0].lead_ids == STANDARD_12_LEADS


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.drop")  # inside wfdb.wrsamp
@pytest.mark.parametrize("fmt, limit, wire_format", [("16", 32767, "int16"), ("212", 2047, "int16"),
                                                    ("24", 8388607, "int24")])
def test_wfdb_formats_are_streamed_exactly(build, wfdb, tmp_path, fmt, limit, wire_format):
    # Three signals and an odd sample count: format 212 then ends in half a byte triple.
    source = np.random.default_rng(0).integers(-limit, limit, size=(1001, 3))
    wfdb.wrsamp(f"r{fmt}", fs=250, units=["mV"] * 3, sig_name=["I", "aVF", "V3R"], d_signal=source,
                fmt=[fmt] * 3, adc_gain=[100.0] * 3, baseline=[7] * 3, write_dir=str(tmp_path))
    got = Received(_play(build, tmp_path / f"r{fmt}", "--speed", 0), 3, 1001)
    assert got.errors == [] and got.events == [] and got.end == 1001
    np.testing.assert_array_equal(got.samples, source.T)
    first = got.frames[0]
    assert (first.sample_format.value, first.lead_ids, first.gain_uv, first.baseline) == (
        wire_format, ("I", "aVF", "V3R"), 10.0, 7)


def _read_until_closed(read, timeout: float = 15) -> bytes:
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = read()
        if chunk is None:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.data
def test_pty(build, wfdb, mitdb_100, tmp_path):
    n = 5 * MITDB_FS
    sim = subprocess.Popen([str(build / "ecgsim"), "--pty", "--speed", "0", "--seconds", "5",
                            *_device(mitdb_100, tmp_path)],
                           stderr=subprocess.PIPE)
    try:
        path = ecgsim_announces(sim, "PTY ")
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        tty.setraw(fd)  # as a serial reader would; ecgsim has already made it raw

        def read() -> bytes | None:
            if not select.select([fd], [], [], 0.5)[0]:
                return None
            try:
                return os.read(fd, 65536)
            except OSError:  # EIO: the device side closed
                return b""

        data = _read_until_closed(read)
        os.close(fd)
        assert sim.wait(timeout=15) == 0
    finally:
        sim.kill()
        sim.wait()
    got = Received(data, 2, n)
    assert got.errors == [] and got.events == [] and got.end == n
    np.testing.assert_array_equal(got.samples, _digital(wfdb, mitdb_100, n))


def _read_socket(sock: socket.socket) -> bytes:
    sock.settimeout(15)

    def read() -> bytes:
        try:
            return sock.recv(65536)
        except ConnectionResetError:
            return b""

    return _read_until_closed(read)


@pytest.mark.data
def test_tcp_listen_with_disconnects(build, wfdb, mitdb_100, tmp_path):
    # Every 2 s of signal the link drops for 0.5 s (180 samples, plus the frame in hand); the
    # receiver reconnects each time and reports each outage as one gap.
    n = 6 * MITDB_FS
    sim = subprocess.Popen([str(build / "ecgsim"), "--tcp-listen", "0", "--speed", "0", "--seconds", "6",
                            "--disconnect-after", "2:0.5", *_device(mitdb_100, tmp_path)], stderr=subprocess.PIPE)
    data, connections = b"", 0
    try:
        port = int(ecgsim_announces(sim, "LISTEN ").rsplit(":", 1)[1])
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            except ConnectionRefusedError:
                break  # ecgsim finished and closed its listening socket
            with sock:
                chunk = _read_socket(sock)
            connections += chunk.startswith(b"\0")
            data += chunk
        assert sim.wait(timeout=15) == 0
    finally:
        sim.kill()
        sim.wait()
    got = Received(data, 2, n)
    assert connections == 3 and got.errors == []
    assert [g.n_samples for g in got.gaps] == [180 + 14, 180 + 14]  # 14 samples per frame at 360 Hz
    assert got.gaps[0].start >= 2 * MITDB_FS and got.gaps[1].start >= 4 * MITDB_FS
    got.assert_accounted_for()
    np.testing.assert_array_equal(got.samples[:, got.seen], _digital(wfdb, mitdb_100, n)[:, got.seen])


@pytest.mark.data
def test_tcp_connect(build, wfdb, mitdb_100, tmp_path):
    n = 3 * MITDB_FS
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(15)
        port = server.getsockname()[1]
        sim = subprocess.Popen([str(build / "ecgsim"), "--quiet", "--tcp-connect", f"127.0.0.1:{port}",
                                "--speed", "0", "--seconds", "3", *_device(mitdb_100, tmp_path)])
        try:
            conn, _ = server.accept()
            with conn:
                data = _read_socket(conn)
            assert sim.wait(timeout=15) == 0
        finally:
            sim.kill()
            sim.wait()
    got = Received(data, 2, n)
    assert got.errors == [] and got.end == n
    np.testing.assert_array_equal(got.samples, _digital(wfdb, mitdb_100, n))


@pytest.mark.data
def test_speed_paces_the_stream(build, mitdb_100):
    start = time.monotonic()
    _play(build, mitdb_100, "--speed", 10, "--seconds", 5)
    assert time.monotonic() - start >= 0.45  # 5 s of signal at 10x; a lower bound only


@pytest.mark.parametrize("args, message", [
    (["--no-such-option"], "unknown option"),
    (["/nonexistent/record"], "no WFDB record at /nonexistent/record"),
    (["--raw", "/nonexistent.i32", "--fs", "360", "--leads", "1", "--gain-uv", "5"], "No such file"),
    (["--raw", "x.i32", "--fs", "360", "--leads", "3", "--gain-uv", "5,2.5"], "one per lead (3)"),
    (["--raw", os.devnull, "--fs", "360", "--leads", "2", "--gain-uv", "5,2.5", "--protocol", "1"],
     "use --protocol 2"),
    (["--raw", "x.i16"], "--raw needs --fs"),
    (["--drop-bytes", "2", "r"], "probability"),
])
def test_ecgsim_rejects_bad_arguments(build, args, message):
    done = subprocess.run([str(build / "ecgsim"), *args], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.data
def test_ecgsim_refuses_frames_over_the_limit(build, mitdb_100, tmp_path):
    done = subprocess.run([str(build / "ecgsim"), "--samples-per-frame", "1000", *_device(mitdb_100, tmp_path)],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "at most 246" in done.stderr
