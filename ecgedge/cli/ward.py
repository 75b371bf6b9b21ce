"""``ecgedge ward``: one gateway for a ward of bedside devices; ``ecgedge ward events``: what it kept.

``ecgedge ward MODEL ...`` runs the gateway (the ``serve`` command, the group's default);
``ecgedge ward events --db PATH`` prints or exports the events of its database.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from ecgedge.cli.common import export_folder_argument, user_errors
from ecgedge.errors import ConfigError


class _ServeByDefault(TyperGroup):
    """``ecgedge ward MODEL ...`` is ``ecgedge ward serve MODEL ...``: a first word that is not a
    command (and not an option) goes to ``serve``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_ServeByDefault, no_args_is_help=True,
                  help="A ward of bedside devices: one gateway (ecgedge ward MODEL), a central-station page, every event in a database.")


class EventFormat(str, Enum):
    table = "table"
    csv = "csv"
    fhir = "fhir"
    jsonl = "jsonl"


@app.command("serve")
@user_errors
def serve_cmd(
    export: Path = export_folder_argument(),
    listen: str = typer.Option("tcp://127.0.0.1:5600", help="Where devices connect: tcp://HOST:PORT (port 0: any free port)."),
    http: str = typer.Option("127.0.0.1:8600", help="The central-station page: HOST:PORT (port 0: any free port)."),
    db: str = typer.Option("ward.sqlite", help="SQLite file (WAL) or postgresql://USER@HOST/DB."),
    token: Optional[str] = typer.Option(None, envvar="ECGEDGE_WARD_TOKEN", help="The page's token (default: a random one, printed)."),
    precision: Optional[str] = typer.Option(None, help="Which artefact runs (default: as ecgedge stream picks)."),
    hysteresis: int = typer.Option(3, min=1, help="Consecutive reliable windows a new rhythm must hold (as ecgedge stream)."),
    threads: int = typer.Option(1, min=1, help="Inference threads."),
    max_devices: int = typer.Option(1024, min=1, help="Devices connected at once."),
    max_device_rate: int = typer.Option(512 * 1024, min=1024, help="A device's sustained bytes per second before it is dropped as a flood."),
    keep_strips_days: float = typer.Option(7.0, min=0.0, help="Delete stored strips older than this (about 43 MB per bed-day); 0: keep for ever."),
):
    """Run the gateway: devices connect over TCP (the wire protocol of firmware_bridge/PROTOCOL.md), every bed is
    classified by one StreamHub as ecgedge stream would, events go to the database, then to the page.

    A device names its bed by its stream id (ecgsim --stream-id N); stream id 0, or one already connected,
    gets a name from the gateway (a bed_assigned event says so). Stops on Ctrl-C / SIGTERM.
    """
    from dataclasses import replace

    from ecgedge.ward.config import Limits, WardConfig, ward_settings
    from ecgedge.ward.gateway import run_ward

    cfg = WardConfig(export=str(export), listen=listen, http=http, db=db, token=token, precision=precision, threads=threads,
                     settings=replace(ward_settings(), hysteresis=hysteresis), keep_strips_days=keep_strips_days,
                     limits=Limits(max_connections=max_devices, max_bytes_per_s=max_device_rate))
    run_ward(cfg)


def _when(text: Optional[str]) -> Optional[float]:
    """``--since``: seconds since 1970, an ISO time (UTC unless it says), or ``-2h`` / ``-30m`` / ``-1d`` (ago)."""
    if text is None:
        return None
    import time

    if text.startswith("-") and text[-1:] in "smhd" and text[1:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[1:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected seconds since 1970, an ISO time (2026-12-08T01:00Z) or -2h / -30m / -1d") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


@app.command("events")
@user_errors
def events_cmd(
    db: str = typer.Option(..., help="The ward's database: a SQLite file or postgresql://..."),
    bed: Optional[str] = typer.Option(None, help="Only this bed."),
    since: Optional[str] = typer.Option(None, help="From this time: seconds since 1970, ISO (UTC unless it says), or -2h / -30m / -1d."),
    until: Optional[str] = typer.Option(None, help="Up to this time (same forms)."),
    types: Optional[str] = typer.Option(None, "--type", help="Only these event types, comma-separated (rhythm_change,rate_alarm,...)."),
    fmt: EventFormat = typer.Option(EventFormat.table, "--format", help="table, csv, jsonl, or fhir (a FHIR R4 Bundle of heart-rate and rhythm Observations)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", dir_okay=False, help="Write here (atomically) instead of stdout."),
):
    """Print or export the events a ward gateway kept."""
    from ecgedge.fsio import atomic_write_text
    from ecgedge.ward.store import WardReader, events_csv, events_table, fhir_observations

    t0, t1 = _when(since), _when(until)
    wanted = tuple(t.strip() for t in types.split(",") if t.strip()) if types else ()
    with WardReader(db) as reader:
        if fmt is EventFormat.fhir:
            events = reader.events(bed=bed, since=t0, until=t1, types=("rhythm_change",))
            text = json.dumps(fhir_observations(events, reader.minutes(bed=bed, since=t0, until=t1)), indent=1) + "\n"
        else:
            events = reader.events(bed=bed, since=t0, until=t1, types=wanted)
            if fmt is EventFormat.csv:
                text = events_csv(events)
            elif fmt is EventFormat.jsonl:
                text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
            else:
                text = events_table(events) + "\n"
    if out is not None:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.write(text)
