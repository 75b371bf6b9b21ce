"""ecgedge bench: the arithmetic and the table on given numbers, the skip rules, the pieces a worker
measures with (the real stream monitor, the INT8 GEMM of the machine's integer peak, the PyTorch
reference runner), and one real run on a tiny export folder (an untrained 2-lead x 64-sample
classifier). No assertion here is about speed."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ecgedge.bench import (
    PEAK_SIZE,
    BenchBackend,
    BenchCase,
    BenchConfig,
    BenchRow,
    checkpoint_path,
    fastest_precisions,
    int8_peak_gops,
    latency_stats,
    plan,
    real_time_factor,
    render_table,
    skip_reason,
    stream_cpu,
    target_checks,
    throughput,
    torch_runner_from_checkpoint,
    untrained_export,
    with_ratios,
)
from ecgedge.bench.machine import int8_gemm_onnx
from ecgedge.cli.bench import bench_cmd
from ecgedge.cli.common import parse_choices, parse_ints
from ecgedge.config import ModelConfig
from ecgedge.errors import ConfigError, ShapeMismatch
from ecgedge.manifest import load_manifest
from ecgedge.runtime import Backend, Precision, available_backends, runner_from_export
from ecgedge.runtime.loader import input_spec

LEADS, SAMPLES = ("I", "II"), 64


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "tiny"
    return untrained_export(folder, model=ModelConfig(channels=(4, 4), kernels=(3, 3), head_channels=8),
                            leads=LEADS, window_samples=SAMPLES)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("bench")(bench_cmd)

    @app.callback()
    def _root():
        """ecgedge (test harness: main.py registers the same command)."""

    return app


def _row(backend, precision, batch, threads, p50, **kw) -> BenchRow:
    wps, gflops = throughput(batch, p50, 50e6)
    return BenchRow(backend, precision, batch, threads, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.3, calls=200,
                    windows_per_s=wps, gflops_per_s=gflops, **kw)


# ----------------------------------------------------------------------------------- arithmetic


def test_latency_stats_percentiles_are_ordered_and_in_ms():
    s = latency_stats([1_000_000, 2_000_000, 3_000_000, 4_000_000, 100_000_000])  # ns
    assert s["p50_ms"] == 3.0 and s["min_ms"] == 1.0 and s["mean_ms"] == 22.0
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= 100.0


def test_throughput_rtf_and_ratio_arithmetic():
    wps, gflops = throughput(batch=8, p50_ms=4.0, flops_per_window=50e6)
    assert wps == pytest.approx(2000.0) and gflops == pytest.approx(100.0)  # 8 windows / 4 ms; 2000 x 50 MFLOP
    assert throughput(1, 2.0)[1] is None  # no FLOPs in the manifest: no GFLOP/s
    assert real_time_factor(hop_s=1.0, step_cpu_s=0.0005) == pytest.approx(2000.0)  # 1 s of ECG per 0.5 CPU ms
    assert real_time_factor(hop_s=2.0, step_cpu_s=0.004) == pytest.approx(500.0)
    with pytest.raises(ValueError):
        real_time_factor(1.0, 0.0)

    rows = [_row("torch", "fp32", 1, 1, 2.0), _row("ort-cpu", "int8", 1, 1, 0.25), _row("ort-cpu", "int8", 1, 2, 0.2),
            _row("ort-cpu", "fp32", 1, 1, 0.5), BenchRow("ort-cuda", "fp16", 1, 1, status="skipped", reason="no GPU")]
    torch_row, int8_row, two_threads, fp32_row, skipped = with_ratios(rows, peak_gflops_1core=200.0, peak_int8_gops_1core=800.0)
    assert torch_row.vs_torch == pytest.approx(1.0)
    assert int8_row.vs_torch == pytest.approx(8.0)  # 4000 vs 500 windows/s, same batch and threads
    assert two_threads.vs_torch is None  # no torch row at 2 threads: no ratio rather than a wrong one
    assert skipped.vs_torch is None and skipped.peak_fraction is None
    # INT8 rows against the integer peak: 4000 win/s x 50 MFLOP = 200 GOP/s of 800 on 1 core, 250 of 2 x 800 on 2.
    assert (int8_row.peak_basis, int8_row.peak_fraction) == ("int8", pytest.approx(200.0 / 800.0))
    assert two_threads.peak_fraction == pytest.approx(250.0 / 1600.0)
    # FP32 rows (the torch baseline included) against the FP32 peak: 2000 win/s x 50 MFLOP = 100 of 200 GFLOP/s.
    assert (fp32_row.peak_basis, fp32_row.peak_fraction) == ("fp32", pytest.approx(100.0 / 200.0))
    assert torch_row.peak_fraction == pytest.approx(25.0 / 200.0)

    # No integer peak measured (onnx missing): INT8 rows get no share, never one of the FP32 peak.
    int8_only_fp32_peak = with_ratios([_row("ort-cpu", "int8", 1, 1, 0.25)], peak_gflops_1core=200.0)[0]
    assert int8_only_fp32_peak.peak_fraction is None and int8_only_fp32_peak.peak_basis == "int8"


def test_target_checks_report_met_missed_and_unmeasured():
    rows = [_row("torch", "fp32", 1, 1, 2.0),
            _row("ort-cpu", "fp32", 1, 1, 0.8, rtf=800.0, rtf_step_cpu_ms=1.25, rtf_monitor_cpu_ms=0.35, rtf_hops=100, rtf_windows=100),
            _row("ort-cpu", "int8", 1, 1, 1.0, rtf=1250.0, rtf_step_cpu_ms=0.8, rtf_monitor_cpu_ms=0.35, rtf_hops=100, rtf_windows=90,
                 peak_rss_bytes=120_000_000, rss_loaded_bytes=70_000_000, torch_imported=False)]
    checks = {c.name: c for c in target_checks(with_ratios(rows), {"int8_dot_product": False})}
    vs_torch = next(c for n, c in checks.items() if "vs PyTorch" in n)
    assert vs_torch.met is False and vs_torch.measured.startswith("2.00x")  # 1000 vs 500 windows/s
    vs_fp32 = next(c for n, c in checks.items() if "not slower" in n)
    assert vs_fp32.met is False and "lacks VNNI" in vs_fp32.note  # the reason is stated, not just the miss
    rtf = {c.name: c for c in checks.values() if c.name.startswith("real-time")}
    int8_rtf, fp32_rtf = rtf["real-time factor, stream monitor + ort-cpu int8 (1 thread)"], rtf["real-time factor, stream monitor + ort-cpu fp32 (1 thread)"]
    assert int8_rtf.met is True and fp32_rtf.met is False
    assert "90 of 100 hops classified" in int8_rtf.measured and "flatters" in int8_rtf.note  # unreliable hops ran no model: said
    assert fp32_rtf.note == ""
    mem = next(c for n, c in checks.items() if "memory" in n)
    assert mem.met is True and "120.0 MB peak" in mem.measured and "70.0 MB after loading" in mem.measured

    fastest = fastest_precisions(rows + [_row("ort-cpu", "fp16", 1, 1, 0.1, rejected=True)])
    assert {b: r.precision for b, r in fastest.items()} == {"ort-cpu": "fp32"}  # 0.8 ms beats 1.0 ms; a rejected artefact is no choice

    unmeasured = target_checks([_row("torch", "fp32", 1, 1, 2.0), BenchRow("ort-cpu", "int8", 1, 1, status="skipped", reason="int8 was rejected")])
    assert all(c.met is None and c.measured == "not measured" for c in unmeasured)
    assert "ort-cpu int8 at batch 1, 1 thread: int8 was rejected" in unmeasured[0].note  # says why it is missing
    assert "ort-cpu fp32 at batch 1, 1 thread: not requested" in unmeasured[1].note


# ----------------------------------------------------------------------------------- table


def test_render_table_one_line_per_configuration_and_folded_skips():
    rows = with_ratios([_row("torch", "fp32", 1, 1, 2.0, rtf=400.0, model_bytes=192_400, peak_rss_bytes=324e6, rss_loaded_bytes=320e6,
                             cold_start_ms=1288.0),
                        _row("ort-cpu", "int8", 1, 1, 0.283, rtf=1467.0, model_bytes=75_700, peak_rss_bytes=143.6e6, cold_start_ms=26.0,
                             note="rejected by the accuracy gate"),
                        _row("ort-cpu", "int8", 64, 1, 22.6)]
                       + [BenchRow("ort-cuda", "fp32", b, t, status="skipped", reason="no CUDAExecutionProvider") for b in (1, 64) for t in (1, 2)]
                       + [BenchRow("tensorrt", "int8", 1, 1, status="failed", reason="worker exited with code -11")],
                       peak_gflops_1core=100.0, peak_int8_gops_1core=1000.0)
    lines = render_table(rows).splitlines()
    assert lines[0].split()[:6] == ["backend", "prec", "batch", "thr", "n", "p50"]
    assert set(lines[1]) == {"-"}
    body = lines[2:]
    assert len(body) == 3 + 1 + 1  # three measured rows, four skipped folded into one line, one failed
    torch_line, int8_line, int8_b64 = body[:3]
    assert torch_line.split()[:4] == ["torch", "fp32", "1", "1"] and "1.00x" in torch_line and "320/324" in torch_line
    assert torch_line.split()[10] == "25"  # 500 win/s x 50 MFLOP = 25 GFLOP/s of the 100-GFLOP/s FP32 peak
    assert int8_line.split()[10] == "18i"  # 177 GOP/s of the 1000-GOP/s INT8 peak, marked as an integer share
    assert "0.283" in int8_line and "3534" in int8_line and "7.07x" in int8_line and "1467" in int8_line and "75.7" in int8_line
    assert int8_line.endswith("rejected by the accuracy gate")
    assert "22.6" in int8_b64 and int8_b64.split()[12] == "-"  # no RTF, size or RSS given: dashes, not zeros
    assert body[3].split()[:4] == ["ort-cuda", "fp32", "1,64", "1,2"] and body[3].endswith("skipped: no CUDAExecutionProvider")
    assert "failed: worker exited with code -11" in body[4]
    assert len({len(line) for line in lines[:2]}) == 1  # rule as wide as the header


def test_parse_flags():
    assert parse_choices("torch, ort-cpu,torch", BenchBackend, "--backend") == (BenchBackend.torch, BenchBackend.ort_cpu)
    # one closed choice of backends (config.Backend): bench adds only the PyTorch baseline
    assert {b.value for b in BenchBackend} == {"torch"} | {b.value for b in Backend}
    assert all(b.runtime_backend == Backend(b.value) for b in BenchBackend if b != BenchBackend.torch)
    assert parse_choices("int8,fp32", Precision, "--precision") == (Precision.int8, Precision.fp32)
    assert parse_ints("1,8,64", "--batch") == (1, 8, 64)
    with pytest.raises(ConfigError, match="--backend: 'onnx' is not one of torch, ort-cpu, ort-cuda, ort-trt, tensorrt"):
        parse_choices("onnx", BenchBackend, "--backend")
    with pytest.raises(ConfigError, match="--batch"):
        parse_ints("1,0", "--batch")
    with pytest.raises(ConfigError, match="--threads"):
        parse_ints("two", "--threads")
    with pytest.raises(ConfigError):
        BenchConfig(export="x", repeats=0)


# ----------------------------------------------------------------------------------- planning


def test_plan_measures_the_torch_baseline_first_even_when_not_asked(tiny_export):
    m = load_manifest(tiny_export)
    cases = plan(BenchConfig(export=str(tiny_export), backends=(BenchBackend.ort_cpu,), batches=(1, 8), threads=(1, 2)), m)
    assert cases[:4] == [BenchCase(BenchBackend.torch, Precision.fp32, b, t) for t in (1, 2) for b in (1, 8)]
    assert {c.precision for c in cases if c.backend == BenchBackend.ort_cpu} == {Precision.fp32, Precision.int8}  # what the export holds
    assert all(c.backend != BenchBackend.torch for c in plan(BenchConfig(export="x", backends=(BenchBackend.ort_cpu,), baseline=False), m))


def test_skip_reasons(tiny_export, tmp_path):
    m = load_manifest(tiny_export)
    avail = {b: None for b in Backend} | {Backend.ort_cuda: "no CUDAExecutionProvider here"}
    ckpt = checkpoint_path(m)
    assert ckpt[0] is not None and ckpt[0].is_file()

    def why(backend, precision, **kw):
        return skip_reason(BenchCase(backend, precision, 1, 1), m, avail, checkpoint=kw.pop("checkpoint", ckpt), **kw)

    assert why(BenchBackend.torch, Precision.fp32) is None
    assert why(BenchBackend.ort_cpu, Precision.int8) is None
    assert "FP32 baseline" in why(BenchBackend.torch, Precision.int8)
    assert why(BenchBackend.ort_cuda, Precision.fp32) == "no CUDAExecutionProvider here"
    assert "no fp16 artefact" in why(BenchBackend.ort_cpu, Precision.fp16)
    assert "no trt-int8 artefact" in why(BenchBackend.tensorrt, Precision.int8)
    gone = checkpoint_path(m, str(tmp_path / "moved.pt"))
    assert gone[0] is None and "not found" in why(BenchBackend.torch, Precision.fp32, checkpoint=gone)

    m.data["artefacts"]["int8"]["status"] = "rejected"
    assert "rejected by the accuracy gate" in why(BenchBackend.ort_cpu, Precision.int8)
    assert why(BenchBackend.ort_cpu, Precision.int8, include_rejected=True) is None
    m.data["source"]["checkpoint"] = str(tmp_path / "elsewhere" / "best.pt")
    assert "not on this machine" in checkpoint_path(m)[1]


# ----------------------------------------------------------------------------------- what a worker measures with


class _CountingRunner:
    """The runner the stream hub is given, counting the windows it is asked to classify."""

    def __init__(self, runner):
        self.runner, self.shapes = runner, []

    def infer(self, x):
        self.shapes.append(x.shape)
        return self.runner.infer(x)


def test_rtf_step_drives_the_real_stream_monitor(tiny_export):
    """Every timed hop goes through BedMonitor (quality checks, preprocessing) and the model, once per hop."""
    m = load_manifest(tiny_export)
    with runner_from_export(tiny_export, Precision.fp32, Backend.ort_cpu, threads=1) as ort:
        runner = _CountingRunner(ort)
        res = stream_cpu(runner, m, source_fs_hz=500.0, hop_s=1.0, seed=0, warmup=2, steps=6, max_seconds=60.0)
    assert res["hops"] == 6 and res["windows"] == 6  # past the start-up, each 1-s hop of sinus rhythm classifies one window
    untimed = 3 + 2  # start-up: ceil(64 / 250 Hz + 1 s settling) + 1 hops; then 2 warm-up hops
    # Fewer calls than hops: the first hop ends inside the filters' settling time, and the monitor
    # reports that window unreliable instead of classifying it.
    assert len(runner.shapes) < untimed + 6
    assert runner.shapes[-6:] == [(1, len(LEADS), SAMPLES)] * 6  # batch 1, the model's input shape
    assert 0 < res["infer_cpu_ns"] < res["step_cpu_ns"]  # the model is part of the hop; the monitor comes on top
    assert res["beds"] == 1


def test_ward_rtf_runs_every_bed_through_one_hub(tiny_export):
    """The per-core figure: N beds, each hop every bed's window, inference in calls of at most 8 windows."""
    m = load_manifest(tiny_export)
    with runner_from_export(tiny_export, Precision.fp32, Backend.ort_cpu, threads=1) as ort:
        runner = _CountingRunner(ort)
        res = stream_cpu(runner, m, source_fs_hz=500.0, hop_s=1.0, seed=0, warmup=1, steps=3, max_seconds=60.0, beds=10)
    assert res["beds"] == 10 and res["hops"] == 3 and res["windows"] == 30  # every bed classified every timed hop
    assert runner.shapes[-6:] == [(8, len(LEADS), SAMPLES), (2, len(LEADS), SAMPLES)] * 3  # CPU: calls of <= 8
    assert 0 < res["infer_cpu_ns"] < res["step_cpu_ns"]


