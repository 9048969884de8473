"""Real audio through real engines: espeak-ng utterances (clean and 10 dB SNR) → pocketsphinx with
the catalogue grammar → dialog manager; bad audio refused with the reason, in bounded memory."""

from __future__ import annotations

import os
import tracemalloc
import wave

import numpy as np
import pytest
from clara_stream.voice.audio import AudioInputError, check_speech, read_wav, to_wav

PHANTOM = [(1, "body"), (2, "ribs"), (3, "lesion")]  # the render phantom's labels


@pytest.fixture(scope="module")
def sphinx():
    from clara_stream.voice.asr import PocketSphinxASR

    return PocketSphinxASR(labels=PHANTOM)


def test_noise_is_mixed_at_10_db(utterances, speech):
    """The noisy clip minus the clean one is the noise: its RMS is 10 dB under the speech (numpy check
    of sox's mix; fails if the scale factor or the mix volume is wrong)."""
    u = utterances[0]
    clean, noisy = read_wav(u.clean).astype(np.float64), read_wav(u.noisy).astype(np.float64)
    snr = 20 * np.log10(speech.rms(u.clean) / np.sqrt(np.mean((noisy - clean) ** 2)))
    assert abs(snr - 10.0) < 0.5


def _heard(asr, clip) -> tuple[str, ...]:
    best = asr.transcribe(read_wav(clip))
    return (best, *asr.alternatives)


@pytest.fixture(scope="module")
def cold_run(utterances, dialog) -> dict:
    """A fresh recogniser, cold, through every noisy clip then every clean one: per (kind, index) the
    transcript + n-best, and per kind the misses (text, voice, heard)."""
    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.pipeline import understand

    asr = PocketSphinxASR(labels=PHANTOM)
    heard, misses = {}, {"noisy": [], "clean": []}
    for kind in misses:
        for i, u in enumerate(utterances):
            text, r = understand(asr, dialog, read_wav(getattr(u, kind)), PHANTOM, conversation=f"{kind}{i}")
            heard[kind, i] = _heard(asr, getattr(u, kind))
            if not (r is not None and r.understood and r.intent == u.intent):
                misses[kind].append((u.text, u.voice, text))
    return {"asr": asr, "heard": heard, "misses": misses}


def test_spoken_commands_do_not_depend_on_order(cold_run, utterances):
    """The clips in another order (reversed, clean and noisy interleaved) on the same recogniser, and
    some alone on brand-new decoders, give identical transcripts and n-best lists; clean and noisy
    accuracy ≥ 85 % from the cold start. Fails if state is carried between utterances (the live
    cepstral mean, noise estimate, dither: 7 of 44 transcripts changed with the order before the
    front end was reset per utterance; resetting only the mean left 4 of 11 changed)."""
    from clara_stream.voice.asr import PocketSphinxASR

    asr, first = cold_run["asr"], cold_run["heard"]
    other = [(kind, i) for i in reversed(range(len(utterances))) for kind in ("clean", "noisy")]
    changed = [(k, first[k], h) for k in other if (h := _heard(asr, getattr(utterances[k[1]], k[0]))) != first[k]]
    assert not changed, changed
    for kind, i in [("noisy", 0), ("noisy", 17), ("clean", 30), ("noisy", 43)]:
        assert _heard(PocketSphinxASR(labels=PHANTOM), getattr(utterances[i], kind)) == first[kind, i]
    for kind, misses in cold_run["misses"].items():
        assert len(misses) <= 0.15 * len(utterances), (kind, misses)


def test_spoken_accuracy_cold_meets_the_bar(cold_run, utterances):
    """≥ 90 % of noisy (10 dB SNR) spoken commands become the intended intent from a cold start.

    Development data since it was seen (issue 14): 39/44 = 88.6 % with the grammar alone; 40/44 =
    90.9 % (clean 44/44) with the free trigram decoder, the noise floor and the recalibrated mean.
    Fails if the free decoder's transcript is dropped or the floor is removed (measured 38-39/44)."""
    misses = cold_run["misses"]["noisy"]
    assert len(misses) <= 0.1 * len(utterances), misses


