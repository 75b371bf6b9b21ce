"""Classification on the simulated device (issue 16 C): ``ecgsim --classify EXPORT``.

- the C preprocessing (``ecgedge/export/mcu_c/ecgedge_device.c``) against ``ecgedge/data/preprocess.py``
  on vectors generated here from the Python implementation, through the built shared object (ctypes);
- the label frame (PROTOCOL.md 2b) against ``firmware_bridge/test_vectors/labels.json`` (the C side
  checks the same file in ``firmware_bridge/tests``), and the C parser (``ecgb_parse_label``, built
  here as a shared object) against the Python one on randomly damaged label frames;
- the real compiled ecgsim, run with ``--classify`` over a pipe into a real :class:`StreamSession`,
  on a generated signal and on CinC-2017 record A00004 (skipped where ../shared/data lacks it).

Skips with the reason where there is no C compiler or no make.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ecgedge.bridge.cobs import cobs_encode
from ecgedge.bridge.decoder import FrameDecoder
from ecgedge.bridge.frame import BeatFrame, DecodeError, DecodeErrorKind, LabelFrame, pack_label_frame, unpack_frame
from ecgedge.data.preprocess import normalise_windows, preprocess_signal, resampling_ratio
from ecgedge.export.mcu_device import device_classifier
from ecgedge.export.mcu_artefact import mcu_library_for_export
from ecgedge.manifest import load_manifest
from ecgedge.runtime import Precision, runner_from_export
from ecgedge.runtime.base import host_compiler_or_reason
from ecgedge.shipped import resolve_source
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.session import StreamSession

REPO = Path(__file__).resolve().parents[1]
LABELS_JSON = REPO / "firmware_bridge" / "test_vectors" / "labels.json"
SHIPPED = "cinc2017-rhythm"
# The C preprocessing against preprocess.py, in z-score units of the model's input (measured: 1.2e-6,
# float32 rounding; the band-pass runs its state in double, see ecgedge_device.c).
Z_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def shipped_mcu(tmp_path_factory) -> Path:
    """The shipped classifier with its gated C library (``ecgedge export --mcu``), in a temporary folder."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    out = tmp_path_factory.mktemp("device") / SHIPPED
    return mcu_library_for_export(resolve_source(SHIPPED), out=out, log=lambda *_: None).folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ecgedge-cache")


class _Verdict(ctypes.Structure):  # ecgedge_device_verdict (ecgedge_device.h, ABI 1)
    _fields_ = [("first_sample", ctypes.c_uint64), ("end_sample", ctypes.c_uint64), ("label", ctypes.c_int),
                ("label_text", ctypes.c_char_p), ("n_classes", ctypes.c_int), ("scores", ctypes.c_int8 * 32),
                ("scale", ctypes.c_float), ("zero_point", ctypes.c_int), ("flags", ctypes.c_uint),
                ("window", ctypes.POINTER(ctypes.c_float))]


def _ecg_like(fs: float, seconds: float, seed: int = 0) -> np.ndarray:
    """One lead in mV: spiky beats at 72/min, baseline wander, noise and a DC offset (a step for the filters)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    x = (1.1 * np.sin(np.pi * 1.2 * t) ** 40 - 0.15 * np.sin(np.pi * 1.2 * t + 0.6) ** 8
         + 0.2 * np.sin(2 * np.pi * 0.25 * t) + 0.03 * rng.standard_normal(t.size) + 0.4)
    return x.astype(np.float32).astype(np.float64)  # what a float32 device holds


def _device_windows(so: Path, x: np.ndarray) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(first, end, z-scored window, int8 scores) of every window the shared object cuts from ``x``."""
    lib = ctypes.CDLL(str(so))
    lib.ecgedge_device_push.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_uint, ctypes.POINTER(_Verdict)]
    lib.ecgedge_device_reset.argtypes = [ctypes.c_uint64]
    assert lib.ecgedge_device_abi() == 1
    lib.ecgedge_device_reset(0)
    v, sample = _Verdict(), (ctypes.c_float * 1)()
    out = []
    for value in x:
        sample[0] = value
        if lib.ecgedge_device_push(sample, 0, ctypes.byref(v)):
            w = np.ctypeslib.as_array(v.window, (2048,)).copy()
            out.append((v.first_sample, v.end_sample, w, np.array(v.scores[:v.n_classes], np.int8)))
    return out


