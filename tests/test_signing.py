"""Signed manifests: hashes catch accidents, the Ed25519 signature catches deliberate edits.

Each attack below passes the hash check (the attacker re-hashes what they changed) and is refused
once the exporter's public key is given, and (issue 25) by every loader without a key too, since the
signature names its signer; the key then pins who that must be.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import ExportConfig
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.export.check import check_export
from ecgedge.export.pipeline import main_export
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, SIGNATURE, load_manifest, sign_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.signing import generate_keypair

QUIET = {"progress": False, "log": lambda *_: None}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return generate_keypair(d / "exporter.pem", d / "exporter.pem.pub")


@pytest.fixture(scope="module")
def other_public(tmp_path_factory):
    d = tmp_path_factory.mktemp("other")
    return generate_keypair(d / "other.pem", d / "other.pem.pub")[1]


@pytest.fixture(scope="module")
def signed(clf_run, keys, tmp_path_factory):
    """A real export of the session's classifier, signed by ``main_export`` itself."""
    out = tmp_path_factory.mktemp("signing") / "clf"
    # min_gate_windows: the generated set holds out a few dozen windows, fewer than the default 100
    cfg = ExportConfig(source=str(clf_run.run_dir), out=str(out), int8=True, min_gate_windows=10)
    return main_export(cfg, sign_key=keys[0], **QUIET).folder


def _copy(signed, tmp_path):
    return shutil.copytree(signed, tmp_path / "e")


def _edit(folder, change):
    """Rewrite manifest.json after ``change(data)``, as an attacker with a text editor would."""
    path = folder / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _check(folder, *key):
    return CliRunner().invoke(app, ["export", "--check", str(folder), "--backend", "ort-cpu", *key])


def _one_line_refusal(res, match):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in res.output, res.output


def test_export_signs_and_the_signature_is_not_a_listed_file(signed, keys):
    assert (signed / SIGNATURE).is_file()
    manifest = load_manifest(signed, public_key=keys[1])
    assert SIGNATURE not in manifest.data["files"] and MANIFEST not in manifest.data["files"]
    assert not [p.name for p in signed.parent.iterdir() if p.name.startswith(".")]  # staging swapped, nothing left


def test_check_with_the_right_key_passes(signed, keys):
    res = _check(signed, "--key", str(keys[1]))
    assert res.exit_code == 0, res.output
    assert "signature matches" in res.output and "check passed" in res.output


def test_rehashed_modified_int8_file_fails_with_the_key(signed, keys, tmp_path):
    folder = _copy(signed, tmp_path)
    int8 = folder / "model.int8.onnx"
    int8.write_bytes(int8.read_bytes() + b"\0")
    _edit(folder, lambda m: m["files"]["model.int8.onnx"].update(sha256=file_sha256(int8), bytes=int8.stat().st_size))
    load_manifest(folder, verify=False)  # the hashes alone cannot tell: they were rewritten to match
    _one_line_refusal(_check(folder, "--key", str(keys[1])), "signature does not match")
    _one_line_refusal(_check(folder), "signature does not match")  # issue 25: a signature is checked without --key too


def test_reversed_labels_fail_with_the_key(signed, keys, tmp_path):
    folder = _copy(signed, tmp_path)
    _edit(folder, lambda m: m["output"].update(labels=m["output"]["labels"][::-1]))
    assert load_manifest(folder, verify=False).labels == tuple(reversed(load_manifest(signed).labels))
    _one_line_refusal(_check(folder, "--key", str(keys[1])), "signature does not match")
    _one_line_refusal(_check(folder), "signature does not match")  # issue 25: without --key too


def test_unsigned_folder_fails_with_the_key(signed, keys, tmp_path):
    folder = _copy(signed, tmp_path)
    (folder / SIGNATURE).unlink()
    _one_line_refusal(_check(folder, "--key", str(keys[1])), "is not signed")


def test_wrong_public_key_fails(signed, other_public):
    _one_line_refusal(_check(signed, "--key", str(other_public)), "signature does not match")


def test_without_a_key_everything_is_as_before(signed, tmp_path):
    check_export(signed, backends=None, **{"log": lambda *_: None})
    folder = _copy(signed, tmp_path)
    (folder / SIGNATURE).unlink()
    assert _check(folder).exit_code == 0
    load_manifest(folder).save()  # re-hashing a signed folder never lists the signature
    assert SIGNATURE not in load_manifest(folder).data["files"]


def test_resigned_by_the_exporter_passes(signed, keys, tmp_path):
    folder = _copy(signed, tmp_path)
    _edit(folder, lambda m: m.update(name="renamed by the exporter"))
    sign_manifest(folder, keys[0])
    load_manifest(folder, public_key=keys[1])


def test_runtime_refuses_with_the_key(signed, keys, other_public, tmp_path):
    with runner_from_export(signed, "int8", public_key=keys[1]) as runner:
        assert runner is not None
    with pytest.raises(ArtefactError, match="signature does not match"):
        runner_from_export(signed, "int8", public_key=other_public)
    folder = _copy(signed, tmp_path)
    _edit(folder, lambda m: m["output"].update(labels=m["output"]["labels"][::-1]))
    with pytest.raises(ArtefactError, match="signature does not match"):
        runner_from_export(folder, "int8", public_key=keys[1])
    with pytest.raises(ArtefactError, match="signature does not match"):  # a manifest handed in: its folder is checked
        runner_from_export(folder, "int8", manifest=load_manifest(folder), public_key=keys[1])


def test_stream_with_key_refuses_a_mis_signed_folder(signed, keys, tmp_path):
    folder = _copy(signed, tmp_path)
    _edit(folder, lambda m: m["output"].update(labels=m["output"]["labels"][::-1]))
    res = CliRunner().invoke(app, ["stream", str(folder), "--source", "stdin", "--key", str(keys[1])], input=b"")
    _one_line_refusal(res, "signature does not match")


def test_new_key_cli_writes_a_pair_and_never_overwrites(tmp_path):
    res = CliRunner().invoke(app, ["export", "--new-key", str(tmp_path / "k.pem")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "k.pem.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    _one_line_refusal(CliRunner().invoke(app, ["export", "--new-key", str(tmp_path / "k.pem")]), "refusing to overwrite")


def test_key_misuse_is_one_line(keys, tmp_path):
    _one_line_refusal(CliRunner().invoke(app, ["export", "runs/x", "--key", str(keys[1])]), "--check")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        main_export(ExportConfig(source="runs/x", out=str(tmp_path / "o")), sign_key=keys[1], **QUIET)
