"""One frame of the wire protocol: its fields, its bytes without COBS, and why bytes are not a frame.

The layout is ``firmware_bridge/PROTOCOL.md`` (C: ``firmware_bridge/src/frame.c``): a 34-byte
little-endian header, one lead code per lead, the samples interleaved (sample ``t`` of every lead,
then ``t + 1``) as int16 or int24 ADC units, and a CRC-32 over all of it; at most
:data:`MAX_FRAME_BYTES` bytes. Units on the wire: sampling rate in mHz (u32, held here as Hz),
gain in µV per ADC unit (float32), baseline in ADC units (the value that reads 0 mV), sample
indices per lead since the stream started (u64), frame counter ``seq`` (u16, wraps).

- :class:`Frame` holds one decoded packet: header fields and raw ADC samples ``(n_leads, n)``;
  :meth:`Frame.samples_mv` converts them to mV.
- :func:`pack_frame` gives its bytes without COBS; :func:`unpack_frame` validates such bytes and
  returns a :class:`Frame` or a :class:`DecodeError` (never raises), checking in the order
  PROTOCOL.md gives so that C and Python report the same :class:`DecodeErrorKind`.
- :data:`LEAD_NAMES` is the lead table (index = code on the wire); :class:`DeviceFlag` the
  device status bits.

NumPy only: no torch, no wfdb.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.errors import ConfigError

PROTOCOL_VERSION = 1
MAGIC = b"EG"
HEADER_FIXED_BYTES = 34
CRC_BYTES = 4
MAX_LEADS = 16
# Largest decoded frame, header to CRC (PROTOCOL.md, "Sizes").
MAX_FRAME_BYTES = 1024
# One lead, one int16 sample.
MIN_FRAME_BYTES = HEADER_FIXED_BYTES + 1 + 2 + CRC_BYTES
SEQ_MODULUS = 1 << 16

# Lead codes: index = code on the wire. "?" (code 0) is a lead the table does not name.
LEAD_NAMES: tuple[str, ...] = (
    ("?",) + STANDARD_12_LEADS
    + ("MLI", "MLII", "MLIII", "V7", "V8", "V9", "V3R", "V4R", "V5R", "X", "Y", "Z")
)
_LEAD_CODES = {name.lower(): code for code, name in enumerate(LEAD_NAMES)}

# magic, version, stream id, seq, samples per lead, first sample, fs (mHz), gain bits (f32),
# baseline, sample format, lead count, device flags, lead-off mask
_HEADER = struct.Struct("<2sBBHHQIIiBBHH")
assert _HEADER.size == HEADER_FIXED_BYTES


class SampleFormat(str, enum.Enum):
    """How each sample is stored: two's complement little-endian, 2 or 3 bytes."""

    INT16 = "int16"
    INT24 = "int24"

    @property
    def code(self) -> int:
        return 1 if self is SampleFormat.INT16 else 2

    @property
    def nbytes(self) -> int:
        return 2 if self is SampleFormat.INT16 else 3

    @property
    def limits(self) -> tuple[int, int]:
        bits = 8 * self.nbytes
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


_FORMAT_BY_CODE = {f.code: f for f in SampleFormat}


class DeviceFlag(enum.IntFlag):
    """Device status bits of a frame; bits 4..15 are reserved and passed through."""

    BATTERY_LOW = 0x0001
    CALIBRATION = 0x0002  # a calibration pulse is being injected
    SATURATED = 0x0004  # an ADC channel clipped during this frame
    SIMULATED = 0x0008  # replayed from a recording (ecgsim), not from a patient


class DecodeErrorKind(str, enum.Enum):
    """Why bytes between two delimiters were not a frame (the C library's ``ecgb_status`` names)."""

    BAD_CRC = "bad_crc"
    BAD_LENGTH = "bad_length"
    UNKNOWN_VERSION = "unknown_version"
    OVERSIZE = "oversize"
    BAD_COBS = "bad_cobs"
    BAD_MAGIC = "bad_magic"
    BAD_FIELD = "bad_field"


@dataclass(frozen=True)
class DecodeError:
    """A decoder event, not an exception: the bytes ending at stream byte ``offset`` were dropped."""

    kind: DecodeErrorKind
    detail: str
    offset: int = -1


