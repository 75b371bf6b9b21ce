"""``ecgedge evaluate stream``: play annotated long recordings through the bedside stream and score it.

Scoring lives in :mod:`ecgedge.evaluate`; the stream it plays (:mod:`ecgedge.stream`) sits below and never
imports it.

Each record is played, faster than real time, through the path a bedside monitor runs:
:class:`~ecgedge.stream.hub.StreamHub` and :class:`~ecgedge.stream.monitor.BedMonitor`
(preprocessing, quality checks, the model, hysteresis), fed one minute of samples at a time. With
``via_device`` it goes through the simulated device (``ecgsim``, C) and the wire decoder as well
(:func:`~ecgedge.stream.run.stream_from_export`), exactly as ``ecgedge stream --source wfdb:``.
Both produce the same JSON records ``ecgedge stream`` prints; everything below reads only those.

The samples come from the records' reader (:func:`ecgedge.data.read_record`: wfdb, ECG leads in
mV): the model's leads. A single-lead model takes the record's ``lead`` when one is named (``--lead
MLII`` plays MIT-BIH's MLII as the model's lead), else the lead of its name. For ``via_device`` those
leads, as wfdb reads their ADC integers, are written as a temporary format-16 record with their own
ADC gain, which the device plays.

The reference is the record's ``.atr`` (:func:`~ecgedge.data.annotations.read_rhythm_reference`). A
**class map** takes each reference rhythm code to one of the model's classes; it is explicit,
printed and stored in the report (:func:`class_map`). AF scoring (:mod:`ecgedge.evaluate.episodes`)
compares the reference AF (``(AFIB``) with the stream's AF episodes: from each ``rhythm_change``
to the AF class until the next change away from it (the alarm is raised at the event's sample,
which is the end of the window that completed the hysteresis). Atrial flutter (``(AFL``) is excluded.
Coverage is the share of time whose window verdicts were ``ok``. Window agreement compares each
``ok`` window's label with the mapped reference class, over windows that lie inside one reference
rhythm.

A sweep (``hop`` x ``hysteresis``) plays each hop once and replays its window verdicts through a fresh
monitor's hysteresis (:meth:`~ecgedge.stream.monitor.BedMonitor.resolve`, the product's rule) for
each hysteresis, so a sweep costs one inference pass per hop.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from ecgedge.config import Backend, Precision
from ecgedge.data.annotations import BeatReference, RhythmReference, read_beat_reference, read_rhythm_reference
from ecgedge.data.leads import chosen_lead_row, lead_indices
from ecgedge.data.records import read_record
from ecgedge.errors import BadRecord, ConfigError, DataNotFound, MissingLeads, ShapeMismatch
from ecgedge.fsio import FolderKind, claim_folder, owned_folder
from ecgedge.evaluate.episodes import EpisodeScore, Interval, markdown_table, score_episodes, summarise

AF_CODE = "AFIB"
FLUTTER_CODE = "AFL"

# Reference rhythm codes (MIT-BIH aux_note) to the classes of the two label vocabularies ecgedge trains.
_CINC2017 = {"N": "N", "AFIB": "A"}            # anything else (SBR, B, T, VT, ...) is "other rhythm", O
_CHAPMAN = {"N": "SR", "SBR": "SB", "AFIB": "AFIB", "AFL": "AF", "SVTA": "SVT"}


def class_map(labels: Sequence[str], codes: Sequence[str], overrides: dict[str, str] | None = None) -> dict[str, str | None]:
    """The model class of each reference rhythm code (None: not scored window by window).

    CinC-2017 models (classes N, A, O, ~): ``N`` -> N, ``AFIB`` -> A, every other rhythm -> O.
    Chapman models: ``N`` -> SR, ``SBR`` -> SB, ``AFIB`` -> AFIB, ``AFL`` -> AF (AFIB where the model
    merges flutter into AFIB), ``SVTA`` -> SVT; others unmapped. ``overrides`` (``{"AFL": "A"}``) win.

    Raises:
        ConfigError: an override names a class the model does not have, or AFIB maps to no class.
    """
    labels = tuple(labels)
    overrides = dict(overrides or {})
    out: dict[str, str | None] = {}
    cinc = {"N", "A", "O"} <= set(labels)
    for code in sorted(set(codes) | {AF_CODE}):
        if cinc:
            out[code] = _CINC2017.get(code, "O")
        else:
            cls = _CHAPMAN.get(code)
            if code == FLUTTER_CODE and cls not in labels:
                cls = "AFIB"
            out[code] = cls if cls in labels else None
    for code, cls in overrides.items():
        if cls not in labels:
            raise ConfigError(f"--map {code}={cls}: the model has no class {cls!r} (its classes: {', '.join(labels)})")
        out[code] = cls
    if out.get(AF_CODE) is None:
        raise ConfigError(f"reference AF ({AF_CODE}) maps to no class of the model ({', '.join(labels)}); "
                          f"name the model's AF class with --map {AF_CODE}=CLASS")
    return out


@dataclass(frozen=True)
class StreamEvalConfig:
    """``ecgedge evaluate stream``.

    Args:
        export: export folder (a shipped model's folder included).
        records: ``.hea`` paths of annotated records.
        out: report folder: new, empty, or an earlier evaluation folder of ecgedge's, whose own files are
            replaced (a user's files beside them are kept); a user's folder, or one holding the export or
            a record, is refused (:mod:`ecgedge.fsio`).
        hops_s, hystereses: the settings played; more than one of either is a sweep (the first pair
            is the headline run).
        via_device: through ``ecgsim`` and the wire decoder as well.
        device_args: further ``ecgsim`` options with ``via_device`` (faults: ``--drop-frames 0.01``,
            ``--disconnect-after 3600:2``, ...).
        lead: for a single-lead model, the record's lead played as the model's lead.
        overrides: class-map overrides, reference code -> model class.
        precision, backend, threads: which artefact runs where (None: the manifest's recommendation).
        chunk_s: seconds of signal pushed per call (direct path).
        plots: write the timeline (and sweep) PNGs.
    """

    export: str
    records: tuple[str, ...]
    out: str
    hops_s: tuple[float, ...] = (1.0,)
    hystereses: tuple[int, ...] = (3,)
    via_device: bool = False
    device_args: tuple[str, ...] = ()
    lead: str | None = None
    overrides: tuple[tuple[str, str], ...] = ()
    precision: Precision | None = None
    backend: Backend = Backend.ort_cpu
    threads: int | None = 1
    chunk_s: float = 60.0
    plots: bool = True

    def __post_init__(self):
        if not self.records:
            raise DataNotFound("no annotated records to score (a record needs its .hea and .atr)")
        if not self.hops_s or not self.hystereses:
            raise ConfigError("the sweep needs at least one hop and one hysteresis")
        if self.device_args and not self.via_device:
            raise ConfigError("device options (--sim) need --via-device")


def find_annotated_records(paths: Sequence[str | Path], extension: str = "atr") -> list[Path]:
    """``.hea`` files among ``paths`` (files, record paths without extension, folders searched
    recursively) that have a ``.EXTENSION`` annotation file beside them, sorted."""
    out: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            out |= {h for h in p.rglob("*.hea") if h.with_suffix(f".{extension}").is_file()}
        else:
            hea = p if p.suffix == ".hea" else p.with_name(p.name + ".hea")
            if not hea.is_file():
                raise DataNotFound(f"{p}: no such record (no {hea.name})")
            if not hea.with_suffix(f".{extension}").is_file():
                raise DataNotFound(f"{p}: no .{extension} annotation file beside it, so no reference rhythm")
            out.add(hea)
    return sorted(out)


# ---- playing ------------------------------------------------------------------------------------

@dataclass
class PlayedRecord:
    """The stream's records for one played record: ``windows`` (``type: window``) and ``events``."""

    windows: list[dict]
    events: list[dict]
    cpu_s: float
    signal_s: float
    beats: list[dict] = field(default_factory=list)  # heart_rate and rate_alarm records


def _model_leads(names: Sequence[str], record_id: str, spec, lead: str | None) -> tuple[list[int], list[str]]:
    """Rows of the model's leads among a record's lead ``names``, and the names the stream gives them."""
    names = [str(n) for n in names]
    if lead is not None:  # by name or position: the one policy ecgedge stream --lead uses too
        try:
            return [chosen_lead_row(names, lead, spec.leads)], [spec.leads[0]]
        except MissingLeads as exc:
            raise ShapeMismatch(f"{record_id}: no lead {exc.missing[0]} (it has {', '.join(names)})") from None
    try:
        rows = lead_indices(names, spec.leads)
    except ShapeMismatch as exc:
        raise ShapeMismatch(f"{record_id}: {exc}; a single-lead model can play another lead with --lead NAME") from None
    return rows, [spec.leads[i] for i in range(len(rows))]


def _read_leads(hea: Path, spec, lead: str | None) -> tuple[float, list[str], np.ndarray]:
    """(fs in Hz, the stream's lead names, (leads, n) mV) of the model's leads of ``hea``, read by
    :func:`~ecgedge.data.records.read_record` (ECG leads only, canonical names)."""
    record = read_record(hea)
    rows, names = _model_leads(record.lead_names, record.record_id, spec, lead)
    return record.fs, names, record.signal[rows].astype(np.float64)


def play_direct(runner, spec, settings, hea: Path, *, lead: str | None = None, chunk_s: float = 60.0) -> PlayedRecord:
    """Push the record through a :class:`StreamHub` a chunk at a time; its window records and events."""
    from ecgedge.stream.hub import StreamHub

    fs, names, x = _read_leads(hea, spec, lead)
    hub = StreamHub(runner, spec, settings)
    stream = 0
    hub.open(stream, fs_in=fs, lead_names=names)
    chunk = max(1, int(chunk_s * fs))
    out: list[dict] = []
    t0 = time.process_time()
    for a in range(0, x.shape[1], chunk):
        hub.push(stream, x[:, a:a + chunk], a)
        out += hub.flush()
    hub.restart(stream, "end of record")
    out += hub.flush()
    cpu = time.process_time() - t0
    return _split(out, cpu, x.shape[1] / fs)


def _split(records: list[dict], cpu_s: float, signal_s: float) -> PlayedRecord:
    windows = [r for r in records if r.get("type") == "window"]
    events = [r for r in records if r.get("type") in ("rhythm_change", "quality", "alert", "gap")]
    beats = [r for r in records if r.get("type") in ("heart_rate", "rate_alarm")]
    return PlayedRecord(windows, events, cpu_s, signal_s, beats)


def play_via_device(cfg: StreamEvalConfig, spec, settings, hea: Path, export: Path) -> PlayedRecord:
    """The record through ``ecgsim`` (as fast as it can) and the wire decoder into ``ecgedge stream``'s session."""
    import wfdb

    from ecgedge.stream.run import StreamConfig, stream_from_export

    rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=False)
    rows, names = _model_leads(rec.sig_name, rec.record_name, spec, cfg.lead)
    with tempfile.TemporaryDirectory(prefix="ecgedge-device-") as tmp:
        # The device plays what wfdb read (one reader): the model's leads as raw ADC integers, own gains.
        d = rec.d_signal[:, rows].astype(np.int64)
        fmt = ["16" if np.abs(d).max(initial=0) < 32768 else "24"] * len(rows)
        wfdb.wrsamp("played", fs=float(rec.fs), units=[rec.units[r] for r in rows], sig_name=names, d_signal=d,
                    fmt=fmt, adc_gain=[rec.adc_gain[r] for r in rows], baseline=[rec.baseline[r] for r in rows], write_dir=tmp)
        out: list[dict] = []
        t0 = time.process_time()
        stream_from_export(StreamConfig(export=str(export), source=f"wfdb:{tmp}/played@0", settings=settings,
                                        sim_args=cfg.device_args, precision=cfg.precision, backend=cfg.backend, threads=cfg.threads), out.append)
        cpu = time.process_time() - t0
    return _split(out, cpu, d.shape[0] / float(rec.fs))


def replay_events(windows: Sequence[dict], spec, settings) -> list[dict]:
    """The ``rhythm_change``/``quality`` events a monitor with ``settings`` raises on these window verdicts.

    The windows are the stream's printed records, whose probabilities are rounded: an event's
    ``confidence`` may differ from the live one in its last decimal; everything else is the same."""
    from ecgedge.stream.monitor import BedMonitor, WindowVerdict

    monitor = BedMonitor(0, fs_in=spec.preprocess.fs_hz, lead_names=spec.leads, model=spec, settings=settings)
    events: list[dict] = []
    for w in windows:
        v = WindowVerdict(w.get("stream", 0), float(w["t"]), int(w["samples"][0]), int(w["samples"][1]), int(w["new"][0]),
                          reliable=w["quality"] == "ok", reason=w.get("reason", ""), label=w.get("label"),
                          probs=dict(w.get("probs", {})))
        events += [e if isinstance(e, dict) else e.to_json() for e in monitor.resolve(v)]
    return events


# ---- scoring ------------------------------------------------------------------------------------

def stream_af_episodes(events: Sequence[dict], af_class: str, n_samples: int) -> list[Interval]:
    """AF episodes from ``rhythm_change`` events: from a change to ``af_class`` to the next change away."""
    out, since = [], None
    for e in events:
        if e.get("type") != "rhythm_change":
            continue
        if e["to"] == af_class and since is None:
            since = int(e["sample"])
        elif e["to"] != af_class and since is not None:
            out.append((since, int(e["sample"])))
            since = None
    if since is not None:
        out.append((since, n_samples))
    return [(a, min(b, n_samples)) for a, b in out if min(b, n_samples) > a]


def covered_spans(windows: Sequence[dict]) -> list[Interval]:
    """Samples accounted for by ``ok`` windows (each window's ``new`` span)."""
    return [(int(w["new"][0]), int(w["new"][1])) for w in windows if w["quality"] == "ok"]


def window_agreement(windows: Sequence[dict], ref: RhythmReference, cmap: dict[str, str | None], labels: Sequence[str]) -> dict:
    """Confusion of ``ok`` windows inside one reference rhythm: reference class (rows) x stream label (columns)."""
    labels = list(labels)
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    starts = np.array([a for a, _, _ in ref.intervals]) if ref.intervals else np.zeros(0, dtype=np.int64)
    for w in windows:
        if w["quality"] != "ok":
            continue
        a, b = int(w["samples"][0]), int(w["samples"][1]) - 1
        i, j = np.searchsorted(starts, [a, b], side="right") - 1
        if i != j or i < 0 or b >= ref.n_samples:
            continue  # spans a rhythm change, or before the first annotation
        truth = cmap.get(ref.intervals[i][2])
        if truth is None or w.get("label") not in labels:
            continue
        cm[labels.index(truth), labels.index(w["label"])] += 1
    n = int(cm.sum())
    return {"windows": n, "accuracy": round(float(np.trace(cm) / n), 4) if n else None, "labels": labels, "confusion": cm.tolist()}


def score_played(played: PlayedRecord, ref: RhythmReference, cmap: dict[str, str | None], events: Sequence[dict] | None = None,
                 name: str = "") -> EpisodeScore:
    """One record's AF score from its played windows and events (``events`` replaces the stream's own, for sweeps)."""
    af = cmap[AF_CODE]
    assert af is not None  # class_map refuses a map without the model's AF class
    test = stream_af_episodes(played.events if events is None else events, af, ref.n_samples)
    return score_episodes(ref.spans([AF_CODE]), test, n_samples=ref.n_samples, fs_hz=ref.fs_hz,
                          excluded=ref.spans([FLUTTER_CODE]), covered=covered_spans(played.windows), record=name)


# ---- heart rate and rate alarms ---------------------------------------------------------------------

# IEC 60601-2-27's heart-rate meter accuracy: within +-10 % of the reference rate or +-5 bpm, whichever is greater.
HR_TOLERANCE_SHARE = 0.10
HR_TOLERANCE_BPM = 5.0
# Hops scored for heart rate from this many seconds of stream on: the detector learns for 2 s and the
# rate is the median of 8 RR intervals, so a bedside monitor's rate settles in about 10 s at 60 bpm.
HR_START_S = 10.0
# A stream rate alarm matches a reference one of its kind raised or held within this many seconds.
ALARM_MATCH_S = 10.0


def reference_rates(hop_ends: Sequence[tuple[float, int]], ref: BeatReference, rate_settings=None, *,
                    latency_s: float | None = None) -> tuple[list, list]:
    """The heart rate and rate alarms of the reference beats at each hop end ``(t_s, sample)`` by the
    stream's rules (:class:`~ecgedge.stream.rate.BedBeats`), over the beats whose R peak lies ``latency_s``
    (default: the detector's decision delay, 0.17 s at 360 Hz) before the hop end: those a causal
    detector can have reported, so a one-beat lag (which moves the median of 8 alternating RR intervals
    by a whole interval) is not a rate error; the lag is disclosed as that delay. ``latency_s=0``: every
    beat before the hop end. Returns (``HeartRate`` list, ``RateAlarm`` list)."""
    from ecgedge.beats import StreamingQrsDetector
    from ecgedge.stream.events import HeartRate
    from ecgedge.stream.rate import BedBeats, RateAlarmSettings

    if latency_s is None:
        latency_s = StreamingQrsDetector(ref.fs_hz, 1).decision_delay_s if ref.fs_hz >= 100 else 0.0
    lag = int(round(latency_s * ref.fs_hz))
    bed = BedBeats.reference(0, ref.fs_hz, rate_settings or RateAlarmSettings())
    beats = np.asarray(ref.samples, dtype=np.int64)
    rates: list = []
    alarms: list = []
    i = 0
    for t_s, end in hop_ends:
        j = int(np.searchsorted(beats, end - lag, side="left"))
        bed.add(beats[i:j], np.zeros(j - i, dtype=np.uint8))
        i = j
        for e in bed.hop(t_s, end, lambda seconds: ""):
            (rates if isinstance(e, HeartRate) else alarms).append(e)
    return rates, alarms


def heart_rate_accuracy(beat_records: Sequence[dict], ref: BeatReference, rate_settings=None, *,
                        start_s: float = HR_START_S) -> dict:
    """How the stream's heart rate and rate alarms (its ``heart_rate`` / ``rate_alarm`` records) compare
    with those of the reference beats at the same hop ends (:func:`reference_rates`).

    Heart rate: over the hops where the reference has a rate, from ``start_s`` of stream on
    (default :data:`HR_START_S`), hops ending inside an unscored span, such as a reference VF episode, or within 10 s after one
    are left out), the share within +-10 % or +-5 bpm of it (IEC 60601-2-27's heart-rate meter
    accuracy); a hop without a stream rate counts as outside. Alarms, per kind: the reference's
    physiological alarms, those the stream raised too (a stream raise within :data:`ALARM_MATCH_S`
    of the reference raise, or while it holds), with the delay (s) from the reference raise, and
    the stream raises that match none (false); the stream's technical raises are counted apart
    (``technical``): they say the signal was too poor to decide, and match nothing.
    """
    rates = [r for r in beat_records if r.get("type") == "heart_rate"]
    ref_rates, ref_alarms = reference_rates([(float(r["t"]), int(r["sample"])) for r in rates], ref, rate_settings)
    errors, within, no_rate = [], 0, 0
    for r, q in zip(rates, ref_rates):
        end = int(r["sample"])
        if q.hr_bpm is None or end < start_s * ref.fs_hz or any(a <= end < b + int(10 * ref.fs_hz) for a, b in ref.unscored):
            continue
        if r["hr_bpm"] is None:
            no_rate += 1
            continue
        err = abs(float(r["hr_bpm"]) - q.hr_bpm)
        errors.append(err)
        within += err <= max(HR_TOLERANCE_SHARE * q.hr_bpm, HR_TOLERANCE_BPM)
    hops = len(errors) + no_rate
    out: dict[str, Any] = {"hops": hops, "within": within, "share_within": round(within / hops, 4) if hops else None,
                           "no_rate": no_rate,
                           "mean_abs_error_bpm": round(float(np.mean(errors)), 2) if errors else None,
                           "p95_abs_error_bpm": round(float(np.percentile(errors, 95)), 2) if errors else None,
                           "alarms": {}}
    raised = [a for a in beat_records if a.get("type") == "rate_alarm" and a["state"] == "raised"]
    stream_raised = [a for a in raised if not a["technical"]]
    for kind in sorted({a.alarm.value for a in ref_alarms} | {a["alarm"] for a in raised}):
        episodes, start = [], None
        for a in ref_alarms:
            if a.alarm.value != kind:
                continue
            if a.state.value == "raised":
                start = float(a.t_s)
            elif start is not None:
                episodes.append((start, float(a.t_s)))
                start = None
        if start is not None:
            episodes.append((start, math.inf))
        mine = [float(a["t"]) for a in stream_raised if a["alarm"] == kind]
        used: set[int] = set()
        delays = []
        for a, b in episodes:
            hit = [k for k, t in enumerate(mine) if k not in used and a - ALARM_MATCH_S <= t <= b + ALARM_MATCH_S]
            if hit:
                used.add(hit[0])
                delays.append(round(mine[hit[0]] - a, 3))
        out["alarms"][kind] = {"reference": len(episodes), "detected": len(delays), "missed": len(episodes) - len(delays),
                               "false": len(mine) - len(used), "delays_s": delays,
                               "technical": sum(1 for a in raised if a["technical"] and a["alarm"] == kind),
                               "max_delay_s": max(delays) if delays else None}
    return out


def gross_heart_rate(per_record: dict[str, dict]) -> dict:
    """The pooled heart-rate accuracy and alarm counts of :func:`heart_rate_accuracy` over records."""
    hops = sum(r["hops"] for r in per_record.values())
    within = sum(r["within"] for r in per_record.values())
    alarms: dict[str, dict] = {}
    for r in per_record.values():
        for kind, a in r["alarms"].items():
            g = alarms.setdefault(kind, {"reference": 0, "detected": 0, "missed": 0, "false": 0, "technical": 0, "delays_s": []})
            for key in ("reference", "detected", "missed", "false", "technical"):
                g[key] += a[key]
            g["delays_s"] += a["delays_s"]
    for g in alarms.values():
        g["max_delay_s"] = max(g["delays_s"]) if g["delays_s"] else None
    return {"hops": hops, "within": within, "share_within": round(within / hops, 4) if hops else None, "alarms": alarms}


# ---- the command --------------------------------------------------------------------------------

@dataclass
class StreamEvaluation:
    report: dict
    table: str
    out: Path
    files: list[Path] = field(default_factory=list)


def evaluate_stream(cfg: StreamEvalConfig, *, progress: bool = True, log: Callable[[str], None] = print) -> StreamEvaluation:
    """Play and score every record for every (hop, hysteresis); write report.json, report.md and plots.

    The folder ``cfg.out`` is checked before anything is played and built beside it, then swapped in
    whole (:func:`ecgedge.fsio.owned_folder`, as ``evaluate --out``): an earlier evaluation's files are
    replaced, a user's files are carried over; a user's folder or one holding an input is refused
    (:class:`ConfigError`)."""
    from ecgedge.manifest import load_manifest, precision_for
    from ecgedge.runtime.loader import runner_from_export
    from ecgedge.stream.monitor import CONCEAL_MAX_S, ModelSpec, StreamSettings

    export = Path(cfg.export)
    manifest = load_manifest(export, verify=True)
    spec = ModelSpec.from_manifest(manifest)
    refs = {Path(h): read_rhythm_reference(h) for h in cfg.records}
    cmap = class_map(spec.labels, sorted({c for r in refs.values() for c in r.codes}), dict(cfg.overrides))
    precision = cfg.precision or precision_for(manifest, cfg.backend)
    out = Path(cfg.out)
    inputs = (str(export), *cfg.records)
    claim_folder(out, FolderKind.evaluation, replace=True, inputs=inputs, legacy=_legacy_stream_evaluation)  # refuse before the work
    runs: dict[tuple[float, int], list[EpisodeScore]] = {}
    headline_played: dict[Path, PlayedRecord] = {}
    cpu = signal = 0.0
    runner = runner_from_export(export, precision, cfg.backend, threads=cfg.threads, manifest=manifest, verify=False)
    with runner:
        for hop in cfg.hops_s:
            base = StreamSettings(hop_s=hop, hysteresis=cfg.hystereses[0], conceal_max_s=CONCEAL_MAX_S)
            played: dict[Path, PlayedRecord] = {}
            for hea in tqdm(refs, desc=f"hop {hop:g} s", unit="rec", disable=not progress):
                p = (play_via_device(cfg, spec, base, hea, export) if cfg.via_device
                     else play_direct(runner, spec, base, hea, lead=cfg.lead, chunk_s=cfg.chunk_s))
                played[hea] = p
                cpu, signal = cpu + p.cpu_s, signal + p.signal_s
            if hop == cfg.hops_s[0]:
                headline_played = played
            for hyst in cfg.hystereses:
                settings = StreamSettings(hop_s=hop, hysteresis=hyst, conceal_max_s=CONCEAL_MAX_S)
                scores = []
                for hea, p in played.items():
                    events = None if hyst == base.hysteresis else replay_events(p.windows, spec, settings)
                    scores.append(score_played(p, refs[hea], cmap, events, name=hea.stem))
                runs[(hop, hyst)] = scores
    head = (cfg.hops_s[0], cfg.hystereses[0])
    scores = runs[head]
    summary = summarise(scores)
    agreement = {hea.stem: window_agreement(p.windows, refs[hea], cmap, spec.labels) for hea, p in headline_played.items()}
    heart: dict[str, dict] = {}
    for hea, p in headline_played.items():
        try:
            heart[hea.stem] = heart_rate_accuracy(p.beats, read_beat_reference(hea))
        except BadRecord:  # no beat annotations (rhythm-only .atr): no heart-rate reference
            continue
    report: dict[str, Any] = {
        "export": str(export), "model": manifest.data.get("name"), "precision": Precision(precision).value,
        "backend": Backend(cfg.backend).value, "labels": list(spec.labels), "leads": list(spec.leads),
        "path": "device (ecgsim) + wire decoder + monitor" if cfg.via_device else "monitor (StreamHub/BedMonitor)",
        "settings": {"hop_s": head[0], "hysteresis": head[1], "conceal_max_s": CONCEAL_MAX_S, "lead": cfg.lead},
        "class_map": cmap, "af_class": cmap[AF_CODE], "excluded": [FLUTTER_CODE],
        "conventions": "EC57/epicmp: any overlap matches; atrial flutter excluded; gross = pooled, average = mean of records",
        "records": [s.to_json() for s in scores], "summary": summary,
        "window_agreement": agreement,
        "heart_rate": {"tolerance": "within +-10 % or +-5 bpm of the reference beats' rate at the hop end (IEC 60601-2-27)",
                       "records": heart, "gross": gross_heart_rate(heart)} if heart else None,
        "speed": {"signal_s": round(signal, 1), "cpu_s": round(cpu, 2),
                  "x_real_time": round(signal / cpu, 1) if cpu > 0 else None},
    }
    if len(runs) > 1:
        report["sweep"] = [{"hop_s": h, "hysteresis": k, **{key: summarise(v)[key] for key in ("gross", "alarm_delay")}}
                           for (h, k), v in runs.items()]
    table = markdown_table(scores, summary)
    names: list[str] = []
    with owned_folder(out, FolderKind.evaluation, replace=True, inputs=inputs, legacy=_legacy_stream_evaluation) as staging:
        names += [_write(staging / "report.json", json.dumps(report, indent=1, default=str)),
                  _write(staging / "report.md", _markdown(report, table))]
        for hea, p in headline_played.items():
            names.append(_write(staging / f"events-{hea.stem}.jsonl", "".join(json.dumps(e) + "\n" for e in p.events)))
        if cfg.plots:
            from ecgedge.evaluate.plots import plot_stream_sweep, plot_stream_timeline

            for hea, p in headline_played.items():
                names.append(plot_stream_timeline(refs[hea], p.windows, p.events, cmap, spec.labels, staging / f"timeline-{hea.stem}.png").name)
            if "sweep" in report:
                names.append(plot_stream_sweep(report["sweep"], staging / "sweep.png").name)
    return StreamEvaluation(report, table, out, [out / n for n in names])


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return path.name


def _legacy_stream_evaluation(folder: Path) -> list[str] | None:
    """The files of a stream evaluation written before folder markers (its ``report.json`` holds the
    class map and the stream's path); ``None`` for anything else."""
    try:
        doc = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not {"class_map", "path", "settings", "summary"} <= set(doc):
        return None
    return [p.name for pattern in _STREAM_EVALUATION_FILES for p in folder.glob(pattern) if p.is_file()]


_STREAM_EVALUATION_FILES = ("report.json", "report.md", "events-*.jsonl", "timeline-*.png", "sweep.png")


def _markdown(report: dict, table: str) -> str:
    s = report["settings"]
    d = report["summary"]["alarm_delay"]
    lines = [f"# Stream evaluation: {report['model']} ({report['precision']}, {report['backend']})", "",
             f"Path: {report['path']}; hop {s['hop_s']:g} s, hysteresis {s['hysteresis']} windows. "
             f"AF class {report['af_class']!r}; {report['conventions']}.", "",
             "Class map: " + ", ".join(f"{k} -> {v or '(not scored)'}" for k, v in report["class_map"].items()), "",
             table, "",
             f"Alarm delay: median {d['median_s']} s, 90th percentile {d['p90_s']} s, max {d['max_s']} s; "
             f"{d['detected']} detected, {d['missed']} missed.", "",
             *_heart_rate_lines(report.get("heart_rate")),
             f"Speed: {report['speed']['signal_s']:g} s of signal in {report['speed']['cpu_s']:g} CPU s "
             f"({report['speed']['x_real_time']}x real time)."]
    if "sweep" in report:
        lines += ["", "| hop (s) | hysteresis | duration Se | duration +P | median delay (s) | p90 delay (s) | false AF alarms / h |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in report["sweep"]:
            g, a = r["gross"], r["alarm_delay"]
            lines.append(f"| {r['hop_s']:g} | {r['hysteresis']} | {g['duration_se']} | {g['duration_ppv']} | {a['median_s']} | "
                         f"{a['p90_s']} | {g['false_alarms_per_hour']} |")
    return "\n".join(lines) + "\n"


def _heart_rate_lines(heart: dict | None) -> list[str]:
    if not heart:
        return []
    g = heart["gross"]
    lines = [f"Heart rate: {g['within']} of {g['hops']} hops ({g['share_within']}) {heart['tolerance']}.", ""]
    for kind, a in g["alarms"].items():
        lines += [f"Rate alarm {kind}: {a['reference']} in the reference, {a['detected']} raised (max delay "
                  f"{a['max_delay_s']} s after the reference's), {a['missed']} missed, {a['false']} false; "
                  f"{a['technical']} technical (signal too poor to decide).", ""]
    return lines


def parse_sweep(items: Sequence[str]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """``["hop=0.5,1,2", "hysteresis=1,2,3"]`` -> ((0.5, 1.0, 2.0), (1, 2, 3)); a key not given is ``()``."""
    hops: tuple[float, ...] = ()
    hyst: tuple[int, ...] = ()
    for item in items:
        key, sep, values = item.partition("=")
        try:
            if key.strip() == "hop" and sep:
                hops = tuple(float(v) for v in values.split(",") if v.strip())
            elif key.strip() == "hysteresis" and sep:
                hyst = tuple(int(v) for v in values.split(",") if v.strip())
            else:
                raise ValueError(item)
        except ValueError:
            raise ConfigError(f"--sweep {item!r}: expected hop=S,S,... or hysteresis=N,N,...") from None
    return hops, hyst

