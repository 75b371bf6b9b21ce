"""``ecgedge evaluate beats``: bxb's matching on hand-built cases, the scored span, the readers (WFDB beat
codes, CPSC-2019's 1-based R peaks, the user's detections), and the command end to end.

Real data (marker ``data``, skipped where ``../shared/data`` is absent): the first 2 minutes of
``mitdb/100`` (100.hea/.dat/.atr) and 3 records of ``cpsc2019/`` (data_00147, data_00557, data_00699
with their ref/ files, copied into a temporary CPSC-2019 layout for the command). ``mitdb/104.hea``
(no .atr) is read for its header only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.io import savemat
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.data.annotations import beat_symbols, read_beat_reference
from ecgedge.data.cpsc2019 import read_cpsc2019
from ecgedge.errors import BadRecord, ConfigError, DataNotFound
from ecgedge.evaluate.beats import (
    BeatsEvalConfig,
    Detector,
    detections_xqrs,
    evaluate_beats,
    find_beat_records,
    match_beats,
    read_detections_file,
    score_beats,
    scored_span,
    summarise,
    window_samples,
)
from ecgedge.evaluate.plots import error_panels, plot_beat_record

CPSC_RECORDS = ("00147", "00557", "00699")


def pairs(ref, det, w):
    ri, di = match_beats(np.array(ref), np.array(det), w)
    return list(zip(ri.tolist(), di.tolist()))


# ---- matching -----------------------------------------------------------------------------------

def test_window_in_samples():
    assert window_samples(150, 360) == 54        # bxb: strtim(".15") at 360 Hz
    assert window_samples(75, 500) == 37         # CPSC-2019: |d| <= 37.5 samples
    assert window_samples(150, 250) == 37


def test_match_window_edges_are_inclusive():
    assert pairs([1000], [1054], 54) == [(0, 0)]
    assert pairs([1000], [946], 54) == [(0, 0)]
    assert pairs([1000], [1055], 54) == []
    assert pairs([1000], [945], 54) == []


def test_match_is_one_to_one():
    # two detections near one beat: the nearer is paired, the other is a false detection
    assert pairs([1000], [990, 1003], 54) == [(0, 1)]
    assert pairs([1000], [1000, 1000], 54) == [(0, 0)]
    # one detection between two beats: paired with the nearer, the other beat is missed
    assert pairs([1000, 1080], [1050], 54) == [(1, 0)]
    s = score_beats(np.array([1000, 1080]), np.array([1050]), 360.0, window_ms=150)
    assert (s.tp, s.fn, s.fp) == (1, 1, 0)
    s = score_beats(np.array([1000]), np.array([990, 1003]), 360.0, window_ms=150)
    assert (s.tp, s.fn, s.fp) == (1, 0, 1)
    assert s.errors_ms.tolist() == pytest.approx([3 * 1000 / 360])


def test_match_bxb_2002_case():
    """bxb.c's comment (24 November 2002): ref 96, 160; test 128, 185; window 37: both pairs match."""
    assert pairs([96, 160], [128, 185], 37) == [(0, 0), (1, 1)]


def test_match_counts_on_a_sequence():
    ref = np.arange(10) * 300 + 100
    det = np.concatenate([ref[:4] + 10, ref[5:] - 20, [1450]])   # beat 4 missed, one extra at 1450
    s = score_beats(ref, det, 360.0, window_ms=150)
    assert (s.tp, s.fn, s.fp) == (9, 1, 1)
    assert s.misses.tolist() == [1300] and s.false_detections.tolist() == [1450]
    assert s.se == pytest.approx(0.9) and s.ppv == pytest.approx(0.9) and s.f1 == pytest.approx(0.9)
    assert s.mean_abs_error_ms == pytest.approx((4 * 10 + 5 * 20) / 9 * 1000 / 360)
    assert pairs([], [5], 10) == [] and pairs([5], [], 10) == []


