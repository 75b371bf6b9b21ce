"""``ecgedge experiment transfer``: the grid logic, a tiny end-to-end grid on generated data, resume, CLI.

The end-to-end grid (module fixture ``grid``) pretrains a tiny CAE (channels 4, 8) for one epoch on
the generated set and runs every arm for 2 epochs at fractions 1.0 and 0.5, 2 repeats each: its
scores are meaningless, its bookkeeping is what the tests check. The 2d arm runs from random
weights on 24 x 32 px images. Grids run on one torch thread: on a 2-core machine shared with other
jobs, two OpenMP threads stall each other (a ResNet-18 forward measured 25x slower).
"""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from ecgedge.cli import experiment as experiment_cli
from ecgedge.config import STANDARD_12_LEADS, DataConfig, ModelConfig
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.experiment.image2d import EcgImageClassifier, ResNet18, raster_from_windows
from ecgedge.experiment.transfer import (
    BUDGETS,
    Arm,
    Budget,
    Cell,
    ExperimentConfig,
    ImageConfig,
    bootstrap_records,
    cell_epochs,
    cell_seed,
    config_differences,
    grid_cells,
    recent_windows,
    run_experiment,
    t_interval,
)

TINY = ModelConfig(channels=(4, 8), kernels=(5, 3), head_channels=8)


def tiny_config(synth, out, **kw) -> ExperimentConfig:
    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache"))
    values = dict(data=data, pretrain_data=data, budget="tiny", fractions=(1.0, 0.5), repeats=2, epochs=2, pretrain_epochs=1, pretrain_hop=128,
                  pretrain_max_windows=0, model=TINY, image=ImageConfig(24, 32), threads=1, out=str(out))
    return ExperimentConfig(**(values | kw))


@pytest.fixture(scope="module")
def grid(synth, tmp_path_factory):
    cfg = tiny_config(synth, tmp_path_factory.mktemp("experiment") / "exp")
    return cfg, run_experiment(cfg, progress=False, command="ecgedge experiment transfer (test)")


# ----------------------------------------------------------------------------------- grid logic


def test_bootstrap_sample_is_the_fraction_of_the_train_part_with_replacement():
    labels = np.repeat([0, 1, 2, 3], [40, 25, 10, 5])
    train = np.arange(len(labels))
    for fraction in (1.0, 0.5, 0.25, 0.1):
        sample = bootstrap_records(train, labels, fraction, seed=3)
        assert len(sample) == round(fraction * len(train)), fraction
        assert set(sample) <= set(train)
        assert set(labels[sample]) == {0, 1, 2, 3}, fraction  # every class drawn, even the 5-record one at 10 %
        counts = np.bincount(labels[sample], minlength=4)
        assert np.all(np.abs(counts - fraction * np.array([40, 25, 10, 5])) <= 1), (fraction, counts)
    full = bootstrap_records(train, labels, 1.0, seed=3)
    assert len(np.unique(full)) < len(full)  # with replacement: a full-size draw repeats records
    assert np.array_equal(full, bootstrap_records(train, labels, 1.0, seed=3))


def test_cells_cover_the_grid_and_pairs_share_a_seed():
    cfg = ExperimentConfig(data=DataConfig(paths=("x",)), cae="c.pt", fractions=(1.0, 0.5, 0.25), repeats=3)
    cells = grid_cells(cfg)
    assert len(cells) == len(set(cells)) == 4 * 3 * 3
    assert len({c.sample_key for c in cells}) == 9
    seeds = {cell_seed(0, c.fraction, c.repeat) for c in cells}
    assert len(seeds) == 9  # one per (fraction, repeat), shared by its arms
    assert cell_seed(0, 0.5, 1) == cell_seed(0, 0.5, 1) != cell_seed(1, 0.5, 1)


def test_budget_presets_and_explicit_flags():
    base = dict(data=DataConfig(paths=("x",)), cae="c.pt")
    small = ExperimentConfig(**base)
    assert (small.repeats, small.epochs, small.image) == (BUDGETS[Budget.small].repeats, BUDGETS[Budget.small].epochs, BUDGETS[Budget.small].image)
    paper = ExperimentConfig(**base, budget="paper", epochs=7)
    assert paper.repeats == 10 and paper.epochs == 7  # the flag overrides the preset


