"""``ecgedge stream``: classify bedside ECG streams live; one JSON line per window and per event."""

from __future__ import annotations

import contextlib
import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from ecgedge.bridge.sources import SPEC_FORMS
from ecgedge.cli.common import export_folder_argument, user_errors
from ecgedge.errors import ConfigError, StreamError, storage_error
from ecgedge.runtime.base import Backend, Precision
from ecgedge.stream.monitor import CONCEAL_MAX_S, INOPERABLE_AFTER_S, StreamSettings
from ecgedge.stream.rate import ASYSTOLE_S, BRADY_BPM, TACHY_BPM, RateAlarmSettings


def _escaped(text: str) -> str:
    """Help text with its [optional] parts kept (rich would read them as markup)."""
    return text.replace("[", "\\[")


@user_errors
def stream_cmd(
    export: Path = export_folder_argument(),
    source: str = typer.Option(..., "--source", "-s", help=f"Where the bytes come from: {_escaped(SPEC_FORMS)}."),
    hop: float = typer.Option(1.0, min=0.004, help="Seconds between windows (each window is the model's length)."),
    hysteresis: int = typer.Option(3, min=1, help="Consecutive reliable windows a new rhythm must hold before it is raised."),
    conceal_max_s: float = typer.Option(
        CONCEAL_MAX_S, "--conceal-max-s", min=0.0, max=1.0,
        help="Conceal gaps up to this many seconds by linear interpolation (reported, and the windows holding them say so) "
             "instead of restarting the filters; 0: never. Default: two 40-ms frames, no longer than a normal QRS complex "
             "and well below any R-R interval."),
    inoperable_after_s: float = typer.Option(
        INOPERABLE_AFTER_S, "--inoperable-after-s", min=0.0,
        help="Raise the ecg_signal_inoperable alert after this many seconds without a classified window "
             "(cleared when one is classified again); 0: never."),
    asystole_s: float = typer.Option(
        ASYSTOLE_S, "--asystole-s", min=0.0,
        help="Raise the asystole alarm after this many seconds without a beat (at most this + 0.2 s + --hop after "
             "the last beat); 0: never."),
    brady_bpm: float = typer.Option(BRADY_BPM, "--brady-bpm", min=0.0, help="Raise extreme bradycardia below this heart rate (bpm); 0: never."),
    tachy_bpm: float = typer.Option(TACHY_BPM, "--tachy-bpm", min=0.0, help="Raise extreme tachycardia above this heart rate (bpm); 0: never."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", dir_okay=False, help="Write the JSON lines to this file instead of stdout."),
    precision: Optional[Precision] = typer.Option(None, help="Which artefact runs (default: int8 if the accuracy gate accepted it, else the reference)."),
    backend: Backend = typer.Option(Backend.ort_cpu, help="Runtime backend."),
    threads: int = typer.Option(1, min=1, help="Inference threads (one core serves many beds)."),
    sim: str = typer.Option("", "--sim", help="Extra ecgsim options for a wfdb: source, quoted: \"--loop --drop-frames 0.01\"."),
    max_outage: Optional[float] = typer.Option(None, min=0.0, help="End when nothing has arrived for this many seconds (default: keep waiting)."),
    show: bool = typer.Option(False, "--show", help="Draw the last seconds of a lead and the current rhythm in the terminal (on stderr)."),
    show_png: Optional[Path] = typer.Option(None, "--show-png", file_okay=False,
                                            help="Write a PNG strip per rhythm change / quality loss into this folder: new, empty, or "
                                                 "an earlier stream's strips folder (the new strips join it); a folder of yours is refused."),
    show_lead: str = typer.Option("II", help="Lead drawn by --show and --show-png."),
    lead: Optional[str] = typer.Option(None, "--lead", help="Single-lead models: the source lead to read as the model's lead, "
                                       "by name (e.g. MLII, V5) or 1-based position (2, for unnamed '?' leads)."),
    tee: Optional[Path] = typer.Option(None, dir_okay=False, help="Also save every byte received (replay: --source stdin < FILE)."),
    server: Optional[str] = typer.Option(None, help="Infer on a Triton Inference Server instead of here: grpc://HOST:PORT."),
    server_model: Optional[str] = typer.Option(None, help="The model's name on that server (default: the export's Triton model name)."),
    key: Optional[Path] = typer.Option(None, "--key", exists=True, dir_okay=False,
                                       help="Exporter's Ed25519 public key (PEM): refuse an export whose manifest.sig is missing or does not match."),
):
    """Decode a bedside device's stream, classify every window with the exported model, raise rhythm events.

    Gaps are reported with their sample range; short ones are concealed (the windows holding them
    are classified and carry concealed_samples), longer ones make the windows they touch
    'unreliable', as are windows with a lead off, a flat or a saturated lead. No classified window
    for --inoperable-after-s raises an ecg_signal_inoperable alert. Every window is followed by the heart
    rate and the beats found; asystole and extreme brady-/tachycardia are raised as rate_alarm records
    (docs/beats-stream.md). The last line is a summary.
    A --tee copy that cannot be written (a full disk) is reported once and dropped; classification
    goes on. Exits 2 when every stream was refused (leads or rate the model cannot use).
    """
    from ecgedge.stream.run import StreamConfig, refused_all, stream_from_export

    try:
        sim_args = tuple(shlex.split(sim))
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"--sim {sim!r}: {exc} (quote it as the shell would)") from None
    settings = StreamSettings(hop_s=hop, hysteresis=hysteresis, conceal_max_s=conceal_max_s,
                              inoperable_after_s=inoperable_after_s,
                              rate_alarms=RateAlarmSettings(asystole_s=asystole_s, brady_bpm=brady_bpm, tachy_bpm=tachy_bpm),
                              source_lead=lead)
    cfg = StreamConfig(export=str(export), source=source, settings=settings,
                       precision=precision, backend=backend, threads=threads, sim_args=sim_args,
                       max_outage_s=max_outage, show=show, show_png=str(show_png) if show_png else None,
                       show_lead=show_lead, tee=str(tee) if tee else None, server=server, server_model=server_model,
                       public_key=str(key) if key else None)
    if show_png is not None:  # before --out is opened (it may lie inside): refused before anything is written
        from ecgedge.stream.show import claim_strips

        claim_strips(show_png, cfg.inputs())
    try:
        sink = open(out, "w", buffering=1) if out else sys.stdout
    except OSError as exc:
        raise storage_error(exc, f"open --out {out}") from None
    # The strip chart draws on stderr; when that is the same terminal as stdout, the view stands in for the lines.
    quiet = show and out is None and sys.stdout.isatty() and sys.stderr.isatty()

    def emit(record: dict) -> None:
        if record["type"] == "session" and record.get("note"):
            typer.secho(f"note: {record['note']}", fg=typer.colors.YELLOW, err=True)
        if record["type"] == "tee_error":
            typer.secho(f"warning: {record['detail']}", fg=typer.colors.YELLOW, err=True)
        if not quiet:
            try:
                sink.write(json.dumps(record, separators=(",", ":")) + "\n")
                sink.flush()
            except OSError as exc:  # a full disk: stop with one line rather than classify into the void
                raise storage_error(exc, f"write the records to {out or 'stdout'}") from None

    # A service manager stops us with SIGTERM: end as Ctrl-C does, with the summary line written.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = stream_from_export(cfg, emit)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if out:
            # Every record was flushed as written, so closing can fail only by repeating a failure
            # already raised (the flush that hit the full disk).
            with contextlib.suppress(OSError):
                sink.close()
    for c in summary.get("streams", []):
        if c.get("device_labels"):  # ecgsim --classify: the device's labels beside ours
            typer.echo(f"stream {c['stream']}: device labels: {c['device_agree']} of {c['device_compared']} agree with "
                       f"the host ({c['device_labels']} received)", err=True)
        if c.get("device_beats"):  # ecgsim --beats / --classify: the device's beats beside ours
            typer.echo(f"stream {c['stream']}: device beats: {c['device_beats_agree']} of {c['device_beats_compared']} "
                       f"within 1 sample of the host's ({c['device_beats']} received)", err=True)
    if why := refused_all(summary):
        raise StreamError(why)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    """``python -m ecgedge.cli.stream``: the command on its own."""
    typer.run(stream_cmd)


if __name__ == "__main__":
    main()
