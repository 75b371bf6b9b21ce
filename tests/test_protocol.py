"""The Python end of the ECG wire protocol (ecgedge.bridge: frame, cobs, decoder, sequence).

Golden file: firmware_bridge/test_vectors/frames.json, produced by ``make -C firmware_bridge vectors``
(tools/mkvectors.c). The C tests check the same file, so the two ends cannot drift.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgedge.bridge.cobs import cobs_encode, encode_frame
from ecgedge.bridge.decoder import FrameDecoder, _unstuffed
from ecgedge.bridge.frame import (
    LEAD_NAMES,
    MAX_FRAME_BYTES,
    MAX_LEADS,
    DecodeError,
    DecodeErrorKind,
    Frame,
    SampleFormat,
    max_samples_per_lead,
    pack_frame,
    unpack_frame,
)
from ecgedge.bridge.sequence import FormatChange, Gap, OutOfOrder, Repeat, Restart, SequenceTracker
from ecgedge.errors import ConfigError

VECTORS_PATH = Path(__file__).resolve().parents[1] / "firmware_bridge" / "test_vectors" / "frames.json"
VECTORS = json.loads(VECTORS_PATH.read_text())["vectors"]


def _events(decoder: FrameDecoder, data: bytes, chunk: int | None = None) -> list[Frame | DecodeError]:
    if chunk is None:
        return decoder.feed(data)
    out: list[Frame | DecodeError] = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i:i + chunk])
    return out


def _frame(seq: int = 0, first: int = 0, n: int = 4, stream_id: int = 0, fs_hz: float = 360.0,
           leads: tuple[str, ...] = ("MLII", "V5"), seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed + 7919 * seq)
    return Frame(stream_id=stream_id, seq=seq % 65536, first_sample=first, fs_hz=fs_hz, lead_ids=leads,
                 samples=rng.integers(-2048, 2048, size=(len(leads), n)), gain_uv=5.0, baseline=1024)


def _stream(n_frames: int, n: int = 4, first_seq: int = 0, stream_id: int = 0) -> list[Frame]:
    return [_frame(seq=first_seq + k, first=k * n, n=n, stream_id=stream_id) for k in range(n_frames)]


def _describe(event: Frame | DecodeError) -> object:
    return event if isinstance(event, Frame) else event.kind


# ---- shared vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decodes_to_its_stated_meaning(vector):
    events = FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    assert len(events) == len(vector["events"])
    for got, want in zip(events, vector["events"]):
        if "error" in want:
            assert isinstance(got, DecodeError) and got.kind == DecodeErrorKind(want["error"]), got
            continue
        want = want["frame"]
        assert isinstance(got, Frame), got
        # Every header field exactly (gain_uv is the float32 value, written exactly in the file).
        assert (got.version, got.stream_id, got.seq, got.first_sample) == (
            want["version"], want["stream_id"], want["seq"], want["first_sample"])
        assert got.fs_mhz == want["fs_mhz"] and got.fs_hz == want["fs_hz"]
        assert got.gains_uv == tuple(want["gains_uv"]) and got.baselines == tuple(want["baselines"])
        if want["version"] == 1:  # one gain and baseline; in v2 those bytes are reserved (0)
            assert got.gain_uv == want["gain_uv"] and got.baseline == want["baseline"]
        else:
            assert (want["gain_uv"], want["baseline"]) == (0, 0)
        assert got.sample_format == SampleFormat(want["sample_format"])
        assert got.lead_ids == tuple(want["lead_ids"])
        assert [LEAD_NAMES.index(x) for x in got.lead_ids] == want["lead_codes"]
        assert (got.device_flags, got.lead_off, got.samples_per_lead, got.n_leads) == (
            want["device_flags"], want["lead_off"], want["samples_per_lead"], want["n_leads"])
        np.testing.assert_array_equal(got.samples, np.array(want["samples"]))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_decodes_the_same_in_any_chunking(vector):
    data = bytes.fromhex(vector["hex"])
    whole = [_describe(e) for e in FrameDecoder().feed(data)]
    for chunk in (1, 2, 3, 7, 64):
        assert [_describe(e) for e in _events(FrameDecoder(), data, chunk)] == whole


@pytest.mark.parametrize("vector", [v for v in VECTORS if len(v["events"]) == 1 and "frame" in v["events"][0]],
                         ids=lambda v: v["name"])
def test_python_encoder_writes_the_c_encoders_bytes(vector):
    (frame,) = FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    assert encode_frame(frame) == bytes.fromhex(vector["hex"])


def test_vectors_cover_every_error_kind():
    stated = {e["error"] for v in VECTORS for e in v["events"] if "error" in e}
    assert stated == {k.value for k in DecodeErrorKind}


def test_worked_example_in_protocol_md_matches_the_encoder():
    doc = (VECTORS_PATH.parents[1] / "PROTOCOL.md").read_text()
    example = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360, lead_ids=("MLII", "V5"),
                    samples=np.array([[995, 996, 1001, 1024], [1011, 1010, 1002, 990]]), gain_uv=5.0,
                    baseline=1024, device_flags=8)
    wire = encode_frame(example).hex(" ")
    flat = " ".join(doc.split())
    assert wire in flat, "PROTOCOL.md's worked example no longer matches the encoder"
    assert pack_frame(example).hex(" ") in flat
    v2 = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360, lead_ids=("MLII", "V5"), samples=example.samples,
               version=2, gains_uv=(5.0, 2.5), baselines=(1024, -3), device_flags=8)
    assert encode_frame(v2).hex(" ") in flat, "PROTOCOL.md's version 2 example no longer matches the encoder"
    assert pack_frame(v2).hex(" ") in flat
    assert encode_frame(v2).hex() == next(v["hex"] for v in VECTORS if v["name"] == "v2_two_leads_own_gains")


# ---- frames -----------------------------------------------------------------------------------


def test_crc_is_crc32_iso_hdlc():
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the check value PROTOCOL.md states
    body = pack_frame(_frame())
    assert struct.unpack("<I", body[-4:])[0] == zlib.crc32(body[:-4])


def test_samples_mv_apply_baseline_and_gain():
    frame = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360, lead_ids=("MLII",),
                  samples=np.array([[995, 1024, 1224]]), gain_uv=5.0, baseline=1024)
    # MIT-BIH 100: 200 adu/mV, zero 1024 -> (995 - 1024) / 200 = -0.145 mV
    np.testing.assert_allclose(frame.samples_mv(), [[-0.145, 0.0, 1.0]], rtol=0, atol=1e-12)
    assert frame.samples_mv().dtype == np.float64


def test_v2_samples_mv_use_each_leads_gain_and_baseline():
    # MIT-BIH style: MLII at 200 adu/mV zero 1024, V5 at 400 adu/mV zero -3
    frame = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360, lead_ids=("MLII", "V5"), version=2,
                  samples=np.array([[995, 1024, 1224], [-3, 397, -403]]), gains_uv=(5.0, 2.5), baselines=(1024, -3))
    np.testing.assert_allclose(frame.samples_mv(), [[-0.145, 0.0, 1.0], [0.0, 1.0, -1.0]], rtol=0, atol=1e-12)
    assert (frame.gain_uv, frame.baseline) == (None, None)  # no single value: use gains_uv / baselines
    body = pack_frame(frame)
    assert body[2] == 2 and body[20:28] == bytes(8)  # version 2; v1's one-gain bytes reserved, zero
    assert len(body) == 38 + 2 * 9 + 3 * 2 * 2
    assert unpack_frame(body) == frame


def test_v1_frame_is_unchanged_by_v2_support():
    frame = _frame()
    assert frame.version == 1 and frame.gains_uv == (5.0, 5.0) and frame.baselines == (1024, 1024)
    assert (frame.gain_uv, frame.baseline) == (5.0, 1024)
    same_in_v2 = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360, lead_ids=("MLII", "V5"), version=2,
                       samples=frame.samples, gain_uv=5.0, baseline=1024)
    assert same_in_v2.gains_uv == frame.gains_uv and same_in_v2 != frame  # the version differs
    np.testing.assert_array_equal(same_in_v2.samples_mv(), frame.samples_mv())


def test_frame_normalises_to_wire_precision():
    frame = Frame(stream_id=1, seq=2, first_sample=3, fs_hz=256.1234, lead_ids=("avr", "mlii"),
                  samples=[[1, 2], [3, 4]], gain_uv=4.88)
    assert frame.fs_hz == 256.123 and frame.gain_uv == float(np.float32(4.88))
    assert frame.lead_ids == ("aVR", "MLII")
    assert frame.samples.dtype == np.int32 and not frame.samples.flags.writeable
    assert unpack_frame(pack_frame(frame)) == frame


@pytest.mark.parametrize("change, message", [
    (dict(samples=np.zeros((17, 1), int), lead_ids=("?",) * 17), "17 leads"),
    (dict(samples=np.zeros((2, 300), int)), "limit is 1024"),
    (dict(samples=np.full((2, 4), 40000)), "int16 holds"),
    (dict(samples=np.zeros((2, 4))), "raw ADC integers"),
    (dict(lead_ids=("MLII", "ECG2")), "not in the lead table"),
    (dict(lead_ids=("MLII",)), "1 lead ids for 2 rows"),
    (dict(lead_ids="II"), "1 lead ids for 2 rows"),  # a string is one name, not two letters
    (dict(sample_format="int12"), "sample format 'int12'"),
    (dict(lead_off=4), "lead_off 4"),
    (dict(fs_hz=0.0), "sampling rate"),
    (dict(gain_uv=-1.0), "gain"),
    (dict(gain_uv=1e39), "gain"),  # overflows float32
    (dict(seq=65536), "seq 65536"),
    (dict(stream_id=256), "stream_id"),
    (dict(version=3), "version 3"),
    (dict(gains_uv=(5.0, 2.5), gain_uv=None), "use version=2"),
    (dict(gains_uv=(5.0,), version=2, gain_uv=None), "1 gains_uv for 2 leads"),
    (dict(baselines=(0, 1, 2), version=2), "3 baselines for 2 leads"),
    (dict(gains_uv=(5.0, -1.0), version=2, gain_uv=None), "gain -1.0"),
    (dict(gains_uv=(5.0, 5.0)), "not both"),
    (dict(samples=np.zeros((2, 243), int), version=2), "limit is 1024"),
])
def test_frame_rejects_what_the_wire_cannot_carry(change, message):
    fields = dict(stream_id=0, seq=0, first_sample=0, fs_hz=360.0, lead_ids=("MLII", "V5"),
                  samples=np.zeros((2, 4), int), gain_uv=5.0)
    fields.update(change)
    with pytest.raises(ConfigError, match=message):
        Frame(**fields)


def test_max_samples_per_lead_fills_a_frame():
    for fmt in SampleFormat:
        for leads in range(1, MAX_LEADS + 1):
            n = max_samples_per_lead(leads, fmt)
            big = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=500, lead_ids=("?",) * leads,
                        samples=np.zeros((leads, n), int), sample_format=fmt)
            assert len(pack_frame(big)) <= MAX_FRAME_BYTES
            with pytest.raises(ConfigError):
                Frame(stream_id=0, seq=0, first_sample=0, fs_hz=500, lead_ids=("?",) * leads,
                      samples=np.zeros((leads, n + 1), int), sample_format=fmt)


@st.composite
def frames(draw) -> Frame:
    fmt = draw(st.sampled_from(list(SampleFormat)))
    leads = draw(st.integers(1, MAX_LEADS))
    n = draw(st.integers(1, min(40, max_samples_per_lead(leads, fmt))))
    lo, hi = fmt.limits
    samples = draw(st.lists(st.integers(lo, hi), min_size=leads * n, max_size=leads * n))
    version = draw(st.sampled_from([1, 2]))
    if version == 2:  # a gain and baseline per lead
        n = min(n, max_samples_per_lead(leads, fmt, 2))
        samples = samples[:leads * n]
        gains = dict(gains_uv=draw(st.lists(st.floats(1e-6, 1e6), min_size=leads, max_size=leads)),
                     baselines=draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=leads, max_size=leads)))
    else:
        gains = dict(gain_uv=draw(st.floats(1e-6, 1e6)), baseline=draw(st.integers(-(2**31), 2**31 - 1)))
    return Frame(
        stream_id=draw(st.integers(0, 255)), seq=draw(st.integers(0, 65535)),
        first_sample=draw(st.integers(0, 2**64 - 1)), fs_hz=draw(st.integers(1, 2**32 - 1)) / 1000,
        lead_ids=tuple(draw(st.lists(st.sampled_from(LEAD_NAMES), min_size=leads, max_size=leads))),
        samples=np.array(samples).reshape(leads, n), sample_format=fmt, version=version,
        lead_off=draw(st.integers(0, 2**leads - 1)), device_flags=draw(st.integers(0, 65535)), **gains,
    )


@settings(max_examples=150, deadline=None, database=None)
@given(frames())
def test_encode_decode_round_trip(frame):
    wire = encode_frame(frame)
    assert wire.endswith(b"\0") and b"\0" not in wire[:-1]
    assert FrameDecoder().feed(wire) == [frame]
    assert unpack_frame(pack_frame(frame)) == frame


_FIELDS = ("stream_id", "seq", "first_sample", "fs_hz", "lead_ids", "gain_uv", "baseline", "sample_format", "lead_off",
           "device_flags", "version", "gains_uv", "baselines")


@settings(max_examples=150, deadline=None, database=None)
@given(frames())
def test_decoded_frames_are_the_frames_the_validating_constructor_makes(frame):
    """unpack_frame builds frames without validating again: field by field what ``Frame(...)`` makes of them."""
    decoded = unpack_frame(pack_frame(frame))
    assert isinstance(decoded, Frame)
    rebuilt = Frame(stream_id=decoded.stream_id, seq=decoded.seq, first_sample=decoded.first_sample, fs_hz=decoded.fs_hz,
                    lead_ids=decoded.lead_ids, samples=decoded.samples, sample_format=decoded.sample_format,
                    lead_off=decoded.lead_off, device_flags=decoded.device_flags, version=decoded.version,
                    gains_uv=decoded.gains_uv, baselines=decoded.baselines)
    for expected in (frame, rebuilt):
        assert decoded == expected
        for name in _FIELDS:
            got, want = getattr(decoded, name), getattr(expected, name)
            assert (type(got), got) == (type(want), want), name
        assert [type(g) for g in decoded.gains_uv + decoded.baselines] == [type(g) for g in expected.gains_uv + expected.baselines]
        s, t = decoded.samples, expected.samples
        assert (s.dtype, s.shape, s.flags.writeable) == (t.dtype, t.shape, False)
        assert np.array_equal(s, t) and np.array_equal(decoded.samples_mv(), expected.samples_mv())
    layout = lambda a: (a.flags.c_contiguous, a.flags.f_contiguous)  # noqa: E731
    assert layout(decoded.samples) == layout(rebuilt.samples)  # the memory layout decoded frames always had


def _with_header(frame: Frame, offset: int, fmt: str, value: int) -> bytes:
    """The frame's bytes with one header field replaced and the CRC made good again."""
    body = bytearray(pack_frame(frame)[:-4])
    struct.pack_into(fmt, body, offset, value)
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("offset, fmt, value, detail", [
    (16, "<I", 0, "sampling rate 0 mHz, gain bits ok"),
    (32, "<H", 0x0004, "lead-off mask 0x0004 names leads beyond 2"),
])
def test_a_lead_table_seen_before_does_not_change_the_checks(offset, fmt, value, detail):
    """A bad header behind a lead table already decoded (and kept) is reported as it is behind a new one."""
    # Leads and a gain no other test uses: the first decode meets a lead table not seen before.
    unseen = Frame(stream_id=0, seq=0, first_sample=0, fs_hz=360.0, lead_ids=("V7", "V9"), samples=np.ones((2, 4), int),
                   gain_uv=3.0517578125)
    bad = _with_header(unseen, offset, fmt, value)
    first = unpack_frame(bad)
    assert unpack_frame(pack_frame(unseen)) == unseen  # the table is now known
    again = unpack_frame(bad)
    assert first == again == DecodeError(DecodeErrorKind.BAD_FIELD, detail)


