"""The central-station page and its API (Starlette, served by uvicorn inside the gateway's loop).

==========================================  ======================================================
``GET /?token=T``                           the page (``static/``: HTML, JS, CSS; no build step)
``GET /api/stream?token=T``                 server-sent events: a ``snapshot``, then ``batch``
                                            (committed records and alarm rows) and ``strips``
``GET /api/state?token=T``                  the snapshot alone
``POST /api/alarms/{id}/ack``               acknowledge (token in ``X-Ward-Token``)
``GET /api/beds/{bed}/history?hours=H``     a bed's events (rhythm, quality, alarms, links, gaps)
                                            and hourly summaries from the database
``GET /api/beds/{bed}/strip?ts=&before=&after=``  the stored strip around a wall time
``GET /api/status``                         counts, latency percentiles, CPU per stage
==========================================  ======================================================

Every route but the static files needs the token the gateway printed (compared in constant time).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ecgedge.ward.store import WardReader

STATIC = Path(__file__).with_name("static")
#: History event types the page draws on a bed's timeline.
HISTORY_TYPES = ("rhythm_change", "quality", "alert", "rate_alarm", "bed_link", "gap", "stream_start", "restart", "no_data",
                 "bed_assigned")
HEARTBEAT_S = 15.0


def app_for(gateway: Any) -> Starlette:
    """The page and API of a running :class:`~ecgedge.ward.gateway.Gateway` (which imports this
    module: typed ``Any`` here so the two do not import each other)."""

    def allowed(request: Request) -> bool:
        given = request.headers.get("x-ward-token") or request.query_params.get("token") or ""
        return hmac.compare_digest(given.encode(), gateway.token.encode())

    def refused() -> Response:
        return JSONResponse({"error": "this needs the ward's token (printed by ecgedge ward at start)"}, status_code=401)

    async def page(request: Request) -> Response:
        if not allowed(request):
            return HTMLResponse("<h1>401</h1><p>Open the address <code>ecgedge ward</code> printed: it carries the token.</p>",
                                status_code=401)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(gateway.snapshot()) if allowed(request) else refused()

    async def status(request: Request) -> Response:
        return JSONResponse(gateway.status()) if allowed(request) else refused()

    async def stream(request: Request) -> Response:
        if not allowed(request):
            return refused()
        if len(gateway.subscribers) >= gateway.limits.max_subscribers:
            return JSONResponse({"error": f"more than {gateway.limits.max_subscribers} pages connected"}, status_code=503)
        q: asyncio.Queue = asyncio.Queue(maxsize=gateway.limits.subscriber_queue)
        gateway.subscribers.add(q)

        async def events():
            try:
                yield "retry: 1000\n\n"
                yield f"data: {json.dumps(gateway.snapshot(), separators=(',', ':'))}\n\n"
                while True:
                    try:
                        text = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if text is None:
                        return
                    yield f"data: {text}\n\n"
            finally:
                gateway.subscribers.discard(q)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def ack(request: Request) -> Response:
        if not allowed(request):
            return refused()
        try:
            body = await request.json()
        except ValueError:
            body = {}
        by = str((body or {}).get("by", "central station"))[:80]
        row = await gateway.acknowledge(int(request.path_params["alarm_id"]), by)
        return JSONResponse(row) if row is not None else JSONResponse({"error": "no such alarm"}, status_code=404)

    async def history(request: Request) -> Response:
        if not allowed(request):
            return refused()
        bed = request.path_params["bed"]
        hours = min(max(float(request.query_params.get("hours", 2)), 0.01), 72.0)
        since = time.time() - hours * 3600

        def read():
            with WardReader(gateway.cfg.db) as r:
                return {"bed": bed, "since": since, "events": r.events(bed=bed, since=since, types=HISTORY_TYPES, limit=2000),
                        "alarms": r.alarms(open_only=False, bed=bed, limit=200), "hourly": r.hourly(bed=bed, since=since)}

        return JSONResponse(await asyncio.to_thread(read))

    async def strip(request: Request) -> Response:
        if not allowed(request):
            return refused()
        bed = request.path_params["bed"]
        try:
            ts = float(request.query_params["ts"])
            before = min(float(request.query_params.get("before", 6)), 60.0)
            after = min(float(request.query_params.get("after", 4)), 60.0)
        except (KeyError, ValueError):
            return JSONResponse({"error": "give ts (seconds since 1970), and before/after in s (at most 60)"}, status_code=400)

        def read():
            with WardReader(gateway.cfg.db) as r:
                return r.strip(bed, ts - before, ts + after)

        return JSONResponse({"bed": bed, "ts": ts, "before": before, "after": after, "chunks": await asyncio.to_thread(read)})

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/api/status", status),
        Route("/api/stream", stream),
        Route("/api/alarms/{alarm_id:int}/ack", ack, methods=["POST"]),
        Route("/api/beds/{bed}/history", history),
        Route("/api/beds/{bed}/strip", strip),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
