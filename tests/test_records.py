"""Reading records: every format of ../shared/data, records written here and read back, bad records."""

import os
from pathlib import Path

import numpy as np
import pytest

from ecgedge.config import STANDARD_12_LEADS, LabelScheme
from ecgedge.data.labels import record_label
from ecgedge.data.records import (
    LabelSource, LabelTable, Record, RecordFormat, RecordRef, canonical_lead_name, find_label_tables, find_records,
    load_label_table, read_record, select_leads)
from ecgedge.errors import BadRecord, ConfigError, DataNotFound

wfdb = pytest.importorskip("wfdb", reason="wfdb (the 'train' extra) reads WFDB records")
h5py = pytest.importorskip("h5py", reason="h5py (the 'train' extra) reads SPH records")
openpyxl = pytest.importorskip("openpyxl", reason="openpyxl (the 'train' extra) reads Diagnostics.xlsx")
from scipy.io import loadmat, savemat  # noqa: E402

# wfdb.wrsamp calls a pandas API that pandas 3 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

CHAPMAN_IDS = ["JS00001", "JS00002"] + [f"JS{i:05d}" for i in range(4, 12)]


# ------------------------------------------------------------------------------------------ helpers

def sines(n_leads: int, n: int, fs: float, amp_mv: float = 1.0) -> np.ndarray:
    """(n, n_leads) smooth test signal in mV: a different frequency per lead."""
    t = np.arange(n) / fs
    return np.stack([amp_mv * np.sin(2 * np.pi * (1.0 + 0.3 * i) * t) for i in range(n_leads)], axis=1)


def write_wfdb(folder: Path, name: str, p_signal: np.ndarray, sig_name, *, fs=360.0, fmt="16", gain=200.0,
               units="mV", comments=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    k = p_signal.shape[1]
    wfdb.wrsamp(name, fs=fs, units=[units] * k, sig_name=list(sig_name), p_signal=p_signal, fmt=[fmt] * k,
                adc_gain=[gain] * k, baseline=[0] * k, comments=list(comments), write_dir=str(folder))
    return folder / f"{name}.hea"


def write_cinc_mat(folder: Path, name: str, adu: np.ndarray, *, gain="1000/mV", date=" 12-May-2020 12:33:59",
                   names=None, comments=("Dx: 426783006",)) -> Path:
    """A CinC-style record: int16 ``val`` in a MAT v4 file (24-byte header, so format 16+24) and its header."""
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / f"{name}.mat", {"val": adu.astype(np.int16)}, format="4")
    names = names or STANDARD_12_LEADS[:adu.shape[0]]
    lines = [f"{name} {adu.shape[0]} 500 {adu.shape[1]}{date}"]
    lines += [f"{name}.mat 16+24 {gain} 16 0 {adu[i, 0]} 0 0 {n}" for i, n in enumerate(names)]
    lines += [f"#{c}" for c in comments]
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")
    return folder / f"{name}.hea"


def adu_test_signal(n_sig=3, n=2500, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(scale=400, size=(n_sig, n))).astype(np.int16)


def write_csv(path: Path, uv: np.ndarray, header=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] if header else []
    lines += [",".join(f"{v:.3f}" for v in row) for row in uv.T]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_diagnostics(path: Path, rows) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["FileName", "Rhythm", "Beat", "PatientAge"])
    for row in rows:
        ws.append(list(row))
    wb.save(path)
    return path


