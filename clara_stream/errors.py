"""Exception types shared by the core, operators, services and the CLI."""

from __future__ import annotations


class ClaraStreamError(Exception):
    """Base of clara-stream's own errors."""


class UserError(ClaraStreamError):
    """An error the user can fix: printed by the CLI as one line plus a hint, no traceback.

    Parameters
    ----------
    message : str
        What was expected and what was found.
    hint : str, optional
        What to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(UserError, ValueError):
    """Bad app configuration (YAML file, ``--set`` override, unknown key)."""


class AppNotFoundError(UserError, LookupError):
    """No app by that name or path."""


class GraphValidationError(ClaraStreamError, ValueError):
    """The graph was refused before it ran; ``errors`` lists every problem found."""

    def __init__(self, app_name: str, errors: list[str]) -> None:
        self.app_name = app_name
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{app_name}: graph refused before run ({len(self.errors)} problem(s)):\n{lines}")


class ContractViolation(ClaraStreamError, TypeError):
    """A value emitted at run time does not match its port's contract."""


class DicomInputError(ValueError):
    """Bad DICOM content (the family STYLE.md names for DICOM input problems)."""


class RunIncompleteError(UserError, RuntimeError):
    """The graph ran to its end but data that reached an operator was never processed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint="a required input that never fills stalls its operator; make it optional "
                                       "or feed it (`clara-stream validate APP` shows the wiring)")
