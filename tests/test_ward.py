"""``ecgedge ward``: the gateway over real sockets, its database, its limits, a kill -9, the events command.

A tiny linear model built in code (``helpers.linear_export``) classifies; devices are Python clients
on real TCP sockets (``ward_helpers.Device``) sending synthetic 12-lead 500-Hz ECG faster than real
time. The browser test of the page is ``tests/test_ward_page.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import socket
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the ward needs the 'ward' extra: pip install 'ecgedge[ward]'")
pytest.importorskip("uvicorn", reason="the ward needs the 'ward' extra: pip install 'ecgedge[ward]'")

from typer.testing import CliRunner  # noqa: E402

from ecgedge.cli.ward import app as ward_app  # noqa: E402
from ecgedge.manifest import load_manifest  # noqa: E402
from ecgedge.runtime import runner_from_export  # noqa: E402
from ecgedge.stream.hub import StreamHub  # noqa: E402
from ecgedge.stream.monitor import ModelSpec  # noqa: E402
from ecgedge.stream.session import StreamSession  # noqa: E402
from ecgedge.ward.config import Limits, ward_settings  # noqa: E402
from ecgedge.ward.events import AlarmPriority, alarm_of  # noqa: E402
from ecgedge.ward.store import WardReader, WardStore  # noqa: E402
from helpers import linear_export  # noqa: E402
from ward_helpers import Device, GatewayThread, free_port, frames_of, signal_adu, stop, ward_process  # noqa: E402

import numpy as np  # noqa: E402

# Records that depend on wall time or on the connection, not on the samples.
LINK_TYPES = ("bed_link", "bed_assigned", "no_data", "device_dropped", "device_errors")


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    return linear_export(tmp_path_factory.mktemp("ward") / "linear")


def _get(url: str, token: str | None = "test-token-123") -> tuple[int, bytes]:
    req = urllib.request.Request(url + (("&" if "?" in url else "?") + f"token={token}" if token else ""))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ---- one bed, either way ---------------------------------------------------------------------------


def test_one_bed_gives_the_same_records_as_ecgedge_stream(export, tmp_path):
    """The same bytes through ``ecgedge stream``'s session and through the ward over a socket: the bed's
    records are the same, in the same order (stream id 5 names bed "5")."""
    adu = np.concatenate([signal_adu("SR", 14.0, seed=1), signal_adu("AFIB", 14.0, seed=2)], axis=1)
    frames = frames_of(adu, stream_id=5)
    with runner_from_export(export, "fp32", threads=1) as runner:
        session = StreamSession(StreamHub(runner, ModelSpec.from_manifest(load_manifest(export)), ward_settings()))
        alone = []
        data = b"".join(frames)
        for a in range(0, len(data), 4096):
            alone += session.feed(data[a:a + 4096])
        alone += session.flush()
    alone = [dict(r, stream="5") if "stream" in r else r for r in alone]
    with GatewayThread(export, tmp_path / "w.sqlite") as gw:
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            for k in range(0, len(frames), 25):  # a second of frames per write
                sock.sendall(b"".join(frames[k:k + 25]))
        gw.wait_for(lambda r: r["type"] == "bed_link" and r["state"] == "down", what="the link going down")
        ward = [r for r in gw.records if r.get("stream") == "5" and r["type"] not in LINK_TYPES]
    assert [r["type"] for r in ward] == [r["type"] for r in alone]
    assert ward == alone
    assert any(r["type"] == "rhythm_change" for r in ward) and any(r["type"] == "heart_rate" for r in ward)


# ---- limits: a misbehaving device never stalls the others ------------------------------------------


def test_garbage_flood_and_slowloris_are_dropped_and_the_good_bed_goes_on(export, tmp_path):
    limits = Limits(first_frame_s=1.0, max_bytes_per_s=150_000, burst_bytes=200_000, max_decode_errors=40, error_report_s=1.0,
                    idle_s=5.0)
    with GatewayThread(export, tmp_path / "w.sqlite", limits=limits) as gw:
        good = Device(gw.port, 1, signal_adu("SR", 20.0), speed=2.0)
        good.start()
        garbage = socket.create_connection(("127.0.0.1", gw.port))
        slow = socket.create_connection(("127.0.0.1", gw.port))
        flood = socket.create_connection(("127.0.0.1", gw.port))
        flood_frames = b"".join(frames_of(signal_adu("SR", 4.0, seed=3), stream_id=9))
        rng = np.random.default_rng(0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            for sock, data in ((garbage, rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()), (flood, flood_frames),
                               (slow, b"\x05")):
                try:
                    sock.sendall(data)
                except OSError:
                    pass
            time.sleep(0.05)
        good.stop()
        for sock in (garbage, slow, flood):
            sock.close()
        gw.wait_for(lambda r: r["type"] == "bed_link" and r["stream"] == "1" and r["state"] == "down", what="bed 1's link going down")
        dropped = {r["reason"].split(":")[0] for r in gw.records if r["type"] == "device_dropped"}
        counts = gw.gateway.engine.session.counts["1"]
        records = list(gw.records)
    assert {"garbage", "flood", "no valid frame within 1 s of connecting"} <= dropped, dropped
    # The good bed lost nothing: every frame it sent was decoded, no gap, while the others misbehaved.
    assert counts.received == good.sent_frames * 20 and counts.lost == 0
    assert not [r for r in records if r.get("stream") == "1" and r["type"] == "gap"]
    with WardReader(str(tmp_path / "w.sqlite")) as r:
        assert {a["alarm"] for a in r.alarms(open_only=False, bed="9")} == {"no_telemetry"}


# ---- the page's guard ---------------------------------------------------------------------------------


def test_the_token_guards_the_page_and_its_push_channel(export, tmp_path):
    with GatewayThread(export, tmp_path / "w.sqlite") as gw:
        assert _get(gw.base + "/", token=None)[0] == 401
        assert _get(gw.base + "/api/state", token="wrong-token-1")[0] == 401
        assert _get(gw.base + "/api/stream", token=None)[0] == 401
        status, body = _get(gw.base + "/")
        assert status == 200 and b"ecgedge ward" in body
        with urllib.request.urlopen(gw.base + "/api/stream?token=test-token-123", timeout=10) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            first = b""
            while b"data:" not in first:
                first += r.readline()
            assert json.loads(r.readline().decode().removeprefix("data: ") if first.strip() == b"" else
                              first.decode().split("data: ", 1)[1])["type"] == "snapshot"
        req = urllib.request.Request(gw.base + "/api/alarms/1/ack", method="POST", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 401
    assert gw.cfg.listen.startswith("tcp://127.0.0.1:") and gw.cfg.http.startswith("127.0.0.1:")


# ---- the database: alarms, acknowledgements, summaries --------------------------------------------


@pytest.fixture(scope="module")
def postgres_server():
    """A real PostgreSQL server (Debian's ``postgresql`` package) in a temporary folder, on a Unix
    socket only, for this module; its URL. As root it runs as the package's ``postgres`` user
    (initdb refuses root). Skips with the reason where the server or psycopg is missing."""
    pytest.importorskip("psycopg", reason="PostgreSQL needs psycopg (the 'ward' extra)")
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdbs:
        pytest.skip("no PostgreSQL server (apt-get install postgresql): the ward's PostgreSQL backend is not tested here")
    bindir = initdbs[-1].parent
    root = Path(tempfile.mkdtemp(prefix="ward-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], capture_output=True, text=True, timeout=120)  # noqa: E731
    done = run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {done.stderr.strip()[-300:]}")
    done = run(bindir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-o",
               f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start")
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {done.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://postgres@/postgres?host={root}&port={port}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh ward database: a SQLite file, or a new database on the test's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "w.sqlite")
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"ward{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.replace("/postgres?", f"/{name}?")


def test_alarm_policy_store_and_acknowledgement(db_url):
    """Rate alarms are high priority (medium and technical when the signal cannot confirm them); an
    alarm is raised once, cleared, acknowledged, and then leaves the open list; per-hop records fold
    into hourly and per-minute summaries. The same schema and queries on SQLite and PostgreSQL."""
    raised = {"type": "rate_alarm", "stream": "7", "t": 30.0, "sample": 15000, "alarm": "asystole", "state": "raised",
              "technical": False, "hr_bpm": None, "last_beat": 12000}
    assert alarm_of(raised).priority is AlarmPriority.high
    assert alarm_of(dict(raised, technical=True, reason="lead-off: II")).priority is AlarmPriority.medium
    assert alarm_of({"type": "window", "stream": "7"}) is None
    store = WardStore(db_url)
    store.start_session("test", "tcp://127.0.0.1:0", "127.0.0.1:0")
    hops = [{"type": "window", "stream": "7", "t": 10.0 + k, "quality": "ok", "label": "SR"} for k in range(3)]
    hops += [{"type": "heart_rate", "stream": "7", "t": 10.0 + k, "sample": 5000, "hr_bpm": hr} for k, hr in enumerate((60.0, 80.0))]
    out = store.write(hops + [raised, dict(raised, sample=15500)])
    alarm_rows = [r for r in out if r["type"] == "alarm"]
    assert len(alarm_rows) == 1 and alarm_rows[0]["active"]  # raised once: the second raise is the same alarm
    store.write([dict(raised, state="cleared", sample=16000)])
    with WardReader(db_url) as r:
        (a,) = r.alarms()
        assert a["cleared"] is not None and a["acked"] is None  # cleared, still listed until acknowledged
        assert store.acknowledge(a["id"], "nurse")["acked"] is not None
        assert r.alarms() == []
        (h,) = r.hourly(bed="7")
        assert h["windows_ok"] == 3 and h["rhythms"] == {"SR": 3} and h["hr_mean"] == 70.0 and (h["hr_min"], h["hr_max"]) == (60.0, 80.0)
        assert [e["type"] for e in r.events(bed="7")] == ["rate_alarm", "rate_alarm", "rate_alarm"]  # per-hop records are summarised
    store.write([], strips=[{"bed": "7", "ts": ts, "first": 0, "fs": 250.0, "lead": "II", "uv": b"\x01\x00" * 250}
                            for ts in (1000.0, 2000.0)])
    assert store.prune_strips(1500.0) == 1
    with WardReader(db_url) as r:
        assert [c["ts"] for c in r.strip("7", 1990.0, 2010.0)] == [2000.0] and r.strip("7", 990.0, 1010.0) == []
    cur = store.conn.cursor()
    cur.execute("SELECT COUNT(*) FROM acknowledgements")
    assert cur.fetchone()[0] == 1
    if not db_url.startswith("postgresql"):
        assert cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_gateway_on_postgresql(export, postgres_server):
    """``--db postgresql://...``: a bed's records reach the same tables on a real PostgreSQL server."""
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("CREATE DATABASE wardgw")
    url = postgres_server.replace("/postgres?", "/wardgw?")
    with GatewayThread(export, url) as gw:
        dev = Device(gw.port, 4, signal_adu("SR", 20.0), speed=5.0)
        dev.start()
        try:
            gw.wait_for(lambda r: r["type"] == "quality" and r["quality"] == "ok", 60, "a classified window")
        finally:
            dev.stop()
        gw.wait_for(lambda r: r["type"] == "bed_link" and r["state"] == "down", 10, "the link going down")
    with WardReader(url) as r:
        kinds = [e["type"] for e in r.events(bed="4")]
        assert kinds[:3] == ["bed_link", "stream_start", "quality"] and "quality" in kinds[3:]
        assert r.beds()[0]["bed"] == "4" and r.hourly(bed="4")[0]["windows_ok"] >= 1
        assert r.alarms(bed="4")[0]["alarm"] == "no_telemetry"
    out = CliRunner().invoke(ward_app, ["events", "--db", url, "--format", "csv"])
    assert out.exit_code == 0 and len(out.output.strip().splitlines()) == len(kinds) + 1


# ---- kill -9 ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_keeps_every_committed_event_and_devices_reconnect(export, tmp_path):
    db = tmp_path / "ward.sqlite"
    port = free_port()
    proc, url = ward_process(export, db, port)
    devices = [Device(port, sid, signal_adu("SR", 20.0, seed=sid), speed=5.0) for sid in (1, 2)]
    try:
        for d in devices:
            d.start()

        def rows(sql: str, *args):
            conn = sqlite3.connect(str(db))
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()

        deadline = time.monotonic() + 60
        while len(rows("SELECT DISTINCT bed FROM events WHERE type = 'quality' AND body LIKE '%\"ok\"%'")) < 2:
            assert time.monotonic() < deadline, "no classified window for both beds within 60 s"
            time.sleep(0.2)
        time.sleep(2.0)  # a few more batches committed: the kill lands mid-run
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = rows("SELECT id, session_id, seq, bed, type, body FROM events ORDER BY id")
        proc, url = ward_process(export, db, port)
        deadline = time.monotonic() + 60
        while len(rows("SELECT DISTINCT bed FROM events WHERE session_id = 2 AND type = 'quality' AND body LIKE '%\"ok\"%'")) < 2:
            assert time.monotonic() < deadline, "the devices did not come back after the restart"
            time.sleep(0.2)
    finally:
        for d in devices:
            d.stop()
        stop(proc)
    after = rows("SELECT id, session_id, seq, bed, type, body FROM events ORDER BY id")
    assert after[:len(before)] == before  # every event committed before the kill is there, unchanged
    assert len(after) == len(set((s, q) for _, s, q, *_ in after))  # no record twice
    assert len(set(r[5] for r in after if r[1] == 1)) == len([r for r in after if r[1] == 1])
    assert all(d.connects >= 2 for d in devices)
    links = [(bed, json.loads(body)["state"], session) for _, session, _, bed, kind, body in after if kind == "bed_link"]
    for bed in ("1", "2"):
        # up in run 1; down at run 2's start (its gateway was killed); up again when its device reconnected
        assert [(s, st) for b, st, s in links if b == bed][:3] == [(1, "up"), (2, "down"), (2, "up")]
    no_telemetry = rows("SELECT bed, cleared FROM alarms WHERE alarm = 'no_telemetry' ORDER BY id")
    assert {b for b, _ in no_telemetry} == {"1", "2"} and all(c is not None for _, c in no_telemetry[:2])

    # ecgedge ward events on that database: table, CSV, FHIR
    app = ward_app
    runner = CliRunner()
    table = runner.invoke(app, ["events", "--db", str(db), "--bed", "1"])
    assert table.exit_code == 0, table.output
    assert "stream_start" in table.output and all(line.split()[1] == "1" for line in table.output.strip().splitlines()[1:])
    csv_out = runner.invoke(app, ["events", "--db", str(db), "--format", "csv", "--type", "quality", "--since", "-1h"])
    lines = csv_out.output.strip().splitlines()
    assert lines[0].startswith("id,time_utc") and len(lines) - 1 == len([r for r in after if r[4] == "quality"])
    fhir = runner.invoke(app, ["events", "--db", str(db), "--format", "fhir", "--out", str(tmp_path / "obs.json")])
    assert fhir.exit_code == 0, fhir.output
    from fhir.resources.R4B.bundle import Bundle

    bundle = Bundle.model_validate_json((tmp_path / "obs.json").read_text())
    codes = [e.resource.code.coding[0].code for e in bundle.entry]
    assert "8867-4" in codes  # heart rate per bed and minute
    assert codes.count("8884-9") == len([r for r in after if r[4] == "rhythm_change"])  # one per rhythm change
    assert runner.invoke(app, ["events", "--db", str(tmp_path / "nothing.sqlite")]).exit_code == 2


def test_cli_help_and_bad_input(export, tmp_path):
    runner = CliRunner()
    out = runner.invoke(ward_app, ["--help"])
    assert out.exit_code == 0 and "serve" in out.output and "events" in out.output
    out = runner.invoke(ward_app, [str(export), "--listen", "udp://127.0.0.1:1"])  # no subcommand: serve
    assert out.exit_code == 2 and "expected tcp://HOST:PORT" in out.output
    out = runner.invoke(ward_app, [str(export), "--http", "127.0.0.1", "--db", str(tmp_path / "w.sqlite")])
    assert out.exit_code == 2 and "expected HOST:PORT" in out.output
    out = runner.invoke(ward_app, [str(export), "--token", "short"])
    assert out.exit_code == 2 and "at least 8 characters" in out.output
    WardStore(str(tmp_path / "w.sqlite")).close()
    out = runner.invoke(ward_app, ["events", "--db", str(tmp_path / "w.sqlite"), "--since", "yesterday"])
    assert out.exit_code == 2 and "-2h" in out.output


def test_a_failing_database_stops_the_gateway_and_says_why(export, tmp_path):
    """Nothing reaches the page that was not kept: when the writer fails (a full disk), the gateway stops."""
    lines: list[str] = []
    with GatewayThread(export, tmp_path / "w.sqlite") as gw:
        gw.gateway.log = lines.append

        def broken(*a, **k):
            raise sqlite3.OperationalError("database or disk is full")

        gw.gateway.store.write = broken  # type: ignore[method-assign]
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(b"".join(frames_of(signal_adu("SR", 2.0), stream_id=1)))
            gw._thread.join(30)
        assert not gw._thread.is_alive()
    assert isinstance(gw.gateway.failure, sqlite3.OperationalError)
    assert any("the database writer failed" in line and "disk is full" in line for line in lines)
    assert not [r for r in gw.records if r.get("stream") == "1"]  # nothing was shown
