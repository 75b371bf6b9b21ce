"""The ``ecgedge`` command: one module per command group, joined here."""

from __future__ import annotations

import typer

from ecgedge.cli import bench as bench_cli
from ecgedge.cli import data as data_cli
from ecgedge.cli import evaluate as evaluate_cli
from ecgedge.cli import experiment as experiment_cli
from ecgedge.cli import export as export_cli
from ecgedge.cli import models as models_cli
from ecgedge.cli import serve as serve_cli
from ecgedge.cli import stream as stream_cli
from ecgedge.cli import train as train_cli
from ecgedge.cli import ward as ward_cli

app = typer.Typer(
    name="ecgedge",
    help="Transfer-learned ECG rhythm classifiers: train, export (ONNX/INT8/FP16/TensorRT), gate, bench, stream.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(train_cli.app, name="train")
app.add_typer(data_cli.app, name="data")
app.add_typer(experiment_cli.app, name="experiment")
app.command("export")(export_cli.export_cmd)
app.command("bench")(bench_cli.bench_cmd)
app.command("stream")(stream_cli.stream_cmd)
app.command("serve")(serve_cli.serve_cmd)
app.add_typer(evaluate_cli.app, name="evaluate")
app.add_typer(models_cli.app, name="models")
app.add_typer(ward_cli.app, name="ward")


def _version(value: bool):
    if value:
        from ecgedge.installation import version_line

        typer.echo(version_line())
        raise typer.Exit()


def _firmware_dir(value: bool):
    if value:
        firmware_dir_cmd()
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and the git commit this ecgedge was built from."),
         firmware_dir: bool = typer.Option(False, "--firmware-dir", callback=_firmware_dir, is_eager=True,
                                           help="Print the folder of the device's C sources (same as `ecgedge firmware-dir`).")):
    """ecgedge: from ECG records to gated edge models."""


@app.command("firmware-dir")
def firmware_dir_cmd():
    """Print the folder of the device side's C sources: include/ecgbridge.h, src/ (the frame library a device
    firmware compiles in), sim/, tools/, tests/, Makefile, PROTOCOL.md. `make -C "$(ecgedge firmware-dir)" test`
    checks a port."""
    from ecgedge.cli.common import user_errors
    from ecgedge.installation import firmware_dir

    typer.echo(str(user_errors(firmware_dir)()))


@app.command("quickstart")
def quickstart_cmd(
    out: str = typer.Option("ecgedge-quickstart", help="Folder for data, runs, export and cache."),
    records_per_rhythm: int = typer.Option(40, min=4, help="Synthetic records per rhythm (8 rhythms)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Run the whole chain on generated data: synthesize -> pretrain -> classify -> export INT8 + gate -> check -> bench -> stream -> ward."""
    from ecgedge.cli.common import user_errors
    from ecgedge.quickstart import QuickstartConfig, quickstart

    user_errors(quickstart)(QuickstartConfig(out=out, records_per_rhythm=records_per_rhythm), progress=not quiet, log=typer.echo)
