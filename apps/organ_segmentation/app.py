"""organ_segmentation: DICOM study → CT series → 3D organ segmentation → SEG, RTSTRUCT, MHD, render dataset."""

from __future__ import annotations

from pathlib import Path

from clara_stream.operators.dicom.dicom_seg_writer_op import DicomSegWriterOp
from clara_stream.operators.dicom.rtstruct_writer_op import RtStructWriterOp
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.series_to_volume_op import SeriesToVolumeOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp
from clara_stream.operators.volume.mhd_writer_op import MhdWriterOp
from clara_stream.operators.volume.render_dataset_writer_op import RenderDatasetWriterOp
from clara_stream.operators.volume.segmentation_inference_op import SegmentationInferenceOp

from clara_stream import ports as P
from clara_stream.runtime import Application

HERE = Path(__file__).parent


class OrganSegmentationApp(Application):
    """loader → selector → volume → inference → {seg, rtstruct, mhd, render} writers."""

    requires = {"input": "DICOM_DIR", "output": "DIR"}  # checked by run(); validate/graph need neither

    def compose(self) -> None:
        out, segments = self.output_path, self.config_value("app.segments")
        dicom = dict(uid_root=self.config_value("app.uid_root"), equipment=self.config_value("app.equipment"))
        infer_kw = self.kwargs("inference")
        infer_kw["model"] = HERE / infer_kw.get("model", "model")  # relative to the app folder
        loader = DicomStudyLoaderOp(self, name="loader", path=self.input_path, **self.kwargs("loader"))
        selector = SeriesSelectorOp(self, name="selector", output=out, **self.kwargs("selector"))
        volume = SeriesToVolumeOp(self, name="volume", **self.kwargs("volume"))
        infer = SegmentationInferenceOp(self, name="inference", **infer_kw)
        seg = DicomSegWriterOp(
            self, name="seg_writer", output=out, segments=segments, **dicom, **self.kwargs("seg_writer")
        )
        rt = RtStructWriterOp(
            self, name="rtstruct_writer", output=out, segments=segments, **dicom, **self.kwargs("rtstruct_writer")
        )
        mhd = MhdWriterOp(self, name="mhd_writer", output=out, **self.kwargs("mhd_writer"))
        render = RenderDatasetWriterOp(
            self, name="render_writer", output=out, labels=segments, **self.kwargs("render_writer")
        )
        self._render = render
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, volume, {(P.SERIES, P.SERIES)})
        self.add_flow(volume, infer, {(P.VOLUME, P.VOLUME)})
        self.add_flow(volume, render, {(P.VOLUME, P.VOLUME)})
        for writer in (seg, rt):
            self.add_flow(infer, writer, {(P.MASK, P.MASK)})
        self.add_flow(infer, mhd, {(P.MASK, P.VOLUME)})
        self.add_flow(infer, render, {(P.MASK, P.MASK)})

    def run(self) -> None:
        """Run the graph; a failed run leaves no render dataset behind (the render service would serve it)."""
        try:
            super().run()
        except BaseException:
            render = getattr(self, "_render", None)
            if render is not None:
                render.discard()
            raise
