"""Scoring a day of bedside stream, and a day's soak through the simulated device.

Cases (``benchmarks/README.md``, *Stream scoring*):

- ``score 24 h``: :func:`~ecgedge.evaluate.stream.evaluate_stream` on one generated 24-hour
  single-lead (lead I, 250 Hz) paroxysmal-AF recording with the shipped ``cinc2017-rhythm`` INT8 export,
  the direct path (``StreamHub``/``BedMonitor``), one thread, one round. ``extra_info``: CPU seconds,
  times real time, and the AF statistics.
- ``soak 24 h via device``: the same recording through ``ecgsim`` (C, as fast as it can, 0.1 % of
  frames dropped at random, the link dropped for 2 s of signal every hour) and the wire decoder into
  the stream session (:func:`~ecgedge.stream.run.stream_from_export`). The emit callback keeps no
  records: it counts the samples the windows and gaps account for and samples the resident memory
  at every hour of signal. ``extra_info``: samples accounted vs. the record's length (the summary's
  own accounting too) and the memory slope in MB per hour of signal (least squares over hours 2-24).

The recording is generated once per session (about 30 s). ``ECGEDGE_BENCH_SCORE_HOURS`` shortens it
for a quick run (default 24). Nothing here asserts a time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from ecgedge.data.paroxysmal import ParoxysmalConfig, synthesize_paroxysmal, write_paroxysmal_record
from ecgedge.evaluate.stream import StreamEvalConfig, evaluate_stream
from ecgedge.shipped import resolve_source

HOURS = float(os.environ.get("ECGEDGE_BENCH_SCORE_HOURS", "24"))
FS = 250.0


@pytest.fixture(scope="module")
def day_record(tmp_path_factory) -> Path:
    cfg = ParoxysmalConfig(duration_s=HOURS * 3600.0, fs_hz=FS, leads=("I",), seed=2024)
    return write_paroxysmal_record(synthesize_paroxysmal(cfg), "DAY", tmp_path_factory.mktemp("day"))


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_score_24h(benchmark, day_record, tmp_path):
    cfg = StreamEvalConfig(export=str(resolve_source("cinc2017-rhythm")), records=(str(day_record),), out=str(tmp_path / "r"),
                           threads=1, plots=False)
    res = benchmark.pedantic(lambda: evaluate_stream(cfg, progress=False), rounds=1, iterations=1)
    benchmark.extra_info.update(hours=HOURS, **res.report["speed"], gross=res.report["summary"]["gross"],
                                alarm_delay=res.report["summary"]["alarm_delay"])


def test_soak_24h_via_device(benchmark, day_record):
    from ecgedge.stream.monitor import CONCEAL_MAX_S, StreamSettings
    from ecgedge.stream.run import StreamConfig, stream_from_export

    n = int(round(HOURS * 3600 * FS))
    hour = int(3600 * FS)
    state = {"accounted": 0, "next_hour": hour, "rss": [], "summary": None}

    def emit(r: dict) -> None:
        kind = r.get("type")
        if kind == "window":
            a, b = r["new"]
            state["accounted"] += b - a
            if b >= state["next_hour"]:
                state["rss"].append((b / hour, _rss_mb()))
                state["next_hour"] += hour
        elif kind == "gap" and not r.get("concealed"):
            a, b = r["samples"]
            state["accounted"] += b - a
        elif kind == "summary":
            state["summary"] = r

    cfg = StreamConfig(export=str(resolve_source("cinc2017-rhythm")), source=f"wfdb:{day_record.with_suffix('')}@0",
                       settings=StreamSettings(conceal_max_s=CONCEAL_MAX_S), threads=1,
                       sim_args=("--drop-frames", "0.001", "--disconnect-after", "3600:2", "--seed", "7"))
    t0 = time.process_time()
    benchmark.pedantic(lambda: stream_from_export(cfg, emit), rounds=1, iterations=1)
    cpu = time.process_time() - t0
    hours_rss = np.array([(h, m) for h, m in state["rss"] if h >= 2.0])
    slope = float(np.polyfit(hours_rss[:, 0], hours_rss[:, 1], 1)[0]) if len(hours_rss) >= 3 else None
    streams = (state["summary"] or {}).get("streams", {})
    benchmark.extra_info.update(hours=HOURS, samples=n, accounted=state["accounted"], cpu_s=round(cpu, 1),
                                rss_mb_by_hour=[(round(h, 2), round(m, 1)) for h, m in state["rss"]],
                                rss_slope_mb_per_hour=None if slope is None else round(slope, 3), summary_streams=streams)
    # The soak's point: every sample of the day is accounted for: windows' new spans and lost gaps,
    # plus the last part of a hop no window reached (the summary's pending).
    pending = sum(s.get("pending", 0) for s in streams)
    assert state["accounted"] + pending == n
