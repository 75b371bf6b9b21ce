"""``ecgedge stream``'s engine: a byte source through a :class:`~ecgedge.stream.session.StreamSession`.

- :class:`StreamConfig`: which export, which source, how to classify and what to show;
- :func:`stream_precision`: the precision a stream runs when none is asked for;
- :func:`run_session`: read a source until it ends, batching windows for up to ``batch_delay_s``,
  emitting every record and the summary last (also after Ctrl-C or an error);
- :func:`stream_from_export`: all of it from an export folder (the CLI, the quickstart and
  ``ecgedge evaluate stream`` call it).

The session itself (decoding, tracking, monitors, accounting) is :mod:`ecgedge.stream.session`.
numpy + onnxruntime (or a Triton client); never torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ecgedge.bridge.frame import Frame
from ecgedge.bridge.sources import ByteSource, LinkEvent
from ecgedge.config import Backend, Precision
from ecgedge.errors import ArtefactError, ConfigError, is_storage_error, storage_error
from ecgedge.manifest import passed_over, precision_for
from ecgedge.stream.events import SessionStart, TeeFailed
from ecgedge.stream.hub import StreamHub
from ecgedge.stream.monitor import ModelSpec, StreamSettings
from ecgedge.stream.session import BATCH_DELAY_S, StreamSession

if TYPE_CHECKING:
    from ecgedge.runtime.base import Runner
    from ecgedge.runtime.triton_runner import TritonRunner


def run_session(source: ByteSource, session: StreamSession, emit: Callable[[dict], None], *,
                watchers: Sequence = (), max_outage_s: float | None = None, idle_s: float = 0.2,
                batch_delay_s: float = BATCH_DELAY_S, tee=None) -> dict:
    """Read ``source`` until it ends (or has sent nothing for ``max_outage_s``), emitting every record.

    ``source`` must be open already (so a device that cannot be reached fails before anything is
    emitted). Windows wait up to ``batch_delay_s`` (or until the link is idle) so that those of
    many beds share one inference call. ``watchers`` (live views) get ``update(records, now)`` and
    ``close()``. ``tee`` is a binary file that receives every byte read; when writing it fails (a
    full disk) a ``tee_error`` record says so, the copy is dropped and the stream goes on. The
    summary record is emitted last (also after Ctrl-C or an error, which then propagate; its
    ``ended`` says which) and returned.
    """
    started = last_data = time.monotonic()
    waiting_since = None
    ended = "end of stream"
    tee_error, tee_bytes = "", 0

    def out(records: list[dict], now: float) -> None:
        for r in records:
            emit(r)
        for w in watchers:
            w.update(records, now)

    try:
        for item in source.chunks(idle_s):
            now = time.monotonic()
            records = []
            if isinstance(item, LinkEvent):
                records = session.link(item, source.name)
            elif item:
                if tee is not None:
                    try:
                        _write_all(tee, item)
                        tee_bytes += len(item)
                    except OSError as exc:
                        if not is_storage_error(exc):
                            raise
                        path = str(getattr(tee, "name", "the --tee file"))
                        tee_error = (f"{storage_error(exc, f'write the --tee copy {path}')}; the copy is dropped after "
                                     f"{tee_bytes} bytes, classification goes on")
                        records.append(TeeFailed(path, tee_error, tee_bytes).to_json())
                        tee = None  # dropped; the caller closes the file
                session.feed(item, now, flush=False)
                last_data = now
            if session.pending:
                waiting_since = now if waiting_since is None else waiting_since
                if not item or now - waiting_since >= batch_delay_s:
                    records += session.flush()
            if not session.pending:
                waiting_since = None
            out(records + session.tick(now), now)
            if max_outage_s is not None and now - last_data >= max_outage_s:
                ended = f"no data for {max_outage_s:g} s"
                break
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    except Exception as exc:  # not handled here: the summary says why the stream stopped, the error propagates
        ended = f"failed: {exc}"
        raise
    finally:
        source.close()
        now = time.monotonic()
        out(session.flush(), now)
        for w in watchers:
            w.close()
        summary = session.summary(source=source.name, ended=ended, elapsed_s=round(now - started, 3), tee_error=tee_error)
        emit(summary)
    return summary


@dataclass(frozen=True)
class StreamConfig:
    """``ecgedge stream``: which model, which source, how to classify and what to show.

    Args:
        export: export folder (``manifest.json``).
        source: source spec (:func:`~ecgedge.bridge.sources.source_from_spec`).
        settings: hop, hysteresis, gap concealment, inoperable alert.
        precision, backend, threads: which artefact runs where (``threads`` intra-op threads);
            ``precision`` None runs what :func:`~ecgedge.manifest.precision_for` picks (:func:`stream_precision`).
        sim_args: extra ecgsim options for a ``wfdb:`` source.
        max_outage_s: end when no byte has arrived for this long (None: wait for ever, as a
            bedside monitor does; stdin and wfdb sources end with their stream).
        show: draw the terminal strip chart (on ``show_to``); ``show_png``: folder for a PNG strip
            per event; ``show_lead``: which lead they draw.
        tee: file that receives every byte read (replay it with ``--source stdin``).
        server: ``grpc://HOST:PORT`` of a Triton server that runs the model instead of this process
            (:class:`~ecgedge.runtime.triton_runner.TritonRunner`); ``server_model`` its model name
            (default: the export's Triton model name).
        public_key: Ed25519 public key (PEM file); when given, an export whose ``manifest.sig``
            is missing or does not match it is refused (:func:`~ecgedge.manifest.load_manifest`).
    """

    export: str
    source: str
    settings: StreamSettings = StreamSettings()
    precision: Precision | None = None
    backend: Backend = Backend.ort_cpu
    threads: int | None = 1
    sim_args: tuple[str, ...] = ()
    max_outage_s: float | None = None
    show: bool = False
    show_png: str | None = None
    show_lead: str = "II"
    tee: str | None = None
    server: str | None = None
    server_model: str | None = None
    public_key: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "precision", Precision(self.precision) if self.precision else None)
        object.__setattr__(self, "backend", Backend(self.backend))
        object.__setattr__(self, "sim_args", tuple(self.sim_args))
        if self.server and self.precision:
            raise ConfigError("--precision picks a local artefact; with --server the server's model runs "
                              "(the export's triton/ repository says which)")
        if self.server_model and not self.server:
            raise ConfigError("--server-model names a model on a Triton server: give --server grpc://HOST:PORT too")

    def inputs(self) -> list[str]:
        """The files the stream reads (the export, the public key, a ``wfdb:`` record): the ``show_png``
        folder may not hold any of them (:func:`~ecgedge.stream.show.claim_strips`)."""
        found = [p for p in (self.export, self.public_key) if p and Path(p).exists()]
        if self.source.strip().startswith("wfdb:"):
            record = self.source.strip()[len("wfdb:"):].rpartition("@")
            record_path = record[0] if record[1] else record[2]
            found += [str(p) for p in (Path(record_path), Path(record_path + ".hea")) if p.exists()]
        return found


def stream_precision(manifest, backend: Backend) -> tuple[Precision, str]:
    """The precision a stream runs when none is asked for (:func:`~ecgedge.manifest.precision_for`), and
    a note for the session record when it is not the backend's first choice ("int8 is rejected in the
    export; running the fp32 artefact"). A stream never runs an artefact the gate rejected unless
    asked by name (and then the runtime refuses it).
    """
    try:
        precision = precision_for(manifest, backend)
    except ArtefactError as exc:
        raise ArtefactError(f"{exc}; name one with --precision to run it anyway") from None
    skipped = passed_over(manifest, backend, precision)
    return precision, f"{skipped} in the export; running the {precision.value} artefact" if skipped else ""


def stream_from_export(cfg: StreamConfig, emit: Callable[[dict], None], *, show_to=None) -> dict:
    """Classify the beds of ``cfg.source`` live with the model of ``cfg.export``; returns the summary.

    Loads the manifest (hashes verified), opens the source (a :class:`StreamError` if the device
    cannot be reached), runs :func:`run_session` and emits every record through ``emit``: first a
    ``session`` record (model, precision, settings, source), last the summary.
    """
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime import runner_from_export
    from ecgedge.stream.show import views_from_options
    from ecgedge.bridge.sources import source_from_spec

    manifest = load_manifest(cfg.export, public_key=cfg.public_key)
    source = source_from_spec(cfg.source, sim_args=cfg.sim_args)
    runner: Runner
    triton: TritonRunner | None = None
    if cfg.server:
        from ecgedge.runtime.triton_runner import triton_runner_from_export

        runner = triton = triton_runner_from_export(manifest, cfg.server, cfg.server_model)
        precision, why = runner.precision, ""
    else:
        precision, why = (cfg.precision, "") if cfg.precision else stream_precision(manifest, cfg.backend)
        runner = runner_from_export(cfg.export, precision, cfg.backend, threads=cfg.threads, manifest=manifest, verify=False)
    spec = ModelSpec.from_manifest(manifest)
    watchers = views_from_options(show=cfg.show, png_dir=cfg.show_png, lead=cfg.show_lead, out=show_to, inputs=cfg.inputs())
    try:
        # Unbuffered: a full disk shows at the write that hits it (reported, the copy dropped), not
        # at close, after the summary.
        tee = open(cfg.tee, "wb", buffering=0) if cfg.tee else None
    except OSError as exc:
        raise storage_error(exc, f"open the --tee file {cfg.tee}") from None
    try:
        with runner:
            session = StreamSession(StreamHub(runner, spec, cfg.settings), on_frame=_fan_out(watchers))
            source.open()
            start = SessionStart(str(manifest.folder), manifest.data.get("name"), precision.value if precision else None,
                                 "triton" if cfg.server else cfg.backend.value, tuple(spec.labels), tuple(spec.leads),
                                 round(spec.window_samples / spec.preprocess.fs_hz, 3), cfg.settings.hop_s,
                                 cfg.settings.hysteresis, source.name, note=why,
                                 **(dict(server=cfg.server, server_model=triton.model, server_platform=triton.platform)
                                    if triton is not None else {}))
            emit(start.to_json())
            return run_session(source, session, emit, watchers=watchers, max_outage_s=cfg.max_outage_s, tee=tee)
    finally:
        if tee is not None:
            tee.close()


def _write_all(f, data: bytes) -> None:
    """All of ``data`` to ``f`` (an unbuffered file may take part of it per call)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def refused_all(summary: dict) -> str:
    """Why the stream classified nothing because every bed was refused (their leads or rate do not
    fit the model), for a non-zero exit; ``""`` when any bed was classified or none came."""
    streams = summary.get("streams") or []
    if not streams or not all(s.get("refused") for s in streams):
        return ""
    return "every stream was refused: " + "; ".join(s["refused"] for s in streams)  # each names its stream


def _fan_out(watchers: Iterable) -> Callable[[Frame], None] | None:
    watchers = list(watchers)
    if not watchers:
        return None

    def on_frame(frame: Frame) -> None:
        for w in watchers:
            w.frame(frame)

    return on_frame

