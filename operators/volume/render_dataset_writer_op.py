"""RenderDatasetWriterOp: write the render service's seed layout (config.meta, config_render.json, .mhd)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.contracts import LABELS, VOLUME
from clara_stream.operators.volume.render_dataset import discard_render_dataset, write_render_dataset

from clara_stream import ports as P
from clara_stream.arrays import to_host
from clara_stream.runtime import Operator, Port


class RenderDatasetWriterOp(Operator):
    """Write original image + mask + config files into ``output/<folder>``.

    Ports
    -----
    volume : (z, y, x) image, metadata ``geometry``
    mask : uint8 (z, y, x) labels on the same grid

    Parameters
    ----------
    output : path
        Parent folder (required).
    folder : str
        Dataset folder name (default ``render``); written as ``<folder>.partial`` and renamed when
        complete. :meth:`discard` removes it again (an app calls it when its run fails).
    labels : mapping value → name, or the app's ``segments`` mapping (value → {label, ...})
    window : [center, width]
        Initial display window (default CT soft tissue 40/400).
    """

    inputs = (Port(P.VOLUME, VOLUME), Port(P.MASK, LABELS))

    def __init__(self, fragment: Any, *args: Any, output: Any = None, folder: str = "render", labels: Any = None,
                 window: Any = (40.0, 400.0), name: str = "render_writer", **kwargs: Any) -> None:  # fmt: skip
        labels = labels or {}
        self.labels = {int(k): (v["label"] if isinstance(v, dict) else str(v)) for k, v in labels.items()}
        if len(tuple(window)) != 2:
            raise ValueError(f"RenderDatasetWriterOp: expected window [center, width]; got {window!r}")
        self.folder = Path(output) / folder if output is not None else None
        self.window = (float(window[0]), float(window[1]))
        self.published: Path | None = None  # what this run wrote (an app discards it when the run fails)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # an output is needed to run, not to validate the graph
        if self.folder is None:
            raise ValueError("RenderDatasetWriterOp: expected output=<folder>; got None")

    def discard(self) -> bool:
        """Remove the dataset this run published (True if there was one)."""
        done = self.published is not None and discard_render_dataset(self.published)
        self.published = None
        return bool(done)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        image = to_host(self.receive(op_input, P.VOLUME))
        mask = to_host(self.receive(op_input, P.MASK))
        src = self.get_meta(P.DICOM_SOURCE)
        self.published = self.folder
        write_render_dataset(
            self.folder, image, self.get_meta(P.GEOMETRY), mask, self.labels, window=self.window,
            name=(src.series.description if src else "") or self.folder.name,
            modality=src.series.modality if src else "", series_uid=src.series.series_uid if src else "",
        )  # fmt: skip
