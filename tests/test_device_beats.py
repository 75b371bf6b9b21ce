"""The device's beats on the wire (issue 23, item 4): ``ecgsim --beats`` (and ``--classify``) runs the C QRS
detector (``firmware_bridge/src/ecgb_qrs.c``) on what it sends and sends its beats in beat frames
(PROTOCOL.md 2c).

- the beat frame against ``firmware_bridge/test_vectors/beats.json`` (the C side checks the same file in
  ``firmware_bridge/tests``), and the C parser (``ecgb_parse_beats``, built here as a shared object)
  against the Python one on randomly damaged beat frames;
- the real compiled ecgsim on MIT-BIH 100: its beats are the Python detector's; a receiver without beat
  frames (the C decoder) loses no sample; a :class:`StreamSession` reports them as ``device_beats``
  records and, where the host detects beats, how many agree within one sample.

Skips with the reason where there is no C compiler or no make.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ecgedge.beats import detect_beats
from ecgedge.bridge.cobs import cobs_encode
from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import BeatFrame, DecodeError, DecodeErrorKind, Frame, pack_beat_frame, unpack_frame
from ecgedge.errors import ConfigError
from ecgedge.manifest import load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.runtime.base import host_compiler, host_compiler_or_reason
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import ModelSpec
from ecgedge.stream.session import StreamSession
from helpers import linear_export

pytestmark = pytest.mark.c

REPO = Path(__file__).resolve().parents[1]
BEATS_JSON = REPO / "firmware_bridge" / "test_vectors" / "beats.json"
MITDB_FS = 360.0


def _vector() -> dict:
    return json.loads(BEATS_JSON.read_text())["vectors"][0]


def test_beat_frame_vector_decodes_to_its_fields():
    vec = _vector()
    b = vec["beats"]
    want = BeatFrame(b["stream_id"], b["seq"], b["from_sample"], b["end_sample"], b["fs_mhz"] / 1000, b["leads"],
                     tuple(b["samples"]), tuple(b["flags"]))
    frame = bytes.fromhex(vec["frame"])
    assert len(frame) == 36 + 9 * 3
    assert unpack_frame(frame) == want
    assert pack_beat_frame(want) == frame
    assert cobs_encode(frame) + b"\0" == bytes.fromhex(vec["wire"])
    dec = FrameDecoder()
    assert dec.feed(bytes.fromhex(vec["wire"])) == [want]
    assert dec.beat_frames == 1 and dec.stats["frames"] == 0 and dec.label_frames == 0


def _with_crc(body: bytearray) -> bytes:
    return bytes(body[:-4]) + zlib.crc32(bytes(body[:-4])).to_bytes(4, "little")


def test_beat_frame_fields_are_checked():
    good = bytearray.fromhex(_vector()["frame"])
    cases = {6: (0, DecodeErrorKind.BAD_FIELD), 7: (1, DecodeErrorKind.BAD_FIELD), 30: (1, DecodeErrorKind.BAD_FIELD),
             16: (0, DecodeErrorKind.BAD_FIELD), 40: (8, DecodeErrorKind.BAD_FIELD)}
    for at, (value, kind) in cases.items():
        body = good.copy()
        body[at] = value
        res = unpack_frame(_with_crc(body))
        assert isinstance(res, DecodeError) and res.kind is kind, (at, res)
    body = good.copy()
    body[6] = 4  # 4 beats in a frame that carries 3
    assert unpack_frame(_with_crc(body)).kind is DecodeErrorKind.BAD_LENGTH  # type: ignore[union-attr]
    with pytest.raises(ConfigError):
        BeatFrame(0, 0, 0, 728, 360.0, 1, (77, 728), (0, 0))  # a beat at end_sample
    with pytest.raises(ConfigError):
        BeatFrame(0, 0, 0, 728, 360.0, 0, (77,), (0,))  # no lead


class _CBeats(ctypes.Structure):  # ecgb_beats (firmware_bridge/include/ecgbridge.h)
    _fields_ = [("stream_id", ctypes.c_uint8), ("seq", ctypes.c_uint16), ("n_beats", ctypes.c_uint8),
                ("from_sample", ctypes.c_uint64), ("end_sample", ctypes.c_uint64), ("fs_mhz", ctypes.c_uint32),
                ("leads", ctypes.c_uint16), ("sample", ctypes.c_uint64 * 64), ("flags", ctypes.c_uint8 * 64)]


@pytest.fixture(scope="module")
def c_bridge(tmp_path_factory):
    """firmware_bridge's C library as a shared object (built here from its sources), for ctypes."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    src = REPO / "firmware_bridge"
    so = tmp_path_factory.mktemp("cbridge") / "libecgbridge.so"
    subprocess.run([host_compiler(), "-std=c99", "-O2", "-fPIC", "-shared", "-I", str(src / "include"),
                    *(str(src / "src" / f) for f in ("crc32.c", "cobs.c", "frame.c", "decoder.c")), "-o", str(so)],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.ecgb_parse_beats.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_CBeats)]
    lib.ecgb_status_name.restype = ctypes.c_char_p
    return lib


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(3, 62), st.integers(0, 255)), max_size=3),
       trim=st.sampled_from([0] * 6 + [-9, -2, -1, 1, 9]), reseal=st.sampled_from([True] * 4 + [False]))
