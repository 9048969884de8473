"""volume_crop: a volume (MHD, NIfTI or DICOM folder) → crop box (zero-copy view) → MHD out."""

from __future__ import annotations

from clara_stream.operators.volume.crop_op import CropOp
from clara_stream.operators.volume.mhd_writer_op import MhdWriterOp
from clara_stream.operators.volume.volume_reader_op import VolumeReaderOp

from clara_stream import ports as P
from clara_stream.runtime import Application


class VolumeCropApp(Application):
    """reader → crop (a view of the reader's buffer, no copy) → writer."""

    requires = {"input": "VOLUME (.mhd/.nii.gz/DICOM dir)", "output": "DIR"}  # checked by run(), not validate

    def compose(self) -> None:
        reader = VolumeReaderOp(self, name="reader", path=self.input_path, **self.kwargs("reader"))
        crop = CropOp(self, name="crop", **self.kwargs("crop"))
        writer = MhdWriterOp(self, name="writer", output=self.output_path, **self.kwargs("writer"))
        self.add_flow(reader, crop, {(P.VOLUME, P.VOLUME_IN)})
        self.add_flow(crop, writer, {(P.VOLUME_OUT, P.VOLUME)})