def test_span_counts_a_straddling_pair_by_its_reference_beat():
    ref = np.array([90, 400, 700, 1000])
    det = np.array([110, 400, 705, 995, 1040, 50])
    s = score_beats(ref, det, 100.0, window_ms=300, span=(100, 1100))
    # 90 is outside: its pair (110) is not counted although 110 is inside; 50 is an FP outside: not counted
    assert (s.tp, s.fn, s.fp) == (3, 0, 1)
    assert s.false_detections.tolist() == [1040]
    s = score_beats(ref, det, 100.0, window_ms=300, span=(0, 2000), unscored=[(650, 1100)])
    assert (s.tp, s.fn, s.fp) == (2, 0, 1)   # 700, 1000 and the detections there are not scored; 50 is false


def test_scored_span_rules():
    assert scored_span(30 * 60 * 360, 360.0) == (300 * 360, 30 * 60 * 360)     # EC57: 5-min learning, to the end
    assert scored_span(5000, 500.0) == (250, 4750)                              # short: 0.5 s each end (CPSC-2019)
    assert scored_span(5000, 500.0, learning_s=0, end_s=0) == (0, 5000)
    with pytest.raises(BadRecord, match="nothing left to score"):
        scored_span(5000, 500.0, learning_s=6, end_s=5)


def test_summary_gross_and_average():
    a = score_beats(np.array([100, 400]), np.array([100, 400]), 100.0)
    b = score_beats(np.array([100, 400, 700, 1000]), np.array([100]), 100.0)
    s = summarise([a, b])
    assert (s["gross"]["tp"], s["gross"]["fn"], s["gross"]["fp"]) == (3, 3, 0)
    assert s["gross"]["se"] == pytest.approx(0.5)
    assert s["average"]["se"] == pytest.approx((1.0 + 0.25) / 2)


# ---- readers ------------------------------------------------------------------------------------

def write_cpsc(folder: Path, rid: str, ecg: np.ndarray, r_peak_1based) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "ref").mkdir(parents=True, exist_ok=True)
    savemat(folder / "data" / f"data_{rid}.mat", {"ecg": ecg.reshape(-1, 1)})
    savemat(folder / "ref" / f"R_{rid}.mat", {"R_peak": np.asarray(r_peak_1based, dtype=np.float64).reshape(-1, 1)})
    return folder / "data" / f"data_{rid}.mat"


def test_cpsc2019_r_peaks_become_0_based(tmp_path):
    f = write_cpsc(tmp_path, "00001", np.zeros(5000), [1, 2500, 5000])
    record, beats = read_cpsc2019(f)
    assert record.signal.shape == (1, 5000) and record.fs == 500.0
    assert beats.samples.tolist() == [0, 2499, 4999]
    bad = write_cpsc(tmp_path, "00002", np.zeros(5000), [0, 2500])
    with pytest.raises(BadRecord, match="outside 1..5000"):
        read_cpsc2019(bad)
    (tmp_path / "ref" / "R_00001.mat").unlink()
    with pytest.raises(BadRecord, match="no reference file"):
        read_cpsc2019(f)


def test_wfdb_beat_codes_only(tmp_path):
    wfdb.wrsamp("rec", fs=250, units=["mV"], sig_name=["II"], p_signal=np.zeros((5000, 1)), fmt=["16"], write_dir=str(tmp_path))
    rows = [(10, "+", "(N"), (100, "N", ""), (200, "~", ""), (300, "V", ""), (350, '"', "note"), (400, "|", ""),
            (500, "[", ""), (550, "!", ""), (600, "]", ""), (700, "/", ""), (800, "Q", "")]
    wfdb.wrann("rec", "atr", sample=np.array([r[0] for r in rows]), symbol=[r[1] for r in rows],
               aux_note=[r[2] for r in rows], fs=250, write_dir=str(tmp_path))
    ref = read_beat_reference(tmp_path / "rec")
    assert ref.samples.tolist() == [100, 300, 550, 700, 800]
    assert ref.symbols == ("N", "V", "!", "/", "Q")
    assert ref.unscored == ((500, 600),)
    assert {"N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?"} <= beat_symbols()
    assert not {"+", "~", "|", '"', "[", "]"} & beat_symbols()
    with pytest.raises(BadRecord, match="no .qrs annotation file"):
        read_beat_reference(tmp_path / "rec", "qrs")


