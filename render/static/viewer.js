// clara-stream render viewer: one WebSocket to the gateway; gestures in, JPEG frames out.
// Mouse: drag = pan (orthogonal slices) / rotate (3D) / tilt (oblique), shift-drag = tilt plane,
// right-drag = window/level, wheel = slices, ctrl-wheel = zoom.
// Touch: one-finger drag = pan/rotate, pinch = zoom, two-finger drag = scroll slices (pan on slides).
"use strict";
// Security: the token never lives in this page. `GET /?token=…` set an HttpOnly cookie and
// redirected here; fetch and the WebSocket carry that cookie. Data (label names, paths, messages)
// reach the DOM only through textContent and DOM APIs, never as markup; the CSP forbids inline script.
const canvas = document.getElementById("view");
const ctx = canvas.getContext("2d");
const statusEl = document.getElementById("status");
const V = (window.__viewer = {
  frames: 0, latencies: [], lastFrame: null, measure: null, errors: [], info: null, sent: 0, acked: 0,
  shownAck: 0, fullSinceAck: false,  // the newest message a shown frame answered; a full-quality frame since
});
const SLICE = ["axial", "coronal", "sagittal", "oblique"];
const RAY = ["mip", "composite"];
let ws, seq = 0, header = null, mode = "", measuring = false, points = [], image = null;
const pending = new Map();
let drawing = Promise.resolve();

function send(type, body = {}, since = performance.now()) {  // since: when the user acted
  if (!ws || ws.readyState !== 1) return;
  const id = ++seq;
  V.sent = id;
  pending.set(id, since);
  ws.send(JSON.stringify({ type, id, ...body }));
}
V.send = send;  // for the voice panel (voice.js): recognised commands are viewer messages

// ---- gesture accumulation: at most one message of each kind per animation frame ----
let acc = { pan: [0, 0], rotate: [0, 0], scroll: 0, zoom: 1, anchor: null, since: 0 }, scheduled = false;
function flush() {  // latency counts from the first gesture event of the batch, not from the send
  scheduled = false;
  const t = acc.since;
  if (acc.pan[0] || acc.pan[1]) send("pan", { dx: acc.pan[0], dy: acc.pan[1] }, t);
  if (acc.rotate[0] || acc.rotate[1]) send("rotate", { dx: acc.rotate[0], dy: acc.rotate[1] }, t);
  if (Math.abs(acc.scroll) >= 1) { const d = Math.trunc(acc.scroll); send("scroll", { delta: d }, t); acc.scroll -= d; }
  if (Math.abs(acc.zoom - 1) > 1e-3) {
    const a = acc.anchor || [canvas.width / 2, canvas.height / 2];
    send("zoom", { factor: acc.zoom, x: a[0], y: a[1] }, t);
  }
  acc = { pan: [0, 0], rotate: [0, 0], scroll: acc.scroll, zoom: 1, anchor: null, since: 0 };
}
V.flushPending = () => scheduled || wlScheduled;  // gestures waiting for the next animation frame
function schedule() {
  if (!acc.since) acc.since = performance.now();
  if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
}
function drag(dx, dy, tilt) {
  if (RAY.includes(mode) || mode === "oblique" || tilt) { acc.rotate[0] += dx; acc.rotate[1] += dy; } else { acc.pan[0] += dx; acc.pan[1] += dy; }
  schedule();
}
function pos(e) {
  const r = canvas.getBoundingClientRect();
  return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
}

// ---- mouse ----
let mouse = null;
canvas.addEventListener("mousedown", (e) => {
  mouse = { p: pos(e), start: pos(e), moved: false, tilt: e.shiftKey, level: e.button === 2 };
});
window.addEventListener("mousemove", (e) => {
  if (!mouse) return;
  const p = pos(e);
  if (Math.hypot(p[0] - mouse.start[0], p[1] - mouse.start[1]) > 3) mouse.moved = true;
  if (mouse.level) { wl[0] += p[1] - mouse.p[1]; wl[1] += p[0] - mouse.p[0]; scheduleWl(); }
  else if (!measuring) drag(p[0] - mouse.p[0], p[1] - mouse.p[1], mouse.tilt);
  mouse.p = p;
});
window.addEventListener("mouseup", (e) => { if (mouse && !mouse.moved && measuring) addPoint(pos(e)); mouse = null; });
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  if (e.ctrlKey || !SLICE.includes(mode)) { acc.zoom *= Math.exp(-e.deltaY / 500); acc.anchor = pos(e); }
  else acc.scroll += Math.sign(e.deltaY);
  schedule();
}, { passive: false });

