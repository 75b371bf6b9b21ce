"""``ecgedge ward`` end to end: beds per core through real TCP sockets (decode -> events -> database -> push).

N devices (``benchmarks/ward_load.py``, a process of its own) connect to a gateway running in this
process and send 12-lead 500-Hz frames in real time for ``WARMUP_S + MEASURE_S`` seconds; one page
reads the push channel (server-sent events over HTTP). The gateway is the one ``ecgedge ward`` runs
(:class:`~ecgedge.ward.gateway.Gateway`: asyncio sockets, the engine thread with one ``StreamHub``
and the INT8 model on one inference thread, the SQLite writer thread in WAL, the page's push).

Measured over the last ``MEASURE_S`` seconds (every bed past its 9.2-s start-up, so every bed's
window is classified each second):

- ``cpu_core_share``: the gateway process's CPU seconds (all its threads: ``getrusage``) per wall
  second; ``realtime_beds_per_core`` = N / that share (a core keeps that many beds in real time);
- ``latency_p50_ms`` / ``latency_p99_ms``: from the arrival of the bytes that complete a record (a
  window's last frame) to its push to the page after the commit;
- ``cpu_share``: the CPU per stage (``decode``: socket bytes to frames and runs; ``classify``:
  preprocessing, inference, hysteresis, beats; ``write``: the database; ``push``: JSON to the page;
  ``other``: the event loop's socket reads and HTTP).

The gateway keeps up only while its engine thread (GIL-bound: one core at most) gets the CPU it
needs: ``keeps_up`` says whether every bed's window was classified each second (``windows_per_s`` at
least 95 % of N); where it is False the latency grows without bound and ``realtime_beds_per_core``
is not a capacity (the process did not get the CPU the load needed).

    pytest benchmarks/test_ward_speed.py --benchmark-only -s
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the ward needs the 'ward' extra")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ward_helpers import GatewayThread  # noqa: E402

WARMUP_S, MEASURE_S = 12.0, 12.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@pytest.mark.parametrize("beds", [64, 128, 512])
def test_ward_end_to_end(benchmark, beds, export_dir, info, tmp_path):
    result: dict = {}

    def run():
        with GatewayThread(Path(export_dir), tmp_path / f"ward-{beds}.sqlite", precision="int8") as gw:
            load = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "ward_load.py"), str(gw.port), str(beds),
                                     str(WARMUP_S + MEASURE_S), gw.base + "/api/stream?token=test-token-123"],
                                    stdout=subprocess.PIPE, text=True, cwd=REPO)
            deadline = time.monotonic() + 300
            while len(gw.gateway.devices) < beds:  # the load encodes its frames first
                assert load.poll() is None and time.monotonic() < deadline, "the load did not connect"
                time.sleep(0.05)
            time.sleep(WARMUP_S)
            g = gw.gateway
            cpu0, wall0, stages0 = _cpu(), time.monotonic(), {**g.engine.cpu_s, **g.cpu_s}
            g.latencies.clear()
            records0, windows0 = g.counts["records"], g.counts["windows"]
            time.sleep(MEASURE_S - 1.0)
            cpu1, wall1, stages1 = _cpu(), time.monotonic(), {**g.engine.cpu_s, **g.cpu_s}
            lat = sorted(g.latencies)
            records, windows = g.counts["records"] - records0, g.counts["windows"] - windows0
            out, _ = load.communicate(timeout=120)
        share = (cpu1 - cpu0) / (wall1 - wall0)
        stages = {k: (stages1[k] - stages0[k]) / (cpu1 - cpu0) for k in stages1}
        stages["other"] = 1.0 - sum(stages.values())
        sent = out.split()
        result.update(beds=beds, cpu_core_share=round(share, 3), realtime_beds_per_core=round(beds / share, 1),
                      latency_p50_ms=round(1e3 * lat[len(lat) // 2], 1) if lat else None,
                      latency_p99_ms=round(1e3 * lat[int(0.99 * len(lat))], 1) if lat else None,
                      records_per_s=round(records / (wall1 - wall0), 1), windows_per_s=round(windows / (wall1 - wall0), 1),
                      keeps_up=windows / (wall1 - wall0) >= 0.95 * beds, cpu_share={k: round(v, 3) for k, v in stages.items()},
                      load_frames=int(sent[1]), load_worst_late_s=float(sent[3]))

    benchmark.group = "ward: N real-time beds through TCP, one gateway"
    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(info, **result)
    print(f"\nward, {beds} beds: {result}")
