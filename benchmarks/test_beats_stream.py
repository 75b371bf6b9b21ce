"""What the beats cost the stream (issue 23: at most 20 % of the monitor's CPU time per hop).

Each case runs the path users run with the QRS detector off (``StreamSettings(beats=False)``) and on
(the default: heart rate, beats, rate alarms; :mod:`ecgedge.stream.rate`), 12 leads at 500 Hz (a
Chapman record as ``ecgsim`` sends it), 1-s hop, past the 9.2-s start-up:

- ``monitor``: one bed, ``BedMonitor.push`` of one second (the monitor ``ecgedge stream`` runs for
  one bed: checks, rings, causal resample + band-pass, z-score; no inference);
- ``ward``: 64 beds' monitors deferring and one ``cut_pending`` (the hub's vectorised pass: the
  preprocessing, the checks' statistics and the detectors' band-pass as rows of one array,
  ``StreamingQrsDetector.push_many``; no inference);
- ``hub``: a 64-bed :class:`~ecgedge.stream.hub.StreamHub` hop: push every bed's second and flush
  (the ward's pass, INT8 inference in calls of 8 on one thread, hysteresis).

CPU time (``time.process_time``) per hop, median over the rounds; ``extra_info["beats"]`` says
which, and the module prints the ratio on / off per case at the end.

    pytest benchmarks/test_beats_stream.py --benchmark-only
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ecgedge.bench import synthetic_stream
from ecgedge.runtime import Backend, Precision, runner_from_export
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import BedMonitor, ModelSpec, PendingWindows, StreamSettings
from ecgedge.stream.ward import cut_pending

FS = 500.0
BEDS = 64
WARMUP_S = 12  # past the 9.2-s start-up: every timed hop classifies (or cuts) a settled window
ROUNDS = {"monitor": 200, "ward": 30, "hub": 20}


@pytest.fixture(scope="module")
def medians() -> dict:
    """CPU ms per hop by (case, beats), printed as ratios when the module ends."""
    out: dict = {}
    yield out
    for case in ROUNDS:
        off, on = out.get((case, False)), out.get((case, True))
        if off and on:
            print(f"\nbeats on the stream, {case}: {off:.3f} -> {on:.3f} ms CPU per 1-s hop "
                  f"(+{100 * (on / off - 1):.0f} %; {on - off:.3f} ms{' per 64 beds' if case != 'monitor' else ''})")


def _timed(benchmark, step, rounds: int) -> float:
    cpu: list[float] = []

    def one():
        t0 = time.process_time()
        out = step()
        cpu.append(time.process_time() - t0)
        return out

    for _ in range(WARMUP_S):
        step()
    benchmark.pedantic(one, rounds=rounds, iterations=1)
    return float(np.median(cpu)) * 1e3


@pytest.mark.parametrize("beats", [False, True], ids=["beats-off", "beats-on"])
def test_monitor_hop(benchmark, manifest, info, medians, beats):
    model = ModelSpec.from_manifest(manifest)
    monitor = BedMonitor("bench", fs_in=FS, lead_names=model.leads, model=model, settings=StreamSettings(beats=beats))
    signal = synthetic_stream(model.leads, FS, seed=0)
    sent = 0

    def step():
        nonlocal sent
        items = monitor.push(signal[:, (sent + np.arange(int(FS))) % signal.shape[1]], sent)
        sent += int(FS)
        return items

    benchmark.group = "beats on the stream: one bed"
    ms = medians[("monitor", beats)] = _timed(benchmark, step, ROUNDS["monitor"])
    benchmark.extra_info.update(info, beats=beats, cpu_ms_per_hop=ms, leads=len(model.leads), source_fs_hz=FS)


@pytest.mark.parametrize("beats", [False, True], ids=["beats-off", "beats-on"])
def test_ward_hop(benchmark, manifest, info, medians, beats):
    model = ModelSpec.from_manifest(manifest)
    monitors = [BedMonitor(b, fs_in=FS, lead_names=model.leads, model=model, settings=StreamSettings(beats=beats), defer=True)
                for b in range(BEDS)]
    signal = synthetic_stream(model.leads, FS, seed=0)
    sent = 0

    def step():
        nonlocal sent
        idx = sent + np.arange(int(FS))
        pending = [i for b, m in enumerate(monitors) for i in m.push(signal[:, (idx + 397 * b) % signal.shape[1]], sent)
                   if isinstance(i, PendingWindows)]
        sent += int(FS)
        return cut_pending(pending)

    benchmark.group = "beats on the stream: 64 beds, monitors only"
    ms = medians[("ward", beats)] = _timed(benchmark, step, ROUNDS["ward"])
    benchmark.extra_info.update(info, beats=beats, beds=BEDS, cpu_ms_per_hop=ms, ms_per_bed_second=ms / BEDS)


@pytest.mark.parametrize("beats", [False, True], ids=["beats-off", "beats-on"])
def test_hub_hop(benchmark, manifest, info, medians, beats):
    model = ModelSpec.from_manifest(manifest)
    precision = Precision.int8 if "int8" in manifest.artefacts else Precision.fp32
    signal = synthetic_stream(model.leads, FS, seed=0)
    sent = 0
    with runner_from_export(manifest.folder, precision, Backend.ort_cpu, threads=1, verify=False, allow_rejected=True,
                            manifest=manifest) as runner:
        hub = StreamHub(runner, model, StreamSettings(beats=beats))
        for b in range(BEDS):
            hub.open(b, fs_in=FS, lead_names=model.leads)

        def step():
            nonlocal sent
            idx = sent + np.arange(int(FS))
            for b in range(BEDS):
                hub.push(b, signal[:, (idx + 397 * b) % signal.shape[1]], sent)
            sent += int(FS)
            return hub.flush_items()

        benchmark.group = "beats on the stream: 64-bed StreamHub (with inference)"
        ms = medians[("hub", beats)] = _timed(benchmark, step, ROUNDS["hub"])
    benchmark.extra_info.update(info, beats=beats, beds=BEDS, precision=precision.value, cpu_ms_per_hop=ms,
                                ms_per_bed_second=ms / BEDS)
