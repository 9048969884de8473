// clara-stream live video page: a running app's annotated stream, fragmented MP4 over the WebSocket at
// this page's own path, played by the shared MSE player. Security: the token never lives in this page
// (`?token=` became an HttpOnly cookie); what the server sends reaches the DOM only as textContent.
"use strict";
const statusEl = document.getElementById("status");
const L = (window.__live = { fragments: 0, errors: [], info: null, bytes: [], player: null });
let header = null;
const say = (text) => { statusEl.textContent = text; };
const failed = (reason) => { L.errors.push(reason); say(`video error: ${reason}`); };
function chase() {  // live, not a recording: stay at the newest frames (a late joiner starts mid-stream)
  const el = L.player.el, b = L.player.buffer;
  if (!b || !b.buffered.length) return;
  const start = b.buffered.start(0), end = b.buffered.end(b.buffered.length - 1);
  if (el.currentTime < start || end - el.currentTime > 0.5) el.currentTime = Math.max(start, end - 0.1);
}
function onBinary(data) {
  if (window.__liveRecord) L.bytes.push(new Uint8Array(data));  // tests read back the bytes they played
  if (header && header.type === "init") {
    header = null;
    if (!msePlayer.supported(L.info.codecs)) { failed(`codecs ${L.info.codecs} not supported`); return; }
    if (L.player) L.player.el.remove();
    L.player = msePlayer.create(data, L.info.codecs, { onError: failed, onAppended: chase, hidden: false });
  } else if (L.player) { L.player.append(data); L.fragments += 1; }
}
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${location.pathname}`);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") { onBinary(ev.data); return; }
    header = JSON.parse(ev.data);
    if (header.type === "init") { L.info = header; say(`live ${header.width}×${header.height} at ${header.fps} fps`); }
  };
  ws.onclose = (ev) => { say(`disconnected${ev.reason ? `: ${ev.reason}` : ""}; retrying`); setTimeout(connect, 1000); };
}
connect();
