"""Issue 25, policy 3 for the shipped models: every file pinned, the pins signed by the project key.

Before: the shipped ``cinc2017-rhythm`` had no signature and no pin (with its labels swapped, a true AF
record streamed as N), and ``--init cinc2017-cae`` used an altered ``cae.pt`` although its sha256 was
written down. Each case tampers with a copy of the real shipped tree.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

import ecgedge.shipped as shipped
from ecgedge.cli.main import app
from ecgedge.errors import ArtefactError
from ecgedge.hashing import file_sha256
from ecgedge.manifest import load_manifest
from ecgedge.shipped import list_models, pin_shipped, resolve_source, verify_shipped
from ecgedge.signing import generate_keypair


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A copy of the shipped models that name resolution uses (the project's public key stays the real one)."""
    root = shutil.copytree(shipped.SHIPPED_ROOT, tmp_path / "shipped", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", root)
    return {m.name: m for m in list_models()}


def test_the_shipped_models_verify():
    for m in list_models():
        verify_shipped(m)
        assert "files" in json.loads((m.folder / "shipped.json").read_text())
    load_manifest(shipped.shipped_model("cinc2017-rhythm").path)  # its manifest.sig is the project's
    res = CliRunner().invoke(app, ["models"])
    assert res.exit_code == 0 and res.output.count("verified (every file pinned") == len(list_models())


def _swap_labels(export):
    path = export / "manifest.json"
    m = json.loads(path.read_text())
    m["output"]["labels"] = m["output"]["labels"][::-1]
    path.write_text(json.dumps(m))


def test_swapped_labels_are_refused_by_name_and_by_path(tree):
    export = tree["cinc2017-rhythm"].path
    _swap_labels(export)
    with pytest.raises(ArtefactError, match="cinc2017-rhythm failed verification: export/manifest.json"):
        resolve_source("cinc2017-rhythm")
    with pytest.raises(ArtefactError, match="signature does not match"):
        load_manifest(export)  # even given as a folder: the export's own signature


def test_altered_cae_is_refused_for_init(tree):
    cae = tree["cinc2017-cae"].path
    data = bytearray(cae.read_bytes())
    data[-100] ^= 1
    cae.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="cae.pt: sha256 differs"):
        resolve_source("cinc2017-cae")
    res = CliRunner().invoke(app, ["train", "classify", "--data", str(cae.parent), "--init", "cinc2017-cae"])
    assert res.exit_code == 2 and "cae.pt: sha256 differs" in res.output and "Traceback" not in res.output, res.output


def test_an_unpinned_extra_file_is_refused(tree):
    (tree["cinc2017-cae"].folder / "cae2.pt").write_bytes(b"x")
    with pytest.raises(ArtefactError, match="cae2.pt: not pinned"):
        resolve_source("cinc2017-cae")


def test_a_missing_file_is_refused(tree):
    (tree["cinc2017-rhythm"].path / "model.int8.onnx").unlink()
    with pytest.raises(ArtefactError, match="model.int8.onnx: missing"):
        resolve_source("cinc2017-rhythm")


def test_re_pinned_by_another_key_is_refused(tree, tmp_path):
    """Whoever edits a file and re-pins and re-signs with a key of their own is still refused: the
    project key is pinned."""
    m = tree["cinc2017-rhythm"]
    _swap_labels(m.path)
    private, _ = generate_keypair(tmp_path / "a.pem", tmp_path / "a.pub")
    pin_shipped(m, private)
    with pytest.raises(ArtefactError, match="signed with another key"):
        resolve_source("cinc2017-rhythm")
    res = CliRunner().invoke(app, ["models"])
    assert res.exit_code == 0 and "DOES NOT VERIFY" in res.output


def test_unsigned_or_re_pinned_without_signature_is_refused(tree):
    m = tree["cinc2017-cae"]
    meta = m.folder / "shipped.json"
    d = json.loads(meta.read_text())
    d["files"]["cae.pt"] = file_sha256(m.path)
    meta.write_text(json.dumps(d))
    with pytest.raises(ArtefactError, match="signature does not match"):
        resolve_source("cinc2017-cae")
    (m.folder / "shipped.sig").unlink()
    with pytest.raises(ArtefactError, match="is not signed"):
        resolve_source("cinc2017-cae")
