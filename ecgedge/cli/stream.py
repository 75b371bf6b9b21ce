"""``ecgedge stream``: classify bedside ECG streams live; one JSON line per window and per event."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import user_errors
from ecgedge.errors import ConfigError
from ecgedge.runtime.base import Backend, Precision
from ecgedge.stream.monitor import StreamSettings
from ecgedge.stream.sources import SPEC_FORMS


def _escaped(text: str) -> str:
    """Help text with its [optional] parts kept (rich would read them as markup)."""
    return text.replace("[", "\\[")


@user_errors
def stream_cmd(
    export: Path = typer.Argument(..., exists=True, file_okay=False, help="Export folder with manifest.json (export/NAME)."),
    source: str = typer.Option(..., "--source", "-s", help=f"Where the bytes come from: {_escaped(SPEC_FORMS)}."),
    hop: float = typer.Option(1.0, min=0.004, help="Seconds between windows (each window is the model's length)."),
    hysteresis: int = typer.Option(3, min=1, help="Consecutive reliable windows a new rhythm must hold before it is raised."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", dir_okay=False, help="Write the JSON lines to this file instead of stdout."),
    precision: Optional[Precision] = typer.Option(None, help="Which artefact runs (default: int8 if the accuracy gate accepted it, else the reference)."),
    backend: Backend = typer.Option(Backend.ort_cpu, help="Runtime backend."),
    threads: int = typer.Option(1, min=1, help="Inference threads (one core serves many beds)."),
    sim: str = typer.Option("", "--sim", help="Extra ecgsim options for a wfdb: source, quoted: \"--loop --drop-frames 0.01\"."),
    max_outage: Optional[float] = typer.Option(None, min=0.0, help="End when nothing has arrived for this many seconds (default: keep waiting)."),
    show: bool = typer.Option(False, "--show", help="Draw the last seconds of a lead and the current rhythm in the terminal (on stderr)."),
    show_png: Optional[Path] = typer.Option(None, "--show-png", file_okay=False, help="Write a PNG strip per rhythm change / quality loss into this folder."),
    show_lead: str = typer.Option("II", help="Lead drawn by --show and --show-png."),
    tee: Optional[Path] = typer.Option(None, dir_okay=False, help="Also save every byte received (replay: --source stdin < FILE)."),
    server: Optional[str] = typer.Option(None, help="Infer on a Triton Inference Server instead of here: grpc://HOST:PORT."),
    server_model: Optional[str] = typer.Option(None, help="The model's name on that server (default: the export's Triton model name)."),
):
    """Decode a bedside device's stream, classify every window with the exported model, raise rhythm events.

    Gaps are reported with their sample range and the windows they touch are 'unreliable', as are
    windows with a lead off, a flat or a saturated lead. The last line is a summary.
    """
    from ecgedge.stream.session import StreamConfig, stream_from_export

    cfg = StreamConfig(export=str(export), source=source, settings=StreamSettings(hop_s=hop, hysteresis=hysteresis),
                       precision=precision, backend=backend, threads=threads, sim_args=tuple(shlex.split(sim)),
                       max_outage_s=max_outage, show=show, show_png=str(show_png) if show_png else None,
                       show_lead=show_lead, tee=str(tee) if tee else None, server=server, server_model=server_model)
    try:
        sink = open(out, "w", buffering=1) if out else sys.stdout
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror}") from None
    # The strip chart draws on stderr; when that is the same terminal as stdout, the view stands in for the lines.
    quiet = show and out is None and sys.stdout.isatty() and sys.stderr.isatty()

    def emit(record: dict) -> None:
        if record["type"] == "session" and record.get("note"):
            typer.secho(f"note: {record['note']}", fg=typer.colors.YELLOW, err=True)
        if not quiet:
            sink.write(json.dumps(record, separators=(",", ":")) + "\n")
            sink.flush()

    # A service manager stops us with SIGTERM: end as Ctrl-C does, with the summary line written.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        stream_from_export(cfg, emit)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if out:
            sink.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    """``python -m ecgedge.cli.stream``: the command on its own."""
    typer.run(stream_cmd)


if __name__ == "__main__":
    main()
