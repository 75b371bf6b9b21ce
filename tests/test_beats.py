"""The QRS detector (ecgedge.beats.qrs) and the rhythm features (ecgedge.beats.features).

Data-free tests use ecgedge's synthetic ECG (which returns its own R-peak positions); the real-data
tests read ../shared/data/mitdb (records 100 and 208, their first 5 minutes) and
../shared/data/cpsc2019 (all 25 ten-second records) and skip where those are absent. A detection
matches a reference beat within 150 ms (MIT-BIH, EC57) or 75 ms (CPSC-2019's own scoring).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgedge.beats import (BeatFlag, Beats, QrsConfig, StreamingQrsDetector, detect_beats, heart_rate_bpm,
                           rhythm_features, rr_irregularity)
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.errors import ConfigError, ShapeMismatch

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")


def matched(ref: np.ndarray, det: np.ndarray, tol: float) -> tuple[int, int, int]:
    """(TP, FN, FP): each reference beat takes the nearest unused detection within ``tol`` samples."""
    det = np.sort(det)
    used = np.zeros(det.size, bool)
    tp = 0
    for r in np.sort(ref):
        lo, hi = np.searchsorted(det, r - tol), np.searchsorted(det, r + tol, "right")
        free = [k for k in range(lo, hi) if not used[k]]
        if free:
            used[min(free, key=lambda k: abs(det[k] - r))] = True
            tp += 1
    return tp, ref.size - tp, int(det.size - used.sum())


def pushed(x: np.ndarray, fs: float, sizes) -> Beats:
    """The detector fed ``x`` in chunks of the given sizes (cycled), then finished."""
    det = StreamingQrsDetector(fs, x.shape[0])
    parts, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        parts.append(det.push(x[:, i:i + n]))
        i, k = i + n, k + 1
    parts.append(det.finish())
    return Beats.concat(parts, fs)


@pytest.mark.parametrize("rhythm,fs", [("SR", 500.0), ("ST", 250.0), ("AFIB", 360.0), ("SB", 100.0), ("SVT", 128.0)])
def test_finds_every_synthetic_beat_at_any_rate(rhythm, fs):
    sig, r = synthesize_ecg(rhythm, seed=3, duration_s=30.0, fs=fs, leads=("II",))
    beats = detect_beats(sig[0], fs)
    tp, fn, fp = matched(r[r > fs], beats.samples[beats.samples > fs], 0.075 * fs)
    assert fn == 0 and fp == 0, f"{rhythm} at {fs} Hz: {fn} missed, {fp} false of {r.size} beats"


def test_multi_lead_mode_uses_every_lead_and_a_dead_lead_does_not_matter():
    sig, r = synthesize_ecg("SR", seed=5, duration_s=20.0, fs=500.0, leads=("I", "II", "V1", "V5"))
    sig = sig.astype(np.float64)
    sig[2] = 0.0  # V1 off: the other leads carry the beats
    beats = detect_beats(sig, 500.0)
    tp, fn, fp = matched(r[r > 500], beats.samples[beats.samples > 500], 37.5)
    assert fn == 0 and fp == 0
    only = detect_beats(sig, 500.0, leads=[1])
    assert matched(r[r > 500], only.samples[only.samples > 500], 37.5)[1:] == (0, 0)


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 700), min_size=1, max_size=6))
def test_chunk_invariant(sizes):
    """Any chunking gives the same beats and flags as the whole record (bit for bit), lost samples
    (NaN: held and flagged concealed) included."""
    sig, r = synthesize_ecg("AFIB", seed=11, duration_s=12.0, fs=250.0, leads=("II", "V2"))
    sig = sig.astype(np.float64)
    a, b = r[r > 1500][:2]
    sig[:, a - 4:a + 6] = np.nan  # a lost frame over one R peak
    sig[0, b + 5:b + 8] = np.nan  # and a few samples just after another
    whole = detect_beats(sig, 250.0)
    assert (whole.flags & BeatFlag.CONCEALED).any()
    part = pushed(sig, 250.0, sizes)
    assert np.array_equal(part.samples, whole.samples) and np.array_equal(part.flags, whole.flags)


@pytest.mark.data
def test_chunk_invariant_in_40ms_frames_on_a_real_record(shared_data):
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(shared_data / "mitdb" / "208"), sampto=360 * 120, channels=[0])
    x = rec.p_signal.T
    whole = detect_beats(x, 360.0)
    frames = pushed(x, 360.0, [14, 15])  # 40 ms at 360 Hz is 14.4 samples
    assert len(whole) > 100
    assert np.array_equal(frames.samples, whole.samples) and np.array_equal(frames.flags, whole.flags)


def test_flat_line_and_quiet_noise_have_no_beats():
    fs = 250.0
    sig, _ = synthesize_ecg("SR", seed=2, duration_s=10.0, fs=fs, leads=("II",))
    rng = np.random.default_rng(0)
    quiet = rng.normal(0, 0.01, int(20 * fs))  # 10 µV of noise: an asystole with the leads on
    x = np.concatenate([sig[0], quiet])
    beats = detect_beats(x, fs)
    after = beats.samples[beats.samples > 10.5 * fs]
    assert after.size == 0, f"beats found in 20 s of asystole at {after / fs} s"
    assert len(detect_beats(np.zeros(int(10 * fs)), fs)) == 0


def test_amplitude_drop_is_followed():
    """A lasting fall in QRS amplitude (a lead change, a detached electrode re-placed) is followed
    within a few seconds: the empty search-back deadlines lower the threshold."""
    fs = 360.0
    sig, r = synthesize_ecg("SR", seed=4, duration_s=40.0, fs=fs, leads=("II",))
    x = sig[0].astype(np.float64)
    x[int(20 * fs):] *= 0.15
    beats = detect_beats(x, fs)
    late = r[r > 26 * fs]
    tp, fn, fp = matched(late, beats.samples[beats.samples > 26 * fs], 0.075 * fs)
    assert fn == 0 and fp == 0


def test_nan_is_held_and_flagged_concealed_and_the_caller_mask_flags_too():
    fs = 500.0
    sig, r = synthesize_ecg("SR", seed=1, duration_s=15.0, fs=fs, leads=("II",))
    x = sig.astype(np.float64)
    beat = int(r[r > 8 * fs][0])
    x[0, beat - 5:beat + 5] = np.nan
    beats = detect_beats(x, fs)
    near = np.abs(beats.samples - beat) < 0.1 * fs
    assert near.any() and all(beats.flags[near] & BeatFlag.CONCEALED)
    clean = beats.flags[np.abs(beats.samples - beat) > fs] & BeatFlag.CONCEALED
    assert not clean.any()
    mask = np.zeros(x.shape[1], bool)
    mask[beat - 3:beat + 3] = True
    flagged = detect_beats(sig, fs, concealed=mask)
    assert flagged.flags[np.argmin(np.abs(flagged.samples - beat))] & BeatFlag.CONCEALED


def test_restart_relearns_and_keeps_positions_absolute():
    fs = 250.0
    sig, r = synthesize_ecg("SR", seed=9, duration_s=20.0, fs=fs, leads=("II",))
    det = StreamingQrsDetector(fs, 1, first_sample=1000)
    a = det.push(sig[:, :2500])
    det.restart()
    b = Beats.concat([det.push(sig[:, 2500:]), det.finish()], fs)
    assert np.all(np.diff(np.concatenate([a.samples, b.samples])) > 0)
    assert b.samples.min() >= 1000 + 2500
    tp, fn, fp = matched(r[r > 2500 + 10] + 1000, b.samples, 0.075 * fs)
    assert fp == 0 and fn <= 1  # a beat inside the first look-ahead after the restart may be lost


def test_bad_rates_leads_and_settings_are_one_line_errors():
    with pytest.raises(ShapeMismatch, match="at least 100 Hz"):
        StreamingQrsDetector(50.0)
    with pytest.raises(ShapeMismatch, match="not among"):
        StreamingQrsDetector(250.0, 2, leads=[3])
    with pytest.raises(ShapeMismatch, match=r"expects \(2, n\)"):
        StreamingQrsDetector(250.0, 2).push(np.zeros((3, 10)))
    with pytest.raises(ConfigError):
        QrsConfig(band_low_hz=30.0, band_high_hz=20.0)


def test_heart_rate_and_irregularity():
    assert heart_rate_bpm(np.array([1.0, 1.0, 0.5, 1.0])) == pytest.approx(60.0)
    assert heart_rate_bpm(np.array([0.4] * 20)) == pytest.approx(150.0)
    assert math.isnan(heart_rate_bpm(np.array([])))
    assert rr_irregularity(np.array([0.8] * 10)) == 0.0
    assert math.isnan(rr_irregularity(np.array([0.8, 0.8])))


def test_rhythm_features_separate_sinus_from_af():
    fs = 300.0
    feats = {}
    for rhythm in ("SR", "AFIB"):
        sig, _ = synthesize_ecg(rhythm, seed=21, duration_s=60.0, fs=fs, leads=("I",))
        feats[rhythm] = rhythm_features(detect_beats(sig[0], fs))
    sr, af = feats["SR"], feats["AFIB"]
    assert af.irregularity > 2 * sr.irregularity
    assert af.pnn50 > sr.pnn50 and af.rmssd_ms > sr.rmssd_ms
    assert 40 < sr.hr_bpm < 110
    assert len(sr.to_array()) == len(sr.names()) and sr.to_array().dtype == np.float32
    few = rhythm_features(Beats(np.array([10, 300]), np.zeros(2, np.uint8), fs))
    assert few.n_beats == 2 and math.isnan(few.sample_entropy) and few.hr_bpm == pytest.approx(62.07, abs=0.01)


@pytest.mark.data
def test_mitdb_first_five_minutes(shared_data):
    """Records 100 and 208 (MLII, 360 Hz), their first 5 minutes; EC57's 150-ms match window."""
    wfdb = pytest.importorskip("wfdb")
    tp = fn = fp = 0
    for name in ("100", "208"):
        path = shared_data / "mitdb" / name
        if not path.with_suffix(".atr").is_file():
            pytest.skip(f"{path}.atr not found")
        n = 360 * 300
        rec = wfdb.rdrecord(str(path), sampto=n, channels=[0])
        ann = wfdb.rdann(str(path), "atr", sampto=n)
        ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
        det = detect_beats(rec.p_signal[:, 0], 360.0).samples
        keep = lambda s: s[(s >= 360) & (s < n - 360)]  # noqa: E731
        a, b, c = matched(keep(ref), keep(det), 0.15 * 360)
        tp, fn, fp = tp + a, fn + b, fp + c
    assert tp / (tp + fn) >= 0.99 and tp / (tp + fp) >= 0.995, (tp, fn, fp)