@dataclass(frozen=True, eq=False, repr=False)
class Frame:
    """One frame of a multi-lead ECG stream.

    Args:
        stream_id: 0..255, which stream (device channel) this frame belongs to.
        seq: frame counter 0..65535; wraps to 0.
        first_sample: index of this frame's first sample (per lead) since the stream started; u64,
            never wraps.
        fs_hz: sampling rate in Hz; held at the wire's resolution of 1 mHz.
        lead_ids: lead names, one per row of ``samples``, from :data:`LEAD_NAMES` (any case).
        samples: ``(n_leads, n)`` raw ADC integers; stored as a read-only int32 copy.
        gain_uv: microvolts per ADC unit; held at float32 precision, as on the wire.
        baseline: ADC value that reads 0 mV.
        sample_format: int16 or int24 on the wire.
        lead_off: bit ``i`` set when the electrode of lead ``i`` is off.
        device_flags: :class:`DeviceFlag` bits.
        version: protocol version (only 1 exists).

    Raises:
        ConfigError: a value does not fit the protocol (names the field, its value and the limit).
    """

    stream_id: int
    seq: int
    first_sample: int
    fs_hz: float
    lead_ids: tuple[str, ...]
    samples: np.ndarray
    gain_uv: float = 1.0
    baseline: int = 0
    sample_format: SampleFormat = SampleFormat.INT16
    lead_off: int = 0
    device_flags: int = 0
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        def bad(what: str) -> ConfigError:
            return ConfigError(f"frame (stream {self.stream_id}, seq {self.seq}): {what}")

        try:
            fmt = SampleFormat(self.sample_format)
        except ValueError:
            raise bad(f"sample format {self.sample_format!r}; expected one of "
                      f"{[f.value for f in SampleFormat]}") from None
        samples = np.array(self.samples, copy=True)
        if samples.ndim != 2 or samples.size == 0:
            raise bad(f"samples have shape {samples.shape}; expected (n_leads, n_samples) with n >= 1")
        if not np.issubdtype(samples.dtype, np.integer):
            raise bad(f"samples are {samples.dtype}; expected raw ADC integers")
        n_leads, n = samples.shape
        lo, hi = fmt.limits
        if samples.min() < lo or samples.max() > hi:
            raise bad(f"samples span {samples.min()}..{samples.max()}; {fmt.value} holds {lo}..{hi}")
        samples = samples.astype(np.int32)
        samples.flags.writeable = False
        if not 1 <= n_leads <= MAX_LEADS:
            raise bad(f"{n_leads} leads; the protocol carries 1..{MAX_LEADS}")
        size = frame_size(n_leads, n, fmt)
        if size > MAX_FRAME_BYTES:
            raise bad(f"{n_leads} leads x {n} samples of {fmt.value} need {size} bytes; the limit is "
                      f"{MAX_FRAME_BYTES} ({max_samples_per_lead(n_leads, fmt)} samples per lead)")
        names = (self.lead_ids,) if isinstance(self.lead_ids, str) else tuple(self.lead_ids)
        if len(names) != n_leads:
            raise bad(f"{len(names)} lead ids for {n_leads} rows of samples")
        unknown = [x for x in names if x.lower() not in _LEAD_CODES]
        if unknown:
            raise bad(f"lead ids {unknown} are not in the lead table; use '?' for an unnamed lead")
        fs_mhz = round(float(self.fs_hz) * 1000) if math.isfinite(self.fs_hz) else 0
        if not 0 < fs_mhz < 1 << 32:
            raise bad(f"sampling rate {self.fs_hz} Hz; the wire holds 0.001..4294967.295 Hz")
        # float32 overflow is checked here, so NumPy's overflow warning is noise
        with np.errstate(over="ignore"):
            gain = float(np.float32(self.gain_uv)) if math.isfinite(self.gain_uv) else math.inf
        if not (math.isfinite(gain) and gain > 0):
            raise bad(f"gain {self.gain_uv} uV/LSB; must be finite and > 0 as a float32")
        for name, value, limit in (("stream_id", self.stream_id, 1 << 8), ("seq", self.seq, SEQ_MODULUS),
                                   ("first_sample", self.first_sample, 1 << 64),
                                   ("device_flags", self.device_flags, 1 << 16),
                                   ("lead_off", self.lead_off, 1 << n_leads)):
            if not 0 <= int(value) < limit:
                raise bad(f"{name} {value} is outside 0..{limit - 1}")
        if not -(1 << 31) <= int(self.baseline) < 1 << 31:
            raise bad(f"baseline {self.baseline} does not fit int32")
        if self.version != PROTOCOL_VERSION:
            raise bad(f"version {self.version}; this module speaks version {PROTOCOL_VERSION}")
        set_ = object.__setattr__
        set_(self, "samples", samples)
        set_(self, "sample_format", fmt)
        set_(self, "lead_ids", tuple(LEAD_NAMES[_LEAD_CODES[x.lower()]] for x in names))
        set_(self, "fs_hz", fs_mhz / 1000)
        set_(self, "gain_uv", gain)
        for name in ("stream_id", "seq", "first_sample", "baseline", "lead_off", "device_flags"):
            set_(self, name, int(getattr(self, name)))

    @property
    def n_leads(self) -> int:
        return self.samples.shape[0]

    @property
    def samples_per_lead(self) -> int:
        return self.samples.shape[1]

    @property
    def end_sample(self) -> int:
        """One past the index of this frame's last sample."""
        return self.first_sample + self.samples_per_lead

    @property
    def fs_mhz(self) -> int:
        return round(self.fs_hz * 1000)

    @property
    def flags(self) -> DeviceFlag:
        return DeviceFlag(self.device_flags)

    @property
    def leads_off(self) -> tuple[str, ...]:
        """Names of the leads whose electrode is off in this frame."""
        return tuple(name for i, name in enumerate(self.lead_ids) if self.lead_off >> i & 1)

    def samples_mv(self) -> np.ndarray:
        """Samples in mV, ``(n_leads, n)`` float64: ``(raw - baseline) * gain_uv / 1000``."""
        return (self.samples.astype(np.float64) - self.baseline) * (self.gain_uv / 1000.0)

    def _header_key(self) -> tuple:
        return (self.version, self.stream_id, self.seq, self.first_sample, self.fs_hz, self.lead_ids,
                self.gain_uv, self.baseline, self.sample_format, self.lead_off, self.device_flags)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._header_key() == other._header_key() and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]  # holds an array

    def __repr__(self) -> str:
        return (f"Frame(stream {self.stream_id}, seq {self.seq}, samples [{self.first_sample}, "
                f"{self.end_sample}) of {','.join(self.lead_ids)} at {self.fs_hz:g} Hz, "
                f"{self.sample_format.value}, {self.gain_uv:g} uV/LSB)")