def test_cobs_reference_examples():
    # Cheshire & Baker's examples (as listed on Wikipedia), also in the C tests.
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    run = bytes(range(1, 255))
    assert cobs_encode(run) == b"\xff" + run
    assert cobs_encode(run + b"\xff") == b"\xff" + run + b"\x02\xff"
    assert cobs_encode(bytes(range(2, 256)) + b"\x00") == b"\xff" + bytes(range(2, 256)) + b"\x01\x01"


def _reference_unstuffed(segment: bytes) -> bytes | str:
    """Textbook COBS decoding, group by group: the bytes, or why the segment is not canonical COBS."""
    out, p, code, prev = bytearray(), 0, 0, 0
    while p < len(segment):
        if p and code != 0xFF:
            out.append(0)
        prev, code = code, segment[p]
        if p + code > len(segment):
            return f"COBS group cut short by {p + code - len(segment)} bytes"
        out += segment[p + 1:p + code]
        p += code
    if code == 1 and prev == 0xFF:
        return "empty COBS group after a full one (non-canonical)"
    return bytes(out)


@st.composite
def cobs_segments(draw) -> bytes:
    """Segments between two delimiters: canonical COBS of bytes with long runs without 0x00 (full 0xFF
    groups), then maybe cut, changed or given an empty group; or any bytes without 0x00."""
    if draw(st.booleans()):
        return draw(st.binary(min_size=1, max_size=1100)).replace(b"\0", b"\x01")
    runs = draw(st.lists(st.tuples(st.integers(0, 600), st.integers(1, 255)), min_size=1, max_size=6))
    if draw(st.booleans()):  # the last run fills whole full groups
        runs[-1] = (254 * draw(st.integers(1, 2)), runs[-1][1])
    segment = bytearray(cobs_encode(b"\0".join(bytes([fill]) * n for n, fill in runs)))
    for op, where, value in draw(st.lists(_MUTATION, max_size=3)):
        pos = where % len(segment)
        if op == "flip":
            segment[pos] = value or 1
        elif op == "drop" and len(segment) > 1:
            del segment[pos]
        elif op == "insert":
            segment.insert(pos, value or 1)
    if draw(st.booleans()):
        segment.append(1)  # after a final full group this is the non-canonical empty group
    return bytes(segment)


