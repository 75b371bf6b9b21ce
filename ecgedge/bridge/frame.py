"""One frame of the wire protocol: its fields, its bytes without COBS, and why bytes are not a frame.

The layout is ``firmware_bridge/PROTOCOL.md`` (C: ``firmware_bridge/src/frame.c``): a 34-byte
little-endian header, one lead code per lead, in version 2 a gain and baseline per lead, the
samples interleaved (sample ``t`` of every lead, then ``t + 1``) as int16 or int24 ADC units, and a
CRC-32 over all of it; at most :data:`MAX_FRAME_BYTES` bytes. Units on the wire: sampling rate in
mHz (u32, held here as Hz), gain in µV per ADC unit (float32), baseline in ADC units (the value
that reads 0 mV), sample indices per lead since the stream started (u64), frame counter ``seq``
(u16, wraps). Version 1 carries one gain and baseline for every lead (header offsets 20..27);
version 2 carries one per lead, so leads calibrated differently (MIT-BIH recorders) keep their
own scale.

- :class:`Frame` holds one decoded packet: header fields and raw ADC samples ``(n_leads, n)``;
  :meth:`Frame.samples_mv` converts them to mV (:func:`mv_from_adc`).
- :func:`pack_frame` gives its bytes without COBS; :func:`unpack_frame` validates such bytes and
  returns a :class:`Frame` or a :class:`DecodeError` (never raises), checking in the order
  PROTOCOL.md gives so that C and Python report the same :class:`DecodeErrorKind`.
- :data:`LEAD_NAMES` is the lead table (index = code on the wire); :class:`DeviceFlag` the
  device status bits.
- What every frame shares (:class:`DecodeError`, the constants, the float32 bit checks) is
  :mod:`ecgedge.bridge.wire`; the device's label and beat frames :mod:`ecgedge.bridge.result_frames`.
  This module re-exports both, so ``ecgedge.bridge.frame`` stays the one place to import frames from.

NumPy only: no torch, no wfdb.
"""

from __future__ import annotations

import enum
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ecgedge.bridge.result_frames import (  # noqa: F401 (re-exported: the bridge's frames have one face)
    BEAT_FLAG_MASK, BEAT_HEADER_BYTES, LABEL_HEADER_BYTES, LABEL_TEXT_BYTES, MAX_FRAME_BEATS, MAX_LABEL_CLASSES, BeatFrame,
    LabelFlag, LabelFrame, pack_beat_frame, pack_label_frame, unpack_beats, unpack_label)
from ecgedge.bridge.wire import (  # noqa: F401 (re-exported)
    BEAT_VERSION, CRC_BYTES, LABEL_VERSION, MAGIC, MAX_FRAME_BYTES, SEQ_MODULUS, DecodeError, DecodeErrorKind, decode_error,
    f32_bits, f32_from_bits, gain_bits_ok)
from ecgedge.config import STANDARD_12_LEADS
from ecgedge.errors import ConfigError

