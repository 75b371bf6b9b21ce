"""Stream sequence semantics: which sample indices of each stream arrived, were lost, or came twice.

Per stream id, the sample index (``first_sample``, u64, samples per lead since the stream started)
decides continuity; ``seq`` (u16, wraps at :data:`~ecgedge.bridge.frame.SEQ_MODULUS`) counts the
frames a gap lost. :class:`SequenceTracker` turns decoded frames into delivered frames plus
:class:`Gap` (samples ``[start, end)`` never arrived), :class:`Repeat` and :class:`OutOfOrder`
(dropped), :class:`Restart` (the index went back: device reboot) and :class:`FormatChange`
(sampling rate, leads, sample format, gain or baseline changed). ``firmware_bridge/PROTOCOL.md``, section 4 "Receiving".
"""

from __future__ import annotations

import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ecgedge.bridge.frame import SEQ_MODULUS, Frame


@dataclass(frozen=True)
class Gap:
    """Samples ``[start, end)`` of a stream never arrived; ``frames_lost`` is counted modulo 65536."""

    stream_id: int
    start: int
    end: int
    frames_lost: int

    @property
    def n_samples(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Repeat:
    """A frame already delivered arrived again (dropped)."""

    stream_id: int
    seq: int
    first_sample: int


@dataclass(frozen=True)
class OutOfOrder:
    """A late frame inside an already reported gap (dropped: the gap stands as reported)."""

    stream_id: int
    seq: int
    first_sample: int


@dataclass(frozen=True)
class Restart:
    """The sample index went back outside recent history (device reboot, source rewound):
    tracking starts over at ``first_sample`` (delivered)."""

    stream_id: int
    expected_sample: int
    first_sample: int


@dataclass(frozen=True)
class FormatChange:
    """Sampling rate, leads, sample format, gain or baseline changed at ``first_sample``
    (delivered): a consumer must re-initialise whatever depends on them. ``changed`` names them
    (``"gain_uv"`` / ``"baseline"`` when any lead's gain / baseline changed, in either protocol
    version; a switch between version 1 and 2 with the same values is no change)."""

    stream_id: int
    first_sample: int
    changed: tuple[str, ...]


StreamEvent = Gap | Repeat | OutOfOrder | Restart | FormatChange


@dataclass(frozen=True)
class Tracked:
    """What :meth:`SequenceTracker.push` made of a frame: ``frame`` is None when it was dropped."""

    frame: Frame | None
    events: tuple[StreamEvent, ...] = ()


# What a FormatChange names, one per value of _layout: gains and baselines per lead (v1 repeats its
# one value), reported as "gain_uv" / "baseline" whatever the protocol version.
_LAYOUT_FIELDS = ("fs_hz", "lead_ids", "sample_format", "gain_uv", "baseline")


def _layout(frame: Frame) -> tuple:
    """What a consumer must re-initialise for when it changes (named by :data:`_LAYOUT_FIELDS`)."""
    return frame.fs_hz, frame.lead_ids, frame.sample_format, frame.gains_uv, frame.baselines


def _identity(frame: Frame) -> tuple[int, int, int, int]:
    # With the samples' checksum, a rebooted device's seq 0 at sample 0 is not a repeat of the old one.
    return frame.seq, frame.first_sample, frame.samples_per_lead, zlib.crc32(frame.samples.tobytes())


@dataclass
class _StreamState:
    next_sample: int
    last_seq: int
    layout: tuple
    recent: OrderedDict = field(default_factory=OrderedDict)
    gaps: deque = field(default_factory=deque)


class SequenceTracker:
    """Per stream id, accounts for every sample index: delivered, or reported in a :class:`Gap`.

    The sample index (``first_sample``, u64) decides continuity; ``seq`` (u16, wraps) counts the
    frames a gap lost. A frame behind the expected index is a :class:`Repeat` when it matches a
    recently delivered one (seq, index and samples), :class:`OutOfOrder` when it lies inside a
    recently reported gap, and otherwise a :class:`Restart` (including a frame from before the first
    one this tracker saw: the first frame defines where the stream starts). Between restarts,
    delivered frames and reported gaps tile ``[first delivered sample, next expected sample)``
    exactly once. A stream's first frame reports no gap before it: a receiver may join late.

    Args:
        history: how many recent frames (per stream) are remembered to recognise repeats, and how
            many recent gaps to recognise late frames.
    """

    def __init__(self, history: int = 1024) -> None:
        self.history = history
        self.stats: dict[str, int] = dict.fromkeys(
            ("frames", "gaps", "missing_samples", "repeats", "out_of_order", "restarts", "format_changes"), 0)
        self._streams: dict[int, _StreamState] = {}

    def next_sample(self, stream_id: int) -> int | None:
        """The sample index the stream's next frame should start at (None before its first frame)."""
        state = self._streams.get(stream_id)
        return None if state is None else state.next_sample

    def push(self, frame: Frame) -> Tracked:
        """Account for one decoded frame; returns it (or None if dropped) with what was noticed."""
        state = self._streams.get(frame.stream_id)
        layout = _layout(frame)
        if state is None:
            self._streams[frame.stream_id] = self._fresh(frame, layout)
            return self._deliver(frame, [])
        events: list[StreamEvent] = []
        if frame.first_sample < state.next_sample:
            if _identity(frame) in state.recent:
                self.stats["repeats"] += 1
                return Tracked(None, (Repeat(frame.stream_id, frame.seq, frame.first_sample),))
            if any(start <= frame.first_sample and frame.end_sample <= end for start, end in state.gaps):
                self.stats["out_of_order"] += 1
                return Tracked(None, (OutOfOrder(frame.stream_id, frame.seq, frame.first_sample),))
            self.stats["restarts"] += 1
            events.append(Restart(frame.stream_id, state.next_sample, frame.first_sample))
            fresh = self._fresh(frame, state.layout)
            fresh.next_sample = frame.first_sample
            self._streams[frame.stream_id] = state = fresh
        if layout != state.layout:
            changed = tuple(n for n, old, new in zip(_LAYOUT_FIELDS, state.layout, layout) if old != new)
            events.append(FormatChange(frame.stream_id, frame.first_sample, changed))
            self.stats["format_changes"] += 1
            state.layout = layout
        if frame.first_sample > state.next_sample:
            lost = (frame.seq - state.last_seq - 1) % SEQ_MODULUS
            events.append(Gap(frame.stream_id, state.next_sample, frame.first_sample, lost))
            self.stats["gaps"] += 1
            self.stats["missing_samples"] += frame.first_sample - state.next_sample
            state.gaps.append((state.next_sample, frame.first_sample))
            if len(state.gaps) > self.history:
                state.gaps.popleft()
        state.next_sample = frame.end_sample
        state.last_seq = frame.seq
        state.recent[_identity(frame)] = None
        if len(state.recent) > self.history:
            state.recent.popitem(last=False)
        return self._deliver(frame, events)

    def _fresh(self, frame: Frame, layout: tuple) -> _StreamState:
        state = _StreamState(frame.end_sample, frame.seq, layout)
        state.recent[_identity(frame)] = None
        return state

    def _deliver(self, frame: Frame, events: list[StreamEvent]) -> Tracked:
        self.stats["frames"] += 1
        return Tracked(frame, tuple(events))
