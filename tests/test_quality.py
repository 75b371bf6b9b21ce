"""Signal checks: NaN/inf, flat and saturated leads, on generated and real signals."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecgedge.config import STANDARD_12_LEADS
from ecgedge.data.quality import nonfinite_problems, signal_problems

FS = 250.0


def ecg_like(n_leads=12, n=2048, seed=0) -> np.ndarray:
    """Sines of 1-1.6 Hz, ~1 mV, plus 20 µV noise: well above the flat floor, extremes touched rarely."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    f = rng.uniform(1.0, 1.6, size=(n_leads, 1))
    return (np.sin(2 * np.pi * f * t) + rng.normal(scale=0.02, size=(n_leads, n))).astype(np.float32)


def test_clean_signal_has_no_problems():
    assert signal_problems(ecg_like(), FS, STANDARD_12_LEADS) == []


def test_nan_run_is_located_in_samples_and_seconds():
    x = ecg_like()
    x[7, 100:181] = np.nan   # V2
    assert signal_problems(x, FS, STANDARD_12_LEADS) == ["NaN in lead V2 at samples 100-180 (0.400-0.720 s)"]
    assert nonfinite_problems(x, FS, STANDARD_12_LEADS) == ["NaN in lead V2 at samples 100-180 (0.400-0.720 s)"]


def test_scattered_nonfinite_samples_are_counted():
    x = ecg_like(2)
    x[0, [5, 6, 900]] = np.inf
    x[1, 10] = np.nan
    x[1, 20] = -np.inf
    assert signal_problems(x, FS, ["I", "II"]) == [
        "inf in lead I at 3 samples in 2 runs, samples 5-900 (0.020-3.600 s)",
        "NaN/inf in lead II at 2 samples in 2 runs, samples 10-20 (0.040-0.080 s)",
    ]


def test_flat_lead_reports_its_std():
    x = ecg_like()
    x[2] = 0.3 + np.random.default_rng(1).normal(scale=0.0001, size=x.shape[1])   # III: offset, 0.1 µV noise
    [problem] = signal_problems(x, FS, STANDARD_12_LEADS)
    assert problem.startswith("lead III flat (std 0.0001")


def test_flat_threshold_is_a_parameter():
    x = ecg_like(1) * 0.01   # std ~7 µV
    assert signal_problems(x, FS, ["II"]) == []
    assert signal_problems(x, FS, ["II"], flat_std_mv=0.01)[0].startswith("lead II flat")


def test_saturated_lead_at_the_rail():
    """A lead clipped at +-0.8 mV (the top and bottom ~20 % of a 1 mV sine) is saturated; the others are not."""
    x = ecg_like()
    x[6] = np.clip(np.sin(2 * np.pi * 1.2 * np.arange(x.shape[1]) / FS), -0.8, 0.8)   # V1
    [problem] = signal_problems(x, FS, STANDARD_12_LEADS)
    frac = np.mean(np.abs(x[6]) == 0.8)
    assert problem == f"lead V1 saturated ({frac:.0%} of samples at the rail)"
    assert 0.3 < frac < 0.5


def test_saturation_fraction_is_a_parameter():
    x = ecg_like(1)
    x[0, :60] = x[0].max()   # 3 % of 2048 samples stuck at the top
    assert signal_problems(x, FS, ["II"]) == []
    assert signal_problems(x, FS, ["II"], saturation_fraction=0.02) == ["lead II saturated (3% of samples at the rail)"]


def test_every_problem_is_reported_in_lead_order():
    x = ecg_like()
    x[0, 10] = np.nan
    x[4] = 0.0
    x[11] = np.clip(x[11], -0.5, 0.5)
    problems = signal_problems(x, FS, STANDARD_12_LEADS)
    assert [p.split(" (")[0] for p in problems] == ["NaN in lead I at sample 10", "lead aVL flat", "lead V6 saturated"]


def test_shape_must_match_lead_names():
    with pytest.raises(ValueError, match="does not match 3 lead name"):
        signal_problems(np.zeros((2, 100)), FS, ["I", "II", "III"])
    with pytest.raises(ValueError):
        signal_problems(np.zeros(100), FS, ["I"])


@settings(max_examples=50, deadline=None)
@given(n=st.integers(64, 4096), start=st.integers(0, 4095), length=st.integers(1, 500), lead=st.integers(0, 11))
def test_any_nan_run_is_found_exactly(n, start, length, lead):
    x = ecg_like(n=n, seed=n)
    start = start % n
    stop = min(n, start + length)
    x[lead, start:stop] = np.nan
    problems = signal_problems(x, FS, STANDARD_12_LEADS)
    last = stop - 1
    where = f"sample {start} ({start / FS:.3f} s)" if last == start else f"samples {start}-{last} ({start / FS:.3f}-{last / FS:.3f} s)"
    assert problems == [f"NaN in lead {STANDARD_12_LEADS[lead]} at {where}"]


@pytest.mark.data
def test_real_records_windows(shared_data):
    """Real 12-lead windows: clean leads pass; the Ningbo record whose V1-V6 are zero-filled is caught."""
    from ecgedge.data.records import read_record

    clean = read_record(shared_data / "chapman" / "WFDBRecords" / "01" / "010" / "JS00001.hea")
    for start in range(0, 5000 - 2048, 1024):
        assert signal_problems(clean.signal[:, start:start + 2048], clean.fs, clean.lead_names) == []
    zero_chest = read_record(shared_data / "cinc2021" / "ChapmanShaoxing_Ningbo" / "JS45542.hea")
    problems = signal_problems(zero_chest.signal, zero_chest.fs, zero_chest.lead_names)
    assert problems == [f"lead V{i} flat (std 0 mV)" for i in range(1, 7)]
    clipped = clean.signal.copy()
    clipped[1] = np.clip(clipped[1], None, np.quantile(clipped[1], 0.9))   # lead II's top 10 % at a rail
    assert [p.split(" (")[0] for p in signal_problems(clipped, clean.fs, clean.lead_names)] == ["lead II saturated"]


def test_quality_imports_neither_wfdb_nor_torch():
    """The streaming runtime imports this module: it must stay numpy-only."""
    code = "import sys, ecgedge.data.quality; bad = {'wfdb', 'torch', 'h5py', 'openpyxl'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)
