"""multi_ai: CT study → volume → split into regions, one model per region → merged labels → SEG + MHD."""

from __future__ import annotations

from pathlib import Path

from clara_stream.operators.dicom.dicom_seg_writer_op import DicomSegWriterOp
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.series_to_volume_op import SeriesToVolumeOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp
from clara_stream.operators.volume.mhd_writer_op import MhdWriterOp
from clara_stream.operators.volume.multi_model_segmentation_op import MultiModelSegmentationOp

from clara_stream import ports as P
from clara_stream.runtime import Application

APPS = Path(__file__).resolve().parent.parent


class MultiAiApp(Application):
    """loader → selector → volume → multi_model (regions × models) → {seg, mhd} writers."""

    requires = {"input": "DICOM_DIR", "output": "DIR"}  # checked by run(); validate/graph need neither

    def compose(self) -> None:
        out = self.output_path
        loader = DicomStudyLoaderOp(self, name="loader", path=self.input_path, **self.kwargs("loader"))
        selector = SeriesSelectorOp(self, name="selector", output=out, **self.kwargs("selector"))
        volume = SeriesToVolumeOp(self, name="volume", **self.kwargs("volume"))
        multi = MultiModelSegmentationOp(self, name="multi_model", base=APPS, **self.kwargs("multi_model"))
        seg = DicomSegWriterOp(
            self,
            name="seg_writer",
            output=out,
            segments=self.config_value("app.segments"),
            uid_root=self.config_value("app.uid_root"),
            equipment=self.config_value("app.equipment"),
            **self.kwargs("seg_writer"),
        )
        mhd = MhdWriterOp(self, name="mhd_writer", output=out, **self.kwargs("mhd_writer"))
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, volume, {(P.SERIES, P.SERIES)})
        self.add_flow(volume, multi, {(P.VOLUME, P.VOLUME)})
        self.add_flow(multi, seg, {(P.MASK, P.MASK)})
        self.add_flow(multi, mhd, {(P.MASK, P.VOLUME)})
