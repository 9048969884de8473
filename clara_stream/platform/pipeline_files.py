"""Registration of a declarative pipeline file: checked when registered, not first when a job runs.

A pipeline whose ``app`` is a ``.yaml`` / ``.yml`` under an app root (``check_app`` confines
it) is parsed with :func:`clara_stream.pipeline.parse_pipeline`; every problem comes back in one
InvalidRequestError (HTTP 422) naming the field, the file and the lines. Workers run it through
``clara-stream run <file>`` like any app.
"""

from __future__ import annotations

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