@settings(max_examples=500, deadline=None, database=None)
@given(cobs_segments(), st.binary(max_size=3).map(lambda b: b.replace(b"\0", b"\x02")))
def test_cobs_decoding_equals_the_textbook_decoder(segment, before):
    """The code-chain walk of the whole-frame path decodes (or refuses) every segment as the textbook does."""
    got = _unstuffed(before + segment + b"\0", len(before), len(before) + len(segment))
    want = _reference_unstuffed(segment)
    if isinstance(want, str):
        assert got == DecodeError(DecodeErrorKind.BAD_COBS, want)
    else:
        assert bytes(got) == want and cobs_encode(want) == segment  # what decodes is canonical: one wire form


# ---- resynchronisation ------------------------------------------------------------------------


def test_resync_after_garbage():
    frames_ = _stream(5)
    good = b"".join(encode_frame(f) for f in frames_)
    rng = random.Random(1)
    garbage = bytes(rng.randrange(256) for _ in range(3000))
    decoder = FrameDecoder()
    # Garbage closed by a delimiter: every frame after it decodes.
    events = decoder.feed(garbage + b"\0" + good)
    assert [e for e in events if isinstance(e, Frame)] == frames_
    assert sum(decoder.stats[k.value] for k in DecodeErrorKind) >= 1
    # Garbage straight into a frame (no delimiter): that one frame is lost, the rest decode.
    events = FrameDecoder().feed(bytes(b or 1 for b in garbage[:50]) + good)
    assert [e for e in events if isinstance(e, Frame)] == frames_[1:]


