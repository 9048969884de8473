"""probe: a one-operator test app whose behaviour the scheduler tests control through --set.

It counts the input files, optionally waits until a gate file exists (``wait_for``: tests open
the gate when they are ready, instead of guessing a sleep), optionally sleeps, optionally copies
its DICOM inputs to the output (``copy_dicom``: outputs to export), optionally fails (a number of
times, counted in a file so retries can be observed), and writes ``<output>/probe.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from clara_stream.runtime import Application, CountCondition, Operator


class ProbeOp(Operator):
    """Runs once: count inputs, sleep ``sleep_s``, fail while the counter is <= ``fail_times``."""

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        input: Path | None,
        output: Path | None,
        sleep_s: float = 0.0,
        fail_times: int = 0,
        counter: str = "",
        wait_for: str = "",
        copy_dicom: bool = False,
        name: str = "probe",
        **kwargs: Any,
    ) -> None:
        if output is None:
            raise ValueError("ProbeOp: expected --output; got none")
        self.input, self.output = input, Path(output)
        self.sleep_s, self.fail_times, self.counter = float(sleep_s), int(fail_times), counter
        self.wait_for = Path(wait_for) if wait_for else None
        self.copy_dicom = bool(copy_dicom)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        attempt = 1
        if self.counter:
            path = Path(self.counter)
            attempt = int(path.read_text()) + 1 if path.exists() else 1
            path.write_text(str(attempt))
        started = time.time()
        while self.wait_for is not None and not self.wait_for.exists():
            time.sleep(0.02)  # the gate is opened by the test; cancel/timeout stop the process
        time.sleep(self.sleep_s)
        if attempt <= self.fail_times:
            raise ValueError(f"ProbeOp: expected attempt > {self.fail_times}; got attempt {attempt}")
        files = sorted(p.name for p in Path(self.input).iterdir()) if self.input else []
        self.output.mkdir(parents=True, exist_ok=True)
        for name in files if self.copy_dicom else []:  # DICOM outputs for the exporter to send
            if name.endswith(".dcm"):
                (self.output / name).write_bytes((Path(self.input) / name).read_bytes())
        (self.output / "probe.json").write_text(
            json.dumps(
                {"files": files, "started": started, "finished": time.time(), "pid": os.getpid(), "attempt": attempt}
            )
        )


class ProbeApp(Application):
    def compose(self) -> None:
        probe = ProbeOp(
            self,
            CountCondition(self, 1),
            input=self.input_path,
            output=self.output_path,
            name="probe",
            **self.kwargs("probe"),
        )
        self.add_operator(probe)
