"""Live views of the beds in a session, for a person at the bedside or the bench.

- :class:`TerminalView` (``--show``): a strip chart of the last seconds of one lead per bed, with
  the current rhythm, the heart rate, the last window's verdict and the latest events, redrawn in
  place with plain ANSI escapes (no dependency); a row of ``▲`` under the strip marks the beats
  found (``heart_rate`` records), a raised rate alarm shows in the bed's head line. Lost samples are
  drawn as a dotted line, never joined over.
- :class:`PngEvents` (``--show-png DIR``): a PNG strip of the seconds before each rhythm change,
  each loss of signal quality and each rate alarm raised, with the beats marked and the heart rate
  in the title. matplotlib is imported only here and only when asked; without it
  the view says so once and writes nothing. ``DIR`` is a folder ecgedge owns (:func:`claim_strips`,
  house style 20): new, empty, or a strips folder of an earlier stream, which the new strips join;
  each PNG is written atomically and listed in the folder's marker as it is written.

Both get every delivered frame (``frame``) and every record (``update``); memory is bounded by
one trace of ``seconds`` of one lead per bed.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Hashable

import numpy as np

from ecgedge.bridge.frame import Frame
from ecgedge.data.leads import lead_indices
from ecgedge.errors import MissingLeads
from ecgedge.fsio import FolderKind, atomic_file, claim_in_place, clean_stale_temps, own_files, read_marker

HIDE_CURSOR, SHOW_CURSOR, HOME, CLEAR_LINE, CLEAR_BELOW, CLEAR = "\x1b[?25l", "\x1b[?25h", "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"
RED, GREEN, YELLOW, BOLD, DIM, RESET = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


def lead_index(lead_ids, wanted: str) -> int:
    """Row of ``wanted`` among ``lead_ids`` (by :func:`ecgedge.data.leads.lead_indices`: MLII counts as II);
    the first lead when it is absent."""
    try:
        return lead_indices(lead_ids, [wanted])[0]
    except MissingLeads:
        return 0


class LeadTrace:
    """The last ``seconds`` of one lead of one bed in mV; NaN where samples were lost."""

    def __init__(self, fs_hz: float, lead_ids, wanted: str, seconds: float):
        self.fs_hz = fs_hz
        self.lead_ids = tuple(lead_ids)
        self.row = lead_index(self.lead_ids, wanted)
        self.lead = self.lead_ids[self.row]
        self.capacity = max(1, int(round(seconds * fs_hz)))
        self.y = np.full(self.capacity, np.nan)
        self.end: int | None = None  # source index one past the newest sample

    def add(self, frame: Frame) -> None:
        mv = frame.samples_mv()[self.row]
        if self.end is None or frame.first_sample < self.end:  # first frame, or a restart rewound the index
            self.y[:] = np.nan
        elif frame.first_sample > self.end:  # lost samples: NaN, so the strip shows the hole
            self._append(np.full(min(frame.first_sample - self.end, self.capacity), np.nan))
        self._append(mv)
        self.end = frame.end_sample

    def _append(self, x: np.ndarray) -> None:
        x = x[-self.capacity:]
        self.y = np.roll(self.y, -len(x))
        self.y[-len(x):] = x

    def last(self, seconds: float, end_sample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times in s, mV) of the ``seconds`` ending at ``end_sample`` (default the newest); NaN where unknown."""
        n = min(self.capacity, max(1, int(round(seconds * self.fs_hz))))
        if self.end is None:
            return np.zeros(0), np.zeros(0)
        end = self.end if end_sample is None else min(end_sample, self.end)
        stop = self.capacity - (self.end - end)
        y = self.y[max(0, stop - n):max(0, stop)]
        t = (end - len(y) + np.arange(len(y))) / self.fs_hz
        return t, y


class _Traces:
    """One :class:`LeadTrace` per bed, started over when its sampling rate or leads change."""

    def __init__(self, lead: str, seconds: float):
        self.lead, self.seconds = lead, seconds
        self.by_stream: dict[Hashable, LeadTrace] = {}

    def frame(self, frame: Frame) -> None:
        trace = self.by_stream.get(frame.stream_id)
        if trace is None or trace.fs_hz != frame.fs_hz or trace.lead_ids != frame.lead_ids:
            trace = self.by_stream[frame.stream_id] = LeadTrace(frame.fs_hz, frame.lead_ids, self.lead, self.seconds)
        trace.add(frame)


class _BedState:
    def __init__(self) -> None:
        self.rhythm: str | None = None
        self.window: dict | None = None
        self.no_data = False
        self.hr_bpm: float | None = None
        self.beats: deque[int] = deque(maxlen=BEATS_KEPT)  # source samples of the last beats found
        self.alarms: dict[str, bool] = {}  # rate alarms raised now: name -> technical


