"""The initial cepstral mean (``cmninit``) of the grammar recogniser, computed from speech.

pocketsphinx normalises features by a running cepstral mean. Carried from one utterance to the
next, that mean made a command's transcript depend on what was said before it (issue 14: 42/44
after a warm-up, 32/44 cold). :class:`~clara_stream.voice.asr.PocketSphinxASR` therefore resets
its front end before every utterance and starts from a fixed mean, ``asr.CMN_INIT``, recorded
from this module's output: the average whole-utterance (batch) cepstral mean of every catalogue
example spoken by espeak-ng voices that no test uses. Re-run after changing the acoustic model,
the front-end settings or the catalogue: ``python -m clara_stream.voice.calibrate``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: (voice, words per minute, pitch): none of them is among the tests' voices.
CALIBRATION_VOICES = (("en-gb-x-rp", 160, 50), ("en-us-nyc+f3", 170, 60), ("en-gb-scotland+m1", 145, 40))


def cepstral_mean(asr, clips: Iterable[np.ndarray]) -> np.ndarray:
    """Mean over ``clips`` (16 kHz int16) of each clip's own batch cepstral mean, from a fresh front end."""
    d, means = asr.decoder, []
    for samples in clips:
        d.reinit_feat()
        d.start_utt()
        asr.reset_floor()  # the noise floor the decoder hears, as in an utterance
        d.process_raw(asr.floored(np.asarray(samples, "<i2").tobytes()), True, True)  # no search, full utterance
        d.end_utt()
        means.append([float(x) for x in d.get_cmn(False).split(",")])
    if not means:
        raise ValueError("calibrate: expected at least one clip; got none")
    return np.mean(means, axis=0)


def catalogue_clips(voices=CALIBRATION_VOICES, label: str = "liver") -> Iterable[np.ndarray]:
    """Every catalogue example (``<label>`` filled in), each in the next of ``voices``, at 16 kHz."""
    from clara_stream.voice.audio import resample
    from clara_stream.voice.catalogue import load
    from clara_stream.voice.tts import EspeakTTS

    engines = [EspeakTTS(voice=v, speed=s, pitch=p) for v, s, p in voices]
    examples = [e.replace("<label>", label) for it in load().intents for e in it.examples]
    for k, text in enumerate(examples):
        samples, rate = engines[k % len(engines)].synthesize(text)
        yield resample(samples, rate)


def main() -> None:
    from clara_stream.voice.asr import PocketSphinxASR

    asr = PocketSphinxASR(labels=[(1, "liver")])
    print(",".join(f"{x:.2f}" for x in cepstral_mean(asr, catalogue_clips())))


if __name__ == "__main__":
    main()