def test_a_recipe_supplies_the_classifier_and_flags_override_it():
    base = dict(data=DataConfig(paths=("x",)), cae="c.pt", budget="small")
    cfg = ExperimentConfig(**base, recipe="cinc2017-rhythm")  # the shipped classifier's classify.toml
    assert cfg.leads == ("I",) and cfg.class_weighting.value == "sqrt" and cfg.weight_decay == 0.0005
    assert (cfg.model.head_channels, cfg.model.head_dilations, cfg.model.dropout) == (96, (1, 2, 4, 8), 0.3)
    assert (cfg.window.hop, cfg.lr, cfg.batch_size) == (1024, 0.003, 64)
    assert cfg.repeats == BUDGETS[Budget.small].repeats  # sizes still come from the budget
    assert ExperimentConfig(**base, recipe="cinc2017-rhythm", lr=1e-4, leads=("II",)).lr == 1e-4
    plain = ExperimentConfig(**base)
    assert plain.leads == STANDARD_12_LEADS and plain.class_weighting.value == "inverse" and plain.model == ModelConfig()
    with pytest.raises(ConfigError, match="no shipped model named 'nope'"):
        ExperimentConfig(**base, recipe="nope")


def test_small_samples_get_at_least_min_steps_and_windows_are_the_most_recent():
    assert cell_epochs(windows=5000, batch_size=64, epochs=3, min_steps=30) == 3  # 79 steps an epoch
    assert cell_epochs(windows=100, batch_size=64, epochs=3, min_steps=30) == 15  # 2 steps an epoch
    assert cell_epochs(windows=0, batch_size=64, epochs=3, min_steps=0) == 3
    starts = np.array([900, 0, 300, 600, 5, 0])
    assert recent_windows(np.array([0, 1, 2, 3]), starts, 2).tolist() == [0, 3]  # starts 900 and 600
    assert recent_windows(np.array([4, 5]), starts, 0).tolist() == [4, 5]


@pytest.mark.parametrize("kw, match", [
    (dict(fractions=(1.5,)), r"\(0, 1\]"),
    (dict(fractions=(0.5, 0.5)), "repeat"),
    (dict(cae=None), "need a CAE"),
    (dict(pretrain_data=DataConfig(paths=("y",))), "not both"),
    (dict(repeats=0), "repeats"),
])
def test_bad_configs_are_user_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig(**(dict(data=DataConfig(paths=("x",)), cae="c.pt") | kw))


def test_random_and_2d_arms_need_no_cae():
    assert not ExperimentConfig(data=DataConfig(paths=("x",)), arms=("random", "2d")).needs_cae


def test_t_interval():
    st = t_interval([0.8, 0.9])
    assert st["mean"] == pytest.approx(0.85)
    assert st["half_width"] == pytest.approx(12.7062 * 0.0707107 / 2 ** 0.5, rel=1e-4)  # t(0.975, 1) = 12.706
    assert st["lo"] < st["mean"] < st["hi"]
    clipped = t_interval([0.8, 0.9], bounds=(0.0, 1.0))
    assert clipped["lo"] == pytest.approx(st["lo"]) and clipped["hi"] == 1.0  # 0.85 + 0.635 clipped to F1's bound
    assert t_interval([0.7])["lo"] is None


def test_config_differences_ignore_where_and_how_fast():
    a = {"out": "a", "device": "cpu", "epochs": 2, "data": {"paths": ["d"], "cache_dir": "c1"}}
    b = {"out": "b", "device": "cuda", "epochs": 3, "data": {"paths": ["d"], "cache_dir": "c2"}}
    assert config_differences(a, b) == ["epochs: 2 -> 3"]


# ----------------------------------------------------------------------------------- 2-D arm


def test_raster_draws_one_continuous_trace_per_lead():
    t = torch.linspace(0, 8 * np.pi, 2048)
    x = torch.stack([torch.sin(t), torch.cos(t), t]).unsqueeze(0)  # (1, 3 leads, 2048)
    img = raster_from_windows(x, rows_per_lead=10, width_px=64)
    assert img.shape == (1, 1, 30, 64) and set(img.unique().tolist()) <= {0.0, 1.0}
    bands = img[0, 0].reshape(3, 10, 64)
    assert torch.all(bands.sum(1) >= 1)  # every column of every lead is inked
    ramp = bands[2]
    assert ramp[-1, 0] == 1 and ramp[0, -1] == 1  # a rising ramp runs from bottom left to top right


