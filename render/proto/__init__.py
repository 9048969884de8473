"""Protocol ``clara_stream.render.v1``: messages and gRPC stubs generated from render.proto."""

from clara_stream.render.proto import render_pb2, render_pb2_grpc

__all__ = ["render_pb2", "render_pb2_grpc"]
