"""Draw an app's graph with Graphviz: operators as boxes, edges labelled with ports and domains."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from clara_stream.errors import UserError


def to_dot(app: Any) -> Any:
    """A ``graphviz.Digraph`` of the composed app."""
    import graphviz

    dot = graphviz.Digraph(app.app_name, graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
                           node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica"},
                           edge_attr={"fontname": "Helvetica", "fontsize": "10"})
    for op in app.operators:
        dot.node(op.name, f"{op.name}\n{type(op).__name__}")
    for e in app.edges:
        port = e.src.output_port(e.out_port) if hasattr(e.src, "output_port") else None
        domain = port.contract.domain if port is not None and port.contract.domain else ""
        label = f"{e.out_port} → {e.in_port}" + (f"\n{domain}" if domain else "")
        dot.edge(e.src.name, e.dst.name, label=label)
    return dot


def write_graph(app: Any, out: Path) -> Path:
    """Write ``out`` (.svg, .png or .dot).

    Raises
    ------
    UserError
        For another suffix, or when the Graphviz ``dot`` program is missing for SVG/PNG.
    """
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png", "dot"):
        raise UserError(f"graph: expected --out ending in .svg, .png or .dot; got {out.name!r}")
    try:
        dot = to_dot(app)
    except ImportError:
        raise UserError("graph: expected the graphviz Python package; got none",
                        hint="pip install 'clara-stream[graph]'") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        out.write_text(dot.source)
        return out
    if shutil.which("dot") is None:
        raise UserError("graph: expected the Graphviz `dot` program on PATH; got none",
                        hint="apt-get install graphviz, or write --out graph.dot")
    out.write_bytes(dot.pipe(format=fmt))
    return out