def test_c_and_python_beat_parsers_agree(c_bridge, edits, trim, reseal):
    """ecgb_parse_beats (C) and unpack_frame (Python) give the same verdict on any beat frame: fields
    changed at random past the magic and version (counts, ranges, reserved bytes, flags, beats), a
    length off by a byte or a beat, the CRC re-sealed or not; and the same fields when valid."""
    body = bytearray.fromhex(_vector()["frame"])
    for at, value in edits:
        if at < len(body) - 4:
            body[at] = value
    body = body[:len(body) + trim] if trim < 0 else body + bytes(trim)
    if reseal:
        body[-4:] = zlib.crc32(bytes(body[:-4])).to_bytes(4, "little")
    frame = bytes(body)
    got = _CBeats()
    status = c_bridge.ecgb_status_name(c_bridge.ecgb_parse_beats(frame, len(frame), ctypes.byref(got))).decode()
    py = unpack_frame(frame)
    event(status)
    assert status == ("ok" if isinstance(py, BeatFrame) else py.kind.value), (frame.hex(), py)  # type: ignore[union-attr]
    if isinstance(py, BeatFrame):
        assert (got.stream_id, got.seq, got.from_sample, got.end_sample, got.leads) == (
            py.stream_id, py.seq, py.from_sample, py.end_sample, py.leads)
        assert got.fs_mhz / 1000 == py.fs_hz
        assert tuple(got.sample[:got.n_beats]) == py.samples and tuple(got.flags[:got.n_beats]) == py.flags


