"""A bench run's numbers: rows, the ratios between them, the issue's targets, the table and the JSON.

Pure functions of what the workers measured (no process is started here):

- :class:`BenchRow`: one configuration's numbers, ``None`` where not measured (times in ms, sizes
  in bytes); :func:`latency_stats`, :func:`throughput` and :func:`real_time_factor` are the
  arithmetic that fills it.
- :func:`with_ratios`: ``x torch`` (windows/s over the PyTorch FP32 eager row at the same batch and
  threads) and ``%pk`` (GFLOP/s over the single-core peak x threads). The peak is the one of the
  row's arithmetic: INT8 rows against the machine's measured INT8 (integer GEMM) peak, every other
  row against its FP32 peak (:mod:`ecgedge.bench.machine` says how both are measured). An INT8 row
  on a machine whose integer peak was not measured gets no share rather than one of the FP32 peak.
- :func:`target_checks`: the issue's targets (INT8 vs torch, INT8 vs FP32, real-time factor,
  resident memory), met, missed or not measured with the reason.
- :func:`render_table` and :meth:`BenchReport.render`: the text ``ecgedge bench`` prints;
  :meth:`BenchReport.to_dict` and :func:`write_json`: the JSON (``format: ecgedge.bench/1``).
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ecgedge.bench.machine import PEAK_SIZE
from ecgedge.bench.plan import BenchBackend, BenchCase, BenchConfig
from ecgedge.runtime.base import Precision

REJECTED_NOTE = "rejected by the accuracy gate"


class RowStatus(str, enum.Enum):
    ok = "ok"
    skipped = "skipped"
    failed = "failed"


class PeakBasis(str, enum.Enum):
    """Which of the machine's single-core peaks a row's ``%pk`` is taken against."""

    fp32 = "fp32"
    int8 = "int8"


@dataclass
class BenchRow:
    """One configuration's numbers (``None`` where not measured). Times in ms, sizes in bytes.

    Real-time factor (batch-1 rows): ``rtf_step_cpu_ms`` is the mean CPU time of one stream hop
    (monitor + inference + hysteresis), ``rtf_monitor_cpu_ms`` all of it but the inference calls
    (quality checks, ring buffers, preprocessing, z-score, hysteresis), ``rtf_hops`` the hops timed
    and ``rtf_windows`` how many of them classified a window (the others were judged unreliable by
    the monitor and ran no model). The ward figures are the same for ``ward_beds`` beds in one hub:
    ``ward_rtf`` seconds of ECG per CPU second (the real-time factor per core), ``ward_step_cpu_ms``
    per hop of all beds, ``ward_monitor_cpu_ms`` and ``ward_infer_cpu_ms`` per bed-hop. ``peak_basis``: the peak ``peak_fraction`` is taken against.
    """

    backend: str
    precision: str
    batch: int
    threads: int
    status: str = RowStatus.ok.value
    reason: str = ""
    note: str = ""
    calls: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    windows_per_s: float | None = None
    gflops_per_s: float | None = None
    peak_fraction: float | None = None
    peak_basis: str | None = None
    vs_torch: float | None = None
    rtf: float | None = None
    rtf_step_cpu_ms: float | None = None
    rtf_monitor_cpu_ms: float | None = None
    rtf_hops: int | None = None
    rtf_windows: int | None = None
    ward_beds: int | None = None
    ward_rtf: float | None = None
    ward_step_cpu_ms: float | None = None
    ward_monitor_cpu_ms: float | None = None
    ward_infer_cpu_ms: float | None = None
    model_file: str = ""
    model_bytes: int | None = None
    rss_loaded_bytes: int | None = None
    peak_rss_bytes: int | None = None
    cold_start_ms: float | None = None
    import_ms: float | None = None
    load_ms: float | None = None
    first_infer_ms: float | None = None
    page_faults_per_call: float | None = None
    other_cpu_cores: float | None = None
    rejected: bool = False
    provider: str = ""
    torch_imported: bool | None = None

    @classmethod
    def skipped(cls, case: BenchCase, reason: str) -> "BenchRow":
        return cls(case.backend.value, case.precision.value, case.batch, case.threads, status=RowStatus.skipped.value, reason=reason)

    @property
    def ok(self) -> bool:
        return self.status == RowStatus.ok.value


# ----------------------------------------------------------------------------------- arithmetic


def latency_stats(latencies_ns) -> dict[str, float]:
    """p50/p90/p99/mean/min in ms of per-call latencies in ns (linear-interpolated percentiles)."""
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if not ms.size:
        raise ValueError("no latencies to summarise")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}


def throughput(batch: int, p50_ms: float, flops_per_window: float | None = None) -> tuple[float, float | None]:
    """(windows per second, GFLOP/s) of calls of ``batch`` windows taking ``p50_ms`` each."""
    wps = batch / (p50_ms / 1e3)
    return wps, (flops_per_window * wps / 1e9 if flops_per_window else None)


def real_time_factor(hop_s: float, step_cpu_s: float) -> float:
    """Seconds of signal classified per CPU second: a hop of ``hop_s`` s costs ``step_cpu_s`` CPU seconds."""
    if step_cpu_s <= 0:
        raise ValueError(f"CPU time per step must be positive, got {step_cpu_s} s")
    return hop_s / step_cpu_s


def peak_basis(precision: str) -> PeakBasis:
    """INT8 rows run integer GEMMs and are judged against the integer peak; FP32 and FP16 (which CPUs run in FP32) against the FP32 one."""
    return PeakBasis.int8 if precision == Precision.int8.value else PeakBasis.fp32


def with_ratios(rows: list[BenchRow], peak_gflops_1core: float | None = None,
                peak_int8_gops_1core: float | None = None) -> list[BenchRow]:
    """Fill ``vs_torch`` (windows/s over the torch FP32 row at the same batch and threads) and
    ``peak_fraction`` (GFLOP/s over the single-core peak of the row's :func:`peak_basis` x threads;
    ``peak_gflops_1core`` FP32 GFLOP/s, ``peak_int8_gops_1core`` INT8 GOP/s). Returns ``rows``."""
    base = {(r.batch, r.threads): r.windows_per_s for r in rows
            if r.ok and r.backend == BenchBackend.torch.value and r.precision == Precision.fp32.value}
    peaks = {PeakBasis.fp32: peak_gflops_1core, PeakBasis.int8: peak_int8_gops_1core}
    for r in rows:
        if not r.ok:
            continue
        b = base.get((r.batch, r.threads))
        r.vs_torch = r.windows_per_s / b if b and r.windows_per_s else None
        basis = peak_basis(r.precision)
        peak = peaks[basis]
        r.peak_basis = basis.value
        r.peak_fraction = r.gflops_per_s / (peak * r.threads) if peak and r.gflops_per_s else None
    return rows


# ----------------------------------------------------------------------------------- targets


@dataclass
class TargetCheck:
    """One of the issue's targets: what was asked, what was measured, met or not (``None``: not measured here)."""

    name: str
    goal: str
    measured: str
    met: bool | None
    note: str = ""


