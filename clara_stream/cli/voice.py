"""``clara-stream voice``: transcribe, intent, say, serve (dialog REST), riva-serve (Riva gRPC)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import typer

from clara_stream.errors import UserError

voice_app = typer.Typer(
    help="Voice: ASR, TTS and the intent dialog manager (offline by default).", no_args_is_help=True
)
BACKEND = typer.Option("auto", help="ASR backend: auto (hybrid where the whisper extra is installed, else "
                       "pocketsphinx), pocketsphinx (grammar), hybrid, riva, whisper (free-form)")  # fmt: skip
RENDER = typer.Option("", help="render gRPC address, to read a dataset's label names (host:port)")


def _labels(render: str, dataset: str) -> list[tuple[int, str]]:
    if not dataset:
        return []
    if not render:
        raise UserError(f"voice: expected --render HOST:PORT to read the labels of dataset {dataset!r}")
    import grpc

    from clara_stream.render.client import RenderClient

    try:
        return [(int(lb.value), lb.name) for lb in RenderClient(render, timeout_s=30).info(dataset).labels]
    except grpc.RpcError as exc:
        raise UserError(f"voice: render service {render}: {exc.code().name}: {exc.details()}") from None


def _fail(exc: Exception) -> UserError:
    return UserError(str(exc))


@voice_app.command("transcribe")
def transcribe(
    file: Path = typer.Argument(..., help="16 kHz mono 16-bit WAV"),
    backend: str = BACKEND,
    riva_uri: str = typer.Option("", help="Riva server host:port (backend riva)"),
    dataset: str = typer.Option("", help="dataset whose label names the grammar knows"),
    render: str = RENDER,
    intent: bool = typer.Option(False, help="also run the dialog manager and print its JSON"),
) -> None:
    """Print the transcript of FILE (and, with --intent, what it means)."""
    from clara_stream.voice.asr import make
    from clara_stream.voice.audio import AudioInputError, read_wav

    labels = _labels(render, dataset)
    try:
        samples = read_wav(file)
        asr = make(backend, labels, riva_uri=riva_uri)
        if intent:
            from clara_stream.voice.dialog import DialogManager
            from clara_stream.voice.pipeline import understand

            text, res = understand(asr, DialogManager(), samples, labels)
            typer.echo(json.dumps({"transcript": text, **(res.to_json() if res else {"intent": None})}))
        else:
            from clara_stream.voice.audio import check_speech

            check_speech(samples, str(file))
            typer.echo(asr.transcribe(samples))
    except (AudioInputError, ValueError, ModuleNotFoundError) as exc:
        raise _fail(exc) from None


@voice_app.command("intent")
def intent(
    text: str = typer.Argument(..., help="what the user said"),
    dataset: str = typer.Option("", help="dataset whose label names fill label slots"),
    render: str = RENDER,
) -> None:
    """Print the dialog manager's JSON for TEXT: {query, intent, confidence, slots, command, reply}."""
    from clara_stream.voice.dialog import DialogManager

    try:
        typer.echo(json.dumps(DialogManager().process(text, _labels(render, dataset)).to_json()))
    except ValueError as exc:
        raise _fail(exc) from None


@voice_app.command("say")
def say(
    text: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="WAV to write"),
    backend: str = typer.Option("espeak", help="espeak (embedded) or riva"),
    riva_uri: str = typer.Option("", help="Riva server host:port (backend riva)"),
    voice: str = typer.Option("", help="espeak-ng voice (en-us, en-gb+f3, ...) or Riva voice name"),
) -> None:
    """Speak TEXT into a WAV file (espeak-ng 22.05 kHz, or Riva TTS)."""
    from clara_stream.voice.audio import to_wav
    from clara_stream.voice.tts import EspeakTTS, RivaTTS

    try:
        if backend == "riva":
            if not riva_uri:
                raise ValueError("voice say: expected --riva-uri HOST:PORT for the riva backend")
            tts = RivaTTS(riva_uri, voice_name=voice)
        elif backend == "espeak":
            tts = EspeakTTS(voice=voice or "en-us")
        else:
            raise ValueError(f"voice say: expected --backend espeak or riva; got {backend!r}")
        samples, rate = tts.synthesize(text)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    out.write_bytes(to_wav(samples, rate))
    typer.echo(f"{out} ({len(samples) / rate:.2f} s, {rate} Hz)")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


@voice_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8090, help="HTTP port (0 = free port)"),
    token: str = typer.Option("", envvar="CLARA_STREAM_VOICE_TOKEN", help="bearer token (required beyond loopback)"),
    render: str = RENDER,
    backend: str = BACKEND,
    ready_file: Path = typer.Option(None, help="write the bound address here (JSON) when ready"),
) -> None:
    """Serve the dialog manager over REST: GET /<project>/process_query?query=... (the article's shape)."""
    import uvicorn

    from clara_stream.voice.dialog import DialogManager
    from clara_stream.voice.service import VoiceContext, create_app

    client = None
    if render:
        from clara_stream.render.client import RenderClient

        client = RenderClient(render)
    try:
        app = create_app(VoiceContext(DialogManager(), client, backend), token=token, bind_host=host)
    except ValueError as exc:
        raise _fail(exc) from None
    web = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    web.install_signal_handlers = lambda: None
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started and thread.is_alive():
        thread.join(0.05)
    if not thread.is_alive():
        raise UserError(f"voice serve: expected to bind {host}:{port}; got a failure")
    bound = web.servers[0].sockets[0].getsockname()[1]
    line = json.dumps({"http": f"http://{host}:{bound}/"})
    typer.echo(line)
    if ready_file:
        ready_file.write_text(line)
    _wait_for_signal()
    web.should_exit = True
    thread.join(5)


@voice_app.command("riva-serve")
def riva_serve(
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(50052, help="gRPC port (0 = free port)"),
    token: str = typer.Option("", envvar="CLARA_STREAM_VOICE_TOKEN", help="bearer token (required beyond loopback)"),
    backend: str = typer.Option("pocketsphinx", help="engine behind Riva ASR: pocketsphinx or whisper"),
    label: list[str] = typer.Option([], help="label name the command grammar should know (repeatable)"),
    ready_file: Path = typer.Option(None, help="write the bound address here (JSON) when ready"),
) -> None:
    """Expose Riva's ASR and TTS gRPC services backed by the embedded engines."""
    from clara_stream.voice.riva_server import serve as start

    if backend not in ("pocketsphinx", "whisper"):
        raise UserError(f"voice riva-serve: expected --backend pocketsphinx or whisper; got {backend!r}")
    try:
        server, bound = start(host, port, token, backend, [(i + 1, n) for i, n in enumerate(label)])
    except (ValueError, ModuleNotFoundError) as exc:
        raise _fail(exc) from None
    line = json.dumps({"grpc": f"{host}:{bound}"})
    typer.echo(line)
    if ready_file:
        ready_file.write_text(line)
    _wait_for_signal()
    server.stop(grace=1).wait()


def register(app: typer.Typer) -> None:
    """Add ``voice`` to the main CLI."""
    app.add_typer(voice_app, name="voice")
