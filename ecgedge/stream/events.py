"""The records of a stream as typed events: what happened, with its units; ``to_json()`` is the JSON line.

Every record ``ecgedge stream`` prints is one of these objects rendered by its ``to_json()`` (the
table of record types is in :mod:`ecgedge.stream.session`). Code that counts or reacts to events
(the session's per-bed counts, tests) reads their fields; only the output boundary turns them into
dicts.

Units: ``t_s`` and ``*_s`` fields are seconds of stream time (sample index / source rate), rounded
to 1 ms in JSON (``no_data.seconds``: wall seconds, to 0.1 s); ``sample``/``*_sample`` fields and
``[start, end)`` spans are source-rate sample indices per lead, end exclusive; ``fs_hz`` in Hz;
probabilities in JSON to :data:`PROB_DECIMALS` decimals, ``confidence`` to 4.

NumPy only (a verdict may hold its model input while it waits for inference): no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Hashable, Union

import numpy as np

from ecgedge.bridge.frame import DecodeErrorKind

# Probabilities are written with this many decimals: float32 softmax is good to about 1e-7.
PROB_DECIMALS = 6
# The technical alert a bedside monitor calls "ECG signal inoperable".
INOPERABLE = "ecg_signal_inoperable"


class AlertState(str, Enum):
    raised = "raised"
    cleared = "cleared"


class DropReason(str, Enum):
    """Why the sequence tracker dropped a frame."""

    repeat = "repeat"  # already delivered
    out_of_order = "out_of_order"  # late, inside a gap already reported


# ---- one bed: verdicts and the events they raise ------------------------------------------------


@dataclass
class WindowVerdict:
    """One classification step of one bed. Sample indices are at the source rate, end exclusive.

    ``start_sample``..``end_sample`` is what the window covers; ``new_start``..``end_sample`` the
    samples it accounts for (those since the previous window of the stream). ``concealed``: samples
    of the window that were concealed (lost and interpolated), ``concealed_new`` those of them in
    its ``new`` span (they count as lost, not as classified or unreliable).
    """

    stream: Hashable
    t_s: float
    start_sample: int
    end_sample: int
    new_start: int
    reliable: bool
    reason: str = ""
    leads: tuple[str, ...] = ()
    label: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    # The model input while waiting for inference: z-scored (a BedMonitor alone) or, from a hub's
    # deferring monitors, the window in mV, which the hub z-scores in its inference batch.
    window: np.ndarray | None = None
    concealed: int = 0
    concealed_new: int = 0

    def to_json(self) -> dict:
        out = {"type": "window", "stream": self.stream, "t": round(self.t_s, 3),
               "samples": [self.start_sample, self.end_sample], "new": [self.new_start, self.end_sample],
               "quality": "ok" if self.reliable else "unreliable"}
        if self.reliable:
            out["label"] = self.label
            out["probs"] = {k: round(v, PROB_DECIMALS) for k, v in self.probs.items()}
        else:
            out["reason"] = self.reason
            if self.leads:
                out["leads"] = list(self.leads)
        if self.concealed:
            out["concealed_samples"] = self.concealed
            out["concealed_new"] = self.concealed_new
        return out


@dataclass
class SampleGap:
    """Source samples ``[start, end)`` of one bed never arrived; ``concealed``: they were interpolated."""

    stream: Hashable
    start: int
    end: int
    fs_hz: float
    frames_lost: int | None = None
    concealed: bool = False

    @property
    def samples(self) -> int:
        return self.end - self.start

    def to_json(self) -> dict:
        out = {"type": "gap", "stream": self.stream, "t": round(self.start / self.fs_hz, 3), "samples": [self.start, self.end],
               "seconds": round(self.samples / self.fs_hz, 3)}
        if self.frames_lost is not None:
            out["frames_lost"] = self.frames_lost
        if self.concealed:
            out["concealed"] = True
        return out


@dataclass
class SignalAlert:
    """The ``ecg_signal_inoperable`` technical alert of one bed, raised or cleared.

    ``t_s``/``sample``: stream time (s) and source sample at which it changed; ``dark_s``: stream
    seconds without a classified window until then (for a clearing: how long it lasted, at least);
    ``reason``: why the last window before a raising was not classified (``"no data"`` when it
    was raised on wall time, nothing having arrived).
    """

    stream: Hashable
    t_s: float
    sample: int
    state: AlertState
    dark_s: float
    reason: str = ""
    alert: str = INOPERABLE

    def to_json(self) -> dict:
        out = {"type": "alert", "stream": self.stream, "t": round(self.t_s, 3), "sample": self.sample,
               "alert": self.alert, "state": self.state.value, "dark_s": round(self.dark_s, 3)}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class QualityChange:
    """The signal of one bed became ``ok`` (``reliable``) or ``unreliable`` (``reason``) with the
    window ending at source sample ``sample`` (stream time ``t_s``)."""

    stream: Hashable
    t_s: float
    sample: int
    reliable: bool
    reason: str = ""

    def to_json(self) -> dict:
        out = {"type": "quality", "stream": self.stream, "t": round(self.t_s, 3), "sample": self.sample,
               "quality": "ok" if self.reliable else "unreliable"}
        if not self.reliable:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class RhythmChange:
    """A label held ``held_windows`` consecutive reliable windows (hysteresis) and replaced
    ``previous`` (None: the first rhythm) with the window ending at source sample ``sample``;
    ``confidence``: that window's probability of ``rhythm``."""

    stream: Hashable
    t_s: float
    sample: int
    previous: str | None
    rhythm: str
    held_windows: int
    confidence: float

    def to_json(self) -> dict:
        return {"type": "rhythm_change", "stream": self.stream, "t": round(self.t_s, 3), "sample": self.sample,
                "from": self.previous, "to": self.rhythm, "held_windows": self.held_windows,
                "confidence": round(self.confidence, 4)}


