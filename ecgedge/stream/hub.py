"""Many beds, one model: :class:`StreamHub` keeps a :class:`~ecgedge.stream.monitor.BedMonitor` per
stream id, queues what they yield in arrival order, and at each :meth:`~StreamHub.flush` preprocesses
every bed whose window is due in one vectorised pass (resampling and band-pass as the rows of one
array for the beds that share a rate, the signal checks' statistics likewise:
:func:`~ecgedge.stream.ward.cut_pending`), z-scores and classifies the windows in batched calls
(at most :func:`default_max_batch` windows a call), then lets each monitor apply its hysteresis. The
records are those, in the order, that each monitor cutting its own windows would give, bit for bit.
numpy + ``ecgedge.runtime`` runners; never torch.
"""

from __future__ import annotations

from typing import Hashable, Iterable

import numpy as np

from ecgedge.config import Backend
from ecgedge.data.preprocess import normalise_windows
from ecgedge.runtime.softmax import softmax
from ecgedge.stream.events import Event, WindowVerdict
from ecgedge.stream.monitor import BedMonitor, ModelSpec, PendingWindows, StreamSettings
from ecgedge.stream.ward import cut_pending

#: Windows per inference call on a CPU backend. Measured (issue 15, 12-lead INT8 on ONNX Runtime, one
#: thread): 0.361 / 0.347 / 0.432 ms per window at batch 1 / 8 / 64, and 64 windows as 8 calls of 8
#: 0.363 ms: the leads are already the batch inside the graph, so a bigger call only adds images, and at
#: 64 windows the early activations (25 MiB) leave the L2 cache. A GPU, or a Triton server that batches
#: requests itself, gains from big calls: 64.
CPU_MAX_BATCH = 8
GPU_MAX_BATCH = 64


def default_max_batch(runner) -> int:
    """Most windows per inference call for a runner: 8 on the CPU (ONNX Runtime CPU, the C library, the
    PyTorch reference), 64 on a GPU (ONNX Runtime CUDA/TensorRT, TensorRT; an engine's profile may cap
    it lower: pass ``max_batch``) and for a Triton server."""
    backend = getattr(runner, "backend", None)
    if (isinstance(backend, Backend) and backend.on_gpu) or str(getattr(runner, "name", "")).startswith("triton"):
        return GPU_MAX_BATCH
    return CPU_MAX_BATCH


class StreamHub:
    """Many beds, one model: batches every ready window across beds into one ``runner.infer`` call.

    Records and verdicts are queued in arrival order (``push``, ``restart``, ``note``) and come out
    of :meth:`flush`, after one batched inference, in that order.

    Args:
        runner: an activated :class:`~ecgedge.runtime.Runner` for the model.
        model: the model's leads, labels, preprocessing and window.
        settings: hop, hysteresis, concealment and the inoperable alert for every bed.
        max_batch: most windows per inference call (a TensorRT engine's profile caps it); default
            :func:`default_max_batch` of the runner's backend.
    """

    def __init__(self, runner, model: ModelSpec, settings: StreamSettings = StreamSettings(), *,
                 max_batch: int | None = None):
        self.runner = runner
        self.model = model
        self.labels = tuple(model.labels)
        self.settings = settings
        self.max_batch = max_batch if max_batch is not None else default_max_batch(runner)
        self.monitors: dict[Hashable, BedMonitor] = {}
        self._pending: list[tuple[BedMonitor | None, Event | PendingWindows]] = []

    def open(self, stream_id: Hashable, *, fs_in: float, lead_names: Iterable[str], start_reason: str = "starting up") -> BedMonitor:
        """Start (or start over) the monitor of one bed; raises :class:`ShapeMismatch` for a lead set the model cannot use."""
        monitor = BedMonitor(stream_id, fs_in=fs_in, lead_names=lead_names, model=self.model, settings=self.settings,
                             start_reason=start_reason, defer=True)
        old = self.monitors.get(stream_id)
        if old is not None:  # a format change: the bed's time without a classified window (and its alert) go on
            old.settle()  # its due windows are cut before it goes
            monitor.dark_s, monitor.inoperable = old.dark_s, old.inoperable
            if monitor.rate is not None and old.rate is not None:  # and its raised rate alarms
                monitor.rate.carry_alarms(old.rate)
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

    def note(self, event: Event) -> None:
        """Queue an event so it comes out in order with the verdicts around it."""
        self._pending.append((None, event))

    def flush(self) -> list[dict]:
        """Classify every pending window in batches; return all pending events and those they raise, as JSON records."""
        return [event.to_json() for event in self.flush_items()]

    def flush_items(self) -> list[Event]:
        """:meth:`flush`, but typed: the events themselves (:mod:`ecgedge.stream.events`), for callers that count them."""
        if not self._pending:
            return []
        queued, self._pending = self._pending, []
        cut_pending(item for _, item in queued if isinstance(item, PendingWindows))
        batch: list[tuple[BedMonitor | None, Event]] = []
        for monitor, item in queued:
            if isinstance(item, PendingWindows):
                assert item.items is not None  # cut above, or by the monitor itself since
                batch += [(monitor, e) for e in item.items]
            else:
                batch.append((monitor, item))
        todo = [(v, v.window) for _, v in batch if isinstance(v, WindowVerdict) and v.window is not None]
        for a in range(0, len(todo), self.max_batch):
            chunk = todo[a:a + self.max_batch]
            # The monitors' windows are in mV (views of their rings or copies): z-scored in place in
            # the batch, the same bits as each monitor z-scoring its own.
            inputs = np.stack([w for _, w in chunk])
            logits = self.runner.infer(normalise_windows(inputs, self.model.preprocess, out=inputs)[0])
            for (v, _), p in zip(chunk, softmax(logits.astype(np.float64))):
                v.label = self.labels[int(p.argmax())]
                v.probs = {c: float(x) for c, x in zip(self.labels, p)}
                v.window = None
                if v.label in self.settings.noise_labels:
                    v.reliable, v.reason = False, f"model: noisy signal ({v.label} {v.probs[v.label]:.2f})"
        out: list[Event] = []
        for monitor, item in batch:
            out.append(item)
            if isinstance(item, WindowVerdict):
                assert monitor is not None  # note() queues events, never verdicts
                out += monitor.resolve(item)
        return out
