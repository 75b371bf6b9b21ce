"""CLI plumbing shared by the command modules: user errors become one line and an exit code; comma lists."""

from __future__ import annotations

import enum
import functools
import sys
from datetime import datetime
from typing import Any

import typer

from ecgedge.errors import ConfigError, EcgEdgeError, is_storage_error, storage_error


def user_errors(fn):
    """Print an :class:`EcgEdgeError` as one line on stderr and exit with its code; bugs keep their traceback.

    An ``OSError`` about the user's files or disk (it names a file, or is a full disk, a permission or
    a read-only file system: :func:`~ecgedge.errors.is_storage_error`) is such an error too
    ("/proc/forbidden: No such file or directory"); the layers that know what they were writing say
    so themselves (:func:`~ecgedge.errors.storage_error`).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EcgEdgeError as exc:
            _fail(exc)
        except OSError as exc:
            if not is_storage_error(exc):
                raise  # no file named, not a disk or permission errno: a bug, keep the traceback
            _fail(storage_error(exc))
        except KeyboardInterrupt:
            typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(130) from None

    return wrapper


def _fail(exc: EcgEdgeError):
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(exc.exit_code) from None


def parse_choices(text: str, choices: type[enum.Enum], flag: str) -> tuple:
    """Comma-separated values of a str Enum, e.g. ``"torch,ort-cpu"`` -> members, repeats dropped;
    bad ones raise :class:`ConfigError` naming the valid choices."""
    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append(choices(item))
        except ValueError:
            raise ConfigError(f"{flag}: {item!r} is not one of {', '.join(c.value for c in choices)}") from None
    if not out:
        raise ConfigError(f"{flag}: give at least one of {', '.join(c.value for c in choices)}")
    return tuple(dict.fromkeys(out))


def parse_ints(text: str, flag: str) -> tuple[int, ...]:
    """Comma-separated positive integers, e.g. ``"1,8,64"``."""
    try:
        values = tuple(dict.fromkeys(int(x) for x in text.split(",") if x.strip()))
    except ValueError:
        raise ConfigError(f"{flag}: expected comma-separated integers such as 1,8,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{flag}: expected integers >= 1, got {text!r}")
    return values


def choices_option(choices: type[enum.Enum], default: str | None, help: str, *names: str) -> Any:
    """A typer option taking comma-separated values of a str Enum (``--backend ort-cpu,tensorrt``).

    The command receives a tuple of members (``None`` when the option is absent and has no
    default). A bad value prints one line naming the valid choices and exits with 2, as every
    user error does (:func:`user_errors`), before the command runs.
    """

    def to_members(ctx: typer.Context, param: typer.CallbackParam, value: str | None):
        if value is None or ctx.resilient_parsing:
            return value
        try:
            return parse_choices(value, choices, max(param.opts, key=len))
        except ConfigError as exc:
            _fail(exc)

    metavar = "|".join(c.value for c in choices) + ",..."
    return typer.Option(default, *names, help=help, callback=to_members, metavar=metavar)


def default_run_dir(prefix: str) -> str:
    return f"runs/{prefix}-{datetime.now():%Y%m%d-%H%M%S}"


def echo(msg: str = "") -> None:
    typer.echo(msg)


def is_tty() -> bool:
    return sys.stderr.isatty()


def export_folder_argument(help: str = "Export folder with manifest.json (export/NAME), or a shipped model's name (ecgedge models).",
                           *names: str, default: Any = ...) -> Any:
    """A typer argument (or, given ``names``, an option) naming an export folder or a shipped model.

    The command receives the folder's :class:`~pathlib.Path`; a name that is neither an existing
    folder nor a shipped export prints one line and exits with 2.
    """

    def to_folder(ctx: typer.Context, value):
        if value is None or ctx.resilient_parsing:
            return value
        from ecgedge.shipped import resolve_source

        try:
            path = resolve_source(str(value))
            if not path.is_dir():
                raise ConfigError(f"{value}: not an export folder (a folder with manifest.json)")
        except ConfigError as exc:
            _fail(exc)
        return path

    if names:
        return typer.Option(default, *names, help=help, callback=to_folder)
    return typer.Argument(default, help=help, callback=to_folder)
