"""Data-parallel pretraining: a real 2-process gloo run under torchrun equals one process on the global batch.

What the equivalence rests on (see ``ecgedge.distributed``): both ranks draw the single-process
path's seeded shuffle of the same windows, cut it into global batches of 2 x ``--batch-size`` and
each takes a disjoint half; the loss of each half is scaled so that DDP's gradient average is the
global batch's gradient (also for the uneven last batch, 3 + 2 windows here); and BatchNorm is
synchronised. ``torch.nn.SyncBatchNorm`` would not do on CPU (in training it raises "SyncBatchNorm
expected input tensor to be on GPU"), and plain per-rank BatchNorm would make the 2-process run a
different computation (statistics of each half), so ecgedge swaps in ``AllReduceBatchNorm1d``,
whose statistics come from all-reduced sums. What is left is float rounding in a different order
of summation: after 6 Adam steps parameters agree to ~1e-7; the test allows 1e-5 absolute.
For scale, the same run with per-rank BatchNorm (``sync_batchnorm = false``) differs by 7.5e-3.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import PretrainConfig, config_from_toml
from ecgedge.distributed import DistContext, context_from_env, rank_part
from ecgedge.errors import ConfigError
from ecgedge.models.checkpoint import load_checkpoint
from ecgedge.train import pretrain

TOML = """
epochs = 2
lr = 3e-3
max_windows = 37
seed = 0
[window]
hop = 128
[model]
channels = [4, 8]
kernels = [5, 3]
"""
PER_RANK_BATCH = 8
ATOL = 1e-5


def _ecgedge_script() -> str:
    script = Path(sys.executable).with_name("ecgedge")
    if not script.is_file():
        found = shutil.which("ecgedge")
        if not found:
            pytest.skip("the ecgedge console script is not installed (pip install -e .)")
        script = Path(found)
    return str(script)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_on_the_global_batch(synth, tmp_path):
    (tmp_path / "cae.toml").write_text(TOML)
    cache = tmp_path / "cache"  # empty: rank 0 builds the window cache while rank 1 waits
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--no-python", _ecgedge_script(),
           "train", "pretrain", "--data", str(synth / "data"), "--config", str(tmp_path / "cae.toml"), "--device", "cpu",
           "--batch-size", str(PER_RANK_BATCH), "--cache-dir", str(cache), "--run-dir", str(tmp_path / "ddp"), "-q"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("CAE held-out reconstruction MSE") == 1, res.stdout  # rank 0 alone reports
    assert len(list((cache / "windows").iterdir())) == 1  # one cache, built once

    cfg = config_from_toml(PretrainConfig, tmp_path / "cae.toml", data__paths=[str(synth / "data")], data__cache_dir=str(cache),
                           batch_size=2 * PER_RANK_BATCH, run_dir=str(tmp_path / "single"))
    torch.set_num_threads(1)
    single = pretrain(cfg, progress=False)

    ddp_ckpt, ref_ckpt = load_checkpoint(tmp_path / "ddp" / "last.pt"), load_checkpoint(single.run_dir / "last.pt")
    assert ddp_ckpt.epoch == ref_ckpt.epoch == 2
    for k, ref in ref_ckpt.state_dict.items():
        got = ddp_ckpt.state_dict[k]
        assert got.shape == ref.shape, k
        if k.endswith("num_batches_tracked"):
            assert int(got) == int(ref) == 6, k  # 37 windows / global batch 16 = 3 steps per epoch, 2 epochs
        else:
            torch.testing.assert_close(got, ref, atol=ATOL, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
    metrics = ddp_ckpt.metrics
    assert metrics["windows"] == ref_ckpt.metrics["windows"] == 7  # validation split across ranks, summed back
    assert metrics["mse_normalised"] == pytest.approx(ref_ckpt.metrics["mse_normalised"], rel=1e-5)
    ddp_hist = (tmp_path / "ddp" / "history.csv").read_text().splitlines()
    ref_hist = (single.run_dir / "history.csv").read_text().splitlines()
    for a, b in zip(ddp_hist[1:], ref_hist[1:], strict=True):
        np.testing.assert_allclose([float(v) for v in a.split(",")], [float(v) for v in b.split(",")], rtol=1e-5)


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(synth, tmp_path, monkeypatch):
    import ecgedge.train.pretraining as train  # evaluate_cae is looked up there, where _pretrain calls it

    cfg = config_from_toml(PretrainConfig, None, data__paths=[str(synth / "data")], data__cache_dir=str(synth / "cache"),
                           window__hop=128, model__channels=[4, 8], model__kernels=[5, 3], epochs=3, batch_size=8,
                           max_windows=24, seed=1, run_dir=str(tmp_path / "whole"))
    whole = load_checkpoint(pretrain(cfg, progress=False).run_dir / "last.pt")

    cut = replace(cfg, run_dir=str(tmp_path / "cut"))
    real_eval, calls = train.evaluate_cae, []

    def ctrl_c_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_eval(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate_cae", ctrl_c_in_epoch_2)
    first = pretrain(cut, progress=False)
    assert first.interrupted and not load_checkpoint(tmp_path / "cut" / "last.pt").complete
    monkeypatch.setattr(train, "evaluate_cae", real_eval)
    resumed = pretrain(cut, progress=False, resume=True)
    assert not resumed.interrupted and resumed.metrics["epochs_run"] == 3
    last = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert last.epoch == 3 and last.complete
    for k, v in whole.state_dict.items():
        assert torch.equal(last.state_dict[k], v), k  # bit-identical: same shuffles, optimizer and schedule state
    assert (tmp_path / "cut" / "history.csv").read_text() == (tmp_path / "whole" / "history.csv").read_text()


def test_resume_without_state_is_a_user_error(synth, tmp_path):
    cfg = config_from_toml(PretrainConfig, None, data__paths=[str(synth / "data")], data__cache_dir=str(synth / "cache"),
                           window__hop=128, epochs=1, max_windows=8, run_dir=str(tmp_path / "fresh"))
    with pytest.raises(ConfigError, match="train_state.pt not found"):
        pretrain(cfg, progress=False, resume=True)
    res = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["train", "pretrain", "--data", str(synth / "data"), "--resume", "-q"])
    assert res.exit_code == 2 and "--resume needs --run-dir" in res.output


def test_rank_shares_are_disjoint_and_cover_the_batch():
    batch = np.array([3, 8, 9, 14, 20])
    parts = [rank_part(batch, DistContext(rank=r, world_size=2)) for r in range(2)]
    assert [len(p) for p in parts] == [3, 2]
    assert np.array_equal(np.concatenate(parts), batch)
    assert [len(rank_part(batch[:1], DistContext(rank=r, world_size=2))) for r in range(2)] == [1, 0]


def test_torchrun_environment():
    assert not context_from_env({}).is_distributed
    ctx = context_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    with pytest.raises(ConfigError, match="RANK=4"):
        context_from_env({"RANK": "4", "WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="integers"):
        context_from_env({"RANK": "zero", "WORLD_SIZE": "2"})
