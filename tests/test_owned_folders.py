"""Issue 25, policy 1: folders ecgedge owns (:mod:`ecgedge.fsio`), fault-injected.

Before: ``data build --overwrite`` deleted everything in ``--out``, the input records and a user's
thesis included (exit 0); re-export deleted every file its manifest did not list, the private key it
had just signed with included. Every case here runs the real code on real files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ecgedge.errors import ConfigError
from ecgedge.fsio import (MARKER, FolderKind, atomic_write_text, claim_folder, clean_leftovers, new_staging, owned_folder,
                          publish_folder, read_marker)

PEM_KEY = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"


def _build(dest: Path, files: dict[str, str], kind=FolderKind.store, **kw) -> None:
    with owned_folder(dest, kind, **kw) as staging:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)


# ------------------------------------------------------------------------------------------ claims


def test_new_and_empty_folders_are_written(tmp_path):
    _build(tmp_path / "new", {"a.npy": "1"})
    (tmp_path / "empty").mkdir()
    _build(tmp_path / "empty", {"a.npy": "1"})
    for d in ("new", "empty"):
        assert (tmp_path / d / "a.npy").read_text() == "1"
        assert read_marker(tmp_path / d)["files"] == ["a.npy"]


def test_user_folder_without_marker_is_refused_even_with_overwrite(tmp_path):
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "ch1.tex").write_text("chapter 1")
    with pytest.raises(ConfigError, match="not an ecgedge window store"):
        _build(user, {"a.npy": "1"}, replace=True)
    assert os.listdir(user) == ["ch1.tex"]


@pytest.mark.parametrize("other", [FolderKind.run, FolderKind.export, FolderKind.evaluation])
def test_folder_of_another_kind_is_refused(tmp_path, other):
    _build(tmp_path / "x", {"best.pt": "model"}, kind=other)
    with pytest.raises(ConfigError, match=f"holds an ecgedge {other.value}, not a window store"):
        _build(tmp_path / "x", {"a.npy": "1"}, replace=True)
    assert (tmp_path / "x" / "best.pt").read_text() == "model"


def test_own_kind_needs_the_flag(tmp_path):
    _build(tmp_path / "x", {"a.npy": "1"})
    with pytest.raises(ConfigError, match="pass --overwrite"):
        _build(tmp_path / "x", {"a.npy": "2"})
    with pytest.raises(ConfigError, match="pass --resume"):
        claim_folder(tmp_path / "x", FolderKind.store, flag="--resume")
    assert (tmp_path / "x" / "a.npy").read_text() == "1"


@pytest.mark.parametrize("where", ["inside", "itself", "deep"])
def test_folder_holding_an_input_is_refused(tmp_path, where):
    out = tmp_path / "study"
    _build(out, {"a.npy": "1"})
    src = {"inside": out / "records", "itself": out, "deep": out / "a" / "b"}[where]
    src.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ConfigError, match="contains this command's input"):
        _build(out, {"a.npy": "2"}, replace=True, inputs=[src])
    assert (out / "a.npy").read_text() == "1"


def test_links_and_files_are_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="symbolic link"):
        claim_folder(tmp_path / "link", FolderKind.store, replace=True)
    with pytest.raises(ConfigError, match="is a file"):
        claim_folder(tmp_path / "file", FolderKind.store, replace=True)


def test_forged_or_broken_marker_is_not_a_licence(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "notes.md").write_text("mine")
    (d / MARKER).write_text("{not json")
    with pytest.raises(ConfigError, match="not an ecgedge"):
        claim_folder(d, FolderKind.store, replace=True)


# ------------------------------------------------------------------------------------------ replacing


def test_replacement_keeps_user_files_and_drops_only_listed_ones(tmp_path):
    out = tmp_path / "x"
    _build(out, {"a.npy": "1", "sub/b.npy": "1"})
    (out / "NOTES.md").write_text("mine")
    (out / "sub" / "mine.txt").write_text("mine too")
    _build(out, {"c.npy": "2"}, replace=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        sorted([MARKER, "NOTES.md", "c.npy", "sub/mine.txt"])
    assert read_marker(out)["files"] == ["c.npy"]  # the user's files stay the user's


def test_private_key_is_never_deleted_even_when_listed(tmp_path):
    out = tmp_path / "x"
    _build(out, {"a.npy": "1"})
    (out / "signing.key").write_bytes(PEM_KEY)
    marker = json.loads((out / MARKER).read_text())
    marker["files"].append("signing.key")  # even a marker that claims it
    (out / MARKER).write_text(json.dumps(marker))
    _build(out, {"c.npy": "2"}, replace=True)
    assert (out / "signing.key").read_bytes() == PEM_KEY


def test_private_key_inside_an_export_folder_is_refused(tmp_path):
    out = tmp_path / "exp"
    _build(out, {"manifest.json": "{}"}, kind=FolderKind.export)
    (out / "keys").mkdir()
    (out / "keys" / "exporter.pem").write_bytes(PEM_KEY)
    with pytest.raises(ConfigError, match="private key inside the export folder"):
        _build(out, {"manifest.json": "{}"}, kind=FolderKind.export, replace=True)
    assert (out / "keys" / "exporter.pem").read_bytes() == PEM_KEY


def test_user_file_with_a_new_file_name_is_refused_before_anything_moves(tmp_path):
    out = tmp_path / "x"
    _build(out, {"a.npy": "1"})
    (out / "report.json").write_text("the user's report")
    with pytest.raises(ConfigError, match="report.json is not ecgedge's"):
        _build(out, {"report.json": "ours"}, replace=True)
    assert (out / "report.json").read_text() == "the user's report" and (out / "a.npy").read_text() == "1"


def test_error_while_building_leaves_the_old_result_and_no_staging(tmp_path):
    out = tmp_path / "x"
    _build(out, {"a.npy": "1"})
    (out / "NOTES.md").write_text("mine")
    with pytest.raises(RuntimeError):
        with owned_folder(out, FolderKind.store, replace=True) as staging:
            (staging / "a.npy").write_text("half")
            raise RuntimeError("disk full, say")
    assert (out / "a.npy").read_text() == "1" and (out / "NOTES.md").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


# ------------------------------------------------------------------------------------------ leftovers


def _dead(staging: Path) -> None:
    """Make ``staging`` look left by a process that died (pid 0 never is a live run's)."""
    m = read_marker(staging)
    m["pid"] = 2**22 + 12345  # above pid_max's default: no such process
    (staging / MARKER).write_text(json.dumps(m))


def test_staging_left_by_a_killed_run_is_cleaned_by_the_next(tmp_path):
    out = tmp_path / "x"
    staging = new_staging(out, FolderKind.store)
    (staging / "shard.npy").write_text("half")
    _dead(staging)
    _build(out, {"a.npy": "1"})
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_user_files_carried_into_a_dead_staging_come_back(tmp_path):
    """Killed between carrying the user's files over and the swap: the next run puts them back."""
    out = tmp_path / "x"
    _build(out, {"a.npy": "1"})
    (out / "NOTES.md").write_text("mine")
    staging = new_staging(out, FolderKind.store)
    m = read_marker(staging)
    m["carried"] = ["NOTES.md"]
    (staging / MARKER).write_text(json.dumps(m))
    os.rename(out / "NOTES.md", staging / "NOTES.md")
    _dead(staging)
    clean_leftovers(out)
    assert (out / "NOTES.md").read_text() == "mine" and not staging.exists()


def test_killed_between_the_two_renames_restores_the_old_result(tmp_path):
    out = tmp_path / "x"
    _build(out, {"a.npy": "1"})
    old = out.with_name(".x.ecgedge-old-deadbeef")
    os.rename(out, old)  # the state a kill after the first rename of the swap leaves
    clean_leftovers(out)
    assert (out / "a.npy").read_text() == "1" and not old.exists()


def test_live_run_staging_is_left_alone(tmp_path):
    out = tmp_path / "x"
    staging = new_staging(out, FolderKind.store)  # this process: alive
    clean_leftovers(out)
    assert staging.is_dir()
    publish_folder(staging, out, FolderKind.store, ())
    assert read_marker(out)["kind"] == FolderKind.store.value


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    p = tmp_path / "report.json"
    atomic_write_text(p, "old")
    with pytest.raises(ZeroDivisionError):
        from ecgedge.fsio import atomic_file

        with atomic_file(p, "w") as f:
            f.write("new, half")
            1 / 0
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["report.json"]


# ------------------------------------------------------------------------------------------ data build


def _records(shared_data: Path, to: Path, n: int = 4) -> Path:
    src = shared_data / "cinc2017" / "validation"
    heads = sorted(src.glob("A0*.hea"))[:n]
    if len(heads) < n:
        pytest.skip(f"CinC-2017 validation records not found at {src}")
    to.mkdir(parents=True)
    for h in heads:
        for p in (h, h.with_suffix(".mat")):
            (to / p.name).write_bytes(p.read_bytes())
    return to


def test_data_build_overwrite_never_deletes_inputs_or_user_files(shared_data, tmp_path):
    """The issue's first case, as written: the records and the thesis survive, exit non-zero."""
    from typer.testing import CliRunner

    from ecgedge.cli.main import app

    study = tmp_path / "s" / "study"
    recs = _records(shared_data, study / "records")
    (study / "thesis").mkdir()
    (study / "thesis" / "ch1.tex").write_text("ch1")
    before = sorted(p.name for p in recs.iterdir())
    r = CliRunner().invoke(app, ["data", "build", str(recs), "--out", str(study), "--overwrite", "-q"])
    assert r.exit_code == 2 and "contains this command's input" in r.output
    assert sorted(p.name for p in recs.iterdir()) == before and (study / "thesis" / "ch1.tex").read_text() == "ch1"

    store = tmp_path / "store"
    assert CliRunner().invoke(app, ["data", "build", str(recs), "--out", str(store), "-q"]).exit_code == 0
    (store / "NOTES.md").write_text("mine")
    r = CliRunner().invoke(app, ["data", "build", str(recs), "--out", str(store), "-q"])
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert CliRunner().invoke(app, ["data", "build", str(recs), "--out", str(store), "-q", "--overwrite"]).exit_code == 0
    assert (store / "NOTES.md").read_text() == "mine" and (store / "store.json").is_file()
    r = CliRunner().invoke(app, ["data", "build", str(recs), "--out", str(study / "thesis"), "-q", "--overwrite"])
    assert r.exit_code == 2 and (study / "thesis" / "ch1.tex").read_text() == "ch1"


# ------------------------------------------------------------------------------------------ evaluate --out


def test_evaluate_out_refuses_a_users_report_and_keeps_notes(tmp_path):
    """``evaluate --out`` used to overwrite a user's own ``report.json``; an earlier evaluation's
    files are replaced, the user's beside them are not."""
    from ecgedge.evaluate.scoring import REPORT_FORMAT, evaluation_folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.json").write_text('{"my": "report"}')
    with pytest.raises(ConfigError, match="not an ecgedge evaluation"):
        evaluation_folder(mine, ())
    assert (mine / "report.json").read_text() == '{"my": "report"}'

    old = tmp_path / "old"  # an evaluation from before folder markers
    old.mkdir()
    (old / "report.json").write_text(json.dumps({"format": REPORT_FORMAT}))
    (old / "predictions.csv").write_text("x")
    (old / "NOTES.md").write_text("mine")
    with evaluation_folder(old, ()) as staging:
        (staging / "report.json").write_text(json.dumps({"format": REPORT_FORMAT, "new": 1}))
    assert json.loads((old / "report.json").read_text())["new"] == 1
    assert not (old / "predictions.csv").exists() and (old / "NOTES.md").read_text() == "mine"

    data = tmp_path / "ev" / "records"
    data.mkdir(parents=True)
    with pytest.raises(ConfigError, match="contains this command's input"):
        evaluation_folder(tmp_path / "ev", (str(data),))
