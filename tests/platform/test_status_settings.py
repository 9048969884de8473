"""The one exception → HTTP/DIMSE table, and service settings from the environment."""

from __future__ import annotations

import sqlite3

import pytest
from pydantic import ValidationError

from clara_stream.cli import main
from clara_stream.errors import DicomInputError
from clara_stream.platform import status as S
from clara_stream.platform.settings import PlatformSettings
from clara_stream.platform.validate import DatasetMismatchError


@pytest.mark.parametrize(
    "exc, http, dimse",
    [
        (S.NotFoundError("x"), 404, S.DIMSE_PROCESSING_FAILURE),
        (S.ConflictError("x"), 409, S.DIMSE_PROCESSING_FAILURE),
        (S.InvalidRequestError("x"), 422, S.DIMSE_PROCESSING_FAILURE),
        (S.SopClassRefusedError("x"), 422, S.DIMSE_SOP_CLASS_NOT_SUPPORTED),
        (DicomInputError("x"), 422, S.DIMSE_CANNOT_UNDERSTAND),
        (S.PeerError("x"), 502, S.DIMSE_PROCESSING_FAILURE),
        (FileNotFoundError("disk"), 507, S.DIMSE_OUT_OF_RESOURCES),  # via OSError
        (S.OutOfSpaceError("watermark"), 507, S.DIMSE_OUT_OF_RESOURCES),
        (sqlite3.OperationalError("database or disk is full"), 507, S.DIMSE_OUT_OF_RESOURCES),  # not 0x0110
        (DatasetMismatchError("pixel data"), 422, S.DIMSE_DATASET_MISMATCH),
        (ValueError("x"), 400, S.DIMSE_CANNOT_UNDERSTAND),
        (RuntimeError("x"), 500, S.DIMSE_PROCESSING_FAILURE),
    ],
)
def test_status_table(exc, http, dimse):
    code = S.status_for(exc)
    assert (code.http, code.dimse) == (http, dimse)


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CLARA_STREAM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLARA_STREAM_MAX_CONCURRENT_JOBS", "3")
    monkeypatch.setenv("CLARA_STREAM_KEEP_ABORTED", "true")
    s = PlatformSettings()
    assert (s.data_dir, s.max_concurrent_jobs, s.keep_aborted, s.tls_enabled) == (tmp_path, 3, True, False)
    monkeypatch.setenv("CLARA_STREAM_AE_TITLE", "WAY_TOO_LONG_FOR_AN_AE")
    with pytest.raises(ValidationError, match="ae_title"):
        PlatformSettings()


def test_serve_refuses_bad_settings_with_a_clear_line(tmp_path, capsys):
    rc = main(["dicom", "serve", "--data-dir", str(tmp_path), "--max-associations", "0"])
    assert rc != 0
    assert "max_associations" in capsys.readouterr().err
