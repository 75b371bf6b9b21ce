"""ecgedge.stream.monitor on a tiny linear model built in code: windows equal the offline windows,
gaps and bad signal are reported (never classified), hysteresis, batching across beds, bounded memory.

The model is ``logits = flatten(window) @ W`` with seeded random ``W`` (12 leads x 2048 samples at
250 Hz, 4 labels): it is cheap, and every sample of the window moves its output, so equal
probabilities mean equal windows.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgedge.config import STANDARD_12_LEADS, Backend, PreprocessConfig
from ecgedge.data.preprocess import normalise_windows, preprocess_signal
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.errors import ConfigError, ShapeMismatch
from ecgedge.manifest import load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.stream.events import QualityChange, RhythmChange, WindowVerdict
from ecgedge.stream.monitor import BedMonitor, ModelSpec, StreamSettings
from ecgedge.stream.hub import CPU_MAX_BATCH, GPU_MAX_BATCH, StreamHub, default_max_batch
from helpers import LABELS, WINDOW, CountingRunner, linear_export, offline_probs, windows

FS = 500.0


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """(runner, ModelSpec) of the 12-lead linear model, activated."""
    folder = linear_export(tmp_path_factory.mktemp("linear") / "export")
    with runner_from_export(folder, "fp32", threads=1) as runner:
        yield runner, ModelSpec.from_manifest(load_manifest(folder))


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    """40 s of synthetic 12-lead sinus rhythm at 500 Hz, mV (float64)."""
    return synthesize_ecg("SR", seed=3, duration_s=40.0, fs=FS)[0].astype(np.float64)


def stream(hub: StreamHub, sid, x: np.ndarray, chunks, first_sample: int = 0, **kwargs) -> list[dict]:
    """Push ``x`` in pieces of the given sizes (cycled) and flush after each; all records."""
    out, a, i = [], 0, 0
    while a < x.shape[1]:
        n = chunks[i % len(chunks)]
        hub.push(sid, x[:, a:a + n], first_sample + a, **kwargs)
        out += hub.flush()
        a, i = a + n, i + 1
    return out


def assert_tiled(records, first: int, received_end: int) -> None:
    """Window ``new`` spans and gaps cover [first, end) exactly once, end within one hop of what was received."""
    spans = sorted([tuple(r["new"]) for r in windows(records)] + [tuple(r["samples"]) for r in records if r["type"] == "gap"])
    assert spans[0][0] == first
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "a sample is in two spans or in none"
    assert 0 <= received_end - spans[-1][1] < FS


def test_windows_equal_offline_windows(linear, ecg):
    runner, spec = linear
    hub = StreamHub(runner, spec)
    hub.open("bed", fs_in=FS, lead_names=STANDARD_12_LEADS)
    records = stream(hub, "bed", ecg, [7, 333, 20, 1500])
    ok = windows(records, "ok")
    # Windows end every 250 model samples; the first full, settled one needs 2048 + 250 of them.
    assert [r["samples"][1] for r in ok] == list(range(2 * 2500, ecg.shape[1] + 1, 500))
    assert all(r["reason"] == "starting up" for r in windows(records, "unreliable"))
    expected = offline_probs(runner, ecg, FS, [r["samples"][1] for r in ok])
    got = np.array([[r["probs"][k] for k in LABELS] for r in ok])
    np.testing.assert_allclose(got, expected, atol=1e-5)  # 1e-6 rounding in the records, float32 model
    assert [r["label"] for r in ok] == [LABELS[i] for i in expected.argmax(1)]
    assert_tiled(records, 0, ecg.shape[1])


@pytest.mark.parametrize("fs, chunk", [(500.0, 20), (500.0, 1_333), (360.0, 14)])
def test_stream_windows_are_the_offline_windows_bit_for_bit(fs, chunk):
    """The model input of every classified window equals the offline (training) window exactly: the
    resampler, the band-pass and the z-score do the same float operations in the same order."""
    spec = ModelSpec(STANDARD_12_LEADS, LABELS, PreprocessConfig(), WINDOW)
    x = synthesize_ecg("AFIB", seed=4, duration_s=20.0, fs=fs)[0].astype(np.float64)
    mon = BedMonitor(0, fs_in=fs, lead_names=STANDARD_12_LEADS, model=spec)
    got = [v for a in range(0, x.shape[1], chunk) for v in mon.push(x[:, a:a + chunk], a)
           if isinstance(v, WindowVerdict) and v.window is not None]
    pre = preprocess_signal(x, fs, spec.preprocess)
    assert len(got) >= 9
    for v in got:
        end = round(v.end_sample * spec.preprocess.fs_hz / fs)
        offline, _ = normalise_windows(pre[None, :, end - WINDOW:end], spec.preprocess)
        assert np.array_equal(v.window, offline[0])


def test_fractional_rate_and_lead_aliases(tmp_path):
    """360 Hz MIT-BIH-style leads (MLII, V5) into a lead-II model: index mapping round(n * 360 / 250)."""
    folder = linear_export(tmp_path / "ii", leads=("II",))
    x = synthesize_ecg("SR", seed=1, duration_s=15.0, fs=360.0, leads=("II", "V5"))[0].astype(np.float64)
    with runner_from_export(folder, "fp32") as runner:
        # A hop of 62 model samples is 89.28 source samples: window ends fall between source samples.
        hub = StreamHub(runner, ModelSpec.from_manifest(load_manifest(folder)), StreamSettings(hop_s=0.25))
        hub.open(0, fs_in=360.0, lead_names=("MLII", "V5"))
        records = stream(hub, 0, x, [14])
        ok = windows(records, "ok")
        ends_out = [k * 62 for k in range(38, 100) if round(k * 62 * 360 / 250) <= x.shape[1]]
        assert [r["samples"][1] for r in ok] == [round(e * 360 / 250) for e in ends_out]
        got = np.array([[r["probs"][k] for k in LABELS] for r in ok])
        np.testing.assert_allclose(got, offline_probs(runner, x[:1], 360.0, [r["samples"][1] for r in ok]), atol=1e-5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.integers(1, 3000), min_size=1, max_size=6))
def test_verdicts_do_not_depend_on_chunking(linear, ecg, chunks):
    runner, spec = linear
    x = ecg[:, :12_000]
    results = []
    for sizes in ([x.shape[1]], chunks):
        hub = StreamHub(runner, spec)
        hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
        results.append([{k: v for k, v in r.items() if k != "probs"} for r in stream(hub, 0, x, sizes)])
    assert results[0] == results[1]


def test_gap_is_reported_overlapping_windows_unreliable_and_stream_recovers(linear, ecg):
    runner, spec = linear
    hub = StreamHub(runner, spec)
    hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
    a, b = 6_250, 6_600  # samples [6250, 6600) never arrive
    records = stream(hub, 0, ecg[:, :a], [20]) + stream(hub, 0, ecg[:, b:], [20], first_sample=b, frames_lost=17)
    gap = [r for r in records if r["type"] == "gap"]
    assert gap == [{"type": "gap", "stream": 0, "t": 12.5, "samples": [a, b], "seconds": 0.7, "frames_lost": 17}]
    # The window that would have ended across the gap accounts for [6000, 6250) as unreliable.
    tail = next(r for r in windows(records) if r["samples"][1] == a)
    assert tail["new"] == [6000, a] and tail["reason"] == "gap"
    after = [r for r in windows(records) if r["samples"][1] > b]
    # Windows reaching back over the gap, then those in the filters' settling time, are unreliable.
    assert {r["reason"] for r in after[:8]} == {"gap"} and after[8]["reason"] == "settling after gap"
    assert after[9]["quality"] == "ok" and after[9]["samples"][1] == b + 5000
    # Recovered windows equal the offline windows of the signal since the gap.
    ok = [r for r in after if r["quality"] == "ok"]
    expected = offline_probs(runner, ecg[:, b:], FS, [r["samples"][1] - b for r in ok])
    np.testing.assert_allclose([[r["probs"][k] for k in LABELS] for r in ok], expected, atol=1e-5)
    assert_tiled(records, 0, ecg.shape[1])


def test_lead_off_device_flags_and_bad_signal_are_unreliable(linear, ecg):
    runner, spec = linear
    x = ecg[:, :15_000].copy()
    cases = {}
    for name, kwargs, change in (
        ("lead-off", {"lead_off": [6]}, None),
        ("calibration", {"device_flags": 0x0002}, None),
        ("flat", {}, lambda y: y.__setitem__((8, slice(None)), 0.0)),
        ("saturated", {}, lambda y: np.clip(y[10], None, np.percentile(y[10], 80), out=y[10])),
        ("nan", {}, lambda y: y.__setitem__((2, slice(7000, 7010)), np.nan)),
    ):
        y = x.copy()
        if change:
            change(y)
        hub = StreamHub(runner, spec)
        hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
        records = stream(hub, 0, y[:, :5000], [500]) + stream(hub, 0, y[:, 5000:], [500], first_sample=5000, **kwargs)
        cases[name] = windows(records)[10:]  # windows ending after 5000, where the change starts
    assert all(r["reason"] == "lead-off: V1" and r["leads"] == ["V1"] for r in cases["lead-off"])
    assert all(r["reason"] == "device: calibration pulse" for r in cases["calibration"])
    assert all("lead V3 flat" in r["reason"] for r in cases["flat"])
    assert all("lead V5 saturated" in r["reason"] for r in cases["saturated"])
    assert all(("NaN in lead III" in r.get("reason", "")) == (r["samples"][0] < 7010 < r["samples"][1] + 10)
               for r in cases["nan"])
    assert [r["quality"] for r in cases["nan"]][-2:] == ["ok", "ok"]  # NaNs out of the window: classified again
    assert all(r["quality"] == "unreliable" and "label" not in r for c in ("lead-off", "flat") for r in cases[c])


def test_fast_signal_checks_give_the_verdicts_of_the_full_check(linear, ecg, monkeypatch):
    """The once-per-hop checks (RunningSignalChecks) against signal_problems on every window: identical records."""
    from ecgedge.data.quality import FLAT_STD_MV, RunningSignalChecks

    runner, spec = linear
    rng = np.random.default_rng(5)
    y = ecg[:, :20_000].copy()
    y[8, 4_000:9_000] = 0.2 + rng.normal(scale=FLAT_STD_MV / 2, size=5_000)  # V3 flat
    y[7, 4_000:9_000] = 0.2 + rng.normal(scale=FLAT_STD_MV, size=5_000)  # V2 within a hair of the flat floor
    np.clip(y[10, 9_000:14_000], None, np.percentile(y[10, 9_000:14_000], 85), out=y[10, 9_000:14_000])  # V5 clipped
    y[3, 12_500:13_000] *= 30.0  # aVR: a wrong gain for one second
    y[2, 14_000:14_003] = np.nan
    y[5, 16_000] = np.inf
    # Lead I stuck at its maximum for 204 samples: with the one at its minimum, 5.005 % of a 4096-sample window.
    y[0, 16_800:17_004] = y[0, 12_000:20_000].max()
    runs = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(RunningSignalChecks, "clearly_clean", lambda self, start, end: False)
        hub = StreamHub(runner, spec)
        hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
        runs.append(stream(hub, 0, y, [20, 480, 1_333, 7]))
    assert runs[0] == runs[1]
    reasons = " ".join(r["reason"] for r in windows(runs[0], "unreliable"))
    for problem in ("lead V3 flat", "lead V5 saturated", "lead I saturated", "NaN in lead III", "inf in lead aVF",
                    "implausible amplitude: lead aVR"):
        assert problem in reasons
    assert len(windows(runs[0], "ok")) > 10


def _verdict(label, reliable=True, t=1.0):
    v = WindowVerdict(0, t, 0, 500, 0, reliable, reason="" if reliable else "lead-off: II")
    v.label, v.probs = label, {label: 0.9} if label else {}
    return v


def test_hysteresis_raises_a_rhythm_only_after_n_consecutive_windows():
    spec = ModelSpec(("II",), LABELS, PreprocessConfig(), WINDOW)
    mon = BedMonitor(0, fs_in=250.0, lead_names=("II",), model=spec, settings=StreamSettings(hysteresis=3))
    seq = ["SR", "SR", "SR", "AFIB", "AFIB", None, "AFIB", "AFIB", "AFIB", "SR", "AFIB"]
    events = []
    for i, label in enumerate(seq):
        events += [(i, e) for e in mon.resolve(_verdict(label, reliable=label is not None, t=i))]
    rhythm = [(i, e.previous, e.rhythm, e.held_windows) for i, e in events if isinstance(e, RhythmChange)]
    assert rhythm == [(2, None, "SR", 3), (8, "SR", "AFIB", 3)]  # the unreliable window at 5 restarted the count
    quality = [(i, e.reliable) for i, e in events if isinstance(e, QualityChange)]
    assert quality == [(0, True), (5, False), (6, True)]
    assert [e.to_json()["quality"] for _, e in events if isinstance(e, QualityChange)] == ["ok", "unreliable", "ok"]


def test_hub_batches_many_beds_into_one_call(linear, ecg):
    runner, spec = linear
    counting = CountingRunner(runner)
    hub = StreamHub(counting, spec, max_batch=8)
    beds = {f"bed{i}": np.roll(ecg, 700 * i, axis=1)[:, :6_000] for i in range(5)}
    for sid in beds:
        hub.open(sid, fs_in=FS, lead_names=STANDARD_12_LEADS)
    for sid, x in beds.items():
        hub.push(sid, x, 0)
    records = hub.flush()
    assert counting.batches == [8, 7]  # 5 beds x 3 classifiable windows, in batches of at most 8
    for sid, x in beds.items():
        alone = StreamHub(runner, spec)
        alone.open(sid, fs_in=FS, lead_names=STANDARD_12_LEADS)
        alone.push(sid, x, 0)
        assert [r for r in records if r.get("stream") == sid] == alone.flush()


def test_cpu_runners_get_calls_of_at_most_eight_windows_gpu_and_triton_of_64(linear):
    """Batching does not pay on ONNX Runtime CPU (issue 15: the leads are already the batch inside the
    graph; at 64 windows the activations leave the L2 cache): a hub on a CPU runner calls it with at most
    8 windows, on a GPU backend or a Triton server with 64; ``max_batch`` overrides."""
    runner, spec = linear
    assert StreamHub(runner, spec).max_batch == CPU_MAX_BATCH == 8
    assert StreamHub(runner, spec, max_batch=3).max_batch == 3

    class Remote:
        backend = None
        name = "triton:127.0.0.1:8001/ecg"

    class Gpu:
        backend = Backend.ort_trt

    assert default_max_batch(Remote()) == default_max_batch(Gpu()) == GPU_MAX_BATCH == 64


def test_missing_lead_is_an_error_not_a_zero_lead():
    spec = ModelSpec(STANDARD_12_LEADS, LABELS, PreprocessConfig(), WINDOW)
    with pytest.raises(ShapeMismatch, match="carries leads MLII, V5; the model needs I, III, aVR"):
        BedMonitor(3, fs_in=360.0, lead_names=("MLII", "V5"), model=spec)


@pytest.mark.parametrize("kwargs", [{"hop_s": 0}, {"hysteresis": 0}])
def test_settings_are_validated(kwargs):
    with pytest.raises(ConfigError):
        StreamSettings(**kwargs)


def test_restart_starts_a_new_segment(linear, ecg):
    runner, spec = linear
    hub = StreamHub(runner, spec)
    hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
    first = stream(hub, 0, ecg[:, :5_700], [20])
    hub.restart(0, "restart")
    second = hub.flush() + stream(hub, 0, ecg[:, :5_000], [20])  # the device rebooted: index 0 again
    assert windows(first)[-1]["samples"][1] == 5_500
    assert windows(second)[0] == {"type": "window", "stream": 0, "t": 11.4, "samples": [1_604, 5_700],
                                  "new": [5_500, 5_700], "quality": "unreliable", "reason": "restart"}
    assert [r["reason"] for r in windows(second)[1:10]] == ["restart"] * 8 + ["settling after restart"]
    assert windows(second)[10]["quality"] == "ok" and windows(second)[10]["samples"][1] == 5_000


def test_memory_per_bed_is_bounded(linear):
    runner, spec = linear
    hub = StreamHub(runner, spec)
    mon = hub.open(0, fs_in=FS, lead_names=STANDARD_12_LEADS)
    second = np.random.default_rng(0).normal(0, 0.3, (12, 500))
    tracemalloc.start()
    try:
        for s in range(600):  # ten minutes, one push per second
            hub.push(0, second, s * 500)
            hub.flush()
            # From 5 minutes on: numpy's and scipy's small-allocation caches fill for the first minutes
            # (more slowly with the QRS detector's arrays of varying length; measured: flat after 20 min).
            if s == 300:
                early = tracemalloc.get_traced_memory()[0]
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert late - early < 64 * 1024  # bytes; the rings and filter states do not grow with time
    assert mon.raw.buf.shape == (12, mon._raw_capacity) and mon.out.buf.shape == (12, mon._out_capacity)
