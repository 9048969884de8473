"use strict";
// The app graph as SVG, built with DOM calls: operators in columns by their depth from the
// sources (longest path), edges as curves. Each operator box is coloured by state (CSS classes)
// and labelled with its message count and compute time total / p50 / p95.
const SVG_NS = "http://www.w3.org/2000/svg";
const BOX_W = 200, BOX_H = 66, GAP_X = 70, GAP_Y = 26, PAD = 16;

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function layout(graph) {
  const names = graph.operators.map((o) => o.name);
  const depth = Object.fromEntries(names.map((n) => [n, 0]));
  for (let i = 0; i < names.length; i++) {  // longest path; at most n rounds (a cycle cannot loop forever)
    let changed = false;
    for (const e of graph.edges) {
      if (e.src in depth && e.dst in depth && depth[e.dst] < depth[e.src] + 1) { depth[e.dst] = depth[e.src] + 1; changed = true; }
    }
    if (!changed) break;
  }
  const rows = {};
  const pos = {};
  for (const n of names) {
    const d = depth[n]; rows[d] = (rows[d] || 0) + 1;
    pos[n] = { x: PAD + d * (BOX_W + GAP_X), y: PAD + (rows[d] - 1) * (BOX_H + GAP_Y) };
  }
  const width = PAD * 2 + (Math.max(0, ...Object.values(depth)) + 1) * (BOX_W + GAP_X) - GAP_X;
  const height = PAD * 2 + Math.max(1, ...Object.values(rows)) * (BOX_H + GAP_Y) - GAP_Y;
  return { pos, width, height };
}
function labels(op) {
  if (!op) return ["", ""];
  return [`${op.messages} msg · ${fmtMs(op.timeMs)} ms total`, `p50 ${fmtMs(op.p50Ms)} · p95 ${fmtMs(op.p95Ms)} ms`];
}
// Draw ``graph`` into ``svg`` (once per graph: later calls only update the boxes in place, so the
// page never flickers and nodes keep their identity); ``ops`` maps operator name -> progress row.
function drawGraph(svg, graph, ops, idleState = "waiting") {
  const key = JSON.stringify([graph.operators.map((o) => o.name), graph.edges]);
  if (svg.dataset.graph !== key) {
    build(svg, graph);
    svg.dataset.graph = key;
  }
  for (const g of svg.querySelectorAll("g.op")) {
    const name = g.dataset.name, op = ops[name], state = op ? op.state : idleState;
    g.setAttribute("class", "op " + state);
    g.dataset.state = state;
    const [l1, l2] = labels(op);
    g.querySelector("text.stats").textContent = op ? l1 : g.dataset.type;  // before any progress: the class
    g.querySelector("text.times").textContent = l2;
    g.querySelector("title").textContent = [`${name} (${g.dataset.type})`, state, l1, l2, op && op.error ? op.error : ""]
      .filter(Boolean).join("\n");
  }
}
function build(svg, graph) {
  const { pos, width, height } = layout(graph);
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const defs = svgEl("defs");
  const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.appendChild(svgEl("path", { d: "M0,0 L10,5 L0,10 z" }));
  defs.appendChild(marker);
  const children = [defs];
  for (const e of graph.edges) {
    const a = pos[e.src], b = pos[e.dst];
    if (!a || !b) continue;
    const x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2, mx = (x1 + x2) / 2;
    const path = svgEl("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" });
    path.appendChild(svgEl("title", {}, `${e.src}.${e.out_port} → ${e.dst}.${e.in_port}`));
    children.push(path);
  }
  for (const o of graph.operators) {
    const g = svgEl("g", { class: "op", transform: `translate(${pos[o.name].x},${pos[o.name].y})` });
    g.dataset.name = o.name;
    g.dataset.type = o.type;
    g.appendChild(svgEl("rect", { width: BOX_W, height: BOX_H, rx: 6 }));
    g.appendChild(svgEl("text", { class: "name", x: 10, y: 18 }, o.name));
    g.appendChild(svgEl("text", { class: "stats", x: 10, y: 36 }, ""));
    g.appendChild(svgEl("text", { class: "times", x: 10, y: 53 }, ""));
    g.appendChild(svgEl("title", {}, o.name));
    children.push(g);
  }
  svg.replaceChildren(...children);
}
