"""ProbabilityCsvWriterOp: class probabilities → CSV (``class,probability`` rows)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from clara_stream.operators.volume.region_classifier_op import PROBABILITIES

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class ProbabilityCsvWriterOp(Operator):
    """Write each received report to ``output/filename`` (temporary file, then renamed).

    Ports
    -----
    report : {class name: probability}

    Parameters
    ----------
    output : path
        Output folder (required at run time). ``filename``: a plain name (default ``probabilities.csv``).
    """

    inputs = (Port(P.REPORT, PROBABILITIES),)

    def __init__(self, fragment: Any, *args: Any, output: Any = None, filename: str = "probabilities.csv",
                 name: str = "csv_writer", **kwargs: Any) -> None:  # fmt: skip
        if not filename or Path(filename).name != filename or filename in (".", ".."):
            raise ValueError(f"ProbabilityCsvWriterOp: expected a plain file name; got {filename!r}")
        self.path = Path(output) / filename if output is not None else None
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        if self.path is None:
            raise ValueError("ProbabilityCsvWriterOp: expected output=<folder>; got None")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        report = self.receive(op_input, P.REPORT)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["class", "probability"])
            for name, p in report.items():
                w.writerow([name, f"{float(p):.6f}"])
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
