"""clara_stream.render: dataset + render gRPC services (protocol ``clara_stream.render.v1``), the web
gateway with its touch viewer, the Python client, and the pure render library they share.

See ``render/README.md``. Entry points: ``clara-stream render serve`` and
:class:`clara_stream.render.client.RenderClient`.
"""
