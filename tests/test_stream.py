"""``ecgedge stream`` end to end: the C simulated device streams a real Chapman record over a pty,
TCP loopback, a pipe or as a ``wfdb:`` source into the session; faults are injected and found.

Every run is checked the same way (:func:`helpers.check_run`):

- every sample index is accounted for once: in a window's ``new`` span (classified or unreliable),
  in a reported gap, or pending at the end (less than a hop);
- every classified window equals the offline classification of the same window: ``runner.infer``
  on ``normalise_windows(preprocess_signal(signal since the segment started)[:, e - 2048:e])``,
  probabilities to 1e-5 (records carry 6 decimals);
- the rhythm-change events are what hysteresis makes of those offline labels.

The model is the linear one of :func:`helpers.linear_export` (every sample moves its output), and the
real architecture's untrained INT8 export where torch is installed to build it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import socket
import typing
import subprocess
import threading
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.cobs import cobs_encode, encode_frame
from ecgedge.bridge.frame import DeviceFlag, Frame, LabelFrame, pack_label_frame
from ecgedge.bridge.sources import (
    LinkEvent,
    SerialSource,
    SimulatorSource,
    StdinSource,
    TcpListenSource,
    TcpSource,
    source_from_spec,
)
from ecgedge.cli.stream import stream_cmd
from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.manifest import load_manifest
from ecgedge.runtime import Backend, Precision, runner_from_export
from ecgedge.stream import events, session
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.run import stream_precision
from ecgedge.stream.session import StreamSession
from ecgedge.stream.show import PngEvents, TerminalView
from helpers import FS, SPF, CountingRunner, check_run, cli, ecgsim_announces, feed, linear_export, looped, mv, of, python_frames


# ---- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return linear_export(tmp_path_factory.mktemp("stream") / "linear")


@pytest.fixture(scope="module")
def runner(export):
    with runner_from_export(export, "fp32", threads=1) as r:
        yield r


def ecgsim(build: Path, *args) -> bytes:
    done = subprocess.run([str(build / "ecgsim"), "--quiet", "--speed", "0", *map(str, args)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def session_for(runner, export: Path, settings: StreamSettings = StreamSettings(), **kwargs) -> StreamSession:
    return StreamSession(StreamHub(runner, ModelSpec.from_manifest(load_manifest(export)), settings), **kwargs)


# ---- sources and the command line ---------------------------------------------------------------


@pytest.mark.parametrize("spec, kind, attrs", [
    ("serial:/dev/ttyUSB0@921600", SerialSource, {"device": "/dev/ttyUSB0", "baud": 921600}),
    ("serial:/dev/pts/3", SerialSource, {"device": "/dev/pts/3", "baud": 115200}),
    ("tcp://127.0.0.1:5555", TcpSource, {"host": "127.0.0.1", "port": 5555}),
    ("tcp-listen://127.0.0.1:0", TcpListenSource, {"host": "127.0.0.1", "port": 0}),
    ("wfdb:../shared/data/mitdb/100@10", SimulatorSource, {"record": "../shared/data/mitdb/100", "speed": 10.0}),
    ("wfdb:rec", SimulatorSource, {"record": "rec", "speed": 1.0}),
    ("stdin", StdinSource, {}),
])
def test_source_specs(spec, kind, attrs):
    source = source_from_spec(spec)
    assert isinstance(source, kind)
    assert {k: getattr(source, k) for k in attrs} == attrs


@pytest.mark.parametrize("spec, message", [
    ("usb0", "is not a source; expected serial:DEVICE"),
    ("serial:/dev/ttyUSB0@fast", r"expected serial:DEVICE\[@BAUD\]"),
    ("tcp://localhost", "expected HOST:PORT"),
    ("tcp://host:70000", "port in 1..65535"),
    ("wfdb:rec@-1", r"SPEED >= 0"),
])
def test_malformed_source_specs_say_what_is_expected(spec, message):
    with pytest.raises(ConfigError, match=message):
        source_from_spec(spec)


def test_cli_help_and_bad_source(export):
    app = typer.Typer()
    app.command()(stream_cmd)
    runner = CliRunner()
    help_text = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    for flag in ("--source", "--hop", "--out", "--show", "--show-png", "--hysteresis", "--precision", "--max-outage"):
        assert flag in help_text
    res = runner.invoke(app, [str(export), "--source", "modem:1", "--precision", "fp32"])
    assert res.exit_code == 2 and "error: --source 'modem:1' is not a source" in res.output
    res = runner.invoke(app, [str(export), "--source", "tcp://127.0.0.1:1", "--precision", "fp32"])
    assert res.exit_code == 2 and "cannot connect to tcp://127.0.0.1:1" in res.output


def test_default_precision_is_int8_only_when_the_gate_accepted_it(export):
    m = load_manifest(export)  # the linear export has the FP32 reference only
    assert stream_precision(m, Backend.ort_cpu) == (Precision.fp32, "int8 is missing in the export; running the fp32 artefact")
    m.data["artefacts"]["int8"] = {"file": "model.fp32.onnx", "precision": "int8", "status": "rejected"}
    assert stream_precision(m, Backend.ort_cpu) == (Precision.fp32, "int8 is rejected in the export; running the fp32 artefact")
    m.data["artefacts"]["int8"]["status"] = "accepted"
    assert stream_precision(m, Backend.ort_cpu) == (Precision.int8, "")
    m.data["artefacts"]["int8"]["status"] = m.data["artefacts"]["fp32"]["status"] = "rejected"
    with pytest.raises(ArtefactError, match="no artefact the accuracy gate accepted for ort-cpu .int8: rejected, fp32: rejected."):
        stream_precision(m, Backend.ort_cpu)


def test_tcp_listen_source_accepts_the_device_again():
    source = TcpListenSource("127.0.0.1", 0)
    source.open()
    port = source.port

    def device():
        for payload in (b"\0abc", b"\0def"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(payload)
            time.sleep(0.1)

    threading.Thread(target=device, daemon=True).start()
    got, deadline = [], time.monotonic() + 10
    for item in source.chunks(0.05):
        if item:
            got.append(item)
        if sum(isinstance(x, LinkEvent) and x.state == "down" for x in got) == 2 or time.monotonic() > deadline:
            break
    source.close()
    assert b"".join(x for x in got if isinstance(x, bytes)) == b"\0abc\0def"
    assert [x.state for x in got if isinstance(x, LinkEvent)] == ["up", "down", "up", "down"]


def test_stream_runs_without_torch(export, runner):
    """The bedside path (stdin -> decoder -> monitor -> ONNX Runtime) with torch unimportable."""
    x = synthesize_ecg("AFIB", seed=2, duration_s=14.0, fs=FS)[0].astype(np.float64)
    data = b"\0" + b"".join(python_frames(x, FS, STANDARD_12_LEADS))
    block = """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked in this test")
        sys.meta_path.insert(0, Block())
    """
    records, stderr = cli(export, "--source", "stdin", input=data, prelude=block)
    assert "NO_TORCH" in stderr
    assert records[0] == {"type": "session", "export": str(export), "model": "linear", "precision": "fp32", "backend": "ort-cpu",
                          "labels": ["SB", "AFIB", "GSVT", "SR"], "leads": list(STANDARD_12_LEADS), "window_s": 8.192,
                          "hop_s": 1.0, "hysteresis": 3, "source": "stdin",
                          "note": "int8 is missing in the export; running the fp32 artefact"}
    assert "note: int8 is missing in the export" in stderr
    assert len(of(records, "window")) == 14 and len(of(records, "window", 0)) == 14
    check_run(records, mv(np.round(x * 1000)), runner)


# ---- sessions in process: decoding, faults, several beds ----------------------------------------


@pytest.mark.c
@pytest.mark.data
def test_session_decodes_ecgsim_exactly_and_finds_injected_faults(build, chapman, source_adu, export, runner):
    n = 25_000
    data = ecgsim(build, "--loop", "--max-samples", n, "--drop-frames", "400-402", "--lead-off", "V1@35-36.5", chapman)
    sent = looped(source_adu, n, lead_off=[(6, 35, 36.5)])
    delivered, got = np.zeros((12, n), np.int64), np.zeros(n, bool)

    def on_frame(f):
        delivered[:, f.first_sample:f.end_sample], got[f.first_sample:f.end_sample] = f.samples, True

    records = feed(session_for(runner, export, on_frame=on_frame), data, chunks=(1, 517, 4096, 33))
    np.testing.assert_array_equal(delivered[:, got], sent[:, got])  # exact: raw ADC integers through the wire
    assert of(records, "gap") == [{"type": "gap", "stream": 0, "t": 16.0, "samples": [8_000, 8_060], "seconds": 0.12,
                                  "frames_lost": 3}]
    assert got.sum() == n - 60 and of(records, "decode_error") == []
    wins = check_run(records, mv(sent), runner)
    for w in wins:
        start, end = w["samples"]
        if 8_000 < end < 8_060 + 5_000:  # overlaps the gap, or ends before the filters have settled after it
            assert w["quality"] == "unreliable" and w["reason"] in ("gap", "settling after gap"), w
        elif start < 36.5 * FS and end > 35 * FS:
            assert w["quality"] == "unreliable" and w["reason"] == "lead-off: V1" and w["leads"] == ["V1"], w
        elif end >= 5_000:
            assert w["quality"] == "ok", w
    assert of(records, "window")[-1]["quality"] == "ok"  # recovered
    assert [q["quality"] for q in of(records, "quality")] == ["unreliable", "ok", "unreliable", "ok", "unreliable", "ok"]


@pytest.mark.c
@pytest.mark.data
def test_bit_errors_are_reported_and_the_stream_recovers(build, chapman, source_adu, export, runner):
    n = 40_000
    data = ecgsim(build, "--loop", "--max-samples", n, "--flip-bits", "1e-6", "--drop-bytes", "2e-7", "--seed", 4, chapman)
    session = session_for(runner, export)
    records = feed(session, data)
    errors, gaps = of(records, "decode_error"), of(records, "gap")
    assert errors and gaps and records[-1]["decode_errors"] == len(errors)
    assert {e["kind"] for e in errors} <= {"bad_crc", "bad_cobs", "bad_length"}
    assert all(g["frames_lost"] >= 1 and g["samples"][0] % SPF == 0 and g["samples"][1] % SPF == 0 for g in gaps)
    wins = check_run(records, mv(looped(source_adu, n)), runner)
    after_first_gap = [w for w in wins if w["samples"][0] >= gaps[0]["samples"][1]]
    assert any(w["quality"] == "ok" for w in after_first_gap)


def test_several_beds_in_one_process_batched(export, runner):
    beds = {0: synthesize_ecg("SR", seed=5, duration_s=16.0)[0], 1: synthesize_ecg("AFIB", seed=6, duration_s=16.0)[0]}
    per_bed = {sid: python_frames(x.astype(np.float64), FS, STANDARD_12_LEADS, stream_id=sid) for sid, x in beds.items()}
    two_leads = python_frames(synthesize_ecg("SR", seed=7, duration_s=3.0, fs=360.0, leads=("II", "V5"))[0].astype(np.float64),
                              360.0, ("MLII", "V5"), stream_id=7, spf=14)
    interleaved = [f for group in zip(per_bed[0], per_bed[1], two_leads + [b""] * 400) for f in group]
    counting = CountingRunner(runner)
    session = StreamSession(StreamHub(counting, ModelSpec.from_manifest(load_manifest(export))))
    records = feed(session, b"\0" + b"".join(interleaved), chunks=(30_000,))
    # Both 12-lead beds' windows share every inference call.
    assert min(counting.batches) >= 2 and sum(counting.batches) == sum(w["quality"] == "ok" for w in of(records, "window"))
    assert of(records, "stream_error")[0]["detail"].startswith("stream 7 carries leads MLII, V5; the model needs I, III")
    assert of(records, "window", 7) == [] and records[-1]["streams"][2]["refused"]
    for sid, frames in per_bed.items():
        alone = feed(session_for(runner, export), b"\0" + b"".join(frames))
        strip = lambda rs: [r for r in rs if r["type"] != "summary"]  # noqa: E731
        assert [r for r in strip(records) if r.get("stream") == sid] == strip(alone)
        check_run(records, mv(np.round(beds[sid].astype(np.float64) * 1000)), runner, stream=sid)


def _eventful_stream() -> list[bytes]:
    """One bed's reads (a frame, a label frame or bad bytes each): short and long gaps, lead-off, a
    calibration pulse, undecodable bytes, a repeated frame, device labels, a gain change, a reboot."""
    adu = np.round(synthesize_ecg("SR", seed=21, duration_s=40.0)[0] * 1000).astype(np.int64)
    reads, sent = [], []
    for k in range(adu.shape[1] // SPF):
        first = k * SPF if k < 760 else (k - 760) * SPF  # frame 760: the device reboots
        if k in (475, 560, 561) or 600 <= k < 612:  # lost: one frame (concealed), two, then 0.24 s
            continue
        frame = Frame(stream_id=0, seq=k if k < 760 else k - 760, first_sample=first, fs_hz=FS,
                      lead_ids=STANDARD_12_LEADS, samples=adu[:, k * SPF:(k + 1) * SPF], gain_uv=1.0 if k < 650 else 2.0,
                      lead_off=0b100 if 520 <= k < 542 else 0,
                      device_flags=int(DeviceFlag.CALIBRATION) if 465 <= k < 471 else 0)
        reads.append(encode_frame(frame))
        sent.append(reads[-1])
        if k in (549, 711):  # after the frame that completes a window
            reads.append(b"\x05\x01\x02\x00")  # bad COBS
            reads.append(sent[-3][:200] + b"\0")  # a frame cut short
        if k == 574:
            reads.append(sent[-2])  # a repeat
        if k % 50 == 24 or k == 990:  # the device's own verdicts
            label = LabelFrame(0, k // 25, max(0, frame.end_sample - 4_096), frame.end_sample, FS,
                               1, "AF", (3, -2), 0.5, 0)
            reads.append(cobs_encode(pack_label_frame(label)) + b"\0")
    return reads


def test_samples_wait_in_runs_and_records_are_those_of_pushing_every_frame(export, runner):
    """With ``flush=False`` each bed's contiguous frames wait in one run and reach its monitor as one chunk
    (at the flush, or when it holds more than a second): every record is the same, in the same order, as
    when every frame goes to the monitor at once (``flush=True`` per read), whatever the reads and flushes."""
    settings = StreamSettings(conceal_max_s=0.1, hysteresis=1)
    reads = _eventful_stream()
    per_frame = session_for(runner, export, settings)
    want = [r for read in reads for r in per_frame.feed(read)] + [per_frame.summary()]
    kinds = {r["type"] for r in want}
    assert {"gap", "dropped_frame", "restart", "format_change", "decode_error", "device_label"} <= kinds
    assert {w["reason"].split(":")[0] for w in of(want, "window") if w["quality"] != "ok"} >= {
        "gap", "lead-off", "device", "restart", "starting up"}
    assert any(g["concealed"] for g in of(want, "gap")) and any(w.get("host_label") for w in of(want, "device_label"))

    for flush_every in (1, 37, 400, len(reads)):
        session = session_for(runner, export, settings)
        got = []
        for i, read in enumerate(reads, 1):
            assert session.feed(read, flush=False) == []
            if i % flush_every == 0:
                got += session.flush()
        got += session.flush()
        assert got + [session.summary()] == want, flush_every
    one_read = session_for(runner, export, settings)
    assert one_read.feed(b"".join(reads)) + [one_read.summary()] == want


def test_beds_fed_together_keep_their_own_records_in_order(export, runner):
    """Two beds' reads interleaved, flushed now and then: each bed's records, and the decode errors among
    all records, are those of pushing every frame at once."""
    other = python_frames(synthesize_ecg("AFIB", seed=23, duration_s=30.0)[0].astype(np.float64), FS, STANDARD_12_LEADS,
                          stream_id=1)
    reads = [r for pair in itertools.zip_longest(_eventful_stream(), other, fillvalue=b"") for r in pair]
    per_frame = session_for(runner, export)
    want = [r for read in reads for r in per_frame.feed(read)]
    session, got = session_for(runner, export), []
    for i, read in enumerate(reads, 1):
        session.feed(read, flush=False)
        if i % 53 == 0:
            got += session.flush()
    got += session.flush()
    bed = lambda rs, sid: [r for r in rs if r.get("stream") == sid]  # noqa: E731
    assert len(bed(want, 1)) > 20 and bed(got, 0) == bed(want, 0) and bed(got, 1) == bed(want, 1)
    assert [bed(got[:i], 0) for i, r in enumerate(got) if r["type"] == "decode_error"] == [
        bed(want[:i], 0) for i, r in enumerate(want) if r["type"] == "decode_error"]
    assert session.summary() == per_frame.summary()


def test_a_bed_holds_at_most_a_second_of_samples_between_flushes(export, runner):
    x = synthesize_ecg("SR", seed=22, duration_s=3.0)[0].astype(np.float64)
    session = session_for(runner, export)
    frames = python_frames(x, FS, STANDARD_12_LEADS)  # 20 samples each
    session.feed(b"".join(frames[:60]), flush=False)
    monitor = session.hub.monitors[0]
    # Runs of 26 frames (520 samples, more than 500: a second) went on; the last 8 frames wait.
    assert monitor.next_sample == 1_040 and session.pending >= 1
    session.feed(b"", flush=False)
    assert session.pending >= 1  # a read without frames sends nothing on: the samples still wait
    records = session.flush()
    assert monitor.next_sample == 1_200 and session.pending == 0
    assert session.summary()["streams"][0]["pending"] + sum(w["new"][1] - w["new"][0] for w in of(records, "window")) == 1_200


def test_device_restart_and_format_change(export, runner):
    x = synthesize_ecg("SR", seed=8, duration_s=12.0)[0].astype(np.float64)
    x2 = synthesize_ecg("SR", seed=11, duration_s=12.0)[0].astype(np.float64)
    y = synthesize_ecg("SR", seed=9, duration_s=12.0, fs=250.0)[0].astype(np.float64)
    frames = (python_frames(x[:, :5_700], FS, STANDARD_12_LEADS)          # the device runs 11.4 s,
              + python_frames(x2[:, :5_900], FS, STANDARD_12_LEADS)        # reboots: index 0, seq 0 again,
              + python_frames(y, 250.0, STANDARD_12_LEADS, first=5_900, seq=295, spf=10))  # then runs at 250 Hz
    records = feed(session_for(runner, export), b"\0" + b"".join(frames))
    assert of(records, "restart") == [{"type": "restart", "stream": 0, "expected_sample": 5_700, "first_sample": 0}]
    assert of(records, "format_change") == [{"type": "format_change", "stream": 0, "first_sample": 5_900, "changed": ["fs_hz"]}]
    wins = of(records, "window")
    assert [w["reason"] for w in wins if w["new"] == [5_500, 5_700]] == ["restart"]  # before the reboot
    assert [w["reason"] for w in wins if w["new"] == [5_500, 5_900]] == ["format change"]  # before the new rate
    at_250 = wins[wins.index(next(w for w in wins if w["new"] == [5_500, 5_900])) + 1:]
    assert at_250[0]["new"] == [5_900, 6_150] and at_250[0]["reason"] == "format change"
    assert [w["samples"][1] for w in at_250 if w["quality"] == "ok"] == list(range(5_900 + 2_500, 8_901, 250))
    assert records[-1]["streams"][0]["received"] == 5_700 + 5_900 + 3_000


def test_repeated_and_late_frames_are_dropped_and_reported(export, runner):
    x = synthesize_ecg("SR", seed=12, duration_s=12.0)[0].astype(np.float64)
    f = python_frames(x, FS, STANDARD_12_LEADS)
    records = feed(session_for(runner, export), b"\0" + b"".join(f[:100] + [f[99]] + f[102:200] + [f[100]] + f[200:]))
    assert of(records, "dropped_frame") == [
        {"type": "dropped_frame", "stream": 0, "seq": 99, "first_sample": 1_980, "reason": "repeat"},
        {"type": "dropped_frame", "stream": 0, "seq": 100, "first_sample": 2_000, "reason": "out_of_order"}]
    assert [g["samples"] + [g["frames_lost"]] for g in of(records, "gap")] == [[2_000, 2_040, 2]]  # the gap stands
    check_run(records, mv(np.round(x * 1000)), runner)
    assert records[-1]["streams"][0]["dropped_frames"] == 2


def test_every_record_type_is_a_typed_event():
    """The session's table of record types names one event class per type, and those are exactly
    the events a session hands out (:data:`ecgedge.stream.events.Event`), each with ``to_json``."""
    rows = re.findall(r"^``(\w+)``\s+``(\w+)``", session.__doc__, re.M)
    # 17th: device_label (ecgsim --classify); device_beats (--beats); heart_rate and rate_alarm (the host's beats)
    assert len(rows) == len({kind for kind, _ in rows}) == 20
    classes = {getattr(events, name) for _, name in rows}
    assert classes == set(typing.get_args(events.Event))
    assert all(dataclasses.is_dataclass(c) and "to_json" in vars(c) for c in classes)
    change = events.RhythmChange("bed", 12.0004, 6000, None, "SR", 3, 0.912345)
    assert change.to_json() == {"type": "rhythm_change", "stream": "bed", "t": 12.0, "sample": 6000, "from": None, "to": "SR",
                                "held_windows": 3, "confidence": 0.9123}
    assert events.QualityChange(0, 1.0, 500, False, "starting up").to_json() == {
        "type": "quality", "stream": 0, "t": 1.0, "sample": 500, "quality": "unreliable", "reason": "starting up"}
    assert "reason" not in events.QualityChange(0, 2.0, 1000, True).to_json()


def test_a_missing_record_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no WFDB record at .*nothing .expected .*nothing.hea."):
        source_from_spec(f"wfdb:{tmp_path / 'nothing'}@0").open()


def test_terminal_view_and_png_strips(export, runner, tmp_path):
    x = synthesize_ecg("SB", seed=10, duration_s=16.0)[0].astype(np.float64)
    frames = python_frames(x, FS, STANDARD_12_LEADS, lead_off={k: 1 << 1 for k in range(300, 325)})  # lead II off, 12-13 s
    screen = StringIO()
    views = [TerminalView(screen, size=(100, 24), min_interval_s=0), PngEvents(tmp_path / "png")]
    session = session_for(runner, export, StreamSettings(hysteresis=1), on_frame=lambda f: [v.frame(f) for v in views])
    records = []
    for frame in frames:  # one frame per read, as at real time
        new = session.feed(frame)
        records += new
        for v in views:
            v.update(new)
    text = screen.getvalue()
    assert "\x1b[H" in text and "bed 0" in text and "lead II" in text and "UNRELIABLE: lead-off: II" in text
    last = text.rsplit("\x1b[H", 1)[1]
    assert f"rhythm \x1b[1m{of(records, 'rhythm_change')[-1]['to']}" in last and "│" in last
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir() if p.name != ".ecgedge-folder.json")  # the strips folder's marker
    assert any("unreliable" in p for p in pngs) and any("rhythm_none-" in p for p in pngs), pngs
    assert all((tmp_path / "png" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


# ---- end to end with real processes -------------------------------------------------------------


def _decode_capture(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(samples in ADC units, which were delivered) from a --tee capture."""
    adu, seen = np.zeros((12, n), np.int64), np.zeros(n, bool)
    for f in FrameDecoder().feed(path.read_bytes()):
        if isinstance(f, Frame):
            adu[:, f.first_sample:f.end_sample], seen[f.first_sample:f.end_sample] = f.samples, True
    return adu, seen