def write_h5(path: Path, mv: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("ecg", data=mv.astype(np.float16))
    return path


# ------------------------------------------------------------------------------- written, then read

def test_wfdb_format16_round_trip(tmp_path):
    """Values come back within half a quantisation step (1/200 mV at 200 adu/mV); names canonical; #Dx labels."""
    x = sines(3, 3600, 360.0)
    hea = write_wfdb(tmp_path, "rt16", x, ["I", "II", "AVR"], comments=["Age: 50", "Dx: 426177001,164934002"])
    rec = read_record(hea)
    assert rec.record_id == "rt16" and rec.source == str(hea)
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (3, 3600)
    assert rec.fs == 360.0 and rec.duration_s == 10.0
    assert rec.lead_names == ("I", "II", "aVR")
    np.testing.assert_allclose(rec.signal, x.T, atol=0.5 / 200 + 1e-6)
    assert rec.labels == ("426177001", "164934002") and rec.label_source == "snomed"


def test_wfdb_format212_in_microvolts(tmp_path):
    """MIT-BIH format 212 with units uV: read in mV (1 adu = 1 µV, so within 0.5 µV)."""
    x_uv = sines(2, 2000, 360.0, amp_mv=1500.0)
    hea = write_wfdb(tmp_path, "rt212", x_uv, ["MLII", "V1"], fmt="212", gain=1.0, units="uV")
    assert " 212 " in hea.read_text()
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal, x_uv.T / 1000.0, atol=0.0005 + 1e-6)
    assert np.abs(rec.signal).max() == pytest.approx(1.5, abs=0.01)
    np.testing.assert_array_equal(select_leads(rec, ["II"]), rec.signal[[0]])
    assert rec.labels == () and rec.label_source == "none"


@pytest.mark.parametrize("comment_prefix", ["#Dx:", "# Dx:", "#Dx :", "#  dx:"])
def test_dx_comment_spellings(tmp_path, comment_prefix):
    hea = write_wfdb(tmp_path, "dx", sines(1, 500, 250.0), ["II"], fs=250.0)
    hea.write_text(hea.read_text() + f"{comment_prefix} 164889003, 59118001\n")
    assert read_record(hea).labels == ("164889003", "59118001")


def test_read_record_accepts_paths_without_extension_and_data_files(tmp_path):
    hea = write_wfdb(tmp_path, "p", sines(1, 500, 250.0), ["II"], fs=250.0)
    for path in (tmp_path / "p", tmp_path / "p.dat", str(hea), RecordRef(str(hea), "wfdb", "p")):
        assert read_record(path).record_id == "p"


def test_cinc_mat_with_standard_header_goes_through_wfdb(tmp_path):
    adu = adu_test_signal()
    hea = write_cinc_mat(tmp_path, "ok", adu, gain="500/mV")
    assert wfdb.rdrecord(str(tmp_path / "ok")).p_signal.shape == (2500, 3)
    np.testing.assert_allclose(read_record(hea).signal, adu / 500.0, rtol=1e-6)


@pytest.mark.parametrize("date, gain, mv_per_adu", [
    (" 2014-05-08 05:05:15", "1000/mV", 1 / 1000),   # CinC 2017's ISO date: wfdb.rdrecord raises
    (" 2014-05-08 05:05:15", "500/mV", 1 / 500),     # ... the header's gain is still used when it is a number
    (" 12-May-2020 12:33:59", "abc/mV", 1 / 1000),   # a gain that is not a number: CinC's 1000/mV
    (" 12-May-2020 12:33:59", "0/mV", 1 / 1000),     # zero gain: wfdb would use WFDB's 200/mV
    ("", "/mV", 1 / 1000),                           # empty gain
    ("", "1000(x)/mV", 1 / 1000),                    # a garbled baseline
])
def test_broken_cinc_header_falls_back_to_the_mat_file(tmp_path, date, gain, mv_per_adu):
    adu = adu_test_signal()
    hea = write_cinc_mat(tmp_path, "quirk", adu, gain=gain, date=date)
    if "2014" in date:
        with pytest.raises(ValueError):   # the quirk is real: wfdb cannot parse the header
            wfdb.rdrecord(str(tmp_path / "quirk"))
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal, adu * mv_per_adu, rtol=1e-6)
    assert rec.lead_names == ("I", "II", "III") and rec.fs == 500.0 and rec.labels == ("426783006",)


