"""``clara-stream doctor`` reports which voice backends are usable by running each one on a spoken
command, so a corrupt model or a Riva server that is down shows as unusable, not as installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np


def _rows(checks) -> dict[str, tuple[bool, str]]:
    return {name: (ok, detail) for name, ok, detail in checks}


def test_the_embedded_backends_are_run_and_reported(voice_peers, whisper_extra) -> None:
    from clara_stream.voice import health

    rows = _rows(health.checks())
    assert rows["voice tts espeak-ng"][0] and "22050 Hz" in rows["voice tts espeak-ng"][1]
    ok, detail = rows["voice asr pocketsphinx"]
    assert ok and "heard 'zoom in'" in detail, detail  # the grammar decoder heard the command said
    ok, detail = rows["voice asr whisper"]
    assert ok and "heard 'zoom in" in detail.lower(), detail
    assert rows["voice asr auto"][0] and rows["voice asr auto"][1].startswith("means hybrid (")  # what make() built
    assert rows["voice dialog MiniLM"][0] and "→ zoom_in" in rows["voice dialog MiniLM"][1]
    assert rows["voice riva"][0] is False and "--riva-uri" in rows["voice riva"][1]  # no server assumed


def test_a_corrupt_whisper_model_is_reported_unusable_and_auto_falls_back(voice_peers, whisper_extra,
                                                                            tmp_path, monkeypatch) -> None:
    """A garbage model.bin (a real CTranslate2 load failure): installed, but not usable, and auto is
    reported as what it then does (pocketsphinx alone)."""
    from clara_stream.voice import health

    (tmp_path / "model.bin").write_bytes(b"not a ctranslate2 model")
    monkeypatch.setenv("CLARA_STREAM_WHISPER_MODEL", str(tmp_path))
    rows = _rows(health.checks())
    ok, detail = rows["voice asr whisper"]
    assert not ok and "Error" in detail, detail  # the failure named by its type and message
    assert rows["voice asr auto"][0] and rows["voice asr auto"][1].startswith("means pocketsphinx (")
    assert rows["voice asr pocketsphinx"][0]


def test_a_recogniser_that_hears_something_else_is_not_usable(voice_peers) -> None:
    """Running without raising is not enough: pocketsphinx given noise hears no command, and that
    is reported as unusable, naming what it heard."""
    from clara_stream.voice import asr as A
    from clara_stream.voice import health

    noise = np.random.default_rng(7).normal(0, 300, 16000).astype(np.int16)
    ok, detail = health._timed(lambda: health._heard(A.make("pocketsphinx"), noise))
    assert not ok and detail.startswith("ValueError: expected to hear 'zoom in'; got "), detail


def test_a_riva_server_that_is_not_there_or_a_bad_address_is_named(voice_peers) -> None:
    from clara_stream.voice import health

    with socket.socket() as s:  # a free port: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    speech = np.zeros(1600, np.int16)
    assert _rows(health.riva(f"127.0.0.1:{port}", speech)) == {"voice riva": (
        False, f"no plaintext Riva server answered at 127.0.0.1:{port} within {health.RIVA_TIMEOUT_S:.0f} s")}
    for bad in ("http://127.0.0.1:50051", "127.0.0.1:99999", "127.0.0.1", "not a uri:1"):
        ok, detail = _rows(health.riva(bad, speech))["voice riva"]
        assert not ok and detail == f"expected --riva-uri HOST:PORT (no scheme, port 1-65535); got {bad!r}"


def test_doctor_cli_shows_the_voice_rows_and_can_leave_them_out(voice_peers) -> None:
    cmd = [sys.executable, "-m", "clara_stream.cli", "doctor"]
    env = {**os.environ, "COLUMNS": "240"}
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert full.returncode == 0, full.stderr[-2000:]
    assert "voice asr pocketsphinx" in full.stdout and "heard 'zoom in'" in full.stdout, full.stdout[-3000:]
    quick = subprocess.run([*cmd, "--no-voice"], capture_output=True, text=True, timeout=300, env=env)
    assert quick.returncode == 0 and "voice asr" not in quick.stdout and "tool espeak-ng" in quick.stdout
