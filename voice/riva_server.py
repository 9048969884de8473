"""``clara-stream voice riva-serve``: Riva's ASR and TTS gRPC services backed by the embedded engines.

The servicers are Riva's own (``riva.client.proto.riva_asr_pb2_grpc`` / ``riva_tts_pb2_grpc``), so
any Riva client — ``riva.client``, HoloHub's ASR apps — works on a CPU box: speech is recognised by
pocketsphinx with the command grammar (or faster-whisper), speech is made by espeak-ng. Loopback
by default; beyond it a token is required (``authorization: Bearer``, Riva's ``metadata_args``).
Every stream ends within ``STREAM_S`` (DEADLINE_EXCEEDED), a SynthesizeOnline call takes at most
``MAX_TTS_REQUESTS`` texts, and calls beyond ``workers`` at once are refused (RESOURCE_EXHAUSTED), not queued.
"""

from __future__ import annotations

import hmac
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc
import numpy as np
from clara_stream.voice.audio import MAX_SECONDS, SAMPLE_RATE, resample
from riva.client.proto import riva_asr_pb2 as rasr
from riva.client.proto import riva_asr_pb2_grpc as rasr_grpc
from riva.client.proto import riva_audio_pb2 as raudio
from riva.client.proto import riva_tts_pb2 as rtts
from riva.client.proto import riva_tts_pb2_grpc as rtts_grpc

MAX_AUDIO_BYTES = int(MAX_SECONDS * SAMPLE_RATE * 2)
TTS_CHUNK_SAMPLES = 4410
#: Wall-clock limit of one stream, first request to last (a byte cap alone let 40 B/s hold a worker 13 h).
STREAM_S = MAX_SECONDS + 30.0
MAX_TTS_REQUESTS = 64
_END = object()


def _within(requests: Iterator, context, limit_s: float) -> Iterator:
    """The requests of one stream; once it has lasted ``limit_s`` the call is aborted with
    DEADLINE_EXCEEDED, even while the client sends nothing (a reader thread waits on the client)."""
    got: queue.SimpleQueue = queue.SimpleQueue()

    def pump() -> None:
        try:
            for r in requests:
                got.put(r)
        except grpc.RpcError:  # the call ended (aborted, cancelled): nothing more will come
            pass
        finally:
            got.put(_END)

    threading.Thread(target=pump, name="riva-serve-stream", daemon=True).start()
    deadline = time.monotonic() + limit_s
    while True:
        try:
            r = got.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"riva-serve: expected a stream to end within "
                          f"{limit_s:g} s (STREAM_S)")  # fmt: skip
        if r is _END:
            return
        yield r


def _bad(context, message: str) -> None:
    """Abort the call with INVALID_ARGUMENT and the rule in the details."""
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)


class _Pool:
    """Recognisers built on demand, one per concurrent stream (a decoder is not thread-safe)."""

    def __init__(self, factory, size: int) -> None:
        self.factory, self.free, self.size, self.made = factory, queue.LifoQueue(), size, 0

    def get(self):
        try:
            return self.free.get_nowait()
        except queue.Empty:
            self.made += 1
            return self.factory()

    def put(self, asr) -> None:
        self.free.put(asr)


class ASRServicer(rasr_grpc.RivaSpeechRecognitionServicer):
    """StreamingRecognize (interim + final results) and Recognize over an embedded recogniser."""

    def __init__(self, factory, workers: int = 4, stream_s: float = STREAM_S) -> None:
        self.pool, self.stream_s = _Pool(factory, workers), stream_s

    @staticmethod
    def _check(config: rasr.RecognitionConfig, context) -> None:
        if config.encoding not in (raudio.AudioEncoding.LINEAR_PCM, raudio.AudioEncoding.ENCODING_UNSPECIFIED):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"riva-serve: expected LINEAR_PCM; got encoding {config.encoding}"
            )
        if config.sample_rate_hertz != SAMPLE_RATE:
            _bad(context, f"riva-serve: expected sample_rate_hertz {SAMPLE_RATE}; got {config.sample_rate_hertz}")
        if config.audio_channel_count not in (0, 1):
            _bad(context, f"riva-serve: expected 1 audio channel; got {config.audio_channel_count}")

    def StreamingRecognize(self, request_iterator, context) -> Iterator[rasr.StreamingRecognizeResponse]:
        request_iterator = _within(request_iterator, context, self.stream_s)
        first = next(request_iterator, None)
        if first is None or not first.HasField("streaming_config"):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "riva-serve: expected streaming_config in the first request"
            )
        self._check(first.streaming_config.config, context)
        interim = first.streaming_config.interim_results
        seen = [0]

        def audio() -> Iterator[bytes]:
            for req in request_iterator:
                seen[0] += len(req.audio_content)
                if seen[0] > MAX_AUDIO_BYTES:
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, f"riva-serve: expected at most {MAX_SECONDS:g} s of audio"
                    )
                yield req.audio_content

        asr = self.pool.get()
        try:
            for t in asr.stream(audio()):
                if t.final or interim:
                    alt = rasr.SpeechRecognitionAlternative(transcript=t.text, confidence=t.confidence)
                    result = rasr.StreamingRecognitionResult(alternatives=[alt], is_final=t.final,
                                                             audio_processed=seen[0] / 2 / SAMPLE_RATE)  # fmt: skip
                    yield rasr.StreamingRecognizeResponse(results=[result])
        finally:
            self.pool.put(asr)

    def Recognize(self, request, context) -> rasr.RecognizeResponse:
        self._check(request.config, context)
        if len(request.audio) > MAX_AUDIO_BYTES:
            _bad(context, f"riva-serve: expected at most {MAX_SECONDS:g} s of audio")
        asr = self.pool.get()
        try:
            text = asr.transcribe(bytes(request.audio))
        finally:
            self.pool.put(asr)
        alt = rasr.SpeechRecognitionAlternative(transcript=text, confidence=1.0 if text else 0.0)
        return rasr.RecognizeResponse(results=[rasr.SpeechRecognitionResult(alternatives=[alt])])

    def GetRivaSpeechRecognitionConfig(self, request, context):
        return rasr.RivaSpeechRecognitionConfigResponse()


