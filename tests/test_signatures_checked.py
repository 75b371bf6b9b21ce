"""Issue 25, policy 3: a signature that exists is checked by every loader, ``--key`` or not.

Before: with the labels swapped in a signed manifest, ``export --check`` printed "check passed" and
``stream`` used the swapped labels unless ``--key`` was given. Each case edits a real signed export
(a tiny ONNX model built in code, signed with a real Ed25519 key) the way an attacker with a text
editor would, re-hashing what they changed so that only the signature can tell.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.errors import ArtefactError
from ecgedge.manifest import MANIFEST, SIGNATURE, load_manifest, sign_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.signing import generate_keypair
from tests.helpers import linear_export


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return generate_keypair(d / "exporter.pem", d / "exporter.pem.pub")


@pytest.fixture(scope="module")
def attacker(tmp_path_factory):
    d = tmp_path_factory.mktemp("attacker")
    return generate_keypair(d / "a.pem", d / "a.pem.pub")


@pytest.fixture(scope="module")
def signed_export(tmp_path_factory, keys):
    folder = linear_export(tmp_path_factory.mktemp("signed") / "exp", leads=("I",))
    sign_manifest(folder, keys[0])
    return folder


@pytest.fixture
def copy(signed_export, tmp_path):
    return shutil.copytree(signed_export, tmp_path / "e")


def _edit(folder, change):
    path = folder / MANIFEST
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _swap_labels(m):
    m["output"]["labels"] = m["output"]["labels"][::-1]


EDITS = {
    "labels swapped": _swap_labels,
    "sampling rate changed": lambda m: m["input"].update(fs_hz=500.0),
    "preprocessing changed": lambda m: m["preprocess"].update(bandpass_high_hz=100.0),
    "a byte of whitespace": None,
}


def _apply(folder, name):
    if EDITS[name] is None:
        (folder / MANIFEST).write_bytes((folder / MANIFEST).read_bytes() + b"\n")
    else:
        _edit(folder, EDITS[name])


def _check(folder, *args):
    return CliRunner().invoke(app, ["export", "--check", str(folder), "--backend", "ort-cpu", *args])


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_check_refuses_an_edited_signed_export_without_a_key(copy, edit):
    _apply(copy, edit)
    res = _check(copy)
    assert res.exit_code == 2 and "signature does not match" in res.output and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("edit", ["labels swapped", "sampling rate changed"])
def test_runtime_refuses_an_edited_signed_export_without_a_key(copy, edit):
    _apply(copy, edit)
    with pytest.raises(ArtefactError, match="signature does not match"):
        runner_from_export(copy)


def test_stream_refuses_an_edited_signed_export_without_a_key(copy, tmp_path):
    _apply(copy, "labels swapped")
    rec = tmp_path / "r.hea"
    res = CliRunner().invoke(app, ["stream", str(copy), "--source", f"record:{rec}"])
    assert res.exit_code == 2 and "signature does not match" in res.output, res.output


def test_evaluate_refuses_an_edited_signed_export(copy, tmp_path):
    from ecgedge.config import DataConfig, LabelScheme
    from ecgedge.evaluate.scoring import EvaluateConfig, open_source

    _apply(copy, "labels swapped")
    cfg = EvaluateConfig(source=str(copy), data=DataConfig(paths=(str(tmp_path),)), labels=LabelScheme.chapman4, out=str(tmp_path / "ev"))
    with pytest.raises(ArtefactError, match="signature does not match"):
        open_source(cfg)


def test_resigned_by_an_attacker_passes_alone_but_not_with_the_pinned_key(copy, keys, attacker):
    _apply(copy, "labels swapped")
    sign_manifest(copy, attacker[0])
    load_manifest(copy)  # a valid signature by somebody: only a pinned key can tell who
    res = _check(copy, "--key", str(keys[1]))
    assert res.exit_code == 2 and "signed with another key" in res.output, res.output


def test_truncated_or_garbage_signature_is_refused(copy):
    sig = copy / SIGNATURE
    sig.write_bytes(sig.read_bytes()[:50])
    with pytest.raises(ArtefactError, match="not an ecgedge signature"):
        load_manifest(copy)


def test_older_64_byte_signature_needs_the_key(copy, keys):
    sig = copy / SIGNATURE
    sig.write_bytes(sig.read_bytes()[:64])  # what ecgedge wrote before the signer's key was embedded
    with pytest.raises(ArtefactError, match="pass --key"):
        load_manifest(copy)
    load_manifest(copy, public_key=keys[1])


def test_unsigned_export_still_loads_without_a_key(copy):
    (copy / SIGNATURE).unlink()
    assert load_manifest(copy).labels
    with runner_from_export(copy) as r:
        assert r.infer(np.zeros((1, 1, 2048), np.float32)).shape == (1, 4)


def test_check_refuses_a_private_key_inside_the_export(copy, keys):
    shutil.copy(keys[0], copy / "signing.key")
    res = _check(copy, "--key", str(keys[1]))
    assert res.exit_code == 2 and "private key inside the export folder" in res.output, res.output


def test_evaluate_and_bench_key_pins_the_signer(copy, keys, attacker, tmp_path):
    from ecgedge.bench.plan import BenchConfig
    from ecgedge.bench.run import main_bench
    from ecgedge.config import DataConfig, LabelScheme
    from ecgedge.evaluate.scoring import EvaluateConfig, open_source

    sign_manifest(copy, attacker[0])  # a valid signature, by somebody else
    cfg = EvaluateConfig(source=str(copy), data=DataConfig(paths=(str(tmp_path),)), labels=LabelScheme.chapman4,
                         out=str(tmp_path / "ev"), public_key=str(keys[1]))
    with pytest.raises(ArtefactError, match="signed with another key"):
        open_source(cfg)
    with pytest.raises(ArtefactError, match="signed with another key"):
        main_bench(BenchConfig(export=str(copy), public_key=str(keys[1]), machine_peak=False), log=lambda *_: None)