def test_cinc2017_layout_labels_from_reference_csv(tmp_path):
    folder = tmp_path / "validation"
    for i, letter in enumerate("NA~", 1):
        write_cinc_mat(folder, f"A{i:05d}", adu_test_signal(1, 900, i), date=" 2014-05-08 05:05:15", names=["ECG"], comments=())
    (folder / "REFERENCE.csv").write_text("A00001,N\nA00002,A\nA00003,~\n")
    refs = find_records([folder])
    assert [r.record_id for r in refs] == ["A00001", "A00002", "A00003"]
    recs = [read_record(r) for r in refs]
    assert [r.labels for r in recs] == [("N",), ("A",), ("~",)]
    assert {r.label_source for r in recs} == {LabelSource.cinc2017}
    assert [record_label(r, LabelScheme.cinc2017) for r in recs] == ["N", "A", "~"]


def test_chapman_csv_with_and_without_header_and_diagnostics(tmp_path):
    """figshare layout: ECGData (header row, µV), ECGDataDenoised (no header), Diagnostics.xlsx beside them."""
    uv = sines(12, 5000, 500.0, amp_mv=800.0).T   # µV
    header = [n.upper() for n in STANDARD_12_LEADS]   # AVR, AVL, AVF as some exports spell them
    raw = write_csv(tmp_path / "ECGData" / "MUSE_20180113_171327_27000.csv", uv, header)
    den = write_csv(tmp_path / "ECGDataDenoised" / "MUSE_20180112_073319_29000.csv", uv)
    diag = write_diagnostics(tmp_path / "Diagnostics.xlsx", [
        ("MUSE_20180113_171327_27000", "AFIB", "RBBB TWC", 85),
        ("MUSE_20180112_073319_29000", "SB", "TWC", 59),
        ("MUSE_20180111_165520_97000", "SA", "NONE", 40),
    ])
    table = load_label_table(diag)
    assert table.source == LabelSource.chapman and len(table) == 6
    assert table["JS00001"] == table["MUSE_20180113_171327_27000"] == ("AFIB",)
    assert table["JS00003"] == ("SA",) and "JS00004" not in table

    refs = find_records([tmp_path])
    assert [(r.record_id, r.format) for r in refs] == [
        ("MUSE_20180112_073319_29000", RecordFormat.chapman_csv), ("MUSE_20180113_171327_27000", RecordFormat.chapman_csv)]
    for path, rhythm in ((raw, "AFIB"), (den, "SB")):
        rec = read_record(path)
        assert rec.lead_names == STANDARD_12_LEADS and rec.fs == 500.0 and rec.signal.shape == (12, 5000)
        np.testing.assert_allclose(rec.signal, uv / 1000.0, atol=1e-6)   # µV -> mV (CSV keeps 0.001 µV)
        assert rec.labels == (rhythm,) and rec.label_source == "chapman"   # Diagnostics.xlsx found one folder up
        assert record_label(rec, LabelScheme.chapman4) == {"AFIB": "AFIB", "SB": "SB"}[rhythm]
    assert find_label_tables([tmp_path / "ECGData"]) == [diag]


def test_csv_detection_outside_chapman_folders(tmp_path):
    uv = sines(12, 100, 500.0, amp_mv=500.0).T
    write_csv(tmp_path / "named.csv", uv, STANDARD_12_LEADS)
    write_csv(tmp_path / "numbers.csv", uv)
    write_csv(tmp_path / "results.csv", uv[:3], ["a", "b", "c"])      # not a record
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\n")              # a label table
    (tmp_path / "metadata.csv").write_text("ECG_ID,SNOMEDCTCode\n")    # a label table
    assert [r.record_id for r in find_records([tmp_path])] == ["named", "numbers"]


