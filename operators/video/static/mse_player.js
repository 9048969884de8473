// clara-stream MSE player: fragmented-MP4 H.264 (one moof+mdat per frame, clara_stream.operators.video.fmp4)
// appended in arrival order to a <video> through Media Source Extensions. One player for the render
// viewer's stream mode and the live video page. Nothing received reaches the DOM as markup.
"use strict";
const msePlayer = {
  supported(codecs) { return !!(window.MediaSource && MediaSource.isTypeSupported(`video/mp4; codecs="${codecs}"`)); },
  // init: the ftyp+moov bytes; onError(reason): anything MSE refused; onAppended(): after each append.
  create(init, codecs, { onError = () => {}, onAppended = () => {}, keepS = 5, hidden = true } = {}) {
    const el = document.createElement("video");
    el.muted = true; el.playsInline = true; el.hidden = hidden;
    const ms = new MediaSource();
    const p = { el, buffer: null, queue: [init] };
    p.pump = () => {
      if (!p.buffer || p.buffer.updating || !p.queue.length) return;
      try { p.buffer.appendBuffer(p.queue.shift()); } catch (e) { onError(e.message); }
    };
    p.append = (data) => { p.queue.push(data); p.pump(); };
    const trim = () => {  // keep a few seconds of media: a page runs for hours
      const b = p.buffer;
      if (b && !b.updating && b.buffered.length && b.buffered.end(0) - b.buffered.start(0) > 4 * keepS) {
        b.remove(b.buffered.start(0), b.buffered.end(0) - keepS);
      }
    };
    el.src = URL.createObjectURL(ms);
    document.body.appendChild(el);
    ms.addEventListener("sourceopen", () => {
      ms.duration = Infinity;
      p.buffer = ms.addSourceBuffer(`video/mp4; codecs="${codecs}"`);
      p.buffer.mode = "segments";
      p.buffer.addEventListener("updateend", () => { onAppended(); trim(); p.pump(); el.play().catch(() => {}); });
      p.buffer.addEventListener("error", () => onError("SourceBuffer error"));
      p.pump();
    });
    return p;
  },
};
