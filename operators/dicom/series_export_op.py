"""SeriesExportOp: write the selected series' files into an output folder, one folder per series."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.contracts import SERIES

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "series"


class SeriesExportOp(Operator):
    """Hard-link (or copy, across file systems) each selected series into ``output/<folder>/<series>``.

    Ports
    -----
    series : list of DicomSeries (may be empty: nothing is written)

    Parameters
    ----------
    output : path
        Parent folder (required).
    folder : str
        Sub-folder for the series (default ``selected``).
    link : bool
        Try hard links first (default True); the source files are never modified.
    """

    inputs = (Port(P.SERIES, SERIES),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, folder: str = "selected", link: bool = True,
                 name: str = "exporter", **kwargs: Any) -> None:  # fmt: skip
        self.root, self.link = Path(output) / folder if output is not None else None, bool(link)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # an output is needed to run, not to validate the graph
        if self.root is None:
            raise ValueError("SeriesExportOp: expected output=<folder>; got None")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        for series in self.receive(op_input, P.SERIES):
            number = series.get("SeriesNumber", "")
            dest = self.root / _safe(f"{number}_{series.description}_{series.series_uid[-12:]}")
            dest.mkdir(parents=True, exist_ok=True)
            for inst in series.instances:
                target = dest / f"{_safe(inst.sop_instance_uid) or _safe(inst.path.name)}.dcm"
                if target.exists():
                    continue
                try:
                    if not self.link:
                        raise OSError("copy requested")
                    os.link(inst.path, target)
                except OSError:
                    shutil.copy2(inst.path, target)
