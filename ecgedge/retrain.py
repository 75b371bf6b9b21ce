"""Retrain the shipped models (ecgedge/shipped/) from the real records in ``../shared/data``, seeded, in four steps.

``ecgedge models retrain --data ../shared/data --out runs/shipped`` runs exactly what made the
shipped models, with the configs stored beside them (``cinc2017-cae/pretrain.toml``,
``cinc2017-rhythm/classify.toml``):

1. a lead-II window store of every record of ``cinc2017/training2017`` and ``mitdb`` (hop 1024
   samples at 250 Hz, labels unused);
2. the CAE pretrained on all of it (held-out MSE in µV² against the paper's 626.6);
3. the single-lead CinC-2017 classifier (N, A, O, ~) on ``cinc2017/training2017``, CAE-initialised,
   stratified 8:2 record split, seed 0, with the 30 records of ``cinc2017/validation`` forced
   into the test split (``--holdout``), so the shipped-model test scores records it never trained on;
4. export FP32 + INT8 with the accuracy gate on every held-out record.

``install=True`` then copies the CAE checkpoint and the export folder into the package (this is
how the shipped folders were made). Training imports torch: this module is not part of the
edge runtime.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ecgedge.config import ClassifyConfig, DataConfig, ExportConfig, PretrainConfig, config_from_toml
from ecgedge.errors import DataNotFound
from ecgedge.fsio import atomic_copy, atomic_write_text, staged_folder, swap_folder
from ecgedge.hashing import file_sha256
from ecgedge.shipped import SHIPPED_ROOT

CAE_NAME = "cinc2017-cae"
CLASSIFIER_NAME = "cinc2017-rhythm"
CHECK_WINDOWS = 64  # stored with the shipped export for `export --check` (~0.5 MiB of single-lead windows)


@dataclass(frozen=True)
class RetrainResult:
    out: Path
    cae_metrics: dict
    classifier_metrics: dict
    export_folder: Path


def retrain_shipped(shared_data: str | Path, out: str | Path, *, cache_dir: str | None = None, install: bool = False,
                    progress: bool = True, log=print) -> RetrainResult:
    """Rebuild both shipped models from ``shared_data`` into ``out`` (store/, cae/, clf/, export/)."""
    from ecgedge.data.store import build_store
    from ecgedge.export.pipeline import main_export
    from ecgedge.train import classify, pretrain

    shared, out = Path(shared_data), Path(out)
    training, validation, mitdb = shared / "cinc2017" / "training2017", shared / "cinc2017" / "validation", shared / "mitdb"
    for folder in (training, validation, mitdb):
        if not folder.is_dir():
            raise DataNotFound(f"{folder} not found: the shipped models are trained on cinc2017/training2017, cinc2017/validation (held out) and mitdb")
    out.mkdir(parents=True, exist_ok=True)

    log("== 1/4 window store: lead II of every CinC-2017 training and MIT-BIH record (labels unused)")
    store = out / "store-lead2"
    if not (store / "store.json").is_file():
        build_store(DataConfig(paths=(str(training), str(mitdb))), store, ("II",), progress=progress)
    log("== 2/4 pretrain the CAE")
    cae = pretrain(config_from_toml(PretrainConfig, SHIPPED_ROOT / CAE_NAME / "pretrain.toml", data__paths=[str(store)],
                                    run_dir=str(out / "cae")), progress=progress, overwrite=True)
    log(f"CAE held-out MSE {cae.metrics['held_out']['mse_uv2']:.1f} µV² (paper: 626.6)")
    log("== 3/4 train the CinC-2017 rhythm classifier")
    clf = classify(config_from_toml(ClassifyConfig, SHIPPED_ROOT / CLASSIFIER_NAME / "classify.toml", data__paths=[str(training)],
                                    holdout=[str(validation)], init=str(cae.checkpoint), run_dir=str(out / "clf"),
                                    data__cache_dir=cache_dir), progress=progress, overwrite=True)
    rec = clf.metrics["test"]["records"]
    log(f"held-out challenge score {rec['challenge_score']:.3f}, macro F1 {rec['macro_f1']:.3f} on {clf.metrics['records']['test']} records")
    log("== 4/4 export FP32 + INT8 with the accuracy gate")
    exp = main_export(ExportConfig(source=str(clf.run_dir), out=str(out / "export"), int8=True, check_windows=CHECK_WINDOWS),
                      progress=progress, log=log)
    if install:
        install_shipped(cae.checkpoint, exp.folder, log=log)
        write_cards(cae.run_dir, clf.run_dir, exp.folder)
    return RetrainResult(out, cae.metrics, clf.metrics, exp.folder)


def install_shipped(cae_checkpoint: str | Path, export_folder: str | Path, *, log=print) -> None:
    """Copy a CAE checkpoint and a gated export folder into the package's shipped folders
    (replacing the previous ones atomically: written beside, then renamed)."""
    from ecgedge.manifest import load_manifest

    load_manifest(export_folder, verify=True)  # only a complete, hash-clean export is shipped
    cae_dst = atomic_copy(cae_checkpoint, SHIPPED_ROOT / CAE_NAME / "cae.pt")
    meta = SHIPPED_ROOT / CAE_NAME / "shipped.json"
    d = json.loads(meta.read_text())
    d["sha256"] = file_sha256(cae_dst)
    atomic_write_text(meta, json.dumps(d, indent=2) + "\n")
    dst = SHIPPED_ROOT / CLASSIFIER_NAME / "export"
    staging = staged_folder(dst)
    shutil.copytree(export_folder, staging, dirs_exist_ok=True)
    swap_folder(staging, dst)
    log(f"installed {cae_dst} and {dst}; they verify only once pinned and signed again: ecgedge models pin --sign PROJECT_KEY")


# ------------------------------------------------------------------------------------------ cards

LIMITS = """## Limits
- Research use only. This is **not a medical device** and must not be used for diagnosis or patient care.
- Trained on single-lead recordings from one hand-held device (AliveCor, CinC-2017: 30-60 s held between
  two hands, a lead close to lead I), 2014-era. Bedside 12-lead or Holter leads (II, V1, MLII) differ in
  morphology; score it on your own data first (`ecgedge evaluate`).
