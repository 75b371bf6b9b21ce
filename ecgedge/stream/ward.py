"""Many beds' windows in one pass: how :class:`~ecgedge.stream.hub.StreamHub` preprocesses a ward.

A hub's monitors defer (``BedMonitor(defer=True)``): where a window becomes due, ``push`` returns a
:class:`PendingWindows` in its place. :func:`cut_pending` then fills all of them at once: the
resampler and band-pass of every bed that shares a rate and chunk length run as the rows of one
array (:meth:`~ecgedge.data.preprocess.StreamingPreprocessor.push_many`), and so do the signal
checks' statistics (:meth:`~ecgedge.data.quality.RunningSignalChecks.add_many`) and the QRS detectors'
band-pass (:meth:`~ecgedge.beats.StreamingQrsDetector.push_many`). Each bed gets the
events, in the order, and the model inputs it would get cutting its own windows, bit for bit
(``tests/test_batched_preprocessing.py``). numpy + scipy; never torch.
"""

from __future__ import annotations

from typing import Iterable

from ecgedge.data.preprocess import StreamingPreprocessor
from ecgedge.data.quality import RunningSignalChecks
from ecgedge.stream.events import WindowVerdict
from ecgedge.stream.monitor import PendingWindows
from ecgedge.stream.rate import BedBeats


def cut_pending(pending: Iterable[PendingWindows]) -> list[WindowVerdict]:
    """Cut the windows of many deferring monitors at once: one vectorised preprocessing pass for
    every bed that shares a rate and a chunk length (:meth:`StreamingPreprocessor.push_many`), and
    the signal checks' statistics of all their new samples in one pass
    (:meth:`RunningSignalChecks.add_many`). Fills each :class:`PendingWindows` (already cut ones are
    skipped) with the events its monitor would have returned on its own; returns the verdicts. A
    verdict whose signal passed its checks carries its window in mV (float32, a view of the
    monitor's ring: read it, or copy it, before the monitor's next push): ``normalise_windows`` of
    it is, bit for bit, the model input the monitor alone would have given.
    """
    due = [p.monitor for p in pending if not p.cut and p.monitor.due is p]
    if len(due) == 1:  # one bed: its own filter, checks and detector calls, without the grouping
        due[0].filter_received()
        return due[0].cut_due(copy=False)
    with_samples = [m for m in due if m.unfiltered]
    outputs = StreamingPreprocessor.push_many([m.pre for m in with_samples], [m.take_unfiltered() for m in with_samples])
    for m, y in zip(with_samples, outputs):
        m.out.write(y)
    checks, blocks, starts = [], [], []
    for m in due:
        for block, start in m.due_blocks():
            checks.append(m.checks)
            blocks.append(block)
            starts.append(start)
    RunningSignalChecks.add_many(checks, blocks, starts)
    _feed_beats_many(due)
    return [v for m in due for v in m.cut_due(copy=False)]


def _feed_beats_many(due: list) -> None:
    """Feed every bed's QRS detector up to its first due window's end in one band-pass pass
    (:meth:`~ecgedge.stream.rate.BedBeats.feed_many`); each window's verdict then finds its beats
    decided (a second window due in the same flush feeds its own bed alone)."""
    beds, chunks, concealed = [], [], []
    for m in due:
        end = m.first_due_end()
        if m.rate is None or not m.rate.active or end is None or end <= m.rate.fed:
            continue
        x, c = m.qrs_samples(m.rate.fed, end)
        beds.append(m.rate)
        chunks.append(x)
        concealed.append(c)
    if beds:
        BedBeats.feed_many(beds, chunks, concealed)
