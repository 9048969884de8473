"""Speech recognition backends, one interface: 16 kHz mono PCM chunks in, transcripts out.

``stream(chunks)`` yields :class:`Transcript` s — partial ones while audio arrives, one final at the
end — as Riva's streaming recognition does; ``transcribe(samples)`` returns the final text.
Backends: ``pocketsphinx`` (embedded default: JSGF command grammar, so every result is a
command), ``riva`` (a Riva server; command words boosted), ``whisper`` (optional free-form,
faster-whisper with a packaged tiny.en model, :mod:`.whisper`) and ``hybrid`` (pocketsphinx, and
whisper where its two decoders disagree); ``auto`` is ``hybrid`` when the whisper extra is installed.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from clara_stream.voice import grammar as G
from clara_stream.voice import lm as LM
from clara_stream.voice.audio import SAMPLE_RATE, chunks
from clara_stream.voice.catalogue import Catalogue, load

_log = logging.getLogger(__name__)
BACKENDS = ("auto", "pocketsphinx", "hybrid", "riva", "whisper")
N_BEST = 10
#: Initial cepstral mean of every utterance (``python -m clara_stream.voice.calibrate`` printed it):
#: the live mean starts here, not from what the previous utterance left behind.
#: RMS (16-bit steps, about -70 dBFS) of the noise floor added to what the decoders hear: digital
#: silence (synthetic or gated audio) has no microphone hiss, and the free decoder put words into it.
FLOOR_RMS = 10.0
#: Word insertion penalty of the language-model decoder (pocketsphinx's default 0.65 dropped short words).
FREE_WIP = 0.2
CMN_INIT = "55.12,-3.58,-1.65,17.01,-11.31,-0.05,-8.42,-11.52,-5.79,-3.17,4.40,-2.08,0.11"


@dataclass(frozen=True)
class Transcript:
    text: str
    final: bool
    confidence: float = 0.0


class ASR:
    """Base: ``transcribe`` is the last final transcript of ``stream``; ``alternatives`` holds the
    n-best of the last utterance where the engine gives them (best first)."""

    name = "asr"
    alternatives: list[str] = []

    def stream(self, audio: Iterable[bytes]) -> Iterator[Transcript]:  # pragma: no cover - interface
        raise NotImplementedError

    def transcribe(self, samples: np.ndarray | bytes) -> str:
        text = ""
        for t in self.stream(chunks(samples)):
            if t.final:
                text = t.text
        return text


class PocketSphinxASR(ASR):
    """pocketsphinx 5 (en-us model from its wheel) decoding with the catalogue's JSGF grammar.

    Every utterance decodes the same whatever came before: the front end (live cepstral mean,
    noise estimate, dither generator) is reset before each one and the mean starts from
    ``cmn_init``. Resetting the mean alone was not enough (measured: 4 of 11 hypotheses then
    still differed from a fresh decoder's); ``reinit_feat`` made all of them identical.

    A second decoder hears the same audio with a trigram model of the grammar's sentences
    (:mod:`.lm`): it can put the grammar's words in orders the grammar lacks. Its transcript is
    the final one when it heard anything, the grammar's complete sentences are ``alternatives``
    (the pipeline acts on the first the dialog manager understands).

    Parameters
    ----------
    catalogue : Catalogue, optional
    labels : (value, name) pairs of the current dataset, spoken as label slots.
    cmn_init : str
        Comma-separated initial cepstral mean (13 values), default ``CMN_INIT``.
    language_model : bool
        Run the second, language-model decoder (default True; False: the grammar alone).
    """

    name = "pocketsphinx"

    def __init__(self, catalogue: Catalogue | None = None, labels: Sequence[tuple[int, str]] = (),
                 cmn_init: str = CMN_INIT, language_model: bool = True) -> None:  # fmt: skip
        from pocketsphinx import Decoder

        if len(cmn_init.split(",")) != 13:
            raise ValueError(f"PocketSphinxASR: expected 13 comma-separated cepstral means; got {cmn_init!r}")
        self.cmn_init = cmn_init

        # dither: digital silence (synthetic or gated audio) otherwise derails the feature normalisation
        self.decoder = Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", dither=True, seed=1)  # repeatable
        self.free = Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", dither=True, seed=1, wip=FREE_WIP)
        self.alternatives: list[str] = []
        self.decoded = ("", "")  # the last utterance's (trigram decoder's words, grammar's best sentence)
        for d in (self.decoder, self.free):
            for word, phones in G.EXTRA_WORDS.items():
                if d.lookup_word(word) is None:
                    d.add_word(word, phones, True)
        known = lambda w: self.decoder.lookup_word(w) is not None  # noqa: E731
        self.grammar = G.build(catalogue or load(), labels, known=known)
        self.decoder.add_jsgf_string("commands", self.grammar.jsgf)
        self.decoder.activate_search("commands")
        self._decoders = [self.decoder]
        if language_model:
            with tempfile.TemporaryDirectory() as tmp:
                path = f"{tmp}/commands.arpa"
                with open(path, "w") as f:
                    f.write(LM.build(self.grammar.rules, known))
                self.free.add_lm_file("free", path)
            self.free.activate_search("free")
            self._decoders.append(self.free)

    def floored(self, chunk: bytes) -> bytes:
        """``chunk`` (16-bit PCM) with the noise floor added; the generator restarts every utterance."""
        x = np.frombuffer(chunk, "<i2").astype(np.float64) + self._rng.normal(0.0, FLOOR_RMS, len(chunk) // 2)
        return np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes()

    def reset_floor(self) -> None:
        """Restart the noise floor's generator (every utterance hears the same floor)."""
        self._rng = np.random.default_rng(0)

    def _start(self, decoders: Sequence | None = None) -> None:
        self.reset_floor()
        for d in self._decoders if decoders is None else decoders:
            d.reinit_feat()  # a fresh front end: nothing carried over from the last utterance
            d.set_cmn(self.cmn_init)
            d.start_utt()

    def _final(self) -> Transcript:
        grammar = self._grammar_final()
        hyp = self.free.hyp() if len(self._decoders) > 1 else None
        text = " ".join(hyp.hypstr.split()) if hyp is not None else ""
        self.decoded = (text, grammar.text)
        return Transcript(text, True, 0.0) if text else grammar

    def _grammar_final(self) -> Transcript:
        d = self.decoder
        hyp = d.hyp()
        heard = [hyp.hypstr] if hyp is not None and hyp.hypstr else []
        nbest = d.nbest() or ()  # None where the search left no lattice (noise without speech)
        heard += [nb.hypstr for nb in itertools.islice(nbest, N_BEST) if nb is not None and nb.hypstr]
        # only whole sentences: where no path reached the grammar's end the search returns the best
        # partial one ("show the body and"), which would act on half a command
        whole = [t for t in dict.fromkeys(heard) if self.grammar.accepts(t)]
        self.alternatives = whole
        conf = float(d.get_logmath().exp(hyp.prob)) if hyp is not None and whole and whole[0] == heard[0] else 0.0
        return Transcript(whole[0] if whole else "", True, conf)

    def stream(self, audio: Iterable[bytes]) -> Iterator[Transcript]:
        d = self.decoder
        self._start()
        last = ""
        try:
            for chunk in audio:
                chunk = self.floored(chunk)
                for each in self._decoders:
                    each.process_raw(chunk, False, False)
                hyp = d.hyp()
                if hyp is not None and hyp.hypstr and hyp.hypstr != last:
                    last = hyp.hypstr
                    yield Transcript(last, False)
        finally:
            for each in self._decoders:
                each.end_utt()
        yield self._final()

    def redecode(self, samples: np.ndarray | bytes) -> list[str]:
        """Second opinion on a complete utterance: batch CMN (the mean of this utterance itself,
        so no initial mean is involved); best first, then the n-best. Costs a full decode, so the
        pipeline asks for it only when nothing the live decode heard was understood."""
        data = samples if isinstance(samples, bytes) else np.asarray(samples, "<i2").tobytes()
        self._start([self.decoder])
        try:
            self.decoder.process_raw(self.floored(data), False, True)
        finally:
            self.decoder.end_utt()
        best = self._grammar_final().text
        return [best, *self.alternatives]


class RivaASR(ASR):
    """Riva streaming recognition (``nvidia-riva-client``), command words as boosted speech contexts."""

    name = "riva"

    def __init__(self, uri: str, use_ssl: bool = False, ssl_cert: str | None = None, language_code: str = "en-US",
                 model: str = "", boost: Sequence[str] = (), boost_score: float = 4.0) -> None:  # fmt: skip
        import riva.client

        self.riva = riva.client
        self.auth = riva.client.Auth(uri=uri, use_ssl=use_ssl, ssl_root_cert=ssl_cert)
        self.service = riva.client.ASRService(self.auth)
        config = riva.client.RecognitionConfig(
            encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=SAMPLE_RATE, audio_channel_count=1,
            language_code=language_code, max_alternatives=1, enable_automatic_punctuation=False, model=model,
        )  # fmt: skip
        if boost:
            riva.client.add_word_boosting_to_config(config, list(boost), boost_score)
        self.config = riva.client.StreamingRecognitionConfig(config=config, interim_results=True)

    def stream(self, audio: Iterable[bytes]) -> Iterator[Transcript]:
        for resp in self.service.streaming_response_generator(audio_chunks=audio, streaming_config=self.config):
            for r in resp.results:
                if r.alternatives:
                    alt = r.alternatives[0]
                    yield Transcript(alt.transcript.strip(), bool(r.is_final), float(alt.confidence))


def __getattr__(name: str):
    """``WhisperASR`` and ``whisper_model_dir`` live in :mod:`.whisper` (the optional extra)."""
    if name in ("WhisperASR", "whisper_model_dir"):
        from clara_stream.voice import whisper

        return getattr(whisper, name)
    raise AttributeError(name)


def default_backend() -> str:
    """``hybrid`` (pocketsphinx, whisper where its decoders disagree) when the whisper extra is
    installed, else ``pocketsphinx``: what ``auto`` means."""
    from clara_stream.voice.whisper import available

    return "hybrid" if available() else "pocketsphinx"


def make(backend: str, labels: Sequence[tuple[int, str]] = (), riva_uri: str = "", **kw) -> ASR:
    """The backend named ``backend`` (one of ``BACKENDS``; ``auto``: ``default_backend()``, and
    pocketsphinx with one logged line when the whisper extra is installed but fails to load)."""
    if backend == "auto":
        try:
            if default_backend() == "hybrid":
                return make("hybrid", labels, riva_uri, **kw)
        except Exception as exc:  # a broken install or a corrupt model must not take the service down
            _log.warning("asr: expected auto's whisper extra to load, else pocketsphinx alone; got %s: %s",
                         type(exc).__name__, exc)  # fmt: skip
        return PocketSphinxASR(labels=labels)
    if backend == "pocketsphinx":
        return PocketSphinxASR(labels=labels)
    if backend == "riva":
        if not riva_uri:
            raise ValueError("asr: expected --riva-uri HOST:PORT for the riva backend")
        words = sorted(G.build(load(), labels).words)
        return RivaASR(riva_uri, boost=words, **kw)
    if backend in ("whisper", "hybrid"):
        from clara_stream.voice import whisper

        if backend == "hybrid":
            return whisper.HybridASR(labels=labels)
        return whisper.WhisperASR(prompt=whisper.vocabulary_prompt(labels=labels))
    raise ValueError(f"asr: expected a backend in {BACKENDS}; got {backend!r}")
