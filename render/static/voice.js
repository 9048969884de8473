// clara-stream viewer voice panel (issue 14): microphone (push-to-talk or continuous) streamed as
// 16 kHz mono int16 over /ws/voice; a typed-query box through the same dialog manager. Recognised
// commands are viewer-protocol messages, sent over the viewer's own socket (window.__viewer.send).
// Data reach the DOM only through textContent; the reply is played from a blob: URL.
"use strict";
(() => {
  const V = window.__viewer;
  const S = (window.__voice = { results: [], partials: [], errors: [], listening: false, utterances: 0 });
  const conversation = Math.random().toString(36).slice(2);
  const aside = document.querySelector("aside");
  const el = (tag, props = {}, parent = panel) => {
    const e = Object.assign(document.createElement(tag), props);
    parent.appendChild(e);
    return e;
  };
  const panel = document.createElement("section");
  panel.id = "voice";
  aside.insertBefore(panel, aside.firstChild);
  el("h2", { textContent: "Voice" });
  const talk = el("button", { id: "voice-talk", textContent: "Hold to talk" });
  const contLabel = el("label", { textContent: " Continuous" });
  const cont = el("input", { type: "checkbox", id: "voice-continuous" });
  contLabel.prepend(cont);
  const form = el("form", { id: "voice-form" });
  const query = el("input", { type: "text", id: "voice-query", placeholder: "Type a command…", maxLength: 300 }, form);
  el("button", { type: "submit", textContent: "Go" }, form);
  const transcript = el("div", { id: "voice-transcript" });
  const intent = el("div", { id: "voice-intent" });
  const reply = el("div", { id: "voice-reply" });
  const player = el("audio", { id: "voice-audio" });

  function dataset() { return V.info ? V.info.id : ""; }

  function perform(res) {  // the dialog manager's JSON → viewer messages
    S.results.push(res);
    transcript.textContent = res.transcript !== undefined ? `“${res.transcript}”` : `“${res.query}”`;
    intent.textContent = res.intent ? `${res.intent} (${Number(res.confidence).toFixed(2)})` : "not understood";
    reply.textContent = res.reply || "";
    for (const m of res.command || []) {
      if (m.type === "measure_mode") {
        const btn = document.getElementById("measure-btn");
        if (btn && btn.classList.contains("active") !== m.on) btn.click();
      } else {
        const { type, ...body } = m;
        V.send(type, body);
      }
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = query.value.trim();
    if (!q) return;
    const params = new URLSearchParams({ q, dataset: dataset(), conversation });
    const r = await fetch(`/api/voice/query?${params}`, { credentials: "same-origin" });
    const body = await r.json();
    if (!r.ok) { S.errors.push(body.detail); reply.textContent = body.detail; return; }
    perform(body);
  });

  // ---- audio: one socket, one utterance at a time ----
  let sock = null, audioCtx = null, source = null, proc = null, inUtterance = false, quietSince = 0;
  let expectAudio = false;
  function openSocket() {
    if (sock && sock.readyState <= 1) return sock;
    sock = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/voice`);
    sock.binaryType = "arraybuffer";
    sock.onmessage = (ev) => {
      if (typeof ev.data !== "string") {
        if (expectAudio) {
          expectAudio = false;
          player.src = URL.createObjectURL(new Blob([ev.data], { type: "audio/wav" }));
          player.play().catch(() => {});  // autoplay may be refused without a gesture: the text stays
        }
        return;
      }
      const m = JSON.parse(ev.data);
      if (m.type === "partial") { S.partials.push(m.text); transcript.textContent = `${m.text}…`; }
      else if (m.type === "result") perform(m);
      else if (m.type === "reply-audio") expectAudio = true;
      else if (m.type === "error") { S.errors.push(m.message); reply.textContent = m.message; }
    };
    return sock;
  }

  function whenOpen(fn) {
    const s = openSocket();
    if (s.readyState === 1) fn(s); else s.addEventListener("open", () => fn(s), { once: true });
  }
  function begin() {
    if (inUtterance) return;
    inUtterance = true; S.utterances += 1;
    whenOpen((s) => s.send(JSON.stringify({ type: "start", dataset: dataset(), conversation })));
  }
  function end() {
    if (!inUtterance) return;
    inUtterance = false;
    whenOpen((s) => s.send(JSON.stringify({ type: "end" })));
  }

  async function startCapture() {
    if (audioCtx) return;
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    audioCtx = new AudioContext({ sampleRate: 16000 });  // the browser resamples the microphone
    source = audioCtx.createMediaStreamSource(stream);
    proc = audioCtx.createScriptProcessor(1024, 1, 1);
    proc.onaudioprocess = (ev) => {
      const x = ev.inputBuffer.getChannelData(0);
      let energy = 0;
      const pcm = new Int16Array(x.length);
      for (let i = 0; i < x.length; i++) {
        const v = Math.max(-1, Math.min(1, x[i]));
        pcm[i] = v * 32767; energy += v * v;
      }
      const rms = Math.sqrt(energy / x.length), now = performance.now();
      if (cont.checked) {  // continuous: a simple energy gate opens and closes utterances
        if (rms > 0.02) { quietSince = 0; begin(); }
        else if (inUtterance) { quietSince = quietSince || now; if (now - quietSince > 700) end(); }
      }
      if (inUtterance && sock && sock.readyState === 1) sock.send(pcm.buffer);
    };
    source.connect(proc);
    proc.connect(audioCtx.destination);
    S.listening = true;
  }

  talk.addEventListener("pointerdown", async () => { await startCapture(); openSocket(); begin(); });
  talk.addEventListener("pointerup", end);
  talk.addEventListener("pointerleave", end);
  cont.addEventListener("change", async () => {
    if (cont.checked) { await startCapture(); openSocket(); } else end();
  });
})();
