"""A runner whose model runs on a Triton Inference Server: windows go out over gRPC, logits come back.

    from ecgedge.runtime.triton_runner import triton_runner_from_export
    with triton_runner_from_export("export/demo", "grpc://gpu-box:8001") as runner:
        logits = runner.infer(windows)          # same numpy in, numpy out as every runner

Like every runner it is cheap to construct; ``activate`` connects and checks what the server
serves against the export's manifest (input name, dims and dtype, output name, dtype and the number
of labels), collecting every difference into one :class:`~ecgedge.errors.ShapeMismatch`. A server
that cannot be reached, or fails a request, is a :class:`~ecgedge.errors.BackendUnavailable`.
Which backend runs the model (ONNX Runtime, TensorRT, a Python callable) is the server's business.
Needs ``tritonclient[grpc]`` (``pip install 'ecgedge[serve]'``), imported only on activation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.config import require
from ecgedge.errors import BackendUnavailable, ConfigError, ShapeMismatch
from ecgedge.runtime.base import InputSpec, Precision, Runner

# gRPC deadline of one request: far above a batch's inference time, far below a hop's worth of
# patience at the bedside (a hung server then fails the stream instead of silencing it).
TIMEOUT_S = 10.0


def grpc_address(url: str) -> str:
    """``grpc://HOST:PORT`` (or ``HOST:PORT``) -> ``HOST:PORT``; other schemes are refused."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme != "grpc":
        raise ConfigError(f"--server {url!r}: only gRPC is supported, as grpc://HOST:PORT (Triton's gRPC port is 8001 by default)")
    address = rest if sep else url
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--server {url!r}: expected grpc://HOST:PORT, port in 1..65535")
    return address