PROTOCOL_VERSION = 1  # what Frame sends unless told otherwise: every v1 receiver reads it
PROTOCOL_VERSIONS = (1, 2)
HEADER_FIXED_BYTES = 34
# Version 2: per lead, after the lead ids: f32 gain_uv, i32 baseline.
LEAD_CAL_BYTES = 8
_LEAD_CAL = struct.Struct("<Ii")
MAX_LEADS = 16
# Version 1, one lead, one int16 sample.
MIN_FRAME_BYTES = HEADER_FIXED_BYTES + 1 + 2 + CRC_BYTES

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
        gain_uv: microvolts per ADC unit of every lead (default 1.0); held at float32 precision,
            as on the wire. Give it or ``gains_uv``, not both. After construction: the gain every
            lead shares, or None when the leads' gains differ (version 2).
        baseline: ADC value that reads 0 mV on every lead (default 0); give it or ``baselines``.
            After construction: the shared baseline, or None when the leads' baselines differ.
        sample_format: int16 or int24 on the wire.
        lead_off: bit ``i`` set when the electrode of lead ``i`` is off.
        device_flags: :class:`DeviceFlag` bits.
        version: protocol version: 1 (one gain and baseline per frame) or 2 (one per lead).
        gains_uv: µV per ADC unit of each lead (one per row of ``samples``); filled from
            ``gain_uv`` when not given. Leads with different gains need ``version=2``.
        baselines: ADC value that reads 0 mV on each lead; filled from ``baseline`` when not given.

    Raises:
        ConfigError: a value does not fit the protocol (names the field, its value and the limit).
    """

    stream_id: int
    seq: int
    first_sample: int
    fs_hz: float
    lead_ids: tuple[str, ...]
    samples: np.ndarray
    gain_uv: float | None = None
    baseline: int | None = None
    sample_format: SampleFormat = SampleFormat.INT16
    lead_off: int = 0
    device_flags: int = 0
    version: int = PROTOCOL_VERSION
    gains_uv: tuple[float, ...] = ()
    baselines: tuple[int, ...] = ()

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
        if self.version not in PROTOCOL_VERSIONS:
            raise bad(f"version {self.version}; this module speaks versions {PROTOCOL_VERSIONS}")
        size = frame_size(n_leads, n, fmt, self.version)
        if size > MAX_FRAME_BYTES:
            raise bad(f"{n_leads} leads x {n} samples of {fmt.value} need {size} bytes in version "
                      f"{self.version}; the limit is {MAX_FRAME_BYTES} "
                      f"({max_samples_per_lead(n_leads, fmt, self.version)} samples per lead)")
        names = (self.lead_ids,) if isinstance(self.lead_ids, str) else tuple(self.lead_ids)
        if len(names) != n_leads:
            raise bad(f"{len(names)} lead ids for {n_leads} rows of samples")
        unknown = [x for x in names if x.lower() not in _LEAD_CODES]
        if unknown:
            raise bad(f"lead ids {unknown} are not in the lead table; use '?' for an unnamed lead")
        fs_mhz = round(float(self.fs_hz) * 1000) if math.isfinite(self.fs_hz) else 0
        if not 0 < fs_mhz < 1 << 32:
            raise bad(f"sampling rate {self.fs_hz} Hz; the wire holds 0.001..4294967.295 Hz")
        gains = _per_lead(bad, "gain_uv", self.gain_uv, "gains_uv", self.gains_uv, n_leads, 1.0)
        bases = _per_lead(bad, "baseline", self.baseline, "baselines", self.baselines, n_leads, 0)
        gains = tuple(_wire_gain(bad, g) for g in gains)
        for b in bases:
            if not -(1 << 31) <= int(b) < 1 << 31:
                raise bad(f"baseline {b} does not fit int32")
        bases = tuple(int(b) for b in bases)
        if self.version == 1 and (len(set(gains)) > 1 or len(set(bases)) > 1):
            raise bad(f"leads have gains {gains} uV/LSB and baselines {bases}; protocol version 1 carries "
                      "one gain and baseline per frame: use version=2")
        for name, value, limit in (("stream_id", self.stream_id, 1 << 8), ("seq", self.seq, SEQ_MODULUS),
                                   ("first_sample", self.first_sample, 1 << 64),
                                   ("device_flags", self.device_flags, 1 << 16),
                                   ("lead_off", self.lead_off, 1 << n_leads)):
            if not 0 <= int(value) < limit:
                raise bad(f"{name} {value} is outside 0..{limit - 1}")
        set_ = object.__setattr__
        set_(self, "samples", samples)
        set_(self, "sample_format", fmt)
        set_(self, "lead_ids", tuple(LEAD_NAMES[_LEAD_CODES[x.lower()]] for x in names))
        set_(self, "fs_hz", fs_mhz / 1000)
        set_(self, "gains_uv", gains)
        set_(self, "baselines", bases)
        set_(self, "gain_uv", gains[0] if len(set(gains)) == 1 else None)
        set_(self, "baseline", bases[0] if len(set(bases)) == 1 else None)
        for name in ("stream_id", "seq", "first_sample", "lead_off", "device_flags", "version"):
            set_(self, name, int(getattr(self, name)))

    @classmethod
    def _from_wire(cls, table: _LeadTable, samples: np.ndarray, *, stream_id: int, seq: int, first_sample: int,
                   fs_mhz: int, sample_format: SampleFormat, lead_off: int, device_flags: int, version: int) -> Frame:
        """A frame from fields :func:`unpack_frame` has validated, without checking or copying them again.

        ``samples`` is a read-only ``(n_leads, n)`` int32 array the frame keeps; ``table`` the validated
        lead table. The result equals (``==``, and field by field) ``Frame(...)`` of the same fields.
        """
        frame = object.__new__(cls)
        # Frozen: what __post_init__ would store, set past the frozen __setattr__ in one step.
        frame.__dict__.update(
            stream_id=stream_id, seq=seq, first_sample=first_sample, fs_hz=fs_mhz / 1000, lead_ids=table.lead_ids,
            samples=samples, gain_uv=table.gain_uv, baseline=table.baseline, sample_format=sample_format,
            lead_off=lead_off, device_flags=device_flags, version=version, gains_uv=table.gains_uv,
            baselines=table.baselines)
        return frame

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
        """Samples in mV, ``(n_leads, n)`` float64: ``(raw - baseline) * gain_uv / 1000``, each lead
        with its own gain and baseline (the same for every lead in version 1)."""
        return mv_from_adc(self.samples, self.gains_uv, self.baselines)

    def _header_key(self) -> tuple:
        return (self.version, self.stream_id, self.seq, self.first_sample, self.fs_hz, self.lead_ids,
                self.gains_uv, self.baselines, self.sample_format, self.lead_off, self.device_flags)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self._header_key() == other._header_key() and np.array_equal(self.samples, other.samples)

    __hash__ = None  # type: ignore[assignment]  # holds an array

    def __repr__(self) -> str:
        gain = f"{self.gain_uv:g}" if self.gain_uv is not None else "/".join(f"{g:g}" for g in self.gains_uv)
        return (f"Frame(v{self.version}, stream {self.stream_id}, seq {self.seq}, samples [{self.first_sample}, "
                f"{self.end_sample}) of {','.join(self.lead_ids)} at {self.fs_hz:g} Hz, "
                f"{self.sample_format.value}, {gain} uV/LSB)")


def mv_from_adc(samples: np.ndarray, gains_uv: tuple[float, ...], baselines: tuple[int, ...]) -> np.ndarray:
    """``(n_leads, n)`` raw ADC integers -> mV, float64: ``(raw - baseline) * gain / 1000`` per lead, with
    ``gains_uv`` in µV per ADC unit and ``baselines`` in ADC units, one per lead (:meth:`Frame.samples_mv`;
    the frames of one stream with the same calibration may be joined first: the same values)."""
    base = np.array(baselines, np.float64)[:, None]
    scale = np.array(gains_uv, np.float64)[:, None] / 1000.0
    return (samples.astype(np.float64) - base) * scale


def _per_lead(bad, one_name: str, one, many_name: str, many, n_leads: int, default) -> tuple:
    """One value per lead from either the shared value or the per-lead sequence (not both)."""
    if many is not None and len(tuple(many)) > 0:
        if one is not None:
            raise bad(f"give {one_name} (every lead) or {many_name} (per lead), not both")
        many = tuple(many)
        if len(many) != n_leads:
            raise bad(f"{len(many)} {many_name} for {n_leads} leads")
        return many
    return (default if one is None else one,) * n_leads


def _wire_gain(bad, gain_uv) -> float:
    """The gain as float32 holds it; ConfigError unless finite and > 0 there."""
    # float32 overflow is checked here, so NumPy's overflow warning is noise
    with np.errstate(over="ignore"):
        gain = float(np.float32(gain_uv)) if math.isfinite(gain_uv) else math.inf
    if not (math.isfinite(gain) and gain > 0):
        raise bad(f"gain {gain_uv} uV/LSB; must be finite and > 0 as a float32")
    return gain


def _lead_table_bytes(n_leads: int, version: int) -> int:
    return n_leads * (1 + LEAD_CAL_BYTES) if version == 2 else n_leads


def frame_size(n_leads: int, samples_per_lead: int, sample_format: SampleFormat = SampleFormat.INT16,
               version: int = PROTOCOL_VERSION) -> int:
    """Decoded size in bytes (header to CRC) of a frame with these dimensions."""
    return _frame_bytes(n_leads, samples_per_lead, SampleFormat(sample_format).nbytes, version)


def _frame_bytes(n_leads: int, samples_per_lead: int, sample_bytes: int, version: int) -> int:
    return HEADER_FIXED_BYTES + _lead_table_bytes(n_leads, version) + n_leads * samples_per_lead * sample_bytes + CRC_BYTES


def max_samples_per_lead(n_leads: int, sample_format: SampleFormat = SampleFormat.INT16,
                         version: int = PROTOCOL_VERSION) -> int:
    """Most samples per lead that keep a frame within :data:`MAX_FRAME_BYTES`."""
    fmt = SampleFormat(sample_format)
    free = MAX_FRAME_BYTES - HEADER_FIXED_BYTES - _lead_table_bytes(n_leads, version) - CRC_BYTES
    return free // (n_leads * fmt.nbytes)


def pack_frame(frame: Frame) -> bytes:
    """The frame's bytes without COBS: header, lead ids, interleaved samples, CRC-32."""
    fmt = frame.sample_format
    v2 = frame.version == 2
    header = _HEADER.pack(
        MAGIC, frame.version, frame.stream_id, frame.seq, frame.samples_per_lead, frame.first_sample,
        frame.fs_mhz, 0 if v2 else f32_bits(frame.gains_uv[0]), 0 if v2 else frame.baselines[0],
        fmt.code, frame.n_leads, frame.device_flags, frame.lead_off,
    )
    leads = bytes(_LEAD_CODES[name.lower()] for name in frame.lead_ids)
    if v2:
        leads += b"".join(_LEAD_CAL.pack(f32_bits(g), b) for g, b in zip(frame.gains_uv, frame.baselines))
    interleaved = np.ascontiguousarray(frame.samples.T)  # sample t of every lead, then t + 1
    if fmt is SampleFormat.INT16:
        payload = interleaved.astype("<i2").tobytes()
    else:
        payload = interleaved.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    body = header + leads + payload
    return body + struct.pack("<I", zlib.crc32(body))


