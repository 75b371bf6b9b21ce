"""Frames a device sends about its own results (``firmware_bridge/PROTOCOL.md`` sections 2b and 2c): label
frames (its classifier's verdict on a window) and beat frames (its QRS detector's beats). Same framing as
sample frames (magic, CRC-32, COBS); a version byte of their own, so a receiver that predates them reports
``unknown_version``, never samples. :func:`ecgedge.bridge.frame.unpack_frame` dispatches to the parsers here.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ecgedge.bridge.wire import (BEAT_VERSION, CRC_BYTES, LABEL_VERSION, MAGIC, SEQ_MODULUS, DecodeError,
                                 DecodeErrorKind, decode_error, f32_bits, f32_from_bits, gain_bits_ok)
from ecgedge.errors import ConfigError

# ---- label frames (PROTOCOL.md section 2b) ------------------------------------------------------

LABEL_TEXT_BYTES = 8
MAX_LABEL_CLASSES = 32
# magic, version, stream id, label seq, classes, label, first sample, end sample, fs (mHz),
# score scale (f32 bits), score zero point, flags, label text
_LABEL_HEADER = struct.Struct(f"<2sBBHBBQQIIbB{LABEL_TEXT_BYTES}s")
LABEL_HEADER_BYTES = _LABEL_HEADER.size
assert LABEL_HEADER_BYTES == 42


class LabelFlag(enum.IntFlag):
    """Bits of a label frame's ``flags``; bits 1..7 are reserved (must be 0)."""

    LEAD_OFF = 0x01  # an electrode the model reads was off during the window


