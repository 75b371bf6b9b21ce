"""Issue 25, policy 1 for training runs: ``--run-dir`` writes only a new or empty folder or a run of the
same task, and only with ``--resume`` or ``--overwrite``.

Before: ``ecgedge train pretrain ... --run-dir RUN`` over a finished classifier run replaced its
``best.pt`` with a CAE, without any flag: a typo destroyed a model.
"""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import DataConfig, PretrainConfig, WindowConfig
from ecgedge.errors import ConfigError
from ecgedge.fsio import MARKER, read_marker
from ecgedge.hashing import file_sha256
from ecgedge.train import pretrain


def _cfg(synth, run_dir, **kw):
    return PretrainConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache"), max_records=8),
                          window=WindowConfig(hop=1024), epochs=1, batch_size=32, seed=0, run_dir=str(run_dir), **kw)


@pytest.fixture
def clf_copy(clf_run, tmp_path):
    return shutil.copytree(clf_run.run_dir, tmp_path / "clf")


@pytest.mark.parametrize("marker", [True, False], ids=["marked", "before-markers"])
def test_pretrain_over_a_finished_classifier_run_is_refused(synth, clf_copy, marker):
    if not marker:
        (clf_copy / MARKER).unlink(missing_ok=True)
    best = file_sha256(clf_copy / "best.pt")
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ConfigError, match="not a pretrain run"):
            pretrain(_cfg(synth, clf_copy), progress=False, **flags)
    assert file_sha256(clf_copy / "best.pt") == best


def test_cli_refuses_in_one_line(synth, clf_copy):
    res = CliRunner().invoke(app, ["train", "pretrain", "--data", str(synth / "data"), "--run-dir", str(clf_copy), "--epochs", "1", "-q"])
    assert res.exit_code == 2 and "not a pretrain run" in res.output and "Traceback" not in res.output, res.output


def test_a_users_folder_is_refused(synth, tmp_path):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "ch1.tex").write_text("chapter 1")
    with pytest.raises(ConfigError, match="not an ecgedge training run"):
        pretrain(_cfg(synth, mine), progress=False, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["ch1.tex"]


def test_run_dir_holding_the_data_is_refused(synth, tmp_path):
    with pytest.raises(ConfigError, match="contains this command's input"):
        pretrain(_cfg(synth, synth), progress=False, overwrite=True)


def test_a_finished_run_needs_a_flag_and_overwrite_keeps_user_files(synth, tmp_path):
    run = tmp_path / "cae"
    first = pretrain(_cfg(synth, run), progress=False)
    assert read_marker(run)["task"] == "pretrain" and "best.pt" in read_marker(run)["files"]
    best = file_sha256(first.checkpoint)
    with pytest.raises(ConfigError, match="--overwrite"):
        pretrain(_cfg(synth, run), progress=False)
    assert file_sha256(first.checkpoint) == best
    (run / "NOTES.md").write_text("lr sweep notes")
    (run / "plots" / "mine.pdf").write_text("my figure")
    pretrain(_cfg(synth, run, lr=2e-3), progress=False, overwrite=True)
    assert (run / "NOTES.md").read_text() == "lr sweep notes" and (run / "plots" / "mine.pdf").read_text() == "my figure"
    assert "NOTES.md" not in read_marker(run)["files"]