def test_resync_after_truncated_frame():
    a, b, c = (encode_frame(f) for f in _stream(3))
    # Cut short, delimiter kept: the stub is an error, the next frames decode.
    events = FrameDecoder().feed(a[:len(a) // 2] + b"\0" + b + c)
    assert [_describe(e) for e in events][1:] == _stream(3)[1:]
    assert isinstance(events[0], DecodeError)
    # Cut short with its delimiter lost: it swallows the next frame; the third decodes.
    events = FrameDecoder().feed(a[:len(a) // 2] + b + c)
    assert isinstance(events[0], DecodeError) and events[1:] == [_stream(3)[2]]


def test_oversize_is_reported_once_and_memory_stays_bounded():
    decoder = FrameDecoder()
    events = decoder.feed(b"\x07" * 50_000)
    assert [e.kind for e in events] == [DecodeErrorKind.OVERSIZE]
    assert decoder.feed(b"\x07" * 50_000) == []  # still discarding: no second report
    assert decoder.feed(b"\0" + encode_frame(_frame())) == [_frame()]
    assert decoder.stats["oversize"] == 1 and decoder.stats["frames"] == 1


# ---- fuzz -------------------------------------------------------------------------------------


def _assert_only_sent_frames(events, data: bytes, sent: list[Frame] | None = None) -> None:
    for event in events:
        assert isinstance(event, (Frame, DecodeError))
        if isinstance(event, Frame):
            # A frame that failed its CRC can never come out: its exact wire form was in the input.
            assert encode_frame(event) in data
            if sent is not None:
                assert event in sent


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=3000), st.integers(1, 300))
def test_fuzz_random_bytes_never_raise(data, chunk):
    decoder = FrameDecoder()
    events = _events(decoder, data, chunk)
    _assert_only_sent_frames(events, data)
    assert decoder.stats["bytes"] == len(data)
    assert decoder.stats["frames"] + sum(decoder.stats[k.value] for k in DecodeErrorKind) == len(events)


_MUTATION = st.tuples(st.sampled_from(["flip", "drop", "insert"]), st.integers(0, 10**9), st.integers(0, 255))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=6), st.lists(_MUTATION, max_size=12), st.integers(1, 200))
def test_fuzz_mutated_frames_never_raise_nor_emit_a_damaged_frame(sent, mutations, chunk):
    data = bytearray(b"".join(encode_frame(f) for f in sent))
    for op, where, value in mutations:
        pos = where % (len(data) + 1)
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << (value % 8)
        elif op == "drop" and pos < len(data):
            del data[pos]
        elif op == "insert":
            data.insert(pos, value)
    data = bytes(data)
    events = _events(FrameDecoder(), data, chunk)
    _assert_only_sent_frames(events, data, sent)
    if not mutations:
        assert events == sent
    # The whole-frame fast path and the byte state machine (one byte per feed) agree on every event.
    exact = lambda e: e if isinstance(e, Frame) else (e.kind, e.detail, e.offset)  # noqa: E731
    assert [exact(e) for e in _events(FrameDecoder(), data)] == [exact(e) for e in _events(FrameDecoder(), data, 1)]