class TritonRunner(Runner):
    """Windows (batch, leads, samples) float32 -> logits (batch, classes), inferred by a Triton server.

    Args:
        url: ``grpc://HOST:PORT`` of the server.
        model: the model's name on the server.
        spec: the export's input spec (checked locally before anything is sent, as on every runner).
        output_name, labels: the output tensor's name and the labels it scores, in order.
        precision: what the server runs, where known (the export's Triton repository says); None otherwise.
        timeout_s: deadline of each request, seconds.
    """

    # Not a local backend: the server's own configuration decides what runs the model.
    backend = None

    def __init__(self, url: str, model: str, spec: InputSpec, *, output_name: str, labels: tuple[str, ...],
                 precision: Precision | str | None = None, timeout_s: float = TIMEOUT_S):
        self.url = url
        self.address = grpc_address(url)
        self.model = model
        self.model_path = None
        self.spec = spec
        self.output_name = output_name
        self.labels = tuple(labels)
        self.precision = Precision(precision) if precision else None
        self.timeout_s = timeout_s
        self.name = f"triton:{url}/{model}"
        self.active = False
        self.max_batch = 0
        self.platform = ""
        self._client: Any = None   # a tritonclient.grpc.InferenceServerClient while active (no type stubs)

    def _activate(self) -> None:
        grpcclient = require("tritonclient.grpc", extra="serve", name="tritonclient", hint="(tritonclient[grpc])")
        InferenceServerException = require("tritonclient.utils", extra="serve", name="tritonclient").InferenceServerException
        self._grpc, self._error = grpcclient, InferenceServerException
        client = grpcclient.InferenceServerClient(self.address)
        try:
            client.is_server_live(client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            client.close()
            raise BackendUnavailable(f"cannot reach the Triton server at {self.url}: {_reason(exc)}; is it running, "
                                     "and is that its gRPC port (8001 by default)?") from None
        try:
            if not client.is_model_ready(self.model, client_timeout=self.timeout_s):
                raise BackendUnavailable(f"the Triton server at {self.url} has no ready model '{self.model}'{_models(client, self.timeout_s)}")
            meta = client.get_model_metadata(self.model, as_json=True, client_timeout=self.timeout_s)
            config = client.get_model_config(self.model, as_json=True, client_timeout=self.timeout_s)["config"]
        except InferenceServerException as exc:
            client.close()
            raise BackendUnavailable(f"Triton server at {self.url}, model '{self.model}': {_reason(exc)}") from None
        except BackendUnavailable:
            client.close()
            raise
        self.max_batch = int(config.get("max_batch_size", 0))  # proto3 JSON leaves out a zero
        self.platform = meta.get("platform") or config.get("backend", "")
        problems = self._mismatches(meta)
        if problems:
            client.close()
            raise ShapeMismatch(f"Triton model '{self.model}' on {self.url} does not match the export:\n  " + "\n  ".join(problems))
        self._client = client

    def _mismatches(self, meta: dict) -> list[str]:
        """Every way the served model's metadata differs from the manifest's spec."""
        leads, samples, n = len(self.spec.leads), self.spec.window_samples, len(self.labels)
        problems = []
        inputs = meta.get("inputs", [])
        want_in = f"{self.spec.name} FP32 [-1, {leads}, {samples}] ({leads} leads x {samples} samples at {self.spec.fs_hz:g} Hz)"
        if [i["name"] for i in inputs] != [self.spec.name]:
            problems.append(f"inputs: server has {_tensors(inputs)}; the export expects {want_in}")
        elif inputs[0]["datatype"] != "FP32" or _dims(inputs[0]) != [-1, leads, samples]:
            problems.append(f"input: server has {_tensors(inputs)}; the export expects {want_in}")
        outputs = {o["name"]: o for o in meta.get("outputs", [])}
        want_out = f"{self.output_name} FP32 [-1, {n}] (logits of {n} labels: {', '.join(self.labels)})"
        out = outputs.get(self.output_name)
        if out is None:
            problems.append(f"outputs: server has {_tensors(meta.get('outputs', []))}; the export expects {want_out}")
        elif out["datatype"] != "FP32" or _dims(out) != [-1, n]:
            problems.append(f"output: server has {_tensors([out])}; the export expects {want_out}")
        if self.max_batch < 1:
            problems.append("the model has no batch dimension on the server (max_batch_size 0); ecgedge sends batches of windows")
        return problems

    def _infer(self, x: np.ndarray) -> np.ndarray:
        grpcclient = self._grpc
        out = []
        for a in range(0, len(x), self.max_batch):
            chunk = x[a:a + self.max_batch]
            inp = grpcclient.InferInput(self.spec.name, list(chunk.shape), "FP32")
            inp.set_data_from_numpy(chunk)
            try:
                res = self._client.infer(self.model, [inp], outputs=[grpcclient.InferRequestedOutput(self.output_name)],
                                         client_timeout=self.timeout_s)
            except self._error as exc:
                raise BackendUnavailable(f"Triton server at {self.url} failed a batch of {len(chunk)} windows: {_reason(exc)}") from None
            try:
                y = res.as_numpy(self.output_name)
            except ValueError as exc:
                # Seen from PyTriton's Python backend under numpy 2: a well-formed reply with no bytes.
                raise BackendUnavailable(f"Triton server at {self.url} sent a malformed '{self.output_name}' for {len(chunk)} windows "
                                         f"({exc}); a PyTriton server must run with numpy<2") from None
            if y is None or y.shape != (len(chunk), len(self.labels)):
                raise ShapeMismatch(f"Triton server at {self.url} returned {self.output_name} of shape "
                                    f"{None if y is None else y.shape} for {len(chunk)} windows; expected ({len(chunk)}, {len(self.labels)})")
            out.append(y)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def _deactivate(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def triton_runner_from_export(export, url: str, model: str | None = None, *, timeout_s: float = TIMEOUT_S) -> TritonRunner:
    """A :class:`TritonRunner` for an export folder (or its loaded :class:`~ecgedge.manifest.Manifest`).

    ``model`` defaults to the export's Triton model name (that of its ``triton/`` repository, else
    the export's name); the precision is the repository's when the server runs that model.
    """
    from ecgedge.manifest import Manifest, load_manifest, triton_model_name
    from ecgedge.runtime.loader import input_spec

    manifest = export if isinstance(export, Manifest) else load_manifest(Path(export))
    name = model or triton_model_name(manifest)
    section = manifest.data.get("triton") or {}
    precision = section.get("precision") if section.get("model_name") == name else None
    return TritonRunner(url, name, input_spec(manifest), output_name=manifest.data["output"]["name"], labels=manifest.labels,
                        precision=precision, timeout_s=timeout_s)


def _reason(exc) -> str:
    msg = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    return " ".join(str(msg).split())


def _dims(t: dict) -> list[int]:
    return [int(d) for d in t.get("shape", [])]


def _tensors(ts: list[dict]) -> str:
    return ", ".join(f"{t['name']} {t['datatype']} {_dims(t)}" for t in ts) or "none"


def _models(client, timeout_s: float) -> str:
    """``; it has: a, b`` where the server lets us list its repository (PyTriton guards that endpoint)."""
    try:
        index = client.get_model_repository_index(as_json=True, client_timeout=timeout_s).get("models", [])
    except Exception:  # noqa: BLE001 - listing is a courtesy; the error above stands on its own
        return ""
    names = sorted({m["name"] for m in index})
    return f"; it has: {', '.join(names)}" if names else ""
