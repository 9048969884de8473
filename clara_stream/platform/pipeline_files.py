"""Registration of a declarative pipeline file: checked when registered, not first when a job runs.

A pipeline whose ``app`` is a ``.yaml`` / ``.yml`` under an app root (``check_app`` confines
it) is parsed with :func:`clara_stream.pipeline.parse_pipeline`; every problem comes back in one
InvalidRequestError (HTTP 422) naming the field, the file and the lines. Workers run it through
``clara-stream run <file>`` like any app.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from clara_stream.errors import ConfigError, GraphValidationError
from clara_stream.platform.status import InvalidRequestError


def check_pipeline_file(app: str) -> None:
    """Refuse a malformed pipeline file; anything that is not a pipeline file passes unchanged."""
    from clara_stream.pipeline import is_pipeline_file, parse_pipeline

    if not is_pipeline_file(app):
        return
    try:
        parse_pipeline(app)
    except GraphValidationError as exc:
        raise InvalidRequestError(f"app: expected a valid pipeline file; got {len(exc.errors)} problem(s): "
                                  + "; ".join(exc.errors)) from None
    except ConfigError as exc:
        raise InvalidRequestError(f"app: expected a valid pipeline file; got {exc}") from None


GRAPH_TIMEOUT_S = 120.0


def graph_of(pipeline: Any) -> dict[str, Any]:
    """The graph description of a registered pipeline (its app and overrides), from a bounded subprocess."""
    with tempfile.TemporaryDirectory(prefix="graph-") as tmp:
        out = Path(tmp) / "graph.json"
        cmd = [sys.executable, "-m", "clara_stream.cli", "graph", pipeline.app, "--out", str(out)]
        for item in pipeline.overrides:
            cmd += ["--set", item]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=GRAPH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InvalidRequestError(f"app: expected a graph within {GRAPH_TIMEOUT_S:g} s; got none") from None
        if done.returncode != 0 or not out.is_file():
            raise InvalidRequestError(f"app: expected `clara-stream graph` to describe {pipeline.app!r}; got exit "
                                      f"{done.returncode}: {done.stderr.strip()[-400:]}")
        return json.loads(out.read_text())

