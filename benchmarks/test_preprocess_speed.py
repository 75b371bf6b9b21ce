"""The preprocessing chain: one stream hop (what a bedside device does every second before
inference), a whole record offline (what window building does per record), and the per-batch
normalisation of training."""

from __future__ import annotations

import math

import numpy as np

from ecgedge.bench import synthetic_stream
from ecgedge.data.preprocess import normalise_windows, preprocess_signal
from ecgedge.stream.monitor import BedMonitor, ModelSpec

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