def test_second_opinion_is_asked_only_when_nothing_was_understood(utterances, sphinx, dialog):
    """``resolve`` calls the batch re-decode only when no live candidate is understood; its answer
    is then used. Fails if the fallback is always paid for, or ignored."""
    from clara_stream.voice.pipeline import resolve

    calls = []

    def second():
        calls.append(1)
        return ["hide the lesion"]

    text, r = resolve(dialog, ["zoom in"], PHANTOM, "s1", second)
    assert (text, r.intent, calls) == ("zoom in", "zoom_in", [])
    text, r = resolve(dialog, ["isolate the", ""], PHANTOM, "s2", second)
    assert (text, r.intent, calls) == ("hide the lesion", "hide_label", [1])
    u = next(u for u in utterances if u.text == "show the coronal view")
    assert sphinx.redecode(read_wav(u.noisy))[0] == "show the coronal view"  # the real batch decode


def test_stream_gives_partials_then_one_final(utterances, sphinx):
    from clara_stream.voice.audio import chunks

    u = next(u for u in utterances if u.text == "show the coronal view")
    out = list(sphinx.stream(chunks(read_wav(u.clean))))
    assert [t.final for t in out].count(True) == 1 and out[-1].final
    assert len(out) > 2 and out[-1].text == "show the coronal view"


def test_grammar_holds_dataset_labels_and_skips_unpronounceable(sphinx):
    from clara_stream.voice.asr import PocketSphinxASR

    asr = PocketSphinxASR(labels=[(1, "liver"), (2, "kidney_left"), (3, "zzqx_organ")])
    assert "left kidney" in asr.grammar.jsgf and "kidney left" in asr.grammar.jsgf
    assert ("zzqx organ", "zzqx") in asr.grammar.skipped and "zzqx" not in asr.grammar.jsgf
    assert "ribs" in sphinx.grammar.jsgf


def _wav(path, samples, rate=16000, channels=1, width=2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples).astype({2: "<i2", 1: "u1"}[width]).tobytes())
    return path


