"""RenderPublisherOp: write an app's output volume (+ labels) as a render dataset and register it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clara_stream.render.publish import PublishResult, register, write_seed

from clara_stream import ports as P
from clara_stream.arrays import to_host
from clara_stream.contracts import Contract, Device, Kind
from clara_stream.geometry import ImageGeometry
from clara_stream.runtime import Operator, Port

log = logging.getLogger(__name__)

#: Any (z, y, x) scalar volume with LPS geometry (what the volume pipeline emits).
VOLUME_IN = Contract(
    kind=Kind.TENSOR, dtypes=("int16", "int32", "uint8", "uint16", "float32"), ndim=3, layout="ZYX",
    domain="volume/*", device=Device.ANY, meta=(P.GEOMETRY,),
    description="(z, y, x) volume, LPS geometry in metadata 'geometry'",
)  # fmt: skip
#: uint8 labels on the same grid.
LABELS_IN = Contract(
    kind=Kind.TENSOR, dtypes=("uint8",), ndim=3, layout="ZYX", domain="mask/labels", device=Device.ANY,
    description="uint8 (z, y, x) labels on the volume's grid",
)  # fmt: skip
REPORT_OUT = Contract(
    kind=Kind.OBJECT, domain="render/published", pytype=dict, description="{folder, dataset_id, registered, error}"
)


class RenderPublisherOp(Operator):
    """Publish each received volume (and label map) to the render service (the seed's "Registering").

    Ports
    -----
    volume : (z, y, x) host or device array, metadata ``geometry`` (ImageGeometry, LPS)
    mask : optional uint8 (z, y, x) labels on the same grid

    A sink: each result (folder, dataset id, registered, error) is kept in ``results``, logged, and
    written to ``<folder>/published.json``.

    Parameters
    ----------
    folder : path
        Dataset folder to write (required); must lie under a root of the render server to register.
    render_address : str
        ``host:port`` of the render gRPC server; empty = write only (register later).
    token : str
        Bearer token of the render server.
    dataset_id, dataset_name : str
        Id (``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``) and display name; the id defaults to the server's choice.
    labels : mapping value → name
        Label names shown in the viewer.
    window : [center, width], optional
        Initial grey window.
    require_registration : bool
        True: a failed registration stops the app (the folder is still written). Default False.

    Raises
    ------
    ValueError
        At construction for missing/invalid arguments; at run time for a mask of another shape or
        (with ``require_registration``) a refused registration.
    """

    inputs = (Port(P.VOLUME, VOLUME_IN), Port(P.MASK, LABELS_IN, optional=True))

    def __init__(self, fragment: Any, *args: Any, folder: str | Path | None = None, render_address: str = "",
                 token: str = "", dataset_id: str = "", dataset_name: str = "dataset",
                 labels: Mapping[Any, str] | None = None, window: Any = None,
                 require_registration: bool = False, timeout_s: float = 30.0, name: str = "render_publisher",
                 **kwargs: Any) -> None:  # fmt: skip
        if not folder:
            raise ValueError("RenderPublisherOp: expected folder=<dataset folder>; got none")
        if render_address and (":" not in render_address or not render_address.rsplit(":", 1)[1].isdigit()):
            raise ValueError(f"RenderPublisherOp: expected render_address as host:port; got {render_address!r}")
        if window is not None and (len(window) != 2 or float(window[1]) <= 0):
            raise ValueError(f"RenderPublisherOp: expected window [center, width > 0]; got {window!r}")
        if float(timeout_s) <= 0:
            raise ValueError(f"RenderPublisherOp: expected timeout_s > 0; got {timeout_s}")
        self.folder = Path(folder)
        self.render_address, self.token = render_address, token
        self.dataset_id, self.dataset_name = dataset_id, dataset_name
        self.labels = {int(k): str(v) for k, v in (labels or {}).items()}
        self.window = (float(window[0]), float(window[1])) if window is not None else None
        self.require_registration, self.timeout_s = bool(require_registration), float(timeout_s)
        self.results: list[PublishResult] = []
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        volume = to_host(self.receive(op_input, P.VOLUME))
        mask = self.receive(op_input, P.MASK)
        mask = to_host(mask) if mask is not None else None
        geometry = self.get_meta(P.GEOMETRY)
        if not isinstance(geometry, ImageGeometry):
            raise TypeError(f"RenderPublisherOp: expected metadata 'geometry' as ImageGeometry; got {type(geometry)}")
        if mask is not None and mask.shape != volume.shape:
            raise ValueError(f"RenderPublisherOp: expected mask shape {volume.shape} (the volume's); got {mask.shape}")
        write_seed(self.folder, volume, geometry, mask, self.labels, name=self.dataset_name, window=self.window)
        result = PublishResult(self.folder, self.dataset_id, False, "no render_address (written only)")
        if self.render_address:
            result = register(
                self.folder, self.render_address, self.token, self.dataset_id, self.dataset_name, self.timeout_s
            )
            if not result.registered and self.require_registration:
                raise ValueError(
                    f"RenderPublisherOp: expected the render server to register {self.folder}; got {result.error}"
                )
        self.results.append(result)
        (self.folder / "published.json").write_text(json.dumps(result.to_dict(), indent=2))
        log.info("RenderPublisherOp: %s", result.to_dict())
