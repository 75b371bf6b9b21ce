"""``ecgedge quickstart``: the whole chain on a generated data set, on a fresh machine, in minutes.

synthetic 12-lead records (WFDB, ecg-arrhythmia layout) -> CAE pretraining on lead II ->
transfer classifier (chapman4) -> ONNX FP32 + INT8 export with the accuracy gate -> re-check of
the export folder through the torch-free runtime. Everything lands under one folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ecgedge.config import ClassifyConfig, DataConfig, ExportConfig, LabelScheme, PretrainConfig, WindowConfig


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes chosen so the chain finishes in a few minutes on 2 CPU cores."""

    out: str = "ecgedge-quickstart"
    records_per_rhythm: int = 40
    pretrain_epochs: int = 4
    classify_epochs: int = 12
    seed: int = 0


@dataclass
class QuickstartResult:
    out: Path
    steps: list[tuple[str, float, str]] = field(default_factory=list)


def quickstart(cfg: QuickstartConfig, *, progress: bool = True, log=print) -> QuickstartResult:
    from ecgedge.data.synthetic import write_wfdb_dataset
    from ecgedge.export.pipeline import check_export, main_export
    from ecgedge.train import classify, pretrain

    out = Path(cfg.out)
    res = QuickstartResult(out)
    data_dir, cache = out / "data", out / "cache"

    def step(name, fn):
        log(f"\n== {name}")
        t = time.perf_counter()
        value, where = fn()
        res.steps.append((name, time.perf_counter() - t, where))
        return value

    step("1/5 generate a synthetic 12-lead data set (WFDB, ecg-arrhythmia layout)", lambda: (
        write_wfdb_dataset(data_dir, records_per_rhythm=cfg.records_per_rhythm, seed=cfg.seed, progress=progress), str(data_dir)))
    data = DataConfig(paths=(str(data_dir),), cache_dir=str(cache))
    cae = step("2/5 pretrain the CAE on lead II", lambda: (lambda r: (r, str(r.checkpoint)))(pretrain(PretrainConfig(
        data=data, window=WindowConfig(hop=128), epochs=cfg.pretrain_epochs, seed=cfg.seed, run_dir=str(out / "runs" / "cae")), progress=progress)))
    log(f"CAE held-out MSE {cae.metrics['held_out']['mse_normalised']:.4f} (normalised), {cae.metrics['held_out']['mse_uv2']:.1f} µV²")
    clf = step("3/5 train the transfer classifier (chapman4: SB, AFIB, GSVT, SR)", lambda: (lambda r: (r, str(r.checkpoint)))(classify(ClassifyConfig(
        data=data, labels=LabelScheme.chapman4, init=str(cae.checkpoint), epochs=cfg.classify_epochs, seed=cfg.seed,
        run_dir=str(out / "runs" / "classifier")), progress=progress)))
    rec = clf.metrics["test"]["records"]
    log(f"held-out macro F1 {rec['macro_f1']:.3f}, weighted F1 {rec['weighted_f1']:.3f} on {clf.metrics['records']['test']} records")
    exp = step("4/5 export ONNX FP32 + INT8 and run the accuracy gate", lambda: (lambda r: (r, str(r.folder)))(main_export(ExportConfig(
        source=str(clf.run_dir), out=str(out / "export"), int8=True), progress=progress, log=log)))
    step("5/5 re-verify the export folder with the torch-free runtime (as a device would)", lambda: (
        check_export(exp.folder, log=log), str(exp.folder / "manifest.json")))

    log("\nwhere everything went:")
    for name, secs, where in res.steps:
        log(f"  {name.split(' ', 1)[1][:60]:<62} {secs:6.1f} s  {where}")
    return res