def _wps(r: BenchRow) -> float:
    """Windows per second of a measured (ok) row, which always has them."""
    assert r.windows_per_s is not None, f"{r.backend} {r.precision}: a measured row without windows/s"
    return r.windows_per_s


INT8_VS_TORCH = 5.0
RTF_GOAL = 1000.0
# Issue 15: seconds of 12-lead ECG classified per CPU second with many beds on one core (INT8).
WARD_RTF_GOAL = 2000.0
RSS_GOAL_BYTES = 150e6


def target_checks(rows: list[BenchRow], machine: dict | None = None, hop_s: float = 1.0) -> list[TargetCheck]:
    """The issue's targets, checked on the rows at batch 1 on one thread (``machine`` says whether
    the CPU has int8 dot-product instructions, which decides what a slow INT8 row means)."""
    find = {(r.backend, r.precision): r for r in rows if r.ok and r.batch == 1 and r.threads == 1}
    torch_fp32, ort_fp32, ort_int8 = find.get(("torch", "fp32")), find.get(("ort-cpu", "fp32")), find.get(("ort-cpu", "int8"))
    vnni = (machine or {}).get("int8_dot_product")
    why_not = {(r.backend, r.precision): r.reason for r in rows if not r.ok and r.batch == 1 and r.threads == 1}

    def needs(*keys: tuple[str, str]) -> str:
        missing = [k for k in keys if k not in find]
        return "; ".join(f"{b} {p} at batch 1, 1 thread: {why_not.get((b, p), 'not requested')}" for b, p in missing)

    out = []

    name, goal = "ort-cpu int8 vs PyTorch fp32 eager (batch 1, 1 thread)", f">= {INT8_VS_TORCH:g}x"
    if ort_int8 and torch_fp32:
        x = _wps(ort_int8) / _wps(torch_fp32)
        out.append(TargetCheck(name, goal, f"{x:.2f}x ({_wps(ort_int8):.0f} vs {_wps(torch_fp32):.0f} windows/s)", x >= INT8_VS_TORCH))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"), ("torch", "fp32"))))

    name, goal = "ort-cpu int8 not slower than ort-cpu fp32 (batch 1, 1 thread)", ">= 1.00x"
    if ort_int8 and ort_fp32:
        x = _wps(ort_int8) / _wps(ort_fp32)
        note = ""
        if x < 1 and vnni is not None:
            note = ("this CPU has int8 dot-product instructions (VNNI/AMX/SDOT), so the loss is in the graph: layers with few input "
                    "channels x taps, or Q/DQ pairs around ops without int8 kernels" if vnni else
                    "this CPU lacks VNNI/AMX/SDOT: int8 products widen through 16-bit multiplies, slower than FP32 FMA; fp32 is the better default here")
        out.append(TargetCheck(name, goal, f"{x:.2f}x ({ort_int8.p50_ms:.3f} vs {ort_fp32.p50_ms:.3f} ms p50)", x >= 1, note))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"), ("ort-cpu", "fp32"))))

    goal = f">= {RTF_GOAL:g}"
    rtf_rows = [r for r in (ort_int8, ort_fp32) if r and r.rtf]
    for r in rtf_rows:
        assert r.rtf is not None  # kept above for having one
        classified = f"; {r.rtf_windows} of {r.rtf_hops} hops classified a window" if r.rtf_hops is not None else ""
        note = ("hops whose window the monitor judged unreliable ran no model, which flatters the figure"
                if r.rtf_hops is not None and r.rtf_windows != r.rtf_hops else "")
        out.append(TargetCheck(f"real-time factor, stream monitor + ort-cpu {r.precision} (1 thread)", goal,
                               f"{r.rtf:.0f} ({r.rtf_step_cpu_ms:.3f} CPU ms per {hop_s:g} s hop, of which all but inference "
                               f"(monitor, preprocessing, hysteresis) {r.rtf_monitor_cpu_ms:.3f} ms{classified})",
                               r.rtf >= RTF_GOAL, note))
    if not rtf_rows:
        out.append(TargetCheck("real-time factor, stream monitor + ort-cpu (1 thread)", goal, "not measured", None,
                               needs(("ort-cpu", "int8"), ("ort-cpu", "fp32"))))
    if ort_int8 and ort_int8.ward_rtf is not None:
        r, ward_rtf = ort_int8, ort_int8.ward_rtf
        out.append(TargetCheck(f"real-time factor per core, {r.ward_beds} beds in one StreamHub + ort-cpu int8 (1 thread)",
                               f">= {WARD_RTF_GOAL:g}",
                               f"{ward_rtf:.0f} ({r.ward_step_cpu_ms:.1f} CPU ms per {hop_s:g} s hop of {r.ward_beds} beds; per bed "
                               f"{r.ward_monitor_cpu_ms:.3f} ms monitor + preprocessing + hysteresis, {r.ward_infer_cpu_ms:.3f} ms inference)",
                               ward_rtf >= WARD_RTF_GOAL))

    name, goal = "resident memory, inference-only runtime with the int8 model (ort-cpu, batch 1)", f"< {RSS_GOAL_BYTES / 1e6:.0f} MB"
    if ort_int8 and ort_int8.peak_rss_bytes:
        # Judged on the peak of the whole stream process (runtime + model + the stream monitor's scipy), the larger number.
        rss, loaded = ort_int8.peak_rss_bytes, ort_int8.rss_loaded_bytes
        measured = f"{rss / 1e6:.1f} MB peak with the stream monitor" + (f", {loaded / 1e6:.1f} MB after loading the model" if loaded else "")
        out.append(TargetCheck(name, goal, measured, rss < RSS_GOAL_BYTES, "torch not imported" if ort_int8.torch_imported is False else "torch was imported"))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"))))
    return out