let wl = [0, 0], wlScheduled = false;  // window/level drag: (dcenter, dwidth) in HU-ish units per pixel
function scheduleWl() {
  if (wlScheduled) return;
  wlScheduled = true;
  requestAnimationFrame(() => { wlScheduled = false; send("window", { dcenter: 2 * wl[0], dwidth: 4 * wl[1] }); wl = [0, 0]; });
}

// ---- touch ----
let touch = null;
function touchPts(e) { return Array.from(e.touches).map(pos); }
canvas.addEventListener("touchstart", (e) => {
  e.preventDefault();
  const t = touchPts(e);
  touch = { pts: t, start: t[0], moved: false, fingers: t.length };
}, { passive: false });
canvas.addEventListener("touchmove", (e) => {
  e.preventDefault();
  if (!touch) return;
  const t = touchPts(e);
  if (t.length === 1 && touch.pts.length === 1) {
    const [dx, dy] = [t[0][0] - touch.pts[0][0], t[0][1] - touch.pts[0][1]];
    if (Math.hypot(t[0][0] - touch.start[0], t[0][1] - touch.start[1]) > 6) touch.moved = true;
    if (!measuring && touch.moved) drag(dx, dy, false);
  } else if (t.length >= 2 && touch.pts.length >= 2) {
    touch.moved = true;
    const d0 = Math.hypot(touch.pts[1][0] - touch.pts[0][0], touch.pts[1][1] - touch.pts[0][1]);
    const d1 = Math.hypot(t[1][0] - t[0][0], t[1][1] - t[0][1]);
    const c0 = [(touch.pts[0][0] + touch.pts[1][0]) / 2, (touch.pts[0][1] + touch.pts[1][1]) / 2];
    const c1 = [(t[0][0] + t[1][0]) / 2, (t[0][1] + t[1][1]) / 2];
    if (d0 > 0 && Math.abs(d1 / d0 - 1) > 0.01) { acc.zoom *= d1 / d0; acc.anchor = c1; }
    if (SLICE.includes(mode)) acc.scroll += (c1[1] - c0[1]) / 8;
    else { acc.pan[0] += c1[0] - c0[0]; acc.pan[1] += c1[1] - c0[1]; }
    schedule();
  }
  touch.pts = t;
}, { passive: false });
canvas.addEventListener("touchend", (e) => {
  e.preventDefault();
  if (touch && !touch.moved && touch.fingers === 1 && measuring) addPoint(touch.start);
  if (e.touches.length === 0) touch = null; else touch.pts = touchPts(e);
}, { passive: false });

// ---- measurement ----
function addPoint(p) {
  points.push(p);
  if (points.length === 2) { send("measure", { a: points[0], b: points[1] }); }
  if (points.length > 2) points = [p];
  draw();
}
document.getElementById("measure-btn").addEventListener("click", (e) => {
  measuring = !measuring; points = [];
  e.currentTarget.classList.toggle("active", measuring);
  canvas.style.cursor = measuring ? "crosshair" : "grab";
  draw();
});

// ---- controls ----
document.querySelectorAll("#modes button").forEach((b) => b.addEventListener("click", () => send("mode", { mode: b.dataset.mode })));
for (const name of ["scale_bar", "picture_in_picture", "show_mask"]) {
  document.getElementById(name).addEventListener("change", (e) => send("toggle", { name, value: e.target.checked }));
}
document.getElementById("mask-opacity").addEventListener("input", (e) => send("set", { mask_opacity: e.target.value / 100 }));
document.querySelectorAll("#presets button").forEach((b) => b.addEventListener("click",
  () => send("set", { window_center: Number(b.dataset.c), window_width: Number(b.dataset.w) })));
document.querySelectorAll("#tf-presets button").forEach((b) => b.addEventListener("click",
  () => send("preset", { name: b.dataset.preset })));
document.getElementById("save").addEventListener("click", () => send("save"));
const streamControls = () => ({ bitrate_kbps: Number(document.getElementById("bitrate").value),
  playing: !document.getElementById("pause").classList.contains("active") });
document.getElementById("h264").addEventListener("change", (e) => V.setStream(e.target.checked ? "h264" : "jpeg", streamControls()));
document.getElementById("bitrate").addEventListener("change", () => V.setStream(V.transport, streamControls()));
document.getElementById("pause").addEventListener("click", (e) => {
  e.currentTarget.classList.toggle("active");
  V.setStream(V.transport, streamControls());
});
document.getElementById("reset").addEventListener("click", () => send("reset"));

