"""StatsSinkOp: collects per-frame statistics and writes a JSON summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clara_stream.operators.common.frames import F32_IMAGE, summarise

from clara_stream import ports as P
from clara_stream.arrays import to_host
from clara_stream.runtime import Operator, Port


class StatsSinkOp(Operator):
    """Record mean/max and the frame index of every frame; write ``summary.json`` when stopped.

    Ports
    -----
    frame : float32 (H, W), host or device, metadata ``frame_info``

    Parameters
    ----------
    output : path, optional
        Folder for ``summary.json`` (created). None keeps results in memory only (``records``).
    """

    inputs = (Port(P.FRAME, F32_IMAGE),)

    def __init__(self, fragment: Any, *args: Any, output: str | Path | None = None, name: str = "sink",
                 **kwargs: Any) -> None:
        self.output = Path(output) if output else None
        if self.output is not None and self.output.exists() and not self.output.is_dir():
            raise ValueError(f"StatsSinkOp: expected an output folder; got a file at {self.output}")
        self.records: list[dict[str, Any]] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        frame = to_host(self.receive(op_input, P.FRAME))
        info = self.get_meta(P.FRAME_INFO)
        index = info.index if info else len(self.records)
        time_s = info.time_s if info else None
        self.records.append({"index": index, "time_s": time_s, "mean": float(frame.mean()), "max": float(frame.max())})

    def stop(self) -> None:
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            summary = {**summarise(self.records), "records": self.records}
            (self.output / "summary.json").write_text(json.dumps(summary, indent=2))
