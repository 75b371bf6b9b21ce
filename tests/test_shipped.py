"""The shipped models: files intact (sha256), listed by ``ecgedge models``, usable by name, and still
scoring real held-out CinC-2017 records above a stated floor.

The floor test reads only ``../shared/data/cinc2017/validation`` (30 records, every one held out
of the shipped classifier's training by ``--holdout``; see its card).
"""

import csv
import json

import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.errors import ConfigError
from ecgedge.hashing import file_sha256
from ecgedge.manifest import load_manifest
from ecgedge.shipped import list_models, resolve_source, shipped_model

# Floors on the 30 validation records (N 15, A 5, O 7, ~ 3), scored with the FP32 artefact (its logits
# are the same to ~1e-6 on any x86 machine; INT8 kernels differ between AVX2 and VNNI). Measured when
# shipped: accuracy 0.767 (23 of 30), N F1 0.882, A F1 0.727. The floors leave two records of margin
# on accuracy: only a broken model or a broken loading path fails them.
FLOOR_ACCURACY = 0.70
FLOOR_F1_N = 0.75
FLOOR_F1_A = 0.5
MIN_INT8_AGREEMENT = 0.9  # INT8 record decisions equal to FP32's (30 of 30 when shipped, on AVX-512 VNNI)


def test_every_shipped_model_is_intact_and_has_a_card():
    models = {m.name: m for m in list_models()}
    assert {"cinc2017-cae", "cinc2017-rhythm"} <= set(models)
    for m in models.values():
        assert m.card.is_file() and "## Limits" in m.card.read_text()
        assert m.path.exists()
    m = load_manifest(models["cinc2017-rhythm"].path, verify=True)  # every file's sha256 and size
    assert m.data["gate"]["passed"] and m.artefacts["int8"]["status"] == "accepted"
    assert m.data["input"]["leads"] == ["I"] and m.data["output"]["labels"] == ["N", "A", "O", "~"]
    meta = json.loads((models["cinc2017-cae"].folder / "shipped.json").read_text())
    assert file_sha256(models["cinc2017-cae"].path) == meta["sha256"]


def test_names_resolve_and_unknown_names_say_what_exists(tmp_path):
    assert resolve_source("cinc2017-rhythm") == shipped_model("cinc2017-rhythm").path
    assert resolve_source(str(tmp_path)) == tmp_path  # an existing path always wins
    with pytest.raises(ConfigError, match="cinc2017-rhythm"):
        resolve_source("no-such-model")


def test_models_cli_lists_and_prints_cards():
    res = CliRunner().invoke(app, ["models"])
    assert res.exit_code == 0, res.output
    assert "cinc2017-rhythm" in res.output and "cinc2017-cae" in res.output
    res = CliRunner().invoke(app, ["models", "--card", "cinc2017-rhythm"])
    assert res.exit_code == 0 and "challenge score" in res.output
    res = CliRunner().invoke(app, ["export", "--check", "cinc2017-rhythm"])
    assert res.exit_code == 0, res.output
    assert "check passed" in res.output


def test_the_cae_loads_as_a_checkpoint():
    from ecgedge.models.checkpoint import load_checkpoint

    cae = load_checkpoint(str(shipped_model("cinc2017-cae").path))
    assert cae.kind == "cae" and cae.window.samples == 2048 and cae.preprocess.fs_hz == 250.0
    assert cae.complete


@pytest.mark.data
def test_shipped_classifier_scores_held_out_real_records(shared_data, tmp_path):
    """FP32 and INT8 through the torch-free runtime on the 30 validation records it never trained on."""
    from ecgedge.config import DataConfig
    from ecgedge.evaluate.scoring import EvaluateConfig, evaluate_source

    folder = shared_data / "cinc2017" / "validation"
    if not (folder / "REFERENCE.csv").is_file():
        pytest.skip(f"{folder} not found")
    data = DataConfig(paths=(str(folder),), cache_dir=str(tmp_path / "cache"))
    runs = {}
    for precision in ("fp32", "int8"):
        out = tmp_path / f"eval-{precision}"
        res = evaluate_source(EvaluateConfig(source="cinc2017-rhythm", data=data, labels="cinc2017", out=str(out), precision=precision,
                                             threads=1, bootstrap_repeats=200), progress=False)
        assert not res.leakage, "the validation records were held out of the shipped model's training"
        report = json.loads((out / "report.json").read_text())
        assert report["source"]["precision"] == precision and report["counts"]["records_scored"] == 30
        with open(out / "predictions.csv") as f:
            runs[precision] = (report["records"], {r["record_id"]: r["predicted"] for r in csv.DictReader(f)})
    rec, fp32 = runs["fp32"]
    assert rec["accuracy"] >= FLOOR_ACCURACY, rec
    assert rec["per_class_f1"]["N"] >= FLOOR_F1_N and rec["per_class_f1"]["A"] >= FLOOR_F1_A, rec
    int8 = runs["int8"][1]
    assert len(fp32) == 30 and sum(int8[r] == p for r, p in fp32.items()) >= MIN_INT8_AGREEMENT * 30
