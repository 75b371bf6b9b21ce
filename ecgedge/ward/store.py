"""The ward's database: one schema on SQLite (default, WAL, one writer) or PostgreSQL (``postgresql://``).

Tables (times are wall-clock seconds since 1970, UTC, as REAL; ``t`` and ``sample`` are the
stream's own time and sample index):

=====================  ==========================================================================
``sessions``           one row per gateway run: started, ended, model, addresses
``beds``               one row per bed: first and last seen, device address, rate and leads, the
                       latest rhythm, heart rate, signal quality and link state
``events``             every record but the per-hop ones (:data:`PER_HOP`): ``type``, ``bed``,
                       ``ts``, ``t``, ``sample`` and the record itself as JSON (``body``);
                       ``(session_id, seq)`` is unique (a batch is written once, atomically)
``alarms``             raised / cleared / acknowledged, priority, technical, the events that did it
``acknowledgements``   who acknowledged which alarm when
``hourly``             per bed and hour (``hour``: its first second): windows classified and
                       unreliable, heart rate count / sum / min / max
``hourly_rhythm``      per bed, hour and rhythm: windows classified as it
``minutes``            per bed and minute: heart rate count / sum / min / max (the FHIR export)
``strips``             the display lead, decimated, in chunks: ``uv`` int16 little-endian µV at ``fs``
=====================  ==========================================================================

Per-hop records (``window``, ``heart_rate``, ``device_label``) are folded into ``hourly``,
``hourly_rhythm`` and ``minutes`` (a 500-bed ward makes a thousand of them a second); every other
record (rhythm changes, quality, gaps, alarms, links, ...) is a row of ``events``. One writer
commits each batch in one transaction before the page sees it (:meth:`WardStore.write`).
SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed batch survives the process being
killed (``kill -9``); a power cut may lose the last batches (``FULL`` would fsync each commit).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from ecgedge.errors import ConfigError
from ecgedge.ward.events import AlarmChange, alarm_of

SCHEMA_VERSION = 1
#: Records made once per hop per bed: summarised, not kept one by one.
PER_HOP = ("window", "heart_rate", "device_label")

_TABLES = """
CREATE TABLE IF NOT EXISTS ward_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id {pk}, started {real} NOT NULL, ended {real}, model TEXT, listen TEXT, http TEXT);
CREATE TABLE IF NOT EXISTS beds (bed TEXT PRIMARY KEY, first_seen {real} NOT NULL, last_seen {real} NOT NULL, peer TEXT,
    fs_hz {real}, leads TEXT, rhythm TEXT, hr_bpm {real}, quality TEXT, link TEXT);
CREATE TABLE IF NOT EXISTS events (id {pk}, session_id BIGINT NOT NULL, seq BIGINT NOT NULL, ts {real} NOT NULL, bed TEXT,
    type TEXT NOT NULL, t {real}, sample BIGINT, body TEXT NOT NULL, UNIQUE (session_id, seq));
CREATE INDEX IF NOT EXISTS events_bed_ts ON events (bed, ts);
CREATE INDEX IF NOT EXISTS events_type_ts ON events (type, ts);
CREATE TABLE IF NOT EXISTS alarms (id {pk}, bed TEXT NOT NULL, alarm TEXT NOT NULL, priority TEXT NOT NULL,
    technical INTEGER NOT NULL, text TEXT, raised {real} NOT NULL, raised_event BIGINT, cleared {real}, cleared_event BIGINT,
    acked {real});
CREATE INDEX IF NOT EXISTS alarms_bed ON alarms (bed, alarm, cleared);
CREATE TABLE IF NOT EXISTS acknowledgements (id {pk}, alarm_id BIGINT NOT NULL REFERENCES alarms (id), ts {real} NOT NULL,
    by_whom TEXT);
CREATE TABLE IF NOT EXISTS hourly (bed TEXT NOT NULL, hour BIGINT NOT NULL, windows_ok BIGINT NOT NULL,
    windows_unreliable BIGINT NOT NULL, hr_n BIGINT NOT NULL, hr_sum {real} NOT NULL, hr_min {real}, hr_max {real},
    PRIMARY KEY (bed, hour));
