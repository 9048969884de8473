"""Voice fixtures: real espeak-ng utterances (several voices, speeds, pitches), the same with pink
noise mixed by sox at 10 dB SNR, synthesised once per session; the shared dialog manager."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

HERE = Path(__file__).resolve().parent
ESPEAK, SOX = "/usr/bin/espeak-ng", "/usr/bin/sox"
#: (voice, words per minute, pitch): male/female variants, slow to fast, low to high.
VOICES = [("en-us", 150, 50), ("en-gb", 175, 65), ("en-us+m3", 135, 35), ("en-us+f2", 165, 55)]
#: Labels of the render phantom (clara_stream.render.synthetic).
PHANTOM = [(1, "body"), (2, "ribs"), (3, "lesion")]
#: Commands as a user says them in the grammar's words, with the intent each must become.
SPOKEN = [
    ("zoom in", "zoom_in"), ("zoom out a lot", "zoom_out"), ("pan left", "pan"), ("move it right", "pan"),
    ("rotate left", "rotate"), ("next slice", "next_slice"), ("go back three slices", "previous_slice"),
    ("show the coronal view", "set_view"), ("switch to sagittal", "set_view"), ("volume rendering", "set_view"),
    ("lung window", "window_preset"), ("bone window", "window_preset"), ("remove the ribs", "hide_label"),
    ("hide the lesion", "hide_label"), ("bring back the ribs", "show_label"), ("show only the lesion", "show_only"),
    ("fade the body", "label_opacity"), ("show the scale bar", "scale_bar"), ("measure mode", "measure"),
    ("reset the view", "reset"), ("yes", "confirm"), ("cancel", "cancel"),
]  # fmt: skip


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str
    voice: tuple[str, int, int]
    clean: Path
    noisy: Path


def synthesize(text: str, out: Path, voice: tuple[str, int, int]) -> Path:
    """espeak-ng → sox resampled to 16 kHz mono 16-bit (both peers by absolute path)."""
    raw = out.with_suffix(".22k.wav")
    v, speed, pitch = voice
    subprocess.run([ESPEAK, "-v", v, "-s", str(speed), "-p", str(pitch), "-w", str(raw), "--", text], check=True)
    subprocess.run([SOX, str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return out


def rms(path: Path) -> float:
    from clara_stream.voice.audio import read_wav

    return float(np.sqrt(np.mean(read_wav(path).astype(np.float64) ** 2)))


def mix_noise(clean: Path, out: Path, snr_db: float) -> Path:
    """Pink noise from sox's synth (-R: repeatable), scaled so speech/noise RMS is ``snr_db``, mixed by sox."""
    from clara_stream.voice.audio import read_wav

    n = len(read_wav(clean))
    noise = out.with_suffix(".noise.wav")
    subprocess.run([SOX, "-R", "-r", "16000", "-c", "1", "-n", "-b", "16", str(noise), "synth", f"{n}s", "pinknoise",
                    "vol", "0.2"], check=True)  # fmt: skip
    k = rms(clean) / rms(noise) / 10 ** (snr_db / 20)
    subprocess.run([SOX, "-m", "-v", "1", str(clean), "-v", f"{k:.6f}", str(noise), str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def voice_peers(peer) -> tuple[Path, Path]:
    return peer(ESPEAK, ["--version"], "espeak"), peer(SOX, ["--version"], "SoX")


@pytest.fixture(scope="session")
def utterances(voice_peers, tmp_path_factory) -> list[Utterance]:
    """Every SPOKEN command in two voices (rotating through VOICES), clean and at 10 dB SNR."""
    root = tmp_path_factory.mktemp("utterances")
    out = []
    for i, (text, intent) in enumerate(SPOKEN):
        for j in (0, 1):
            voice = VOICES[(i + 2 * j) % len(VOICES)]
            clean = synthesize(text, root / f"u{i}_{j}.wav", voice)
            out.append(Utterance(text, intent, voice, clean, mix_noise(clean, root / f"u{i}_{j}.noisy.wav", 10.0)))
    return out


@pytest.fixture(scope="session")
def dialog():
    from clara_stream.voice.dialog import DialogManager

    return DialogManager()


def matches(r, intent: str, slots: dict) -> bool:
    """Whether dialog result ``r`` is ``intent``, understood, with every expected slot value
    (labels compared as sets of names)."""
    got = r is not None and r.understood and r.intent == intent
    for k, v in slots.items():
        have = r.slots.get(k) if r is not None else None
        if k == "label":
            have, v = sorted(x["name"] for x in have or []), sorted(v)
        got = got and have == v
    return got


@pytest.fixture(scope="session")
def intent_matches():
    return matches


#: Development sets: a held-out line equal to one of theirs (or to a catalogue line) measures nothing new.
DEV_SETS = ("paraphrases.yaml", "heldout_blind.yaml", "dev_phrasings.yaml", "heldout_blind2.yaml")


def load_heldout(name: str, dev: Sequence[str]) -> dict:
    """A held-out set with the repeat rule applied: lines equal (any case) to a catalogue example or
    refuse line, or to a line of the ``dev`` files, are moved to ``repeats``."""
    from clara_stream.voice.catalogue import load

    data = yaml.safe_load((HERE / name).read_text())
    data["labels"] = [(int(k), v) for k, v in data["labels"].items()]
    cat = load()
    seen = {e.lower() for it in cat.intents for e in it.examples} | {e.lower() for e in cat.refuse}
    for other in dev:
        d = yaml.safe_load((HERE / other).read_text())
        seen |= {c[0].lower() for c in d["cases"]} | {q.lower() for q in d.get("unknown", [])}
    data["repeats"] = [c[0] for c in data["cases"] if c[0].lower() in seen]
    data["repeats"] += [q for q in data["unknown"] if q.lower() in seen]
    data["cases"] = [c for c in data["cases"] if c[0].lower() not in seen]
    data["unknown"] = [q for q in data["unknown"] if q.lower() not in seen]
    return data


def spoken_clips(data: dict, root: Path) -> list[tuple[list, Path]]:
    """The spoken subset of a held-out set: (case, noisy clip), line i in voices[i % n], pink noise
    at 10 dB SNR."""
    voices = [tuple(v) for v in data["voices"]]
    out = []
    for i, case in enumerate(c for c in data["cases"] if c[3:] == ["spoken"]):
        clean = synthesize(case[0], root / f"s{i}.wav", voices[i % len(voices)])
        out.append((case, mix_noise(clean, root / f"s{i}.noisy.wav", 10.0)))
    return out


@pytest.fixture(scope="session")
def heldout():
    """The held-out set helpers (``load``, ``clips``, ``misses``) for the blind-set tests."""
    from types import SimpleNamespace

    return SimpleNamespace(load=load_heldout, clips=spoken_clips, misses=spoken_misses)


@pytest.fixture(scope="session")
def whisper_extra():
    """Skipped when the voice-whisper extra is absent, unless CLARA_STREAM_REQUIRE_WHISPER=1."""
    import os

    from clara_stream.voice.whisper import whisper_model_dir

    try:
        whisper_model_dir()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        if os.environ.get("CLARA_STREAM_REQUIRE_WHISPER") == "1":
            pytest.fail(f"whisper declared required: {exc}")
        pytest.skip(str(exc))


def spoken_misses(asr, dialog, clips: list[tuple[list, Path]], labels, tag: str) -> list[tuple]:
    """(said, heard, intent) of each clip ``asr`` + the dialog manager get wrong, from a cold start."""
    from clara_stream.voice.audio import read_wav
    from clara_stream.voice.pipeline import understand

    misses = []
    for i, ((query, intent, slots, _), clip) in enumerate(clips):
        text, r = understand(asr, dialog, read_wav(clip), labels, conversation=f"{tag}{i}")
        if not matches(r, intent, slots):
            misses.append((query, text, r.intent if r else None))
    return misses


@pytest.fixture(scope="session")
def paraphrases() -> dict:
    return yaml.safe_load((HERE / "paraphrases.yaml").read_text())


@pytest.fixture(scope="session")
def speech(voice_peers):
    """The synthesis helpers for tests that make their own clips."""
    from types import SimpleNamespace

    return SimpleNamespace(synthesize=synthesize, mix_noise=mix_noise, rms=rms, phantom=PHANTOM, voices=VOICES)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def render_service(tmp_path_factory):
    """The real render trio (``python -m clara_stream.render.serve``: gRPC + gateway) on free loopback
    ports, serving the labelled phantom (body, ribs, lesion) as dataset ``seed``; stopped by pid."""
    import json
    import os
    import signal
    import sys
    import time

    from clara_stream.render.synthetic import write_seed_dataset

    root = tmp_path_factory.mktemp("voice_render")
    write_seed_dataset(root / "seed", shape_zyx=(24, 96, 80))
    ready = root / "ready.json"
    cmd = [sys.executable, "-m", "clara_stream.render.serve", "--root", str(root), "--state-dir", str(root / "state"),
           "--grpc-port", "0", "--http-port", str(_free_port()), "--register", str(root / "seed"),
           "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists():  # waiting on the state itself: the ready file the server writes
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"render serve did not start: {proc.communicate()[0]}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    yield info
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture()
def render_session(render_service):
    """A fresh axial session on the phantom and a client; closed afterwards."""
    from clara_stream.render.client import RenderClient

    client = RenderClient(render_service["grpc"], timeout_s=60)
    st = client.open(render_service["datasets"][0])
    yield client, st.session_id
    client.close(st.session_id)


def start_cli(args: list[str], ready: Path, timeout_s: float = 120.0):
    """``python -m clara_stream.cli ARGS --ready-file READY`` started and waited on (its ready file)."""
    import json
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "clara_stream.cli", *args, "--ready-file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{args[:2]} did not start: {proc.communicate()[0]}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def stop(proc) -> None:
    import os
    import signal

    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def services(tmp_path_factory):
    """The CLI's process starters, for tests that run ``voice serve`` / ``voice riva-serve``."""
    from types import SimpleNamespace

    return SimpleNamespace(start=start_cli, stop=stop, tmp=tmp_path_factory.mktemp("voice_services"))
