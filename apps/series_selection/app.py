"""series_selection: DICOM folder → headers + rules → selection.json and the selected series' files."""

from __future__ import annotations

from clara_stream.operators.dicom.series_export_op import SeriesExportOp
from clara_stream.operators.dicom.series_selector_op import SeriesSelectorOp
from clara_stream.operators.dicom.study_loader_op import DicomStudyLoaderOp

from clara_stream import ports as P
from clara_stream.runtime import Application


class SeriesSelectionApp(Application):
    """loader → selector (writes selection.json) → exporter (selected/<series>/...)."""

    requires = {"input": "DICOM_DIR", "output": "DIR"}  # checked by run(); validate/graph need neither

    def compose(self) -> None:
        loader = DicomStudyLoaderOp(self, name="loader", path=self.input_path, **self.kwargs("loader"))
        selector = SeriesSelectorOp(self, name="selector", output=self.output_path, **self.kwargs("selector"))
        exporter = SeriesExportOp(self, name="exporter", output=self.output_path, **self.kwargs("exporter"))
        self.add_flow(loader, selector, {(P.STUDY, P.STUDY)})
        self.add_flow(selector, exporter, {(P.SERIES, P.SERIES)})
