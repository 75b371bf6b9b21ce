"""Streaming rhythm classification for one bed: samples in, window verdicts and rhythm events out.

numpy + the shared preprocessing + ``ecgedge.runtime``; never torch. A :class:`BedMonitor` takes
chunks of samples in mV with their first-sample index at the source rate, runs the *same* causal
preprocessing as training (``StreamingPreprocessor``, so a window here equals the offline window
ending at the same sample), and every ``hop_s`` seconds cuts the latest ``window_samples`` at the
model rate. :class:`StreamHub` batches the ready windows of many beds into one inference call.

Nothing is hidden:

- a **gap** (lost frames, a disconnect) is reported with its sample range; the filters restart
  after it, and windows that would overlap the gap or the restart's settling period are emitted as
  ``unreliable`` (reason ``gap``/``warming up``) instead of classified; the stream recovers by itself;
- **lead-off** flags, NaNs, flat or saturated leads (``ecgedge.data.quality``) make a window
  ``unreliable`` with the reason, never a rhythm;
- rhythm-change **events** use hysteresis: a new label must win ``hysteresis`` consecutive reliable
  windows before the monitor raises it, as a bedside monitor would.

Memory per bed is bounded: two ring buffers of one window each (model rate and source rate).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ecgedge.config import PreprocessConfig
from ecgedge.data.preprocess import StreamingPreprocessor, normalise_windows
from ecgedge.data.quality import signal_problems
from ecgedge.errors import ShapeMismatch
from ecgedge.evaluate.metrics import softmax


class Ring:
    """Fixed-size (leads, capacity) ring buffer that also counts every sample ever written."""

    def __init__(self, n_leads: int, capacity: int, dtype=np.float64):
        self.buf = np.zeros((n_leads, capacity), dtype=dtype)
        self.capacity = capacity
        self.total = 0

    def write(self, x: np.ndarray) -> None:
        n = x.shape[-1]
        if n > self.capacity:
            x, self.total = x[:, -self.capacity:], self.total + n - self.capacity
            n = self.capacity
        pos = self.total % self.capacity
        first = min(n, self.capacity - pos)
        self.buf[:, pos:pos + first] = x[:, :first]
        self.buf[:, :n - first] = x[:, first:]
        self.total += n

    def last(self, n: int, end: int | None = None) -> np.ndarray:
        """The ``n`` samples ending at absolute index ``end`` (default: the newest)."""
        end = self.total if end is None else end
        if n > self.capacity or end > self.total or end - n < self.total - self.capacity:
            raise IndexError(f"samples [{end - n}, {end}) are not in the ring (have [{self.total - self.capacity}, {self.total}))")
        idx = np.arange(end - n, end) % self.capacity
        return self.buf[:, idx]


@dataclass
class WindowVerdict:
    """One classification step of one bed. Sample indices are at the source rate."""

    stream: str
    t_s: float
    start_sample: int
    end_sample: int
    reliable: bool
    reason: str = ""
    label: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    window: np.ndarray | None = None  # normalised model input, while waiting for inference

    def to_json(self) -> dict:
        out = {"type": "window", "stream": self.stream, "t": round(self.t_s, 3), "samples": [self.start_sample, self.end_sample],
               "quality": "ok" if self.reliable else "unreliable"}
        if self.reliable:
            out |= {"label": self.label, "probs": {k: round(v, 4) for k, v in self.probs.items()}}
        else:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class StreamSettings:
    hop_s: float = 1.0
    hysteresis: int = 3


class BedMonitor:
    """One bed's stream: ``push(samples_mv, first_sample, lead_off=())`` -> list of events and verdicts (dicts).

    ``lead_names`` are the source's leads; the model's leads are picked from them by name (a missing
    one is an error at start, not a silent zero lead).
    """

    def __init__(self, stream_id: str, *, fs_in: float, lead_names, model_leads, labels, preprocess: PreprocessConfig,
                 window_samples: int, settings: StreamSettings = StreamSettings()):
        self.stream_id = stream_id
        self.fs_in = float(fs_in)
        self.labels = tuple(labels)
        self.cfg = preprocess
        self.window = window_samples
        self.settings = settings
        names = [str(n) for n in lead_names]
        alias = {"MLII": "II"}
        canon = [alias.get(n, n) for n in names]
        missing = [lead for lead in model_leads if lead not in canon]
        if missing and not (len(model_leads) == 1 and len(names) == 1):
            raise ShapeMismatch(f"stream {stream_id} carries leads {', '.join(names)}; the model needs {', '.join(missing)} too")
        self.lead_index = [0] if missing else [canon.index(lead) for lead in model_leads]
        self.model_leads = tuple(model_leads)
        self.hop_out = int(round(settings.hop_s * preprocess.fs_hz))
        self.window_in = int(np.ceil(window_samples * self.fs_in / preprocess.fs_hz))
        self.raw = Ring(len(self.lead_index), self.window_in + int(self.fs_in * 2))
        self.lead_off = Ring(len(self.lead_index), self.raw.capacity, dtype=bool)
        self.current: str | None = None
        self._candidate: tuple[str | None, int] = (None, 0)
        self.samples_seen = 0
        self.samples_lost = 0
        self.next_sample: int | None = None
        self._restart(0, "starting up")

    # segment = a run of contiguous samples since the start or the last gap
    def _restart(self, first_sample: int, reason: str) -> None:
        self.pre = StreamingPreprocessor(self.cfg, self.fs_in, len(self.lead_index))
        self.out = Ring(len(self.lead_index), self.window + self.hop_out)
        self.segment_start = first_sample
        self.raw_offset = first_sample - self.raw.total  # absolute source index = raw ring count + offset
        self.warm_reason = reason
        self.first_full = self.window + self.cfg.settle_samples  # model-rate samples before the first classifiable window
        self.next_end = self.hop_out

    def _in_sample(self, out_index: int) -> int:
        """Source-rate sample index of model-rate sample ``out_index`` of the current segment."""
        return self.segment_start + int(round(out_index * self.fs_in / self.cfg.fs_hz))

    def push(self, samples_mv: np.ndarray, first_sample: int, lead_off: Iterable[int] = ()) -> tuple[list[dict], list[WindowVerdict]]:
        """Feed (source leads, n) samples in mV starting at ``first_sample``. Returns (events, verdicts).

        Verdicts that need inference carry their normalised ``window``; :class:`StreamHub` fills
        ``label``/``probs`` and then calls :meth:`resolve` for the events that depend on them.
        """
        x = np.asarray(samples_mv, dtype=np.float64)[self.lead_index]
        events: list[dict] = []
        verdicts: list[WindowVerdict] = []
        if self.next_sample is not None and first_sample != self.next_sample:
            if first_sample > self.next_sample:
                events.append({"type": "gap", "stream": self.stream_id, "samples": [self.next_sample, first_sample],
                               "seconds": round((first_sample - self.next_sample) / self.fs_in, 3)})
                self.samples_lost += first_sample - self.next_sample
                self._restart(first_sample, "gap: filters restarting")
            else:  # repeated or overlapping data: drop what we already have
                skip = self.next_sample - first_sample
                if skip >= x.shape[-1]:
                    return events, verdicts
                x, first_sample = x[:, skip:], self.next_sample
        elif self.next_sample is None:
            self._restart(first_sample, "starting up")
        off_mask = np.zeros_like(x, dtype=bool)
        for lead in lead_off:
            if lead in self.lead_index:
                off_mask[self.lead_index.index(lead)] = True
        self.raw.write(x)
        self.lead_off.write(off_mask)
        self.samples_seen += x.shape[-1]
        self.next_sample = first_sample + x.shape[-1]
        self.out.write(self.pre.push(x))
        while self.out.total >= self.next_end:
            if self.next_end < self.first_full:  # not a full, settled window since the start or the last gap
                start, end = self.segment_start, self._in_sample(self.next_end)
                verdicts.append(WindowVerdict(self.stream_id, end / self.fs_in, start, end, reliable=False, reason=self.warm_reason))
            else:
                verdicts.append(self._verdict(self.next_end))
            self.next_end += self.hop_out
        return events, verdicts

    def _verdict(self, end_out: int) -> WindowVerdict:
        start_in, end_in = self._in_sample(end_out - self.window), self._in_sample(end_out)
        v = WindowVerdict(self.stream_id, end_in / self.fs_in, start_in, end_in, reliable=True)
        n_raw = min(end_in - start_in, self.raw.capacity)
        raw_end = min(end_in - self.raw_offset, self.raw.total)
        raw = self.raw.last(n_raw, raw_end)
        off = self.lead_off.last(n_raw, raw_end)
        if off.any():
            leads = [self.model_leads[i] for i in np.flatnonzero(off.any(axis=1))]
            v.reliable, v.reason = False, f"lead-off: {', '.join(leads)}"
        elif problems := signal_problems(raw, self.fs_in, self.model_leads):
            v.reliable, v.reason = False, "; ".join(problems)
        else:
            w, _ = normalise_windows(self.out.last(self.window, end_out)[None], self.cfg)
            v.window = w[0]
        return v

    def resolve(self, v: WindowVerdict) -> list[dict]:
        """Apply hysteresis to a finished verdict; return rhythm-change / signal events it causes."""
        events = []
        if not v.reliable:
            # One bad window does not end a rhythm (the unreliable line says why); it does reset the
            # count towards a new one, so an event always rests on consecutive good windows.
            self._candidate = (None, 0)
            return events
        label, count = self._candidate
        count = count + 1 if v.label == label else 1
        self._candidate = (v.label, count)
        if v.label != self.current and count >= self.settings.hysteresis:
            events.append({"type": "rhythm_change", "stream": self.stream_id, "t": round(v.t_s, 3), "from": self.current, "to": v.label,
                           "held_windows": count, "confidence": round(v.probs.get(v.label, 0.0), 4)})
            self.current = v.label
        return events


class StreamHub:
    """Many beds, one model: batches every ready window across beds into one ``runner.infer`` call."""

    def __init__(self, runner, labels, settings: StreamSettings = StreamSettings()):
        self.runner = runner
        self.labels = tuple(labels)
        self.settings = settings
        self.monitors: dict[str, BedMonitor] = {}
        self.pending: deque[WindowVerdict] = deque()

    def add(self, monitor: BedMonitor) -> BedMonitor:
        self.monitors[monitor.stream_id] = monitor
        return monitor

    def push(self, stream_id: str, samples_mv, first_sample: int, lead_off=()) -> list[dict]:
        """Feed one bed; returns the event/verdict records ready now (in order)."""
        events, verdicts = self.monitors[stream_id].push(samples_mv, first_sample, lead_off)
        out = list(events)
        self.pending.extend(verdicts)
        out += self.flush()
        return out

    def flush(self) -> list[dict]:
        """Classify every pending window in one batch; return their records and the events they raise."""
        if not self.pending:
            return []
        batch = list(self.pending)
        self.pending.clear()
        todo = [v for v in batch if v.window is not None]
        if todo:
            logits = self.runner.infer(np.stack([v.window for v in todo]))
            probs = softmax(logits.astype(np.float64))
            for v, p in zip(todo, probs):
                v.label = self.labels[int(p.argmax())]
                v.probs = {c: float(x) for c, x in zip(self.labels, p)}
                v.window = None
        out = []
        for v in batch:
            out.append(v.to_json())
            out += self.monitors[v.stream].resolve(v)
        return out