function showLabels(info) {
  const box = document.getElementById("labels");
  box.replaceChildren();
  for (const lab of info.labels || []) {
    const c = lab.color || {};
    const row = document.createElement("label");
    const input = document.createElement("input");
    input.type = "checkbox"; input.dataset.label = String(lab.value); input.checked = !!lab.hidden;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${255 * (c.r || 0)},${255 * (c.g || 0)},${255 * (c.b || 0)})`;
    const text = document.createElement("span");
    text.textContent = `hide ${lab.name || "label " + lab.value}`;
    row.append(input, swatch, text);
    input.addEventListener("change", (e) => send("label", { value: lab.value, hidden: e.target.checked }));
    box.appendChild(row);
  }
  document.body.classList.toggle("planar", info.kind !== "DATASET_KIND_VOLUME");
}

// A newly opened dataset has its own view state: the controls follow it, the old measurement goes.
function syncControls(view) {
  for (const name of ["scale_bar", "picture_in_picture", "show_mask"]) {
    if (view && name in view) document.getElementById(name).checked = !!view[name];
  }
  if (view && "mask_opacity" in view) document.getElementById("mask-opacity").value = Math.round(100 * view.mask_opacity);
  points = []; V.measure = null;
  document.getElementById("measure-result").textContent = "";
}

function draw() {
  if (image) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  else if (video.el && V.transport === "h264") {
    ctx.drawImage(video.el, 0, 0, video.size[0], video.size[1], 0, 0, canvas.width, canvas.height);
  }
  drawOverlay();
}

function drawOverlay() {
  ctx.strokeStyle = "#ffd400"; ctx.fillStyle = "#ffd400"; ctx.lineWidth = 2;
  for (const p of points) { ctx.beginPath(); ctx.arc(p[0], p[1], 4, 0, 2 * Math.PI); ctx.fill(); }
  if (points.length === 2) {
    ctx.beginPath(); ctx.moveTo(...points[0]); ctx.lineTo(...points[1]); ctx.stroke();
    if (V.measure) { ctx.font = "14px system-ui"; ctx.fillText(`${V.measure.distance.toFixed(1)} ${V.measure.unit}`, points[1][0] + 6, points[1][1] - 6); }
  }
}

async function onFrame(blob, h) {
  const bmp = await createImageBitmap(new Blob([blob], { type: h ? h.mime : "image/jpeg" }));
  image = bmp; draw();
  frameShown(h, performance.now());
}

function frameShown(h, now) {
  if (h && h.ack != null) {
    for (const [id, t0] of pending) if (id <= h.ack) { V.latencies.push(now - t0); pending.delete(id); }
  }
  V.frames += 1; V.lastFrame = h; mode = h ? h.mode : mode;
  if (h && h.ack != null && h.ack > V.shownAck) { V.shownAck = h.ack; V.fullSinceAck = !h.interactive; }
  else if (h && !h.interactive) V.fullSinceAck = true;
  document.querySelectorAll("#modes button").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  if (h) {
    statusEl.textContent = `${mode} · ${h.units_per_px.toPrecision(3)} ${h.unit}/px · ` +
      `${h.render_ms.toFixed(1)} ms${h.interactive ? " (interactive)" : ""} · #${h.sequence}`;
  }
}