class RateAlarmKind(str, Enum):
    """The rate alarms of IEC 60601-2-27 a bedside ECG monitor must raise (:mod:`ecgedge.stream.rate`)."""

    asystole = "asystole"
    bradycardia = "extreme_bradycardia"
    tachycardia = "extreme_tachycardia"


@dataclass(frozen=True)
class HeartRate:
    """One hop of one bed's beats (:mod:`ecgedge.stream.rate`), with the window ending at source sample ``sample``.

    ``hr_bpm``: the median of the last ``rr_count`` RR intervals (at most
    :data:`ecgedge.beats.RATE_BEATS`, 8) in beats per minute, None before two beats (or after a gap
    that restarted the filters, until two beats follow it). ``irregularity``: median absolute
    successive RR difference over the median RR of those intervals (:func:`ecgedge.beats.rr_irregularity`;
    None with fewer than 3). ``beats``: the R peaks found since the previous hop, source-rate sample
    indices (found about 0.2 s after their peak, so usually in the hop before; a search-back beat
    later), and ``beat_flags`` their :class:`ecgedge.beats.BeatFlag` bits (1 noisy, 2 concealed gap,
    4 search-back).
    """

    stream: Hashable
    t_s: float
    sample: int
    hr_bpm: float | None
    rr_count: int
    irregularity: float | None
    beats: tuple[int, ...] = ()
    beat_flags: tuple[int, ...] = ()

    def to_json(self) -> dict:
        return {"type": "heart_rate", "stream": self.stream, "t": round(self.t_s, 3), "sample": self.sample,
                "hr_bpm": None if self.hr_bpm is None else round(self.hr_bpm, 1), "rr_count": self.rr_count,
                "irregularity": None if self.irregularity is None else round(self.irregularity, 4),
                "beats": list(self.beats), "beat_flags": list(self.beat_flags)}


