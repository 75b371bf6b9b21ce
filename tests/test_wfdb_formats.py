"""Every ECG record wfdb reads, read by ecgedge as ``wfdb.rdrecord`` reads it (issue 18).

Records are written here into ``tmp_path``: with ``wfdb.wrsamp`` in the formats wfdb 4.3 writes (16, 24,
32, 80, 212 and the FLAC formats 508/516/524), and for the formats it reads but cannot write (8, 61,
160, 310, 311), and for skew, byte offsets and several samples per frame, by :func:`encode`, a
byte encoder written from the WFDB ``signal(5)`` specification with headers from ``wfdb``'s own
``Record.wrheader``. The encoder is checked against ``wfdb.wrsamp``'s bytes for the formats both
write, and every record is checked against the digital values it was made from, so "ecgedge equals
wfdb.rdrecord" compares two readers of a file that holds what we meant.

Sample-for-sample checks are exact (``assert_array_equal`` on float32: ecgedge hands out wfdb's
physical values cast to float32). Windows and stores are checked for skip-and-count: a window is
lost only when an invalid sample lies in its own span or the settling second before it.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgedge.config import DataConfig, PreprocessConfig, WindowConfig
from ecgedge.data.preprocess import preprocess_signal, window_starts
from ecgedge.data.records import find_records, read_record, record_files
from ecgedge.data.store import build_store
from ecgedge.data.windows import build_windows
from ecgedge.errors import DataNotFound

wfdb = pytest.importorskip("wfdb", reason="wfdb (the 'train' extra) reads WFDB records")

# wfdb.wrsamp calls a pandas API that pandas 3 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

# Digital range each format stores (format 8 stores differences, so a smooth signal fits any range).
RANGE = {"8": 2000, "80": 120, "508": 120, "310": 500, "311": 500, "212": 2000, "16": 30000, "61": 30000, "160": 30000,
         "24": 30000, "32": 30000, "516": 30000, "524": 30000}
WRITTEN_BY_WFDB = {"16", "24", "32", "80", "212", "508", "516", "524"}
FLAC = {"508", "516", "524"}
MV_PER_UNIT = {"mV": 1.0, "uV": 1e-3}


def digital(n: int, k: int, amplitude: int, seed: int = 0) -> np.ndarray:
    """(n, k) int64 smooth test signal within +-amplitude adu: a sine per channel plus a small random walk,
    steps below 100 adu so format 8's 8-bit differences hold it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    sig = [0.8 * amplitude * np.sin(2 * np.pi * t / (97 + 31 * j)) + np.cumsum(rng.integers(-2, 3, n)) for j in range(k)]
    return np.clip(np.round(np.stack(sig, axis=1)), -amplitude, amplitude).astype(np.int64)


def encode(samples: np.ndarray, fmt: str) -> bytes:
    """Interleaved samples (frame-major, 1-D int) as a WFDB ``fmt`` data file body (``signal(5)``)."""
    s = np.asarray(samples, dtype=np.int64)
    if fmt == "8":   # first differences, from encode_frames
        return s.astype("i1").tobytes()
    if fmt == "16":
        return s.astype("<i2").tobytes()
    if fmt == "61":
        return s.astype(">i2").tobytes()
    if fmt == "80":
        return (s + 128).astype("u1").tobytes()
    if fmt == "160":
        return (s + 32768).astype("<u2").tobytes()
    if fmt == "24":
        return s.astype("<i4").view("u1").reshape(-1, 4)[:, :3].tobytes()
    if fmt == "32":
        return s.astype("<i4").tobytes()
    if fmt == "212":   # two 12-bit samples in three bytes
        s = np.concatenate([s, np.zeros(len(s) % 2, np.int64)]) & 0xFFF
        a, b = s[0::2], s[1::2]
        return np.stack([a & 0xFF, (a >> 8) | ((b >> 8) << 4), b & 0xFF], axis=1).astype("u1").tobytes()
    if fmt in ("310", "311"):   # three 10-bit samples in four bytes
        s = np.concatenate([s, np.zeros(-len(s) % 3, np.int64)]) & 0x3FF
        a, b, c = s[0::3], s[1::3], s[2::3]
        if fmt == "311":
            return (a | (b << 10) | (c << 20)).astype("<u4").tobytes()
        w0, w1 = (a << 1) | ((c & 0x1F) << 11), (b << 1) | ((c >> 5) << 11)
        return np.stack([w0, w1], axis=1).astype("<u2").tobytes()
    raise ValueError(fmt)


