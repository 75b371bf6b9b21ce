"""``ecgedge serve``: serve an export through PyTriton's Triton server on this machine's CPU (:mod:`ecgedge.serve.pytriton_server`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import user_errors
from ecgedge.config import Precision
from ecgedge.serve.pytriton_server import PyTritonConfig, serve_export

D = PyTritonConfig  # defaults live in one place: the config's


@user_errors
def serve_cmd(
    export: Path = typer.Argument(..., exists=True, file_okay=False, help="Export folder with manifest.json (export/NAME)."),
    precision: Optional[Precision] = typer.Option(None, help="Artefact served (default: the accepted int8, else fp32)."),
    model_name: Optional[str] = typer.Option(None, help="Model name on the server (default: the export's Triton model name)."),
    host: str = typer.Option(D.host, help="Address to bind (0.0.0.0 to serve the network)."),
    grpc_port: int = typer.Option(D.grpc_port, min=1, max=65535, help="gRPC port (what ecgedge stream --server uses)."),
    http_port: int = typer.Option(D.http_port, min=1, max=65535, help="HTTP port."),
    threads: int = typer.Option(D.threads, min=1, help="ONNX Runtime threads of the inference callable."),
    max_queue_delay_us: int = typer.Option(D.max_queue_delay_us, min=0, help="Dynamic batcher's longest wait, microseconds."),
):
    """Serve an export folder on this machine's CPU through PyTriton's Triton server, until Ctrl-C.

    Needs PyTriton (the pytriton extra of ecgedge, nvidia-pytriton), which pins numpy<2: give it a venv of its own.
    """
    serve_export(PyTritonConfig(str(export), precision=precision, model_name=model_name, host=host, grpc_port=grpc_port,
                                http_port=http_port, threads=threads, max_queue_delay_us=max_queue_delay_us))


def main() -> None:
    """``python -m ecgedge.cli.serve``: the command on its own (without the rest of the CLI)."""
    typer.run(serve_cmd)


if __name__ == "__main__":
    main()
