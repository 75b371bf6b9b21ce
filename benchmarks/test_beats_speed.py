"""The QRS detector (``ecgedge.beats``): a whole record offline (what ``evaluate beats`` and the
rhythm features of training do per record), one stream hop of 1 s (one lead and the 12-lead
multi-lead mode), and the rhythm features of a minute of beats.

Signals are ecgedge's synthetic ECG (sinus rhythm, 500 Hz), so the suite needs no data. Figures:
``ms_per_bed_second`` (CPU time per second of ECG) and ``rtf`` (seconds of ECG per second of CPU).
Run: ``python -m pytest benchmarks/test_beats_speed.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ecgedge.bench import machine_info
from ecgedge.beats import StreamingQrsDetector, detect_beats, rhythm_features
from ecgedge.data.synthetic import synthesize_ecg

FS_HZ = 500.0
RECORD_S = 300.0


@pytest.fixture(scope="module")
def record() -> np.ndarray:
    sig, _ = synthesize_ecg("SR", seed=0, duration_s=RECORD_S, fs=FS_HZ)
    return sig.astype(np.float64)  # (12, n) mV


@pytest.fixture(scope="module")
def cpu() -> dict:
    m = machine_info()
    return {"device": m["cpu"], "isa": " ".join(m["isa"])}


def _figures(benchmark, seconds_of_ecg: float) -> None:
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(ms_per_bed_second=1000 * median / seconds_of_ecg, rtf=seconds_of_ecg / median)


def test_offline_record_one_lead(benchmark, record, cpu):
    """5 minutes of lead II at 500 Hz, whole (``detect_beats``)."""
    benchmark.group = "beats"
    benchmark.extra_info.update(cpu, fs_hz=FS_HZ, record_s=RECORD_S, leads=1)
    beats = benchmark(detect_beats, record[1], FS_HZ)
    _figures(benchmark, RECORD_S)
    assert 250 < len(beats) < 600


@pytest.mark.parametrize("leads", [1, 12])
def test_stream_hop(benchmark, record, cpu, leads):
    """One 1-s hop (500 samples per lead) into a running detector, as a bedside monitor pushes."""
    x = record[1:2] if leads == 1 else record
    det = StreamingQrsDetector(FS_HZ, x.shape[0])
    hop = int(FS_HZ)
    sent = 0

    def push():
        nonlocal sent
        i = sent % (x.shape[1] - hop)
        sent += hop
        return det.push(x[:, i:i + hop])

    for _ in range(5):
        push()  # past the 2-s learning period
    benchmark.group = "beats"
    benchmark.extra_info.update(cpu, fs_hz=FS_HZ, hop_s=1.0, leads=leads)
    benchmark(push)
    _figures(benchmark, 1.0)
    assert det.n > 5 * hop


def test_rhythm_features_of_a_minute(benchmark, record, cpu):
    """The rhythm features of the beats of the last 60 s (what a stream asks for each hop)."""
    beats = detect_beats(record[1, : int(60 * FS_HZ)], FS_HZ)
    benchmark.group = "beats"
    benchmark.extra_info.update(cpu, beats=len(beats))
    feats = benchmark(rhythm_features, beats)
    assert 40 < feats.hr_bpm < 120