def test_detections_files(tmp_path):
    (tmp_path / "d.csv").write_text("record,sample\n100,370\n100,10\n208,5\nempty,\n")
    got = read_detections_file(tmp_path / "d.csv")
    assert got["100"].tolist() == [10, 370] and got["208"].tolist() == [5] and got["empty"].tolist() == []
    (tmp_path / "d.json").write_text(json.dumps({"data_00001": [3, 1]}))
    assert read_detections_file(tmp_path / "d.json")["data_00001"].tolist() == [1, 3]
    (tmp_path / "bad.csv").write_text("rec,pos\n1,2\n")
    with pytest.raises(ConfigError, match="record,sample"):
        read_detections_file(tmp_path / "bad.csv")


def test_find_records_layouts_and_problems(tmp_path):
    write_cpsc(tmp_path / "cpsc", "00001", np.zeros(5000), [100])
    (tmp_path / "notes.txt").write_text("x")
    refs, problems = find_beat_records([tmp_path / "cpsc", tmp_path / "notes.txt", tmp_path / "absent", str(tmp_path / "*.nothing")])
    assert [(r.record_id, r.layout.value) for r in refs] == [("data_00001", "cpsc2019")]
    assert set(problems) == {str(tmp_path / "notes.txt"), str(tmp_path / "absent"), str(tmp_path / "*.nothing")}


def test_config_checks():
    with pytest.raises(ConfigError, match="one lead"):
        BeatsEvalConfig(paths=("x",), out="o", detector=Detector.xqrs, leads=("I", "II"))
    with pytest.raises(ConfigError, match="positive"):
        BeatsEvalConfig(paths=("x",), out="o", window_ms=0)
    with pytest.raises(DataNotFound):
        BeatsEvalConfig(paths=(), out="o")


