"""Generate the Python modules of ``render.proto`` with grpcio-tools.

Usage: ``python -m clara_stream.render.proto.build [--out DIR]`` (default: this folder).
The generated ``render_pb2.py``, ``render_pb2.pyi`` and ``render_pb2_grpc.py`` are committed;
``tests/render/test_proto.py`` regenerates them into a temporary folder and compares.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "render.proto"
GENERATED = ("render_pb2.py", "render_pb2.pyi", "render_pb2_grpc.py")


def build(out_dir: Path = HERE) -> list[Path]:
    """Run protoc on render.proto into ``out_dir``; return the generated files.

    The gRPC module's ``import render_pb2`` is rewritten to the package-qualified import so the
    modules work inside ``clara_stream.render.proto``.
    """
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(HERE / PROTO),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"protoc: expected exit status 0; got {rc} [{HERE / PROTO}]")
    grpc_file = out_dir / "render_pb2_grpc.py"
    text = grpc_file.read_text()
    text = re.sub(r"^import render_pb2 as", "from clara_stream.render.proto import render_pb2 as", text, flags=re.M)
    grpc_file.write_text(text)
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    for p in build(args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
