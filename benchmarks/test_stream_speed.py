"""Streaming: one session step for N beds at a 1-s hop, and how many real-time beds one core sustains.

A step is one second of N beds on the host: each bed's 25 frames (12 leads at 500 Hz, 20 samples
per frame, as ``ecgsim`` sends a Chapman record) fed one frame per read, as a real-time reader
receives them -> decode + CRC -> sequence tracking (each bed's frames wait in one run); then one
flush pushes every bed's second to its monitor, preprocesses all beds in one vectorised pass, runs
the signal-quality checks, classifies the N windows in INT8 calls of at most 8 windows on one
thread (INT8 when the export has it) and applies hysteresis. The beds are past their start-up, so
every step classifies N windows. Frames are encoded in the untimed set-up of each round. A link
carries at most 256 beds (stream ids are one byte), so 512 beds come on two links, two sessions
flushed in turn by the same core.

One core keeps N beds in real time while a step costs at most 1 s of CPU, so it sustains
``N / (CPU seconds per step)`` beds: ``extra_info["realtime_beds_per_core"]``, printed at the end.
An event of a hop comes out when its step's flush returns, at most one step after the hop's last
frame arrived: the p99 of the step (CPU and wall) is that hop's p99 event latency on a core serving
N beds (``p99_step_cpu_ms``, ``p99_step_wall_ms``).
CPU time (``time.process_time``) rather than wall time, so other work on the machine does not
count; with one inference thread and single-threaded numpy/scipy the two agree on an idle machine.

    pytest benchmarks/test_stream_speed.py --benchmark-only

Uses the export of ``benchmarks/conftest.py`` (``--export-dir`` or an untrained export of the real
architecture: speed does not depend on the weights).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ecgedge.bridge.cobs import encode_frame
from ecgedge.bridge.frame import Frame
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.runtime import Backend, Precision, runner_from_export
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.session import StreamSession

FS, SPF = 500.0, 20  # a Chapman record as ecgsim streams it: 40-ms frames
HOP_S = 1.0
WARMUP_S = 10  # past the 9.2-s start-up (8.192-s window + 1-s settling), so every step classifies
# 512 beds: the "500 beds per core" load itself, so its p99 step is that load's event latency.
ROUNDS = {1: 100, 16: 40, 64: 20, 512: 6}
# Stream ids are one byte on the wire (PROTOCOL.md): a link carries at most 256 beds, so 512 beds
# arrive on two links (two sessions, each with its hub) served by one core.
BEDS_PER_LINK = 256


class Beds:
    """The frames of N beds, one second at a time: each bed its own stream id and phase of the record."""

    def __init__(self, n: int, leads: tuple[str, ...], seconds: float = 10.0):
        x = synthesize_ecg("SR", seed=0, duration_s=seconds, fs=FS, leads=leads)[0]
        self.adu = np.round(x * 1000).astype(np.int64)  # 1 µV per unit, as Chapman's ADC
        self.n, self.leads, self.second = n, leads, 0

    def next_second(self) -> list[tuple[int, bytes]]:
        """(link, frame bytes) of the next second of every bed, interleaved across beds as they arrive."""
        per_second = int(FS) // SPF
        frames = []
        for k in range(per_second):
            for bed in range(self.n):
                first = self.second * int(FS) + k * SPF
                idx = (first + 397 * bed + np.arange(SPF)) % self.adu.shape[1]
                link, stream_id = divmod(bed, BEDS_PER_LINK)
                frames.append((link, encode_frame(Frame(stream_id=stream_id, seq=(self.second * per_second + k) % 65536,
                                                        first_sample=first, fs_hz=FS, lead_ids=self.leads,
                                                        samples=self.adu[:, idx], gain_uv=1.0))))
        self.second += 1
        return frames


@pytest.fixture(scope="module")
def realtime_beds() -> dict[int, dict]:
    """Beds-per-core results of this module, by N."""
    return {}


def _report(results: dict[int, dict], beds: int) -> list[str]:
    r = results[beds]
    lines = [f"stream step, {beds:3d} beds: {r['cpu_step_ms']:7.1f} ms CPU, {r['ms_per_bed_second']:.2f} ms per bed-second "
             f"-> one core sustains {r['realtime_beds_per_core']:.0f} real-time beds ({r['precision']}, hop 1 s); "
             f"p99 step (event latency per hop) {r['p99_step_cpu_ms']:.1f} ms CPU, {r['p99_step_wall_ms']:.1f} ms wall"]
    if beds == max(ROUNDS):
        best = max(results.values(), key=lambda x: x["realtime_beds_per_core"])
        lines.append(f"=> one core sustains about {best['realtime_beds_per_core']:.0f} concurrent real-time "
                     f"12-lead 500-Hz streams")
    return lines


@pytest.mark.parametrize("beds", sorted(ROUNDS))
def test_stream_step(benchmark, beds, manifest, info, realtime_beds, capsys):
    precision = Precision.int8 if "int8" in manifest.artefacts else Precision.fp32
    source = Beds(beds, manifest.leads)
    cpu: list[float] = []
    wall: list[float] = []
    with runner_from_export(manifest.folder, precision, Backend.ort_cpu, threads=1, verify=False, allow_rejected=True,
                            manifest=manifest) as runner:
        sessions = [StreamSession(StreamHub(runner, ModelSpec.from_manifest(manifest), StreamSettings(hop_s=HOP_S)))
                    for _ in range(-(-beds // BEDS_PER_LINK))]

        def step(frames: list[tuple[int, bytes]]) -> list[dict]:
            t0, w0 = time.process_time(), time.perf_counter()
            for link, frame in frames:
                sessions[link].feed(frame, flush=False)
            records = [r for session in sessions for r in session.flush()]
            cpu.append(time.process_time() - t0)
            wall.append(time.perf_counter() - w0)
            return records

        for _ in range(WARMUP_S):
            step(source.next_second())
        cpu.clear()
        wall.clear()
        benchmark.group = "stream: one 1-s step of N beds"
        records = benchmark.pedantic(step, setup=lambda: ((source.next_second(),), {}), rounds=ROUNDS[beds], iterations=1)
    classified = [r for r in records if r["type"] == "window" and r["quality"] == "ok"]
    assert len(classified) == beds and not [r for r in records if r["type"] == "gap"]
    cpu_step = float(np.median(cpu))
    result = {"beds": beds, "hop_s": HOP_S, "precision": precision.value, "inference_threads": 1,
              "cpu_step_ms": cpu_step * 1e3, "wall_step_ms": benchmark.stats.stats.median * 1e3,
              "ms_per_bed_second": cpu_step / beds * 1e3, "realtime_beds_per_core": beds / cpu_step,
              "p99_step_cpu_ms": float(np.percentile(cpu, 99)) * 1e3, "p99_step_wall_ms": float(np.percentile(wall, 99)) * 1e3}
    realtime_beds[beds] = result
    benchmark.extra_info.update(info, **result)
    with capsys.disabled():
        print("", *_report(realtime_beds, beds), sep="\n")