@pytest.mark.c
@pytest.mark.data
def test_pty_end_to_end(build, chapman, source_adu, export, runner, tmp_path):
    n = 30_000  # 60 s: the 10-s record three times over
    sim = subprocess.Popen([str(build / "ecgsim"), "--pty", "--speed", "0", "--loop", "--max-samples", str(n),
                            "--drop-frames", "1000-1002", "--lead-off", "V1@20-22", str(chapman)], stderr=subprocess.PIPE)
    try:
        pty = ecgsim_announces(sim, "PTY ")
        records, _ = cli(export, "--source", f"serial:{pty}@921600", "--precision", "fp32", "--max-outage", "1",
                         "--tee", tmp_path / "capture.bin")
        assert sim.wait(timeout=15) == 0
    finally:
        sim.kill()
        sim.wait()
    sent = looped(source_adu, n, lead_off=[(6, 20, 22)])
    adu, seen = _decode_capture(tmp_path / "capture.bin", n)
    np.testing.assert_array_equal(adu[:, seen], sent[:, seen])  # decoded samples equal the source's, exactly
    start = of(records, "stream_start")[0]["sample"]  # 0 unless opening the port flushed the first frame
    assert start < 200 and seen[start:].sum() == n - start - 60
    assert all(e["offset"] < 1100 for e in of(records, "decode_error"))  # at most a frame cut by that flush
    assert of(records, "gap") == [{"type": "gap", "stream": 0, "t": 40.0, "samples": [20_000, 20_060], "seconds": 0.12,
                                  "frames_lost": 3}]
    wins = check_run(records, mv(sent), runner)
    assert {w["reason"] for w in wins if w["quality"] == "unreliable" and 10_000 < w["samples"][1] < 15_000} == {"lead-off: V1"}
    assert sum(w["quality"] == "ok" for w in wins if w["samples"][0] >= 20_060) == 10  # recovered after the gap
    assert of(records, "link")[-1]["state"] == "down" and records[-1]["ended"] == "no data for 1 s"