@dataclass(frozen=True)
class RateAlarm:
    """A rate alarm of one bed raised or cleared at the hop ending at source sample ``sample`` (``t_s``).

    ``technical``: the condition holds but the signal is too poor to decide (``reason``: a lead off,
    device flags, non-finite, saturated or implausible samples, noisy beats, the inoperable alert),
    as a monitor's "ECG signal inoperable" stands in for a physiological alarm it cannot confirm.
    ``hr_bpm``: the heart rate then (None if unknown); ``last_beat``: source sample of the last beat
    before it (None: none since the stream or a gap began); ``since_beat_s``: seconds from that beat
    (or from the start of the judged signal) to ``t_s``. Delays: :mod:`ecgedge.stream.rate`.
    """

    stream: Hashable
    t_s: float
    sample: int
    alarm: RateAlarmKind
    state: AlertState
    technical: bool = False
    hr_bpm: float | None = None
    last_beat: int | None = None
    since_beat_s: float | None = None
    reason: str = ""

    def to_json(self) -> dict:
        out = {"type": "rate_alarm", "stream": self.stream, "t": round(self.t_s, 3), "sample": self.sample,
               "alarm": RateAlarmKind(self.alarm).value, "state": AlertState(self.state).value, "technical": self.technical,
               "hr_bpm": None if self.hr_bpm is None else round(self.hr_bpm, 1), "last_beat": self.last_beat}
        if self.since_beat_s is not None:
            out["since_beat_s"] = round(self.since_beat_s, 3)
        if self.reason:
            out["reason"] = self.reason
        return out


# ---- one bed: what the link and the sequence tracker saw -----------------------------------------


@dataclass(frozen=True)
class DeviceLabel:
    """The device's own verdict on a window (a label frame, ``ecgsim --classify``) beside the host's.

    The device's window and the host's are the same window when they end at the same source sample
    (both cut windows at the same model-rate ends from the stream's start: the hop is equal).
    ``host_label``: the host model's label for the window ending at ``end_sample``, also where the
    host reports that window ``unreliable`` for the label itself (the noise class ``~``); None where
    the host did not run the model on it (lead-off, failed signal checks, starting up) or cut no
    window there. ``host_quality``: that window's ``ok`` / ``unreliable`` (None: no host window).
    ``agree`` is None unless both have a label.
    """

    stream: Hashable
    t_s: float
    start_sample: int
    end_sample: int
    label: str
    scores: tuple[int, ...]
    lead_off: bool = False
    host_label: str | None = None
    host_quality: str | None = None

    @property
    def agree(self) -> bool | None:
        return None if self.host_label is None else self.host_label == self.label

    def to_json(self) -> dict:
        out = {"type": "device_label", "stream": self.stream, "t": round(self.t_s, 3),
               "samples": [self.start_sample, self.end_sample], "label": self.label, "scores": list(self.scores),
               "host_label": self.host_label, "host_quality": self.host_quality, "agree": self.agree}
        if self.lead_off:
            out["lead_off"] = True
        return out


@dataclass(frozen=True)
class DeviceBeats:
    """The beats the device's own QRS detector found (a beat frame, ``ecgsim --beats`` / ``--classify``:
    ``firmware_bridge/src/ecgb_qrs.c``, the C port of :mod:`ecgedge.beats.qrs`) beside the host's.

    ``samples``: R peaks, source sample indices; ``flags``: their :class:`ecgedge.beats.BeatFlag` bits;
    ``start_sample``/``end_sample``: the device's decisions on source samples [start, end) since its
    previous beat frame; ``leads``: the lead(s) it read. Where the host detects beats too (its
    heart-rate events), the frame waits for the host's hop that has decided the same samples:
    ``compared`` is then the number of device beats checked and ``agree`` how many have a host beat
    within one sample (None both: the host had no beats to compare with).
    """

    stream: Hashable
    t_s: float
    start_sample: int
    end_sample: int
    samples: tuple[int, ...]
    flags: tuple[int, ...]
    leads: tuple[str, ...] = ()
    compared: int | None = None
    agree: int | None = None

    def to_json(self) -> dict:
        return {"type": "device_beats", "stream": self.stream, "t": round(self.t_s, 3),
                "samples": [self.start_sample, self.end_sample], "beats": list(self.samples),
                "beat_flags": list(self.flags), "leads": list(self.leads), "compared": self.compared, "agree": self.agree}


