"""`clara-stream apps` / `apps show NAME`: the catalogue is each app's metadata.json (+ model.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clara_stream.cli import main
from clara_stream.runtime import list_apps

APPS = Path(__file__).resolve().parents[1] / "apps"


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_apps_lists_every_app_with_its_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    entries = {e["name"]: e for e in _json(capsys, "apps")}
    assert sorted(entries) == list_apps()
    for name in ("digital_pathology", "prostate_mr", "organ_segmentation"):
        meta = json.loads((APPS / name / "metadata.json").read_text())["application"]
        e = entries[name]
        assert (e["inputs"], e["outputs"], e["operators"], e["resources"]) == (
            meta["inputs"], meta["outputs"], meta["operators"], meta["requirements"])  # fmt: skip
    assert entries["digital_pathology"]["sample"] == "slide" and entries["prostate_mr"]["sample"] == "pelvis_mr"


def test_apps_show_adds_the_model_card(capsys: pytest.CaptureFixture[str]) -> None:
    e = _json(capsys, "apps", "show", "prostate_mr")
    card = json.loads((APPS / "prostate_mr" / "model" / "model.json").read_text())
    assert e["model"]["labels"] == card["labels"] == {"1": "prostate"}
    assert e["model"]["metrics"]["dice_heldout"] == card["metrics"]["dice_heldout"]
    assert main(["apps", "show", "prostate_mr"]) == 0
    assert "rtstruct.dcm" in capsys.readouterr().out


def test_apps_show_names_the_choices_for_an_unknown_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apps", "show", "no_such_app"]) != 0
    err = capsys.readouterr().err
    assert "expected an app in" in err and "'no_such_app'" in err and "prostate_mr" in err