def test_sph_h5_with_metadata(tmp_path):
    mv = sines(12, 1000, 250.0, amp_mv=1.2).T
    write_h5(tmp_path / "SPH00001.h5", mv)
    write_h5(tmp_path / "SPH00002.h5", mv)
    (tmp_path / "metadata.csv").write_text(
        'ECG_ID,AHA_Code,Patient_ID,Age,Sex,N,Date,fs,SNOMEDCTCode,SR\n'
        'SPH00001.h5,22;23,S00001,55,M,1000,2020-03-04,250,"426177001,427393009",0\n')
    one, two = (read_record(r) for r in find_records([tmp_path]))
    assert one.fs == 250.0 and one.lead_names == STANDARD_12_LEADS and one.signal.shape == (12, 1000)
    np.testing.assert_array_equal(one.signal, mv.astype(np.float16).astype(np.float32))
    assert one.labels == ("426177001", "427393009") and one.label_source == "snomed"
    assert record_label(one, LabelScheme.chapman11) == "SB"   # SB + SA -> SB
    assert two.fs == 500.0 and two.labels == () and two.label_source == "none"   # not in metadata.csv


def test_label_table_argument_wins_over_the_header(tmp_path):
    hea = write_wfdb(tmp_path, "JS00002", sines(1, 500, 500.0), ["II"], fs=500.0, comments=["Dx: 426177001"])
    table = LabelTable(LabelSource.chapman, {"JS00002": ("AFIB",)})
    rec = read_record(hea, label_table=table)
    assert rec.labels == ("AFIB",) and rec.label_source == "chapman"
    rec = read_record(hea, label_table=LabelTable(LabelSource.chapman, {"JS00001": ("ST",)}))
    assert rec.labels == ("426177001",) and rec.label_source == "snomed"   # table lacks the record
    ref = write_diagnostics(tmp_path / "Diagnostics.xlsx", [("A", "SR", "", 1), ("B", "ST", "", 2)])
    assert read_record(hea, label_table=ref).labels == ("ST",)   # a table given by path


# ---------------------------------------------------------------------------- finding and tables

def test_find_records_sorts_dedups_and_ignores_non_records(tmp_path):
    for name in ("b2", "a1", "c3"):
        write_wfdb(tmp_path / name[0], name, sines(1, 100, 250.0), ["II"], fs=250.0)
    (tmp_path / "a" / "a1.atr").write_bytes(b"\x00" * 8)
    (tmp_path / "notes.xlsx").write_bytes(b"")
    refs = find_records([tmp_path, tmp_path / "a", tmp_path / "b" / "b2.hea", tmp_path / "c" / "c3.dat"])
    assert [r.record_id for r in refs] == ["a1", "b2", "c3"]
    assert all(r.format == "wfdb" and r.path.endswith(".hea") and os.path.isabs(r.path) for r in refs)
    assert find_records(tmp_path / "b") == [RecordRef(str(tmp_path / "b" / "b2.hea"), "wfdb", "b2")]


def test_find_records_raises_data_not_found(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "REFERENCE.csv").write_text("A00001,N\n")
    with pytest.raises(DataNotFound, match="empty"):
        find_records([tmp_path / "empty"])
    with pytest.raises(DataNotFound, match="no such file or folder: .*nowhere"):
        find_records([tmp_path / "nowhere"])


def test_find_label_tables_looks_two_folders_up(tmp_path):
    deep = tmp_path / "l1" / "l2" / "l3"
    deep.mkdir(parents=True)
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\n")                                # 3 up: not found
    (tmp_path / "l1" / "REFERENCE.csv").write_text("A00002,A\n")                         # 2 up
    (tmp_path / "l1" / "l2" / "metadata.csv").write_text("ECG_ID,SNOMEDCTCode\nSPH00001.h5,426783006\n")
    (deep / "sub").mkdir()
    (deep / "sub" / "REFERENCE.csv").write_text("Recording,First_label,Second_label\nA0001,1,\n")   # CPSC 2018: not ours
    assert find_label_tables([deep]) == [tmp_path / "l1" / "REFERENCE.csv", tmp_path / "l1" / "l2" / "metadata.csv"]


