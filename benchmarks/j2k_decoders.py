"""Every JPEG 2000 decoder installable here, on the real data, against the one we use (imagecodecs).

Is any decoder markedly cheaper than imagecodecs' OpenJPEG with pixel-identical output? The answer
decides the cold J2K tile target of issue 11 (≥ 2× tiffslide) and the J2K volume target of issue 13
(≥ 1.8× SimpleITK): both readers there decode with OpenJPEG already.

Data (``../shared/data``):
  * tiles: every whole level-0 tile of the TCGA J2K slide (``tcga-cr-7395-01a-01-ts1.svs``, Aperio 33005),
    read raw through tifffile's ``FileHandle`` at ``pages[0].dataoffsets``;
  * slices: every frame of the TotalSegmentator J2K CT series ``benchmarks/volume_pipeline.py`` reads.

Per decoder and data set: CPU ms per item (process CPU, all threads; p50 over items of each item's
median over repeats), wall ms p50, the total CPU over all items against imagecodecs with one thread
as a range over repeats, pixel equality with imagecodecs (max |diff|), library and codec versions,
licence. Repeats are interleaved: each item is decoded by every decoder in a rotating order.
Anchors that decode with the same codec are measured alongside: tiffslide ``read_region`` (tiles)
and SimpleITK ``ReadImage`` of one file (slices; includes the DICOM parse, like our reader's own).
For scale, not a reading of the stored files: OpenJPH's HTJ2K decode of the same pixels transcoded
once, losslessly. First (``--only tile-path`` alone): the cold J2K tile route's CPU by stage, and
the JPEG encoders at the same settings.

Decoders not installed are listed as such. Measurement-only decoders (none is a dependency):
``pip install --target /tmp/j2k-measure --no-deps glymur lxml python-gdcm blosc2-grok``, then run
with ``PYTHONPATH=/tmp/j2k-measure``. blosc2-grok is AGPL-3.0 (Grok 11): measured, never shipped; its
library needs two blosc2 symbols it never calls here, given by a stub the script compiles with gcc.

    python benchmarks/j2k_decoders.py [--repeats 5] [--only decoders|tile-path] [--json out.json]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # OpenCV warns per J2K codestream (no colour space box)
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SLIDE = SHARED / "wsi_svs_histolab/tests/fixtures/svs-images/tcga-cr-7395-01a-01-ts1.svs"
CT = SHARED / "totalsegmentator_ct_dicom/tests/reference_files/example_ct_dicom"


def licence(dist: str) -> str:
    """The distribution's declared licence (expression, first line of the field, or classifier)."""
    try:
        md = metadata.metadata(dist)
    except metadata.PackageNotFoundError:
        return "?"
    lic = md.get("License-Expression") or (md.get("License") or "").split("\n")[0]
    if not lic or len(lic) > 40:
        lic = next((c.split(" :: ")[-1] for c in md.get_all("Classifier") or [] if c.startswith("License")), lic)
    return lic[:40] or "?"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def whole_tiles(page) -> list[tuple[int, int, int]]:
    """(file tile index, x, y) of every whole level-0 tile, row by row (edge tiles are padded)."""
    t = page.tilewidth
    cols, rows = -(-page.imagewidth // t), -(-page.imagelength // t)
    return [(ty * cols + tx, tx * t, ty * t) for ty in range(rows - 1) for tx in range(cols - 1)]


def tile_codestreams() -> tuple[list[bytes], object]:
    import tifffile

    tif = tifffile.TiffFile(str(SLIDE))
    page, fh = tif.pages[0], tif.filehandle
    streams = []
    for i, _, _ in whole_tiles(page):
        fh.seek(page.dataoffsets[i])
        streams.append(fh.read(page.databytecounts[i]))
    return streams, tif


def slice_codestreams() -> tuple[list[bytes], list[Path]]:
    import pydicom
    from pydicom.encaps import generate_frames

    files = sorted(p for p in CT.iterdir() if p.is_file())
    frames = [next(generate_frames(pydicom.dcmread(p).PixelData, number_of_frames=1)) for p in files]
    return frames, files


def grok_decoder(
    streams: list[bytes], shape: tuple[int, ...], dtype: str, threads: int
) -> Callable[[int], np.ndarray] | None:
    """Grok 11 through blosc2-grok's block decoder (interleaved components into ``out``)."""
    import importlib.util

    spec = importlib.util.find_spec("blosc2_grok")  # found, not imported: its import needs blosc2 itself
    if spec is None or spec.origin is None:
        return None
    stub = Path(tempfile.gettempdir()) / "clara_stream_blosc2_stub.so"
    if not stub.exists():
        src = stub.with_suffix(".c")
        src.write_text('const char* blosc2_error_string(int e){return "";}\nint b2nd_deserialize_meta(){return -1;}\n')
        subprocess.run(["/usr/bin/gcc", "-O2", "-shared", "-fPIC", str(src), "-o", str(stub)], check=True)
    ctypes.CDLL(str(stub), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(Path(spec.origin).parent / "libblosc2_grok.so"))
    if not getattr(lib, "_clara_init", False):
        lib.blosc2_grok_init.argtypes = [ctypes.c_uint32, ctypes.c_bool]
        lib.blosc2_grok_init(threads, False)  # grk_initialize: one thread pool for the process
        lib._clara_init = True
    fn = lib.blosc2_grok_decoder
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, ctypes.c_uint8,
                   ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip

    def decode(i: int) -> np.ndarray:
        out = np.empty(shape, dtype)
        if fn(streams[i], len(streams[i]), out.ctypes.data, out.nbytes, 0, None, None) != out.nbytes:
            raise RuntimeError(f"j2k_decoders: expected Grok to decode item {i}")
        return out

    return decode


def decoders(streams: list[bytes], shape: tuple[int, ...], dtype: str, scratch: Path) -> dict[str, tuple]:
    """name -> (decode, versions, licence); decoders that are not installed map to None."""
    import cv2
    import imagecodecs
    from PIL import Image, features

    out: dict[str, tuple | None] = {}
    ic = imagecodecs.version(dict)
    ic_v = f"imagecodecs {ic['imagecodecs']}, OpenJPEG {ic['openjpeg']}"
    for n in (1, 2):
        out[f"imagecodecs jpeg2k_decode numthreads={n}{' (ours)' if n == 1 else ''}"] = (
            lambda i, n=n: imagecodecs.jpeg2k_decode(streams[i], numthreads=n),
            ic_v,
            licence("imagecodecs"),
        )
    try:
        import openjpeg
        from openjpeg.utils import get_openjpeg_version

        v = f"pylibjpeg-openjpeg {openjpeg.__version__}, OpenJPEG {'.'.join(map(str, get_openjpeg_version()))}"
        out["pylibjpeg-openjpeg decode"] = (lambda i: openjpeg.decode(streams[i]), v, licence("pylibjpeg-openjpeg"))
    except ImportError:
        out["pylibjpeg-openjpeg decode"] = None

    def cv(i: int) -> np.ndarray:
        a = cv2.imdecode(np.frombuffer(streams[i], np.uint8), cv2.IMREAD_UNCHANGED)
        return a[:, :, ::-1] if a.ndim == 3 else a

    cv_v = next((ln.split("(ver ")[-1].rstrip(")") for ln in cv2.getBuildInformation().splitlines()
                 if "JPEG 2000" in ln), "?")  # fmt: skip
    out["OpenCV imdecode"] = (cv, f"OpenCV {cv2.__version__}, OpenJPEG {cv_v}", licence("opencv-python-headless"))
    out["Pillow Image.open"] = (lambda i: np.asarray(Image.open(io.BytesIO(streams[i]))),
                                f"Pillow {version('pillow')}, OpenJPEG {features.version('jpg_2000')}",
                                licence("pillow"))  # fmt: skip
    try:
        import glymur

        glymur.set_option("lib.num_threads", 1)
        paths = [scratch / f"{i}.j2k" for i in range(len(streams))]  # glymur reads files: written before timing
        for path, data in zip(paths, streams, strict=True):
            path.write_bytes(data)
        out["glymur over Debian libopenjp2"] = (
            lambda i: glymur.Jp2k(str(paths[i]))[:],
            f"glymur {glymur.__version__}, OpenJPEG {glymur.version.openjpeg_version} (libopenjp2-7)",
            f"{licence('glymur')} / BSD-2-Clause")  # fmt: skip
    except ImportError:
        out["glymur over Debian libopenjp2"] = None
    ht = [imagecodecs.htj2k_encode(imagecodecs.jpeg2k_decode(x), level=0) for x in streams]  # lossless, untimed
    v = f"OpenJPH {ic['openjph']} (in imagecodecs)"
    out["not the stored files: OpenJPH htj2k_decode after a one-off lossless HTJ2K transcode"] = (
        lambda i: imagecodecs.htj2k_decode(ht[i]), v, licence("imagecodecs"))  # fmt: skip
    grok = grok_decoder(streams, shape, dtype, threads=1)
    note = None if dtype == "uint8" else "n/a: the plugin keeps prec // 8 = 1 byte of each 12-bit sample"
    out["Grok 11 via blosc2-grok, 1 thread (measure only)"] = (
        None if grok is None else (grok, f"blosc2-grok {version('blosc2-grok')}, Grok 11.0", "AGPL-3.0: not usable",
                                   note))  # fmt: skip
    return out


def anchors_tiles(tif, shape) -> dict[str, tuple]:
    import tiffslide

    slide = tiffslide.TiffSlide(str(SLIDE))
    t, where = tif.pages[0].tilewidth, whole_tiles(tif.pages[0])

    def read(i: int) -> np.ndarray:
        return slide.read_region(where[i][1:], 0, (t, t), as_array=True)[:, :, :3]

    return {"tiffslide read_region (anchor of issue 11; same codec)":
            (read, f"tiffslide {version('tiffslide')}", licence("tiffslide"))}  # fmt: skip


def anchors_slices(files: list[Path]) -> dict[str, tuple]:
    import pydicom
    import SimpleITK as sitk

    intercept = [float(pydicom.dcmread(p, stop_before_pixels=True).get("RescaleIntercept", 0)) for p in files]
    out = {"SimpleITK ReadImage per file (anchor of issue 13; GDCM, DICOM parse included)":
           (lambda i: sitk.GetArrayFromImage(sitk.ReadImage(str(files[i])))[0] - intercept[i],  # stored values
            f"SimpleITK {sitk.Version.VersionString()}", licence("simpleitk"))}  # fmt: skip
    try:
        import gdcm

        def read(i: int) -> np.ndarray:
            r = gdcm.ImageReader()
            r.SetFileName(str(files[i]))
            if not r.Read():
                raise RuntimeError(f"j2k_decoders: expected GDCM to read {files[i]}")
            img = r.GetImage()
            buf = img.GetBuffer().encode("utf-8", errors="surrogateescape")
            return np.frombuffer(buf, np.uint16).reshape(img.GetDimension(1), img.GetDimension(0))

        v = f"python-gdcm {gdcm.Version.GetVersion()}"
        out["python-gdcm ImageReader per file (DICOM parse included)"] = (read, v, licence("python-gdcm"))
    except ImportError:
        out["python-gdcm ImageReader per file (DICOM parse included)"] = None
    return out


def measure(name: str, n: int, rivals: dict[str, tuple | None], repeats: int) -> list[dict]:
    """Interleaved repeats; per decoder: CPU/wall per item, total-CPU ratio range, pixel equality."""
    live = {k: v for k, v in rivals.items() if v is not None}
    ref_name = next(iter(live))
    ref = [live[ref_name][0](i) for i in range(n)]
    diff = {}
    for k, (fn, *_, note) in ((k, (*v, None)[:4]) for k, v in live.items()):
        d = 0
        for i in range(n if note is None else 0):
            a = np.asarray(fn(i))
            if a.shape != ref[i].shape:
                d = f"shape {a.shape} vs {ref[i].shape}"
                break
            d = max(d, int(np.abs(a.astype(ref[i].dtype).astype(np.int64) - ref[i].astype(np.int64)).max()))
        diff[k] = d if note is None else note
    names = list(live)
    cpu = {k: np.zeros((repeats, n)) for k in names}
    wall = {k: np.zeros((repeats, n)) for k in names}
    for r in range(repeats):
        for i in range(n):
            shift = (r + i) % len(names)
            for k in names[shift:] + names[:shift]:
                fn = live[k][0]
                c0, w0 = time.process_time(), time.perf_counter()
                fn(i)
                wall[k][r, i] = time.perf_counter() - w0
                cpu[k][r, i] = time.process_time() - c0
    rows = []
    base = cpu[ref_name].sum(axis=1)
    print(f"\n{name}: {n} items x {repeats} interleaved repeats (reference: {ref_name})")
    print(f"{'decoder':<72} {'CPU ms p50':>10} {'CPU mean':>9} {'wall p50':>9} {'ref CPU / its CPU':>19} "
          f"{'max|diff|':>9}  versions | licence")  # fmt: skip
    for k in names:
        per_item_cpu = np.median(cpu[k], axis=0) * 1e3
        per_item_wall = np.median(wall[k], axis=0) * 1e3
        ratios = base / cpu[k].sum(axis=1)
        rows.append({"case": f"{name}: {k}", "metric": "CPU ms p50 per item",  # run_all's protocol, then details
                     "value": round(float(np.median(per_item_cpu)), 3), "anchor": f"{ref_name} (CPU, all items)",
                     "anchor_value": None, "ratio": round(float(np.median(ratios)), 3),
                     "data": name, "decoder": k, "cpu_ms_p50": round(float(np.median(per_item_cpu)), 3),
                     "cpu_ms_mean": round(float(per_item_cpu.mean()), 3),
                     "wall_ms_p50": round(float(np.median(per_item_wall)), 3),
                     "cpu_ratio_min": round(float(ratios.min()), 3), "cpu_ratio_max": round(float(ratios.max()), 3),
                     "max_abs_diff": diff[k], "versions": live[k][1], "licence": live[k][2]})  # fmt: skip
        rr = rows[-1]
        print(
            f"{k:<72} {rr['cpu_ms_p50']:>10.2f} {rr['cpu_ms_mean']:>9.2f} {rr['wall_ms_p50']:>9.2f} "
            f"{rr['cpu_ratio_min']:>8.2f}–{rr['cpu_ratio_max']:<10.2f} {diff[k]!s:>9}  {live[k][1]} | {live[k][2]}"
        )
    for k, v in rivals.items():
        if v is None:
            print(f"{k:<72} not installed")
            rows.append({"case": f"{name}: {k}", "metric": "not installed", "value": None, "anchor": "",
                         "anchor_value": None, "ratio": None})  # fmt: skip
    return rows


def tile_path(repeats: int) -> list[dict]:
    """The cold J2K tile route stage by stage (read, decode, colour swap, JPEG encode), then the
    other JPEG encoders at the same settings (quality 85, 4:2:0, baseline) on the same pixels."""
    import cv2
    import imagecodecs
    import tifffile
    import tiffslide
    from PIL import Image

    tif = tifffile.TiffFile(str(SLIDE))
    page, fh = tif.pages[0], tif.filehandle
    t, tiles = page.tilewidth, whole_tiles(page)
    slide = tiffslide.TiffSlide(str(SLIDE))
    q = [cv2.IMWRITE_JPEG_QUALITY, 85]

    def pil(rgb: np.ndarray) -> bytes:
        b = io.BytesIO()
        Image.fromarray(rgb).save(b, "JPEG", quality=85)
        return b.getvalue()

    stages = (
        "file read",
        "tifffile page.decode (J2K)",
        "RGB→BGR cvtColor",
        "cv2.imencode q85",
        "alt: imagecodecs jpeg8_encode(RGB) q85",
        "alt: Pillow save q85",
        "anchor: tiffslide read_region",
    )
    cpu = {k: [] for k in stages}
    same = {k: True for k in stages[4:6]}
    for _ in range(repeats):
        for i, x, y in tiles:
            got = {}
            for k in stages:
                c0 = time.process_time()
                if k == stages[0]:
                    fh.seek(page.dataoffsets[i])
                    got[k] = fh.read(page.databytecounts[i])
                elif k == stages[1]:
                    got[k] = page.decode(got[stages[0]], i)[0][0, :, :, :3]
                elif k == stages[2]:
                    got[k] = cv2.cvtColor(np.ascontiguousarray(got[stages[1]]), cv2.COLOR_RGB2BGR)
                elif k == stages[3]:
                    got[k] = cv2.imencode(".jpg", got[stages[2]], q)[1].tobytes()
                elif k == stages[4]:
                    got[k] = bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(got[stages[1]]), level=85))
                elif k == stages[5]:
                    got[k] = pil(np.ascontiguousarray(got[stages[1]]))
                else:
                    slide.read_region((x, y), 0, (t, t), as_array=True)
                cpu[k].append((time.process_time() - c0) * 1e3)
            for k in same:
                same[k] &= got[k] == got[stages[3]]
    slide.close()
    tif.close()
    route = sum(np.mean(cpu[k]) for k in stages[:4])
    print(f"\ncold J2K tile route, stage by stage ({len(tiles)} whole level-0 tiles x {repeats}; CPU ms per tile)")
    rows = []
    for k in stages:
        share = f"{100 * np.mean(cpu[k]) / route:5.1f} % of the route" if k in stages[:4] else ""
        eq = "" if k not in same else f"bytes equal to cv2.imencode's: {same[k]}"
        print(f"  {k:<42} p50 {np.median(cpu[k]):6.3f}  mean {np.mean(cpu[k]):6.3f}  {share}{eq}")
        rows.append({"case": f"cold J2K tile route (TCGA): {k}", "metric": "CPU ms mean per tile",
                     "value": round(float(np.mean(cpu[k])), 3), "anchor": "", "anchor_value": None, "ratio": None,
                     "cpu_ms_p50": round(float(np.median(cpu[k])), 3),
                     **({"bytes_equal": same[k]} if k in same else {})})  # fmt: skip
    print(
        f"  route total (mean) {route:.3f} ms; tiffslide read_region + the same encode (mean) "
        f"{np.mean(cpu[stages[6]]) + np.mean(cpu[stages[2]]) + np.mean(cpu[stages[3]]):.3f} ms"
    )
    return rows


