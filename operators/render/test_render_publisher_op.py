"""RenderPublisherOp in a tiny graph: the published dataset is registered and renders over gRPC."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from clara_stream.operators.render.render_publisher_op import LABELS_IN, VOLUME_IN, RenderPublisherOp
from clara_stream.render.client import RenderClient, decode
from clara_stream.render.datasets import DatasetRegistry
from clara_stream.render.server import serve
from clara_stream.render.synthetic import phantom

from clara_stream import ports as P
from clara_stream.geometry import ImageGeometry
from clara_stream.runtime import Application, Operator, Port

GEOM = ImageGeometry((-10.0, 5.0, 2.0), (0.9, 0.9, 2.5))


class _VolumeSourceOp(Operator):
    """Emit one phantom volume (geometry metadata) and its labels, then stop."""

    outputs = (Port(P.VOLUME, VOLUME_IN), Port(P.MASK, LABELS_IN))

    def __init__(self, fragment: Any, *args: Any, name: str = "source", **kwargs: Any) -> None:
        self.vol, self.labels = phantom((12, 40, 40))
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        self.emit(op_output, self.vol, P.VOLUME, meta={"geometry": GEOM})
        self.emit(op_output, self.labels, P.MASK)
        self.stop_stream()


class _App(Application):
    def __init__(self, **publisher: Any) -> None:
        self.publisher_kwargs = publisher
        self.publisher: RenderPublisherOp | None = None
        super().__init__({"app": {"scheduler": "greedy", "log_level": "error"}})

    def compose(self) -> None:
        src = _VolumeSourceOp(self)
        self.publisher = RenderPublisherOp(self, name="render_publisher", **self.publisher_kwargs)
        self.add_flow(src, self.publisher, {(P.VOLUME, P.VOLUME), (P.MASK, P.MASK)})


def test_publishes_and_registers(tmp_path: Path) -> None:
    reg = DatasetRegistry([tmp_path], tmp_path / "state")
    server, port, _ = serve(reg, port=0, token="k")
    try:
        app = _App(
            folder=tmp_path / "out" / "seg",
            render_address=f"127.0.0.1:{port}",
            token="k",
            dataset_id="seg1",
            dataset_name="segmentation",
            labels={1: "body", 2: "ribs", 3: "lesion"},
            window=[40, 400],
            require_registration=True,
        )
        app.run()
        assert app.publisher.results[0].registered and app.publisher.results[0].dataset_id == "seg1"
        with RenderClient(f"127.0.0.1:{port}", token="k") as c:
            info = c.info("seg1")
            assert list(info.geometry.shape_zyx) == [12, 40, 40] and info.geometry.spacing_mm.z == pytest.approx(2.5)
            assert [lab.name for lab in info.labels] == ["body", "ribs", "lesion"]
            s = c.open("seg1")
            assert s.view.window.center == 40 and s.view.window.width == 400
            img = decode(c.render(s.session_id).data)
            assert img.std() > 10  # the published voxels render
    finally:
        server.stop(None).wait()
        reg.close()


def test_unreachable_server_keeps_the_folder(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    app = _App(folder=tmp_path / "seg", render_address=f"127.0.0.1:{dead}", timeout_s=30)  # refused at once
    app.run()
    result = app.publisher.results[0]
    assert not result.registered and "UNAVAILABLE" in result.error
    assert (tmp_path / "seg" / "image.mhd").is_file() and (tmp_path / "seg" / "mask.mhd").is_file()
    assert '"registered": false' in (tmp_path / "seg" / "published.json").read_text()
    strict = _App(folder=tmp_path / "seg2", render_address=f"127.0.0.1:{dead}", timeout_s=30,
                    require_registration=True)
    with pytest.raises(ValueError, match="expected the render server to register"):
        strict.run()
    assert (tmp_path / "seg2" / "config.meta").is_file()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "expected folder"),
        ({"folder": "x", "render_address": "nohost"}, "expected render_address as host:port"),
        ({"folder": "x", "window": [1]}, "expected window"),
    ],
)
def test_arguments_are_checked_at_once(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=f"RenderPublisherOp: {match}"):
        _App(**kwargs).compose_graph()


_REPO = Path(__file__).resolve().parents[2]
_MAPPED = {"clara_stream.operators": "operators", "clara_stream.render": "render", "clara_stream.apps": "apps",
           "clara_stream.voice": "voice"}  # fmt: skip


def _module_file(name: str) -> Path | None:
    """Source file of a ``clara_stream.*`` module in this checkout (package-dir mapping), or None."""
    rel = None
    for prefix, folder in _MAPPED.items():
        if name == prefix or name.startswith(prefix + "."):
            rel = Path(folder, *name[len(prefix) + 1 :].split(".")) if name != prefix else Path(folder)
            break
    if rel is None and name.startswith("clara_stream"):
        rel = Path(*name.split("."))
    if rel is None:
        return None
    for cand in (_REPO / rel.with_suffix(".py"), _REPO / rel / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _reachable(start: str) -> set[str]:
    """Every ``clara_stream.*`` module reachable from ``start`` through any import statement (module
    level or inside functions, so lazy imports count), with the parent packages they execute."""
    import ast

    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # parent __init__ modules run too
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("clara_stream")]
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clara_stream"):
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")]
    return {n for n in seen if _module_file(n) is not None}


def test_publisher_reaches_no_operators_or_render_library() -> None:
    """The publisher talks through the client library only: nothing it imports, however deep, reaches
    another operator domain or the render library that reads data through operators (fails if
    ``client.py`` imports ``convert``/``annotate`` again, or ``publish.py`` imports ``datasets``)."""
    reached = _reachable("clara_stream.operators.render.render_publisher_op")
    assert "clara_stream.render.client" in reached  # the walk follows real imports
    loops = sorted(n for n in reached if n.startswith("clara_stream.operators.") and not n.startswith(
        "clara_stream.operators.render"))  # fmt: skip
    heavy = sorted(n for n in reached if n.split(".")[-1] in ("datasets", "loaders", "engine", "views", "convert"))
    assert loops == [] and heavy == []
