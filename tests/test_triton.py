"""Fleet serving with Triton: the model repository an export writes, and ``ecgedge stream --server``
against a real Triton Inference Server.

The server is the Triton 2.51 binary bundled in PyTriton (``nvidia-pytriton``), serving the export
through :mod:`ecgedge.serve.pytriton_server` (the export's ONNX Runtime runner bound as a Python
model) over real gRPC on loopback. PyTriton needs numpy<2, so it runs in its own interpreter:
``$ECGEDGE_PYTRITON_PYTHON``, else ``.venv-pytriton/bin/python`` beside the repository, else this
one if it has PyTriton and numpy<2. Make the venv with::

    python3 -m venv .venv-pytriton && .venv-pytriton/bin/pip install -e '.[pytriton]'

The generated repository uses the ONNX Runtime backend, which the pip bundle lacks (it has only the
Python backend), so no server loads it here: it is checked statically, ``config.pbtxt`` parsed with
Triton's own ``ModelConfig`` protobuf and compared with the manifest, the ONNX file's signature and
the configuration the live (PyTriton) server reports for the same export.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import PreprocessConfig, Target
from ecgedge.data.preprocess import preprocess_params
from ecgedge.errors import ArtefactError, BackendUnavailable, ConfigError, ShapeMismatch
from ecgedge.export.triton import TRT_CACHE, served_precision, triton_repository_from_export
from ecgedge.hashing import file_sha256
from ecgedge.manifest import FORMAT, Manifest, load_manifest
from ecgedge.runtime import Backend, InputSpec, Precision, runner_from_export
from ecgedge.runtime.triton_runner import TritonRunner, grpc_address, triton_runner_from_export
from helpers import SAMPLES, check_run, cli, looped, mv, of, tiny_onnx


REPO = Path(__file__).resolve().parents[1]
N_SAMPLES = 15_000  # 30 s of JS00001 (500 Hz) looped by ecgsim: 21 classified windows


def tiny_export(folder: Path, statuses: dict[str, str], *, name: str = "tiny", target: str | None = None) -> Path:
    """An export folder of the 2-lead test_runtime graph under the artefact keys and gate statuses given."""
    folder.mkdir(parents=True, exist_ok=True)
    artefacts = {}
    for key, status in statuses.items():
        tiny_onnx(folder / f"model.{key}.onnx")
        artefacts[key] = {"file": f"model.{key}.onnx", "precision": key, "runtime": "onnx", "status": status}
    data = {"format": FORMAT, "name": name,
            "input": {"name": "ecg", "shape": ["batch", 2, SAMPLES], "dtype": "float32", "leads": ["I", "II"], "fs_hz": 250.0,
                      "window_samples": SAMPLES},
            "output": {"name": "logits", "shape": ["batch", 3], "labels": ["A", "B", "C"]},
            "preprocess": preprocess_params(PreprocessConfig()), "export_config": {"batch_profile": [1, 4, 16]},
            "artefacts": artefacts}
    if target:
        data["target"] = target
    Manifest(folder, data).save()
    return folder


def model_config_pb2():
    """Triton's own model-configuration protobuf, as tritonclient[grpc] ships it."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] ships Triton's model_config protobuf")
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def parse_config(path: Path):
    """config.pbtxt parsed by Triton's ModelConfig protobuf (an unknown field or enum value fails)."""
    from google.protobuf import text_format

    return text_format.Parse(path.read_text(), model_config_pb2().ModelConfig())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# ---- the model repository (static) ---------------------------------------------------------------