def unpack_frame(data: bytes | bytearray) -> Frame | LabelFrame | BeatFrame | DecodeError:
    """Validate one frame without COBS (as :func:`pack_frame` returns it); never raises.

    Checks run in the order PROTOCOL.md gives, so C and Python report the same kind.
    """
    data = bytes(data)
    n = len(data)
    if n < MIN_FRAME_BYTES:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes; the smallest frame has {MIN_FRAME_BYTES}")
    if n > MAX_FRAME_BYTES:
        return decode_error(DecodeErrorKind.OVERSIZE, f"{n} bytes; the largest frame has {MAX_FRAME_BYTES}")
    (magic, version, stream_id, seq, n_per_lead, first_sample, fs_mhz, gain_bits, baseline,
     fmt_code, n_leads, device_flags, lead_off) = _HEADER.unpack_from(data)
    fmt = _FORMAT_BY_CODE.get(fmt_code)
    known = version in PROTOCOL_VERSIONS
    expected = (_frame_bytes(n_leads, n_per_lead, fmt.nbytes, version)
                if known and fmt is not None and 1 <= n_leads <= MAX_LEADS and n_per_lead >= 1 else 0)
    if zlib.crc32(data[:-CRC_BYTES]) != struct.unpack_from("<I", data, n - CRC_BYTES)[0]:
        if magic == MAGIC and known and expected and expected != n:
            return decode_error(DecodeErrorKind.BAD_LENGTH,
                          f"{n} bytes but the header implies {expected} (bytes lost, or a delimiter)")
        return decode_error(DecodeErrorKind.BAD_CRC, f"CRC-32 mismatch over {n} bytes")
    if magic != MAGIC:
        return decode_error(DecodeErrorKind.BAD_MAGIC, f"magic {magic!r}, expected {MAGIC!r}")
    if version == LABEL_VERSION:
        return unpack_label(data)
    if version == BEAT_VERSION:
        return unpack_beats(data)
    if not known:
        return decode_error(DecodeErrorKind.UNKNOWN_VERSION,
                      f"protocol version {version}; this decoder speaks {PROTOCOL_VERSIONS}")
    if not expected or fmt is None:  # expected is 0 whenever fmt is None
        return decode_error(DecodeErrorKind.BAD_FIELD,
                      f"sample format {fmt_code}, {n_leads} leads, {n_per_lead} samples per lead")
    if expected != n:
        return decode_error(DecodeErrorKind.BAD_LENGTH, f"{n} bytes but the header implies {expected}")
    table_end = HEADER_FIXED_BYTES + _lead_table_bytes(n_leads, version)
    # Version, bytes 20..27 (v1 gain and baseline; v2 reserved) and the lead table: all the checks below read.
    key = data[2:3] + data[20:28] + data[HEADER_FIXED_BYTES:table_end]
    table = _LEAD_TABLES.get(key)
    if table is None:
        checked = _lead_table_from(data, version, n_leads, gain_bits, baseline, fs_mhz)
        if isinstance(checked, DecodeError):
            return checked
        if len(_LEAD_TABLES) >= _LEAD_TABLES_MAX:
            _LEAD_TABLES.clear()
        table = _LEAD_TABLES[key] = checked
    if fs_mhz == 0:
        return decode_error(DecodeErrorKind.BAD_FIELD, f"sampling rate {fs_mhz} mHz, gain bits ok")
    if lead_off >> n_leads:
        return decode_error(DecodeErrorKind.BAD_FIELD, f"lead-off mask {lead_off:#06x} names leads beyond {n_leads}")
    payload = np.frombuffer(data, np.uint8, n_leads * n_per_lead * fmt.nbytes, table_end)
    if fmt is SampleFormat.INT16:
        values = payload.view("<i2").astype(np.int32)
    else:
        b = payload.reshape(-1, 3).astype(np.int32)
        values = ((b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16) ^ 0x800000) - 0x800000
    values.flags.writeable = False
    # (n_leads, n) over the interleaved samples: the Fortran-ordered layout Frame(...) keeps of it
    return Frame._from_wire(table, values.reshape(n_per_lead, n_leads).T, stream_id=stream_id, seq=seq,
                            first_sample=first_sample, fs_mhz=fs_mhz, sample_format=fmt, lead_off=lead_off,
                            device_flags=device_flags, version=version)