@pytest.mark.parametrize("fs", [250.0, 300.0, 360.0, 500.0])
def test_c_preprocessing_matches_preprocess_py(shipped_mcu, cache, fs):
    """Every window the device cuts equals preprocess.py's (resample, band-pass, z-score) within Z_TOLERANCE,
    ends where the stream's monitor ends one, and the device's int8 logits are ONNX Runtime INT8's on it."""
    manifest = load_manifest(shipped_mcu)
    cfg = manifest.preprocess_config()
    x = _ecg_like(fs, 30.0)
    got = _device_windows(device_classifier(shipped_mcu, fs, ["I"], cache=cache), x)
    y = preprocess_signal(x[None], fs, cfg)  # the shared vectors: the one Python implementation
    up, down = resampling_ratio(fs, cfg.fs_hz)
    hop, window = int(cfg.fs_hz), manifest.window_samples
    ends = [e for e in range(hop, y.shape[1] + 1, hop) if e >= window + cfg.settle_samples]
    assert [(f, e) for f, e, _, _ in got] == [((2 * (e - window) * down + up) // (2 * up), (2 * e * down + up) // (2 * up))
                                              for e in ends]
    ref, _ = normalise_windows(np.stack([y[:, e - window:e] for e in ends]), cfg)
    dev = np.stack([w for _, _, w, _ in got])[:, None]
    assert np.abs(dev - ref).max() <= Z_TOLERANCE
    with runner_from_export(shipped_mcu, Precision.int8, threads=1) as r:
        host = r.infer(ref)
    labels = np.array([s.argmax() for _, _, _, s in got])
    assert (labels == host.argmax(1)).all()


def test_label_frame_vector_decodes_to_its_fields():
    vec = json.loads(LABELS_JSON.read_text())["vectors"][0]
    f = vec["label"]
    scale = float(np.frombuffer(bytes.fromhex(f["scale_bits"])[::-1], np.float32)[0])
    want = LabelFrame(f["stream_id"], f["seq"], f["first_sample"], f["end_sample"], f["fs_mhz"] / 1000, f["label"],
                      f["label_text"], tuple(f["scores"]), scale, f["zero_point"], f["flags"])
    frame = bytes.fromhex(vec["frame"])
    assert unpack_frame(frame) == want
    assert pack_label_frame(want) == frame
    assert cobs_encode(frame) + b"\0" == bytes.fromhex(vec["wire"])
    dec = FrameDecoder()
    assert dec.feed(bytes.fromhex(vec["wire"])) == [want]
    assert dec.label_frames == 1 and dec.stats["frames"] == 0
    np.testing.assert_allclose(want.logits, (np.array(f["scores"]) - 26) * scale, rtol=1e-6)


def test_label_frame_fields_are_checked():
    good = bytearray.fromhex(json.loads(LABELS_JSON.read_text())["vectors"][0]["frame"])

    def with_crc(body: bytearray) -> bytes:
        import zlib
        return bytes(body[:-4]) + zlib.crc32(bytes(body[:-4])).to_bytes(4, "little")

    bad_label = good.copy()
    bad_label[7] = 4  # class 4 of 4
    bad_length = good.copy()
    bad_length[6] = 5  # 5 classes in a frame that carries 4 scores
    bad_flags = good.copy()
    bad_flags[33] = 2
    for body, kind in ((bad_label, DecodeErrorKind.BAD_FIELD), (bad_length, DecodeErrorKind.BAD_LENGTH),
                       (bad_flags, DecodeErrorKind.BAD_FIELD)):
        res = unpack_frame(with_crc(body))
        assert isinstance(res, DecodeError) and res.kind is kind, res


class _CLabel(ctypes.Structure):  # ecgb_label (firmware_bridge/include/ecgbridge.h)
    _fields_ = [("stream_id", ctypes.c_uint8), ("seq", ctypes.c_uint16), ("n_classes", ctypes.c_uint8),
                ("label", ctypes.c_uint8), ("first_sample", ctypes.c_uint64), ("end_sample", ctypes.c_uint64),
                ("fs_mhz", ctypes.c_uint32), ("scale", ctypes.c_float), ("zero_point", ctypes.c_int8),
                ("flags", ctypes.c_uint8), ("label_text", ctypes.c_char * 8), ("scores", ctypes.c_int8 * 32)]


@pytest.fixture(scope="module")
def c_bridge(tmp_path_factory):
    """firmware_bridge's C library as a shared object (built here from its sources), for ctypes."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    from ecgedge.runtime.base import host_compiler

    src = REPO / "firmware_bridge"
    so = tmp_path_factory.mktemp("cbridge") / "libecgbridge.so"
    subprocess.run([host_compiler(), "-std=c99", "-O2", "-fPIC", "-shared", "-I", str(src / "include"),
                    *(str(src / "src" / f) for f in ("crc32.c", "cobs.c", "frame.c", "decoder.c")), "-o", str(so)],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.ecgb_parse_label.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_CLabel)]
    lib.ecgb_status_name.restype = ctypes.c_char_p
    return lib


def _c_label(lib, frame: bytes) -> tuple[str, _CLabel]:
    out = _CLabel()
    status = lib.ecgb_parse_label(frame, len(frame), ctypes.byref(out))
    return lib.ecgb_status_name(status).decode(), out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(3, 49), st.integers(0, 255)), max_size=3),
       trim=st.sampled_from([0] * 6 + [-2, -1, 1, 2]), reseal=st.sampled_from([True] * 4 + [False]),
       text=st.binary(max_size=8) | st.text(max_size=3).map(lambda t: t.encode()[:8]))
def test_c_and_python_label_parsers_agree(c_bridge, edits, trim, reseal, text):
    """ecgb_parse_label (C) and unpack_frame (Python) give the same verdict on any label frame:
    fields changed at random (past the magic and version), text of random bytes (UTF-8 or not, NULs
    anywhere), a length one or two bytes off, the CRC re-sealed or not; and the same fields when valid."""
    body = bytearray.fromhex(json.loads(LABELS_JSON.read_text())["vectors"][0]["frame"])
    body[34:42] = text.ljust(8, b"\0")
    for at, value in edits:
        if at < len(body) - 4:
            body[at] = value
    body = body[:len(body) + trim] if trim < 0 else body + bytes(trim)
    if reseal:
        body[-4:] = zlib.crc32(bytes(body[:-4])).to_bytes(4, "little")
    frame = bytes(body)
    status, got = _c_label(c_bridge, frame)
    py = unpack_frame(frame)
    event(status)  # hypothesis --hypothesis-show-statistics: every verdict comes up
    assert status == ("ok" if isinstance(py, LabelFrame) else py.kind.value), (frame.hex(), py)
    if isinstance(py, LabelFrame):
        assert (got.stream_id, got.seq, got.label, got.first_sample, got.end_sample) == (
            py.stream_id, py.seq, py.label, py.first_sample, py.end_sample)
        assert got.fs_mhz / 1000 == py.fs_hz and got.scale == py.scale and got.zero_point == py.zero_point
        assert got.flags == py.flags and tuple(got.scores[:got.n_classes]) == py.scores
        assert bytes(got.label_text).rstrip(b"\0").decode() == py.label_text


def _env(cache: Path) -> dict:
    return {**os.environ, "ECGSIM_PYTHON": sys.executable, "ECGEDGE_CACHE": str(cache),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _stream(export: Path, wire: bytes) -> list[dict]:
    """The real session over the bytes ecgsim wrote: records, then the summary."""
    with runner_from_export(export, Precision.int8, threads=1) as runner:
        session = StreamSession(StreamHub(runner, ModelSpec.from_manifest(load_manifest(export)), StreamSettings()))
        records = []
        for a in range(0, len(wire), 4096):  # as a pipe delivers them
            records += session.feed(wire[a:a + 4096], now=0.0)
        records += session.flush()
        return records + [session.summary()]


def _ecgsim(build: Path, args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(build / "ecgsim"), *args, "--speed", "0"], capture_output=True, env=_env(cache), timeout=60)


def test_ecgsim_classify_streams_device_labels_into_the_session(build, shipped_mcu, cache, tmp_path):
    """A generated 300 Hz lead through ecgsim --classify (and a lead-off) into the session: every device
    window meets the host's window with the same end; labels agree wherever both classified."""
    raw = tmp_path / "lead.i16"
    x = _ecg_like(300.0, 24.0, seed=3)
    (np.round(x * 1000)).astype("<i2").tofile(raw)  # 1 uV per ADC unit
    res = _ecgsim(build, ["--raw", str(raw), "--fs", "300", "--leads", "1", "--gain-uv", "1", "--lead-names", "I",
                          "--classify", str(shipped_mcu), "--lead-off", "I@20-21"], cache)
    assert res.returncode == 0, res.stderr.decode()
    records = _stream(shipped_mcu, res.stdout)
    device = [r for r in records if r["type"] == "device_label"]
    windows = {r["samples"][1]: r for r in records if r["type"] == "window"}
    assert len(device) == 24 - 9 and all(d["samples"][1] in windows for d in device)
    for d in device:
        host = windows[d["samples"][1]]
        assert d["samples"] == host["samples"]
        assert d["host_quality"] == host["quality"]
        if host.get("reason", "").startswith("lead-off"):  # the host did not classify it; the device flags it
            assert d["host_label"] is None and d["agree"] is None and d.get("lead_off")
        else:  # ok, or the model's own noise class ~ (reported unreliable, the label is still the model's)
            assert d["agree"] is True and d["label"] == d["host_label"]
            assert host["quality"] == "ok" and d["label"] == host["label"] or d["label"] == "~"
    assert sum(bool(d.get("lead_off")) for d in device) == 4  # windows ending at 21..24 s hold 20-21 s
    (counts,) = records[-1]["streams"]
    assert counts["device_labels"] == len(device) and counts["device_agree"] == counts["device_compared"] > 0
    assert counts["lost"] == 0 and records[-1]["decode_errors"] == 0  # label frames cost the sample stream nothing


def test_ecgsim_classify_on_a_real_cinc2017_record(build, shipped_mcu, cache, shared_data):
    """CinC-2017 A00004 (atrial fibrillation, 30 s at 300 Hz): device and host INT8 labels on every window."""
    record = shared_data / "cinc2017" / "validation" / "A00004"
    if not record.with_suffix(".hea").is_file():
        pytest.skip(f"record {record} not found")
    pytest.importorskip("wfdb", reason="ecgsim RECORD reads the record with the host's wfdb")
    res = _ecgsim(build, [str(record), "--classify", str(shipped_mcu)], cache)
    assert res.returncode == 0, res.stderr.decode()
    records = _stream(shipped_mcu, res.stdout)
    device = [r for r in records if r["type"] == "device_label"]
    assert len(device) == 21  # windows ending at 10..30 s
    assert all(d["agree"] for d in device), [(d["label"], d["host_label"]) for d in device]
    assert {d["label"] for d in device} >= {"A"}


def test_ecgsim_classify_refuses_an_export_without_its_c_library(build, cache, tmp_path):
    """The shipped folder has no mcu/: one line that says what to run, exit status non-zero, nothing sent."""
    raw = tmp_path / "lead.i16"
    np.zeros(3000, "<i2").tofile(raw)
    res = _ecgsim(build, ["--raw", str(raw), "--fs", "300", "--leads", "1", "--gain-uv", "1",
                          "--classify", str(resolve_source(SHIPPED))], cache)
    assert res.returncode != 0 and res.stdout == b""
    assert "ecgedge export --mcu" in res.stderr.decode()
    res = _ecgsim(build, ["--raw", str(raw), "--fs", "300", "--leads", "1", "--gain-uv", "1",
                          "--classify", str(tmp_path / "nowhere")], cache)
    assert res.returncode != 0 and res.stdout == b""


def _labelled_wire(build: Path, export: Path, cache: Path, tmp_path: Path, seconds: float = 14.0) -> bytes:
    raw = tmp_path / "lead.i16"
    (np.round(_ecg_like(300.0, seconds, seed=5) * 1000)).astype("<i2").tofile(raw)
    res = _ecgsim(build, ["--raw", str(raw), "--fs", "300", "--leads", "1", "--gain-uv", "1", "--lead-names", "I",
                          "--classify", str(export)], cache)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout


def test_a_receiver_without_label_frames_loses_no_samples(build, shipped_mcu, cache, tmp_path):
    """The C decoder (no label frames) reports each as unknown_version and still gets every sample frame.
    (The device's beat frames, PROTOCOL.md 2c, are unknown_version to it too: tests/test_device_beats.py.)"""
    wire = _labelled_wire(build, shipped_mcu, cache, tmp_path)
    beat_frames = sum(isinstance(e, BeatFrame) for e in FrameDecoder().feed(wire))
    dump = subprocess.run([str(build / "ecgbdump")], input=wire, capture_output=True, timeout=30)
    stats = json.loads(dump.stdout.decode().splitlines()[-1])["stats"]
    assert beat_frames > 0 and stats["unknown_version"] == 14 - 9 + beat_frames and stats["frames"] == 14 * 300 // 12
    assert sum(v for k, v in stats.items() if k not in ("bytes", "frames", "unknown_version")) == 0


def test_a_device_label_ahead_of_the_hosts_verdict_waits_for_it(build, shipped_mcu, cache, tmp_path):
    """Each label frame moved ahead of the sample frame that completes its window: still matched by end sample."""
    packets = [p + b"\0" for p in _labelled_wire(build, shipped_mcu, cache, tmp_path).split(b"\0") if p]
    is_label = [isinstance(FrameDecoder().feed(b"\0" + p)[0], LabelFrame) for p in packets]
    moved: list[bytes] = []
    for p, label in zip(packets, is_label):
        if label:
            moved.insert(len(moved) - 1, p)  # before the frame holding the window's last sample
        else:
            moved.append(p)
    records = _stream(shipped_mcu, b"\0" + b"".join(moved))
    device = [r for r in records if r["type"] == "device_label"]
    assert len(device) == 14 - 9 and all(d["agree"] for d in device)
    (counts,) = records[-1]["streams"]
    assert counts["device_labels"] == counts["device_compared"] == counts["device_agree"] == 5
