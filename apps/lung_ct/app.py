"""lung_ct: chest CT → lung segmentation → DICOM SEG + MHD mask, and COVID-like probability → CSV.

loader ─study─▶ selector ─series─▶ volume ─volume─▶ inference ─mask─┬▶ seg_writer
                                     │                              ├▶ mhd_writer
                                     └─────────volume─────────▶ classifier ─report─▶ csv_writer

Clara Deploy's COVID-19 pipeline: the classifier consumes the segmented region (two operators).
"""

from __future__ import annotations

from pathlib import Path

from clara_stream.operators.dicom.dicom_seg_writer_op import DicomSegWriterOp
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.series_to_volume_op import SeriesToVolumeOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp
from clara_stream.operators.volume.mhd_writer_op import MhdWriterOp
from clara_stream.operators.volume.probability_csv_writer_op import ProbabilityCsvWriterOp
from clara_stream.operators.volume.region_classifier_op import RegionClassifierOp
from clara_stream.operators.volume.segmentation_inference_op import SegmentationInferenceOp

from clara_stream import ports as P
from clara_stream.runtime import Application

HERE = Path(__file__).parent


class LungCtApp(Application):
    """loader → selector → volume → inference → {seg, mhd}; volume + mask → classifier → csv."""

    requires = {"input": "DICOM_DIR", "output": "DIR"}

    def compose(self) -> None:
        out, segments = self.output_path, self.config_value("app.segments")
        dicom = dict(uid_root=self.config_value("app.uid_root"), equipment=self.config_value("app.equipment"))
        infer_kw, cls_kw = self.kwargs("inference"), self.kwargs("classifier")
        infer_kw["model"] = HERE / infer_kw.get("model", "model/segmentation")  # relative to the app (or absolute)
        cls_kw["model"] = HERE / cls_kw.get("model", "model/classifier")
        loader = DicomStudyLoaderOp(self, name="loader", path=self.input_path, **self.kwargs("loader"))
        selector = SeriesSelectorOp(self, name="selector", output=out, **self.kwargs("selector"))
        volume = SeriesToVolumeOp(self, name="volume", **self.kwargs("volume"))
        infer = SegmentationInferenceOp(self, name="inference", **infer_kw)
        seg = DicomSegWriterOp(self, name="seg_writer", output=out, segments=segments, **dicom,
                               **self.kwargs("seg_writer"))  # fmt: skip
        mhd = MhdWriterOp(self, name="mhd_writer", output=out, **self.kwargs("mhd_writer"))
        classifier = RegionClassifierOp(self, name="classifier", **cls_kw)
        csv = ProbabilityCsvWriterOp(self, name="csv_writer", output=out, **self.kwargs("csv_writer"))
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, volume, {(P.SERIES, P.SERIES)})
        self.add_flow(volume, infer, {(P.VOLUME, P.VOLUME)})
        self.add_flow(volume, classifier, {(P.VOLUME, P.VOLUME)})
        self.add_flow(infer, seg, {(P.MASK, P.MASK)})
        self.add_flow(infer, mhd, {(P.MASK, P.VOLUME)})
        self.add_flow(infer, classifier, {(P.MASK, P.MASK)})
        self.add_flow(classifier, csv, {(P.REPORT, P.REPORT)})
