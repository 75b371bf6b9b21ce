"""COBS framing (Cheshire & Baker): the bytes a device sends for a frame.

Consistent Overhead Byte Stuffing removes every 0x00 from a packet (at most one extra byte per 254,
plus one), so a single 0x00 can delimit frames on a byte link and a receiver that joins mid-stream
or loses bytes resynchronises at the next delimiter. C: ``firmware_bridge/src/cobs.c``; decoding is
:class:`~ecgedge.bridge.decoder.FrameDecoder`'s job.
"""

from __future__ import annotations

from ecgedge.bridge.frame import MAX_FRAME_BYTES, Frame, pack_frame

# COBS adds at most one byte per 254 plus one.
MAX_ENCODED_BYTES = MAX_FRAME_BYTES + MAX_FRAME_BYTES // 254 + 1


def cobs_encode(data: bytes) -> bytes:
    """Canonical COBS (Cheshire & Baker) of ``data``, without the 0x00 delimiter."""
    out = bytearray()
    chunks = bytes(data).split(b"\0")
    for i, chunk in enumerate(chunks):
        pos = 0
        while len(chunk) - pos >= 254:
            out += b"\xff" + chunk[pos:pos + 254]
            pos += 254
        rest = chunk[pos:]
        # A final run that filled whole 0xFF groups needs no empty group after it: one wire form.
        if rest or pos == 0 or i < len(chunks) - 1:
            out.append(len(rest) + 1)
            out += rest
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    """The bytes to send for ``frame``: COBS of :func:`pack_frame`, then the 0x00 delimiter."""
    return cobs_encode(pack_frame(frame)) + b"\0"

