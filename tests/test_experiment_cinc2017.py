"""The transfer experiment's grid on REAL records: CinC-2017 single-lead, the label-efficiency fractions.

A few dozen records of ``../shared/data/cinc2017/training2017`` (at most ``PER_CLASS`` of each class,
the first in its REFERENCE.csv, linked into a temporary folder with their labels) and one MIT-BIH
record as the unlabelled archive run the ``tiny`` budget: every fraction of the real grid, one
repeat, tiny models built in code, one torch thread (about a minute on a shared 2-core machine).
The scores are meaningless at this size; what is checked is that the grid is whole, the paired
differences are computed, the CAE never saw a test record and the report says so.
"""

import csv
import json

import pytest

from ecgedge.config import DataConfig, ModelConfig
from ecgedge.experiment.transfer import Arm, ExperimentConfig, grid_cells, run_experiment

pytestmark = pytest.mark.data

CINC2017 = "cinc2017/training2017"
PER_CLASS = {"N": 12, "A": 8, "O": 10, "~": 6}  # 36 records: every class in the test part, ~ included
FRACTIONS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
TINY = ModelConfig(channels=(4, 8), kernels=(5, 3), head_channels=8, head_dilations=(1, 2), dropout=0.3)


@pytest.fixture(scope="module")
def cinc_grid(shared_data, tmp_path_factory):
    src = shared_data / CINC2017
    mitdb = shared_data / "mitdb"
    if not (src / "REFERENCE.csv").is_file() or not (mitdb / "100.hea").is_file():
        pytest.skip(f"{src} (with REFERENCE.csv) or {mitdb}/100 not found")
    root = tmp_path_factory.mktemp("cinc2017")
    data, archive = root / "training2017", root / "mitdb"
    data.mkdir()
    archive.mkdir()
    picked = []
    with open(src / "REFERENCE.csv") as f:
        for rid, label in csv.reader(f):
            if sum(lab == label for _, lab in picked) < PER_CLASS.get(label, 0):
                picked.append((rid, label))
    for rid, _ in picked:
        for ext in (".hea", ".mat"):
            (data / f"{rid}{ext}").symlink_to(src / f"{rid}{ext}")
    (data / "REFERENCE.csv").write_text("".join(f"{rid},{label}\n" for rid, label in picked))
    for ext in (".hea", ".dat"):
        (archive / f"100{ext}").symlink_to(mitdb / f"100{ext}")

    cfg = ExperimentConfig(
        data=DataConfig(paths=(str(data),), cache_dir=str(root / "cache")), labels="cinc2017",
        pretrain_data=DataConfig(paths=(str(archive),), cache_dir=str(root / "cache")), pretrain_on_train=True,
        recipe="cinc2017-rhythm", model=TINY, budget="tiny", fractions=FRACTIONS, arms=("transfer", "random", "frozen"),
        test_fraction=0.25, threads=1, out=str(root / "exp"))
    return cfg, picked, run_experiment(cfg, progress=False, command="ecgedge experiment transfer (cinc2017 test)")


def test_every_cell_of_the_real_grid_is_scored_with_the_challenge_score(cinc_grid):
    cfg, picked, res = cinc_grid
    assert res.cells_run == len(FRACTIONS) * 3 and all(c.path(res.out).is_file() for c in grid_cells(cfg))
    r = json.loads((res.out / "results.json").read_text())
    assert r["class_names"] == ["N", "A", "O", "~"] and r["records"]["leads"] == ["I"]
    assert r["records"]["train"] + r["records"]["test"] == len(picked)
    assert r["metrics"] == ["challenge_score", "macro_f1"]
    # the recipe is the shipped classifier's (class weighting, weight decay, lr, batch), the sizes the tiny budget's
    assert (r["config"]["class_weighting"], r["config"]["weight_decay"], r["config"]["lr"]) == ("sqrt", 0.0005, 0.003)
    for arm in ("transfer", "random", "frozen"):
        for f in FRACTIONS:
            cell = r["results"][arm][f"{f:g}"]
            for m in ("challenge_score", "macro_f1"):
                assert cell[m]["n"] == 1 and 0 <= cell[m]["mean"] <= 1, (arm, f, m)
    assert r["train_records"]["0.02"] == 1  # 2 % of a few dozen records is one record: the grid still runs


def test_paired_difference_is_transfer_minus_random_on_the_same_sample(cinc_grid):
    cfg, _, res = cinc_grid
    r = json.loads((res.out / "results.json").read_text())
    for f in FRACTIONS:
        cells = {a: json.loads(next(c for c in grid_cells(cfg) if c.arm is a and c.fraction == f).path(res.out).read_text())
                 for a in (Arm.transfer, Arm.random)}
        assert cells[Arm.transfer]["seed"] == cells[Arm.random]["seed"]
        assert cells[Arm.transfer]["train_records"] == cells[Arm.random]["train_records"]
        for m in ("challenge_score", "macro_f1"):
            diff = cells[Arm.transfer]["test"]["records"][m] - cells[Arm.random]["test"]["records"][m]
            assert r["paired_vs_random"]["transfer"][m][f"{f:g}"]["values"] == pytest.approx([diff], abs=1e-12), (f, m)


def test_the_cae_never_saw_a_test_record(cinc_grid):
    _, picked, res = cinc_grid
    split = json.loads((res.out / "split.json").read_text())
    cae_split = json.loads((res.out / "cae" / "split.json").read_text())
    pretrained_on = set(cae_split["train_records"]) | set(cae_split["val_records"])
    test, train = set(split["test"]), set(split["train"])
    assert len(test) >= 4 and not pretrained_on & test
    assert sorted(test) == cae_split["excluded_records"]
    assert "100" in pretrained_on and pretrained_on - {"100"} <= train  # the archive, and training records with labels unused
    r = json.loads((res.out / "results.json").read_text())
    assert r["cae"]["test_records_seen_in_pretraining"] == 0 and r["cae"]["held_out"]["mse_uv2"] > 0


def test_report_names_data_split_cae_and_paper_row(cinc_grid):
    _, _, res = cinc_grid
    report = (res.out / "report.md").read_text()
    for text in ("ecgedge experiment transfer (cinc2017 test)", "the CAE was pretrained only on windows of records outside the test split",
                 "µV²", "**challenge score (mean F1 of N, A, O)**", "| transfer, challenge score |", "| frozen, macro F1 |", "| ~ |",
                 "Chapman-Shaoxing, 12-lead, 11 classes", "cinc2017-rhythm"):
        assert text in report, text
    png = res.out / "f1_vs_records.png"
    assert png.is_file() and png.stat().st_size < 300_000
