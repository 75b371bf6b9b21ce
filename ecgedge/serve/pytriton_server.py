"""``ecgedge serve export/NAME`` (or, the command alone, ``python -m ecgedge.cli.serve export/NAME``): serve
an export through a real Triton server on CPU. The command's options live in :mod:`ecgedge.cli.serve`,
which imports this library; the library never imports the CLI.

PyTriton (``pip install nvidia-pytriton``) bundles the Triton Inference Server binary with only its
Python backend and binds a Python callable as a Triton model. The callable here is the export's own
ONNX Runtime runner (hashes verified; the artefact a CPU server of the generated ``triton/``
repository would serve), bound with that repository's model name, tensors, max batch size and
dynamic batching, so ``ecgedge stream --server`` cannot tell the two servers apart except by their
platform ("python" here, ONNX Runtime there).

Two quirks of PyTriton 0.7 (Triton 2.51) are handled here rather than left to every caller:

- its Python-backend stub loads whichever ``libpython3.X.so`` the dynamic loader finds first; one
  from another build of the same version fails model load with ``'_thread.RLock' object has no
  attribute '_recursion_count'``, so this interpreter's ``LIBDIR`` goes first on ``LD_LIBRARY_PATH``;
- under numpy 2 its stub answers every request with an empty output tensor, so numpy 2 is refused
  (give the server its own environment: see docs/scaling.md).

The server runs until SIGINT or SIGTERM. Its log goes to stderr; once the model is loaded one line
goes to stdout: ``READY grpc://HOST:PORT model NAME precision P``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import sysconfig
from dataclasses import dataclass
from typing import Optional

from ecgedge.config import Backend, Precision, Target, require
from ecgedge.errors import BackendUnavailable, ConfigError
from ecgedge.export.triton import MAX_QUEUE_DELAY_US


@dataclass(frozen=True)
class PyTritonConfig:
    """Which export to serve and where.

    Args:
        export: export folder.
        precision: serve this artefact (default: as the repository of a CPU server would, the
            accepted INT8, else the FP32 reference).
        model_name: the model's name on the server (default: the export's Triton model name).
        host: address the endpoints bind (127.0.0.1: this machine only; 0.0.0.0: the network).
        grpc_port, http_port: the server's ports (Triton's defaults 8001, 8000); metrics are off.
        threads: ONNX Runtime intra-op threads of the callable.
        max_queue_delay_us: the dynamic batcher's longest wait, microseconds.
        workspace: PyTriton's working folder (default: a fresh one under ~/.cache/pytriton, removed on exit).
    """

    export: str
    precision: Optional[Precision] = None
    model_name: Optional[str] = None
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    threads: int = 1
    max_queue_delay_us: int = MAX_QUEUE_DELAY_US
    workspace: Optional[str] = None

    def __post_init__(self):
        object.__setattr__(self, "precision", Precision(self.precision) if self.precision else None)
        for name in ("grpc_port", "http_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name} must be in 1..65535, got {getattr(self, name)}")
        if self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


def serve_export(cfg: PyTritonConfig, *, ready=None) -> None:
    """Load the export, start Triton with it bound as one model, and serve until interrupted.

    ``ready`` is called with the ``READY ...`` line once the model is loaded (default: print it).
    """
    import numpy as np

    # Missing PyTriton first: where it is not installed, how to install it is the one thing to say.
    require("pytriton.triton", extra="pytriton", name="PyTriton", hint="(nvidia-pytriton), in its own venv")
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig
    if int(np.__version__.split(".")[0]) >= 2:
        raise BackendUnavailable(f"PyTriton's Python backend returns empty outputs under numpy {np.__version__}: "
                                 "run the server in an environment with numpy<2 (pip install 'ecgedge[pytriton]' in its own venv)")
    from ecgedge.export.triton import triton_model_config
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime.loader import runner_from_export

    manifest = load_manifest(cfg.export, verify=True)
    mc = triton_model_config(manifest, target=Target.cpu, precision=cfg.precision, model_name=cfg.model_name,
                             max_queue_delay_us=cfg.max_queue_delay_us)
    runner = runner_from_export(manifest.folder, mc.precision, Backend.ort_cpu, threads=cfg.threads, manifest=manifest)
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if libdir and paths[:1] != [libdir]:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *paths])

    @batch
    def infer(**inputs):
        return {mc.output.name: runner.infer(inputs[mc.input.name])}

    # A 2-s exit timeout: requests of a second-long hop are long done, and a stopped server frees its ports at once.
    triton_cfg = TritonConfig(grpc_address=cfg.host, grpc_port=cfg.grpc_port, http_address=cfg.host, http_port=cfg.http_port,
                              allow_metrics=False, exit_timeout_secs=2, log_verbose=0)
    announce = ready or _printer(sys.stdout)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        # PyTriton echoes the server's log to stdout; stderr takes it, stdout carries only the READY line.
        with contextlib.redirect_stdout(sys.stderr), runner, Triton(config=triton_cfg, workspace=cfg.workspace) as triton:
            triton.bind(model_name=mc.name, infer_func=infer,
                        inputs=[Tensor(name=mc.input.name, dtype=np.float32, shape=mc.input.dims)],
                        outputs=[Tensor(name=mc.output.name, dtype=np.float32, shape=mc.output.dims)],
                        config=ModelConfig(max_batch_size=mc.max_batch_size,
                                           batcher=DynamicBatcher(max_queue_delay_microseconds=mc.max_queue_delay_us,
                                                                  preferred_batch_size=list(mc.preferred_batch_sizes))),
                        strict=True)
            announce(f"READY grpc://{cfg.host}:{cfg.grpc_port} model {mc.name} precision {mc.precision.value}")
            triton.serve()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _printer(stream):
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def _interrupt(signum, frame):
    raise KeyboardInterrupt

