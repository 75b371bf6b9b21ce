"""Bytes in any chunking -> frames and decode errors: the receiving end of a byte link.

A port of the C decoder's state machine (``firmware_bridge/src/decoder.c``): it undoes COBS between
0x00 delimiters, validates each frame (:func:`~ecgedge.bridge.frame.unpack_frame`), never raises on
bad input and resynchronises at the next delimiter. Offsets are byte counts since the decoder
started. NumPy only.
"""

from __future__ import annotations

from typing import TypeVar

from ecgedge.bridge.frame import MAX_FRAME_BYTES, BeatFrame, DecodeError, DecodeErrorKind, Frame, LabelFrame, unpack_frame

_Event = TypeVar("_Event", Frame, LabelFrame, BeatFrame, DecodeError, Frame | LabelFrame | BeatFrame | DecodeError)

_IDLE, _IN_FRAME, _DISCARD = range(3)


def _unstuffed(data: bytes, start: int, end: int) -> bytearray | DecodeError:
    """The bytes the complete COBS segment ``data[start:end]`` (no 0x00 in it) stands for, or why not
    (a :class:`DecodeError` without offset): the same results and error texts as :class:`FrameDecoder`'s
    byte state machine.

    Decoded, a segment is itself less its first code byte, every later code byte turned into the 0x00
    it stands for, except one after a full group (code 0xFF: 254 bytes, no 0x00), which is dropped.
    So only the chain of code bytes is walked (one step per 0x00 of the frame; int16 samples hold many).
    """
    buf = bytearray(data[start:end])
    n = end - start
    p = code = 0
    after_full: list[int] = []  # code bytes that follow a full group
    while p < n:
        code = buf[p]
        buf[p] = 0
        p += code
        if code == 0xFF:
            after_full.append(p)
    if p > n:
        return DecodeError(DecodeErrorKind.BAD_COBS, f"COBS group cut short by {p - n} bytes")
    if code == 1 and after_full and after_full[-1] == n - 1:
        return DecodeError(DecodeErrorKind.BAD_COBS, "empty COBS group after a full one (non-canonical)")
    for q in reversed(after_full):
        if q < n:
            del buf[q]
    del buf[0]
    return buf


def _frame_from_cobs(data: bytes, start: int, end: int, offset: int) -> Frame | LabelFrame | BeatFrame | DecodeError:
    """Decode the complete COBS segment ``data[start:end]`` (delimiter at ``end``): the same results and
    error texts as :class:`FrameDecoder`'s byte state machine, at slice speed."""
    body = _unstuffed(data, start, end)
    result = body if isinstance(body, DecodeError) else unpack_frame(body)
    return DecodeError(result.kind, result.detail, offset) if isinstance(result, DecodeError) else result


class FrameDecoder:
    """Incremental decoder: bytes in any chunking -> frames and :class:`DecodeError` events.

    A port of the C decoder's state machine (``firmware_bridge/src/decoder.c``): it holds at most
    :data:`MAX_FRAME_BYTES`, reports an oversize frame as soon as it overflows and skips to the next
    delimiter, and treats runs of 0x00 as idle fill. Feeding the same bytes in any chunks gives the
    same events. ``stats`` counts bytes, frames and each error kind (as the C decoder's do);
    ``label_frames`` the label frames (PROTOCOL.md 2b), which it yields as
    :class:`~ecgedge.bridge.frame.LabelFrame` (the C decoder reports them as ``unknown_version``);
    ``beat_frames`` the beat frames (PROTOCOL.md 2c), yielded as :class:`~ecgedge.bridge.frame.BeatFrame`.
    """

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"bytes": 0, "frames": 0} | {k.value: 0 for k in DecodeErrorKind}
        self._buf = bytearray()
        self._state = _IDLE
        self._code = 0
        self._remaining = 0
        self._prev_ff = False
        self.label_frames = 0
        self.beat_frames = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | LabelFrame | BeatFrame | DecodeError]:
        """Consume ``data``; return the frames and errors it completed, in stream order."""
        data = bytes(data)
        base = self.stats["bytes"]
        self.stats["bytes"] += len(data)
        events: list[Frame | LabelFrame | BeatFrame | DecodeError] = []
        i, n = 0, len(data)
        while i < n:
            if self._state == _IDLE:
                # Fast path: a whole frame up to its delimiter is in ``data`` and cannot overflow
                # (COBS adds at least one byte, so it decodes to at most len - 1 bytes).
                if data[i] == 0:
                    i += 1
                    continue
                j = data.find(0, i)
                if j >= 0 and j - i - 1 <= MAX_FRAME_BYTES:
                    events.append(self._count(_frame_from_cobs(data, i, j, base + j + 1)))
                    i = j + 1
                    continue
            if self._state == _DISCARD:
                j = data.find(0, i)
                if j < 0:
                    break
                self._state = _IDLE
                i = j + 1
                continue
            byte = data[i]
            if byte == 0:
                i += 1
                if self._state == _IN_FRAME:
                    events.append(self._end_frame(base + i))
                continue
            if self._state == _IDLE:
                self._state = _IN_FRAME
                self._buf.clear()
                self._code = 0
                self._remaining = 0
                self._prev_ff = False
            if self._remaining == 0:
                i += 1
                if self._code not in (0, 0xFF):
                    if len(self._buf) >= MAX_FRAME_BYTES:
                        events.append(self._oversize(base + i))
                        continue
                    self._buf.append(0)
                self._prev_ff = self._code == 0xFF
                self._code = byte
                self._remaining = byte - 1
                continue
            stop = min(n, i + self._remaining)
            zero = data.find(0, i, stop)
            if zero >= 0:
                stop = zero
            room = MAX_FRAME_BYTES - len(self._buf)
            if stop - i > room:
                i += room + 1  # the byte that did not fit is consumed, as in C
                events.append(self._oversize(base + i))
                continue
            self._buf += data[i:stop]
            self._remaining -= stop - i
            i = stop
        return events

    def _oversize(self, offset: int) -> DecodeError:
        self._state = _DISCARD
        return self._count(DecodeError(DecodeErrorKind.OVERSIZE,
                                       f"more than {MAX_FRAME_BYTES} bytes without a delimiter", offset))

    def _end_frame(self, offset: int) -> Frame | LabelFrame | BeatFrame | DecodeError:
        self._state = _IDLE
        if self._remaining:
            result: Frame | LabelFrame | BeatFrame | DecodeError = DecodeError(
                DecodeErrorKind.BAD_COBS, f"COBS group cut short by {self._remaining} bytes")
        elif self._code == 1 and self._prev_ff:
            result = DecodeError(DecodeErrorKind.BAD_COBS, "empty COBS group after a full one (non-canonical)")
        else:
            result = unpack_frame(self._buf)
        if isinstance(result, DecodeError):
            result = DecodeError(result.kind, result.detail, offset)
        return self._count(result)

    def _count(self, event: _Event) -> _Event:
        if isinstance(event, LabelFrame):
            self.label_frames += 1
        elif isinstance(event, BeatFrame):
            self.beat_frames += 1
        else:
            self.stats["frames" if isinstance(event, Frame) else event.kind.value] += 1
        return event