def test_plot_of_a_long_record(tmp_path):
    fs, n = 100.0, 100 * 180
    ref = np.arange(50, n, 80)
    det = np.concatenate([ref[:100], ref[101:], [7000]])
    s = score_beats(ref, det, fs, span=(50, n))
    assert error_panels(np.array([10.0, 11.0, 12.0, 100.0]), 180, 1, 4.0) == [pytest.approx(9.0)]
    path = plot_beat_record(np.sin(np.arange(n) / 10), s, tmp_path / "p.png", "synthetic", panels=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- real records -------------------------------------------------------------------------------

@pytest.mark.data
def test_xqrs_on_two_minutes_of_mitdb_100(shared_data):
    """xqrs on 2 minutes of MIT-BIH 100 (MLII): every beat found (issue 23: Se 100 / +P 100 on the whole
    record); bxb's matching and ``wfdb.processing.compare_annotations`` agree on the pairs."""
    from wfdb.processing import compare_annotations

    base = str(shared_data / "mitdb" / "100")
    fs, n = 360.0, 120 * 360
    x = wfdb.rdrecord(base, sampto=n, channels=[0]).p_signal[:, 0]
    ref = read_beat_reference(base).samples
    ref = ref[ref < n]
    det = detections_xqrs(x, fs)
    s = score_beats(ref, det, fs, window_ms=150, span=scored_span(n, fs))
    assert s.tp + s.fn >= 140 and s.fn == 0 and s.fp == 0
    assert s.p95_abs_error_ms < 20
    c = compare_annotations(ref, det, window_samples(150, fs) + 1)   # its window is exclusive
    c.compare()
    full = score_beats(ref, det, fs, window_ms=150)
    assert c.tp == full.tp


@pytest.fixture
def cpsc_three(shared_data, tmp_path) -> Path:
    """3 CPSC-2019 records copied into a temporary layout folder."""
    src = shared_data / "cpsc2019"
    if not (src / "data").is_dir():
        pytest.skip(f"no CPSC-2019 records at {src}")
    dst = tmp_path / "cpsc2019"
    for sub, name in (("data", "data_{}.mat"), ("ref", "R_{}.mat")):
        (dst / sub).mkdir(parents=True)
        for rid in CPSC_RECORDS:
            shutil.copy(src / sub / name.format(rid), dst / sub / name.format(rid))
    return dst


@pytest.mark.data
def test_cpsc2019_records_read(cpsc_three):
    for rid in CPSC_RECORDS:
        record, beats = read_cpsc2019(cpsc_three / "data" / f"data_{rid}.mat")
        assert record.signal.shape == (1, 5000) and beats.n_samples == 5000
        assert 5 <= len(beats.samples) <= 40 and beats.samples.min() >= 0 and beats.samples.max() < 5000
        assert np.all(np.diff(beats.samples) > 0.2 * 500)   # no two R peaks closer than 200 ms


@pytest.mark.data
def test_cli_writes_json_markdown_and_png(cpsc_three, tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    out = tmp_path / "report"
    res = runner.invoke(app, ["evaluate", "beats", str(cpsc_three), "--detector", "xqrs", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| **gross** (3 records)" in res.output and "| data_00147 | 75 |" in res.output
    report = json.loads((out / "beats.json").read_text())
    assert report["counts"] == {"found": 3, "scored": 3, "skipped": 0}
    assert [r["window_ms"] for r in report["records"]] == [75.0] * 3
    assert all(r["scored_from_s"] == 0.5 and r["scored_to_s"] == 9.5 for r in report["records"])
    g = report["summary"]["gross"]
    assert g["tp"] + g["fn"] == sum(r["reference_beats"] for r in report["records"])
    assert g["se"] >= 0.95 and g["ppv"] >= 0.95   # measured: 49 of 50 beats, 1 false detection (xqrs)
    assert (out / "beats.md").read_text().count("| data_") == 3
    for rid in CPSC_RECORDS:
        assert (out / f"beats-data_{rid}.png").read_bytes()[:4] == b"\x89PNG"
    # the folder is the command's: a second run needs --overwrite, and a user's file stays
    (out / "notes.txt").write_text("mine")
    again = runner.invoke(app, ["evaluate", "beats", str(cpsc_three), "--detector", "xqrs", "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    again = runner.invoke(app, ["evaluate", "beats", str(cpsc_three), "--detector", "xqrs", "--out", str(out), "--overwrite",
                                "--window-ms", "150", "--no-plots"])
    assert again.exit_code == 0, again.output
    assert (out / "notes.txt").read_text() == "mine" and not list(out.glob("*.png"))
    assert json.loads((out / "beats.json").read_text())["records"][0]["window_ms"] == 150.0


@pytest.mark.data
def test_cli_user_detections_and_bad_input(cpsc_three, shared_data, tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    truth = {f"data_{rid}": read_cpsc2019(cpsc_three / "data" / f"data_{rid}.mat")[1].samples.tolist() for rid in CPSC_RECORDS[:2]}
    (tmp_path / "mine.json").write_text(json.dumps(truth))
    res = runner.invoke(app, ["evaluate", "beats", str(cpsc_three), "--detections", str(tmp_path / "mine.json"),
                              "--out", str(tmp_path / "r"), "--no-plots"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "beats.json").read_text())
    assert report["summary"]["gross"]["fn"] == report["summary"]["gross"]["fp"] == 0
    assert report["summary"]["gross"]["f1"] == 1.0
    assert report["skipped"] == {"data_00699": f"no detections for record data_00699 in {tmp_path / 'mine.json'}"}
    # no .atr: one line for the record, nothing scored, non-zero exit
    bad = runner.invoke(app, ["evaluate", "beats", str(shared_data / "mitdb" / "104"), "--detector", "xqrs", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2
    assert "skipped 104:" in bad.output and "no .atr annotation file" in bad.output and "no record scored" in bad.output
    assert not (tmp_path / "b").exists()


@pytest.mark.data
def test_ecgedge_detector_scored_by_default(cpsc_three, tmp_path):
    beats = pytest.importorskip("ecgedge.beats")
    if not hasattr(beats, "detect_beats"):
        pytest.skip("ecgedge.beats has no detect_beats yet")
    res = evaluate_beats(BeatsEvalConfig(paths=(str(cpsc_three),), out=str(tmp_path / "r"), plots=False), log=lambda _: None)
    assert res.report["detections"] == {"kind": "detector", "detector": "ecgedge"}
    assert res.report["counts"]["scored"] == 3
    assert res.report["summary"]["gross"]["f1"] >= 0.9
    assert all("flags" in r for r in res.report["records"])
