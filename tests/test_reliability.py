"""Faults that once lost or leaked data: export replacing a folder it does not own or dying half-way,
the window cache serving windows of data files that changed or vanished, and paths in a manifest
or a WFDB header that lead out of their folder."""

import json
import os
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import DataConfig, ExportConfig, PreprocessConfig, WindowConfig
from ecgedge.data.provenance import record_data_files
from ecgedge.data.records import read_record
from ecgedge.data.synthetic_records import write_wfdb_dataset
from ecgedge.data.windows import build_windows
from ecgedge.errors import ArtefactError, BadRecord, ConfigError
from ecgedge.export.check import check_export
from ecgedge.export.pipeline import main_export
from ecgedge.export.triton import triton_repository_from_export
from ecgedge.manifest import load_manifest

QUIET = {"progress": False, "log": lambda *_: None}


def _cfg(clf_run, out, **kw):
    # min_gate_windows: the generated set holds out a few dozen windows, fewer than the default 100
    return ExportConfig(source=str(clf_run.run_dir), out=str(out), min_gate_windows=10, **kw)


# ----------------------------------------------------------------------------- export replaces atomically

@pytest.fixture(scope="module")
def exported(clf_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability") / "clf"
    return main_export(_cfg(clf_run, out, int8=True), **QUIET)


def _copy(exported, tmp_path, name="e"):
    dst = tmp_path / name
    shutil.copytree(exported.folder, dst)
    return dst


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_export_refuses_a_folder_whose_manifest_is_not_an_ecgedge_export(clf_run, tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"name": "my shipping list"}))
    (out / "thesis.tex").write_text("years of work")
    res = CliRunner().invoke(app, ["export", str(clf_run.run_dir), "--out", str(out), "--min-gate-windows", "10", "-q"])
    assert res.exit_code == 2, res.output
    assert "not an ecgedge export" in res.output and "Traceback" not in res.output
    assert (out / "thesis.tex").read_text() == "years of work" and (out / "manifest.json").is_file()
    assert _leftovers(tmp_path) == []


def test_export_refuses_a_non_empty_folder_without_a_manifest(clf_run, tmp_path):
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(ConfigError, match="not an ecgedge export"):
        main_export(_cfg(clf_run, tmp_path), **QUIET)
    assert (tmp_path / "data.csv").read_text() == "1,2,3"


def test_interrupted_re_export_leaves_the_previous_export(exported, clf_run, tmp_path, monkeypatch):
    """Ctrl-C after the FP32 model is written (mid-export): the old export stays whole and verifiable."""
    import ecgedge.export.pipeline as pipeline

    folder = _copy(exported, tmp_path)
    before = (folder / "manifest.json").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "int8_onnx_from_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main_export(_cfg(clf_run, folder, int8=True), **QUIET)
    assert (folder / "manifest.json").read_bytes() == before
    load_manifest(folder, verify=True)
    assert _leftovers(tmp_path) == []  # no .e.partial-* build folder


def test_re_export_swaps_in_the_new_export(exported, clf_run, tmp_path):
    folder = _copy(exported, tmp_path)
    (folder / "model.int8.onnx").unlink()  # the old export as it was, damaged: replaced whole
    res = main_export(_cfg(clf_run, folder, int8=True), **QUIET)
    assert res.folder == folder and res.manifest.folder == folder
    m = load_manifest(folder, verify=True)
    assert m.data["name"] == "e" and (folder / "model.int8.onnx").is_file()
    assert _leftovers(tmp_path) == []  # neither the build folder nor the old export is left beside it


# ------------------------------------------------------------------------ manifest paths stay inside

def _edit(folder, change):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _point_fp32_at(folder, name):
    def change(m):
        m["files"][name] = m["files"].pop("model.fp32.onnx")
        m["artefacts"]["fp32"]["file"] = name
    _edit(folder, change)


def test_manifest_with_an_absolute_artefact_path_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(folder / "model.fp32.onnx", outside)
    _point_fp32_at(folder, str(outside))
    with pytest.raises(ArtefactError, match="elsewhere.onnx.*outside the export folder"):
        load_manifest(folder, verify=True)


def test_manifest_with_a_dotdot_artefact_path_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    shutil.move(folder / "model.fp32.onnx", tmp_path / "up.onnx")
    _point_fp32_at(folder, "../up.onnx")
    with pytest.raises(ArtefactError, match=r"\.\./up\.onnx.*outside the export folder"):
        load_manifest(folder, verify=True)
    # unverified loading (the runtime's verify=False) is refused too, when the file is asked for
    from ecgedge.runtime import Precision, runner_from_export
    with pytest.raises(ArtefactError, match="outside the export folder"):
        runner_from_export(folder, Precision.fp32, verify=False)