class TTSServicer(rtts_grpc.RivaSpeechSynthesisServicer):
    """Synthesize / SynthesizeOnline (LINEAR_PCM at the requested rate) over espeak-ng."""

    def __init__(self, tts, stream_s: float = STREAM_S) -> None:
        self.tts, self.stream_s = tts, stream_s

    def _pcm(self, request, context) -> bytes:
        if request.encoding not in (raudio.AudioEncoding.LINEAR_PCM, raudio.AudioEncoding.ENCODING_UNSPECIFIED):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"riva-serve: expected LINEAR_PCM; got encoding {request.encoding}"
            )
        rate = request.sample_rate_hz or 22050
        if not 8000 <= rate <= 48000:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"riva-serve: expected sample_rate_hz 8000..48000; got {rate}"
            )
        try:
            samples, native = self.tts.synthesize(request.text)
        except ValueError as exc:
            _bad(context, f"riva-serve: {exc}")
        return np.asarray(resample(samples, native, rate), "<i2").tobytes()

    def Synthesize(self, request, context) -> rtts.SynthesizeSpeechResponse:
        return rtts.SynthesizeSpeechResponse(audio=self._pcm(request, context))

    def SynthesizeOnline(self, request_iterator, context) -> Iterator[rtts.SynthesizeSpeechResponse]:
        """Each request's text is spoken in turn, in chunks of 0.2 s (at 22.05 kHz) as it is ready."""
        step = TTS_CHUNK_SAMPLES * 2
        for n, request in enumerate(_within(request_iterator, context, self.stream_s)):
            if n >= MAX_TTS_REQUESTS:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"riva-serve: expected at most "
                              f"{MAX_TTS_REQUESTS} requests per SynthesizeOnline call (MAX_TTS_REQUESTS)")  # fmt: skip
            pcm = self._pcm(request, context)
            for i in range(0, len(pcm), step):
                yield rtts.SynthesizeSpeechResponse(audio=pcm[i : i + step])

    def GetRivaSynthesisConfig(self, request, context):
        return rtts.RivaSynthesisConfigResponse()


class _TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self.token = token
        self.deny = grpc.unary_unary_rpc_method_handler(
            lambda req, ctx: ctx.abort(
                grpc.StatusCode.UNAUTHENTICATED, "riva-serve: expected authorization: Bearer <token>"
            )
        )

    def intercept_service(self, continuation, details):
        got = dict(details.invocation_metadata).get("authorization", "").removeprefix("Bearer ")
        if hmac.compare_digest(got.encode(), self.token.encode()):
            return continuation(details)
        return self.deny


def serve(host: str = "127.0.0.1", port: int = 50052, token: str = "", asr_backend: str = "pocketsphinx",
          labels: Sequence[tuple[int, str]] = (), workers: int = 4,
          stream_s: float = STREAM_S) -> tuple[grpc.Server, int]:  # fmt: skip
    """Start the Riva-compatible server; returns ``(server, bound port)`` (``port=0``: a free one).
    At most ``workers`` calls run at once (more are refused); a stream lasts at most ``stream_s``.

    Raises
    ------
    ValueError
        If ``host`` is beyond loopback and no token is set, or ``workers``/``stream_s`` are not positive.
    """
    from clara_stream.voice.asr import make
    from clara_stream.voice.tts import EspeakTTS

    from clara_stream.loopback import is_loopback

    if not token and not is_loopback(host):
        raise ValueError(f"riva-serve: expected a token when listening beyond loopback; got host {host!r}")
    if workers < 1 or not stream_s > 0:
        raise ValueError(f"riva-serve: expected workers >= 1 and stream_s > 0; got {workers}, {stream_s!r}")
    make(asr_backend, labels)  # fail now, not on the first call, if the backend cannot start
    interceptors = [_TokenInterceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=interceptors,
                         maximum_concurrent_rpcs=workers)  # fmt: skip
    rasr_grpc.add_RivaSpeechRecognitionServicer_to_server(
        ASRServicer(lambda: make(asr_backend, labels), workers, stream_s), server
    )
    rtts_grpc.add_RivaSpeechSynthesisServicer_to_server(TTSServicer(EspeakTTS(), stream_s), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise ValueError(f"riva-serve: expected a free port at {host}:{port}; got none")
    server.start()
    return server, bound
