"""Small pieces shared by the akd and aktool command lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from altcraft import config as cfg

# LSB init-script exit codes, used by both CLIs
EXIT_OK, EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_UNKNOWN, EXIT_UNIMPLEMENTED, EXIT_NOT_CONFIGURED = 0, 1, 3, 4, 3, 6

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", envvar=cfg.CONFIG_ENV, show_envvar=True,
    help=f"main.json to use (default {cfg.DEFAULT_CONFIG_PATH}).",
)


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def load_config(path: Path | None, code: int = EXIT_NOT_CONFIGURED, quiet: bool = False) -> tuple[cfg.MainConfig, Path]:
    """Loads main.json or exits with `code`, listing every problem found."""
    resolved = cfg.resolve_path(path)
    try:
        config, report = cfg.load(resolved)
    except cfg.ConfigError as exc:
        raise fail(str(exc), code) from None
    if not quiet:
        for warning in report.warnings:
            typer.echo(f"warning: {resolved}: {warning}", err=True)
    return config, resolved.resolve()


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
