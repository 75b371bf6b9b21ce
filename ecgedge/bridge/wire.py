"""What every frame of the wire protocol shares (``firmware_bridge/PROTOCOL.md``): why bytes are not a
frame (:class:`DecodeError`, never an exception), and the float32 bit checks the C library makes.

The sample frames are :mod:`ecgedge.bridge.frame`; the device's own results (label and beat frames)
:mod:`ecgedge.bridge.result_frames`. NumPy-free, stdlib only.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

# Version byte of a label frame (PROTOCOL.md section 2b, "L"): the device's own verdict on a window.
# Not 1 or 2, so a receiver that predates it reports it as unknown_version, never as samples.
LABEL_VERSION = 0x4C
# Version byte of a beat frame (PROTOCOL.md section 2c, "B"): the device's own QRS detector's beats.
BEAT_VERSION = 0x42
MAGIC = b"EG"
CRC_BYTES = 4
# Largest decoded frame, header to CRC (PROTOCOL.md, "Sizes").
MAX_FRAME_BYTES = 1024
SEQ_MODULUS = 1 << 16  # the frame counter seq is a u16 and wraps


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


def decode_error(kind: DecodeErrorKind, detail: str) -> DecodeError:
    return DecodeError(kind, detail)


def f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def f32_from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def gain_bits_ok(bits: int) -> bool:
    """Finite, positive, not zero (checked on the bits, as the C library does)."""
    return bits != 0 and not bits & 0x80000000 and bits & 0x7F800000 != 0x7F800000