# ---- sequence tracking ------------------------------------------------------------------------


def _track(tracker: SequenceTracker, frames_: list[Frame]) -> tuple[list[Frame], list]:
    delivered, events = [], []
    for frame in frames_:
        result = tracker.push(frame)
        if result.frame is not None:
            delivered.append(result.frame)
        events += result.events
    return delivered, events


def test_contiguous_stream_has_no_events():
    tracker = SequenceTracker()
    delivered, events = _track(tracker, _stream(20))
    assert delivered == _stream(20) and events == []
    assert tracker.next_sample(0) == 80


def test_lost_frames_are_a_gap_of_samples():
    frames_ = _stream(10, n=4)
    delivered, events = _track(SequenceTracker(), frames_[:3] + frames_[6:])
    assert events == [Gap(0, 12, 24, frames_lost=3)]
    assert events[0].n_samples == 12
    assert delivered == frames_[:3] + frames_[6:]


def test_repeated_frame_is_reported_and_dropped():
    frames_ = _stream(4)
    wire = [frames_[0], frames_[1], frames_[1], frames_[2], frames_[0], frames_[3]]
    delivered, events = _track(SequenceTracker(), wire)
    assert delivered == frames_
    assert events == [Repeat(0, 1, 4), Repeat(0, 0, 0)]


