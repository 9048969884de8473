"""digital_pathology: slide → overlapping tiles → Canny edges in blue → pyramidal TIFF → render dataset.

tiler ─frame─▶ filter ─overlay─▶ stitcher ─paths─▶ register

Clara Deploy's pathology pipeline (tiling → filtering → stitching → registering): rows of tiles
stream through the graph, the stitcher writes level 0 while later rows are still being read, and
the result is registered with the render service to be viewed beside the original.
"""

from __future__ import annotations

from clara_stream.operators.pathology.canny_op import CannyEdgeOp
from clara_stream.operators.pathology.pyramid_writer_op import PyramidWriterOp
from clara_stream.operators.pathology.slide_register_op import SlideRegisterOp
from clara_stream.operators.pathology.tile_source_op import SlideTileSourceOp

from clara_stream import ports as P
from clara_stream.runtime import Application


class DigitalPathologyApp(Application):
    """tiler → filter → stitcher → register."""

    requires = {"input": "SLIDE", "output": "DIR"}

    def compose(self) -> None:
        tiler = SlideTileSourceOp(self, name="tiler", path=self.input_path, **self.kwargs("tiler"))
        canny = CannyEdgeOp(self, name="filter", **self.kwargs("filter"))
        stitcher = PyramidWriterOp(self, name="stitcher", output=self.output_path, **self.kwargs("stitcher"))
        self.register = SlideRegisterOp(self, name="register", **self.kwargs("register"))
        self.add_flow(tiler, canny, {(P.FRAME, P.FRAME)})
        self.add_flow(canny, stitcher, {(P.OVERLAY, P.OVERLAY)})
        self.add_flow(stitcher, self.register, {(P.PATHS, P.PATHS)})
