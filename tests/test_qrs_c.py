"""The C QRS detector (firmware_bridge/src/ecgb_qrs.c) against the Python one (ecgedge/beats/qrs.py).

Builds firmware_bridge/ (skips without make and a C compiler) and runs ``build/qrs_detect``, which
pushes float32 samples through ``ecgb_qrs_push`` in 40-ms chunks; the Python detector gets each
record whole. The beats must be the same within one sample, with the same flags.

The bounded set here: the first 5 minutes of MIT-BIH 208 (lead 0) and 5 CPSC-2019 records. The full
run, every shared record with reference beats at full length (MIT-BIH 100 and 208, 30 min each,
and the 25 CPSC-2019 records), is the same test with ``ECGEDGE_QRS_C_FULL=1``:

    ECGEDGE_QRS_C_FULL=1 pytest tests/test_qrs_c.py -k record
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from ecgedge.beats.qrs import Beats, StreamingQrsDetector, detect_beats, energy_floor, group_delay_samples

pytestmark = pytest.mark.c

FULL = os.environ.get("ECGEDGE_QRS_C_FULL") == "1"
CPSC_BOUNDED = ["00014", "00147", "00513", "01234", "01511"]


def _c_beats(build: Path, x: np.ndarray, fs: float, chunk: int | None = None) -> Beats:
    """Beats of the C detector for (leads, n) or (n,) samples in mV."""
    x32 = np.asarray(x, np.float32)
    leads = 1 if x32.ndim == 1 else x32.shape[0]
    data = x32.tobytes() if x32.ndim == 1 else np.ascontiguousarray(x32.T).tobytes()
    args = [str(build / "qrs_detect"), repr(float(fs)), str(leads)] + (["--chunk", str(chunk)] if chunk else [])
    out = subprocess.run(args, input=data, capture_output=True, check=True, timeout=120).stdout.split()
    pairs = np.array(out, np.int64).reshape(-1, 2)
    return Beats(pairs[:, 0], pairs[:, 1].astype(np.uint8), float(fs))


def _python_beats(x: np.ndarray, fs: float) -> Beats:
    """The Python detector on the same float32 values, whole."""
    return detect_beats(np.asarray(x, np.float32).astype(np.float64), fs)


def assert_same_beats(c: Beats, py: Beats, what: str) -> None:
    assert len(c) == len(py), f"{what}: C found {len(c)} beats, Python {len(py)}"
    off = np.abs(c.samples - py.samples)
    assert off.max(initial=0) <= 1, f"{what}: beats {np.flatnonzero(off > 1)[:5]} differ by up to {off.max()} samples"
    assert np.array_equal(c.flags, py.flags), f"{what}: flags differ at beats {np.flatnonzero(c.flags != py.flags)[:5]}"


@pytest.mark.parametrize("fs", [100.0, 128.0, 250.0, 256.0, 257.3, 300.0, 360.0, 500.0, 512.0, 1000.0])
def test_design_matches_scipy(build, fs):
    """Band-pass sections and their start state as scipy's butter / sosfilt_zi (to 1e-12), and the
    delay and beat floor the Python detector derives from them."""
    out = subprocess.run([str(build / "qrs_detect"), "--design", repr(fs)], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    sos = sps.butter(2, [5.0, min(20.0, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    np.testing.assert_allclose(np.reshape(d["sos"], (2, 6)), sos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.reshape(d["zi"], (2, 2)), sps.sosfilt_zi(sos), rtol=0, atol=1e-12)
    det = StreamingQrsDetector(fs)
    assert d["delay"] == det.delay == group_delay_samples(sos, fs) + 1
    assert (d["w_int"], d["r_cand"], d["locate"]) == (det.w_int, det.r_cand, det.locate)
    assert d["floor"] == pytest.approx(energy_floor(sos, det.w_int, fs, 0.1), rel=1e-9)


def test_group_delay_matches_for_every_integer_rate(build):
    """The rounded group delay (the R-peak location's correction) at every whole rate 100..1000 Hz."""
    bad = []
    for fs in range(100, 1001, 3):
        out = subprocess.run([str(build / "qrs_detect"), "--design", str(fs)], capture_output=True, text=True, check=True)
        if json.loads(out.stdout)["delay"] != StreamingQrsDetector(float(fs)).delay:
            bad.append(fs)
    assert not bad, f"group delay differs at {bad[:10]} Hz"


def test_rejects_what_it_cannot_hold(build):
    for args in (["99", "1"], ["2000", "1"], ["360", "0"], ["360", "99"]):
        done = subprocess.run([str(build / "qrs_detect"), *args], input=b"", capture_output=True)
        assert done.returncode == 2 and b"cannot run" in done.stderr


def _mitdb(shared_data: Path, wfdb, rec: str, seconds: float | None, lead: int | slice = 0):
    path = shared_data / "mitdb" / rec
    if not path.with_suffix(".hea").exists():
        pytest.skip(f"record {path} not found")
    r = wfdb.rdrecord(str(path), sampto=None if seconds is None else int(seconds * 360))
    return r.p_signal.T[lead], float(r.fs)


@pytest.mark.data
@pytest.mark.parametrize("rec", ["100", "208"] if FULL else ["208"])
def test_mitdb_record_same_beats(build, shared_data, wfdb, rec):
    x, fs = _mitdb(shared_data, wfdb, rec, None if FULL else 300.0)
    py = _python_beats(x, fs)
    assert len(py) > 300
    assert_same_beats(_c_beats(build, x, fs), py, f"mitdb {rec}")


def _cpsc_ids(shared_data: Path) -> list[str]:
    return sorted(p.stem.split("_")[-1] for p in (shared_data / "cpsc2019" / "data").glob("data_*.mat"))


@pytest.mark.data
def test_cpsc2019_records_same_beats(build, shared_data):
    sio = pytest.importorskip("scipy.io")
    folder = shared_data / "cpsc2019" / "data"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    ids = _cpsc_ids(shared_data) if FULL else CPSC_BOUNDED
    total = 0
    for idx in ids:
        ecg = sio.loadmat(str(folder / f"data_{idx}.mat"))["ecg"][:, 0]
        py = _python_beats(ecg, 500.0)
        assert_same_beats(_c_beats(build, ecg, 500.0), py, f"cpsc2019 {idx}")
        total += len(py)
    assert total > 60


@pytest.mark.data
@pytest.mark.parametrize("fs", [100, 250, 1000])
def test_other_rates_same_beats(build, shared_data, wfdb, fs):
    """One minute of 208 resampled: the design, delays and windows at other rates."""
    x, _ = _mitdb(shared_data, wfdb, "208", 60.0)
    y = sps.resample_poly(x, fs, 360)
    assert_same_beats(_c_beats(build, y, fs), _python_beats(y, fs), f"208 at {fs} Hz")


@pytest.mark.data
def test_two_leads_same_beats(build, shared_data, wfdb):
    """The multi-lead mode: slope energy summed over both leads, R peak on the stronger."""
    x, fs = _mitdb(shared_data, wfdb, "100", 120.0, slice(None))
    assert_same_beats(_c_beats(build, x, fs), _python_beats(x, fs), "mitdb 100, 2 leads")


@pytest.mark.data
def test_nan_runs_are_held_and_flagged(build, shared_data, wfdb):
    """NaN and Inf hold the last value and flag nearby beats concealed, the same in C (40-ms chunks)
    as in Python pushed in 40-ms chunks or given the whole record (the concealed check stops at the
    candidate's look-ahead, so it does not depend on the chunking)."""
    x, fs = _mitdb(shared_data, wfdb, "100", 60.0)
    x = x.astype(np.float32).astype(np.float64)
    x[3600:3700] = np.nan
    x[9000:9003] = np.inf
    x[20000:20400] = np.nan
    chunk = 14
    det = StreamingQrsDetector(fs)
    py = Beats.concat([det.push(x[i:i + chunk]) for i in range(0, x.size, chunk)] + [det.finish()], fs)
    c = _c_beats(build, x, fs, chunk)
    assert (py.flags & 2).any()
    assert_same_beats(c, py, "mitdb 100 with NaN runs")
    assert_same_beats(_python_beats(x, fs), py, "mitdb 100 with NaN runs, whole vs 40-ms chunks")


def test_flat_and_short_signals(build):
    """A flat line stays beat-free; a record shorter than the learning period still ends cleanly."""
    assert len(_c_beats(build, np.zeros(5000), 500.0)) == 0
    t = np.arange(700) / 360.0
    x = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2))
    c, py = _c_beats(build, x, 360.0), _python_beats(x, 360.0)
    assert abs(len(c) - len(py)) == 0 and np.abs(c.samples - py.samples).max(initial=0) <= 1
