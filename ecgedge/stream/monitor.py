"""Streaming rhythm classification for beds: samples in, window verdicts and rhythm events out.

numpy + the shared preprocessing + ``ecgedge.runtime``; never torch. A :class:`BedMonitor` takes
chunks of samples in mV with their first-sample index at the source rate, runs the *same* causal
preprocessing as training (``StreamingPreprocessor``, so a window here equals the offline window
ending at the same sample), and every ``hop_s`` seconds cuts the latest ``window_samples`` at the
model rate. :class:`StreamHub` batches the ready windows of many beds into one inference call.

Sample bookkeeping. A *segment* is a run of contiguous samples since the stream started or since
the last gap. Windows end every hop at model-rate sample ``k * hop`` (k = 1, 2, ...) after the
segment start, and model-rate index ``n`` maps to source index
``segment_start + round(n * fs_in / fs_model)``. Each window verdict owns the source samples
``new = [previous window end, its end)``, so verdicts and reported gaps tile the stream: every
sample is classified, reported unreliable, or reported lost (plus, at the end, less than one hop
that no window has reached yet).

Nothing is hidden:

- a **gap** (lost frames, a disconnect) is reported with its sample range; the window that would
  have ended across it is reported ``unreliable`` (reason ``gap``), the filters restart after it,
  and windows that would reach back over the gap or into the filters' settling period are
  ``unreliable`` too; the stream recovers by itself;
- **lead-off** flags, device flags (calibration pulse, ADC saturated) and flat, saturated or
  non-finite leads (``ecgedge.data.quality``) make a window ``unreliable`` with the reason, never a
  rhythm;
- rhythm-change **events** use hysteresis: a new label must win ``hysteresis`` consecutive reliable
  windows before the monitor raises it, as a bedside monitor would. A change of signal quality
  (``ok`` <-> ``unreliable``) is raised at once.

Memory per bed is bounded: ring buffers of about one window plus two hops (model rate and source
rate) and the filter states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Iterable, Union

import numpy as np

from ecgedge.config import PreprocessConfig
from ecgedge.data.preprocess import StreamingPreprocessor, normalise_windows, resampling_ratio
from ecgedge.data.quality import signal_problems
from ecgedge.errors import ConfigError, ShapeMismatch
from ecgedge.evaluate.metrics import softmax

# Lead names of the MIT-BIH world that are the standard limb leads under another name.
LEAD_ALIASES = {"mli": "i", "mlii": "ii", "mliii": "iii"}
# Device flag bits that make a window unreliable (PROTOCOL.md, device_flags).
CALIBRATION_FLAG, SATURATED_FLAG = 0x0002, 0x0004
# Probabilities are written with this many decimals: float32 softmax is good to about 1e-7.
PROB_DECIMALS = 6


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
            raise IndexError(f"samples [{end - n}, {end}) are not in the ring "
                             f"(it holds [{max(0, self.total - self.capacity)}, {self.total}))")
        idx = np.arange(end - n, end) % self.capacity
        return self.buf[:, idx]


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is classified.

    Args:
        hop_s: seconds between window ends (default 1.0).
        hysteresis: consecutive reliable windows a new label must win before a rhythm change is
            raised (default 3).
    """

    hop_s: float = 1.0
    hysteresis: int = 3

    def __post_init__(self):
        if not self.hop_s > 0:
            raise ConfigError(f"hop must be > 0 s, got {self.hop_s}")
        if self.hysteresis < 1:
            raise ConfigError(f"hysteresis must be >= 1 window, got {self.hysteresis}")


@dataclass(frozen=True)
class ModelSpec:
    """What a monitor needs to know about the model: its leads, labels, preprocessing and window."""

    leads: tuple[str, ...]
    labels: tuple[str, ...]
    preprocess: PreprocessConfig
    window_samples: int

    @classmethod
    def from_manifest(cls, manifest) -> "ModelSpec":
        """From an export folder's :class:`~ecgedge.export.manifest.Manifest`."""
        return cls(manifest.leads, manifest.labels, manifest.preprocess_config(), manifest.window_samples)