def fastest_precisions(rows: list[BenchRow], *, accepted_only: bool = True) -> dict[str, BenchRow]:
    """Per backend, the row with the most windows/s at batch 1 on one thread (what a bedside stream
    runs), among artefacts the accuracy gate did not reject unless ``accepted_only`` is false."""
    best: dict[str, BenchRow] = {}
    for r in rows:
        if r.ok and r.batch == 1 and r.threads == 1 and r.backend != BenchBackend.torch.value and not (accepted_only and r.rejected):
            if r.backend not in best or _wps(r) > _wps(best[r.backend]):
                best[r.backend] = r
    return best


# ----------------------------------------------------------------------------------- rendering


def _peak_cell(r: BenchRow) -> str:
    if r.peak_fraction is None:
        return "-"
    return f"{100 * r.peak_fraction:.0f}" + ("i" if r.peak_basis == PeakBasis.int8.value else "")


COLUMNS = (
    # header, width, cell
    ("backend", 9, lambda r: r.backend),
    ("prec", 5, lambda r: r.precision),
    ("batch", 5, lambda r: str(r.batch)),
    ("thr", 3, lambda r: str(r.threads)),
    ("n", 4, lambda r: str(r.calls)),
    ("p50 ms", 8, lambda r: _num(r.p50_ms)),
    ("p90 ms", 8, lambda r: _num(r.p90_ms)),
    ("p99 ms", 8, lambda r: _num(r.p99_ms)),
    ("win/s", 8, lambda r: _num(r.windows_per_s, 0)),
    ("GFLOP/s", 8, lambda r: _num(r.gflops_per_s, 1)),
    ("%pk", 5, _peak_cell),
    ("x torch", 7, lambda r: "-" if r.vs_torch is None else f"{r.vs_torch:.2f}x"),
    ("RTF", 6, lambda r: _num(r.rtf, 0)),
    ("RTF/core", 8, lambda r: _num(r.ward_rtf, 0)),
    ("size kB", 8, lambda r: "-" if r.model_bytes is None else f"{r.model_bytes / 1e3:.1f}"),
    ("RSS MB", 7, lambda r: _rss(r)),
    ("cold ms", 8, lambda r: _num(r.cold_start_ms, 0)),
)


