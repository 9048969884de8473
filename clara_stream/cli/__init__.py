"""``clara-stream``: the one command-line entry (typer + rich).

Core commands live in :mod:`clara_stream.cli.core`; domain groups (dicom, models, loadgen, jobs,
render, voice, bench) are modules of this package exposing ``register(app)`` and are added when
present, so a slim install without an extra still has a working CLI.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import typer

from clara_stream.cli.core import app, report_error

GROUPS = ("bench", "dicom", "models", "loadgen", "jobs", "render", "voice", "package", "catalogue", "worker",
          "pipelines", "platform_grpc")


def _register_groups() -> None:
    for group in GROUPS:
        name = f"clara_stream.cli.{group}"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def _interrupt_code() -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the graph was stopped and outputs closed either way)."""
    from clara_stream.runtime import stack

    return 143 if stack.last_stop_signal == 15 else 130


def _say_interrupted() -> None:
    from clara_stream.cli.core import err_console

    err_console.print("interrupted: the graph was stopped; outputs written so far are kept")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call ``main([...])``)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    previous = os.environ.get("CLARA_STREAM_DEBUG")
    if debug:
        os.environ["CLARA_STREAM_DEBUG"] = "1"  # read by report_error; restored below for in-process callers
    try:
        return _main(argv)
    finally:
        if previous is None:
            os.environ.pop("CLARA_STREAM_DEBUG", None)
        else:
            os.environ["CLARA_STREAM_DEBUG"] = previous


def _main(argv: list[str] | None) -> int:
    try:
        _register_groups()
        result = app(args=argv, prog_name="clara-stream", standalone_mode=False)
        if isinstance(result, int):  # click returns typer.Exit codes when not standalone
            if result == 130:  # ... and turns Ctrl-C into 130 without a word
                _say_interrupted()
                return _interrupt_code()
            return result
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _say_interrupted()
        return _interrupt_code()
    except Exception as exc:  # noqa: BLE001 - the CLI's single place that turns errors into exit codes
        return report_error(exc)
    return 0


def app_main(package: str | None) -> None:
    """``python -m clara_stream.apps.NAME [options]``: the same as ``clara-stream run NAME [options]``."""
    name = (package or "").rsplit(".", 1)[-1]
    raise SystemExit(main(["run", name, *sys.argv[1:]]))


__all__ = ["app", "app_main", "main"]
