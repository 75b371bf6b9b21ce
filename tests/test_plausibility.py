"""Impossible inputs are refused with a reason, never passed silently: a rate too slow for the band,
an implausible amplitude (a wrong gain), a data file of the wrong size, a Latin-1 header comment
(readable, not refused), an orphan data file (counted). Records are written into tmp_path."""

from pathlib import Path

import numpy as np
import pytest

from ecgedge.config import DataConfig, PreprocessConfig, WindowConfig
from ecgedge.data.quality import rate_problem, signal_problems
from ecgedge.data.records import read_record
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.data.windows import build_windows
from ecgedge.errors import BadRecord, DataNotFound
from ecgedge.stream.monitor import BedMonitor, ModelSpec, WindowVerdict

wfdb = pytest.importorskip("wfdb", reason="wfdb (the 'train' extra) reads WFDB records")
from scipy.io import savemat  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

WINDOW = 2048


def write_wfdb(folder: Path, name: str, p_signal: np.ndarray, sig_name, *, fs=360.0, gain=200.0, fmt="16") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    k = p_signal.shape[1]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * k, sig_name=list(sig_name), p_signal=p_signal, fmt=[fmt] * k,
                adc_gain=[gain] * k, baseline=[0] * k, write_dir=str(folder))
    return folder / f"{name}.hea"


def ecg_mv(fs: float, seconds: float = 20.0, leads=("II",)) -> np.ndarray:
    """(n, leads) synthetic ECG in mV."""
    return synthesize_ecg("SR", seed=0, duration_s=seconds, fs=fs, leads=leads)[0].T.astype(np.float64)


def windows_summary(tmp_path: Path, folder: Path, leads=("II",)):
    data = DataConfig(paths=(str(folder),), cache_dir=str(tmp_path / "cache"), workers=1)
    try:
        return build_windows(data, leads, PreprocessConfig(), WindowConfig(), progress=False).summary
    except DataNotFound as exc:
        return exc


def verdicts(mon: BedMonitor, x: np.ndarray) -> list[WindowVerdict]:
    return [v for v in mon.push(x, 0) if isinstance(v, WindowVerdict)]


# 1 ----------------------------------------------------------------------------------------------------

def test_rate_below_twice_the_band_edge_is_refused_in_batch_and_stream(tmp_path):
    slow_reason = "sampling rate too low: fs 0.5 Hz is below 80 Hz, twice the 40-Hz band edge"
    assert rate_problem(0.5, 40.0) == slow_reason
    assert rate_problem(80.0, 40.0) == "" and rate_problem(250.0, PreprocessConfig().bandpass_high_hz) == ""
    # a 10-s record whose header says 0.5 Hz: 5000 samples read as 10,000 s of ECG
    write_wfdb(tmp_path / "data", "slow", ecg_mv(500.0, 10.0), ["II"], fs=0.5)
    write_wfdb(tmp_path / "data", "good", ecg_mv(360.0), ["II"])
    assert read_record(tmp_path / "data" / "slow.hea").fs == 0.5   # readable; unusable for this band
    summary = windows_summary(tmp_path, tmp_path / "data")
    assert summary.skipped == {"slow": slow_reason} and list(summary.used) == ["good"]
    assert "sampling rate too low: slow" in summary.describe()

    # a 50-Hz stream: monitored, every window unreliable with the reason, none classified
    spec = ModelSpec(("II",), ("SR", "AFIB"), PreprocessConfig(), WINDOW)
    mon = BedMonitor(0, fs_in=50.0, lead_names=("II",), model=spec)
    got = verdicts(mon, ecg_mv(500.0, 60.0).T[:, ::10])   # decimated to 50 Hz
    settled = [v for v in got if v.reason != "starting up"]
    assert settled and all(not v.reliable and v.reason == "sampling rate too low: fs 50 Hz is below 80 Hz, twice the 40-Hz band edge"
                           for v in settled)
    assert all(v.window is None for v in got)
    fine = BedMonitor(1, fs_in=250.0, lead_names=("II",), model=spec)
    assert any(v.reliable for v in verdicts(fine, ecg_mv(250.0, 20.0).T))