def frame_size(n_leads: int, samples_per_lead: int, sample_format: SampleFormat = SampleFormat.INT16) -> int:
    """Decoded size in bytes (header to CRC) of a frame with these dimensions."""
    fmt = SampleFormat(sample_format)
    return HEADER_FIXED_BYTES + n_leads + n_leads * samples_per_lead * fmt.nbytes + CRC_BYTES


def max_samples_per_lead(n_leads: int, sample_format: SampleFormat = SampleFormat.INT16) -> int:
    """Most samples per lead that keep a frame within :data:`MAX_FRAME_BYTES`."""
    fmt = SampleFormat(sample_format)
    return (MAX_FRAME_BYTES - HEADER_FIXED_BYTES - n_leads - CRC_BYTES) // (n_leads * fmt.nbytes)


def pack_frame(frame: Frame) -> bytes:
    """The frame's bytes without COBS: header, lead ids, interleaved samples, CRC-32."""
    fmt = frame.sample_format
    header = _HEADER.pack(
        MAGIC, PROTOCOL_VERSION, frame.stream_id, frame.seq, frame.samples_per_lead, frame.first_sample,
        frame.fs_mhz, struct.unpack("<I", struct.pack("<f", frame.gain_uv))[0], frame.baseline,
        fmt.code, frame.n_leads, frame.device_flags, frame.lead_off,
    )
    leads = bytes(_LEAD_CODES[name.lower()] for name in frame.lead_ids)
    interleaved = np.ascontiguousarray(frame.samples.T)  # sample t of every lead, then t + 1
    if fmt is SampleFormat.INT16:
        payload = interleaved.astype("<i2").tobytes()
    else:
        payload = interleaved.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    body = header + leads + payload
    return body + struct.pack("<I", zlib.crc32(body))


