"""``ecgedge train pretrain|classify``: thin wrappers over :mod:`ecgedge.train`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import default_run_dir, echo, user_errors
from ecgedge.config import ClassifyConfig, ClassWeighting, Device, LabelScheme, PretrainConfig, config_from_toml

app = typer.Typer(help="Train the CAE (pretrain), the rhythm classifier (classify) and the rhythm trees (rhythm-trees).", no_args_is_help=True)

DataOpt = typer.Option(..., "--data", exists=True, help="Record files or folders (searched recursively); repeatable.")
ConfigOpt = typer.Option(None, "--config", exists=True, dir_okay=False, help="TOML config (e.g. a run's config.toml); flags override it.")


@app.command("pretrain")
@user_errors
def pretrain_cmd(
    data: list[Path] = typer.Option(..., "--data", exists=True, help="Record files or folders (searched recursively), repeatable; "
                                    "or one window store (ecgedge data build), whose preprocessing and windows are then used."),
    lead: str = typer.Option("II", help="Lead to pretrain on (MLII counts as II; single-lead records use their lead)."),
    config: Optional[Path] = ConfigOpt,
    epochs: Optional[int] = typer.Option(None, min=1),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None, min=0.0),
    hop: Optional[int] = typer.Option(None, min=1, help="Samples between windows at 250 Hz (default 1024)."),
    max_windows: Optional[int] = typer.Option(None, min=0, help="Train on at most this many windows (0 = all)."),
    max_records: Optional[int] = typer.Option(None, min=0, help="Read at most this many records (0 = all)."),
    seed: Optional[int] = typer.Option(None),
    device: Optional[Device] = typer.Option(None),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (default runs/cae-TIMESTAMP)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Window cache folder (default ~/.cache/ecgedge)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir after its last completed epoch (run_dir/train_state.pt)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the run in --run-dir again: its files go, a user's files beside them stay."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Pretrain the convolutional autoencoder on unlabeled single-lead windows (8.192 s at 250 Hz).

    Runs unchanged under torchrun (one process per GPU, or per CPU share with --device cpu):
    --batch-size is per process, the global batch is --batch-size x processes; rank 0 prints and writes.
    """
    from ecgedge.train import pretrain

    _need_run_dir_to_resume(resume, run_dir, config)
    cfg = config_from_toml(
        PretrainConfig, config, data__paths=[str(p) for p in data], lead=lead, epochs=epochs, batch_size=batch_size,
        lr=lr, window__hop=hop, max_windows=max_windows, data__max_records=max_records, seed=seed,
        device=device.value if device else None, data__cache_dir=str(cache_dir) if cache_dir else None,
        run_dir=run_dir or (None if config else default_run_dir("cae")),
    )
    res = pretrain(cfg, progress=not quiet, resume=resume, overwrite=overwrite)
    if not res.metrics:  # a torchrun rank other than 0: rank 0 reports
        raise typer.Exit(130 if res.interrupted else 0)
    m = res.metrics["held_out"]
    _say_if_interrupted(res.metrics)
    echo(f"CAE held-out reconstruction MSE: {m.get('mse_normalised', float('nan')):.4f} (normalised), "
         f"{m.get('mse_uv2', float('nan')):.1f} µV² (paper: 626.6)")
    echo(f"run folder: {res.run_dir}\ncheckpoint: {res.checkpoint}")
    if res.interrupted:
        raise typer.Exit(130)