@dataclass
class WindowVerdict:
    """One classification step of one bed. Sample indices are at the source rate, end exclusive.

    ``start_sample``..``end_sample`` is what the window covers; ``new_start``..``end_sample`` the
    samples it accounts for (those since the previous window of the stream).
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
    window: np.ndarray | None = None  # normalised model input, while waiting for inference

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
        return out


Item = Union[dict, WindowVerdict]


def _lead_key(name: str) -> str:
    key = str(name).lower()
    return LEAD_ALIASES.get(key, key)


class BedMonitor:
    """One bed's stream: ``push(samples_mv, first_sample, lead_off)`` -> records and window verdicts, in order.

    Args:
        stream_id: the bed's name in every record (the protocol's stream id).
        fs_in: the source's sampling rate in Hz.
        lead_names: the source's leads, one per row of the samples pushed. The model's leads are
            picked from them by name (MLII counts as II); a single-lead model takes a single-lead
            source whatever its name. A missing lead is a :class:`ShapeMismatch` at once, never a
            silent zero lead.
        model: the model's leads, labels, preprocessing and window length.
        settings: hop and hysteresis.
        start_reason: reason given by the windows before the first classifiable one ("starting up";
            "format change" when the monitor replaces one whose stream changed rate or leads).
    """

    def __init__(self, stream_id: Hashable, *, fs_in: float, lead_names: Iterable[str], model: ModelSpec,
                 settings: StreamSettings = StreamSettings(), start_reason: str = "starting up"):
        self.stream_id = stream_id
        self.fs_in = float(fs_in)
        self.model = model
        self.cfg = model.preprocess
        self.settings = settings
        self.lead_names = tuple(str(n) for n in lead_names)
        keys = [_lead_key(n) for n in self.lead_names]
        missing = [lead for lead in model.leads if _lead_key(lead) not in keys]
        if missing and not (len(model.leads) == 1 and len(keys) == 1):
            raise ShapeMismatch(f"stream {stream_id} carries leads {', '.join(self.lead_names)}; "
                                f"the model needs {', '.join(missing)} too")
        self.lead_index = [0] if missing else [keys.index(_lead_key(lead)) for lead in model.leads]
        self.up, self.down = resampling_ratio(self.fs_in, self.cfg.fs_hz)  # fs_in * up / down = fs_model
        self.window = model.window_samples
        self.hop_out = max(1, int(round(settings.hop_s * self.cfg.fs_hz)))
        self.hop_in = max(1, self._in_offset(self.hop_out))
        self.window_in = self._in_offset(self.window)
        # Windows are cut after every piece of at most one hop, so a window's samples are still in
        # the rings when it is cut: one window plus two hops (and the resampler's lag) is enough.
        self._raw_capacity = self.window_in + 2 * self.hop_in + self.down // self.up + 4
        self._out_capacity = self.window + 2 * self.hop_out + 4
        self.current: str | None = None  # the rhythm last raised
        self.quality: str | None = None  # "ok" / "unreliable" of the last verdict
        self._candidate: tuple[str | None, int] = (None, 0)
        self.next_sample: int | None = None  # source index the next push should start at
        self._open = False  # a segment is in progress
        self._next_cause = start_reason  # why the next segment starts (reason of its warm-up verdicts)

    # ---- sample bookkeeping -------------------------------------------------------------------

    def _in_offset(self, n_out: int) -> int:
        """Source-rate offset of model-rate offset ``n_out``: round(n_out * fs_in / fs_model), halves up."""
        return (2 * n_out * self.down + self.up) // (2 * self.up)

    def _in_sample(self, n_out: int) -> int:
        """Source-rate sample index of model-rate sample ``n_out`` of the current segment."""
        return self.segment_start + self._in_offset(n_out)

    def _start_segment(self, first_sample: int, cause: str) -> None:
        self.pre = StreamingPreprocessor(self.cfg, self.fs_in, len(self.lead_index))
        self._unfiltered: list[np.ndarray] = []  # samples received, not yet through the filters (< one hop)
        self.out = Ring(len(self.lead_index), self._out_capacity)
        self.raw = Ring(len(self.lead_index), self._raw_capacity)
        self.lead_off = Ring(len(self.lead_index), self._raw_capacity, dtype=bool)
        self.flags = Ring(1, self._raw_capacity, dtype=np.uint16)
        if cause != "gap":  # a new stream (start, device restart, new layout): nothing before it counts
            self.stream_start = first_sample
        self.segment_start = first_sample
        self.cause = cause
        self.first_full = self.window + self.cfg.settle_samples  # model samples before a classifiable window
        self.next_end = self.hop_out
        self.last_end = first_sample  # source index up to which verdicts account for the samples
        self.next_sample = first_sample
        self._open = True

    def _end_segment(self, reason: str) -> list[Item]:
        """Close the current segment: its samples after the last window go into one unreliable verdict."""
        items: list[Item] = []
        if self._open and self.next_sample > self.last_end:
            end = self.next_sample
            items.append(WindowVerdict(self.stream_id, end / self.fs_in, max(self.stream_start, end - self.window_in),
                                       end, self.last_end, reliable=False, reason=reason))
            self.last_end = end
        self._open = False
        self._next_cause = reason
        return items

    @property
    def pending_samples(self) -> int:
        """Samples received that no verdict accounts for yet: less than a hop (plus the resampler's lag)."""
        return self.next_sample - self.last_end if self._open else 0

    # ---- input --------------------------------------------------------------------------------

    def restart(self, reason: str = "restart") -> list[Item]:
        """End the current segment (device restart, format change); the next push starts a new one at its index."""
        return self._end_segment(reason)

    def push(self, samples_mv: np.ndarray, first_sample: int, lead_off: Iterable[int] = (), *,
             device_flags: int = 0, frames_lost: int | None = None) -> list[Item]:
        """Feed ``(source leads, n)`` samples in mV starting at source sample ``first_sample``.

        Args:
            samples_mv: one row per source lead (``lead_names``).
            first_sample: source-rate index of the first column. An index past the expected one is a
                gap (reported, filters restarted); samples before it were seen already and are dropped.
            lead_off: indices of source leads whose electrode is off during these samples.
            device_flags: the protocol's device flags for these samples (calibration pulse and ADC
                saturated make windows unreliable).
            frames_lost: frames the gap before these samples lost (as the sequence tracker counts them).

        Returns:
            Records (dicts: ``gap``) and :class:`WindowVerdict` in stream order. Verdicts ready for
            inference carry their normalised ``window``; :class:`StreamHub` fills ``label``/``probs``
            and then calls :meth:`resolve` for the events that depend on them.
        """
        x = np.asarray(samples_mv, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(self.lead_names):
            raise ShapeMismatch(f"stream {self.stream_id}: samples of shape {x.shape}; "
                                f"expected ({len(self.lead_names)} leads, n)")
        x = x[self.lead_index]
        first_sample = int(first_sample)
        items: list[Item] = []
        if not self._open:
            self._start_segment(first_sample, self._next_cause)
        elif first_sample > self.next_sample:
            start, end = self.next_sample, first_sample
            items += self._end_segment("gap")
            gap = {"type": "gap", "stream": self.stream_id, "t": round(start / self.fs_in, 3), "samples": [start, end],
                   "seconds": round((end - start) / self.fs_in, 3)}
            if frames_lost is not None:
                gap["frames_lost"] = frames_lost
            items.append(gap)
            self._start_segment(first_sample, "gap")
        elif first_sample < self.next_sample:  # already seen: keep only what is new
            skip = self.next_sample - first_sample
            if skip >= x.shape[-1]:
                return items
            x, first_sample = x[:, skip:], self.next_sample
        off = np.zeros(len(self.lead_index), dtype=bool)
        for lead in lead_off:
            if lead in self.lead_index:
                off[self.lead_index.index(lead)] = True
        bad_flags = int(device_flags) & (CALIBRATION_FLAG | SATURATED_FLAG)
        for a in range(0, x.shape[-1], self.hop_in):
            piece = x[:, a:a + self.hop_in]
            n = piece.shape[-1]
            self.raw.write(piece)
            self.lead_off.write(np.repeat(off[:, None], n, axis=1))
            self.flags.write(np.full((1, n), bad_flags, dtype=np.uint16))
            # A non-finite sample would stay in the IIR state for ever: the filters see 0 mV there,
            # while the raw ring keeps it, so every window containing it is reported unreliable.
            self._unfiltered.append(piece if np.isfinite(piece).all() else np.nan_to_num(piece, nan=0.0, posinf=0.0, neginf=0.0))
            self.next_sample += n
            # The filters run once per window, on everything received since: the preprocessing is
            # chunk-invariant, so this equals filtering every frame, at a fraction of the calls.
            # (Before the next window's end has arrived, no window can be cut.)
            if self.next_sample >= self._in_sample(self.next_end):
                self._filter_received()
                items += self._cut_windows()
        return items

    def _filter_received(self) -> None:
        if self._unfiltered:
            x = self._unfiltered[0] if len(self._unfiltered) == 1 else np.concatenate(self._unfiltered, axis=1)
            self._unfiltered.clear()
            self.out.write(self.pre.push(x))

    def _cut_windows(self) -> list[WindowVerdict]:
        verdicts = []
        while True:
            end_out = self.next_end
            end_in = self._in_sample(end_out)
            if self.out.total < end_out or self.next_sample < end_in:
                return verdicts
            if end_out < self.first_full:  # not a full, settled window since the segment started
                start_in = max(self.stream_start, self._in_sample(end_out - self.window))
                # A window reaching back over the segment start overlaps the gap (or the time before
                # the stream); a later one still holds the filters' start-up transient.
                reason = self.cause if end_out < self.window or self.cause == "starting up" else f"settling after {self.cause}"
                verdicts.append(WindowVerdict(self.stream_id, end_in / self.fs_in, start_in, end_in, self.last_end,
                                              reliable=False, reason=reason))
            else:
                verdicts.append(self._verdict(end_out, end_in))
            self.last_end = end_in
            self.next_end += self.hop_out

    def _verdict(self, end_out: int, end_in: int) -> WindowVerdict:
        start_in = self._in_sample(end_out - self.window)
        v = WindowVerdict(self.stream_id, end_in / self.fs_in, start_in, end_in, self.last_end, reliable=True)
        n, end = end_in - start_in, end_in - self.segment_start
        off = self.lead_off.last(n, end).any(axis=1)
        flags = int(np.bitwise_or.reduce(self.flags.last(n, end)[0]))
        if off.any():
            v.leads = tuple(self.model.leads[i] for i in np.flatnonzero(off))
            v.reliable, v.reason = False, f"lead-off: {', '.join(v.leads)}"
        elif flags:
            what = [name for bit, name in ((CALIBRATION_FLAG, "calibration pulse"), (SATURATED_FLAG, "ADC saturated"))
                    if flags & bit]
            v.reliable, v.reason = False, f"device: {', '.join(what)}"
        elif problems := signal_problems(self.raw.last(n, end), self.fs_in, self.model.leads):
            v.reliable, v.reason = False, "; ".join(problems)
        else:
            w, _ = normalise_windows(self.out.last(self.window, end_out)[None], self.cfg)
            v.window = w[0]
        return v

    # ---- events -------------------------------------------------------------------------------

    def resolve(self, v: WindowVerdict) -> list[dict]:
        """Apply hysteresis to a finished verdict; return the rhythm-change / quality events it causes."""
        events = []
        quality = "ok" if v.reliable else "unreliable"
        if quality != self.quality:
            event = {"type": "quality", "stream": self.stream_id, "t": round(v.t_s, 3), "sample": v.end_sample,
                     "quality": quality}
            if not v.reliable:
                event["reason"] = v.reason
            events.append(event)
            self.quality = quality
        if not v.reliable:
            # One bad window does not end a rhythm (the unreliable line says why); it does reset the
            # count towards a new one, so an event always rests on consecutive good windows.
            self._candidate = (None, 0)
            return events
        label, count = self._candidate
        count = count + 1 if v.label == label else 1
        self._candidate = (v.label, count)
        if v.label != self.current and count >= self.settings.hysteresis:
            events.append({"type": "rhythm_change", "stream": self.stream_id, "t": round(v.t_s, 3), "sample": v.end_sample,
                           "from": self.current, "to": v.label, "held_windows": count,
                           "confidence": round(v.probs.get(v.label, 0.0), 4)})
            self.current = v.label
        return events


class StreamHub:
    """Many beds, one model: batches every ready window across beds into one ``runner.infer`` call.

    Records and verdicts are queued in arrival order (``push``, ``restart``, ``note``) and come out
    of :meth:`flush`, after one batched inference, in that order.

    Args:
        runner: an activated :class:`~ecgedge.runtime.Runner` for the model.
        model: the model's leads, labels, preprocessing and window.
        settings: hop and hysteresis for every bed.
        max_batch: most windows per inference call (a TensorRT engine's profile caps it).
    """

    def __init__(self, runner, model: ModelSpec, settings: StreamSettings = StreamSettings(), *, max_batch: int = 64):
        self.runner = runner
        self.model = model
        self.labels = tuple(model.labels)
        self.settings = settings
        self.max_batch = max_batch
        self.monitors: dict[Hashable, BedMonitor] = {}
        self._pending: list[tuple[BedMonitor | None, Item]] = []

    def open(self, stream_id: Hashable, *, fs_in: float, lead_names: Iterable[str], start_reason: str = "starting up") -> BedMonitor:
        """Start (or start over) the monitor of one bed; raises :class:`ShapeMismatch` for a lead set the model cannot use."""
        monitor = BedMonitor(stream_id, fs_in=fs_in, lead_names=lead_names, model=self.model, settings=self.settings,
                             start_reason=start_reason)
        self.monitors[stream_id] = monitor
        return monitor

    def push(self, stream_id: Hashable, samples_mv, first_sample: int, lead_off=(), **kwargs) -> None:
        """Feed one bed (see :meth:`BedMonitor.push`); what it yields waits for :meth:`flush`."""
        monitor = self.monitors[stream_id]
        self._pending += [(monitor, item) for item in monitor.push(samples_mv, first_sample, lead_off, **kwargs)]

    def restart(self, stream_id: Hashable, reason: str) -> None:
        monitor = self.monitors[stream_id]
        self._pending += [(monitor, item) for item in monitor.restart(reason)]

    @property
    def pending(self) -> int:
        """Records and verdicts waiting for :meth:`flush`."""
        return len(self._pending)

    def note(self, record: dict) -> None:
        """Queue a record so it comes out in order with the verdicts around it."""
        self._pending.append((None, record))

    def flush(self) -> list[dict]:
        """Classify every pending window in batches; return all pending records and the events they raise."""
        if not self._pending:
            return []
        batch, self._pending = self._pending, []
        todo = [v for _, v in batch if isinstance(v, WindowVerdict) and v.window is not None]
        for a in range(0, len(todo), self.max_batch):
            chunk = todo[a:a + self.max_batch]
            logits = self.runner.infer(np.stack([v.window for v in chunk]))
            for v, p in zip(chunk, softmax(logits.astype(np.float64))):
                v.label = self.labels[int(p.argmax())]
                v.probs = {c: float(x) for c, x in zip(self.labels, p)}
                v.window = None
        out: list[dict] = []
        for monitor, item in batch:
            if isinstance(item, WindowVerdict):
                out.append(item.to_json())
                out += monitor.resolve(item)
            else:
                out.append(item)
        return out