def _error(kind: DecodeErrorKind, detail: str) -> DecodeError:
    return DecodeError(kind, detail)


def unpack_frame(data: bytes) -> Frame | DecodeError:
    """Validate one frame without COBS (as :func:`pack_frame` returns it); never raises.

    Checks run in the order PROTOCOL.md gives, so C and Python report the same kind.
    """
    data = bytes(data)
    n = len(data)
    if n < MIN_FRAME_BYTES:
        return _error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes; the smallest frame has {MIN_FRAME_BYTES}")
    if n > MAX_FRAME_BYTES:
        return _error(DecodeErrorKind.OVERSIZE, f"{n} bytes; the largest frame has {MAX_FRAME_BYTES}")
    (magic, version, stream_id, seq, n_per_lead, first_sample, fs_mhz, gain_bits, baseline,
     fmt_code, n_leads, device_flags, lead_off) = _HEADER.unpack_from(data)
    fmt = _FORMAT_BY_CODE.get(fmt_code)
    expected = (frame_size(n_leads, n_per_lead, fmt)
                if fmt is not None and 1 <= n_leads <= MAX_LEADS and n_per_lead >= 1 else 0)
    if zlib.crc32(data[:-CRC_BYTES]) != struct.unpack_from("<I", data, n - CRC_BYTES)[0]:
        if magic == MAGIC and version == PROTOCOL_VERSION and expected and expected != n:
            return _error(DecodeErrorKind.BAD_LENGTH,
                          f"{n} bytes but the header implies {expected} (bytes lost, or a delimiter)")
        return _error(DecodeErrorKind.BAD_CRC, f"CRC-32 mismatch over {n} bytes")
    if magic != MAGIC:
        return _error(DecodeErrorKind.BAD_MAGIC, f"magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        return _error(DecodeErrorKind.UNKNOWN_VERSION,
                      f"protocol version {version}; this decoder speaks {PROTOCOL_VERSION}")
    if not expected:
        return _error(DecodeErrorKind.BAD_FIELD,
                      f"sample format {fmt_code}, {n_leads} leads, {n_per_lead} samples per lead")
    if expected != n:
        return _error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes but the header implies {expected}")
    codes = data[HEADER_FIXED_BYTES:HEADER_FIXED_BYTES + n_leads]
    exponent = gain_bits & 0x7F800000
    if fs_mhz == 0 or gain_bits == 0 or gain_bits & 0x80000000 or exponent == 0x7F800000:
        return _error(DecodeErrorKind.BAD_FIELD, f"sampling rate {fs_mhz} mHz, gain bits {gain_bits:#010x}")
    if max(codes) >= len(LEAD_NAMES):
        return _error(DecodeErrorKind.BAD_FIELD, f"lead code {max(codes)} is reserved")
    if lead_off >> n_leads:
        return _error(DecodeErrorKind.BAD_FIELD, f"lead-off mask {lead_off:#06x} names leads beyond {n_leads}")
    payload = np.frombuffer(data, np.uint8, n_leads * n_per_lead * fmt.nbytes, HEADER_FIXED_BYTES + n_leads)
    if fmt is SampleFormat.INT16:
        values = payload.view("<i2").astype(np.int32)
    else:
        b = payload.reshape(-1, 3).astype(np.int32)
        values = ((b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16) ^ 0x800000) - 0x800000
    return Frame(
        stream_id=stream_id, seq=seq, first_sample=first_sample, fs_hz=fs_mhz / 1000,
        lead_ids=tuple(LEAD_NAMES[c] for c in codes), samples=values.reshape(n_per_lead, n_leads).T,
        gain_uv=struct.unpack("<f", struct.pack("<I", gain_bits))[0], baseline=baseline,
        sample_format=fmt, lead_off=lead_off, device_flags=device_flags, version=version,
    )
