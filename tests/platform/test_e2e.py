"""End to end: dcmtk storescu → ORGANSEG → organ_segmentation → SEG at dcmtk storescp and Orthanc."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from .conftest import NODELAY_ENV, wait_until

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.mark.slow
def test_storescu_to_organseg_to_storescp_and_orthanc(serve_factory, storescp, orthanc, ct_small, dcmtk):
    seed = {
        "sources": [{"name": "modality", "aeTitle": "STORESCU", "hostIp": "127.0.0.1"}],
        "destinations": [
            {"name": "dcmtk", "aeTitle": storescp.ae_title, "hostIp": "127.0.0.1", "port": storescp.port},
            {"name": "orthanc", "aeTitle": orthanc.ae_title, "hostIp": "127.0.0.1", "port": orthanc.dicom_port},
        ],
        "aes": [
            {
                "name": "organseg",
                "aeTitle": "ORGANSEG",
                "timeout": 1,
                "workflows": ["organ_segmentation"],
                "destinations": ["dcmtk", "orthanc"],
            }
        ],
    }
    serve = serve_factory(seed).start()
    api = httpx.Client(base_url=serve.url, timeout=10)
    assert api.get("/config/destination/cecho/orthanc").json()["success"] is True
    pipe = api.get("/pipelines/organ_segmentation").json()
    assert pipe["cpuMemoryMb"] == 2048  # from the app's metadata.json

    r = subprocess.run(
        [
            dcmtk.storescu,
            "-aet",
            "STORESCU",
            "-aec",
            "ORGANSEG",
            "127.0.0.1",
            str(serve.dicom_port),
            "+sd",
            str(ct_small),
        ],
        env=NODELAY_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr

    job = wait_until(lambda: next(iter(api.get("/jobs").json()), None), "job created", 30)
    assert job["pipeline"] == "organ_segmentation" and job["source"] == "dicom:ORGANSEG"
    assert len(list(Path(job["inputDir"]).iterdir())) == 16
    inputs = api.get(f"/jobs/{job['id']}/instances").json()
    sent = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in ct_small.iterdir()}
    assert {i["sop_uid"] for i in inputs} == sent and {i["calling_ae"] for i in inputs} == {"STORESCU"}
    job = wait_until(
        lambda: (j := api.get(f"/jobs/{job['id']}").json())["status"] in ("succeeded", "failed") and j,
        "job finished",
        300,
    )
    assert job["status"] == "succeeded", api.get(f"/jobs/{job['id']}/log").text[-3000:]

    seg_path = Path(job["outputDir"]) / "seg.dcm"
    seg = dcmread(seg_path, stop_before_pixels=True)
    assert seg.SOPClassUID == SEG_STORAGE
    source_series = dcmread(next(ct_small.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source_series

    def exported():
        res = api.get("/results", params={"job_id": job["id"]}).json()
        seg_res = [x for x in res if x["sopUid"] == seg.SOPInstanceUID]
        return seg_res and {e["destination"]: e["state"] for e in seg_res[0]["exports"]} == {
            "dcmtk": "sent",
            "orthanc": "sent",
        }

    wait_until(exported, "SEG exported to both destinations", 120)
    got = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in storescp.files()}
    assert seg.SOPInstanceUID in got
    assert dcmread(got[seg.SOPInstanceUID]).PixelData == dcmread(seg_path).PixelData

    ids = orthanc.api("/instances")
    tags = [orthanc.api(f"/instances/{i}/simplified-tags") for i in ids]
    segs = [t for t in tags if t.get("SOPInstanceUID") == seg.SOPInstanceUID]
    assert len(segs) == 1 and segs[0]["SOPClassUID"] == SEG_STORAGE