def encode_frames(d: np.ndarray, fmt: str, spf=None, skew=None) -> bytes:
    """Channels (list of 1-D int arrays, ``spf[j]`` samples per frame each) interleaved frame by frame.
    Format 8 stores each channel's first differences (its first sample is the header's initial value).
    A channel with ``skew[j] = s`` is stored ``s`` frames late (its first ``s`` stored frames are filler)."""
    chans = [np.asarray(c, dtype=np.int64) for c in d]
    spf = spf or [1] * len(chans)
    skew = skew or [0] * len(chans)
    n_frames = max(len(c) // f for c, f in zip(chans, spf)) + max(skew)
    stored = []
    for c, f, s in zip(chans, spf, skew):
        c = np.concatenate([np.full(s * f, c[0]), c, np.full((n_frames - s) * f - len(c), c[-1])])
        stored.append(c.reshape(n_frames, f))
    if fmt == "8":
        stored = [np.diff(c.reshape(-1), prepend=c.reshape(-1)[0]).reshape(c.shape) for c in stored]
    return encode(np.concatenate(stored, axis=1).reshape(-1), fmt)


def wrheader(folder: Path, name: str, fmt: str, names, units, gains, baselines, n: int, fs: float, d0,
             spf=None, skew=None, byte_offset=0) -> Path:
    """A single-file header written by ``wfdb``'s ``Record.wrheader``."""
    k = len(names)
    rec = wfdb.Record(record_name=name, n_sig=k, fs=fs, sig_len=n, file_name=[f"{name}.dat"] * k, fmt=[fmt] * k,
                      samps_per_frame=spf or [1] * k, skew=skew or [0] * k, byte_offset=[byte_offset] * k,
                      adc_gain=list(map(float, gains)), baseline=list(baselines), units=list(units), sig_name=list(names),
                      adc_res=[0] * k, adc_zero=[0] * k, init_value=[int(v) for v in d0], checksum=[0] * k, block_size=[0] * k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec.wrheader(write_dir=str(folder))
    return folder / f"{name}.hea"


def assert_reads_as_wfdb(hea: Path, leads=None, **rd) -> None:
    """ecgedge's signal is wfdb.rdrecord's physical signal (the ECG channels, converted to mV), sample for sample."""
    rec = read_record(hea)
    theirs = wfdb.rdrecord(str(hea.with_suffix("")), **rd)
    cols = [theirs.sig_name.index(n) for n in (leads or rec.lead_names)]
    mv_per_unit = np.array([MV_PER_UNIT[theirs.units[c]] for c in cols])
    np.testing.assert_array_equal(rec.signal, (theirs.p_signal[:, cols].T * mv_per_unit[:, None]).astype(np.float32))


# ------------------------------------------------------------------------------- storage formats

def test_the_encoder_writes_what_wfdb_writes(tmp_path):
    """The byte encoder agrees with wfdb.wrsamp for every format both write (so it can be trusted for the others)."""
    d = digital(600, 2, 100)
    for fmt in ("16", "24", "32", "80", "212"):
        wfdb.wrsamp(f"w{fmt}", fs=250, units=["mV", "mV"], sig_name=["II", "V5"], d_signal=d, fmt=[fmt] * 2,
                    adc_gain=[200.0] * 2, baseline=[0] * 2, write_dir=str(tmp_path))
        assert (tmp_path / f"w{fmt}.dat").read_bytes() == encode_frames(d.T, fmt), fmt


@pytest.mark.parametrize("fmt", ["8", "16", "24", "32", "61", "80", "160", "212", "310", "311", "508", "516", "524"])
def test_every_storage_format_reads_as_wfdb_reads_it(tmp_path, fmt):
    """Two ECG leads (II in mV with a baseline, V5 in µV) in each format: ecgedge's mV equal wfdb's
    physical values exactly, and those are the digital values written, over gain, minus baseline."""
    if fmt in FLAC:
        pytest.importorskip("soundfile", reason="wfdb reads and writes the FLAC formats through soundfile")
    d = digital(600, 2, RANGE[fmt], seed=int(fmt))
    gains, baselines, units = [200.0, 0.2], [7, -3], ["mV", "uV"]
    if fmt in WRITTEN_BY_WFDB:
        wfdb.wrsamp(f"r{fmt}", fs=250, units=units, sig_name=["II", "V5"], d_signal=d, fmt=[fmt] * 2, adc_gain=gains,
                    baseline=baselines, write_dir=str(tmp_path))
        hea = tmp_path / f"r{fmt}.hea"
    else:
        (tmp_path / f"r{fmt}.dat").write_bytes(encode_frames(d.T, fmt))
        hea = wrheader(tmp_path, f"r{fmt}", fmt, ["II", "V5"], units, gains, baselines, 600, 250.0, d[0])
    assert f" {fmt}" in hea.read_text().splitlines()[1]
    rec = read_record(hea)
    assert rec.lead_names == ("II", "V5") and rec.fs == 250.0 and rec.ignored_channels == ()
    assert_reads_as_wfdb(hea)
    expected = (d - np.array(baselines)) / np.array(gains) * np.array([1.0, 1e-3])
    np.testing.assert_allclose(rec.signal, expected.T, rtol=1e-6, atol=1e-9)


def test_skew_and_byte_offset(tmp_path):
    """A 24-byte prefix before the samples (``16+24``) and lead V5 stored 5 frames late (skew 5):
    read aligned, as wfdb reads them, and the file's extra skewed frames are no "longer than its header".
    wfdb reads a record's length in frames, so V5's last 5 samples, stored past it, are invalid (NaN)."""
    d = digital(700, 2, 3000)
    body = encode_frames(d.T, "16", skew=[0, 5])
    (tmp_path / "sk.dat").write_bytes(b"\xa5" * 24 + body)
    hea = wrheader(tmp_path, "sk", "16", ["II", "V5"], ["mV", "mV"], [200, 200], [0, 0], 700, 250.0, d[0], skew=[0, 5], byte_offset=24)
    assert ":5+24" in hea.read_text()   # skew 5, byte offset 24
    assert_reads_as_wfdb(hea)
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal[0], d[:, 0] / 200.0, rtol=1e-6)
    np.testing.assert_allclose(rec.signal[1, :695], d[:695, 1] / 200.0, rtol=1e-6)
    assert np.isnan(rec.signal[1, 695:]).all()


def test_samples_per_frame(tmp_path):
    """Lead II at 4 samples per frame beside ABP at 1 (frame rate 125 Hz): lead II is read at 500 Hz,
    sample for sample as wfdb's expanded signal, and ABP is left out. Two leads at 2 and 1 samples
    per frame are averaged to the frame rate, as wfdb's ``smooth_frames``."""
    ii, abp = digital(2000, 1, 3000)[:, 0], digital(500, 1, 3000, seed=1)[:, 0]
    (tmp_path / "spf.dat").write_bytes(encode_frames([ii, abp], "16", spf=[4, 1]))
    hea = wrheader(tmp_path, "spf", "16", ["II", "ABP"], ["mV", "mmHg"], [200, 10], [0, 0], 500, 125.0, [ii[0], abp[0]], spf=[4, 1])
    rec = read_record(hea)
    assert rec.fs == 500.0 and rec.lead_names == ("II",) and rec.ignored_channels == ("ABP (mmHg)",)
    theirs = wfdb.rdrecord(str(tmp_path / "spf"), smooth_frames=False)
    np.testing.assert_array_equal(rec.signal[0], theirs.e_p_signal[0].astype(np.float32))
    np.testing.assert_allclose(rec.signal[0], ii / 200.0, rtol=1e-6)

    v5 = digital(500, 1, 3000, seed=2)[:, 0]
    (tmp_path / "mixed.dat").write_bytes(encode_frames([ii[:1000], v5], "16", spf=[2, 1]))
    hea = wrheader(tmp_path, "mixed", "16", ["II", "V5"], ["mV", "mV"], [200, 200], [0, 0], 500, 125.0, [ii[0], v5[0]], spf=[2, 1])
    rec = read_record(hea)
    assert rec.fs == 125.0 and rec.signal.shape == (2, 500)
    assert_reads_as_wfdb(hea)   # wfdb.rdrecord's default: smooth_frames=True


# ----------------------------------------------------------------------------- other channels

def icu_record(folder: Path, name: str, seconds: float = 40.0, fs: float = 250.0, nan_run=None) -> tuple[Path, np.ndarray]:
    """An ICU-style record: II and V (mV) beside ABP (mmHg), PLETH (NU) and RESP (Ohm), format 16.
    ``nan_run`` = (first, last) samples of lead II written as invalid. Returns the header and the mV of II, V."""
    folder.mkdir(parents=True, exist_ok=True)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    ecg = np.stack([np.sin(2 * np.pi * 1.2 * t) ** 15 * 1.5 - 0.2, 0.4 * np.sin(2 * np.pi * 1.2 * t + 1)], axis=1)
    p = np.concatenate([ecg, 90 + 30 * np.sin(2 * np.pi * 1.2 * t)[:, None], 0.5 + 0.3 * np.sin(2 * np.pi * t)[:, None],
                        0.1 * np.sin(2 * np.pi * 0.25 * t)[:, None]], axis=1)
    if nan_run:
        p[nan_run[0]:nan_run[1] + 1, 0] = np.nan
    wfdb.wrsamp(name, fs=fs, units=["mV", "mV", "mmHg", "NU", "Ohm"], sig_name=["II", "V", "ABP", "PLETH", "RESP"], p_signal=p,
                fmt=["16"] * 5, adc_gain=[1000.0, 1000.0, 100.0, 1000.0, 1000.0], baseline=[0] * 5, write_dir=str(folder))
    return folder / f"{name}.hea", p[:, :2].T


def test_ecg_beside_abp_pleth_and_resp(tmp_path):
    """The ECG leads are read (as wfdb reads them); ABP, PLETH and RESP are left out and named, in the
    record and in the data summary, instead of refusing the record for their units."""
    hea, _ = icu_record(tmp_path / "icu", "icu1")
    icu_record(tmp_path / "icu", "icu2")
    rec = read_record(hea)
    assert rec.lead_names == ("II", "V") and rec.ignored_channels == ("ABP (mmHg)", "PLETH (NU)", "RESP (Ohm)")
    assert_reads_as_wfdb(hea)
    ws = build_windows(DataConfig(paths=(str(tmp_path / "icu"),), cache_dir=str(tmp_path / "cache"), workers=1), ("II",),
                       PreprocessConfig(), WindowConfig(hop=1024), progress=False)
    assert set(ws.summary.used) == {"icu1", "icu2"} and not ws.summary.skipped
    assert ws.summary.ignored_channels == {"ABP (mmHg)": 2, "PLETH (NU)": 2, "RESP (Ohm)": 2}
    assert "ignored channels: ABP (mmHg) x2, PLETH (NU) x2, RESP (Ohm) x2" in ws.summary.describe()


# ------------------------------------------------------------------------ invalid samples, windows

W, HOP = 2048, 256


def _windows(paths, tmp_path, leads=("II",), hop=HOP, max_per_record=0):
    data = DataConfig(paths=tuple(map(str, paths)), cache_dir=str(tmp_path / "cache"), workers=1)
    return build_windows(data, leads, PreprocessConfig(), WindowConfig(samples=W, hop=hop, max_per_record=max_per_record), progress=False)


def test_nan_runs_cost_only_the_windows_they_touch(tmp_path):
    """A 60-s record at 360 Hz (resampled to 250 Hz) with 2 s of invalid samples in lead II:
    - windows whose span or settling second reaches the run are skipped and counted with the sample range;
    - every other window survives, and those before the run equal the clean record's bit for bit
      (the chain is causal); those after it are within 0.05 mV of the clean record's;
    - a record whose every window touches invalid samples is skipped, naming them;
    - invalid samples in a lead the job does not use cost nothing."""
    fs = 360.0
    run = (10800, 11519)   # 30.0-31.997 s
    folder = tmp_path / "d"
    icu_record(folder, "clean", 60.0, fs)
    _, mv = icu_record(folder, "holes", 60.0, fs, nan_run=run)
    icu_record(folder, "short", 12.0, fs, nan_run=(1800, 1900))
    x = np.nan_to_num(mv)
    x[1, 5:50] = np.nan
    wfdb.wrsamp("other_lead", fs=fs, units=["mV", "mV"], sig_name=["II", "V"], p_signal=x.T, fmt=["16"] * 2,
                adc_gain=[1000.0] * 2, baseline=[0] * 2, write_dir=str(folder))
    ws = _windows([folder], tmp_path)
    s = ws.summary
    assert set(s.used) == {"clean", "holes", "other_lead"}
    assert s.skipped["short"] == "every window touches invalid samples: NaN in lead II at samples 1800-1900 (5.000-5.278 s)"

    all_starts = window_starts(15000, W, HOP, 250)   # 60 s at 250 Hz
    t0, t1 = run[0] / fs, (run[1] + 1) / fs
    fir_s = 0.1   # the 360 -> 250 Hz resampler reads 29 input samples (0.08 s) back: a window may start that much later
    expected = [st for st in all_starts if (st + W) / 250 <= t0 or (st - 250) / 250 >= t1 + fir_s]
    holes = ws.window_start[ws.window_record == ws.record_ids.index("holes")].tolist()
    touching = [st for st in all_starts if not ((st + W) / 250 <= t0 or (st - 250) / 250 >= t1)]
    assert set(expected) <= set(holes) and not set(touching) & set(holes)
    lost = len(all_starts) - len(holes)
    assert s.used["holes"] == len(holes) and s.used["clean"] == s.used["other_lead"] == len(all_starts)
    assert s.windows_skipped == {"holes": f"{lost} of {len(all_starts)} windows: NaN in lead II at samples 10800-11519 (30.000-31.997 s)"}
    assert f"windows skipped {lost} in 1 record(s)" in s.describe()

    clean = ws.windows[ws.window_record == ws.record_ids.index("clean")]
    holed = ws.windows[ws.window_record == ws.record_ids.index("holes")]
    by_start = dict(zip(all_starts, clean))
    for st, w in zip(holes, holed):
        if (st + W) / 250 <= t0:
            np.testing.assert_array_equal(w, by_start[st])
        else:
            np.testing.assert_allclose(w, by_start[st], atol=0.05)


def test_max_per_record_counts_clean_windows(tmp_path):
    """With a cap, the most recent *usable* windows are kept (an invalid stretch at the end does not empty the record)."""
    _, mv = icu_record(tmp_path / "d", "tail", 60.0, 250.0, nan_run=(14000, 14999))
    ws = _windows([tmp_path / "d"], tmp_path, max_per_record=3)
    starts = ws.window_start.tolist()
    assert len(starts) == 3 and all(st + W <= 14000 for st in starts)
    # 50 windows end at 60 s stepping back 256 samples; the last 4 reach samples 14000-14999
    assert ws.summary.windows_skipped["tail"] == "4 of 50 windows: NaN in lead II at samples 14000-14999 (56.000-59.996 s)"


def multi_segment(folder: Path) -> Path:
    """A MIMIC-style multi-segment record at 250 Hz with a layout segment: II throughout; ABP in the
    first segment only; V5 in the last only; a 5-s gap (``~``) between them. Segments are written by
    wfdb.wrsamp; the master and layout headers are WFDB header text (wfdb 4.3 cannot write them)::

        ms/4 3 250 16250            ms_layout 3 250 0
        ms_layout 0                 ~ 0 200/mV 16 0 0 0 0 II
        ms_0001 7500                ~ 0 200/mmHg 16 0 0 0 0 ABP
        ~ 1250                      ~ 0 200/mV 16 0 0 0 0 V5
        ms_0002 7500
    """
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(7500) / 250.0
    ecg = np.sin(2 * np.pi * 1.1 * t) ** 15 * 1.2
    wfdb.wrsamp("ms_0001", fs=250, units=["mV", "mmHg"], sig_name=["II", "ABP"], p_signal=np.stack([ecg, 80 + 20 * np.sin(t)], 1),
                fmt=["16"] * 2, adc_gain=[200.0, 20.0], baseline=[0, 0], write_dir=str(folder))
    wfdb.wrsamp("ms_0002", fs=250, units=["mV", "mV"], sig_name=["II", "V5"], p_signal=np.stack([ecg, 0.5 * ecg], 1),
                fmt=["16"] * 2, adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(folder))
    (folder / "ms_layout.hea").write_text("ms_layout 3 250 0\n~ 0 200/mV 16 0 0 0 0 II\n~ 0 200/mmHg 16 0 0 0 0 ABP\n"
                                          "~ 0 200/mV 16 0 0 0 0 V5\n")
    (folder / "ms.hea").write_text("ms/4 3 250 16250\nms_layout 0\nms_0001 7500\n~ 1250\nms_0002 7500\n#Dx: 426783006\n")
    return folder / "ms.hea"


def test_multi_segment_record_is_one_recording(tmp_path):
    """Read as wfdb.rdrecord(m2s=True) reads it: one recording, II and V5 with NaN where a segment
    lacks them, ABP left out; listed once (its segment and layout headers are no records); the cache
    key covers every segment file; windows skip the gap and the segment without V5."""
    hea = multi_segment(tmp_path / "ms")
    rec = read_record(hea)
    assert rec.lead_names == ("II", "V5") and rec.ignored_channels == ("ABP (mmHg)",) and rec.labels == ("426783006",)
    assert rec.signal.shape == (2, 16250) and rec.fs == 250.0
    assert_reads_as_wfdb(hea)
    assert np.isnan(rec.signal[0]).sum() == 1250 and np.isnan(rec.signal[1]).sum() == 8750
    assert [r.record_id for r in find_records([tmp_path / "ms"])] == ["ms"]
    files = {p.name for p in record_files(hea)}
    assert {"ms.hea", "ms_layout.hea", "ms_0001.hea", "ms_0001.dat", "ms_0002.hea", "ms_0002.dat"} <= files

    ws = _windows([tmp_path / "ms"], tmp_path, hop=512)
    all_starts = window_starts(16250, W, 512, 250)
    ok = [st for st in all_starts if st + W <= 7500 or st - 250 - 1 >= 8750]
    assert ws.window_start.tolist() == ok and ws.summary.used == {"ms": len(ok)}
    assert ws.summary.windows_skipped["ms"] == (f"{len(all_starts) - len(ok)} of {len(all_starts)} windows: "
                                                "NaN in lead II at samples 7500-8749 (30.000-34.996 s)")
    assert ws.summary.ignored_channels == {"ABP (mmHg)": 1}
    both = _windows([tmp_path / "ms"], tmp_path, leads=("II", "V5"), hop=512)
    assert both.window_start.tolist() == [st for st in all_starts if st - 250 - 1 >= 8750]


def test_store_counts_what_build_windows_counts(tmp_path):
    """A store of records with invalid samples and other channels holds the windows build_windows gives,
    and its manifest and summary carry the lost windows and the ignored channels."""
    multi_segment(tmp_path / "d")
    icu_record(tmp_path / "d", "icu", 40.0, 360.0, nan_run=(5000, 5100))
    data = DataConfig(paths=(str(tmp_path / "d"),), cache_dir=str(tmp_path / "cache"), workers=1)
    window = WindowConfig(samples=W, hop=512)
    store = build_store(data, tmp_path / "store", ("II",), window=window, shard_windows=16, progress=False)
    ws = build_windows(data, ("II",), PreprocessConfig(), window, progress=False)
    assert store.record_ids == ws.record_ids == ["icu", "ms"]
    assert np.array_equal(store.index["start"], ws.window_start) and np.array_equal(store[:], np.asarray(ws.windows))
    assert not np.isnan(store[:]).any()
    assert store.summary.windows_skipped == ws.summary.windows_skipped and set(ws.summary.windows_skipped) == {"icu", "ms"}
    assert store.manifest["ignored_channels"] == ws.summary.ignored_channels == {"ABP (mmHg)": 2, "PLETH (NU)": 1, "RESP (Ohm)": 1}
    assert "ignored channels: ABP (mmHg) x2, PLETH (NU), RESP (Ohm)" in store.describe()


def test_no_usable_window_anywhere_is_data_not_found(tmp_path):
    icu_record(tmp_path / "d", "gone", 12.0, 250.0, nan_run=(0, 2999))
    with pytest.raises(DataNotFound, match="skipped     1  NaN in lead"):
        _windows([tmp_path / "d"], tmp_path)


def test_bridged_gap_is_not_a_step():
    """Why invalid stretches are bridged by a line, not held or zeroed: the band-pass after a bridged
    gap is back within 0.05 mV of the clean signal one settling second later (checked above); a
    record that starts with an invalid stretch is filled with its first valid value (no step either)."""
    from ecgedge.data.windows import _bridge_invalid
    x = np.array([[np.nan, np.nan, 1.0, 2.0, np.nan, 4.0, np.nan]])
    np.testing.assert_array_equal(_bridge_invalid(x, np.isnan(x[0])), [[1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0]])
    assert preprocess_signal(_bridge_invalid(x, np.isnan(x[0])), 250.0, PreprocessConfig()).shape == (1, 7)


@pytest.mark.data
@pytest.mark.parametrize("rid", ["100", "104", "223"])
def test_real_mitdb_records_read_as_wfdb_reads_them(shared_data, rid):
    """MIT-BIH format 212 (104 has no MLII; 223 touches the +-5.12 mV limit): every lead, sample for sample."""
    hea = shared_data / "mitdb" / f"{rid}.hea"
    if not hea.is_file():
        pytest.skip(f"{hea} not found")
    assert read_record(hea).ignored_channels == ()
    assert_reads_as_wfdb(hea)
