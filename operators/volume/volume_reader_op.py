"""VolumeReaderOp: read one volume from .mhd / .nii / .nii.gz, or from a DICOM folder's first volume series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clara_stream.operators.volume.contracts import VOLUME
from clara_stream.operators.volume.mhd import read_mhd, read_nifti

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Operator, Port


def read_any(path: Path, *, irregular: str = "error", tilt: str = "error") -> tuple[Any, Any, dict[str, Any]]:
    """(array z,y,x, geometry, extra metadata) from a MetaImage/NIfTI file or a DICOM folder."""
    if path.is_file() and path.suffix == ".mhd":
        return (*read_mhd(path), {})
    if path.is_file() and path.name.endswith((".nii", ".nii.gz")):
        return (*read_nifti(path), {})
    if path.is_dir():
        from clara_stream.operators.dicom.selector import select_series
        from clara_stream.operators.dicom.series import series_to_volume
        from clara_stream.operators.dicom.study import scan_study

        result = select_series(scan_study(path), None, sort_by_sop_instance_count=True)
        if not result.selected:
            raise DicomInputError(f"VolumeReaderOp: expected a volume series in {path}; got none "
                                  f"({[d['reasons'] for d in result.decisions]})")  # fmt: skip
        vol = series_to_volume(result.selected[0][1], irregular=irregular, tilt=tilt)
        return vol.array, vol.geometry, {P.DICOM_SOURCE: vol.source}
    raise ValueError(f"VolumeReaderOp: expected a .mhd, .nii, .nii.gz file or a DICOM folder; got {str(path)!r}")


class VolumeReaderOp(Operator):
    """Emit one volume with its geometry, then end the stream.

    Ports
    -----
    volume : (z, y, x) host array; metadata ``geometry`` (and ``dicom_source`` for DICOM input)

    Parameters
    ----------
    path : path
        A .mhd (+ .raw), .nii or .nii.gz file, or a DICOM folder (its largest volume series).
    irregular, tilt : str
        DICOM only: see SeriesToVolumeOp.
    """

    outputs = (Port(P.VOLUME, VOLUME),)

    def __init__(self, fragment: Any, *args: Any, path: Any = None, irregular: str = "error", tilt: str = "error",
                 name: str = "reader", **kwargs: Any) -> None:  # fmt: skip
        self.path, self.options = Path(path) if path is not None else None, dict(irregular=irregular, tilt=tilt)
        self.last: Any = None  # the emitted array (tests prove downstream views share its memory)
        super().__init__(fragment, *args, name=name, **kwargs)

    def start(self) -> None:  # the input is looked at when the graph runs, not when it is validated
        if self.path is None or not self.path.exists():
            raise FileNotFoundError(f"VolumeReaderOp: expected an existing volume file or DICOM folder; got "
                                    f"{str(self.path) if self.path else None!r}")

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        array, geometry, extra = read_any(self.path, **self.options)
        self.last = array
        self.emit(op_output, array, P.VOLUME, meta={P.GEOMETRY: geometry, **extra})
        self.stop_stream()