@pytest.mark.data
def test_cpsc2019(shared_data):
    """The 25 CPSC-2019 records (500 Hz, 10 s, noisy), scored as the challenge did (±75 ms)."""
    sio = pytest.importorskip("scipy.io")
    folder = shared_data / "cpsc2019"
    files = sorted((folder / "data").glob("data_*.mat"))[:25]
    if not files:
        pytest.skip(f"no CPSC-2019 records in {folder}")
    tp = fn = fp = 0
    for f in files:
        ecg = sio.loadmat(f)["ecg"][:, 0]
        ref = sio.loadmat(folder / "ref" / f.name.replace("data_", "R_"))["R_peak"].ravel().astype(np.int64) - 1
        det = detect_beats(ecg, 500.0).samples
        keep = lambda s: s[(s >= 250) & (s < ecg.size - 250)]  # noqa: E731
        a, b, c = matched(keep(ref), keep(det), 37.5)
        tp, fn, fp = tp + a, fn + b, fp + c
    f1 = 2 * tp / (2 * tp + fn + fp)
    assert f1 >= 0.96, (tp, fn, fp, f1)


def test_band_pass_is_scipys_sosfilt_bit_for_bit():
    """The detector's band-pass (scipy's sosfilt kernel without its wrapper) gives sosfilt's output and state exactly."""
    from scipy import signal as sps

    from ecgedge.beats.qrs import band_pass

    rng = np.random.default_rng(5)
    for fs in (100.0, 360.0, 500.0):
        sos = sps.butter(2, [5.0, 20.0], btype="bandpass", fs=fs, output="sos")
        for rows, n in ((1, 1), (1, 500), (3, 37), (12, 250)):
            x = rng.normal(size=(rows, n))
            zi = rng.normal(size=(sos.shape[0], rows, 2))
            want_y, want_z = sps.sosfilt(sos, x, axis=-1, zi=zi)
            y, z = band_pass(sos, x, zi)
            assert np.array_equal(y, want_y) and np.array_equal(z, want_z)