CREATE TABLE IF NOT EXISTS hourly_rhythm (bed TEXT NOT NULL, hour BIGINT NOT NULL, rhythm TEXT NOT NULL,
    windows BIGINT NOT NULL, PRIMARY KEY (bed, hour, rhythm));
CREATE TABLE IF NOT EXISTS minutes (bed TEXT NOT NULL, minute BIGINT NOT NULL, hr_n BIGINT NOT NULL, hr_sum {real} NOT NULL,
    hr_min {real}, hr_max {real}, PRIMARY KEY (bed, minute));
CREATE TABLE IF NOT EXISTS strips (id {pk}, bed TEXT NOT NULL, ts {real} NOT NULL, first_index BIGINT NOT NULL,
    fs {real} NOT NULL, lead TEXT NOT NULL, uv {blob} NOT NULL);
CREATE INDEX IF NOT EXISTS strips_bed_ts ON strips (bed, ts);
"""


@dataclass(frozen=True)
class _Dialect:
    name: str
    pk: str
    blob: str
    real: str  # seconds since 1970 need a double: PostgreSQL's REAL is 4 bytes
    param: str
    least: str
    greatest: str


SQLITE = _Dialect("sqlite", "INTEGER PRIMARY KEY", "BLOB", "REAL", "?", "min", "max")
POSTGRES = _Dialect("postgresql", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA", "DOUBLE PRECISION", "%s", "LEAST", "GREATEST")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def connect(url: str, *, create: bool = True):
    """A DB-API connection and its dialect for ``--db`` (a SQLite path or ``postgresql://...``).

    SQLite: WAL, ``synchronous=NORMAL``, a 10-s busy timeout (readers never block the writer in WAL).
    PostgreSQL needs ``psycopg`` (the ``ward`` extra). ``create`` False refuses a SQLite file that is
    not there (the ``events`` command reads, it does not make empty databases).
    """
    if is_postgres(url):
        try:
            import psycopg
        except ImportError:
            raise ConfigError("a postgresql:// database needs psycopg: pip install 'ecgedge[ward]'") from None
        try:
            return psycopg.connect(url), POSTGRES
        except psycopg.OperationalError as exc:
            raise ConfigError(f"cannot connect to the ward database {_redacted(url)}: {str(exc).strip()}") from None
    path = Path(url)
    if not create and not path.is_file():
        raise ConfigError(f"no ward database at {path}")
    if path.is_dir():
        raise ConfigError(f"--db {path} is a folder; give a database file")
    try:
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a ward database (SQLite: {exc})") from None
    return conn, SQLITE


def _redacted(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}:***@{tail}"


class WardStore:
    """The one writer of a ward database, and its readers' queries.

    Writing (:meth:`start_session`, :meth:`write`, :meth:`acknowledge`, :meth:`end_session`) happens
    on one connection from one thread, the gateway's writer. Readers open their own
    (:func:`open_reader`).
    """

    def __init__(self, url: str):
        self.url = url
        self.conn, self.dialect = connect(url)
        self._create()
        self.session_id = 0
        self._seq = 0

    # ---- schema ----------------------------------------------------------------------------------------

    def _create(self) -> None:
        d = self.dialect
        with self._tx() as cur:
            for stmt in _TABLES.format(pk=d.pk, blob=d.blob, real=d.real).split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            cur.execute(self._q("SELECT value FROM ward_meta WHERE key = ?"), ("schema",))
            row = cur.fetchone()
            if row is None:
                cur.execute(self._q("INSERT INTO ward_meta (key, value) VALUES (?, ?)"), ("schema", str(SCHEMA_VERSION)))
            elif row[0] != str(SCHEMA_VERSION):
                raise ConfigError(f"{_redacted(self.url)} holds ward schema {row[0]}; this ecgedge writes {SCHEMA_VERSION}")

    def _q(self, sql: str) -> str:
        return sql if self.dialect.param == "?" else sql.replace("?", "%s")

    class _Tx:
        def __init__(self, store: WardStore):
            self.store = store

        def __enter__(self):
            s = self.store
            if s.dialect is SQLITE:
                s.conn.execute("BEGIN IMMEDIATE")
            self.cur = s.conn.cursor()
            return self.cur

        def __exit__(self, kind, exc, tb):
            if kind is None:
                self.store.conn.commit() if self.store.dialect is not SQLITE else self.store.conn.execute("COMMIT")
            else:
                self.store.conn.rollback() if self.store.dialect is not SQLITE else self.store.conn.execute("ROLLBACK")
            return False

    def _tx(self) -> WardStore._Tx:
        return WardStore._Tx(self)

    def close(self) -> None:
        self.conn.close()

    # ---- the writer ------------------------------------------------------------------------------------

    def start_session(self, model: str, listen: str, http: str) -> int:
        with self._tx() as cur:
            cur.execute(self._q("INSERT INTO sessions (started, model, listen, http) VALUES (?, ?, ?, ?) RETURNING id"),
                        (time.time(), model, listen, http))
            self.session_id = int(cur.fetchone()[0])
        self._seq = 0
        return self.session_id

    def end_session(self) -> None:
        with self._tx() as cur:
            cur.execute(self._q("UPDATE sessions SET ended = ? WHERE id = ?"), (time.time(), self.session_id))

    def write(self, records: Sequence[dict], strips: Iterable[dict] = (), now: float | None = None) -> list[dict]:
        """Commit one batch (records in order, strip chunks) in one transaction; returns what the
        page is pushed: each record with ``id`` (its ``events`` row, if kept) and ``ts``, and the
        alarm rows the batch raised or cleared (``{"type": "alarm", ...}``), in order."""
        now = time.time() if now is None else now
        out: list[dict] = []
        hourly: dict[tuple[str, int], list] = {}
        rhythm: dict[tuple[str, int, str], int] = {}
        minutes: dict[tuple[str, int], list] = {}
        beds: dict[str, dict[str, Any]] = {}
        with self._tx() as cur:
            for record in records:
                bed = record.get("stream")
                bed = None if bed is None else str(bed)
                kind = record.get("type")
                pushed = dict(record, ts=now)
                if bed is not None:
                    beds.setdefault(bed, {})["last_seen"] = now
                if kind in PER_HOP:
                    if bed is not None:
                        _fold(record, bed, now, hourly, rhythm, minutes, beds[bed])
                    out.append(pushed)
                    continue
                self._seq += 1
                sample = record.get("sample", record.get("first_sample", record.get("after_sample")))
                cur.execute(self._q("INSERT INTO events (session_id, seq, ts, bed, type, t, sample, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                                    "RETURNING id"),
                            (self.session_id, self._seq, now, bed, kind, record.get("t"), sample if isinstance(sample, int) else None,
                             json.dumps(record, separators=(",", ":"))))
                event_id = int(cur.fetchone()[0])
                pushed["id"] = event_id
                out.append(pushed)
                if bed is not None:
                    _bed_state(record, beds[bed])
                change = alarm_of(record)
                if change is not None:
                    alarm = self._alarm(cur, change, event_id, now)
                    if alarm is not None:
                        out.append(alarm)
            for bed, state in beds.items():
                self._upsert_bed(cur, bed, state, now)
            self._upsert_summaries(cur, hourly, rhythm, minutes)
            for chunk in strips:
                cur.execute(self._q("INSERT INTO strips (bed, ts, first_index, fs, lead, uv) VALUES (?, ?, ?, ?, ?, ?)"),
                            (chunk["bed"], chunk["ts"], chunk["first"], chunk["fs"], chunk["lead"], chunk["uv"]))
        return out

    def prune_strips(self, older_than: float) -> int:
        """Delete the strip chunks that began before wall time ``older_than``; how many went."""
        with self._tx() as cur:
            cur.execute(self._q("DELETE FROM strips WHERE ts < ?"), (older_than,))
            return int(cur.rowcount or 0)

    def _alarm(self, cur, change: AlarmChange, event_id: int, now: float) -> dict | None:
        cur.execute(self._q("SELECT id FROM alarms WHERE bed = ? AND alarm = ? AND cleared IS NULL ORDER BY id DESC LIMIT 1"),
                    (change.bed, change.alarm))
        row = cur.fetchone()
        if change.raised:
            if row is not None:
                return None  # already raised
            cur.execute(self._q("INSERT INTO alarms (bed, alarm, priority, technical, text, raised, raised_event) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
                        (change.bed, change.alarm, change.priority.value, int(change.technical), change.text, now, event_id))
            alarm_id = int(cur.fetchone()[0])
        else:
            if row is None:
                return None
            alarm_id = int(row[0])
            cur.execute(self._q("UPDATE alarms SET cleared = ?, cleared_event = ? WHERE id = ?"), (now, event_id, alarm_id))
        return self._alarm_row(cur, alarm_id)

    def _alarm_row(self, cur, alarm_id: int) -> dict:
        cur.execute(self._q(f"SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?"), (alarm_id,))
        return alarm_record(cur.fetchone())

    def acknowledge(self, alarm_id: int, by: str = "") -> dict | None:
        """Acknowledge an alarm (silences it; a cleared and acknowledged alarm leaves the list); None: no such alarm."""
        now = time.time()
        with self._tx() as cur:
            cur.execute(self._q("SELECT id, acked FROM alarms WHERE id = ?"), (alarm_id,))
            row = cur.fetchone()
            if row is None:
                return None
            if row[1] is None:
                cur.execute(self._q("UPDATE alarms SET acked = ? WHERE id = ?"), (now, alarm_id))
            cur.execute(self._q("INSERT INTO acknowledgements (alarm_id, ts, by_whom) VALUES (?, ?, ?)"), (alarm_id, now, by))
            return self._alarm_row(cur, alarm_id)

    def _upsert_bed(self, cur, bed: str, state: dict, now: float) -> None:
        cols = [c for c in ("peer", "fs_hz", "leads", "rhythm", "hr_bpm", "quality", "link") if c in state]
        names = ", ".join(["bed", "first_seen", "last_seen", *cols])
        marks = ", ".join("?" * (3 + len(cols)))
        sets = ", ".join(["last_seen = excluded.last_seen", *(f"{c} = excluded.{c}" for c in cols)])
        cur.execute(self._q(f"INSERT INTO beds ({names}) VALUES ({marks}) ON CONFLICT (bed) DO UPDATE SET {sets}"),
                    (bed, now, now, *(state[c] for c in cols)))

    def _upsert_summaries(self, cur, hourly, rhythm, minutes) -> None:
        d = self.dialect
        for (bed, hour), (ok, bad, n, s, lo, hi) in hourly.items():
            cur.execute(self._q(
                "INSERT INTO hourly (bed, hour, windows_ok, windows_unreliable, hr_n, hr_sum, hr_min, hr_max) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (bed, hour) DO UPDATE SET windows_ok = hourly.windows_ok + excluded.windows_ok, "
                "windows_unreliable = hourly.windows_unreliable + excluded.windows_unreliable, hr_n = hourly.hr_n + excluded.hr_n, "
                f"hr_sum = hourly.hr_sum + excluded.hr_sum, hr_min = {_both(d.least, 'hourly.hr_min', 'excluded.hr_min')}, "
                f"hr_max = {_both(d.greatest, 'hourly.hr_max', 'excluded.hr_max')}"), (bed, hour, ok, bad, n, s, lo, hi))
        for (bed, hour, label), n in rhythm.items():
            cur.execute(self._q("INSERT INTO hourly_rhythm (bed, hour, rhythm, windows) VALUES (?, ?, ?, ?) ON CONFLICT (bed, hour, rhythm) "
                                "DO UPDATE SET windows = hourly_rhythm.windows + excluded.windows"), (bed, hour, label, n))
        for (bed, minute), (n, s, lo, hi) in minutes.items():
            cur.execute(self._q(
                "INSERT INTO minutes (bed, minute, hr_n, hr_sum, hr_min, hr_max) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (bed, minute) "
                "DO UPDATE SET hr_n = minutes.hr_n + excluded.hr_n, hr_sum = minutes.hr_sum + excluded.hr_sum, "
                f"hr_min = {_both(d.least, 'minutes.hr_min', 'excluded.hr_min')}, hr_max = {_both(d.greatest, 'minutes.hr_max', 'excluded.hr_max')}"),
                (bed, minute, n, s, lo, hi))


def _both(fn: str, a: str, b: str) -> str:
    """``fn(a, b)`` where either may be NULL (SQLite's min() of a NULL is NULL; PostgreSQL's LEAST skips it)."""
    return f"COALESCE({fn}({a}, {b}), {a}, {b})"


def _fold(record: dict, bed: str, now: float, hourly, rhythm, minutes, state: dict) -> None:
    """Add one per-hop record to the batch's hourly and per-minute sums and the bed's state."""
    hour = int(now // 3600 * 3600)
    h = hourly.setdefault((bed, hour), [0, 0, 0, 0.0, None, None])
    kind = record["type"]
    if kind == "window":
        if record.get("quality") == "ok":
            h[0] += 1
            label = record.get("label")
            if label is not None:
                rhythm[(bed, hour, str(label))] = rhythm.get((bed, hour, str(label)), 0) + 1
        else:
            h[1] += 1
        state["quality"] = record.get("quality")
    elif kind == "heart_rate":
        hr = record.get("hr_bpm")
        state["hr_bpm"] = hr
        if isinstance(hr, (int, float)) and math.isfinite(hr):
            _add_rate(h, 2, hr)
            _add_rate(minutes.setdefault((bed, int(now // 60 * 60)), [0, 0.0, None, None]), 0, hr)


def _add_rate(acc: list, at: int, hr: float) -> None:
    """count, sum, min, max of heart rates, from ``acc[at]`` on."""
    acc[at] += 1
    acc[at + 1] += hr
    acc[at + 2] = hr if acc[at + 2] is None else min(acc[at + 2], hr)
    acc[at + 3] = hr if acc[at + 3] is None else max(acc[at + 3], hr)


def _bed_state(record: dict, state: dict) -> None:
    kind = record.get("type")
    if kind == "stream_start":
        state["fs_hz"] = record.get("fs_hz")
        state["leads"] = ",".join(record.get("leads", []))
    elif kind == "rhythm_change":
        state["rhythm"] = record.get("to")
    elif kind == "quality":
        state["quality"] = record.get("quality")
    elif kind == "bed_link":
        state["link"] = record.get("state")
        state["peer"] = record.get("peer")


ALARM_COLUMNS = "id, bed, alarm, priority, technical, text, raised, raised_event, cleared, cleared_event, acked"


def alarm_record(row) -> dict:
    keys = [k.strip() for k in ALARM_COLUMNS.split(",")]
    out = dict(zip(keys, row))
    out["technical"] = bool(out["technical"])
    out["type"] = "alarm"
    out["active"] = out["cleared"] is None
    return out


# ---- readers ------------------------------------------------------------------------------------------


class WardReader:
    """Queries on a ward database (its own connection; safe beside the writer: WAL / MVCC)."""

    def __init__(self, url: str, *, create: bool = False):
        self.conn, self.dialect = connect(url, create=create)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> WardReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        cur = self.conn.cursor()
        cur.execute(sql if self.dialect.param == "?" else sql.replace("?", "%s"), tuple(args))
        rows = cur.fetchall()
        if self.dialect is not SQLITE:
            self.conn.commit()  # end the read transaction: the next query sees newer rows
        return rows

    def beds(self) -> list[dict]:
        keys = ("bed", "first_seen", "last_seen", "peer", "fs_hz", "leads", "rhythm", "hr_bpm", "quality", "link")
        return [dict(zip(keys, r)) for r in self._rows(f"SELECT {', '.join(keys)} FROM beds ORDER BY bed")]

    def alarms(self, *, open_only: bool = True, bed: str | None = None, limit: int = 500) -> list[dict]:
        """Alarms newest first; ``open_only``: those still raised or not yet acknowledged."""
        where, args = [], []
        if open_only:
            where.append("(cleared IS NULL OR acked IS NULL)")
        if bed is not None:
            where.append("bed = ?")
            args.append(bed)
        sql = f"SELECT {ALARM_COLUMNS} FROM alarms" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [alarm_record(r) for r in self._rows(sql, [*args, limit])]

    def events(self, *, bed: str | None = None, since: float | None = None, until: float | None = None,
               types: Sequence[str] = (), limit: int | None = None) -> list[dict]:
        """Events in order (``id``), each its record with ``id``, ``ts``, ``session_id``."""
        where, args = [], []
        for cond, value in (("bed = ?", bed), ("ts >= ?", since), ("ts < ?", until)):
            if value is not None:
                where.append(cond)
                args.append(value)
        if types:
            where.append("type IN (" + ", ".join("?" * len(types)) + ")")
            args += list(types)
        sql = "SELECT id, session_id, ts, body FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) AS newest ORDER BY id"
        return [dict(json.loads(body), id=i, session_id=s, ts=ts) for i, s, ts, body in self._rows(sql, args)]

    def strip(self, bed: str, start: float, end: float) -> list[dict]:
        """Strip chunks of a bed that overlap wall times [start, end): ``ts``, ``fs``, ``lead``, ``first`` and ``uv`` (ints)."""
        import numpy as np

        rows = self._rows("SELECT ts, first_index, fs, lead, uv FROM strips WHERE bed = ? AND ts < ? AND ts >= ? ORDER BY ts, id",
                          (bed, end, start - 60.0))
        out = []
        for ts, first, fs, lead, uv in rows:
            values = np.frombuffer(bytes(uv), dtype="<i2")
            if ts + len(values) / fs > start:
                out.append({"ts": ts, "first": first, "fs": fs, "lead": lead, "uv": values.astype(int).tolist()})
        return out

    def hourly(self, *, bed: str | None = None, since: float | None = None) -> list[dict]:
        where: list[str] = []
        args: list = []
        if bed is not None:
            where.append("h.bed = ?")
            args.append(bed)
        if since is not None:
            where.append("h.hour >= ?")
            args.append(int(since // 3600 * 3600))
        rows = self._rows("SELECT h.bed, h.hour, h.windows_ok, h.windows_unreliable, h.hr_n, h.hr_sum, h.hr_min, h.hr_max FROM hourly h"
                          + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY h.bed, h.hour", args)
        rhythms: dict[tuple[str, int], dict[str, int]] = {}
        for b, hour, label, n in self._rows("SELECT h.bed, h.hour, h.rhythm, h.windows FROM hourly_rhythm h"
                                            + (" WHERE " + " AND ".join(where) if where else ""), args):
            rhythms.setdefault((b, hour), {})[label] = n
        return [{"bed": b, "hour": hour, "windows_ok": ok, "windows_unreliable": bad,
                 "hr_mean": round(s / n, 1) if n else None, "hr_min": lo, "hr_max": hi, "rhythms": rhythms.get((b, hour), {})}
                for b, hour, ok, bad, n, s, lo, hi in rows]

    def minutes(self, *, bed: str | None = None, since: float | None = None, until: float | None = None) -> list[dict]:
        where: list[str] = ["hr_n > 0"]
        args: list = []
        for cond, value in (("bed = ?", bed), ("minute >= ?", None if since is None else int(since // 60 * 60)),
                            ("minute < ?", until)):
            if value is not None:
                where.append(cond)
                args.append(value)
        rows = self._rows("SELECT bed, minute, hr_n, hr_sum, hr_min, hr_max FROM minutes WHERE " + " AND ".join(where)
                          + " ORDER BY bed, minute", args)
        return [{"bed": b, "minute": m, "hr_mean": s / n, "hr_min": lo, "hr_max": hi, "beats_hops": n} for b, m, n, s, lo, hi in rows]


# ---- exports: table, CSV, FHIR --------------------------------------------------------------------------


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _detail(e: dict) -> str:
    skip = {"type", "stream", "t", "id", "session_id", "ts"}
    return " ".join(f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, (dict, list)) else v}"
                    for k, v in e.items() if k not in skip)


def events_table(events: Sequence[dict]) -> str:
    """Aligned text: time (UTC), bed, type, details."""
    lines = [f"{'time (UTC)':24}  {'bed':8}  {'type':14}  details"]
    for e in events:
        lines.append(f"{iso(e['ts']):24}  {str(e.get('stream', '-')):8}  {e['type']:14}  {_detail(e)}")
    return "\n".join(lines)


CSV_COLUMNS = ("id", "time_utc", "ts", "session_id", "bed", "type", "t", "sample", "detail")


def events_csv(events: Sequence[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for e in events:
        w.writerow([e["id"], iso(e["ts"]), f"{e['ts']:.3f}", e["session_id"], e.get("stream", ""), e["type"], e.get("t", ""),
                    e.get("sample", ""), json.dumps({k: v for k, v in e.items() if k not in ("id", "ts", "session_id")},
                                                    separators=(",", ":"))])
    return out.getvalue()


LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
BED_SYSTEM = "urn:ecgedge:ward:bed"


def fhir_observations(events: Sequence[dict], minutes: Sequence[dict]) -> dict:
    """A FHIR R4 ``Bundle`` (collection) of ``Observation`` s, built and validated by ``fhir.resources``
    (its R4B models: R4's Observation, unchanged in 4.3): heart rate per bed and minute (LOINC
    8867-4, ``/min``, the minute's mean, with its min and max as components' reference) and each
    rhythm change (LOINC 8884-9 "Heart rate rhythm", the classifier's label as text). Status
    ``preliminary``: machine-made, not reviewed by a clinician."""
    try:
        from fhir.resources.R4B.bundle import Bundle
        from fhir.resources.R4B.observation import Observation
    except ImportError:
        raise ConfigError("--format fhir needs fhir.resources: pip install 'ecgedge[ward]'") from None
    category = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs",
                             "display": "Vital Signs"}]}]
    entries = []
    for m in minutes:
        entries.append(Observation.model_validate({
            "resourceType": "Observation", "status": "preliminary", "category": category,
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
            "subject": {"identifier": {"system": BED_SYSTEM, "value": m["bed"]}, "display": f"bed {m['bed']}"},
            "effectivePeriod": {"start": iso(m["minute"]), "end": iso(m["minute"] + 60)},
            "valueQuantity": {"value": round(m["hr_mean"], 1), "unit": "beats/minute", "system": UCUM, "code": "/min"},
            "note": [{"text": f"mean of the minute's per-second rates; min {m['hr_min']:g}, max {m['hr_max']:g} /min"}],
            "device": {"display": "ecgedge ward"}}))
    for e in events:
        if e["type"] != "rhythm_change":
            continue
        entries.append(Observation.model_validate({
            "resourceType": "Observation", "status": "preliminary", "category": category,
            "code": {"coding": [{"system": LOINC, "code": "8884-9", "display": "Heart rate rhythm"}], "text": "Heart rate rhythm"},
            "subject": {"identifier": {"system": BED_SYSTEM, "value": str(e["stream"])}, "display": f"bed {e['stream']}"},
            "effectiveDateTime": iso(e["ts"]), "valueCodeableConcept": {"text": str(e["to"])},
            "note": [{"text": f"from {e.get('from')} to {e['to']}, held {e.get('held_windows')} windows, confidence {e.get('confidence')}"}],
            "device": {"display": "ecgedge ward"}, "identifier": [{"system": "urn:ecgedge:ward:event", "value": str(e["id"])}]}))
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "timestamp": iso(time.time()),
                                    "entry": [{"resource": o} for o in entries]})
    return json.loads(bundle.model_dump_json(exclude_none=True))