- Four classes only: N (normal sinus rhythm), A (atrial fibrillation), O (any other rhythm, a mixed
  bag), ~ (too noisy). Atrial flutter, blocks, ectopy are all "O" or go unrecognised.
- The held-out figures come from 6,529 of the challenge's 8,528 training records (the copy in
  `../shared/data`), a stratified 20 % by record; the challenge's hidden test set was not used.
"""


def _ci(rec: dict, key: str) -> str:
    lo, hi = rec.get("intervals_95", {}).get(key, (float("nan"), float("nan")))
    return f"[{lo:.3f}, {hi:.3f}]"


def classifier_card(run_dir: str | Path, export_folder: str | Path) -> str:
    """The classifier's model card, every figure read from its run folder and export manifest."""
    run, export = Path(run_dir), Path(export_folder)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    manifest = json.loads((export / "manifest.json").read_text())
    rec = metrics["test"]["records"]
    classes = rec["class_names"]
    rows = "\n".join(f"| {c} | {rec['per_class_f1'][c]:.3f} | {_ci(rec, 'f1_' + c)} | {rec['support'][c]} |" for c in classes)
    conf = "\n".join(f"| **{c}** | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, rec["confusion"]))
    arts = manifest["artefacts"]
    files = manifest["files"]
    gate_rows = []
    for key, art in arts.items():
        size = files.get(art["file"], {}).get("bytes", 0) / 1024
        reports = (art.get("gate") or {}).values()  # one gate report per backend it ran on
        for g in reports:
            gate_rows.append(f"| {key} ({g['backend']}) | {art.get('status')} | {g['macro_f1']:.4f} | {-g['f1_drop']:+.4f} | {g['agreement']:.2%} | {size:.1f} KiB |")
        if not reports:
            gate_rows.append(f"| {key} | {art.get('status')} | | | | {size:.1f} KiB |")
    gate = manifest.get("gate", {})
    model = manifest.get("model", {})
    m = config["model"]
    return f"""# cinc2017-rhythm: single-lead rhythm classifier (N / A / O / ~)

A CAE-initialised 1-D CNN that classifies a single ECG lead into the four PhysioNet/CinC Challenge 2017
classes. Export folder: `export/` (FP32 and INT8 ONNX, `manifest.json` with every sha256 and the accuracy gate).

## Input and output
- One lead (`{manifest['input']['leads'][0]}`; any single-lead recording serves it), {manifest['input']['window_samples']} samples
  at {manifest['input']['fs_hz']:.0f} Hz ({manifest['input']['window_s']:.3f} s), after the shared preprocessing (causal resampling,
  0.5-40 Hz band-pass, per-window z-score). Records at other rates (CinC-2017: 300 Hz) are resampled.
- Logits for {', '.join(classes)}. A **record** is classified by the argmax of its windows' mean softmax probabilities.
  Windows are aligned to the record's end and step back by {config['window']['hop']} samples ({config['window']['hop'] / manifest['input']['fs_hz']:.3f} s)
  in training and in the figures below; `ecgedge evaluate` steps by the window length unless `--hop` says otherwise.

## Data and split
- `cinc2017/training2017`: {metrics['records']['train'] + metrics['records']['val'] + metrics['records']['test']} usable records
  ({len(json.loads((run / "data_summary.json").read_text())["skipped"])} skipped, shorter than one window; the set's REFERENCE.csv has N 3,907, A 568, O 1,861, ~ 193).
- Record-level stratified split, seed {config['seed']}: {metrics['records']['train']} training, {metrics['records']['val']} validation
  (picks the epoch with the best challenge score), {metrics['records']['test']} test. The 30 records of
  `cinc2017/validation` are forced into the test split (`--holdout`), so the shipped-model test scores unseen records.
- Classes are imbalanced (A 9 %, ~ 3 %): the loss weighs classes by the square root of their inverse frequency
  (`class_weighting = "{config['class_weighting']}"`).

## How it was made
```
OMP_NUM_THREADS=1 ecgedge models retrain --data ../shared/data --out runs/shipped   # the store, the CAE, this classifier, the export
```
(one thread per process: the figures below then come out the same, epoch by epoch; a verification run of this
command on the 2-core development VM reproduced them exactly in 20 minutes)
which runs `ecgedge data build` (lead II windows of training2017 + MIT-BIH), `ecgedge train pretrain --config
cinc2017-cae/pretrain.toml`, `ecgedge train classify --config cinc2017-rhythm/classify.toml --labels cinc2017
--init CAE --holdout ../shared/data/cinc2017/validation` and `ecgedge export --int8 --check-windows 64`.
Encoder channels {m['channels']}, kernels {m['kernels']} (transferred from `cinc2017-cae`), head {m['head_channels']} channels with dilations
{m['head_dilations']}, dropout {m['dropout']}; {config['epochs']} epochs, batch {config['batch_size']}, AdamW lr {config['lr']} one-cycle;
best epoch {metrics['best_epoch']}. {model.get('params', metrics['params']):,} parameters, {metrics['macs_per_window'] / 1e6:.1f} M MACs per window.

## Held-out metrics ({metrics['records']['test']} test records, 95 % percentile-bootstrap intervals over records)
| figure | value | 95 % interval |
|---|---|---|
| **challenge score** (mean F1 of N, A, O) | **{rec['challenge_score']:.3f}** | {_ci(rec, 'challenge_score')} |
| macro F1 (four classes) | {rec['macro_f1']:.3f} | {_ci(rec, 'macro_f1')} |
| accuracy | {rec['accuracy']:.3f} | {_ci(rec, 'accuracy')} |

| class | F1 | 95 % interval | records |
|---|---|---|---|
{rows}

Confusion matrix (rows: truth, columns: prediction {', '.join(classes)}):

| | {' | '.join(classes)} |
|---|{'---|' * len(classes)}
{conf}

For scale: the 2017 winners scored 0.83 on the hidden test set with all 8,528 records and far larger
networks; this model is small enough for a bedside box (INT8 file below).

## Export and accuracy gate (INT8 vs the FP32 PyTorch model, on every held-out window)
{gate.get('windows', '')} windows of {len(gate.get('records', []))} held-out records (window-level macro F1; thresholds: F1 drop at most
{gate.get('max_f1_drop')}, agreement at least {gate.get('min_agreement', 0):.0%}):

| artefact | status | window macro F1 | ΔF1 | agreement | size |
|---|---|---|---|---|---|
{chr(10).join(gate_rows)}

{LIMITS}"""


def cae_card(run_dir: str | Path) -> str:
    """The CAE's model card from its run folder."""
    run = Path(run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "data_summary.json").read_text())
    held = metrics["held_out"]
    m = config["model"]
    return f"""# cinc2017-cae: convolutional autoencoder, one lead, 2048 samples at 250 Hz

The encoder that `cinc2017-rhythm` starts from (`ecgedge train classify --init cinc2017-cae` transfers it).
File: `cae.pt` (an ecgedge checkpoint: `torch.load(weights_only=True)` loads it).

## Data
Every window (2048 samples, hop 1024) of lead II, or of the only lead, of `cinc2017/training2017`
and `mitdb` in `../shared/data`: {len(summary['used'])} records, {metrics['train_windows'] + metrics['val_windows']} windows
({len(summary['skipped'])} records skipped: {', '.join(f'{k} ({v})' for k, v in summary['skipped'].items())}). Labels are not used.
The held-out part is a record-level 10 % ({metrics['val_windows']} windows). The CAE saw the signals (not the labels) of
the classifier's test records: pretraining is unsupervised and uses all the unlabeled material, as the paper does.

## How it was made
`ecgedge data build ../shared/data/cinc2017/training2017 ../shared/data/mitdb --out store --lead II --hop 1024`, then
`ecgedge train pretrain --data store --config pretrain.toml` ({config['epochs']} epochs, batch {config['batch_size']}, lr {config['lr']},
seed {config['seed']}; {metrics['train_windows_per_s']:.0f} windows/s on one core). Or `ecgedge models retrain`.
Encoder channels {m['channels']}, kernels {m['kernels']}; {metrics['params']:,} parameters, {metrics['macs_per_window'] / 1e6:.2f} M MACs per window.

## Held-out reconstruction
| figure | value |
|---|---|
| MSE, z-scored window | {held['mse_normalised']:.4f} |
| MSE in µV² (reconstruction scaled back by each window's std) | **{held['mse_uv2']:.1f}** |
| RMSE | {held['rmse_uv']:.1f} µV |
| paper (Jang et al. 2021, its own lead-II data and preprocessing) | 626.6 µV² |

The µV² figures are not strictly comparable: ours are of the 0.5-40 Hz band-passed signal (baseline wander and
high-frequency noise removed before the CAE sees it), on different recordings.

## Limits
- Research use only; not a medical device.
- Learned from hand-held single-lead (CinC-2017) and ambulatory MLII (MIT-BIH) recordings.
"""


def write_cards(cae_run: str | Path, clf_run: str | Path, export_folder: str | Path) -> None:
    """Write both cards into the package's shipped folders."""
    (SHIPPED_ROOT / CAE_NAME / "card.md").write_text(cae_card(cae_run))
    (SHIPPED_ROOT / CLASSIFIER_NAME / "card.md").write_text(classifier_card(clf_run, export_folder))