@dataclass(frozen=True)
class _LeadTable:
    """A frame's validated lead table: lead names, each lead's gain (µV per ADC unit, float32 values)
    and baseline (ADC units), and the gain / baseline every lead shares (None when they differ)."""

    lead_ids: tuple[str, ...]
    gains_uv: tuple[float, ...]
    baselines: tuple[int, ...]
    gain_uv: float | None
    baseline: int | None


# Lead tables already validated, by their wire bytes (see unpack_frame): a device repeats its table in
# every frame, so each is checked and converted once. Cleared when full: each new table adds one entry.
_LEAD_TABLES: dict[bytes, _LeadTable] = {}
_LEAD_TABLES_MAX = 1024


def _lead_table_from(data: bytes, version: int, n_leads: int, gain_bits: int, baseline: int,
                     fs_mhz: int) -> _LeadTable | DecodeError:
    """The lead table of a frame whose length has been checked (:func:`unpack_frame`), or why not; the
    sampling rate is checked here too, in the order PROTOCOL.md gives."""
    codes = data[HEADER_FIXED_BYTES:HEADER_FIXED_BYTES + n_leads]
    if version == 2:
        cal = [_LEAD_CAL.unpack_from(data, HEADER_FIXED_BYTES + n_leads + LEAD_CAL_BYTES * i) for i in range(n_leads)]
        if gain_bits or baseline:
            return decode_error(DecodeErrorKind.BAD_FIELD,
                          f"version 2 with bytes 20..27 {gain_bits:#010x} {baseline:#x}; reserved, must be 0")
    else:
        cal = [(gain_bits, baseline)] * n_leads
    bad_gains = [bits for bits, _ in cal if not gain_bits_ok(bits)]
    if fs_mhz == 0 or bad_gains:
        return decode_error(DecodeErrorKind.BAD_FIELD, f"sampling rate {fs_mhz} mHz, gain bits "
                      f"{', '.join(f'{b:#010x}' for b in bad_gains) or 'ok'}")
    if max(codes) >= len(LEAD_NAMES):
        return decode_error(DecodeErrorKind.BAD_FIELD, f"lead code {max(codes)} is reserved")
    gains = tuple(f32_from_bits(bits) for bits, _ in cal)
    bases = tuple(b for _, b in cal)
    return _LeadTable(tuple(LEAD_NAMES[c] for c in codes), gains, bases,
                      gains[0] if len(set(gains)) == 1 else None, bases[0] if len(set(bases)) == 1 else None)