# 2 ----------------------------------------------------------------------------------------------------

def test_implausible_amplitude_is_flagged_in_batch_and_stream(tmp_path):
    x = ecg_mv(360.0).T                       # (1, n) mV, about 1 mV QRS
    assert signal_problems(x, 360.0, ["II"]) == []
    big = x * 1000.0
    assert signal_problems(big, 360.0, ["II"]) == [
        f"implausible amplitude: lead II reaches {big[0, np.abs(big[0]).argmax()]:.4g} mV; check the gain"]
    # flat and saturated keep their messages (checked first); 20 mV itself is still plausible
    assert signal_problems(np.full((1, 1000), 500.0), 360.0, ["II"])[0].startswith("lead II flat")
    clipped = np.clip(big, None, np.quantile(big, 0.9))
    assert signal_problems(clipped, 360.0, ["II"])[0].startswith("lead II saturated")
    assert signal_problems(x / np.abs(x).max() * 20.0, 360.0, ["II"]) == []

    # batch: the header states gain 1/mV for samples stored at 1000 adu/mV, so the QRS reaches ~1000 mV
    hea = write_wfdb(tmp_path / "gain", "gain", x.T, ["II"], gain=1000.0)
    hea.write_text(hea.read_text().replace(" 1000.0(0)/mV", " 1(0)/mV"))
    assert np.abs(read_record(hea).signal).max() > 500
    write_wfdb(tmp_path / "gain", "good", x.T, ["II"])
    summary = windows_summary(tmp_path, tmp_path / "gain")
    assert list(summary.used) == ["good"] and list(summary.skipped) == ["gain"]
    assert summary.skipped["gain"].startswith("implausible amplitude: lead II reaches ")
    assert summary.skipped["gain"].endswith(" mV; check the gain") and "implausible amplitude: gain" in summary.describe()

    # stream: a 1000x device gain
    spec = ModelSpec(("II",), ("SR", "AFIB"), PreprocessConfig(), WINDOW)
    mon = BedMonitor(0, fs_in=250.0, lead_names=("II",), model=spec)
    settled = [v for v in verdicts(mon, ecg_mv(250.0, 20.0).T * 1000.0) if v.reason != "starting up"]
    assert settled and all(not v.reliable and v.reason.startswith("implausible amplitude: lead II reaches")
                           for v in settled)


# 3 ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["16", "212", "24", "32"])
def test_data_file_larger_than_its_header_is_refused(tmp_path, fmt):
    """A header naming 8 signals for a 12-lead data file (the file holds more than the header says)."""
    hea = write_wfdb(tmp_path, "r", ecg_mv(360.0, 10.0, leads=("I", "II", "III", "aVR")), ["I", "II", "III", "aVR"], fmt=fmt)
    assert read_record(hea).signal.shape == (4, 3600)
    lines = hea.read_text().splitlines()
    hea.write_text("\n".join([lines[0].replace("r 4 ", "r 3 ", 1), *lines[1:4]]) + "\n")
    size = (tmp_path / "r.dat").stat().st_size
    need = int(np.ceil(3600 * 3 * {"16": 2, "212": 1.5, "24": 3, "32": 4}[fmt]))
    with pytest.raises(BadRecord) as err:
        read_record(hea)
    assert err.value.reason == (f"data file r.dat holds {size} bytes, the header's 3600 samples x 3 signals need {need}")


