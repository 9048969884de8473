"""SeriesSelectorOp: apply selection rules to a StudyIndex; emit the selected series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clara_stream.operators.dicom.contracts import SERIES, STUDY
from clara_stream.operators.dicom.selector import load_rules, select_series

from clara_stream import ports as P
from clara_stream.errors import DicomInputError
from clara_stream.runtime import Operator, Port


class SeriesSelectorOp(Operator):
    """Select series with MONAI Deploy rules (+ AND/OR/NOT, instance tags, localizer rejection).

    Ports
    -----
    study : StudyIndex
    series : list of DicomSeries, in selection order (never empty when ``require_selection``)

    Parameters
    ----------
    rules : str, dict or None
        Rules JSON (MONAI Deploy form) or a path to a .json file; None selects every volume series.
    all_matched, sort_by_sop_instance_count, reject_localizers, min_slices
        See :func:`clara_stream.operators.dicom.selector.select_series`.
    output : path, optional
        Folder to write ``selection.json``: the header summary of every study and series, each series'
        decision with reasons, and the skipped files with theirs.
    require_selection : bool
        True (default): selecting nothing is an error; False: an empty list is emitted.

    Raises
    ------
    ValueError
        At construction, for malformed rules.
    DicomInputError
        At run time, when no series is selected and ``require_selection`` (the message lists why, per series).
    """

    inputs = (Port(P.STUDY, STUDY),)
    outputs = (Port(P.SERIES, SERIES),)

    def __init__(self, fragment: Any, *args: Any, rules: Any = None, all_matched: bool = False,
                 sort_by_sop_instance_count: bool = False, reject_localizers: bool = True, min_slices: int = 3,
                 output: Any = None, require_selection: bool = True, name: str = "selector",
                 **kwargs: Any) -> None:  # fmt: skip
        if isinstance(rules, str) and rules.strip().endswith(".json"):  # a rules file (config, read at start-up)
            if not Path(rules.strip()).is_file():
                raise ValueError(f"SeriesSelectorOp: expected rules JSON or an existing .json file; got {rules!r}")
            rules = Path(rules.strip()).read_text()
        self.rules = load_rules(rules)
        if int(min_slices) < 1:
            raise ValueError(f"SeriesSelectorOp: expected min_slices >= 1; got {min_slices}")
        self.options = dict(all_matched=bool(all_matched), sort_by_sop_instance_count=bool(sort_by_sop_instance_count),
                            reject_localizers=bool(reject_localizers), min_slices=int(min_slices))  # fmt: skip
        self.output = Path(output) if output else None
        self.require_selection = bool(require_selection)
        super().__init__(fragment, *args, name=name, **kwargs)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        index = self.receive(op_input, P.STUDY)
        result = select_series(index, self.rules, **self.options)
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            doc = {**result.to_dict(), **index.to_dict()}
            (self.output / "selection.json").write_text(json.dumps(doc, indent=2) + "\n")
        if not result.selected and self.require_selection:
            why = "; ".join(
                f"{d['SeriesDescription'] or d['SeriesInstanceUID']}: {d['reasons']}" for d in result.decisions
            )
            raise DicomInputError(
                f"SeriesSelectorOp: expected at least one series to match the rules; got none of "
                f"{len(result.decisions)} series [{why or 'no image series found'}; skipped {len(index.skipped)} files]"
            )
        self.emit(op_output, [s for _, s in result.selected], P.SERIES)
