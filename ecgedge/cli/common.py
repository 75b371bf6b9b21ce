"""CLI plumbing shared by the command modules: user errors become one line and an exit code."""

from __future__ import annotations

import functools
import sys
from datetime import datetime

import typer

from ecgedge.errors import EcgEdgeError


def user_errors(fn):
    """Print an :class:`EcgEdgeError` as one line on stderr and exit with its code; bugs keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EcgEdgeError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


def default_run_dir(prefix: str) -> str:
    return f"runs/{prefix}-{datetime.now():%Y%m%d-%H%M%S}"


def echo(msg: str = "") -> None:
    typer.echo(msg)


def is_tty() -> bool:
    return sys.stderr.isatty()