@app.command("classify")
@user_errors
def classify_cmd(
    data: list[Path] = DataOpt,
    labels: Optional[LabelScheme] = typer.Option(None, help="Label scheme (default chapman4, or the --config file's)."),
    init: Optional[str] = typer.Option(None, help="CAE checkpoint (file or run folder, or a shipped CAE's name such as cinc2017-cae) to transfer, or 'random' (the default, or the --config file's)."),
    train_fraction: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Fraction of training records used (paper: 1.0, 0.5, 0.25)."),
    freeze_encoder: bool = typer.Option(False, help="Keep the transferred encoder fixed; train the head only."),
    allow_incomplete_init: bool = typer.Option(False, "--allow-incomplete-init",
                                               help="Transfer a CAE whose pretraining did not finish (Ctrl-C's last.pt); the run records it."),
    class_weighting: Optional[ClassWeighting] = typer.Option(None, help="Class weights of the loss: inverse frequency (default), its square root, or none."),
    holdout: Optional[list[Path]] = typer.Option(None, "--holdout", exists=True, help="Files or folders whose records (by id) always go to the test split; repeatable."),
    head_dilations: Optional[str] = typer.Option(None, help="Comma-separated dilations of the head's k=5 convolutions (default 1; e.g. 1,2,4,8 sees ~4 s)."),
    leads: Optional[str] = typer.Option(None, help="Comma-separated leads (default the 12 standard leads)."),
    labels_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Label table: Diagnostics.xlsx, REFERENCE.csv or metadata.csv."),
    config: Optional[Path] = ConfigOpt,
    epochs: Optional[int] = typer.Option(None, min=1),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None, min=0.0),
    test_fraction: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Held-out records (default 0.2, the paper's 8:2)."),
    max_records: Optional[int] = typer.Option(None, min=0),
    seed: Optional[int] = typer.Option(None),
    device: Optional[Device] = typer.Option(None),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (default runs/clf-TIMESTAMP)."),
    cache_dir: Optional[Path] = typer.Option(None),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir after its last completed epoch (run_dir/train_state.pt)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the run in --run-dir again: its files go, a user's files beside them stay."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Train the rhythm classifier on 10-s multi-lead records and evaluate it on held-out records."""
    from ecgedge.shipped import resolve_source
    from ecgedge.train import fit_classifier

    _need_run_dir_to_resume(resume, run_dir, config)
    if init and init != "random":
        init = str(resolve_source(init))  # a shipped CAE's name (ecgedge models) or a path
    cfg = config_from_toml(
        ClassifyConfig, config, data__paths=[str(p) for p in data], labels=labels.value if labels else None, init=init,
        train_fraction=train_fraction, freeze_encoder=freeze_encoder or None, allow_incomplete_init=allow_incomplete_init or None,
        class_weighting=class_weighting.value if class_weighting else None, holdout=[str(p) for p in holdout] if holdout else None,
        model__head_dilations=[int(d) for d in head_dilations.split(",")] if head_dilations else None,
        leads=[x.strip() for x in leads.split(",")] if leads else None,
        data__labels_file=str(labels_file) if labels_file else None, epochs=epochs, batch_size=batch_size, lr=lr,
        test_fraction=test_fraction, data__max_records=max_records, seed=seed, device=device.value if device else None,
        data__cache_dir=str(cache_dir) if cache_dir else None, run_dir=run_dir or (None if config else default_run_dir("clf")),
    )
    res = fit_classifier(cfg, progress=not quiet, resume=resume, overwrite=overwrite)
    print_classifier_metrics(res.metrics)
    echo(f"run folder: {res.run_dir}\ncheckpoint: {res.checkpoint}")
    if res.interrupted:
        raise typer.Exit(130)


def _need_run_dir_to_resume(resume: bool, run_dir: Optional[str], config: Optional[Path]) -> None:
    if resume and run_dir is None and config is None:
        raise typer.BadParameter("--resume needs --run-dir (or --config) naming the run to continue", param_hint="--resume")


def _say_if_interrupted(metrics: dict) -> None:
    """The interrupted-run line, in every output mode (-q too): the figures that follow are not a finished run's."""
    from ecgedge.train import interrupted_note

    if note := interrupted_note(metrics):
        typer.secho(note, fg=typer.colors.YELLOW)


def print_classifier_metrics(metrics: dict) -> None:
    _say_if_interrupted(metrics)
    rec = metrics["test"]["records"]
    challenge = f"  challenge score (mean F1 of N, A, O) {rec['challenge_score']:.3f}" if "challenge_score" in rec else ""
    echo(f"held-out records: {metrics['records']['test']}{challenge}  macro F1 {rec['macro_f1']:.3f}  weighted F1 {rec['weighted_f1']:.3f}  accuracy {rec['accuracy']:.3f}")
    echo("  " + "  ".join(f"{c} {f:.2f}(n={rec['support'][c]})" for c, f in rec["per_class_f1"].items()))


@app.command("rhythm-trees")
@user_errors
def rhythm_trees_cmd(
    data: list[Path] = typer.Option(..., "--data", exists=True, help="CinC-2017-labelled single-lead records or folders (REFERENCE.csv beside them); repeatable."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (default runs/rhythm-trees-TIMESTAMP)."),
    export: Optional[Path] = typer.Option(None, help="Also export the trees (ONNX + manifest) to this folder."),
    test_from: Optional[str] = typer.Option(None, help="Hold out the test records of this export (its manifest's gate records), "
                                            "e.g. cinc2017-rhythm: the trees are then tested on the CNN's test split. Default: a seeded stratified 20 %."),
    folds: int = typer.Option(5, min=2, help="Cross-validation folds (stratified by record) on the development records."),
    class_weighting: ClassWeighting = typer.Option(ClassWeighting.inverse, help="Class weights of the trees' loss."),
    max_iter: int = typer.Option(400, min=1, help="Boosting iterations (trees per class)."),
    max_leaf_nodes: int = typer.Option(15, min=2, help="Leaves per tree."),
    learning_rate: float = typer.Option(0.05, min=1e-6, max=1.0),
    max_records: int = typer.Option(0, min=0, help="Read at most this many records (0 = all)."),
    jobs: int = typer.Option(2, min=1, help="Processes for feature extraction and cross-validation folds."),
    seed: int = typer.Option(0),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every record's features (default: cached by content hash)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier run in --run-dir (and export in --export)."),
):
    """Rhythm trees: record features (beats, morphology, signal) into gradient-boosted trees, k-fold CV, test once, export."""
    from ecgedge.train.rhythm_trees import RhythmTreesConfig, TreesConfig, test_records_of_export, train_rhythm_trees

    trees = TreesConfig(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                        class_weighting=class_weighting, seed=seed)
    cfg = RhythmTreesConfig(data=tuple(map(str, data)), run_dir=run_dir or default_run_dir("rhythm-trees"), trees=trees, folds=folds,
                            test_records=test_records_of_export(test_from) if test_from else (), max_records=max_records,
                            jobs=jobs, seed=seed, cache=not no_cache, overwrite=overwrite)
    res = train_rhythm_trees(cfg, log=echo)
    echo(f"run folder: {res.run_dir}")
    if export:
        from ecgedge.export.trees import export_rhythm_trees

        export_rhythm_trees(res.run_dir, export, overwrite=overwrite, log=echo)