def test_manifest_file_that_is_a_symlink_out_of_the_folder_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    outside = tmp_path / "linked.onnx"
    shutil.move(folder / "model.fp32.onnx", outside)
    (folder / "model.fp32.onnx").symlink_to(outside)  # same bytes, same sha256: only the path gives it away
    with pytest.raises(ArtefactError, match="model.fp32.onnx.*outside the export folder"):
        load_manifest(folder, verify=True)


def test_manifest_check_data_outside_the_folder_is_refused(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    shutil.move(folder / "check_windows.npz", tmp_path / "check.npz")
    _edit(folder, lambda m: (m["files"].pop("check_windows.npz"), m["check_data"].update(file="../check.npz")))
    with pytest.raises(ArtefactError, match=r"check_data.*\.\./check\.npz.*outside"):
        check_export(folder, log=lambda *_: None)


def test_triton_section_pointing_outside_deletes_nothing(exported, tmp_path):
    folder = _copy(exported, tmp_path)
    victim = tmp_path / "victim" / "m"
    victim.mkdir(parents=True)
    (victim / "config.pbtxt").write_text("someone else's model")
    m = load_manifest(folder)
    m.data["triton"] = {"repository": "../victim", "model_name": "m"}
    m.save()
    with pytest.raises(ArtefactError, match=r"\.\./victim/m.*outside the export folder"):
        triton_repository_from_export(folder)
    res = CliRunner().invoke(app, ["export", "--triton-only", str(folder)])
    assert res.exit_code == 2 and "outside the export folder" in res.output, res.output
    assert (victim / "config.pbtxt").read_text() == "someone else's model"


@pytest.mark.parametrize("manifest, message", [
    ([], "a manifest is a JSON object"),
    ({"format": "ecgedge.export/1"}, "no 'artefacts' section"),
    ({"format": "ecgedge.export/1", "artefacts": {"fp32": {"precision": "fp32"}}}, "artefact fp32 has no 'file'"),
    ({"format": "ecgedge.export/1", "artefacts": {"fp32": {"file": "m.onnx"}}, "files": {"m.onnx": {"sha256": "0" * 64}}},
     "files entry m.onnx lacks 'sha256' or 'bytes'"),
])
def test_incomplete_manifest_is_one_line_not_a_traceback(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    res = CliRunner().invoke(app, ["export", "--check", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


# ------------------------------------------------------------------- the window cache sees data files

@pytest.fixture()
def small_set(tmp_path):
    heas = write_wfdb_dataset(tmp_path / "data", records_per_rhythm=2, rhythms=("SR", "SB"), seed=3)
    data = DataConfig(paths=(str(tmp_path / "data"),), cache_dir=str(tmp_path / "cache"), workers=1)
    return heas, data


def _windows(data):
    return build_windows(data, ("II",), PreprocessConfig(), WindowConfig(), progress=False)


def _record_windows(ws, rid):
    return np.array(ws.windows[ws.windows_of_records([ws.record_ids.index(rid)])])


def test_changed_data_file_rebuilds_the_windows(small_set):
    heas, data = small_set
    first = _windows(data)
    rid, mat = heas[0].stem, heas[0].with_suffix(".mat")
    before = _record_windows(first, rid)
    raw = bytearray(mat.read_bytes())
    samples = np.frombuffer(raw, dtype="<i2", offset=24)  # MAT v4: 24-byte header, then int16 samples
    raw[24:] = (-samples).astype("<i2").tobytes()          # same size: only content and mtime change
    st = mat.stat()
    mat.write_bytes(bytes(raw))
    os.utime(mat, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = _windows(data)
    assert second.key != first.key
    np.testing.assert_allclose(_record_windows(second, rid), -before, atol=1e-4)  # band-pass is linear


def test_deleted_data_file_skips_the_record_not_served_from_cache(small_set):
    heas, data = small_set
    first = _windows(data)
    rid = heas[0].stem
    assert rid in first.record_ids
    heas[0].with_suffix(".mat").unlink()
    second = _windows(data)
    assert rid not in second.record_ids
    assert "missing data file" in second.summary.skipped[rid]


# --------------------------------------------------------------------- header names stay in the folder

def test_header_naming_a_file_outside_its_folder_is_skipped(small_set):
    heas, data = small_set
    src = heas[0]
    evil = src.with_name("EVIL.hea")
    evil.write_text(src.read_text().replace(f"{src.stem}.mat", "../EVIL.mat").replace(src.stem, "EVIL"))
    shutil.copyfile(src.with_suffix(".mat"), src.parent.parent / "EVIL.mat")
    with pytest.raises(BadRecord, match=r"outside the record's folder: \.\./EVIL\.mat"):
        read_record(evil)
    with pytest.raises(BadRecord, match="outside the record's folder"):
        record_data_files(evil)
    ws = _windows(data)
    assert "EVIL" not in ws.record_ids
    assert "outside the record's folder" in ws.summary.skipped["EVIL"]
    assert len(ws.record_ids) == len(heas)
