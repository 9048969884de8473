"""hello_stream: the smallest clara-stream app — source → scale → sink."""

from __future__ import annotations

from clara_stream.operators.common.scale_op import ScaleOp
from clara_stream.operators.common.source_op import ArraySourceOp
from clara_stream.operators.common.stats_sink_op import StatsSinkOp

from clara_stream import ports as P
from clara_stream.runtime import Application


class HelloStreamApp(Application):
    """Synthetic frames are scaled and summarised into ``<output>/summary.json``."""

    def compose(self) -> None:
        source = ArraySourceOp(self, name="source", **self.kwargs("source"))
        scale = ScaleOp(self, name="scale", **self.kwargs("scale"))
        sink = StatsSinkOp(self, name="sink", output=self.output_path, **self.kwargs("sink"))
        self.add_flow(source, scale, {(P.FRAME, P.FRAME_IN)})
        self.add_flow(scale, sink, {(P.FRAME_OUT, P.FRAME)})
