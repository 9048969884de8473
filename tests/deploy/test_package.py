"""`helm package` (Go SDK) writes `<chart>-<semver>.tgz`, checked with tarfile, not with Helm."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest
import yaml

from .conftest import CHARTS

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


@pytest.mark.parametrize("chart", CHARTS)
def test_package_writes_chart_semver_tgz(helm, charts, tmp_path, chart):
    """Fails if the archive is misnamed, lacks the schema or bundled dependencies, or renders differently."""
    version = yaml.safe_load((charts / chart / "Chart.yaml").read_text())["version"]
    assert SEMVER.match(version)
    archive = helm.package(charts / chart, destination=tmp_path)
    assert archive == str(tmp_path / f"{chart}-{version}.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        meta = yaml.safe_load(tar.extractfile(f"{chart}/Chart.yaml").read())
        assert {f"{chart}/values.yaml", f"{chart}/values.schema.json"} <= names
        deps = {d["name"] for d in meta.get("dependencies", [])}
        under = {n.split("/")[2] for n in names if n.startswith(f"{chart}/charts/")}
        bundled = {u.rsplit("-", 1)[0] if u.endswith(".tgz") else u for u in under}
        assert deps == bundled and deps, (deps, bundled)
    assert meta["name"] == chart and meta["version"] == version
    from_dir = helm.Chart.load(charts / chart).render({}, name="r", namespace="n")
    from_tgz = helm.Chart.load_archive(Path(archive).read_bytes()).render({}, name="r", namespace="n")
    strip = lambda m: {k: v for k, v in m.items() if "secret.yaml" not in k}  # noqa: E731 - random tokens
    assert strip(from_dir) == strip(from_tgz)


def test_package_version_override(helm, charts, tmp_path):
    """The Fleet Command flow bumps the chart version per release: `helm package --version`."""
    archive = helm.package(charts / "clara-renderserver", destination=tmp_path, version="0.2.0", app_version="0.2.0")
    assert archive.endswith("clara-renderserver-0.2.0.tgz")
    with tarfile.open(archive) as tar:
        meta = yaml.safe_load(tar.extractfile("clara-renderserver/Chart.yaml").read())
    assert (meta["version"], meta["appVersion"]) == ("0.2.0", "0.2.0")