@pytest.mark.c
@pytest.mark.data
def test_tcp_end_to_end_with_disconnects(build, chapman, source_adu, export, runner):
    n = 30_000
    sim = subprocess.Popen([str(build / "ecgsim"), "--tcp-listen", "0", "--speed", "0", "--loop", "--max-samples", str(n),
                            "--disconnect-after", "20:0.5", str(chapman)], stderr=subprocess.PIPE)
    try:
        port = int(ecgsim_announces(sim, "LISTEN ").rsplit(":", 1)[1])
        records, _ = cli(export, "--source", f"tcp://127.0.0.1:{port}", "--precision", "fp32", "--max-outage", "1.5")
        assert sim.wait(timeout=15) == 0
        log = sim.stderr.read().decode()
    finally:
        sim.kill()
        sim.wait()
    # ecgsim loses the frame in hand and 0.5 s of samples at each disconnect.
    cuts = [int(s) for s in re.findall(r"disconnect at sample (\d+)", log)]
    assert len(cuts) == 2
    assert [g["samples"] for g in of(records, "gap")] == [[c, c + SPF + 250] for c in cuts]
    assert [r["state"] for r in of(records, "link")][:4] == ["down", "up", "down", "up"]
    assert records[-1]["link_down"] == 3 and records[-1]["decode_errors"] == 0  # the last "down": the device finished
    wins = check_run(records, mv(looped(source_adu, n)), runner)
    for cut in cuts:
        # Classification resumes by itself once a full, settled window has arrived since the gap.
        first_ok = next(w for w in wins if w["quality"] == "ok" and w["samples"][0] >= cut + SPF + 250)
        assert first_ok["samples"][1] == cut + SPF + 250 + 5_000