def decoder_tables(repeats: int) -> list[dict]:
    """The two tables: every decoder on the slide's tiles, then on the CT's slices."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="j2kdec-") as tmp:
        streams, tif = tile_codestreams()
        page = tif.pages[0]
        shape = (page.tilelength, page.tilewidth, 3)
        rivals = decoders(streams, shape, "uint8", Path(tmp))
        rivals.update(anchors_tiles(tif, shape))
        name = f"TCGA J2K slide, level-0 {page.tilewidth}² tiles (compression {page.compression})"
        rows += measure(name, len(streams), rivals, repeats)
        tif.close()
        frames, files = slice_codestreams()
        (Path(tmp) / "ct").mkdir()
        rivals = decoders(frames, (512, 512), "uint16", Path(tmp) / "ct")
        rivals.update(anchors_slices(files))
        rows += measure(f"TotalSegmentator J2K CT, {len(frames)} slices 512² (12-bit)", len(frames), rivals, repeats)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", choices=("decoders", "tile-path"), default=None)
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    print(f"load average {Path('/proc/loadavg').read_text().split()[:3]}, cores {len(os.sched_getaffinity(0))}")
    rows = [] if args.only == "decoders" else tile_path(args.repeats)
    if args.only != "tile-path":
        rows += decoder_tables(args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "j2k_decoders", "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
