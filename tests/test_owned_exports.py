"""Issue 25, policies 1 and 3 on real exports: a re-export replaces only its own files, keys are never
collateral, and a signed export is never silently re-written.

Before: ``export --new-key EXP/signing.key``, a ``NOTES.md`` beside it, then ``ecgedge export RUN --out
EXP --sign EXP/signing.key`` exited 0 and the notes and both key files were gone; ``--triton-only`` on a
signed export rewrote the manifest and voided the signature without a word.
"""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import ExportConfig
from ecgedge.errors import ConfigError
from ecgedge.export.pipeline import main_export
from ecgedge.export.triton import triton_repository_from_export
from ecgedge.fsio import MARKER, read_marker
from ecgedge.manifest import SIGNATURE, load_manifest
from ecgedge.signing import generate_keypair

QUIET = {"progress": False, "log": lambda *_: None}


def _cfg(clf_run, out, **kw):
    # min_gate_windows: the generated set holds out a few dozen windows, fewer than the default 100
    return ExportConfig(source=str(clf_run.run_dir), out=str(out), min_gate_windows=10, **kw)


@pytest.fixture(scope="module")
def exported(clf_run, tmp_path_factory):
    return main_export(_cfg(clf_run, tmp_path_factory.mktemp("owned") / "clf"), **QUIET).folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return generate_keypair(d / "k.pem", d / "k.pem.pub")


def test_export_writes_a_marker_listing_its_files(exported):
    marker = read_marker(exported)
    assert marker["kind"] == "export" and "manifest.json" in marker["files"] and "model.fp32.onnx" in marker["files"]
    assert MARKER not in load_manifest(exported).data["files"]


def test_re_export_keeps_a_users_notes(clf_run, exported, tmp_path):
    folder = shutil.copytree(exported, tmp_path / "e")
    (folder / "NOTES.md").write_text("deployment notes")
    (folder / "site").mkdir()
    (folder / "site" / "ward7.txt").write_text("bed map")
    main_export(_cfg(clf_run, folder), **QUIET)
    assert (folder / "NOTES.md").read_text() == "deployment notes" and (folder / "site" / "ward7.txt").read_text() == "bed map"
    load_manifest(folder)
    assert "NOTES.md" not in read_marker(folder)["files"]


def test_issue_case_key_inside_the_export_is_refused_and_kept(clf_run, exported, tmp_path):
    folder = shutil.copytree(exported, tmp_path / "EXP")
    res = CliRunner().invoke(app, ["export", "--new-key", str(folder / "signing.key")])
    assert res.exit_code == 0
    (folder / "NOTES.md").write_text("notes")
    res = CliRunner().invoke(app, ["export", str(clf_run.run_dir), "--out", str(folder), "--sign", str(folder / "signing.key"),
                                   "--min-gate-windows", "10", "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert (folder / "signing.key").is_file() and (folder / "signing.key.pub").is_file() and (folder / "NOTES.md").is_file()


def test_private_key_anywhere_inside_is_refused(clf_run, exported, keys, tmp_path):
    folder = shutil.copytree(exported, tmp_path / "e")
    (folder / "deep" / "er").mkdir(parents=True)
    shutil.copy(keys[0], folder / "deep" / "er" / "id.pem")
    with pytest.raises(ConfigError, match="private key inside the export folder"):
        main_export(_cfg(clf_run, folder), **QUIET)
    assert (folder / "deep" / "er" / "id.pem").read_bytes() == keys[0].read_bytes()


def test_export_into_the_run_folder_is_refused(clf_run, tmp_path):
    for out in (clf_run.run_dir, clf_run.run_dir.parent):
        before = sorted(p.name for p in clf_run.run_dir.iterdir())
        with pytest.raises(ConfigError):
            main_export(_cfg(clf_run, out), **QUIET)
        assert sorted(p.name for p in clf_run.run_dir.iterdir()) == before


def test_export_over_another_kind_of_owned_folder_is_refused(clf_run, tmp_path):
    from ecgedge.fsio import FolderKind, owned_folder

    with owned_folder(tmp_path / "store", FolderKind.store) as s:
        (s / "store.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds an ecgedge window store, not a export"):
        main_export(_cfg(clf_run, tmp_path / "store"), **QUIET)


def test_triton_only_on_a_signed_export_refuses_or_re_signs(clf_run, keys, tmp_path):
    folder = main_export(_cfg(clf_run, tmp_path / "s"), sign_key=keys[0], **QUIET).folder
    before = (folder / "manifest.json").read_bytes()
    res = CliRunner().invoke(app, ["export", "--triton-only", str(folder)])
    assert res.exit_code == 2 and "is signed" in res.output and "--sign" in res.output, res.output
    assert (folder / "manifest.json").read_bytes() == before and not (folder / "triton").exists()
    load_manifest(folder, public_key=keys[1])

    res = CliRunner().invoke(app, ["export", "--triton-only", str(folder), "--sign", str(keys[0])])
    assert res.exit_code == 0, res.output
    m = load_manifest(folder, public_key=keys[1])  # re-signed over the new bytes
    assert m.data["triton"] and all(f in read_marker(folder)["files"] for f in m.data["triton"]["files"])
    # elsewhere (a server's repository) the manifest is not touched: no key needed
    triton_repository_from_export(folder, tmp_path / "repo")
    assert (folder / SIGNATURE).is_file()
    load_manifest(folder, public_key=keys[1])