def test_bad_audio_is_refused_with_the_reason(tmp_path):
    tone = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
    cases = [
        (_wav(tmp_path / "empty.wav", []), "empty recording"),
        (_wav(tmp_path / "8k.wav", tone, rate=8000), "expected 16000 Hz; got 8000 Hz"),
        (_wav(tmp_path / "stereo.wav", np.repeat(tone, 2), channels=2), "expected mono; got 2 channels"),
        (_wav(tmp_path / "u8.wav", tone.view(np.uint8)[:8000], width=1), "16-bit samples; got 8-bit"),
    ]
    (tmp_path / "song.mp3").write_bytes(b"ID3\x04\x00" + os.urandom(2000))
    cases.append((tmp_path / "song.mp3", "expected a RIFF/WAVE file"))
    (tmp_path / "cut.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    cases.append((tmp_path / "cut.wav", "expected 16-bit PCM WAV"))
    for path, rule in cases:
        with pytest.raises(AudioInputError, match=rule) as e:
            read_wav(path)
        assert path.name in str(e.value)
    silence = read_wav(_wav(tmp_path / "silence.wav", np.zeros(16000)))
    with pytest.raises(AudioInputError, match="expected speech; got silence"):
        check_speech(silence)


def test_noise_without_speech_is_heard_as_nothing(tmp_path, voice_peers):
    """A second of sox's white noise (louder than the silence gate, no words): the grammar search
    leaves no lattice, and pocketsphinx 5 returns None for its n-best; that crashed the transcript
    with a TypeError. Now nothing is heard and nothing is understood."""
    import subprocess

    from clara_stream.voice.asr import PocketSphinxASR
    from clara_stream.voice.dialog import DialogManager
    from clara_stream.voice.pipeline import understand

    wav = tmp_path / "noise.wav"
    subprocess.run(["/usr/bin/sox", "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(wav), "synth", "1",
                    "whitenoise", "vol", "0.02"], check=True, timeout=60)  # fmt: skip (-R: the same noise each run)
    noise = read_wav(wav)
    check_speech(noise)  # loud enough to pass the gate: it reaches the decoders
    assert PocketSphinxASR().transcribe(noise) == ""
    assert understand(PocketSphinxASR(), DialogManager(), noise) == ("", None)


def test_ten_minute_file_is_refused_from_its_header(tmp_path):
    """19 MB of audio: refused before the samples are read (peak Python allocation stays small)."""
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        block = np.zeros(16000 * 10, np.int16).tobytes()
        for _ in range(60):
            w.writeframes(block)
    assert path.stat().st_size > 19_000_000
    tracemalloc.start()
    with pytest.raises(AudioInputError, match="at most 60 s; got 600.0 s"):
        read_wav(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000


def test_wav_round_trip_against_stdlib(tmp_path):
    """to_wav/read_wav against the stdlib wave module (independent reader and writer)."""
    x = (np.random.default_rng(3).normal(0, 3000, 4001)).astype(np.int16)
    with wave.open(__import__("io").BytesIO(to_wav(x)), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        np.testing.assert_array_equal(np.frombuffer(w.readframes(w.getnframes()), "<i2"), x)
    np.testing.assert_array_equal(read_wav(_wav(tmp_path / "x.wav", x)), x)


def test_espeak_tts_speaks_what_it_is_given(voice_peers, sphinx):
    """TTS → ASR: the embedded voice says a command that the grammar recogniser hears back."""
    from clara_stream.voice.audio import resample
    from clara_stream.voice.tts import EspeakTTS

    samples, rate = EspeakTTS(voice="en-us", speed=150).synthesize("hide the lesion")
    assert rate == 22050 and samples.dtype == np.int16 and len(samples) > rate // 2
    assert sphinx.transcribe(resample(samples, rate)) == "hide the lesion"
    with pytest.raises(ValueError, match="1..1000 characters"):
        EspeakTTS().synthesize("x" * 1001)
    with pytest.raises(ValueError, match="voice name"):
        EspeakTTS(voice="en; rm -rf /")


def test_whisper_free_form_if_installed(speech, tmp_path):
    """The optional free-form path (faster-whisper tiny.en from a wheel). Skipped when the extra is
    absent, unless CLARA_STREAM_REQUIRE_WHISPER=1 declares it required."""
    try:
        from clara_stream.voice.asr import WhisperASR

        asr = WhisperASR()
    except ModuleNotFoundError as exc:
        if os.environ.get("CLARA_STREAM_REQUIRE_WHISPER") == "1":
            pytest.fail(f"whisper declared required: {exc}")
        pytest.skip(str(exc))
    clip = speech.synthesize("I need a ruler to measure", tmp_path / "free.wav", ("en-us", 150, 50))
    text = asr.transcribe(read_wav(clip)).lower()
    assert "ruler" in text and "measure" in text, text
    noisy = speech.mix_noise(clip, tmp_path / "free.noisy.wav", 10.0)
    assert "ruler" in asr.transcribe(read_wav(noisy)).lower()


def test_recorded_initial_mean_is_what_calibration_computes(voice_peers, sphinx):
    """``asr.CMN_INIT`` is reproduced by its recipe (``python -m clara_stream.voice.calibrate``: every
    catalogue example, three voices no test uses). Fails if the constant is edited by hand, tuned
    against the test clips, or left stale after the catalogue or the front end changes."""
    from clara_stream.voice.asr import CMN_INIT, PocketSphinxASR
    from clara_stream.voice.calibrate import catalogue_clips, cepstral_mean

    recorded = np.array([float(x) for x in CMN_INIT.split(",")])
    np.testing.assert_allclose(cepstral_mean(sphinx, catalogue_clips()), recorded, atol=0.3)
    with pytest.raises(ValueError, match="at least one clip"):
        cepstral_mean(sphinx, [])
    with pytest.raises(ValueError, match="13 comma-separated"):
        PocketSphinxASR(cmn_init="40,3,-1")