# Beats kept per bed for the markers: more than a strip of the fastest rate (300 bpm x 15 s).
BEATS_KEPT = 80


def beat_columns(beats, end: int, n: int, cols: int) -> str:
    """A row of ``cols`` characters with ``▲`` under each beat (source samples) among the ``n`` samples
    ending at ``end``."""
    row = [" "] * cols
    for b in beats:
        if end - n <= b < end:
            row[min(cols - 1, (b - (end - n)) * cols // max(1, n))] = "▲"
    return "".join(row)


def strip_lines(y: np.ndarray, cols: int, rows: int) -> tuple[list[str], float, float]:
    """Character rows drawing ``y`` (mV) over ``cols`` columns; returns (rows, top mV, bottom mV)."""
    grid = [[" "] * cols for _ in range(rows)]
    finite = y[np.isfinite(y)]
    if finite.size == 0:
        lo, hi = -1.0, 1.0
    else:
        lo, hi = np.percentile(finite, [0.5, 99.5])
        mid, half = (lo + hi) / 2, max((hi - lo) / 2 * 1.1, 0.5)  # at least 1 mV full scale
        lo, hi = mid - half, mid + half
    edges = np.linspace(0, len(y), cols + 1).astype(int)
    for c in range(cols):
        seg = y[edges[c]:max(edges[c + 1], edges[c] + 1)] if len(y) else y
        seg = seg[np.isfinite(seg)] if seg.size else seg
        if seg.size == 0:
            if len(y):
                grid[rows // 2][c] = "·"
            continue
        r_top, r_bottom = (int(np.clip(round((hi - v) / (hi - lo) * (rows - 1)), 0, rows - 1)) for v in (seg.max(), seg.min()))
        for r in range(r_top, r_bottom + 1):
            grid[r][c] = "─" if r_top == r_bottom else "│"
    return ["".join(row) for row in grid], hi, lo


class TerminalView:
    """Strip chart of the last ``seconds`` of ``lead`` per bed, redrawn in place at most every ``min_interval_s``.

    Args:
        out: text stream to draw on (default stderr, so JSON lines on stdout stay clean).
        seconds: seconds of signal shown (default 5).
        lead: the lead drawn (default II; the first lead of a bed that has no II).
        min_interval_s: least time between redraws (a rhythm change redraws at once).
        size: (columns, lines) of the terminal (default: asked of the terminal).
    """

    def __init__(self, out=None, *, seconds: float = 5.0, lead: str = "II", min_interval_s: float = 0.25,
                 size: tuple[int, int] | None = None):
        self.out = out if out is not None else sys.stderr
        self.seconds = seconds
        self.traces = _Traces(lead, seconds)
        self.min_interval_s = min_interval_s
        self.size = size
        self.beds: dict[Hashable, _BedState] = {}
        self.events: list[str] = []
        self._last_draw = -1e9
        self._drawn = False

    def frame(self, frame: Frame) -> None:
        self.traces.frame(frame)
        self.beds.setdefault(frame.stream_id, _BedState()).no_data = False

    def update(self, records: list[dict], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        urgent = False
        for r in records:
            bed = self.beds.setdefault(r["stream"], _BedState()) if "stream" in r else None
            kind = r["type"]
            if kind == "window":
                assert bed is not None  # window, rhythm and no-data records name their bed
                bed.window = r
            elif kind == "heart_rate":
                assert bed is not None
                bed.hr_bpm = r["hr_bpm"]
                bed.beats.extend(r["beats"])
            elif kind == "rate_alarm":
                assert bed is not None
                if r["state"] == "raised":
                    bed.alarms[r["alarm"]] = r["technical"]
                    urgent = True
                else:
                    bed.alarms.pop(r["alarm"], None)
                what = r["alarm"].replace("_", " ") + (" (technical: " + r.get("reason", "") + ")" if r["technical"] else "")
                self._event(f"{r['t']:.1f} s bed {r['stream']}: {what} {r['state']}")
            elif kind == "rhythm_change":
                assert bed is not None
                bed.rhythm = r["to"]
                urgent = True
                self._event(f"{r['t']:.1f} s bed {r['stream']}: rhythm {r['from'] or 'start'} -> {r['to']} ({r['confidence']:.2f})")
            elif kind == "quality":
                self._event(f"{r['t']:.1f} s bed {r['stream']}: signal {r['quality']}"
                            + (f" ({r['reason']})" if r.get("reason") else ""))
            elif kind == "gap":
                self._event(f"{r['t']:.1f} s bed {r['stream']}: gap of {r['seconds']:.2f} s "
                            f"(samples {r['samples'][0]}-{r['samples'][1]})")
            elif kind == "no_data":
                assert bed is not None
                bed.no_data = True
                self._event(f"bed {r['stream']}: no data for {r['seconds']:.0f} s")
            elif kind in ("link", "stream_error", "restart"):
                self._event(f"{kind}: " + str(r.get("detail") or r.get("state") or r.get("first_sample")))
        if urgent or now - self._last_draw >= self.min_interval_s:
            self.draw()
            self._last_draw = now

    def _event(self, text: str) -> None:
        self.events = (self.events + [text])[-4:]

    def render(self) -> str:
        """The whole screen as text with ANSI colours (without cursor movement)."""
        width, height = self.size or shutil.get_terminal_size((100, 30))
        cols = max(20, width - 9)
        beds = sorted(self.beds, key=str)
        per_bed = max(3, min(12, (height - 3 - len(self.events)) // max(1, len(beds)) - 2))
        lines = []
        for sid in beds:
            bed = self.beds[sid]
            trace = self.traces.by_stream.get(sid)
            _, y = trace.last(self.seconds) if trace else (None, np.zeros(0))
            head = f"{BOLD}bed {sid}{RESET}"
            if trace is not None and trace.end is not None:  # a trace is made with its first frame
                head += f"  lead {trace.lead}  {trace.fs_hz:g} Hz  t {trace.end / trace.fs_hz:7.1f} s"
            head += f"   rhythm {BOLD}{bed.rhythm or '-'}{RESET}"
            head += f"   HR {BOLD}{bed.hr_bpm:.0f}{RESET} bpm" if bed.hr_bpm is not None else "   HR -"
            for name, technical in bed.alarms.items():
                head += f"   {RED}{BOLD}{name.replace('_', ' ').upper()}{' (technical)' if technical else ''}{RESET}"
            w = bed.window
            if bed.no_data:
                head += f"   {RED}NO DATA{RESET}"
            elif w is None:
                head += f"   {DIM}waiting for the first window{RESET}"
            elif w["quality"] == "ok":
                head += f"   {GREEN}window {w['label']} {w['probs'][w['label']]:.2f}{RESET}"
            else:
                head += f"   {RED}UNRELIABLE: {w['reason']}{RESET}"
            lines.append(head)
            rows, top, bottom = strip_lines(y, cols, per_bed)
            for i, row in enumerate(rows):
                label = f"{top:+6.2f} " if i == 0 else f"{bottom:+6.2f} " if i == len(rows) - 1 else " " * 7
                lines.append(f"{DIM}{label}{RESET}│{row}")
            if trace is not None and trace.end is not None:
                lines.append(f"{' ' * 7}│{YELLOW}{beat_columns(bed.beats, trace.end, len(y), cols)}{RESET}")
            lines.append(f"{DIM}{' ' * 7}└{'─' * cols} mV, last {self.seconds:g} s{RESET}")
        lines += [f"{YELLOW}{e}{RESET}" for e in self.events]
        return "\n".join(lines)

    def draw(self) -> None:
        prefix = HIDE_CURSOR + CLEAR + HOME if not self._drawn else HOME
        body = self.render().replace("\n", CLEAR_LINE + "\n")
        self.out.write(prefix + body + CLEAR_LINE + "\n" + CLEAR_BELOW)
        self.out.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.draw()
            self.out.write(SHOW_CURSOR)
            self.out.flush()


_STRIP = re.compile(r"^bed.+_\d+\.\d{3}s_.+\.png$")


def _legacy_strips(folder: Path) -> list[str] | None:
    """The strips of a ``--show-png`` folder written before folder markers: a folder holding nothing
    but ``bed*_*s_*.png`` files (and atomic writes' leftovers); ``None`` for anything else."""
    names = [p.name for p in folder.iterdir()]
    strips = [n for n in names if _STRIP.match(n) and (folder / n).is_file()]
    if not strips or any(n not in strips and not n.endswith(".tmp") for n in names):
        return None
    return strips


def claim_strips(folder: str | Path, inputs=()) -> Path:
    """Claim ``folder`` for ``--show-png`` strips (:func:`ecgedge.fsio.claim_in_place`): new, empty, or
    the strips folder of an earlier stream (the new strips join it; a strip of the same name, ecgedge's,
    is replaced). Refused (:class:`~ecgedge.errors.ConfigError`, nothing written): a user's folder, an
    ecgedge folder of another kind (a run, an export, an evaluation), a folder holding one of
    ``inputs`` (the export, the record played). Temporary files of a stream killed mid-write are
    removed. Returns the folder."""
    folder = Path(folder)
    claim_in_place(folder, FolderKind.strips, replace=True, inputs=inputs, legacy=_legacy_strips)
    clean_stale_temps(folder)
    return folder


class PngEvents:
    """A PNG strip of the ``seconds`` before each rhythm change and each loss of signal quality.

    Files are ``DIR/bed{stream}_{t}s_{what}.png``, each written atomically and listed in ``DIR``'s
    marker (:func:`claim_strips` claims ``DIR`` first; ``inputs``: what it may not hold). A user's
    file of a strip's name is kept: that strip gets a numbered name. Without matplotlib, says so
    once on stderr and claims nothing.
    """

    def __init__(self, folder: str | Path, *, seconds: float = 10.0, lead: str = "II", inputs=()):
        self.folder = Path(folder)
        self.seconds = seconds
        self.traces = _Traces(lead, seconds + 5.0)  # events come out up to a read's worth after their sample
        self.written: list[Path] = []
        self.beats: dict[Hashable, _BedState] = {}  # per bed: the last beats and heart rate
        self._figure: tuple[Any, Any] | None = None  # matplotlib's (Figure, FigureCanvasAgg) classes
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            print("--show-png: matplotlib is not installed (pip install matplotlib); no PNG strips will be written",
                  file=sys.stderr)
            return
        claim_strips(self.folder, inputs)
        self._figure = (Figure, FigureCanvasAgg)

    def frame(self, frame: Frame) -> None:
        if self._figure is not None:
            self.traces.frame(frame)

    def update(self, records: list[dict], now: float | None = None) -> None:
        if self._figure is None:
            return
        for r in records:
            if r["type"] == "heart_rate":
                bed = self.beats.setdefault(r["stream"], _BedState())
                bed.hr_bpm = r["hr_bpm"]
                bed.beats.extend(r["beats"])
            elif r["type"] == "rate_alarm" and r["state"] == "raised":
                what = r["alarm"].replace("_", " ") + (f" (technical: {r.get('reason', '')})" if r["technical"] else "")
                self.write(r, what, f"alarm_{r['alarm']}{'_technical' if r['technical'] else ''}")
            elif r["type"] == "rhythm_change":
                self.write(r, f"{r['from'] or 'start'} -> {r['to']} (p {r['confidence']:.2f}, held {r['held_windows']} windows)",
                           f"rhythm_{r['from'] or 'none'}-{r['to']}")
            elif r["type"] == "quality" and r["quality"] == "unreliable" and r.get("reason") != "starting up":
                self.write(r, f"signal unreliable: {r['reason']}", "unreliable")

    def write(self, event: dict, title: str, what: str) -> Path | None:
        trace = self.traces.by_stream.get(event["stream"])
        if trace is None or self._figure is None:  # traces are only kept with matplotlib
            return None
        t, y = trace.last(self.seconds, event["sample"])
        Figure, FigureCanvasAgg = self._figure
        fig = Figure(figsize=(10, 2.4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.plot(t, y, lw=0.8, color="black")
        bed = self.beats.get(event["stream"])
        hr = ""
        if bed is not None and len(t):
            # Beats found up to the event (R peaks, source samples) marked on the trace.
            shown = [b for b in bed.beats if t[0] * trace.fs_hz <= b <= t[-1] * trace.fs_hz]
            at = [y[min(len(y) - 1, int(round(b - t[0] * trace.fs_hz)))] for b in shown]
            ax.plot(np.array(shown) / trace.fs_hz, at, "v", color="tab:red", ms=5, label="beats")
            hr = f", HR {bed.hr_bpm:.0f} bpm" if bed.hr_bpm is not None else ", HR -"
        ax.set_xlabel("s since the stream started")
        ax.set_ylabel(f"lead {trace.lead} (mV)")
        ax.set_title(f"bed {event['stream']}, {event['t']:.1f} s{hr}: {title}", fontsize=10)
        ax.grid(True, lw=0.3)
        fig.tight_layout()
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"bed{event['stream']}_{event['t']:09.3f}s_{what}")
        path = self._free(stem)
        with atomic_file(path, "wb") as f:
            fig.savefig(f, format="png")
        own_files(self.folder, path.name)
        self.written.append(path)
        return path

    def _free(self, stem: str) -> Path:
        """``DIR/STEM.png``, or ``DIR/STEM-2.png`` ... where a file of that name is not ecgedge's."""
        owned = set((read_marker(self.folder) or {"files": []})["files"])
        path, n = self.folder / f"{stem}.png", 1
        while (path.exists() or path.is_symlink()) and path.name not in owned:
            n += 1
            path = self.folder / f"{stem}-{n}.png"
        return path

    def close(self) -> None:
        pass


def views_from_options(*, show: bool = False, png_dir: str | Path | None = None, lead: str = "II", out=None, inputs=()) -> list:
    """The live views the CLI options ask for (terminal strip chart on ``out``, PNG strips in ``png_dir``,
    which may not hold ``inputs``)."""
    views: list = []
    if show:
        views.append(TerminalView(out, lead=lead))
    if png_dir:
        views.append(PngEvents(png_dir, lead=lead, inputs=inputs))
    return views