def test_late_frame_inside_a_gap_is_out_of_order():
    frames_ = _stream(5)
    delivered, events = _track(SequenceTracker(), [frames_[0], frames_[1], frames_[3], frames_[2], frames_[4]])
    assert events == [Gap(0, 8, 12, frames_lost=1), OutOfOrder(0, 2, 8)]
    assert delivered == [frames_[0], frames_[1], frames_[3], frames_[4]]


def test_seq_wrap_is_not_a_gap_and_losses_across_it_are_counted():
    frames_ = _stream(6, first_seq=65533)
    assert [f.seq for f in frames_] == [65533, 65534, 65535, 0, 1, 2]
    assert _track(SequenceTracker(), frames_)[1] == []
    # 65534, 65535, 0 lost: three frames across the wrap
    assert _track(SequenceTracker(), [frames_[0], frames_[4], frames_[5]])[1] == [Gap(0, 4, 16, frames_lost=3)]
    # a repeat across the wrap is still a repeat
    assert _track(SequenceTracker(), frames_[:4] + [frames_[2]])[1] == [Repeat(0, 65535, 8)]


def test_restart_and_layout_change():
    tracker = SequenceTracker()
    _track(tracker, _stream(10))
    rebooted = _frame(seq=0, first=0, n=4, seed=99)
    result = tracker.push(rebooted)
    assert result.frame == rebooted and result.events == (Restart(0, 40, 0),)
    faster = _frame(seq=1, first=4, n=4, fs_hz=500.0)
    assert tracker.push(faster).events == (FormatChange(0, 4, ("fs_hz",)),)
    assert tracker.stats["restarts"] == 1 and tracker.stats["format_changes"] == 1


