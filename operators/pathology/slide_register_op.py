"""SlideRegisterOp: register a written slide with the render service (the pipeline's "registering")."""

from __future__ import annotations

import json
import logging
from typing import Any

from clara_stream.operators.pathology.contracts import PATHS, REPORT
from clara_stream.render.publish import PublishResult, register

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port

log = logging.getLogger(__name__)


class SlideRegisterOp(Operator):
    """Register each received slide as a render dataset; writes ``<slide>.published.json`` beside it.

    Ports
    -----
    paths : [slide path] (from PyramidWriterOp)
    report : {folder, dataset_id, registered, error} (optional)

    Parameters
    ----------
    render_address : str
        ``host:port`` of the render gRPC server; empty = write only (register later).
    token : str
        Bearer token of the render server.
    dataset_id, dataset_name : str
        Id and display name (the id defaults to the server's choice).
    require_registration : bool
        True: a refused or failed registration stops the app (the slide stays on disk).
    """

    inputs = (Port(P.PATHS, PATHS),)
    outputs = (Port(P.REPORT, REPORT, optional=True),)

    def __init__(self, fragment: Any, *args: Any, render_address: str = "", token: str = "",
                 dataset_id: str = "", dataset_name: str = "edges", require_registration: bool = False,
                 timeout_s: float = 30.0, name: str = "register", **kwargs: Any) -> None:  # fmt: skip
        if render_address and (":" not in render_address or not render_address.rsplit(":", 1)[1].isdigit()):
            raise ValueError(f"SlideRegisterOp: expected render_address as host:port; got {render_address!r}")
        if float(timeout_s) <= 0:
            raise ValueError(f"SlideRegisterOp: expected timeout_s > 0; got {timeout_s}")
        self.render_address, self.token = render_address, token
        self.dataset_id, self.dataset_name = dataset_id, dataset_name
        self.require_registration, self.timeout_s = bool(require_registration), float(timeout_s)
        self.results: list[PublishResult] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        for path in self.receive(op_input, P.PATHS):
            result = PublishResult(path, self.dataset_id, False, "no render_address (written only)")
            if self.render_address:
                result = register(path, self.render_address, self.token, self.dataset_id, self.dataset_name,
                                  self.timeout_s)  # fmt: skip
                if not result.registered and self.require_registration:
                    raise ValueError(f"SlideRegisterOp: expected the render server to register {path}; "
                                     f"got {result.error}")  # fmt: skip
            self.results.append(result)
            path.with_name(path.name + ".published.json").write_text(json.dumps(result.to_dict(), indent=2))
            log.info("SlideRegisterOp: %s", result.to_dict())
            self.emit(op_output, result.to_dict(), P.REPORT)