@dataclass(frozen=True)
class StreamStart:
    """A bed's first frame: its stream id, first source sample, rate (Hz) and leads, the model's
    leads, and whether the device says it replays a recording (``simulated``)."""

    stream: Hashable
    sample: int
    fs_hz: float
    leads: tuple[str, ...]
    model_leads: tuple[str, ...]
    simulated: bool

    def to_json(self) -> dict:
        return {"type": "stream_start", "stream": self.stream, "t": round(self.sample / self.fs_hz, 3),
                "sample": self.sample, "fs_hz": self.fs_hz, "leads": list(self.leads),
                "model_leads": list(self.model_leads), "simulated": self.simulated}


@dataclass(frozen=True)
class StreamRefused:
    """A bed whose leads (or rate) the model cannot use: its frames are counted, not classified."""

    stream: Hashable
    detail: str

    def to_json(self) -> dict:
        return {"type": "stream_error", "stream": self.stream, "detail": self.detail}


@dataclass(frozen=True)
class DroppedFrame:
    """A repeated or late frame (``seq``, first source sample ``first_sample``) was dropped."""

    stream: Hashable
    seq: int
    first_sample: int
    reason: DropReason

    def to_json(self) -> dict:
        return {"type": "dropped_frame", "stream": self.stream, "seq": self.seq, "first_sample": self.first_sample,
                "reason": DropReason(self.reason).value}


@dataclass(frozen=True)
class StreamRestart:
    """The device's sample index went back (a reboot): ``expected_sample`` was due, ``first_sample``
    came; tracking starts over there."""

    stream: Hashable
    expected_sample: int
    first_sample: int

    def to_json(self) -> dict:
        return {"type": "restart", "stream": self.stream, "expected_sample": self.expected_sample,
                "first_sample": self.first_sample}


@dataclass(frozen=True)
class StreamFormatChange:
    """Sampling rate, leads, sample format, gain or baseline (``changed``: the frame fields) changed
    at source sample ``first_sample``."""

    stream: Hashable
    first_sample: int
    changed: tuple[str, ...]

    def to_json(self) -> dict:
        return {"type": "format_change", "stream": self.stream, "first_sample": self.first_sample,
                "changed": list(self.changed)}


@dataclass(frozen=True)
class NoData:
    """No frame from a bed for ``seconds`` of wall time after source sample ``after_sample``
    (stream time ``t_s``); once per silence."""

    stream: Hashable
    t_s: float
    after_sample: int
    seconds: float

    def to_json(self) -> dict:
        return {"type": "no_data", "stream": self.stream, "t": round(self.t_s, 3), "after_sample": self.after_sample,
                "seconds": round(self.seconds, 1)}


# ---- the session: bytes, link, output -------------------------------------------------------------


@dataclass(frozen=True)
class UndecodedBytes:
    """Bytes that were not a frame, dropped up to byte ``offset`` of the source (``kind``: the
    decoder's reason, ``bad_crc``, ...)."""

    kind: DecodeErrorKind
    detail: str
    offset: int

    def to_json(self) -> dict:
        return {"type": "decode_error", "kind": DecodeErrorKind(self.kind).value, "detail": self.detail,
                "offset": self.offset}


@dataclass(frozen=True)
class LinkChange:
    """The link to the device went ``down`` or came back ``up`` (``state``); ``source`` names it."""

    state: str
    detail: str
    source: str = ""

    def to_json(self) -> dict:
        out = {"type": "link", "state": self.state, "detail": self.detail}
        if self.source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class TeeFailed:
    """The ``--tee`` copy at ``path`` could not be written after ``saved_bytes`` bytes: dropped."""

    path: str
    detail: str
    saved_bytes: int

    def to_json(self) -> dict:
        return {"type": "tee_error", "path": self.path, "detail": self.detail, "bytes": self.saved_bytes}