def test_per_lead_gain_change_is_a_layout_change_named_gain_uv():
    tracker = SequenceTracker()
    v1 = _frame(seq=0, first=0)
    as_v2 = Frame(stream_id=0, seq=1, first_sample=4, fs_hz=360, lead_ids=("MLII", "V5"), version=2,
                  samples=v1.samples, gains_uv=(5.0, 5.0), baselines=(1024, 1024))
    v5_rescaled = Frame(stream_id=0, seq=2, first_sample=8, fs_hz=360, lead_ids=("MLII", "V5"), version=2,
                        samples=v1.samples, gains_uv=(5.0, 2.5), baselines=(1024, 1024))
    assert tracker.push(v1).events == ()
    assert tracker.push(as_v2).events == ()  # same calibration, other version: no change
    assert tracker.push(v5_rescaled).events == (FormatChange(0, 8, ("gain_uv",)),)


def test_streams_are_tracked_independently():
    a, b = _stream(4, stream_id=1), _stream(4, stream_id=2)
    interleaved = [a[0], b[0], a[1], b[2], a[2], b[3], a[3]]
    delivered, events = _track(SequenceTracker(), interleaved)
    assert delivered == interleaved and events == [Gap(2, 4, 8, frames_lost=1)]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.sampled_from(["send", "drop", "repeat", "swap"]), min_size=1, max_size=80),
       st.integers(0, 65535), st.lists(st.integers(1, 6), min_size=80, max_size=80))
def test_delivered_frames_and_gaps_tile_the_stream(ops, first_seq, sizes):
    # Frames of varying size, then drops, repeats and adjacent swaps; whatever happens, every sample
    # index from the first delivered one up to next_sample is delivered once or inside one gap.
    starts = np.concatenate([[0], np.cumsum(sizes)])
    source = [_frame(seq=first_seq + k, first=int(starts[k]), n=sizes[k]) for k in range(len(ops))]
    wire: list[Frame] = []
    for k, op in enumerate(ops):
        if op == "send":
            wire.append(source[k])
        elif op == "repeat":
            wire += [source[k], source[k]]
        elif op == "swap" and len(wire) >= 2:  # never ahead of the first frame: that one defines the start
            wire.insert(len(wire) - 1, source[k])
    tracker = SequenceTracker()
    delivered, events = _track(tracker, wire)
    assert not any(isinstance(e, Restart) for e in events)
    if not delivered:
        return
    covered = [(f.first_sample, f.end_sample) for f in delivered]
    covered += [(g.start, g.end) for g in events if isinstance(g, Gap)]
    covered.sort()
    assert covered[0][0] == delivered[0].first_sample
    for (_, end), (start, _) in zip(covered, covered[1:]):
        assert start == end  # no overlap, no hole
    assert covered[-1][1] == tracker.next_sample(0)
    assert len({(f.seq, f.first_sample) for f in delivered}) == len(delivered)
