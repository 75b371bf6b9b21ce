"""The synthetic ECG generator: determinism, lead algebra, rhythm features, PhysioNet layout.

Rhythm features are measured from the output the way a reader of the ECG would (R peaks, PR
window, QRS-free spectrum), against clinical ranges written here, not the generator's own table.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat
from scipy.signal import periodogram

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.synthetic import RHYTHMS, SNOMED, synthesize_ecg
from ecgedge.data.synthetic_records import write_wfdb_dataset
from ecgedge.errors import EcgEdgeError

wfdb = pytest.importorskip("wfdb")

FS = 500.0
LEAD = {name: i for i, name in enumerate(STANDARD_12_LEADS)}
SEEDS = range(6)

# Clinical ventricular-rate ranges (bpm) each rhythm's measured rate must fall in.
CLINICAL_BPM = {
    "SR": (60, 100), "SB": (30, 60), "ST": (100, 150), "SA": (50, 105), "AFIB": (50, 170),
    "AF": (60, 180), "SVT": (150, 250), "AT": (100, 250), "AVNRT": (140, 250), "AVRT": (140, 250),
    "SAAWR": (45, 100),
}


def _rr_s(r_peaks: np.ndarray) -> np.ndarray:
    return np.diff(r_peaks) / FS


def _blank_qrs(x: np.ndarray, r_peaks: np.ndarray, half_s: float = 0.06) -> np.ndarray:
    """Lead with each QRS (R +- half_s) replaced by a straight line, leaving atrial activity and T."""
    y, h = x.astype(np.float64), int(half_s * FS)
    for r in r_peaks:
        a, b = max(r - h, 0), min(r + h, len(y) - 1)
        y[a:b + 1] = np.linspace(y[a], y[b], b - a + 1)
    return y


def test_same_seed_is_bitwise_identical_and_other_seeds_differ():
    for rhythm in RHYTHMS:
        a, ra = synthesize_ecg(rhythm, seed=7)
        b, rb = synthesize_ecg(rhythm, seed=7)
        assert a.tobytes() == b.tobytes() and np.array_equal(ra, rb), rhythm
        c, _ = synthesize_ecg(rhythm, seed=8)
        assert not np.array_equal(a, c), rhythm


def test_output_types_shapes_and_lead_subset():
    signal, r = synthesize_ecg("SR", seed=3, duration_s=8.0, fs=250.0)
    assert signal.shape == (12, 2000) and signal.dtype == np.float32
    assert r.dtype == np.int64 and np.all((r >= 0) & (r < 2000)) and np.all(np.diff(r) > 0)
    subset, r_subset = synthesize_ecg("SR", seed=3, duration_s=8.0, fs=250.0, leads=("V1", "II"))
    assert np.array_equal(subset, signal[[LEAD["V1"], LEAD["II"]]]) and np.array_equal(r_subset, r)


def test_bad_arguments_name_what_is_supported():
    with pytest.raises(ValueError, match="supported: SB, SR, AFIB") as info:
        synthesize_ecg("VT", seed=0)
    assert isinstance(info.value, EcgEdgeError)   # the CLI reports it on one line
    with pytest.raises(ValueError, match="unknown lead"):
        synthesize_ecg("SR", seed=0, leads=("II", "MLII"))
    with pytest.raises(ValueError, match="duration_s"):
        synthesize_ecg("SR", seed=0, duration_s=0)


@pytest.mark.parametrize("rhythm", ["SR", "AFIB", "AF"])
def test_limb_leads_obey_einthoven_and_goldberger_with_noise(rhythm):
    s = synthesize_ecg(rhythm, seed=1, noise_mv=0.05, wander_mv=0.3)[0].astype(np.float64)
    i, ii = s[LEAD["I"]], s[LEAD["II"]]
    tol = 1e-5   # mV: float32 rounding of values of a few mV
    np.testing.assert_allclose(s[LEAD["III"]], ii - i, atol=tol)
    np.testing.assert_allclose(s[LEAD["aVR"]], -(i + ii) / 2, atol=tol)
    np.testing.assert_allclose(s[LEAD["aVL"]], i - ii / 2, atol=tol)
    np.testing.assert_allclose(s[LEAD["aVF"]], ii - i / 2, atol=tol)


@pytest.mark.parametrize("rhythm", RHYTHMS)
def test_measured_heart_rate_is_in_the_rhythms_clinical_range(rhythm):
    lo, hi = CLINICAL_BPM[rhythm]
    for seed in SEEDS:
        bpm = 60.0 / _rr_s(synthesize_ecg(rhythm, seed=seed)[1]).mean()
        assert lo <= bpm <= hi, f"{rhythm} seed {seed}: {bpm:.1f} bpm outside {lo}-{hi}"


def test_rr_irregularity_high_in_afib_low_in_sinus_and_svt():
    def cv(rhythm, seed):
        rr = _rr_s(synthesize_ecg(rhythm, seed=seed)[1])
        return rr.std() / rr.mean()

    afib = [cv("AFIB", s) for s in SEEDS]
    assert min(afib) > 0.08 and np.median(afib) > 0.12, afib
    assert max(cv("SR", s) for s in SEEDS) < 0.05
    assert max(cv("SVT", s) for s in SEEDS) < 0.02
    sa = [cv("SA", s) for s in SEEDS]
    assert min(sa) > 0.03, sa   # respiratory sinus arrhythmia is visible, unlike SR's few %


def _pr_window_template_mv(rhythm: str, seed: int) -> float:
    """Peak |amplitude| of the beat-averaged lead-II window R-250..R-60 ms (where a P wave sits),
    with the line through its end points removed. Averaging keeps what is locked to the QRS (a P
    wave) and cancels what is not (f-waves, noise). Only beats after an RR >= 0.55 s, whose window
    is clear of the previous T wave; 60 s so that fast AFIB has enough of them."""
    signal, r = synthesize_ecg(rhythm, seed=seed, duration_s=60.0, leads=("II",))
    a, b = int(0.25 * FS), int(0.06 * FS)
    beats = [signal[0, k - a:k - b] for j, k in enumerate(r[1:], 1) if k - r[j - 1] >= 0.55 * FS]
    assert len(beats) >= 10, f"{rhythm} seed {seed}: too few long RR intervals"
    w = np.mean(beats, axis=0)
    w = w - np.linspace(w[0], w[-1], len(w))
    return float(np.abs(w).max())


def test_sinus_rhythm_has_p_waves_and_afib_has_none():
    sr = [_pr_window_template_mv("SR", s) for s in SEEDS]
    afib = [_pr_window_template_mv("AFIB", s) for s in SEEDS]
    assert min(sr) > 0.05, sr       # P waves are 0.1-0.2 mV in II
    assert max(afib) < 0.035, afib  # noise and non-locked f-waves average out


def test_flutter_dominant_atrial_frequency_is_4_to_6_hz_in_lead_ii():
    for seed in SEEDS:
        signal, r = synthesize_ecg("AF", seed=seed, duration_s=20.0, leads=("II",))
        f, p = periodogram(_blank_qrs(signal[0], r), FS, window="hann", detrend="linear")
        band = (f >= 3.0) & (f <= 10.0)
        dominant = f[band][np.argmax(p[band])]
        assert 4.0 <= dominant <= 6.0, f"seed {seed}: {dominant:.2f} Hz (flutter is 240-360/min)"


def test_flutter_waves_fill_the_diastole_that_is_flat_in_sinus_rhythm():
    """Between the end of T and the next QRS, sinus rhythm is flat but for the P wave; flutter
    keeps going. Noise-free records; RR >= 0.75 s so the window R+0.42 s..next R-0.25 s exists."""
    def diastolic_peak_to_peak(rhythm):
        swings = []
        for seed in range(16):
            signal, r = synthesize_ecg(rhythm, seed=seed, leads=("II",), noise_mv=0, wander_mv=0)
            for j in range(len(r) - 1):
                if r[j + 1] - r[j] >= 0.75 * FS:
                    w = signal[0, r[j] + int(0.42 * FS):r[j + 1] - int(0.25 * FS)]
                    swings.append(np.ptp(w - np.linspace(w[0], w[-1], len(w))))
        return np.array(swings)

    sr, af = diastolic_peak_to_peak("SR"), diastolic_peak_to_peak("AF")
    assert len(af) >= 10, "no flutter record with 3:1 or slower conduction among the seeds"
    assert np.median(sr) < 0.02 and np.median(af) > 0.05, (np.median(sr), np.median(af))


def test_lead_ii_r_amplitude_is_in_a_plausible_mv_range():
    heights = []
    for rhythm in ("SR", "AFIB", "SVT"):
        for seed in SEEDS:
            signal, r = synthesize_ecg(rhythm, seed=seed, leads=("II",), noise_mv=0, wander_mv=0)
            heights.append(np.median([signal[0, k - 15:k + 16].max() - signal[0, k - 40] for k in r if k >= 40]))
    assert 0.2 < min(heights) and max(heights) < 2.5, heights
    assert 0.8 < np.median(heights) < 1.6, np.median(heights)


def test_write_wfdb_dataset_round_trips_through_wfdb(tmp_path):
    paths = write_wfdb_dataset(tmp_path, records_per_rhythm=2, rhythms=("SR", "AFIB", "AF"), seed=5)
    assert [p.name for p in paths] == [f"SYN{k:05d}.hea" for k in range(1, 7)]
    assert all(p.parent == tmp_path / "WFDBRecords" / "01" / "010" for p in paths)
    for path, rhythm in zip(paths, ["SR", "AFIB", "AF"] * 2):
        rec = wfdb.rdrecord(str(path.with_suffix("")))
        assert rec.sig_name == list(STANDARD_12_LEADS) and rec.fs == 500 and rec.sig_len == 5000
        assert rec.fmt == ["16"] * 12 and rec.byte_offset == [24] * 12 and rec.adc_gain == [1000.0] * 12
        assert f"Dx: {SNOMED[rhythm]}" in rec.comments
        assert any(c.startswith("Age: ") for c in rec.comments) and any(c.startswith("Sex: ") for c in rec.comments)
        synthetic = next(c for c in rec.comments if c.startswith("Synthetic:")).split()
        assert synthetic[2] == rhythm
        signal, _ = synthesize_ecg(rhythm, seed=int(synthetic[3].removeprefix("seed=")))
        # 1000 adu/mV: rounding costs at most 0.5 uV, float32 adds ~1e-7 mV.
        np.testing.assert_allclose(rec.p_signal.T, signal, rtol=0, atol=0.0005 + 1e-6)
        mat = loadmat(path.with_suffix(".mat"))
        assert mat["val"].dtype == np.int16 and mat["val"].shape == (12, 5000)


def test_write_wfdb_dataset_numbers_interleaved_and_folders_by_hundred(tmp_path):
    paths = write_wfdb_dataset(tmp_path, records_per_rhythm=51, rhythms=("SB", "ST"), duration_s=1.0)
    assert len(paths) == 102
    assert paths[99].relative_to(tmp_path).as_posix() == "WFDBRecords/01/010/SYN00100.hea"
    assert paths[100].relative_to(tmp_path).as_posix() == "WFDBRecords/01/011/SYN00101.hea"
    dx = [next(line for line in p.read_text().splitlines() if line.startswith("#Dx:")) for p in paths[:4]]
    assert dx == [f"#Dx: {SNOMED[r]}" for r in ("SB", "ST", "SB", "ST")]
    again = write_wfdb_dataset(tmp_path / "again", records_per_rhythm=1, rhythms=("SB",), duration_s=1.0)
    assert again[0].with_suffix(".mat").read_bytes() == paths[0].with_suffix(".mat").read_bytes()


@pytest.mark.data
def test_written_header_matches_the_real_chapman_layout(shared_data, tmp_path):
    real_path = shared_data / "chapman" / "WFDBRecords" / "01" / "010" / "JS00001"
    if not real_path.with_suffix(".hea").exists():
        pytest.skip(f"{real_path}.hea not found")
    real = wfdb.rdheader(str(real_path))
    written = write_wfdb_dataset(tmp_path, records_per_rhythm=1, rhythms=("SR",))[0]
    ours = wfdb.rdheader(str(written.with_suffix("")))
    for field in ("n_sig", "fs", "sig_len", "fmt", "byte_offset", "adc_gain", "units", "adc_res", "adc_zero", "sig_name"):
        assert getattr(ours, field) == getattr(real, field), field
    assert [c.split(":")[0] for c in ours.comments[:6]] == [c.split(":")[0] for c in real.comments]