def test_imagenet_weights_load_by_torchvision_names_and_mismatches_are_reported(tmp_path):
    src = ResNet18(1000)
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}  # as in resnet18-f37072d3.pth
    torch.save(sd, tmp_path / "resnet18.pth")
    model = EcgImageClassifier(24, 32, 12, 4)
    model.load_imagenet(tmp_path / "resnet18.pth")
    assert torch.equal(model.resnet.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    assert model.resnet.fc.out_features == 4  # our classes, not ImageNet's 1000
    assert model(torch.randn(2, 12, 2048)).shape == (2, 4)

    bad = dict(sd)
    bad["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    del bad["layer4.1.bn2.running_var"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ArtefactError) as exc:
        EcgImageClassifier(24, 32, 12, 4).load_imagenet(tmp_path / "bad.pth")
    msg = str(exc.value)
    assert "layer4.1.bn2.running_var" in msg and "conv1.weight (64, 1, 7, 7) (expected (64, 3, 7, 7))" in msg


def test_image_too_small_for_the_leads_is_a_user_error():
    with pytest.raises(ConfigError, match="at least 24 px"):
        EcgImageClassifier(16, 32, 12, 4)


# ----------------------------------------------------------------------------------- end to end


def test_grid_writes_table_results_plot_and_report(grid):
    cfg, res = grid
    out = res.out
    assert res.cells_run == 16 and res.cells_skipped == 0
    for name in ("experiment.json", "inputs.json", "split.json", "plan.json", "results.json", "table.md", "f1_vs_records.png", "report.md", "cae/best.pt"):
        assert (out / name).is_file(), name
    for cell in grid_cells(cfg):
        assert cell.path(out).is_file(), cell
    r = json.loads((out / "results.json").read_text())
    assert r["cells"] == {"done": 16, "total": 16, "train_s_total": r["cells"]["train_s_total"]}
    assert set(r["results"]) == {"transfer", "random", "frozen", "2d"}
    for arm, by_fraction in r["results"].items():
        assert set(by_fraction) == {"1", "0.5"}
        for stats in by_fraction.values():
            for key in ("macro_f1", "weighted_f1"):
                s = stats[key]
                assert s["n"] == 2 and all(0 <= v <= 1 for v in s["values"]), (arm, key, s)
                assert s["lo"] <= s["mean"] <= s["hi"], (arm, key, s)
            assert set(stats["per_class_f1"]) == set(r["class_names"]) == {"SB", "AFIB", "GSVT", "SR"}
    assert set(r["paired_vs_random"]) == {"transfer", "frozen", "2d"}
    assert r["cae"]["held_out"]["mse_uv2"] > 0 and r["paper"]["cae_mse_uv2"] == 626.583
    assert "random initialisation" in r["image2d_init"]
    assert set(r["paired_vs_random"]["transfer"]) == {"macro_f1"}  # chapman4 has no challenge score
    table = (out / "table.md").read_text()
    assert table.startswith("**macro F1 (all classes)**\n\n| arm | 100 % (") and "*paper: random* | *0.843* | *0.831* |" in table
    assert res.table.count("\n| ") == 1 + 4 + 2 and "±" in table  # header, 4 arms, 2 paper rows
    assert "Chapman-Shaoxing, 12-lead, 11 classes" in table  # the paper's rows name their own data set
    report = (out / "report.md").read_text()
    for text in ("ecgedge experiment transfer (test)", "| SB |", "µV²", "626.583", "| torch |", "*paper: transfer*", "random initialisation"):
        assert text in report, text


def test_splits_never_leak_and_samples_have_the_fraction_size(grid):
    cfg, res = grid
    split = json.loads((res.out / "split.json").read_text())
    train, test = set(split["train"]), set(split["test"])
    assert train and test and not train & test
    plan = json.loads((res.out / "plan.json").read_text())
    assert set(plan) == {c.sample_key for c in grid_cells(cfg)}
    for key, sample in plan.items():
        fraction = float(key.split("-")[0].removeprefix("frac"))
        assert len(sample) == round(fraction * len(split["train"])), key
        assert set(sample) <= train and not set(sample) & test, key
    for cell in grid_cells(cfg):
        result = json.loads(cell.path(res.out).read_text())
        assert result["train_records"] == len(plan[cell.sample_key])
        assert sum(result["test"]["records"]["support"].values()) == len(test)  # every arm scored on the same test records
    seeds = {(c.sample_key, json.loads(c.path(res.out).read_text())["seed"]) for c in grid_cells(cfg)}
    assert len(seeds) == len(plan)  # the arms of a (fraction, repeat) pair share its seed


def test_rerun_skips_done_cells_and_refuses_a_changed_config(grid):
    cfg, res = grid
    redo = Cell(Arm.random, 0.5, 1)
    before = json.loads(redo.path(res.out).read_text())
    others = {c: c.path(res.out).stat().st_mtime_ns for c in grid_cells(cfg) if c != redo}
    redo.path(res.out).unlink()
    again = run_experiment(cfg, progress=False)
    assert (again.cells_run, again.cells_skipped) == (1, 15)
    assert all(c.path(res.out).stat().st_mtime_ns == t for c, t in others.items())
    after = json.loads(redo.path(res.out).read_text())
    assert after["test"]["records"]["macro_f1"] == pytest.approx(before["test"]["records"]["macro_f1"], abs=1e-9)  # same seed, same result
    runs = [json.loads(line) for line in (res.out / "invocations.jsonl").read_text().splitlines()]
    assert [r["cells_run"] for r in runs] == [16, 1] and "16 cells in" in (res.out / "report.md").read_text()

    with pytest.raises(ConfigError, match=r"different config \(epochs: 2 -> 3"):
        run_experiment(replace(cfg, epochs=3), progress=False)

    # the grid's extent may change: fewer arms and fractions reuse the finished cells and train none
    fewer = run_experiment(replace(cfg, arms=("random", "transfer"), fractions=(0.5,)), progress=False)
    assert (fewer.cells_run, fewer.cells_skipped) == (0, 4)
    assert json.loads((res.out / "experiment.json").read_text())["config"]["arms"] == ["random", "transfer"]
    assert set(fewer.results["paired_vs_random"]) == {"transfer"}


def test_a_2d_image_too_small_fails_before_any_cell_trains(synth, tmp_path):
    cfg = tiny_config(synth, tmp_path / "exp", arms=("random", "2d"), image=ImageConfig(16, 32))
    with pytest.raises(ConfigError, match="at least 24 px"):
        run_experiment(cfg, progress=False)
    assert not (tmp_path / "exp" / "cells").exists()


# ----------------------------------------------------------------------------------- CLI


def cli_app():
    root = typer.Typer()
    root.add_typer(experiment_cli.app, name="experiment")  # as ecgedge.cli.main registers it
    return root


def test_cli_help():
    res = CliRunner().invoke(cli_app(), ["experiment", "transfer", "--help"])
    assert res.exit_code == 0, res.output
    for opt in ("--pretrain-data", "--cae", "--fractions", "--repeats", "--arms", "--budget", "--image-weights", "--out"):
        assert opt in res.output, opt


def test_cli_rejects_a_fraction_above_one(synth, tmp_path):
    res = CliRunner().invoke(cli_app(), ["experiment", "transfer", "--data", str(synth / "data"), "--labels", "chapman4",
                                         "--cae", str(synth / "data"), "--fractions", "1.0,1.5", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "fractions" in res.output and "(0, 1]" in res.output and "1.5" in res.output


def test_cli_transfer_arm_without_a_cae_is_one_line_error(synth, tmp_path):
    res = CliRunner().invoke(cli_app(), ["experiment", "transfer", "--data", str(synth / "data"), "--labels", "chapman4", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert "need a CAE" in res.output and "Traceback" not in res.output


def test_cli_runs_a_tiny_grid(synth, tmp_path):
    out = tmp_path / "cli"
    args = ["experiment", "transfer", "--data", str(synth / "data"), "--labels", "chapman4", "--arms", "random,2d", "--fractions", "1.0",
            "--repeats", "2", "--image-size", "24x32", "--threads", "1", "--cache-dir", str(synth / "cache"), "--out", str(out), "-q"]
    res = CliRunner().invoke(cli_app(), [*args, "--epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "| random init (same architecture) |" in res.output and "4 trained, 0 already done" in res.output
    assert "--arms random,2d" in (out / "report.md").read_text()
    res = CliRunner().invoke(cli_app(), [*args, "--epochs", "2"])
    assert res.exit_code == 2 and "different config (epochs: 1 -> 2)" in res.output


def test_cli_module_does_not_import_torch():
    code = "import sys, ecgedge.cli.experiment; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"