@pytest.mark.parametrize("target, statuses, expected", [
    (Target.cpu, {"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, Precision.int8),
    (Target.cpu, {"fp32": "reference", "int8": "rejected"}, Precision.fp32),
    (Target.arm64, {"fp32": "reference", "int8": "accepted"}, Precision.int8),
    (Target.cuda, {"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, Precision.fp16),
    (Target.cuda, {"fp32": "reference", "int8": "accepted", "fp16": "rejected"}, Precision.fp32),
    (Target.tensorrt, {"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, Precision.int8),
    (Target.tensorrt, {"fp32": "reference", "int8": "rejected", "fp16": "accepted"}, Precision.fp16),
])
def test_served_precision_is_the_best_the_gate_accepted(tmp_path, target, statuses, expected):
    m = load_manifest(tiny_export(tmp_path / "e", statuses))
    precision, why = served_precision(m, target)
    assert precision == expected
    skipped = [p for p in ("int8", "fp16") if p in statuses and statuses[p] == "rejected" and p != expected.value]
    assert all(f"{p} is rejected" in why for p in skipped) and why.endswith(f"serving {expected.value}") == bool(skipped)


def test_nothing_accepted_or_a_rejected_artefact_is_refused(tmp_path):
    m = load_manifest(tiny_export(tmp_path / "e", {"fp32": "not gated", "int8": "rejected"}))
    with pytest.raises(ArtefactError, match=r"no artefact the accuracy gate accepted for ort-cpu \(int8: rejected, fp32: not gated\), the backend of a cpu server"):
        served_precision(m, Target.cpu)
    with pytest.raises(ArtefactError, match="rejected by the accuracy gate"):
        served_precision(m, Target.cpu, "int8")
    assert served_precision(m, Target.cpu, "fp32") == (Precision.fp32, "fp32 asked for by name")


def test_cpu_repository_matches_manifest_and_model(tmp_path):
    folder = tiny_export(tmp_path / "e", {"fp32": "reference", "int8": "accepted"}, target="cpu")
    repo = triton_repository_from_export(folder)
    assert repo.path == folder / "triton" and repo.model_dir == folder / "triton" / "tiny"
    cfg = parse_config(repo.model_dir / "config.pbtxt")
    assert (cfg.name, cfg.backend, cfg.max_batch_size) == ("tiny", "onnxruntime", 16)  # the export's batch profile (1, 4, 16)
    (inp,), (out,) = cfg.input, cfg.output
    pb = model_config_pb2()
    assert (inp.name, inp.data_type, list(inp.dims)) == ("ecg", pb.TYPE_FP32, [2, SAMPLES])
    assert (out.name, out.data_type, list(out.dims), out.label_filename) == ("logits", pb.TYPE_FP32, [3], "labels.txt")
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(pb.ModelInstanceGroup.KIND_CPU, 1)]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 16] and cfg.dynamic_batching.max_queue_delay_microseconds == 10_000
    assert not cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert (repo.model_dir / "labels.txt").read_text().split() == ["A", "B", "C"]

    m = load_manifest(folder)  # verifies: the repository's files are hashed, its model.onnx is listed
    served = "triton/tiny/1/model.onnx"
    assert m.data["files"][served]["sha256"] == m.data["files"]["model.int8.onnx"]["sha256"] == file_sha256(folder / served)
    t = m.data["triton"]
    assert t["files"] == ["triton/tiny/config.pbtxt", "triton/tiny/labels.txt", served] and all(f in m.data["files"] for f in t["files"])
    assert (t["precision"], t["artefact"], t["instance_kind"], t["max_batch_size"], t["accelerator"]) == ("int8", "int8", "KIND_CPU", 16, None)
    assert "VNNI" in t["why"]


@pytest.mark.parametrize("target, statuses, mode", [
    (Target.tensorrt, {"fp32": "reference", "int8": "accepted"}, "INT8"),
    (Target.cuda, {"fp32": "reference", "fp16": "accepted"}, "FP16"),
    (Target.cuda, {"fp32": "reference", "fp16": "rejected"}, "FP32"),
])
def test_gpu_repository_uses_the_tensorrt_accelerator(tmp_path, target, statuses, mode):
    folder = tiny_export(tmp_path / "e", statuses)
    repo = triton_repository_from_export(folder, target=target)
    cfg = parse_config(repo.model_dir / "config.pbtxt")
    assert [g.kind for g in cfg.instance_group] == [model_config_pb2().ModelInstanceGroup.KIND_GPU]
    (acc,) = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert acc.name == "tensorrt"
    assert dict(acc.parameters) == {
        "precision_mode": mode, "max_workspace_size_bytes": str(1 << 30),
        "trt_profile_min_shapes": f"ecg:1x2x{SAMPLES}", "trt_profile_opt_shapes": f"ecg:4x2x{SAMPLES}",
        "trt_profile_max_shapes": f"ecg:16x2x{SAMPLES}",
        "trt_engine_cache_enable": "1", "trt_engine_cache_path": f"{TRT_CACHE}/tiny"}  # never inside the (hashed) repository
    (warm,) = cfg.model_warmup
    assert warm.batch_size == 4 and list(warm.inputs["ecg"].dims) == [2, SAMPLES] and warm.inputs["ecg"].zero_data
    assert load_manifest(folder).data["triton"]["precision"] == mode.lower()


def test_tampering_with_the_repository_is_caught(tmp_path):
    folder = tiny_export(tmp_path / "e", {"fp32": "reference", "int8": "accepted"})
    repo = triton_repository_from_export(folder)
    config = repo.model_dir / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 16", "max_batch_size: 64"))
    with pytest.raises(ArtefactError, match="triton/tiny/config.pbtxt: sha256 differs"):
        load_manifest(folder)
    triton_repository_from_export(folder, manifest=load_manifest(folder, verify=False))  # rewritten from the manifest
    shutil.copyfile(folder / "model.fp32.onnx", repo.model_dir / "1" / "extra.onnx")
    with pytest.raises(ArtefactError, match="triton/tiny/1/extra.onnx: model file not listed"):
        load_manifest(folder)


def test_shared_repository_outside_the_export(tmp_path):
    a = tiny_export(tmp_path / "a", {"fp32": "reference", "int8": "accepted"}, name="bed-a")
    b = tiny_export(tmp_path / "b", {"fp32": "reference"}, name="bed b")
    before = (a / "manifest.json").read_text()
    shared = tmp_path / "models"
    triton_repository_from_export(a, shared)
    triton_repository_from_export(b, shared, model_name="bed_b_v2")
    assert sorted(p.name for p in shared.iterdir()) == ["bed-a", "bed_b_v2"]
    assert (a / "manifest.json").read_text() == before  # outside the folder: the manifest is left as it is
    assert parse_config(shared / "bed_b_v2" / "config.pbtxt").name == "bed_b_v2"
    (shared / "notes").mkdir()
    with pytest.raises(ConfigError, match="is not a Triton model folder"):
        triton_repository_from_export(a, shared, model_name="notes")
    with pytest.raises(ConfigError, match="letters, digits"):
        triton_repository_from_export(a, shared, model_name="bed a")


def test_cli_triton_only(tmp_path):
    folder = tiny_export(tmp_path / "e", {"fp32": "reference", "int8": "accepted"})
    runner = CliRunner()
    res = runner.invoke(app, ["export", "--triton-only", str(folder), "--target", "tensorrt"])
    assert res.exit_code == 0, res.output
    assert f"Triton model repository: {folder / 'triton'} (model 'tiny', int8 on KIND_GPU, max batch 16" in res.output
    assert load_manifest(folder).data["triton"]["target"] == "tensorrt"
    bad = tiny_export(tmp_path / "bad", {"fp32": "not gated"})
    res = runner.invoke(app, ["export", "--triton-only", str(bad)])
    assert res.exit_code == 2 and "error:" in res.output and "no artefact the accuracy gate accepted for ort-cpu (int8: missing, fp32: not gated), the backend of a cpu server" in res.output


@pytest.mark.slow
def test_export_triton_flag_on_a_trained_run(clf_run, tmp_path):
    """The pipeline's --triton: a gated INT8 export of a trained run gets its repository; --check still passes.

    Trains the session's classifier when run alone (about a minute); shares it with test_export.py otherwise.
    """
    out = tmp_path / "e"
    # --min-gate-windows: the generated set holds out a few dozen windows, fewer than the default 100
    res = CliRunner().invoke(app, ["export", str(clf_run.run_dir), "--out", str(out), "--triton", "--min-gate-windows", "10", "-q"])
    assert res.exit_code == 0, res.output
    m = load_manifest(out)
    assert m.artefacts["int8"]["status"] == "accepted" and m.data["triton"]["precision"] == "int8"
    cfg = parse_config(out / "triton" / m.data["triton"]["model_name"] / "config.pbtxt")
    assert list(cfg.input[0].dims) == [12, 2048] and list(cfg.output[0].dims) == [len(m.labels)] and cfg.max_batch_size == 64
    res = CliRunner().invoke(app, ["export", "--check", str(out)])
    assert res.exit_code == 0 and "check passed" in res.output, res.output


# ---- the client side without a server ------------------------------------------------------------


@pytest.mark.parametrize("url, message", [
    ("http://host:8000", "only gRPC is supported"),
    ("grpc://host", "expected grpc://HOST:PORT"),
    ("grpc://host:99999", "port in 1..65535"),
])
def test_server_urls(url, message):
    with pytest.raises(ConfigError, match=message):
        grpc_address(url)


def test_server_and_precision_do_not_mix(tmp_path):
    folder = tiny_export(tmp_path / "e", {"fp32": "reference"})
    res = CliRunner().invoke(app, ["stream", str(folder), "--source", "stdin", "--server", "grpc://127.0.0.1:8001", "--precision", "fp32"])
    assert res.exit_code == 2 and "--precision picks a local artefact" in res.output


def test_missing_client_says_how_to_install(tmp_path, monkeypatch):
    for name in ("tritonclient", "tritonclient.grpc", "tritonclient.utils"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as where it is not installed
    runner = triton_runner_from_export(tiny_export(tmp_path / "e", {"fp32": "reference"}), "grpc://127.0.0.1:8001")
    with pytest.raises(BackendUnavailable, match=r"tritonclient is not installed: pip install 'ecgedge\[serve\]'"):
        runner.activate()


def test_unreachable_server_is_one_clear_line(tmp_path):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is the Triton client (pip install 'ecgedge[serve]')")
    folder = tiny_export(tmp_path / "e", {"fp32": "reference"})
    (port,) = free_ports(1)
    res = CliRunner().invoke(app, ["stream", str(folder), "--source", "stdin", "--server", f"grpc://127.0.0.1:{port}"])
    assert res.exit_code == 2, res.output
    assert f"error: cannot reach the Triton server at grpc://127.0.0.1:{port}" in res.output and "Traceback" not in res.output


# ---- a real Triton server (PyTriton) -------------------------------------------------------------


def pytriton_python() -> tuple[str, str]:
    """(interpreter, its LIBDIR) of an environment with PyTriton, numpy<2 and ecgedge; skip if there is none."""
    env = os.environ.get("ECGEDGE_PYTRITON_PYTHON")
    candidates = [env] if env else [str(REPO / ".venv-pytriton" / "bin" / "python"), sys.executable]
    probe = ("import sysconfig, numpy, pytriton, ecgedge; "
             "print(numpy.__version__.split('.')[0], sysconfig.get_config_var('LIBDIR'))")
    tried = []
    for python in candidates:
        if not Path(python).is_file():
            tried.append(f"{python}: not found")
            continue
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
        if done.returncode:
            tried.append(f"{python}: {done.stderr.strip().splitlines()[-1]}")
        elif int(done.stdout.split()[0]) >= 2:
            tried.append(f"{python}: numpy 2 (PyTriton's Python backend returns empty outputs under numpy 2)")
        else:
            return python, done.stdout.split()[1]
    pytest.skip("no interpreter with nvidia-pytriton and numpy<2 (set ECGEDGE_PYTRITON_PYTHON or make .venv-pytriton, "
                "see this module's docstring): " + "; ".join(tried))


@pytest.fixture(scope="module")
def pytriton_env() -> tuple[str, str]:
    """Checked before the export is built, so a machine without PyTriton skips at once."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is the Triton client (pip install 'ecgedge[serve]')")
    return pytriton_python()


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory) -> Path:
    """The real architecture, untrained, exported to INT8 QDQ (as test_stream.py streams it), with its Triton repository."""
    pytest.importorskip("torch", reason="torch builds the untrained INT8 export of the real architecture")
    from ecgedge.bench import untrained_export

    folder = untrained_export(tmp_path_factory.mktemp("triton") / "ecg")
    triton_repository_from_export(folder, precision="int8")  # untrained: nothing is gated, so the artefact is named
    return folder


@pytest.fixture(scope="module")
def server(pytriton_env, int8_export, tmp_path_factory):
    """``grpc://127.0.0.1:PORT`` of PyTriton's Triton serving ``int8_export`` (a subprocess, stopped after the module)."""
    python, libdir = pytriton_env
    grpc_port, http_port = free_ports(2)
    log = tmp_path_factory.mktemp("pytriton") / "server.log"
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")])))
    with open(log, "wb") as err:
        proc = subprocess.Popen([python, "-m", "ecgedge.cli.serve", str(int8_export), "--precision", "int8",
                                 "--grpc-port", str(grpc_port), "--http-port", str(http_port)],
                                stdout=subprocess.PIPE, stderr=err, env=env, cwd=log.parent, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(raw.decode()) for raw in proc.stdout], daemon=True).start()
    try:
        try:
            ready = lines.get(timeout=120)
        except queue.Empty:
            ready = ""
        assert ready.startswith(f"READY grpc://127.0.0.1:{grpc_port} model ecg precision int8"), \
            f"PyTriton did not come up ({ready!r}); its log ends:\n" + log.read_text(errors="replace")[-3000:]
        yield f"grpc://127.0.0.1:{grpc_port}"
    finally:
        stop_process_group(proc)


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM to the server (PyTriton stops Triton, exit timeout 2 s, and removes its workspace), then wait
    for its whole process group: its multiprocessing resource tracker unlinks the shared memory last.
    SIGKILL only for what is still there after ``timeout_s``."""
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


@pytest.mark.slow  # a real Triton server (PyTriton) starts for these
def test_served_model_is_what_the_repository_describes(server, int8_export):
    """The live server's view of the model (metadata, config) equals the generated config.pbtxt."""
    import tritonclient.grpc as grpcclient

    m = load_manifest(int8_export)
    repo = parse_config(int8_export / "triton" / "ecg" / "config.pbtxt")
    client = grpcclient.InferenceServerClient(grpc_address(server))
    try:
        live = client.get_model_config("ecg").config
        meta = client.get_model_metadata("ecg", as_json=True)
    finally:
        client.close()
    assert live.max_batch_size == repo.max_batch_size == 64
    for a, b in ((live.input[0], repo.input[0]), (live.output[0], repo.output[0])):
        assert (a.name, a.data_type, list(a.dims)) == (b.name, b.data_type, list(b.dims))
    assert list(live.dynamic_batching.preferred_batch_size) == list(repo.dynamic_batching.preferred_batch_size) == [8, 64]
    assert live.dynamic_batching.max_queue_delay_microseconds == repo.dynamic_batching.max_queue_delay_microseconds
    assert meta["platform"] == "python"  # PyTriton's backend; the repository's is onnxruntime
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [(m.input_name, "FP32", ["-1", "12", "2048"])]


@pytest.mark.slow  # a real Triton server (PyTriton) starts for these
def test_triton_runner_equals_the_in_process_runner(server, int8_export):
    """70 windows: two requests (the server's max batch is 64), each row equal to ONNX Runtime here."""
    x = np.random.default_rng(0).normal(size=(70, 12, 2048)).astype(np.float32)
    remote = triton_runner_from_export(int8_export, server)
    assert not remote.active and remote.precision == Precision.int8 and remote.name == f"triton:{server}/ecg"
    with remote, runner_from_export(int8_export, Precision.int8, Backend.ort_cpu, threads=1) as local:
        assert remote.max_batch == 64 and remote.platform == "python"
        np.testing.assert_allclose(remote.infer(x), local.infer(x), rtol=0, atol=1e-5)
        with pytest.raises(ShapeMismatch, match=r"window \(12, 2500\); model expects \(batch, 12, 2048\)"):
            remote.infer(np.zeros((1, 12, 2500), np.float32))  # checked here, before anything is sent


@pytest.mark.slow  # a real Triton server (PyTriton) starts for these
def test_runner_refuses_a_model_that_does_not_match_the_export(server, int8_export):
    m = load_manifest(int8_export)
    spec = InputSpec("ecg_in", m.leads, 250.0, 2500)
    with pytest.raises(ShapeMismatch) as err:
        TritonRunner(server, "ecg", spec, output_name="logits", labels=("A", "B", "C")).activate()
    msg = str(err.value)
    assert f"Triton model 'ecg' on {server} does not match the export" in msg
    assert "inputs: server has ecg FP32 [-1, 12, 2048]; the export expects ecg_in FP32 [-1, 12, 2500] (12 leads x 2500 samples at 250 Hz)" in msg
    assert "output: server has logits FP32 [-1, 4]; the export expects logits FP32 [-1, 3] (logits of 3 labels: A, B, C)" in msg
    with pytest.raises(BackendUnavailable, match=f"the Triton server at {server} has no ready model 'nope'"):
        triton_runner_from_export(int8_export, server, "nope").activate()


@pytest.mark.c
@pytest.mark.data
@pytest.mark.slow  # a real Triton server (PyTriton) starts for these
def test_stream_through_triton_equals_in_process(server, int8_export, build, chapman, source_adu):
    """A real record (JS00001, looped by the C device simulator) streamed twice: windows to the Triton
    server, and through ONNX Runtime in process. Every record but the session line is the same."""
    args = ["--source", f"wfdb:{chapman}@0", "--sim", f"--loop --max-samples {N_SAMPLES}"]
    remote, stderr = cli(int8_export, *args, "--server", server)
    assert "NO_TORCH" in stderr  # the bedside side of a served model stays as lean as the in-process one
    local, _ = cli(int8_export, *args, "--precision", "int8")
    assert remote[0] == {**local[0], "backend": "triton", "server": server, "server_model": "ecg", "server_platform": "python"}
    assert remote[0]["precision"] == "int8"  # the export's Triton repository says what the server runs
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rs[1:]]  # noqa: E731
    assert strip(remote) == strip(local)
    assert sum(w["quality"] == "ok" for w in of(remote, "window")) == 21 and of(remote, "rhythm_change")
    with runner_from_export(int8_export, "int8", threads=1) as int8:
        check_run(remote, mv(looped(source_adu, N_SAMPLES)), int8)
