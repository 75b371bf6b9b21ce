"""One vectorised preprocessing pass for many beds (issue 15) gives what each bed alone gives, bit for bit.

- :meth:`StreamingPreprocessor.push_many` equals ``push`` per stream for any mix of rates, lead
  counts and chunk lengths (equal ones are stacked, the others are groups of their own);
- :func:`~ecgedge.stream.ward.cut_pending` over deferring monitors gives the events, in the order,
  and (z-scored as the hub does) the model inputs of monitors that cut their own windows, through gaps (concealed or not),
  lead-off, restarts, device flags, NaNs and pushes of any size, with the batch cut at random
  points (as a hub flushing at any time would);
- the hub (which defers) and the offline windows still agree (``test_monitor.py`` has the rest).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecgedge.config import STANDARD_12_LEADS, PreprocessConfig
from ecgedge.data.preprocess import StreamingPreprocessor, normalise_windows
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.stream.events import WindowVerdict
from ecgedge.stream.monitor import BedMonitor, ModelSpec, PendingWindows, StreamSettings
from ecgedge.stream.ward import cut_pending

CFG = PreprocessConfig()
SPEC = ModelSpec(STANDARD_12_LEADS, ("A", "B"), CFG, 2048)


@pytest.mark.parametrize("rates", [(500.0,) * 4, (500.0, 360.0, 250.0, 1000.0, 500.0, 128.0)])
def test_push_many_equals_push_per_stream(rates):
    rng = np.random.default_rng(1)
    leads = [12 if i % 3 else 2 for i in range(len(rates))]
    alone = [StreamingPreprocessor(CFG, fs, n) for fs, n in zip(rates, leads)]
    many = [StreamingPreprocessor(CFG, fs, n) for fs, n in zip(rates, leads)]
    for step in range(12):
        # Mostly one hop each (stacked); every third step ragged lengths, one empty chunk.
        sizes = [int(fs) if step % 3 else int(rng.integers(0, 900)) for fs in rates]
        xs = [rng.normal(size=(n, k)) + 3.0 for n, k in zip(leads, sizes)]
        expected = [p.push(x) for p, x in zip(alone, xs)]
        got = StreamingPreprocessor.push_many(many, xs)
        for e, g in zip(expected, got):
            assert e.shape == g.shape and np.array_equal(e, g)
    assert [p.samples_out for p in alone] == [p.samples_out for p in many]


@pytest.mark.parametrize("shape", [(3, 12, 2048), (1, 1, 2048), (5, 2, 1000), (2, 3, 777), (4, 7)])
def test_normalise_windows_is_the_textbook_z_score_bit_for_bit(shape):
    """The one-pass-fewer z-score equals ``(w - w.mean()) / max(w.std(), floor)`` exactly, whether
    windows come one by one or stacked (the hub z-scores all the windows of a hop in one call)."""
    rng = np.random.default_rng(sum(shape))
    w = (rng.normal(size=shape) * rng.uniform(0.001, 3.0, size=shape[:-1] + (1,)) + 0.7).astype(np.float32)
    w[(0,) * (len(shape) - 1)] = 0.25  # a flat lead: the floor applies
    mean = w.mean(axis=-1, keepdims=True)
    std = np.maximum(w.std(axis=-1, keepdims=True), np.float32(CFG.std_floor_mv))
    got, got_std = normalise_windows(w, CFG)
    assert got.dtype == np.float32 and np.array_equal(got, (w - mean) / std) and np.array_equal(got_std, std)
    one_by_one = np.stack([normalise_windows(x, CFG)[0] for x in w]) if w.ndim == 3 else got
    assert np.array_equal(one_by_one, got)


def _ops(draw_int, n_beds: int, seconds: int) -> list[tuple]:
    """A script of pushes and restarts for ``n_beds`` beds: chunk sizes, gaps short and long, lead-off, flags."""
    ops, pos = [], [0] * n_beds
    while min(pos) < seconds * 500:
        bed = draw_int(0, n_beds - 1)
        kind = draw_int(0, 59)  # each disruption 1 push in 60, a flush 1 in 6
        n = [20, 500, 37, 1000, 250][draw_int(0, 4)]
        if kind == 0:
            pos[bed] += draw_int(1, 40)  # short gap: concealed
        elif kind == 1:
            pos[bed] += draw_int(100, 2000)  # long gap: the filters restart
        if kind == 2:
            ops.append(("restart", bed))
        else:
            ops.append(("push", bed, pos[bed], n, [3] if kind == 3 else [], 2 if kind == 4 else 0))
            pos[bed] += n
        if kind >= 50:
            ops.append(("flush",))
    return ops


def _run(ops, ecg: np.ndarray, defer: bool) -> list[tuple]:
    settings_ = StreamSettings(hop_s=1.0, conceal_max_s=0.1, hysteresis=2)
    monitors = [BedMonitor(b, fs_in=500.0, lead_names=STANDARD_12_LEADS, model=SPEC, settings=settings_, defer=defer)
                for b in range(4)]
    out: list = []
    seen: set[int] = set()

    def z_score_cut_windows() -> None:
        """What the hub does before inference: z-score each window cut since (in mV, maybe a view of a ring)."""
        for item in out:
            if isinstance(item, PendingWindows) and item.cut and id(item) not in seen:
                seen.add(id(item))
                for v in item.items:
                    if isinstance(v, WindowVerdict) and v.window is not None:
                        v.window = normalise_windows(np.array(v.window)[None], CFG)[0][0]

    for op in ops:
        if op[0] == "flush":
            cut_pending([i for i in out if isinstance(i, PendingWindows)])
        elif op[0] == "restart":
            out += monitors[op[1]].restart("restart")
        else:
            _, bed, first, n, off, flags = op
            x = ecg[:, (first + 731 * bed) % 15000:][:, :n]
            out += monitors[bed].push(x, first, off, device_flags=flags)
        if defer:
            z_score_cut_windows()
    cut_pending([i for i in out if isinstance(i, PendingWindows)])
    if defer:
        z_score_cut_windows()
    flat: list = []
    for item in out:
        flat += item.items if isinstance(item, PendingWindows) else [item]
    return [(e.to_json(), None if not isinstance(e, WindowVerdict) or e.window is None else e.window.tobytes())
            for e in flat]


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    x = synthesize_ecg("SR", seed=5, duration_s=40.0, fs=500.0)[0].astype(np.float64)
    x[4, 9000:9003] = np.nan  # a NaN burst: windows over it are unreliable, the filters see 0 mV
    return x


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_deferred_monitors_give_what_each_alone_gives(ecg, seed):
    rng = np.random.default_rng(seed)
    ops = _ops(lambda a, b: int(rng.integers(a, b + 1)), n_beds=4, seconds=24)
    alone, batched = _run(ops, ecg, defer=False), _run(ops, ecg, defer=True)
    assert len(alone) == len(batched)
    assert alone == batched
    assert sum(w is not None for _, w in alone) > 0  # some windows passed the checks and reached the model


def test_beds_in_step_share_one_pass(ecg, monkeypatch):
    """64 beds fed the same hop go through the resampler and band-pass as one array: one call each per hop
    (sosfilt for the preprocessing's band-pass, and its kernel for the QRS detectors', StreamingQrsDetector.push_many)."""
    calls = {"upfirdn": 0, "sosfilt": 0, "band_pass": 0}
    import ecgedge.beats.qrs as qrs
    import ecgedge.data.preprocess as pre

    for name in calls:
        where = qrs if name == "band_pass" else pre.sps
        real = getattr(where, name)

        def counted(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)
        monkeypatch.setattr(where, name, counted)
    monitors = [BedMonitor(b, fs_in=500.0, lead_names=STANDARD_12_LEADS, model=SPEC, defer=True) for b in range(64)]
    verdicts = []
    for second in range(12):
        pending = [i for b, m in enumerate(monitors)
                   for i in m.push(ecg[:, second * 500 + b:][:, :500], second * 500) if isinstance(i, PendingWindows)]
        assert len(pending) == 64
        verdicts += cut_pending(pending)
    # sosfilt: the preprocessing's band-pass once a hop, and each detector's energy floor once, when its
    # monitor is made (ecgedge.beats.qrs.energy_floor); the detectors' band-pass (band_pass) once a hop.
    assert calls == {"upfirdn": 12, "sosfilt": 12 + 64, "band_pass": 12}
    assert len(verdicts) == 12 * 64 and sum(v.window is not None for v in verdicts) == 3 * 64