// ---- H.264 stream: fragmented MP4 into the shared MSE player (mse_player.js), JPEG as the fallback ----
const video = { el: null, player: null, waiting: new Map(), size: null, shownAt: 0, watch: 0 };
V.transport = "jpeg";
const streamSupported = (codecs) => msePlayer.supported(codecs);
function forgetWaiting() {  // a new stream starts its pts at 0 again: the old stream's frames are gone
  video.waiting.clear();
  clearInterval(video.watch); video.watch = 0;
}
function fallBack(reason) {  // anything wrong with MSE: back to JPEG frames, and say so
  if (V.transport === "jpeg") return;
  V.transport = "jpeg"; V.errors.push(`video stream off: ${reason}`);
  forgetWaiting();
  send("stream", { mode: "jpeg" });
}
function startVideo(init, m) {
  if (!streamSupported(m.codecs)) { fallBack(`codecs ${m.codecs} not supported`); return; }
  if (video.el) video.el.remove();
  forgetWaiting();
  const onAppended = () => { catchUp(); watchWaiting(); };  // a frame still not on screen: jump to it
  video.player = msePlayer.create(init, m.codecs, { onError: fallBack, onAppended });
  const el = (video.el = video.player.el);
  video.size = [m.width, m.height];
  const onVideoFrame = (now, meta) => {  // a decoded frame reached the screen: draw it, settle its acks
    if (el !== video.el || V.transport !== "h264") return;  // a replaced stream, or JPEG now: never paint over
    ctx.drawImage(el, 0, 0, video.size[0], video.size[1], 0, 0, canvas.width, canvas.height);
    image = null; drawOverlay();
    video.shownAt = performance.now();
    for (const [pts, h] of video.waiting) {
      if (pts <= meta.mediaTime + 1e-4) { video.waiting.delete(pts); frameShown(h, now); }
    }
    el.requestVideoFrameCallback(onVideoFrame);
  };
  el.requestVideoFrameCallback(onVideoFrame);
}
// Chrome resumes a stalled live stream only once several frames are buffered; an interactive view
// sends one frame and then waits. When nothing reached the screen lately, jump to the newest frame
// (the gateway makes a frame after a pause a keyframe, so the jump decodes just that frame).
// A frame that arrives just after another reached the screen is not jumped to at once; look again
// every 50 ms until every frame waiting is on screen (one look at +50 ms used to miss it when the
// frame before was shown late, leaving the last frame of a gesture off screen), for at most 60 s.
function catchUp() {
  const el = video.el;
  const quiet = performance.now() - video.shownAt;
  if (!el || el.seeking || !video.waiting.size || quiet < 40) return;  // a seek under way: let it finish
  const newest = Math.max(...video.waiting.keys());
  if (el.currentTime < newest || quiet > 1000) el.currentTime = newest + 1e-4;  // > 1 s: present it again
}
function watchWaiting() {
  clearInterval(video.watch);
  const until = performance.now() + 60000;
  video.watch = setInterval(() => {
    if (!video.waiting.size || performance.now() > until) { clearInterval(video.watch); video.watch = 0; return; }
    catchUp();
  }, 50);
}
V.setStream = (mode, opts = {}) => {
  if (mode === "h264" && !streamSupported("avc1.42C01F")) mode = "jpeg";
  if (mode !== "h264") forgetWaiting();
  V.transport = mode;
  send("stream", { mode, ...opts });
};

function onMessage(ev) {
  if (typeof ev.data !== "string") {  // frames are drawn in arrival order, each with the header sent before it
    const h = header;
    if (h && h.type === "video-init") startVideo(ev.data, h);
    else if (h && h.video) { video.waiting.set(h.pts, h); if (video.player) video.player.append(ev.data); }
    else {  // one frame that fails to decode is reported and skipped; the next one still draws
      drawing = drawing.then(() => onFrame(ev.data, h)).catch((err) => {
        V.errors.push(`frame #${h ? h.sequence : "?"} not drawn: ${err}`);
      });
    }
    return;
  }
  const m = JSON.parse(ev.data);
  if (m.ack != null) V.acked = Math.max(V.acked, m.ack);
  if (m.type === "frame" || m.type === "video-init") header = m;
  else if (m.type === "info") { V.info = m.info; showLabels(m.info); syncControls(m.view); }
  else if (m.type === "measure") {
    V.measure = m;
    document.getElementById("measure-result").textContent = `distance ${m.distance.toFixed(2)} ${m.unit} (${m.distance_px.toFixed(0)} px)`;
    draw();
  } else if (m.type === "saved") statusEl.textContent = `settings saved to ${m.path}`;
  else if (m.type === "error") { V.errors.push(m.message); statusEl.textContent = m.message; }
}

async function loadDatasets() {
  const res = await fetch("/api/datasets", { credentials: "same-origin" });
  const list = await res.json();
  const box = document.getElementById("datasets");
  box.replaceChildren();
  for (const d of list) {
    const b = document.createElement("button");
    b.textContent = d.name; b.dataset.id = d.id; b.title = d.path;
    b.addEventListener("click", () => {
      box.querySelectorAll("button").forEach((x) => x.classList.toggle("active", x === b));
      send("open", { dataset: d.id, width: canvas.width, height: canvas.height });
    });
    box.appendChild(b);
  }
  V.datasets = list;
}

function connect() {
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";  // MSE appends ArrayBuffers; images are wrapped in a Blob
  ws.onmessage = onMessage;
  ws.onopen = () => {
    statusEl.textContent = "connected";
    const want = document.getElementById("h264");
    if (want && want.checked) V.setStream("h264", { bitrate_kbps: Number(document.getElementById("bitrate").value) });
    loadDatasets();
  };
  ws.onclose = () => { statusEl.textContent = "disconnected"; };
}
connect();
