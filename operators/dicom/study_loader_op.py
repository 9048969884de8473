"""DicomStudyLoaderOp: index a DICOM folder (or files) into studies and series, once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.contracts import STUDY
from clara_stream.operators.dicom.study import scan_study

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

log = logging.getLogger(__name__)


class DicomStudyLoaderOp(Operator):
    """Header-only scan of a folder or list of files; emits one StudyIndex, then ends its stream.

    Ports
    -----
    study : StudyIndex (studies → series → instances, plus skipped files with reasons)

    Parameters
    ----------
    path : str, Path or list of them
        DICOM folder(s) or files (required).
    recursive : bool
        Descend into sub-folders (default True).

    Raises
    ------
    FileNotFoundError
        At construction, if a path does not exist.
    """

    outputs = (Port(P.STUDY, STUDY),)

    def __init__(self, fragment: Any, *args: Any, path: Any = None, recursive: bool = True,
                 name: str = "loader", **kwargs: Any) -> None:  # fmt: skip
        paths = [Path(p) for p in (path if isinstance(path, list | tuple) else [path])] if path is not None else None
        self.paths, self.recursive = paths, bool(recursive)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # the inputs are looked at when the graph runs, not when it is validated
        if self.paths is None:
            raise ValueError("DicomStudyLoaderOp: expected path=<DICOM folder or files>; got None")
        missing = [str(p) for p in self.paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"DicomStudyLoaderOp: expected existing paths; got missing {missing}")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        index = scan_study(self.paths, recursive=self.recursive)
        for s in index.skipped:
            log.info("%s: skipped %s: %s", self.name, s.path, s.reason)
        self.emit(op_output, index, P.STUDY)
        self.stop_stream()
