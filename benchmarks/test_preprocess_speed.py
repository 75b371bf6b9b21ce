"""The preprocessing chain: one stream hop (what a bedside device does every second before
inference), one hop of a 64-bed ward (vectorised, as the hub runs it, and bed by bed), a whole
record offline (what window building does per record), and the per-batch normalisation of training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ecgedge.bench import synthetic_stream
from ecgedge.data.preprocess import StreamingPreprocessor, normalise_windows, preprocess_signal
from ecgedge.stream.monitor import BedMonitor, ModelSpec
from ecgedge.stream.ring import Ring

SOURCE_FS_HZ = 500.0  # the Chapman/ecg-arrhythmia recording rate
RECORD_S = 10.0


def test_stream_hop(benchmark, manifest, info):
    """1 s of new samples at 500 Hz into the monitor ``ecgedge stream`` runs (``BedMonitor.push``):
    signal-quality checks, ring buffers, causal resample + band-pass, z-score of the newest window.
    Inference is not part of it (``ecgedge bench`` reports the whole hop as its RTF)."""
    model = ModelSpec.from_manifest(manifest)
    monitor = BedMonitor("bench", fs_in=SOURCE_FS_HZ, lead_names=model.leads, model=model)
    signal, hop = synthetic_stream(model.leads, SOURCE_FS_HZ, seed=0), int(SOURCE_FS_HZ)
    sent = 0

    def push():
        nonlocal sent
        items = monitor.push(signal[:, (sent + np.arange(hop)) % signal.shape[1]], sent)
        sent += hop
        return items

    for _ in range(math.ceil(model.window_samples / model.preprocess.fs_hz + model.preprocess.settle_s) + 1):
        push()  # past the start-up: every timed hop cuts a settled window
    benchmark.group = "preprocessing"
    benchmark.extra_info.update(info, source_fs_hz=SOURCE_FS_HZ, hop_s=1.0, leads=len(manifest.leads))
    items = benchmark(push)
    records = [item.to_json() if hasattr(item, "to_json") else item for item in items]
    assert [r["quality"] for r in records if r["type"] == "window"] == ["ok"]


def test_offline_record(benchmark, manifest, info):
    """A 10-s record at 500 Hz through the same chain in one chunk (the window cache's per-record work)."""
    cfg = manifest.preprocess_config()
    sig = 0.2 * np.random.default_rng(0).standard_normal((len(manifest.leads), int(RECORD_S * SOURCE_FS_HZ)))
    benchmark.group = "preprocessing"
    benchmark.extra_info.update(info, source_fs_hz=SOURCE_FS_HZ, record_s=RECORD_S, leads=len(manifest.leads))
    out = benchmark(preprocess_signal, sig, SOURCE_FS_HZ, cfg)
    assert out.shape[-1] == int(RECORD_S * cfg.fs_hz)


def test_normalise_training_batch(benchmark, manifest, info, windows):
    """Z-scoring a batch of 32 windows, as the trainer does for every batch it reads."""
    cfg = manifest.preprocess_config()
    x = windows(32)
    benchmark.group = "preprocessing"
    benchmark.extra_info.update(info, batch=32)
    out, _ = benchmark(normalise_windows, x, cfg)
    assert out.shape == x.shape


WARD_BEDS = 64


@pytest.mark.parametrize("mode", ["vectorised", "bed-by-bed"])
def test_ward_preprocessing(benchmark, manifest, info, mode, capsys):
    """One 1-s hop of preprocessing for 64 beds (12 leads at 500 Hz): causal resample + band-pass of
    every bed's new second, then the z-score of every bed's newest window in calls of 8 (the hub's
    inference batch). ``vectorised`` is what :class:`~ecgedge.stream.hub.StreamHub` runs
    (:meth:`StreamingPreprocessor.push_many`: the beds as rows of one array); ``bed-by-bed`` the same
    work one bed at a time, the way a monitor alone does it: the ratio of the two is the gain.
    ``extra_info["ms_per_bed_second"]`` is the figure issue 15 sets at <= 0.1 ms."""
    cfg, leads = manifest.preprocess_config(), len(manifest.leads)
    signal = synthetic_stream(manifest.leads, SOURCE_FS_HZ, seed=0)
    hop, n = int(SOURCE_FS_HZ), signal.shape[1]
    pres = [StreamingPreprocessor(cfg, SOURCE_FS_HZ, leads) for _ in range(WARD_BEDS)]
    # Each bed's model-rate ring, as in its BedMonitor: the newest window is z-scored every hop.
    rings = [Ring(leads, manifest.window_samples + 2 * int(cfg.fs_hz) + 4, dtype=np.float32) for _ in range(WARD_BEDS)]
    sent = 0

    def hop_of_ward() -> np.ndarray:
        nonlocal sent
        chunks = [signal[:, (sent + 397 * b + np.arange(hop)) % n] for b in range(WARD_BEDS)]
        sent += hop
        ys = (StreamingPreprocessor.push_many(pres, chunks) if mode == "vectorised"
              else [p.push(x) for p, x in zip(pres, chunks)])
        for ring, y in zip(rings, ys):
            ring.write(y)
        windows = [ring.last(manifest.window_samples) for ring in rings]
        if mode == "vectorised":
            z = []
            for a in range(0, WARD_BEDS, 8):
                x = np.stack(windows[a:a + 8])
                z.append(normalise_windows(x, cfg, out=x)[0])
        else:
            z = [normalise_windows(w[None], cfg)[0] for w in windows]
        return np.concatenate(z)

    for _ in range(3):
        hop_of_ward()
    benchmark.group = "preprocessing: 64 beds, one 1-s hop"
    z = benchmark(hop_of_ward)
    per_bed_ms = benchmark.stats.stats.median / WARD_BEDS * 1e3
    benchmark.extra_info.update(info, beds=WARD_BEDS, mode=mode, ms_per_bed_second=per_bed_ms)
    assert z.shape == (WARD_BEDS, leads, manifest.window_samples) and np.isfinite(z).all()
    with capsys.disabled():
        print(f"\npreprocessing, {WARD_BEDS} beds, {mode}: {per_bed_ms:.3f} ms per bed-second (resample + band-pass + z-score)")