@dataclass(frozen=True)
class LabelFrame:
    """The device's own rhythm verdict on one window of a stream (``ecgsim --classify``).

    Args:
        stream_id: the stream whose samples were classified.
        seq: label-frame counter 0..65535 (its own, not the sample frames'); wraps to 0.
        first_sample, end_sample: the window, source sample indices ``[first_sample, end_sample)``
            of that stream (the host's ``WindowVerdict.start_sample`` / ``end_sample``).
        fs_hz: the stream's sampling rate (so the frame reads alone), at the wire's 1 mHz.
        label: class index (< ``len(scores)``); ``label_text`` its name (at most 8 bytes of UTF-8).
        scores: int8 logits, one per class; ``(score - zero_point) * scale`` are the model's logits.
        scale, zero_point: the output quantization.
        flags: :class:`LabelFlag` bits.
    """

    stream_id: int
    seq: int
    first_sample: int
    end_sample: int
    fs_hz: float
    label: int
    label_text: str
    scores: tuple[int, ...]
    scale: float
    zero_point: int
    flags: int = 0

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"label frame: {what}")

        if not 0 <= self.stream_id <= 255 or not 0 <= self.seq < SEQ_MODULUS:
            raise bad(f"stream_id {self.stream_id} / seq {self.seq} out of range")
        if not 1 <= len(self.scores) <= MAX_LABEL_CLASSES or not 0 <= self.label < len(self.scores):
            raise bad(f"{len(self.scores)} classes (1..{MAX_LABEL_CLASSES}), label {self.label}")
        if any(not -128 <= s <= 127 for s in self.scores) or not -128 <= self.zero_point <= 127:
            raise bad("scores and zero point are int8")
        if not 0 <= self.first_sample < self.end_sample < 1 << 64:
            raise bad(f"window [{self.first_sample}, {self.end_sample}) is empty or out of range")
        if len(self.label_text.encode()) > LABEL_TEXT_BYTES:
            raise bad(f"label text {self.label_text!r} is longer than {LABEL_TEXT_BYTES} bytes")
        if not 0 < round(self.fs_hz * 1000) < 1 << 32 or not gain_bits_ok(f32_bits(self.scale)):
            raise bad(f"sampling rate {self.fs_hz} Hz / scale {self.scale} not > 0 and finite")
        if self.flags & ~int(LabelFlag.LEAD_OFF) & 0xFF or not 0 <= self.flags <= 0xFF:
            raise bad(f"flags {self.flags:#x}: only bit 0 is defined")
        object.__setattr__(self, "scores", tuple(int(s) for s in self.scores))
        object.__setattr__(self, "fs_hz", round(self.fs_hz * 1000) / 1000)
        object.__setattr__(self, "scale", f32_from_bits(f32_bits(self.scale)))

    @property
    def logits(self) -> np.ndarray:
        return (np.asarray(self.scores, np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


def pack_label_frame(frame: LabelFrame) -> bytes:
    """A label frame's bytes without COBS (header, scores, CRC-32)."""
    body = _LABEL_HEADER.pack(MAGIC, LABEL_VERSION, frame.stream_id, frame.seq, len(frame.scores), frame.label,
                              frame.first_sample, frame.end_sample, round(frame.fs_hz * 1000), f32_bits(frame.scale),
                              frame.zero_point, frame.flags, frame.label_text.encode())
    body += struct.pack(f"<{len(frame.scores)}b", *frame.scores)
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_label(data: bytes) -> LabelFrame | DecodeError:
    """A label frame whose CRC and magic have passed (unpack_frame's checks 1..5)."""
    n = len(data)
    if n < LABEL_HEADER_BYTES + 1 + CRC_BYTES:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"label frame of {n} bytes; the smallest has {LABEL_HEADER_BYTES + 5}")
    (_, _, stream_id, seq, n_classes, label, first, end, fs_mhz, scale_bits, zero_point, flags,
     text) = _LABEL_HEADER.unpack_from(data)
    if not 1 <= n_classes <= MAX_LABEL_CLASSES:
        return decode_error(DecodeErrorKind.BAD_FIELD, f"label frame with {n_classes} classes (1..{MAX_LABEL_CLASSES})")
    if n != LABEL_HEADER_BYTES + n_classes + CRC_BYTES:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes but a label frame of {n_classes} classes has "
                      f"{LABEL_HEADER_BYTES + n_classes + CRC_BYTES}")
    try:
        label_text = text.rstrip(b"\0").decode()
    except UnicodeDecodeError:
        label_text = None
    if (label >= n_classes or end <= first or fs_mhz == 0 or not gain_bits_ok(scale_bits) or flags & 0xFE
            or label_text is None or b"\0" in text.rstrip(b"\0")):
        return decode_error(DecodeErrorKind.BAD_FIELD, f"label frame: label {label} of {n_classes}, window [{first}, {end}), "
                      f"{fs_mhz} mHz, scale bits {scale_bits:#010x}, flags {flags:#04x}, text {text!r}")
    scores = struct.unpack_from(f"<{n_classes}b", data, LABEL_HEADER_BYTES)
    return LabelFrame(stream_id, seq, first, end, fs_mhz / 1000, label, label_text, scores,
                      f32_from_bits(scale_bits), zero_point, flags)


# ---- beat frames (PROTOCOL.md section 2c) -------------------------------------------------------

MAX_FRAME_BEATS = 64
BEAT_FLAG_MASK = 0x07  # ecgedge.beats.BeatFlag: 1 noisy, 2 concealed, 4 search-back
# magic, version, stream id, beat seq, beats, reserved, from sample, end sample, fs (mHz), leads, reserved
_BEAT_HEADER = struct.Struct("<2sBBHBBQQIHH")
BEAT_HEADER_BYTES = _BEAT_HEADER.size
assert BEAT_HEADER_BYTES == 32
_BEAT = struct.Struct("<QB")