# ---- the simulated device ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mitdb_100_wire(build, shared_data) -> bytes:
    record = shared_data / "mitdb" / "100"
    if not record.with_suffix(".hea").is_file():
        pytest.skip(f"record {record} not found")
    pytest.importorskip("wfdb", reason="ecgsim RECORD reads the record with the host's wfdb")
    res = subprocess.run([str(build / "ecgsim"), str(record), "--beats", "--speed", "0", "--seconds", "60", "--quiet"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def test_ecgsim_sends_the_python_detectors_beats(mitdb_100_wire, shared_data, wfdb):
    """The device's beats on MLII are ``detect_beats`` on the same samples (mV as the device computes
    them: float32), every one, with the same flags; frames tile the decided samples."""
    events = FrameDecoder().feed(mitdb_100_wire)
    frames = [e for e in events if isinstance(e, BeatFrame)]
    assert frames and all(f.leads == 1 and f.fs_hz == MITDB_FS for f in frames)
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert all(a.end_sample == b.from_sample for a, b in zip(frames, frames[1:]))
    rec = wfdb.rdrecord(str(shared_data / "mitdb" / "100"), physical=False, sampto=int(60 * MITDB_FS))
    x = (rec.d_signal[:, 0] - rec.baseline[0]).astype(np.float32) * np.float32(1000.0 / rec.adc_gain[0] / 1000.0)
    py = detect_beats(x.astype(np.float64), MITDB_FS)
    device = np.array([s for f in frames for s in f.samples])
    flags = np.array([g for f in frames for g in f.flags])
    assert len(device) >= 70  # the last beats wait for look-ahead the stream never sends
    np.testing.assert_array_equal(device, py.samples[:len(device)])
    np.testing.assert_array_equal(flags, py.flags[:len(device)])
    assert len(py) - len(device) <= 1


def test_a_receiver_without_beat_frames_loses_no_samples(build, mitdb_100_wire):
    """The C decoder reports each beat frame as unknown_version and still gets every sample frame."""
    n_beat_frames = sum(isinstance(e, BeatFrame) for e in FrameDecoder().feed(mitdb_100_wire))
    dump = subprocess.run([str(build / "ecgbdump")], input=mitdb_100_wire, capture_output=True, timeout=30)
    stats = json.loads(dump.stdout.decode().splitlines()[-1])["stats"]
    assert stats["unknown_version"] == n_beat_frames > 0
    assert stats["frames"] == -(-int(60 * MITDB_FS) // 14)
    assert sum(v for k, v in stats.items() if k not in ("bytes", "frames", "unknown_version")) == 0


@pytest.fixture(scope="module")
def lead_ii(tmp_path_factory):
    """(runner, ModelSpec) of a linear model on lead II, activated."""
    folder = linear_export(tmp_path_factory.mktemp("linear_ii") / "export", leads=("II",))
    with runner_from_export(folder, "fp32", threads=1) as runner:
        yield runner, ModelSpec.from_manifest(load_manifest(folder))


def test_session_reports_the_device_beats(mitdb_100_wire, lead_ii):
    """``device_beats`` records carry every beat of the beat frames, the lead they were found on, and the
    summary counts them; where the host detects beats (its heart-rate records), each frame is compared
    once the host has decided the same samples, and every device beat has a host beat within a sample."""
    runner, spec = lead_ii
    session = StreamSession(StreamHub(runner, spec))
    records: list[dict] = []
    for a in range(0, len(mitdb_100_wire), 4096):
        records += session.feed(mitdb_100_wire[a:a + 4096], now=0.0)
    records += session.flush()
    summary = session.summary()
    device = [r for r in records if r["type"] == "device_beats"]
    sent = [e for e in FrameDecoder().feed(mitdb_100_wire) if isinstance(e, BeatFrame)]
    assert [tuple(r["beats"]) for r in device] == [f.samples for f in sent][:len(device)]
    assert all(r["leads"] == ["MLII"] for r in device)
    (counts,) = summary["streams"]
    assert counts["device_beats"] == sum(len(f.samples) for f in sent)
    assert summary["decode_errors"] == 0 and counts["lost"] == 0
    if any(r["type"] == "heart_rate" for r in records):  # the host detects beats too
        compared = [r for r in device if r["compared"] is not None]
        assert len(compared) >= len(device) - 2
        assert all(r["agree"] == r["compared"] == len(r["beats"]) for r in compared)
        assert counts["device_beats_agree"] == counts["device_beats_compared"] > 60
    else:
        assert all(r["compared"] is None for r in device)


def test_frames_before_and_between_beat_frames_are_untouched(mitdb_100_wire):
    """Beat frames carry no samples and do not count in the sample frames' seq."""
    frames = [e for e in FrameDecoder().feed(mitdb_100_wire) if isinstance(e, Frame)]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert sum(f.samples_per_lead for f in frames) == int(60 * MITDB_FS)
