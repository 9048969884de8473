"""Operators that hand pipeline results to the render service."""

from clara_stream.operators.render.render_publisher_op import RenderPublisherOp

__all__ = ["RenderPublisherOp"]