@dataclass(frozen=True)
class SessionStart:
    """The first record of ``ecgedge stream``: which model runs where, its window and the settings.

    ``window_s``/``hop_s`` in seconds; ``server*`` only for a Triton server; ``note``: why the
    precision is not the backend's first choice.
    """

    export: str
    model: str | None
    precision: str | None
    backend: str
    labels: tuple[str, ...]
    leads: tuple[str, ...]
    window_s: float
    hop_s: float
    hysteresis: int
    source: str
    server: str | None = None
    server_model: str | None = None
    server_platform: str | None = None
    note: str = ""

    def to_json(self) -> dict:
        out = {"type": "session", "export": self.export, "model": self.model, "precision": self.precision,
               "backend": self.backend, "labels": list(self.labels), "leads": list(self.leads),
               "window_s": self.window_s, "hop_s": self.hop_s, "hysteresis": self.hysteresis, "source": self.source}
        if self.server:
            out.update(server=self.server, server_model=self.server_model, server_platform=self.server_platform)
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class StreamCounts:
    """What one bed's stream amounted to; samples at the source rate (see
    :mod:`ecgedge.stream.session` for the identities they satisfy). ``pending``: samples received
    that no window has reached yet, filled in for the summary."""

    stream: Hashable
    fs_hz: float
    leads: tuple[str, ...]
    first_sample: int
    next_sample: int = 0
    frames: int = 0
    received: int = 0
    lost: int = 0
    concealed: int = 0
    classified: int = 0
    unreliable: int = 0
    windows_ok: int = 0
    windows_unreliable: int = 0
    rhythm_changes: int = 0
    inoperable_alerts: int = 0
    dropped_frames: int = 0
    restarts: int = 0
    format_changes: int = 0
    rhythm: str | None = None
    refused: str = ""
    pending: int = 0
    device_labels: int = 0  # label frames from the device (ecgsim --classify)
    device_compared: int = 0  # of them, windows the host classified too
    device_agree: int = 0  # of those, the same label
    device_beats: int = 0  # beats from the device's beat frames (ecgsim --beats / --classify)
    device_beats_compared: int = 0  # of them, beats the host had decided too
    device_beats_agree: int = 0  # of those, with a host beat within one sample

    def to_json(self) -> dict:
        device = ("device_labels", "device_compared", "device_agree")
        beats = ("device_beats", "device_beats_compared", "device_beats_agree")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("refused", "pending", *device, *beats)}
        out["leads"] = list(self.leads)
        out["pending"] = self.pending
        if self.refused:
            out["refused"] = self.refused
        if self.device_labels:  # only where the device classifies: other summaries stay as they were
            out.update({k: getattr(self, k) for k in device})
        if self.device_beats:  # only where the device detects beats
            out.update({k: getattr(self, k) for k in beats})
        return out


@dataclass(frozen=True)
class SessionSummary:
    """The last record: bytes and frames decoded, decode errors by kind, link drops, and per bed a
    snapshot of its :class:`StreamCounts`; ``source``, ``ended`` (why the stream stopped),
    ``elapsed_s`` (wall seconds) and ``tee_error`` when the session ran from a source."""

    bytes_read: int
    frames: int
    decode_errors_by_kind: dict[str, int]
    link_down: int
    streams: tuple[StreamCounts, ...]
    source: str | None = None
    ended: str | None = None
    elapsed_s: float | None = None
    tee_error: str = ""

    def to_json(self) -> dict:
        out = {"type": "summary", "bytes": self.bytes_read, "frames": self.frames,
               "decode_errors": sum(self.decode_errors_by_kind.values()),
               "decode_errors_by_kind": dict(self.decode_errors_by_kind), "link_down": self.link_down,
               "streams": [c.to_json() for c in self.streams]}
        if self.source is not None:
            out["source"] = self.source
        if self.ended is not None:
            out["ended"] = self.ended
        if self.elapsed_s is not None:
            out["elapsed_s"] = self.elapsed_s
        if self.tee_error:
            out["tee_error"] = self.tee_error
        return out


Event = Union[WindowVerdict, SampleGap, SignalAlert, QualityChange, RhythmChange, HeartRate, RateAlarm, DeviceLabel, DeviceBeats, StreamStart, StreamRefused,
              DroppedFrame, StreamRestart, StreamFormatChange, NoData, UndecodedBytes, LinkChange, TeeFailed,
              SessionStart, SessionSummary]


def record_of(event: Event) -> dict:
    """The JSON record of an event (its ``to_json()``)."""
    return event.to_json()