def test_int8_peak_gemm_is_exact_and_counts_two_ops_per_multiply_add():
    import onnxruntime as ort

    n = 32
    sess = ort.InferenceSession(int8_gemm_onnx(n), providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).integers(0, 256, (n, n), dtype=np.uint8)
    w = np.random.default_rng(1).integers(-63, 64, (n, n), dtype=np.int8)  # the generator's seed-1 7-bit weights
    y = sess.run(None, {"A": a})[0]
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, (a.astype(np.int64) - 128) @ w.astype(np.int64))  # integer GEMM: exact, zero point 128
    assert PEAK_SIZE >= 1024  # compute-bound: 2 x 1024^3 operations per call
    assert int8_peak_gops(size=128) > 0


def test_torch_runner_matches_the_onnx_fp32_runner(tiny_export):
    """The PyTorch eager reference and ONNX Runtime FP32 give the same logits on the same windows."""
    m = load_manifest(tiny_export)
    spec = input_spec(m)
    x = np.random.default_rng(3).standard_normal((4, len(LEADS), SAMPLES), dtype=np.float32)
    ckpt, _ = checkpoint_path(m)
    torch_runner = torch_runner_from_checkpoint(ckpt, spec, threads=1)
    with pytest.raises(RuntimeError, match="not active"):
        torch_runner.infer(x)  # cheap to construct, nothing loaded until entered, like every runner
    with torch_runner, runner_from_export(tiny_export, Precision.fp32, Backend.ort_cpu, threads=1) as ort:
        ref, got = torch_runner.infer(x), ort.infer(x)
        assert torch_runner.active_providers[0].startswith("torch ") and "1 threads" in torch_runner.active_providers[0]
        with pytest.raises(ShapeMismatch, match=f"model expects \\(batch, 2, {SAMPLES}\\)"):
            torch_runner.infer(x[:, :, :-1])  # the same input check as every backend
    assert ref.shape == got.shape == (4, 4) and ref.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)  # float32 export parity on a tiny untrained net


