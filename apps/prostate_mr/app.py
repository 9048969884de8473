"""prostate_mr: MR study → series → prostate segmentation → RTSTRUCT + mask image series + render dataset.

loader ─study─▶ selector ─series─▶ volume ─volume─▶ inference ─mask─┬▶ rtstruct_writer
                                     └──────────volume──────────┐    ├▶ mask_series_writer
                                                                └────┴▶ render_writer

Clara Deploy's prostate pipeline: the RT Structure Set and the binary mask series are new series
of the original study (geometry equal to the source); the render dataset holds both volumes.
"""

from __future__ import annotations

from pathlib import Path

from clara_stream.operators.dicom.mask_series_writer_op import MaskSeriesWriterOp
from clara_stream.operators.dicom.rtstruct_writer_op import RtStructWriterOp
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.series_to_volume_op import SeriesToVolumeOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp
from clara_stream.operators.volume.render_dataset_writer_op import RenderDatasetWriterOp
from clara_stream.operators.volume.segmentation_inference_op import SegmentationInferenceOp

from clara_stream import ports as P
from clara_stream.runtime import Application

HERE = Path(__file__).parent


class ProstateMrApp(Application):
    """loader → selector → volume → inference → {rtstruct, mask series, render} writers."""

    requires = {"input": "DICOM_DIR", "output": "DIR"}

    def compose(self) -> None:
        out, segments = self.output_path, self.config_value("app.segments")
        dicom = dict(uid_root=self.config_value("app.uid_root"), equipment=self.config_value("app.equipment"))
        infer_kw = self.kwargs("inference")
        infer_kw["model"] = HERE / infer_kw.get("model", "model")  # relative to the app folder (or absolute)
        loader = DicomStudyLoaderOp(self, name="loader", path=self.input_path, **self.kwargs("loader"))
        selector = SeriesSelectorOp(self, name="selector", output=out, **self.kwargs("selector"))
        volume = SeriesToVolumeOp(self, name="volume", **self.kwargs("volume"))
        infer = SegmentationInferenceOp(self, name="inference", **infer_kw)
        rt = RtStructWriterOp(self, name="rtstruct_writer", output=out, segments=segments, **dicom,
                              **self.kwargs("rtstruct_writer"))  # fmt: skip
        masks = MaskSeriesWriterOp(self, name="mask_series_writer", output=out, **dicom,
                                   **self.kwargs("mask_series_writer"))  # fmt: skip
        render = RenderDatasetWriterOp(self, name="render_writer", output=out, labels=segments,
                                       **self.kwargs("render_writer"))  # fmt: skip
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, volume, {(P.SERIES, P.SERIES)})
        self.add_flow(volume, infer, {(P.VOLUME, P.VOLUME)})
        self.add_flow(volume, render, {(P.VOLUME, P.VOLUME)})
        for writer in (rt, masks, render):
            self.add_flow(infer, writer, {(P.MASK, P.MASK)})
