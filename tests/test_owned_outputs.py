"""Issue 25, policy 1 (folders ecgedge owns, :mod:`ecgedge.fsio`) for the last commands that wrote
folders without it: ``evaluate stream --out``, ``stream --show-png DIR``, ``experiment transfer --out``
and ``quickstart --out``. Fault-injected on real files.

Before: each wrote into any folder it was given (``mkdir(exist_ok=True)``), over a user's own
``report.json`` or ``bench.json``, into a folder holding its own input records, into a training run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.errors import ConfigError
from ecgedge.fsio import MARKER, FolderKind, atomic_write_text, new_staging, own_files, read_marker, write_marker

DEAD_PID = 2**22 + 12345  # above pid_max's default: no such process


def _dead(staging: Path) -> None:
    """Make ``staging`` look left by a process that died."""
    m = read_marker(staging)
    m["pid"] = DEAD_PID
    (staging / MARKER).write_text(json.dumps(m))


def _stale_temp(folder: Path, name: str) -> Path:
    """The hidden temporary file :func:`ecgedge.fsio.atomic_file` leaves when its process is killed."""
    tmp = folder / f".{name}.{DEAD_PID}.deadbeef.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half a file")
    return tmp


def _user_folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------- evaluate stream --out


@pytest.fixture(scope="module")
def paf(tmp_path_factory) -> Path:
    """A 4-minute generated paroxysmal-AF record (300 Hz, lead I, as the shipped model wants)."""
    from ecgedge.data.paroxysmal import ParoxysmalConfig, write_paroxysmal_set

    cfg = ParoxysmalConfig(duration_s=240, fs_hz=300, leads=("I",), af_burden=0.5, mean_af_s=60, min_episode_s=40,
                           noise_bursts_per_hour=0, electrode_off_per_hour=0, seed=1)
    return write_paroxysmal_set(tmp_path_factory.mktemp("paf"), records=1, cfg=cfg)[0]


def _stream_eval(paf: Path, out: Path):
    from ecgedge.evaluate.stream import StreamEvalConfig, evaluate_stream
    from ecgedge.shipped import resolve_source

    return evaluate_stream(StreamEvalConfig(export=str(resolve_source("cinc2017-rhythm")), records=(str(paf),), out=str(out), plots=False),
                           progress=False)


@pytest.mark.parametrize("case", ["users-report", "run", "holds-record", "is-a-file"])
def test_evaluate_stream_refuses_a_folder_not_its_own_before_playing(paf, tmp_path, case):
    if case == "users-report":
        out = _user_folder(tmp_path / "mine", {"report.json": '{"my": "report"}', "report.md": "mine"})
        why = "not an ecgedge evaluation"
    elif case == "run":
        out = _user_folder(tmp_path / "run", {"best.pt": "model"})
        write_marker(out, FolderKind.run, ["best.pt"])
        why = "holds an ecgedge training run, not a evaluation"
    elif case == "holds-record":
        out = paf.parent.parent  # the folder that holds the record's folder
        why = "contains this command's input"
    else:
        out = tmp_path / "file"
        out.write_text("a file")
        why = "is a file"
    before = _tree(out) if out.is_dir() else out.read_bytes()
    with pytest.raises(ConfigError, match=why):
        _stream_eval(paf, out)
    assert (_tree(out) if out.is_dir() else out.read_bytes()) == before


def test_evaluate_stream_rerun_replaces_its_files_keeps_the_users_and_cleans_a_dead_staging(paf, tmp_path):
    out = tmp_path / "ev"
    first = _stream_eval(paf, out)
    assert read_marker(out)["kind"] == "evaluation" and {p.name for p in first.files} == {"report.json", "report.md", "events-PAF001.jsonl"}
    assert all(p.parent == out and p.is_file() for p in first.files)
    (out / "NOTES.md").write_text("my notes")
    (out / "events-GONE.jsonl").write_text("a record of an earlier evaluation")
    own_files(out, "events-GONE.jsonl")
    staging = new_staging(out, FolderKind.evaluation)  # a run killed while building
    (staging / "report.json").write_text("half")
    _dead(staging)
    second = _stream_eval(paf, out)  # no flag: as `evaluate --out`, an earlier evaluation is replaced
    assert (out / "NOTES.md").read_text() == "my notes"
    assert not (out / "events-GONE.jsonl").exists()
    assert json.loads((out / "report.json").read_text())["summary"] == second.report["summary"]
    assert sorted(read_marker(out)["files"]) == ["events-PAF001.jsonl", "report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev"]  # no staging, no old folder left


def test_evaluate_stream_takes_over_an_evaluation_from_before_markers(paf, tmp_path):
    out = tmp_path / "old"
    _stream_eval(paf, out)
    (out / MARKER).unlink()
    (out / "timeline-OLD.png").write_bytes(b"\x89PNG old")
    (out / "thesis.tex").write_text("mine")
    _stream_eval(paf, out)
    assert not (out / "timeline-OLD.png").exists() and (out / "thesis.tex").read_text() == "mine"


def test_evaluate_stream_cli_refuses_in_one_line(paf, tmp_path):
    mine = _user_folder(tmp_path / "mine", {"notes.txt": "mine"})
    res = CliRunner().invoke(app, ["evaluate", "stream", "cinc2017-rhythm", "--data", str(paf), "--out", str(mine), "-q"])
    assert res.exit_code == 2 and "not an ecgedge evaluation" in res.output and "Traceback" not in res.output
    assert _tree(mine) == {"notes.txt": b"mine"}


# ------------------------------------------------------------------------------- stream --show-png


def _strips(folder: Path, inputs=()):
    """PngEvents fed 12 s of a generated ECG and one rhythm change: one strip written."""
    from helpers import python_frames

    from ecgedge.bridge.frame import Frame
    from ecgedge.bridge.decoder import FrameDecoder
    from ecgedge.stream.show import PngEvents

    pytest.importorskip("matplotlib")
    png = PngEvents(folder, inputs=inputs)
    t = np.arange(12 * 250) / 250
    x = (np.sin(2 * np.pi * 1.2 * t) ** 31)[None, :]
    dec = FrameDecoder()
    for raw in python_frames(x, 250, ["II"], spf=25):
        for item in dec.feed(raw):
            if isinstance(item, Frame):
                png.frame(item)
    png.update([{"type": "rhythm_change", "stream": 0, "t": 11.0, "sample": 2750, "from": None, "to": "SR",
                 "confidence": 0.9, "held_windows": 3}])
    return png


def test_strips_go_to_a_marked_folder_each_png_whole_and_listed(tmp_path):
    png = _strips(tmp_path / "strips")
    [path] = png.written
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    marker = read_marker(tmp_path / "strips")
    assert marker["kind"] == FolderKind.strips.value and marker["files"] == [path.name]
    assert [p.name for p in (tmp_path / "strips").iterdir() if p.name.startswith(".") and p.name != MARKER] == []


def test_strips_rerun_joins_its_folder_keeps_a_users_file_and_cleans_a_dead_temp(tmp_path):
    folder = tmp_path / "strips"
    first = _strips(folder).written[0]
    first.write_bytes(b"\x89PNG earlier")  # an earlier stream's strip of the same name: ecgedge's, replaced
    (folder / "notes.md").write_text("mine")
    stale = _stale_temp(folder, first.name)
    again = _strips(folder).written[0]
    assert again == first and first.read_bytes() != b"\x89PNG earlier"
    assert (folder / "notes.md").read_text() == "mine" and not stale.exists()
    # a user's file with the name of a new strip: kept, the strip takes a numbered name
    first.unlink()
    marker = read_marker(folder)
    write_marker(folder, FolderKind.strips, [f for f in marker["files"] if f != first.name])
    first.write_bytes(b"my own picture")
    third = _strips(folder).written[0]
    assert first.read_bytes() == b"my own picture" and third.name == first.stem + "-2.png"
    assert first.name not in read_marker(folder)["files"]


@pytest.mark.parametrize("case", ["user", "export", "evaluation", "holds-input"])
def test_strips_refuse_a_folder_not_theirs(tmp_path, case):
    from ecgedge.stream.show import claim_strips

    folder = _user_folder(tmp_path / "f", {"a.txt": "mine"})
    inputs: list[str] = []
    if case in ("export", "evaluation"):
        write_marker(folder, FolderKind(case), ["a.txt"])
    elif case == "holds-input":
        (folder / MARKER).unlink(missing_ok=True)
        write_marker(folder, FolderKind.strips, [])
        (folder / "rec").mkdir()
        inputs = [str(folder / "rec" / "100.hea")]
    before = _tree(folder)
    with pytest.raises(ConfigError, match="not empty and not an ecgedge|holds an ecgedge|contains this command's input"):
        claim_strips(folder, inputs)
    assert _tree(folder) == before


def test_strips_take_over_a_folder_of_strips_from_before_markers(tmp_path):
    from ecgedge.stream.show import claim_strips

    folder = _user_folder(tmp_path / "old", {"bed0_00011.000s_rhythm_none-SR.png": "png"})
    claim_strips(folder)
    assert read_marker(folder)["files"] == ["bed0_00011.000s_rhythm_none-SR.png"]


def test_stream_cli_refuses_a_users_png_folder_before_opening_out(tmp_path):
    """``--show-png`` is claimed before the source opens and before ``--out`` is created."""
    mine = _user_folder(tmp_path / "mine", {"thesis.tex": "mine"})
    export = tmp_path / "export"
    export.mkdir()
    res = CliRunner().invoke(app, ["stream", str(export), "--source", "stdin", "--show-png", str(mine), "--out", str(mine / "lines.jsonl")])
    assert res.exit_code == 2 and "not an ecgedge stream strips folder" in res.output and "Traceback" not in res.output
    assert _tree(mine) == {"thesis.tex": b"mine"}


def test_stream_config_names_its_inputs(tmp_path):
    from ecgedge.stream.run import StreamConfig

    rec = tmp_path / "data" / "100"
    rec.parent.mkdir()
    rec.with_suffix(".hea").write_text("100 1 360 10\n")
    cfg = StreamConfig(export=str(tmp_path), source=f"wfdb:{rec}@10")
    assert set(cfg.inputs()) == {str(tmp_path), str(rec.with_suffix(".hea"))}


# ------------------------------------------------------------------------------- experiment transfer --out


def _experiment_cfg(synth, out):
    from ecgedge.config import DataConfig, ModelConfig
    from ecgedge.experiment.transfer import ExperimentConfig

    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache"), max_records=40)
    return ExperimentConfig(data=data, budget="tiny", arms=("random",), fractions=(1.0,), repeats=1, epochs=1,
                            model=ModelConfig(channels=(4, 8), kernels=(5, 3), head_channels=8), threads=1, out=str(out))


@pytest.mark.parametrize("case", ["user", "run", "holds-data"])
def test_experiment_refuses_a_folder_not_its_own_before_any_work(synth, tmp_path, case):
    from ecgedge.experiment.transfer import run_experiment

    out = {"user": tmp_path / "mine", "run": tmp_path / "run", "holds-data": synth}[case]
    if case == "user":
        _user_folder(out, {"notes.md": "mine"})
    elif case == "run":
        _user_folder(out, {"best.pt": "model"})
        write_marker(out, FolderKind.run, ["best.pt"])
    before = _tree(out)
    with pytest.raises(ConfigError, match="not empty and not an ecgedge|holds an ecgedge training run|contains this command's input"):
        run_experiment(_experiment_cfg(synth, out), progress=False)
    assert _tree(out) == before


def test_experiment_resumes_its_own_folder_lists_its_files_and_cleans_a_killed_write(synth, tmp_path):
    from ecgedge.experiment.transfer import run_experiment

    out = tmp_path / "exp"
    first = run_experiment(_experiment_cfg(synth, out), progress=False)
    listed = set(read_marker(out)["files"])
    assert read_marker(out)["kind"] == FolderKind.experiment.value
    assert {"experiment.json", "inputs.json", "split.json", "plan.json", "results.json", "table.md", "report.md", "invocations.jsonl",
            "cells/random/frac1-rep00.json"} <= listed
    (out / "NOTES.md").write_text("mine")
    stale = _stale_temp(out / "cells" / "random", "frac1-rep00.json")
    again = run_experiment(_experiment_cfg(synth, out), progress=False)  # a rerun resumes: nothing to train
    assert (again.cells_run, again.cells_skipped) == (0, first.cells_run)
    assert (out / "NOTES.md").read_text() == "mine" and "NOTES.md" not in read_marker(out)["files"] and not stale.exists()
    # an experiment from before markers resumes too
    (out / MARKER).unlink()
    (out / "NOTES.md").unlink()
    assert run_experiment(_experiment_cfg(synth, out), progress=False).cells_run == 0
    assert "results.json" in read_marker(out)["files"]


# ------------------------------------------------------------------------------- quickstart --out


def test_quickstart_claims_new_empty_and_its_own_folders(tmp_path):
    from ecgedge.quickstart import claim_quickstart

    assert claim_quickstart(tmp_path / "new") == frozenset()
    (tmp_path / "empty").mkdir()
    claim_quickstart(tmp_path / "empty")
    own = tmp_path / "new"
    atomic_write_text(own / "bench.json", "{}")
    own_files(own, "bench.json")
    (own / "NOTES.md").write_text("mine")
    stale = _stale_temp(own, "bench.json")
    assert claim_quickstart(own) == frozenset({"NOTES.md"})  # the rerun: the user's notes are kept, never listed
    assert not stale.exists() and read_marker(own)["kind"] == FolderKind.quickstart.value


@pytest.mark.parametrize("case", ["user", "export", "users-bench", "users-ward-db"])
def test_quickstart_refuses_a_folder_or_a_file_not_its_own(tmp_path, case):
    from ecgedge.quickstart import claim_quickstart

    out = tmp_path / "qs"
    if case == "user":
        _user_folder(out, {"thesis.tex": "mine"})
        why = "not an ecgedge quickstart folder"
    elif case == "export":
        _user_folder(out, {"manifest.json": "{}"})
        write_marker(out, FolderKind.export, ["manifest.json"])
        why = "holds an ecgedge export"
    else:  # a quickstart folder whose marker does not list the file (the claim lists the quickstart's names from then on)
        _user_folder(out / "data", {"x.hea": "x"})
        write_marker(out, FolderKind.quickstart, ["data/x.hea"])
        _user_folder(out, {"bench.json" if case == "users-bench" else "ward.sqlite": "mine"})
        why = "is not the quickstart's"
    before = _tree(out)
    with pytest.raises(ConfigError, match=why):
        claim_quickstart(out)
    assert _tree(out) == before


def test_quickstart_takes_over_its_folder_from_before_markers(tmp_path):
    from ecgedge.quickstart import QUICKSTART_FILES, claim_quickstart

    out = _user_folder(tmp_path / "qs", {"bench.json": "{}", "stream.jsonl": ""})
    _user_folder(out / "data", {"x.hea": "x"})
    _user_folder(out / "runs" / "cae", {"best.pt": "cae"})
    assert claim_quickstart(out) == frozenset()
    assert set(read_marker(out)["files"]) == {"data/x.hea", "runs/cae/best.pt", *QUICKSTART_FILES}


def test_quickstart_lists_what_each_step_wrote_even_when_interrupted(tmp_path, monkeypatch):
    """Step 1 is cut short (Ctrl-C): the records it wrote are listed, the user's notes in the folder are not;
    the rerun over the folder claims it again."""
    import ecgedge.data.synthetic_records as synthetic
    from ecgedge.quickstart import QUICKSTART_FILES, QuickstartConfig, quickstart

    out = tmp_path / "qs"
    _user_folder(out, {})
    write_marker(out, FolderKind.quickstart, [])
    (out / "NOTES.md").write_text("mine")

    def interrupted(data_dir, **kw):
        _user_folder(Path(data_dir) / "WFDBRecords", {"SYN00001.hea": "x"})
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_wfdb_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        quickstart(QuickstartConfig(out=str(out)), progress=False, log=lambda _line: None)
    assert set(read_marker(out)["files"]) == {"data/WFDBRecords/SYN00001.hea", *QUICKSTART_FILES}
    with pytest.raises(KeyboardInterrupt):
        quickstart(QuickstartConfig(out=str(out)), progress=False, log=lambda _line: None)
    assert (out / "NOTES.md").read_text() == "mine" and os.path.isfile(out / MARKER)