@pytest.mark.c
@pytest.mark.data
def test_wfdb_source_with_the_int8_model_and_live_views(build, chapman, source_adu, tmp_path):
    pytest.importorskip("torch", reason="torch builds the untrained INT8 export of the real architecture")
    from ecgedge.bench import untrained_export

    folder = untrained_export(tmp_path / "int8")
    n = 15_000
    records, stderr = cli(folder, "--source", f"wfdb:{chapman}@0", "--precision", "int8", "--sim", f"--loop --max-samples {n}", "--show",
                          "--show-png", tmp_path / "png", "--hysteresis", "2")
    assert "\x1b[H" in stderr and "bed 0" in stderr  # the strip chart went to stderr, the records to stdout
    with runner_from_export(folder, "int8", threads=1) as int8:
        wins = check_run(records, mv(looped(source_adu, n)), int8, hysteresis=2)
    assert sum(w["quality"] == "ok" for w in wins) == 21
    assert records[-1]["source"].startswith("wfdb:") and records[-1]["ended"] == "end of stream"
    assert len(list((tmp_path / "png").glob("bed0_*_rhythm_*.png"))) == len(of(records, "rhythm_change")) >= 1


def test_v2_frames_are_converted_with_each_leads_own_gain(export, runner):
    """Wire protocol v2 (a gain and baseline per lead): the same mV sent with 12 different gains and
    baselines gives the same windows as one gain for every lead (v1). Gains are powers of two, so
    both reach exactly the same mV."""
    from ecgedge.bridge.cobs import encode_frame
    from ecgedge.bridge.frame import Frame, SampleFormat

    x = synthesize_ecg("AFIB", seed=5, duration_s=10.0, fs=FS)[0].astype(np.float64)
    adu = np.round(x * 1000).astype(np.int64)  # 1 µV per unit
    gains = tuple(2.0 ** -(i % 4) for i in range(12))
    baselines = tuple(100 * i - 600 for i in range(12))
    scaled = adu * (1 / np.array(gains))[:, None].astype(np.int64) + np.array(baselines)[:, None]
    v2 = b"\0" + b"".join(
        encode_frame(Frame(stream_id=0, seq=k, first_sample=a, fs_hz=FS, lead_ids=STANDARD_12_LEADS,
                           samples=scaled[:, a:a + SPF], version=2, gains_uv=gains, baselines=baselines,
                           sample_format=SampleFormat.INT24))
        for k, a in enumerate(range(0, adu.shape[1], SPF)))
    v1 = b"\0" + b"".join(python_frames(adu / 1000, FS, STANDARD_12_LEADS))
    got_v2 = feed(session_for(runner, export), v2)
    got_v1 = feed(session_for(runner, export), v1)
    assert len(of(got_v2, "window")) == 10
    assert of(got_v2, "window") == of(got_v1, "window")
    assert [r for r in got_v2 if r.get("type") in ("gap", "format_change", "decode_error")] == []
