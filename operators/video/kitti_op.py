"""KittiWriterOp: one DeepStream-style KITTI text file per frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.video.contracts import DETECTIONS
from clara_stream.operators.video.kitti import clear_kitti, write_kitti

from clara_stream import ports as P
from clara_stream.runtime import Operator, Port


class KittiWriterOp(Operator):
    """Write ``<folder>/<frame index, 6 digits>.txt`` for every frame, empty when nothing was found.

    Ports
    -----
    detections : Detections, metadata ``frame_info`` (its index names the file)

    Parameters
    ----------
    folder : path
        Output folder, e.g. ``<output>/kitti`` (required; created).
    digits : int
        Zero padding of the frame number (DeepStream: 6).
    prefix : str
        Optional file-name prefix (e.g. a stream id).

    Notes
    -----
    A run owns the KITTI files in its folder: ``start()`` creates the folder and removes files
    named as this writer names them (``<prefix><digits>.txt`` and their ``.tmp``), left by an
    earlier run, so the folder holds exactly this run's frames; other files are left alone. Each
    file is written whole (temporary file + rename), so a fault never leaves a partial file, and
    a failed write (disk full) removes its temporary file and names the file in the error.
    """

    inputs = (Port(P.DETECTIONS, DETECTIONS),)

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        folder: str | Path | None = None,
        digits: int = 6,
        prefix: str = "",
        name: str = "kitti",
        **kwargs: Any,
    ) -> None:
        if folder is None or str(folder) == "":
            raise ValueError("KittiWriterOp: expected folder=<output folder>; got none")
        if not 1 <= int(digits) <= 12 or "/" in prefix:
            raise ValueError(
                f"KittiWriterOp: expected 1 <= digits <= 12 and a prefix without '/'; got {digits}, {prefix!r}"
            )
        self.folder, self.digits, self.prefix = Path(folder), int(digits), prefix
        self.written = 0
        self.cleared = 0
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.cleared += clear_kitti(self.folder, digits=self.digits, prefix=self.prefix)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        det = self.receive(op_input, P.DETECTIONS)
        info = self.get_meta(P.FRAME_INFO)
        index = info.index if info is not None else self.written
        write_kitti(self.folder, index, det, digits=self.digits, prefix=self.prefix)
        self.written += 1