def _rss(r: BenchRow) -> str:
    mb = [f"{b / 1e6:.0f}" for b in (r.rss_loaded_bytes, r.peak_rss_bytes) if b]
    return "/".join(mb) or "-"


def _num(v: float | None, decimals: int | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if decimals is not None:
        return f"{v:.{decimals}f}"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def render_table(rows: list[BenchRow]) -> str:
    """One line per measured configuration; skipped configurations of one backend, precision and
    reason are folded into one line listing their batches and threads; failed ones show why.
    A ``%pk`` cell ending in ``i`` is a share of the INT8 (integer) peak, the others of the FP32 peak."""
    head = "  ".join(f"{h:<{w}}" if i < 4 else f"{h:>{w}}" for i, (h, w, _) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    folded: dict[tuple[str, str, str, str], list[BenchRow]] = {}
    for r in rows:
        if r.ok:
            cells = [f(r) for _, _, f in COLUMNS]
            line = "  ".join(f"{c:<{w}}" if i < 4 else f"{c:>{w}}" for i, (c, (_, w, _)) in enumerate(zip(cells, COLUMNS)))
            lines.append(line + (f"  {r.note}" if r.note else ""))
        else:
            folded.setdefault((r.backend, r.precision, r.status, r.reason), []).append(r)
    for (backend, precision, status, reason), group in folded.items():
        batches = ",".join(str(b) for b in sorted({r.batch for r in group}))
        threads = ",".join(str(t) for t in sorted({r.threads for r in group}))
        lines.append(f"{backend:<9}  {precision:<5}  {batches:<5}  {threads:<3}  {status}: {reason}")
    return "\n".join(lines)


def peaks_line(machine: dict) -> str:
    """The machine's measured single-core peaks in words ('' when none was measured)."""
    fp32, int8 = machine.get("peak_fp32_gflops_1core"), machine.get("peak_int8_gops_1core")
    parts = []
    if fp32:
        parts.append(f"FP32 peak {fp32:.0f} GFLOP/s per core (numpy sgemm {PEAK_SIZE}^3, 1 thread)")
    if int8:
        parts.append(f"INT8 peak {int8:.0f} GOP/s per core (ONNX Runtime MatMulInteger u8 x s8 {PEAK_SIZE}^3, 1 thread)")
    elif machine.get("peak_int8_note"):
        parts.append(f"INT8 peak not measured: {machine['peak_int8_note']}")
    return "; ".join(parts)


@dataclass
class BenchReport:
    """Everything one ``ecgedge bench`` run measured, with the machine and the export it ran on."""

    export: str
    manifest_sha256: str
    model: dict
    machine: dict
    config: BenchConfig
    rows: list[BenchRow] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    recommended: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        cfg = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        cfg = json.loads(json.dumps(cfg, default=lambda v: v.value if isinstance(v, enum.Enum) else str(v)))
        return {"format": "ecgedge.bench/1", "created": self.created, "export": self.export, "manifest_sha256": self.manifest_sha256,
                "model": self.model, "machine": self.machine, "config": cfg, "method": method_text(),
                "rows": [asdict(r) for r in self.rows], "targets": [asdict(t) for t in self.targets],
                "recommended_by_manifest": self.recommended,
                "fastest_accepted_at_batch_1": {b: r.precision for b, r in fastest_precisions(self.rows).items()}}

    def render(self) -> str:
        """Header (export, model FLOPs, machine and its peaks), the table, notes and the targets."""
        m, mach = self.model, self.machine
        flops = m.get("flops_per_window")
        peaks = peaks_line(mach)
        lines = [
            f"export {self.export}  (manifest sha256 {self.manifest_sha256[:12]})",
            f"model: {m.get('params', '?')} params, "
            + (f"{flops / 1e6:.1f} MFLOP per window" if flops else "FLOPs per window not in the manifest (GFLOP/s not shown)")
            + f", input {m.get('input')}",
            f"machine: {mach.get('cpu')}, {mach.get('cores_usable')} usable cores, ISA {' '.join(mach.get('isa', [])) or '?'}"
            + (f", GPU {mach['gpu']}" if mach.get("gpu") else ""),
        ]
        if peaks:
            lines.append(f"peaks: {peaks}")
        lines += [
            "",
            render_table(self.rows),
            "",
            "p50/p90/p99: latency per call (batch windows); win/s = batch / p50; GFLOP/s = manifest FLOPs per window x win/s "
            "(int8 rows: integer operations); %pk = GFLOP/s / (peak x threads), against the INT8 peak for int8 rows "
            "(marked i) and the FP32 peak for the others; x torch = win/s / PyTorch fp32 eager at the same batch and threads.",
            f"RTF (batch-1 rows): seconds of {len(m.get('leads', [])) or '?'}-lead ECG classified per CPU second by the stream "
            f"monitor ecgedge stream runs (BedMonitor in a StreamHub: {self.config.hop_s:g} s hops of a synthetic sinus rhythm "
            f"at {self.config.source_fs_hz:g} Hz -> quality checks, ring buffers, preprocessing, z-score -> batch-1 inference "
            f"-> hysteresis); RTF/core: the same for {self.config.rtf_beds} beds in one hub (one vectorised preprocessing pass per hop, "
            f"inference in calls of at most 8 windows), beds x seconds per CPU second. "
            f"RSS MB: resident after load + first inference / peak, in the configuration's own process "
            f"(batch-1 rows include the stream monitor's numpy + scipy.signal); cold: import + load + first inference in it.",
            "Each configuration ran in its own fresh process, one at a time, on seeded random windows; "
            + ("glibc malloc thresholds fixed in every worker (--default-malloc measures an untuned process)."
               if self.config.steady_malloc else "glibc malloc thresholds left at their defaults (--default-malloc)."),
        ]
        fastest = fastest_precisions(self.rows)
        if fastest:
            lines += ["", "fastest precision at batch 1, 1 thread (the stream's case), against the manifest's recommendation:"]
            measured = {(r.backend, r.precision) for r in self.rows if r.ok and r.batch == 1 and r.threads == 1}
            any_row = fastest_precisions(self.rows, accepted_only=False)
            for backend, r in fastest.items():
                rec = self.recommended.get(backend)
                verdict = ("no recommendation in the manifest" if not rec else "the manifest recommends it too" if rec == r.precision
                           else f"the manifest recommends {rec}" + ("" if (backend, rec) in measured else ", not measured here"))
                faster = any_row[backend]
                rejected = (f"; {faster.precision} is faster ({faster.windows_per_s:.0f} windows/s) but the accuracy gate rejected it"
                            if faster is not r else "")
                lines.append(f"  {backend}: {r.precision} ({r.windows_per_s:.0f} windows/s){rejected}; {verdict}")
        if self.targets:
            lines += ["", "targets:"]
            for t in self.targets:
                verdict = "not measured" if t.met is None else "met" if t.met else "MISSED"
                lines.append(f"  {verdict:<12} {t.name}: {t.measured} (goal {t.goal})" + (f"; {t.note}" if t.note else ""))
        return "\n".join(lines)


def method_text() -> str:
    """The method paragraph of :mod:`ecgedge.bench`'s docstring (benchmarks/README.md repeats it), for the JSON report."""
    from ecgedge import bench

    return (bench.__doc__ or "").partition("Method (benchmarks/README.md repeats it):")[2].partition("Unavailable backends")[0].strip()


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write ``report`` as JSON to ``path`` (folders created); replaced atomically, so an interrupted
    write leaves the previous report."""
    from ecgedge.fsio import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(report.to_dict(), indent=2))
