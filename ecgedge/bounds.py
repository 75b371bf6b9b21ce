"""Physical bounds on every number that comes from outside ecgedge: the one table.

A WFDB header, a device on the wire, a download server and a command-line option can each hand
ecgedge a number no ECG, link or machine can have (a sampling rate of 0 or 10^9 Hz, a gain of
10^12 adu/mV, a billion bootstrap resamples, a file that never ends). Each such number is checked
here, against the range in :data:`BOUNDS`, with the reason for the range beside it, and refused the
way its caller's policy says:

- *batch jobs* (``data build``, the window cache, ``evaluate``) skip the record and count it with
  the reason (:class:`~ecgedge.errors.BadRecord`);
- *streams* refuse the condition once (one event), never once per frame;
- *options and configs* are one :class:`~ecgedge.errors.ConfigError` line that states the range and why;
- *downloads* stop the file (size) or the transfer (deadline) with a :class:`~ecgedge.errors.DownloadError`.

Ranges that depend on the model (a rate below twice the band-pass edge, an amplitude beyond 20 mV)
are the quality checks' (:mod:`ecgedge.data.quality`): those make a record *unusable* for a model,
these make a number *impossible*. ``docs/reliability-round3.md`` repeats the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bound:
    """A closed range ``[low, high]`` in ``unit`` (``low_open``: ``(low, high]``), and why."""

    name: str
    low: float
    high: float
    unit: str
    why: str
    low_open: bool = False

    def problem(self, value) -> str:
        """Why ``value`` is outside the range; ``""`` when it is inside (NaN, inf and non-numbers never are)."""
        try:
            v = float(value)
        except (TypeError, ValueError):
            return f"{self.name} {value!r} is not a number"
        inside = math.isfinite(v) and (v > self.low if self.low_open else v >= self.low) and v <= self.high
        if inside:
            return ""
        lo = "above" if self.low_open else "at least"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} {v:g}{unit} is out of range: it must be {lo} {self.low:g} and at most {self.high:g}{unit} ({self.why})"


# name -> Bound. Keys are what the code asks for; the docs table is generated from the same values.
BOUNDS: dict[str, Bound] = {b.name: b for b in (
    # -- WFDB and other record headers (batch jobs: the record is skipped and counted)
    Bound("header sampling rate", 0.0, 100_000.0, "Hz",
          "no rate is 0 or negative; ECG front ends sample at most tens of kHz (pacemaker-spike "
          "detection); rates too low for a model's band are the quality checks' to judge", low_open=True),
    Bound("header signal count", 0, 256, "signals",
          "a 12-lead ECG with every auxiliary channel stays far below; each signal costs a reader and a buffer"),
    Bound("header gain", 0.0, 1e7, "adu/mV",
          "real ECG ADCs store 100-10,000 counts per mV; 0 means WFDB's default (200) and never reaches here, "
          "a negative or absurd gain is a corrupt field", low_open=True),
    Bound("header length", 0, 7 * 86_400 * 1_000, "samples",
          "a week of Holter at 1 kHz; longer is a corrupt length field that would size buffers"),
    # -- the wire (streams: the device is refused once, one event)
    Bound("announced sampling rate", 25.0, 20_000.0, "Hz",
          "below 25 Hz no QRS complex (about 100 ms) is sampled at all, and every second of a stream would "
          "be minutes of frames; above 20 kHz no bedside device streams"),
    # -- downloads (the file or the transfer stops, resumable)
    Bound("downloaded file size", 0, 8 * 2**30, "bytes",
          "the largest PhysioNet ECG data file is under 2 GiB; a server that sends more is broken or hostile"),
    Bound("download deadline", 1.0, 7 * 86_400.0, "s",
          "a whole database over a slow link takes hours, not weeks; the per-read timeout alone lets a server "
          "that sends one byte a second hold a download forever"),
    # -- options (one ConfigError line)
    Bound("bootstrap repeats", 1, 100_000, "resamples",
          "10,000 resamples already put a 95 % percentile interval's Monte-Carlo error near 0.5 % of its "
          "width; 100,000 take minutes on 10,000 records, more is days of time and no precision"),
)}


def problem(name: str, value) -> str:
    """Why ``value`` is outside :data:`BOUNDS`'s range ``name``; ``""`` when it is inside."""
    return BOUNDS[name].problem(value)


def header_problems(fs, n_sig, n_samples=None, gains=()) -> list[str]:
    """Every impossible number of a record header: its rate (Hz), signal count, length (samples) and
    each signal's gain (adu/mV; ``None`` for a default gain). Empty when every one is possible."""
    out = [problem("header sampling rate", fs), problem("header signal count", n_sig)]
    if n_samples is not None:
        out.append(problem("header length", n_samples))
    out += [problem("header gain", g) for g in gains if g is not None]
    return [p for p in dict.fromkeys(out) if p]


def markdown_table() -> str:
    """:data:`BOUNDS` as the markdown table the docs carry."""
    rows = ["| number | range | why |", "| --- | --- | --- |"]
    for b in BOUNDS.values():
        lo = f"> {b.low:g}" if b.low_open else f"≥ {b.low:g}"
        rows.append(f"| {b.name} | {lo}, ≤ {b.high:g} {b.unit} | {b.why} |")
    return "\n".join(rows)
