"""MultiModelSegmentationOp: one model per region of a volume, merged into one label map (multi-AI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.contracts import LABELS, VOLUME
from clara_stream.operators.volume.regions import parse_regions, segment_regions
from clara_stream.operators.volume.segment import ModelCard

from clara_stream import ports as P
from clara_stream.inference import create_backend
from clara_stream.runtime import Operator, Port


class MultiModelSegmentationOp(Operator):
    """Split → infer per region (each with its own model and backend) → merge, like Holoscan's multi-AI op.

    Ports
    -----
    volume : (z, y, x) host array in HU, metadata ``geometry``
    mask : uint8 (z, y, x) merged labels on the input grid; metadata ``regions`` (name → voxel box)

    Parameters
    ----------
    regions : list of mappings
        ``{name, model (folder with model.json), box_fraction [[z0,y0,x0],[z1,y1,x1]] | box_mm [[x,y,z],[x,y,z]],
        label_map {model value: output value}, backend}``; earlier regions take precedence.
    base : path
        Folder that relative model paths start from.
    overlap : float
        Sliding-window overlap.
    threads : int, optional
        Intra-op threads of the local backends.
    """

    inputs = (Port(P.VOLUME, VOLUME),)
    outputs = (Port(P.MASK, LABELS),)

    def __init__(self, fragment: Any, *args: Any, regions: Any = None, base: Any = ".", overlap: float = 0.25,
                 threads: int | None = None, name: str = "multi_model", **kwargs: Any) -> None:  # fmt: skip
        self.regions = parse_regions(regions or [], Path(base))
        self.cards = {r.name: ModelCard.load(r.model) for r in self.regions}
        self.backends: dict[str, Any] = {}  # created in start(): validate loads no model
        self.threads, self.overlap = threads, float(overlap)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        for r in self.regions:
            key = "torchscript" if r.backend == "torch" else "onnx"
            self.backends[r.name] = create_backend(r.backend, r.model / self.cards[r.name].files[key],
                                                   threads=self.threads)  # fmt: skip

    def _predictor(self, region: str) -> Any:
        import torch

        backend = self.backends[region]
        return lambda x: torch.from_numpy(next(iter(backend.infer(x.numpy()).values())))

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        vol = self.receive(op_input, P.VOLUME)
        geom = self.get_meta(P.GEOMETRY)
        predictors = {r.name: self._predictor(r.name) for r in self.regions}
        merged, boxes = segment_regions(vol, geom, self.regions, predictors, self.cards, overlap=self.overlap)
        self.emit(op_output, merged, P.MASK, meta={P.GEOMETRY: geom, P.REGIONS: boxes})

    def stop(self) -> None:
        for b in self.backends.values():
            b.close()
