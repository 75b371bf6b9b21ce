"""Short pretrain + classify runs on generated data that must learn, plus checkpoint and CLI behaviour.

Both models train through one loop (:func:`ecgedge.fit_loop.fit`): a Ctrl-C in the middle of an epoch
of either, then ``--resume``, must end with the weights of an uninterrupted run, bit for bit.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import ClassifyConfig, DataConfig, ModelConfig, PretrainConfig, WindowConfig, config_from_toml
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.models.checkpoint import load_checkpoint
import ecgedge.fit_loop as fit_loop
import ecgedge.train as train
from ecgedge.train import classify


def test_pretrain_learns_and_writes_run_folder(cae_run):
    hist = (cae_run.run_dir / "history.csv").read_text().splitlines()
    mse = [float(line.split(",")[1]) for line in hist[1:]]  # columns: epoch, train_mse, ...
    assert mse[-1] < mse[0], f"training MSE did not fall: {mse}"
    held = cae_run.metrics["held_out"]
    assert 0 < held["mse_normalised"] < 1.0  # better than predicting zeros (MSE 1 on z-scored windows)
    assert held["mse_uv2"] > 0
    for f in ("config.json", "config.toml", "split.json", "data_summary.json", "metrics.json", "best.pt", "last.pt", "plots/loss.png", "plots/reconstruction.png"):
        assert (cae_run.run_dir / f).is_file(), f


def test_classifier_beats_chance_on_held_out_records(clf_run):
    rec = clf_run.metrics["test"]["records"]
    assert rec["macro_f1"] > 0.5, rec  # 4 classes: chance macro F1 ~0.25
    assert set(rec["per_class_f1"]) == {"SB", "AFIB", "GSVT", "SR"}
    assert np.array(rec["confusion"]).sum() == clf_run.metrics["records"]["test"]
    for f in ("metrics.json", "plots/confusion.png", "plots/curves.png", "split.json", "history.csv"):
        assert (clf_run.run_dir / f).is_file(), f


def test_split_never_leaks_records(clf_run):
    split = json.loads((clf_run.run_dir / "split.json").read_text())
    train, val, test = set(split["train"]), set(split["val"]), set(split["test"])
    assert not (train & test or train & val or val & test)
    assert set(split["train_used"]) <= train


def test_checkpoint_is_self_describing_and_weights_only(clf_run):
    raw = torch.load(clf_run.checkpoint, weights_only=True)
    assert raw["format"] == "ecgedge.checkpoint/1" and raw["kind"] == "classifier"
    assert raw["preprocess"]["fs_hz"] == 250.0 and raw["preprocess_params"]["bandpass_sos"]
    assert raw["labels"] == ["SB", "AFIB", "GSVT", "SR"]
    ckpt = load_checkpoint(clf_run.run_dir)  # a run folder resolves to best.pt
    assert ckpt.leads[1] == "II" and ckpt.build_model()(torch.zeros(1, 12, 2048)).shape == (1, 4)


def test_transfer_copies_the_pretrained_encoder(cae_run, synth):
    cae = load_checkpoint(cae_run.checkpoint)
    cfg = ClassifyConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache")), init=str(cae_run.checkpoint),
                         freeze_encoder=True, epochs=1, seed=0, run_dir=str(synth / "runs" / "frozen"))
    res = classify(cfg, progress=False)
    clf = load_checkpoint(res.checkpoint)
    for k, v in cae.state_dict.items():
        if k.startswith("encoder."):
            assert torch.equal(clf.state_dict[k], v), k  # frozen: weights and BatchNorm statistics unchanged


def test_same_seed_same_run(synth):
    def run(name):
        cfg = ClassifyConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache")), epochs=1, seed=3,
                             model=ModelConfig(channels=(4, 8), kernels=(5, 3), head_channels=8), run_dir=str(synth / "runs" / name))
        return load_checkpoint(classify(cfg, progress=False).checkpoint).state_dict
    a, b = run("s1"), run("s2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_window_cache_is_reused(synth, cae_run):
    from ecgedge.data.windows import build_windows
    cfg = PretrainConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache")), window=WindowConfig(hop=128))
    ws1 = build_windows(cfg.data, ("II",), cfg.preprocess, cfg.window, progress=False)
    ws2 = build_windows(cfg.data, ("II",), cfg.preprocess, cfg.window, progress=False)
    assert ws1.cache_dir == ws2.cache_dir and isinstance(ws2.windows, np.memmap)
    assert ws1.windows.shape[1:] == (1, 2048)


def test_bad_configs_are_user_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_toml(PretrainConfig, None, nonsense=1)
    (tmp_path / "c.toml").write_text("epochs = 0\n")
    with pytest.raises(ConfigError):
        config_from_toml(PretrainConfig, tmp_path / "c.toml")
    with pytest.raises(ArtefactError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtefactError):
        load_checkpoint(tmp_path / "junk.pt")


def test_cli_train_help_and_bad_input(tmp_path):
    r = CliRunner()
    assert "pretrain" in r.invoke(app, ["train", "--help"]).output
    res = r.invoke(app, ["train", "classify", "--data", str(tmp_path), "--init", str(tmp_path / "nope.pt"), "--run-dir", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 2 and "no such file or folder" in res.output and "nope.pt" in res.output
    res = r.invoke(app, ["train", "pretrain", "--data", str(tmp_path), "--run-dir", str(tmp_path / "r"), "-q", "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 2 and "error:" in res.output
    res = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["train", "classify", "--data", str(tmp_path), "--resume", "-q"])
    assert res.exit_code == 2 and "--resume needs --run-dir" in res.output


def test_cli_pretrain_runs(synth):
    res = CliRunner().invoke(app, ["train", "pretrain", "--data", str(synth / "data"), "--epochs", "1", "--max-windows", "64",
                                   "--run-dir", str(synth / "runs" / "cli"), "--cache-dir", str(synth / "cache"), "-q"])
    assert res.exit_code == 0, res.output
    assert "µV²" in res.output and (synth / "runs" / "cli" / "best.pt").is_file()


TINY = ModelConfig(channels=(4, 8), kernels=(5, 3), head_channels=8)


def _tiny_run(kind: str, synth, run_dir):
    """(config, train function) of a 3-epoch run of ``kind`` on the generated set; the classifier
    has dropout, so its resume also needs torch's RNG state back."""
    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache"))
    if kind == "pretrain":
        cfg = PretrainConfig(data=data, window=WindowConfig(hop=256), model=TINY, epochs=3, batch_size=8, lr=3e-3,
                             max_windows=24, seed=1, run_dir=str(run_dir))
        return cfg, train.pretrain
    cfg = ClassifyConfig(data=data, model=TINY, train_fraction=0.25, epochs=3, batch_size=8, lr=3e-3, seed=2, run_dir=str(run_dir))
    return cfg, train.fit_classifier