# ----------------------------------------------------------------------------------- a real run


def test_bench_cli_runs_every_configuration(tiny_export, tmp_path):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(_app(), ["bench", str(tiny_export), "--backend", "ort-cpu,ort-cuda,tensorrt", "--precision", "fp32,int8",
                                      "--batch", "1,4", "--threads", "1", "--repeats", "5", "--warmup", "1", "--rtf-steps", "5",
                                      "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    rows = {(r["backend"], r["precision"], r["batch"], r["threads"]): r for r in report["rows"]}
    asked = {(b, p, n, 1) for b in ("ort-cpu", "ort-cuda", "tensorrt") for p in ("fp32", "int8") for n in (1, 4)}
    baseline = {("torch", "fp32", n, 1) for n in (1, 4)}
    assert set(rows) == asked | baseline

    avail = available_backends()
    for key, r in rows.items():
        backend = BenchBackend(key[0]).runtime_backend
        if backend is not None and avail[backend]:
            assert r["status"] == "skipped" and r["reason"] == avail[backend]  # unavailable: a row with the reason, not an error
            continue
        if backend == Backend.tensorrt:
            assert r["status"] == "skipped" and "no trt-" in r["reason"]  # this export built no engines
            continue
        assert r["status"] == "ok", r
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["calls"] == 5 and r["windows_per_s"] == pytest.approx(key[2] / (r["p50_ms"] / 1e3))
        assert r["peak_rss_bytes"] > 0 and r["cold_start_ms"] > 0 and r["model_bytes"] > 0 and r["gflops_per_s"] > 0
        assert r["vs_torch"] > 0
        assert (r["rtf"] is not None) == (key[2] == 1)  # the stream path runs at batch 1
        if key[2] == 1:  # five timed hops of the real monitor, each classifying a window
            assert r["rtf_hops"] == 5 and r["rtf_windows"] == 5
            assert 0 < r["rtf_monitor_cpu_ms"] < r["rtf_step_cpu_ms"]
            assert r["rtf"] == pytest.approx(1.0 / (r["rtf_step_cpu_ms"] / 1e3))  # 1-s hop per CPU second
        peak = report["machine"]["peak_int8_gops_1core" if key[1] == "int8" else "peak_fp32_gflops_1core"]
        assert r["peak_basis"] == key[1]
        assert r["peak_fraction"] == pytest.approx(r["gflops_per_s"] / (peak * key[3]))  # INT8 rows: share of the integer peak
        assert r["torch_imported"] == (key[0] == "torch")  # ONNX Runtime workers never load torch
        assert r["other_cpu_cores"] is None or r["other_cpu_cores"] >= 0  # contention is measured, never assumed away
    assert rows[("torch", "fp32", 1, 1)]["vs_torch"] == pytest.approx(1.0)

    assert report["machine"]["cores_usable"] >= 1 and "versions" in report["machine"]
    assert report["machine"]["peak_fp32_gflops_1core"] > 0 and report["machine"]["peak_int8_gops_1core"] > 0
    assert "INT8 peak" in res.output and "FP32 peak" in res.output and "against the INT8 peak for int8 rows" in res.output
    assert report["manifest_sha256"] and len(report["targets"]) >= 4
    assert "skipped:" in res.output and "targets:" in res.output and "p50 ms" in res.output


def test_bench_cli_help_and_bad_input(tmp_path):
    res = CliRunner().invoke(_app(), ["bench", "--help"])
    assert res.exit_code == 0 and "--max-seconds" in res.output and "--json" in res.output
    res = CliRunner().invoke(_app(), ["bench", str(tmp_path)])
    assert res.exit_code == 2 and "no manifest.json" in res.output
    res = CliRunner().invoke(_app(), ["bench", str(tmp_path), "--backend", "onnx"])
    assert res.exit_code == 2 and "'onnx' is not one of" in res.output


def test_bench_imports_neither_torch_nor_onnxruntime():
    """The parent process only plans and renders; each worker imports the one runtime it measures."""
    import subprocess
    import sys

    code = "import sys, ecgedge.bench, ecgedge.cli.bench; print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