def test_load_label_table_errors(tmp_path):
    with pytest.raises(ConfigError, match="nothing.csv"):
        load_label_table(tmp_path / "nothing.csv")
    (tmp_path / "bad.csv").write_text("A00001,N\nA00002\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_label_table(tmp_path / "bad.csv")
    (tmp_path / "wide.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ConfigError, match="not a Chapman"):
        load_label_table(tmp_path / "wide.csv")
    (tmp_path / "x.xlsx").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="unreadable workbook"):
        load_label_table(tmp_path / "x.xlsx")


# ------------------------------------------------------------------------------------- bad records

def bad_reason(path) -> str:
    with pytest.raises(BadRecord) as err:
        read_record(path)
    return str(err.value)


def test_unreadable_headers(tmp_path):
    (tmp_path / "bin.hea").write_bytes(b"\x00\x01\xff garbage\n")
    assert bad_reason(tmp_path / "bin.hea") == "bin: unreadable header bin.hea: not a text file"
    (tmp_path / "rate.hea").write_text("rate 12 abc 5000\n")
    assert bad_reason(tmp_path / "rate.hea").startswith("rate: unreadable header rate.hea: record line 'rate 12 abc 5000'")
    (tmp_path / "short.hea").write_text("short 2 500 100\nshort.dat 16 200/mV 16 0 0 0 0 I\n")
    assert bad_reason(tmp_path / "short.hea") == "short: unreadable header short.hea: 2 signals announced, 1 signal lines found"
    (tmp_path / "empty.hea").write_text("# only a comment\n")
    assert "empty: unreadable header" in bad_reason(tmp_path / "empty.hea")
    assert bad_reason(tmp_path / "absent.hea").startswith("absent: no such file")


def test_missing_data_file(tmp_path):
    hea = write_cinc_mat(tmp_path, "nomat", adu_test_signal())
    (tmp_path / "nomat.mat").unlink()
    assert bad_reason(hea) == "nomat: missing data file nomat.mat"


@pytest.mark.parametrize("date", ["", " 2014-05-08 05:05:15"])   # through wfdb, and through the fallback
def test_truncated_mat(tmp_path, date):
    hea = write_cinc_mat(tmp_path, "cut", adu_test_signal(), date=date)
    data = (tmp_path / "cut.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) // 2])
    assert bad_reason(hea) == f"cut: truncated data file cut.mat: {len(data) // 2} bytes, the header's 2500 samples x 3 signals need {len(data)}"


def test_truncated_format212(tmp_path):
    hea = write_wfdb(tmp_path, "cut212", sines(2, 3600, 360.0), ["MLII", "V5"], fmt="212")
    dat = tmp_path / "cut212.dat"
    dat.write_bytes(dat.read_bytes()[:-100])
    assert "cut212: truncated data file cut212.dat" in bad_reason(hea)


def test_nan_samples_are_kept_as_nan(tmp_path):
    """Invalid samples do not refuse a record: they come back as NaN where they are (the windowing
    skips the windows that touch them), through wfdb and through the .mat fallback."""
    x = sines(2, 1000, 250.0)
    x[100:180, 1] = np.nan   # written as WFDB's invalid sample value, read back as NaN
    rec = read_record(write_wfdb(tmp_path, "holes", x, ["I", "II"], fs=250.0))
    assert np.flatnonzero(np.isnan(rec.signal[1])).tolist() == list(range(100, 180)) and not np.isnan(rec.signal[0]).any()
    adu = adu_test_signal()
    adu[2, 10:20] = -32768   # the same in a .mat read directly (the broken-header fallback)
    rec = read_record(write_cinc_mat(tmp_path, "matholes", adu, date=" 2014-05-08 05:05:15"))
    assert np.argwhere(np.isnan(rec.signal)).tolist() == [[2, i] for i in range(10, 20)]


def test_a_record_without_ecg_leads_is_refused(tmp_path):
    """A non-voltage channel is no lead; a record of such channels only has nothing to read."""
    hea = write_wfdb(tmp_path, "temp", sines(1, 100, 250.0), ["T"], fs=250.0, units="degC")
    assert bad_reason(hea) == "temp: no ECG lead: channel(s) T (degC) are not in a voltage unit or not ECG"


def test_bad_csv_records(tmp_path):
    uv = sines(12, 50, 500.0).T
    nan = uv.copy()
    nan[3, 5] = np.nan
    rec = read_record(write_csv(tmp_path / "ECGData" / "nan.csv", nan, STANDARD_12_LEADS))   # kept, as NaN
    assert np.argwhere(np.isnan(rec.signal)).tolist() == [[3, 5]]
    ragged = write_csv(tmp_path / "ECGData" / "ragged.csv", uv, STANDARD_12_LEADS)
    ragged.write_text(ragged.read_text() + "1,2,3\n")   # a truncated last row
    assert bad_reason(ragged).startswith("ragged: malformed CSV ragged.csv")
    narrow = write_csv(tmp_path / "ECGDataDenoised" / "narrow.csv", uv[:11])
    assert bad_reason(narrow).startswith("narrow: CSV narrow.csv has 11 columns, expected 12")


def test_bad_h5_records(tmp_path):
    mv = sines(12, 500, 500.0).T
    mv[0, 7] = np.nan
    assert np.argwhere(np.isnan(read_record(write_h5(tmp_path / "nan.h5", mv)).signal)).tolist() == [[0, 7]]   # kept
    with h5py.File(tmp_path / "nokey.h5", "w") as f:
        f.create_dataset("signal", data=np.zeros((12, 10)))
    assert bad_reason(tmp_path / "nokey.h5") == "nokey: no 'ecg' dataset in nokey.h5 (has signal)"
    assert bad_reason(write_h5(tmp_path / "flip.h5", mv.T)) == "flip: 'ecg' has shape (500, 12), expected (12, n_samples)"
    (tmp_path / "junk.h5").write_bytes(os.urandom(64))
    assert bad_reason(tmp_path / "junk.h5").startswith("junk: unreadable HDF5 file junk.h5")


# ------------------------------------------------------------------------------------ select_leads

def test_select_leads():
    sig = np.arange(12 * 4, dtype=np.float32).reshape(12, 4)
    rec = Record("R9", sig, 500.0, STANDARD_12_LEADS)
    np.testing.assert_array_equal(select_leads(rec, ["V1", "ii", "AVR"]), sig[[6, 1, 3]])
    assert select_leads(rec, ["II"]).dtype == np.float32
    np.testing.assert_array_equal(select_leads(rec, ["MLII"]), sig[[1]])   # alias both ways
    mit = Record("100", sig[:2], 360.0, ("MLII", "V5"))
    np.testing.assert_array_equal(select_leads(mit, ["II", "V5"]), sig[:2])
    one = Record("A00001", sig[:1], 300.0, ("ECG",))
    np.testing.assert_array_equal(select_leads(one, ["II"]), sig[:1])    # single-lead device
    with pytest.raises(BadRecord) as err:
        select_leads(Record("R3", sig[:3], 500.0, ("I", "II", "AVR")), ["II", "V3", "V4"])
    assert str(err.value) == "R3: missing lead(s) V3, V4; record has I, II, AVR"
    with pytest.raises(BadRecord, match="missing lead"):
        select_leads(one, ["I", "II"])


def test_record_validates_its_shape():
    assert canonical_lead_name(" avf ") == "aVF" and canonical_lead_name("MLII") == "MLII"
    with pytest.raises(ValueError, match="does not match 2 lead name"):
        Record("X", np.zeros((3, 10)), 500.0, ("I", "II"))
    rec = Record("X", np.zeros((1, 10), np.float64), 500, ["I"], label_source="snomed")
    assert rec.signal.dtype == np.float32 and rec.lead_names == ("I",) and rec.label_source == LabelSource.snomed


# --------------------------------------------------------------------------------- real data (shared)

@pytest.fixture(scope="module")
def diagnostics(shared_data) -> LabelTable:
    return load_label_table(shared_data / "chapman" / "Diagnostics.xlsx")


@pytest.mark.data
def test_chapman_wfdb_records(shared_data):
    folder = shared_data / "chapman" / "WFDBRecords"
    refs = find_records([folder])
    assert [r.record_id for r in refs] == CHAPMAN_IDS
    for ref in refs:
        rec = read_record(ref)
        assert rec.signal.shape == (12, 5000) and rec.fs == 500.0 and rec.lead_names == STANDARD_12_LEADS
        ii = select_leads(rec, ["II"])[0]
        assert 0.2 < np.ptp(ii) < 10.0, f"{rec.record_id} lead II {np.ptp(ii):.2f} mV peak to peak"
        theirs = wfdb.rdrecord(ref.path[:-4]).p_signal.T
        np.testing.assert_array_equal(rec.signal, theirs.astype(np.float32))   # exactly wfdb's mV, as float32
        assert rec.label_source == "snomed" and rec.labels
    assert read_record(refs[0]).labels == ("164889003", "59118001", "164934002")


@pytest.mark.data
def test_chapman_diagnostics_xlsx(shared_data, diagnostics):
    assert diagnostics.source == LabelSource.chapman
    js = [k for k in diagnostics if k.startswith("JS")]
    muse = [k for k in diagnostics if k.startswith("MUSE_")]
    assert len(js) == len(muse) == 10_646 and "JS10646" in diagnostics and "JS10647" not in diagnostics
    assert diagnostics["JS00001"] == diagnostics["MUSE_20180113_171327_27000"] == ("AFIB",)
    assert diagnostics["JS00002"] == ("SB",) and diagnostics["JS00005"] == ("AF",)
    # Where the WFDB header names a Chapman rhythm, the table's row agrees with it.
    for ref in find_records([shared_data / "chapman" / "WFDBRecords"]):
        from_header = read_record(ref)
        from_table = read_record(ref, label_table=diagnostics)
        assert from_table.label_source == "chapman" and len(from_table.labels) == 1
        assert record_label(from_table, LabelScheme.chapman11) == record_label(from_header, LabelScheme.chapman11)
    assert find_label_tables([shared_data / "chapman" / "WFDBRecords"]) == [shared_data / "chapman" / "Diagnostics.xlsx"]


@pytest.mark.data
def test_cinc2021_all_sources(shared_data):
    root = shared_data / "cinc2021"
    refs = find_records([root])
    by_source = {}
    for ref in refs:
        by_source.setdefault(Path(ref.path).parent.name, []).append(ref)
    assert {k: len(v) for k, v in by_source.items()} == {
        "CPSC_CPSC-Extra": 20, "ChapmanShaoxing_Ningbo": 10, "G12EC": 10, "PTB_PTBXL": 20, "SPH": 10}
    assert {r.format for r in by_source["SPH"]} == {RecordFormat.sph_h5}
    for ref in refs:
        rec = read_record(ref)
        assert rec.lead_names == STANDARD_12_LEADS and rec.signal.dtype == np.float32
        if rec.record_id.startswith("S0"):   # PTB: 1000 Hz, ~115 s
            assert rec.fs == 1000.0 and rec.duration_s >= 38.4
        else:
            assert rec.fs == 500.0 and rec.duration_s >= 10.0
        assert rec.label_source == ("none" if rec.record_id == "SPH00005" else "snomed"), rec.record_id
    ptb = read_record(root / "PTB_PTBXL" / "S0002.hea")
    assert ptb.signal.shape == (12, 115_200) and ptb.labels == ("426783006",)
    sph = read_record(root / "SPH" / "SPH00001.h5")
    with h5py.File(root / "SPH" / "SPH00001.h5") as f:
        np.testing.assert_array_equal(sph.signal, f["ecg"][()].astype(np.float32))
    assert sph.labels == ("426177001", "427393009") and record_label(sph, LabelScheme.chapman4) == "SB"
    assert 0.2 < np.ptp(select_leads(sph, ["II"])) < 10.0
    assert read_record(root / "SPH" / "SPH00005.h5").labels == ()   # absent from metadata.csv
    flutter_and_fib = read_record(root / "G12EC" / "E00007.hea")    # AFIB + AF in one header
    assert record_label(flutter_and_fib, LabelScheme.chapman4) == "AFIB"
    with pytest.raises(BadRecord, match="ambiguous rhythm: AFIB \\+ AF"):
        record_label(flutter_and_fib, LabelScheme.chapman11)


@pytest.mark.data
@pytest.mark.parametrize("rid, other, n_rhythm_changes", [("100", "V5", 1), ("208", "V1", 53)])
def test_mitdb(shared_data, rid, other, n_rhythm_changes):
    rec = read_record(shared_data / "mitdb" / f"{rid}.hea", with_annotations=True)
    assert rec.fs == 360.0 and rec.signal.shape == (2, 650_000) and rec.lead_names == ("MLII", other)
    assert "212" in (shared_data / "mitdb" / f"{rid}.hea").read_text()
    np.testing.assert_array_equal(select_leads(rec, ["II"]), rec.signal[[0]])
    assert 0.2 < np.ptp(rec.signal[0, :3600]) < 10.0
    ann = rec.rhythm_annotations
    assert len(ann) == n_rhythm_changes and ann[0][1] == "N"
    assert [s for s, _ in ann] == sorted(s for s, _ in ann)
    theirs = wfdb.rdann(str(shared_data / "mitdb" / rid), "atr")
    expected = [(int(s), a.strip("(\x00")) for s, a in zip(theirs.sample, theirs.aux_note) if a.startswith("(")]
    assert list(ann) == expected
    assert read_record(shared_data / "mitdb" / f"{rid}.hea").rhythm_annotations == ()   # only when asked
    if rid == "208":
        assert {a for _, a in ann} == {"N", "T"}   # normal sinus rhythm and ventricular trigeminy
        assert record_label(rec, LabelScheme.atr) in {"N", "T"}


@pytest.mark.data
def test_cinc2017(shared_data):
    folder = shared_data / "cinc2017" / "validation"
    refs = find_records([folder])
    assert len(refs) == 30
    reference = dict(line.split(",") for line in (folder / "REFERENCE.csv").read_text().split())
    for ref in refs:
        rec = read_record(ref)   # ISO dates in these headers: read through the .mat fallback
        assert rec.fs == 300.0 and rec.lead_names == ("ECG",) and 9 <= rec.duration_s <= 61
        val = loadmat(ref.path[:-4] + ".mat")["val"]
        np.testing.assert_allclose(rec.signal, val / 1000.0, rtol=1e-6)
        assert rec.labels == (reference[rec.record_id],) and rec.label_source == "cinc2017"
        assert record_label(rec, LabelScheme.cinc2017) == reference[rec.record_id]
    assert select_leads(read_record(refs[0]), ["II"]).shape == (1, 9000)


@pytest.mark.data
def test_whole_shared_tree(shared_data):
    """The shared tree's small sub-folders, found together: every record the README lists is there
    (the tree may grow, so the counts are floors), ids sorted, label tables never taken for records.
    The 6,529-record cinc2017/training2017 is not walked here: it belongs to documented runs."""
    folders = [shared_data / "chapman", shared_data / "cinc2021", shared_data / "mitdb", shared_data / "cinc2017" / "validation"]
    refs = find_records(folders)
    ids = [r.record_id for r in refs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    expected = {"JS00001", "JS00011", "100", "208", "223"}
    assert expected <= set(ids)
    by_folder = {f.name: sum(1 for r in refs if Path(r.path).is_relative_to(f)) for f in folders}
    assert by_folder["chapman"] >= 10 and by_folder["cinc2021"] >= 60 and by_folder["mitdb"] >= 2 and by_folder["validation"] >= 30
    assert not any(Path(r.path).name in ("REFERENCE.csv", "metadata.csv") for r in refs)
    assert {p.name for p in find_label_tables(folders)} >= {"Diagnostics.xlsx", "REFERENCE.csv", "metadata.csv"}