def _history_without_timing(path) -> list[dict]:
    import csv

    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "windows_per_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("kind", ["pretrain", "classify"])
def test_ctrl_c_mid_epoch_then_resume_equals_an_uninterrupted_run(kind, synth, tmp_path, monkeypatch):
    cfg, fit = _tiny_run(kind, synth, tmp_path / "whole")
    real_step, steps = fit_loop.train_step, []

    def counted(*args, **kwargs):
        steps.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(fit_loop, "train_step", counted)
    fit(cfg, progress=False)
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    per_epoch = len(steps) // cfg.epochs
    assert per_epoch >= 2 and len(steps) == per_epoch * cfg.epochs

    def ctrl_c_in_epoch_2(*args, **kwargs):
        steps.append(1)
        if len(steps) == per_epoch + 2:  # one step of epoch 2 taken: the resume must not keep it
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    steps.clear()
    monkeypatch.setattr(fit_loop, "train_step", ctrl_c_in_epoch_2)
    cut = replace(cfg, run_dir=str(tmp_path / "cut"))
    first = fit(cut, progress=False)
    stopped = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert first.interrupted and first.metrics["epochs_run"] == 1
    assert (stopped.epoch, stopped.complete) == (1, False)  # the last completed epoch, marked incomplete

    monkeypatch.setattr(fit_loop, "train_step", real_step)
    resumed = fit(cut, progress=False, resume=True)
    assert not resumed.interrupted and resumed.metrics["epochs_run"] == 3
    last = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (last.epoch, last.complete) == (3, True)
    for k, v in whole.state_dict.items():
        assert torch.equal(last.state_dict[k], v), k  # bit-identical: same shuffles, dropout, optimizer and schedule state
    assert _history_without_timing(tmp_path / "cut" / "history.csv") == _history_without_timing(tmp_path / "whole" / "history.csv")
    assert load_checkpoint(tmp_path / "cut" / "best.pt").epoch == load_checkpoint(tmp_path / "whole" / "best.pt").epoch


def test_resume_refuses_another_model(synth, tmp_path):
    cfg, fit = _tiny_run("classify", synth, tmp_path / "run")
    fit(replace(cfg, epochs=1), progress=False)
    wider = replace(cfg, model=replace(TINY, head_channels=16))
    with pytest.raises(ConfigError, match="was trained with model"):
        fit(wider, progress=False, resume=True)
