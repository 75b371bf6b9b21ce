"""``ecgedge models [NAME]`` and ``ecgedge models retrain``: the models shipped inside the package."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import echo, user_errors

app = typer.Typer(help="The shipped models: list them, print a card, retrain them from ../shared/data.",
                  invoke_without_command=True)


@app.callback()
@user_errors
def models_cmd(
    ctx: typer.Context,
    name: Optional[str] = typer.Option(None, "--card", help="Print this model's card (data, split, command, metrics with intervals, limits)."),
):
    """List the shipped models; a model's name works wherever an export folder or checkpoint is taken."""
    if ctx.invoked_subcommand is not None:
        return
    from ecgedge.shipped import list_models, shipped_model, shipped_status

    if name:
        echo(shipped_model(name).card.read_text())
        return
    models = list_models()
    if not models:
        echo("no shipped models in this installation")
        return
    width = max(len(m.name) for m in models)
    for m in models:
        echo(f"{m.name:<{width}}  {m.kind:<10}  {m.summary}")
        echo(f"{'':<{width}}  {'':<10}  {m.path}")
        echo(f"{'':<{width}}  {'':<10}  {shipped_status(m)}")
    echo("\n`ecgedge models --card NAME` prints a model's card. NAME works in place of an export folder "
         "(stream, evaluate, bench, export --check) or of a CAE checkpoint (train classify --init).")


@app.command("pin")
@user_errors
def pin_cmd(
    sign: Path = typer.Option(..., "--sign", exists=True, dir_okay=False, metavar="PRIVATE_KEY",
                              help="The project's private key (kept off the repository; see docs/reliability-round3.md)."),
):
    """Pin every file of each shipped model (sha256 in shipped.json) and sign it with the project key (maintainers, after retrain --install)."""
    from ecgedge.shipped import list_models, pin_shipped, shipped_status

    for m in list_models():
        pin_shipped(m, sign)
        echo(f"{m.name}: {shipped_status(m)}")


@app.command("retrain")
@user_errors
def retrain_cmd(
    data: Path = typer.Option(Path("../shared/data"), "--data", exists=True, file_okay=False,
                              help="The shared data folder (cinc2017/training2017, cinc2017/validation, mitdb are read)."),
    out: Path = typer.Option(Path("runs/shipped"), "--out", help="Where the store, runs and export go."),
    cache_dir: Optional[Path] = typer.Option(None, help="Window cache folder (default ~/.cache/ecgedge)."),
    install: bool = typer.Option(False, "--install", help="Replace the shipped CAE and classifier in the package with the new ones."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Retrain the shipped CAE and CinC-2017 classifier from the real records (seeded; about 20 min on 2 CPU cores; OMP_NUM_THREADS=1 reproduces the shipped figures exactly)."""
    from ecgedge.retrain import retrain_shipped

    res = retrain_shipped(data, out, cache_dir=str(cache_dir) if cache_dir else None, install=install, progress=not quiet, log=echo)
    echo(f"runs and export under {res.out}")