@dataclass(frozen=True)
class BeatFrame:
    """The beats the device's own QRS detector found (``ecgsim --classify``: ``ecgb_qrs``, the C port
    of :mod:`ecgedge.beats.qrs`).

    Args:
        stream_id: the stream whose samples the detector read.
        seq: beat-frame counter 0..65535 (its own); wraps to 0.
        from_sample, end_sample: the detector's decisions on stream samples ``[from_sample, end_sample)``
            since the previous beat frame (whose ``end_sample`` is this ``from_sample`` unless one was lost).
        fs_hz: the stream's sampling rate, at the wire's 1 mHz.
        leads: bit mask of the stream's leads that fed the detector (bit i: lead i).
        samples: R-peak positions, stream sample indices (each < ``end_sample``).
        flags: per beat, :class:`ecgedge.beats.BeatFlag` bits.
    """

    stream_id: int
    seq: int
    from_sample: int
    end_sample: int
    fs_hz: float
    leads: int
    samples: tuple[int, ...]
    flags: tuple[int, ...]

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"beat frame: {what}")

        if not 0 <= self.stream_id <= 255 or not 0 <= self.seq < SEQ_MODULUS:
            raise bad(f"stream_id {self.stream_id} / seq {self.seq} out of range")
        if not 1 <= len(self.samples) <= MAX_FRAME_BEATS or len(self.flags) != len(self.samples):
            raise bad(f"{len(self.samples)} beats (1..{MAX_FRAME_BEATS}) with {len(self.flags)} flags")
        if not 0 <= self.from_sample < self.end_sample < 1 << 64:
            raise bad(f"range [{self.from_sample}, {self.end_sample}) is empty or out of range")
        if any(not 0 <= s < self.end_sample for s in self.samples) or any(f & ~BEAT_FLAG_MASK or f < 0 for f in self.flags):
            raise bad(f"beats {self.samples} must lie before sample {self.end_sample}; flags {self.flags} use bits 0..2")
        if not 0 < round(self.fs_hz * 1000) < 1 << 32 or not 0 < self.leads < 1 << 16:
            raise bad(f"sampling rate {self.fs_hz} Hz / leads {self.leads:#x}")
        object.__setattr__(self, "samples", tuple(int(s) for s in self.samples))
        object.__setattr__(self, "flags", tuple(int(f) for f in self.flags))
        object.__setattr__(self, "fs_hz", round(self.fs_hz * 1000) / 1000)


def pack_beat_frame(frame: BeatFrame) -> bytes:
    """A beat frame's bytes without COBS (header, beats, CRC-32)."""
    body = _BEAT_HEADER.pack(MAGIC, BEAT_VERSION, frame.stream_id, frame.seq, len(frame.samples), 0, frame.from_sample,
                             frame.end_sample, round(frame.fs_hz * 1000), frame.leads, 0)
    body += b"".join(_BEAT.pack(s, f) for s, f in zip(frame.samples, frame.flags))
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_beats(data: bytes) -> BeatFrame | DecodeError:
    """A beat frame whose CRC and magic have passed (unpack_frame's checks 1..5)."""
    n = len(data)
    if n < BEAT_HEADER_BYTES + _BEAT.size + CRC_BYTES:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"beat frame of {n} bytes; the smallest has "
                      f"{BEAT_HEADER_BYTES + _BEAT.size + CRC_BYTES}")
    _, _, stream_id, seq, n_beats, reserved, first, end, fs_mhz, leads, reserved2 = _BEAT_HEADER.unpack_from(data)
    if not 1 <= n_beats <= MAX_FRAME_BEATS:
        return decode_error(DecodeErrorKind.BAD_FIELD, f"beat frame with {n_beats} beats (1..{MAX_FRAME_BEATS})")
    if n != BEAT_HEADER_BYTES + _BEAT.size * n_beats + CRC_BYTES:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes but a beat frame of {n_beats} beats has "
                      f"{BEAT_HEADER_BYTES + _BEAT.size * n_beats + CRC_BYTES}")
    beats = [_BEAT.unpack_from(data, BEAT_HEADER_BYTES + _BEAT.size * i) for i in range(n_beats)]
    if (reserved or reserved2 or fs_mhz == 0 or end <= first or leads == 0
            or any(s >= end or f & ~BEAT_FLAG_MASK for s, f in beats)):
        return decode_error(DecodeErrorKind.BAD_FIELD, f"beat frame: range [{first}, {end}), {fs_mhz} mHz, leads {leads:#x}, "
                      f"reserved {reserved:#x}/{reserved2:#x}, beats {beats}")
    return BeatFrame(stream_id, seq, first, end, fs_mhz / 1000, leads, tuple(s for s, _ in beats),
                     tuple(f for _, f in beats))
