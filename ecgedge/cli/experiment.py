"""``ecgedge experiment transfer``: a thin wrapper over :func:`ecgedge.experiment.run.run_experiment`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ecgedge.cli.common import choices_option, default_run_dir, echo, user_errors
from ecgedge.config import Device, LabelScheme
from ecgedge.experiment.config import Arm, Budget

app = typer.Typer(help="Experiments that answer a question with a grid of training runs.", no_args_is_help=True)


@app.callback()  # keeps `experiment` a group (`ecgedge experiment transfer`) while it has a single command
def experiment():
    """Experiments that answer a question with a grid of training runs."""


def _fractions(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    try:
        fractions = [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of numbers, e.g. 1.0,0.5,0.25") from None
    bad = [f for f in fractions if not 0 < f <= 1]
    if not fractions or bad:
        raise typer.BadParameter(f"training fractions must lie in (0, 1]; got {', '.join(map(str, bad or fractions)) or 'none'}")
    return value


def _image_size(value: Optional[str]) -> Optional[str]:
    if value is not None:
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise typer.BadParameter(f"{value!r}: give HEIGHTxWIDTH in pixels, e.g. 96x128")
    return value


def _command_line(ctx: typer.Context) -> str:
    """The command as the user gave it (options set on the command line, in declaration order), shell-quoted."""
    import shlex

    parts = ["ecgedge", "experiment", ctx.info_name or "transfer"]
    for param in ctx.command.params:
        source = getattr(ctx.get_parameter_source(param.name), "name", None)  # click's ParameterSource, by name: typer vendors click
        if source not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[param.name]
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            parts += [flag] if value else []
            continue
        if isinstance(value, (list, tuple)) and not param.multiple:  # a comma list (choices_option)
            parts += [flag, ",".join(str(getattr(v, "value", v)) for v in value)]
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            parts += [flag, str(getattr(v, "value", v))]
    return " ".join(shlex.quote(p) for p in parts)


@app.command("transfer")
@user_errors
def transfer_cmd(
    ctx: typer.Context,
    data: list[Path] = typer.Option(..., "--data", exists=True, help="Labelled record files or folders (searched recursively); repeatable."),
    labels: LabelScheme = typer.Option(..., help="Label scheme of --data."),
    pretrain_data: Optional[list[Path]] = typer.Option(None, "--pretrain-data", exists=True,
                                                       help="Unlabelled records to pretrain the CAE on (repeatable); or use --cae."),
    pretrain_on_train: bool = typer.Option(False, "--pretrain-on-train",
                                           help="Pretrain the CAE on the labelled training records' windows too (labels unused; "
                                                "the test records never)."),
    cae: Optional[Path] = typer.Option(None, exists=True, help="Reuse this pretrained CAE (checkpoint or run folder) instead of pretraining."),
    recipe: Optional[str] = typer.Option(None, help="Classifier recipe every arm shares: a classify TOML or a shipped model "
                                                    "(cinc2017-rhythm): head, class weighting, weight decay, leads, hop, lr, batch."),
    fractions: Optional[str] = typer.Option(None, callback=_fractions, help="Training fractions, comma-separated (default 1.0,0.5,0.25)."),
    repeats: Optional[int] = typer.Option(None, min=1, help="Bootstrap repeats per fraction (default from --budget)."),
    arms: Optional[str] = choices_option(Arm, None, "Arms, comma-separated, from transfer,random,frozen,2d (default all)."),
    budget: Budget = typer.Option(Budget.small, help="Preset sizes: tiny (CI), small (CinC-2017 on 2 CPU cores, < 30 min) or "
                                                     "paper (overnight, < 8 h); flags override it."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Classifier epochs per cell, every arm (default from --budget)."),
    min_steps: Optional[int] = typer.Option(None, min=0, help="Raise a cell's epochs to at least this many optimizer steps (default from --budget)."),
    train_windows: Optional[int] = typer.Option(None, "--train-windows", min=0,
                                                help="Most recent windows per training record (0 = all; default from --budget)."),
    test_windows: Optional[int] = typer.Option(None, "--test-windows", min=0,
                                               help="Most recent windows per test record (0 = all; default from --budget)."),
    pretrain_epochs: Optional[int] = typer.Option(None, min=1, help="CAE epochs (default from --budget)."),
    pretrain_max_windows: Optional[int] = typer.Option(None, min=0, help="CAE training windows, a random subset (0 = all; default from --budget)."),
    batch_size: Optional[int] = typer.Option(None, min=1),
    lr: Optional[float] = typer.Option(None, min=0.0, help="Peak learning rate of the one-cycle schedule."),
    image_weights: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                                 help="torchvision resnet18 ImageNet state dict (e.g. resnet18-f37072d3.pth) for the 2d arm; "
                                                      "without it the 2d arm starts from random weights."),
    image_size: Optional[str] = typer.Option(None, callback=_image_size, help="2d arm image HEIGHTxWIDTH in px (default from --budget)."),
    leads: Optional[str] = typer.Option(None, help="Comma-separated leads the classifiers read (default: the recipe's, else the 12 standard leads; one lead for single-lead data)."),
    lead: str = typer.Option("II", help="Lead the CAE is pretrained on."),
    labels_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Label table: Diagnostics.xlsx, REFERENCE.csv or metadata.csv."),
    test_fraction: float = typer.Option(0.2, min=0.01, max=0.99, help="Held-out test records (the paper's 8:2)."),
    max_records: int = typer.Option(0, min=0, help="Read at most this many labelled records (0 = all)."),
    seed: int = typer.Option(0),
    device: Device = typer.Option(Device.cpu),
    threads: int = typer.Option(0, min=0, help="torch CPU threads (0 = one per core); 1 is often faster on a machine shared with other jobs."),
    out: Optional[str] = typer.Option(None, help="Output folder; rerun with the same one to resume (default runs/experiment-TIMESTAMP)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Window cache folder (default ~/.cache/ecgedge)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Transfer vs random vs frozen vs 2-D: F1 as the training set shrinks, bootstrapped (the paper's table).

    One fixed 8:2 record-level split; for each fraction and repeat a stratified bootstrap sample of the training
    records; every arm trained on it with the same budget and seed, scored on the same test records. Writes
    results.json, table.md, f1_vs_records.png and report.md to --out; a rerun with the same --out resumes
    (and may add arms, fractions or repeats).
    """
    from ecgedge.config import DataConfig
    from ecgedge.experiment.config import ExperimentConfig, ImageConfig
    from ecgedge.experiment.run import run_experiment

    cache = str(cache_dir) if cache_dir else None
    extra: dict[str, Any] = {}  # the flags given; the rest keep ExperimentConfig's defaults (it validates them)
    if fractions:
        extra["fractions"] = tuple(float(x) for x in fractions.split(",") if x.strip())
    if arms:
        extra["arms"] = arms
    if leads:
        extra["leads"] = tuple(x.strip() for x in leads.split(","))
    if image_size:
        h, w = (int(x) for x in image_size.lower().split("x"))
        extra["image"] = ImageConfig(height_px=h, width_px=w)
    cfg = ExperimentConfig(
        data=DataConfig(paths=tuple(map(str, data)), labels_file=str(labels_file) if labels_file else None, cache_dir=cache, max_records=max_records),
        labels=labels, pretrain_data=DataConfig(paths=tuple(map(str, pretrain_data or ())), cache_dir=cache),
        pretrain_on_train=pretrain_on_train, recipe=recipe, min_steps=min_steps, train_windows_per_record=train_windows,
        test_windows_per_record=test_windows,
        cae=str(cae) if cae else None, lead=lead, budget=budget, repeats=repeats, epochs=epochs, pretrain_epochs=pretrain_epochs,
        pretrain_max_windows=pretrain_max_windows,
        batch_size=batch_size, lr=lr, image_weights=str(image_weights) if image_weights else None, test_fraction=test_fraction,
        seed=seed, device=device, threads=threads, out=out or default_run_dir("experiment"), **extra,
    )
    res = run_experiment(cfg, progress=not quiet, command=_command_line(ctx))
    echo(res.table)
    echo(f"\ncells: {res.cells_run} trained, {res.cells_skipped} already done; {res.wall_s / 60:.1f} min")
    echo(f"report: {res.report}\nresults: {res.out / 'results.json'}\nplot: {res.plot}")