def test_mat_shape_must_match_the_header_both_ways(tmp_path):
    """A CinC-style MAT v4 file (int16 ``val``, format 16+24) with 12 rows named as 8 signals, or with more
    samples than the header states, is refused naming both shapes; the matching one reads."""
    adu = np.round(ecg_mv(500.0, 10.0, leads=("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")).T * 1000)
    savemat(tmp_path / "m.mat", {"val": adu.astype(np.int16)}, format="4")

    def header(n_sig, n_samples):
        lines = [f"m {n_sig} 500 {n_samples}"] + [f"m.mat 16+24 1000/mV 16 0 0 0 0 L{i}" for i in range(n_sig)]
        (tmp_path / "m.hea").write_text("\n".join(lines) + "\n")
        return tmp_path / "m.hea"

    assert read_record(header(12, 5000)).signal.shape == (12, 5000)
    with pytest.raises(BadRecord) as err:
        read_record(header(8, 5000))
    assert err.value.reason == "data file m.mat holds 12 signals x 5000 samples, the header states 8 signals x 5000 samples"
    with pytest.raises(BadRecord) as err:
        read_record(header(12, 4000))
    assert err.value.reason == "data file m.mat holds 12 signals x 5000 samples, the header states 12 signals x 4000 samples"
    with pytest.raises(BadRecord, match="truncated data file m.mat"):
        read_record(header(12, 6000))


# 4 ----------------------------------------------------------------------------------------------------

def test_latin1_byte_in_a_header_comment_does_not_reject_the_record(tmp_path):
    """A header comment written in Latin-1 ("Médecin" with byte 0xE9) reads, through wfdb (.dat) and
    through the direct .mat reader (a gain wfdb cannot use), with its Dx labels."""
    hea = write_wfdb(tmp_path, "dat", ecg_mv(360.0, 10.0), ["II"])
    hea.write_bytes(hea.read_bytes() + "# Médecin: Dr Zoë\n#Dx: 426783006\n".encode("latin-1"))
    rec = read_record(hea)
    assert rec.signal.shape == (1, 3600) and rec.labels == ("426783006",)

    savemat(tmp_path / "mat.mat", {"val": np.round(ecg_mv(500.0, 10.0).T * 1000).astype(np.int16)}, format="4")
    text = "mat 1 500 5000\nmat.mat 16+24 abc/mV 16 0 0 0 0 II\n# Médecin\n# Dx: 164889003\n"
    (tmp_path / "mat.hea").write_bytes(text.encode("latin-1"))
    rec = read_record(tmp_path / "mat.hea")
    assert rec.signal.shape == (1, 5000) and rec.labels == ("164889003",)
    assert np.abs(rec.signal).max() < 5   # gain 1000 adu/mV, as every CinC .mat


# 5 ----------------------------------------------------------------------------------------------------

def test_orphan_data_files_are_counted_and_named(tmp_path):
    """A .mat and a .dat without a header are named in the summary; a .dat a header names under
    another stem is no orphan."""
    from ecgedge.data.records import find_orphan_data_files

    data = tmp_path / "data"
    write_wfdb(data, "good", ecg_mv(360.0), ["II"])
    savemat(data / "lost.mat", {"val": np.zeros((1, 5000), np.int16)}, format="4")
    (data / "sub").mkdir()
    (data / "sub" / "gone.dat").write_bytes(b"\x00" * 100)
    hea = write_wfdb(data, "other", ecg_mv(360.0), ["II"])
    (data / "other.dat").rename(data / "other_sig.dat")
    hea.write_text(hea.read_text().replace("other.dat", "other_sig.dat"))

    expected = sorted(str(p) for p in (data / "lost.mat", data / "sub" / "gone.dat"))
    assert find_orphan_data_files(data) == expected
    assert find_orphan_data_files(data / "lost.mat") == [str(data / "lost.mat")]
    summary = windows_summary(tmp_path, data)
    assert summary.orphans == expected and sorted(summary.used) == ["good", "other"]
    assert "  orphan      2  data file without a header: " in summary.describe()
    assert summary.to_dict()["orphans"] == expected
    again = windows_summary(tmp_path, data)   # from the cache
    assert again.orphans == expected
