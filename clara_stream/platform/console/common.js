"use strict";
// Shared by the console pages. Data from the service always goes in as text (textContent /
// createTextNode), never as markup: names, errors and logs come from peers, files and apps.
const hashToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (hashToken) { sessionStorage.setItem("token", hashToken); history.replaceState(null, "", location.pathname); }
const TOKEN = sessionStorage.getItem("token");
// a token added to the address of an open page: load again to take it (and drop it from the address)
window.addEventListener("hashchange", () => { if (new URLSearchParams(location.hash.slice(1)).get("token")) location.reload(); });
const AUTH = TOKEN ? { Authorization: "Bearer " + TOKEN } : {};
const TERMINAL = ["succeeded", "failed", "cancelled"];

async function request(url, options = {}) {
  const r = await fetch(url, { cache: "no-store", ...options, headers: { ...AUTH, ...(options.headers || {}) } });
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail || ""; } catch (e) { /* not JSON */ }
    throw new Error(`${url}: HTTP ${r.status}${detail ? " " + detail : ""}`);
  }
  return r;
}
const getJson = async (url) => (await request(url)).json();
const getText = async (url) => (await request(url)).text();
const postJson = async (url) => (await request(url, { method: "POST" })).json();

const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "—");
function fmtDuration(job) {
  if (!job.startedAt) return "—";
  const end = job.finishedAt || Date.now() / 1000;
  return (end - job.startedAt).toFixed(1) + " s";
}
const fmtMs = (v) => (v === null || v === undefined ? "—" : v < 10 ? v.toFixed(2) : v.toFixed(0));
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}
function statusBadge(status) { return el("span", status, "st " + status); }
function link(href, text) { const a = el("a", text); a.href = href; return a; }
const jobHref = (id) => "/console/jobs/" + encodeURIComponent(id);
const pipelineHref = (name) => "/console/pipelines/" + encodeURIComponent(name);
function fill(tbody, items, key, render) {
  const keep = new Set();
  for (const item of items) {
    const id = String(item[key]);
    keep.add(id);
    let tr = tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    if (!tr) { tr = document.createElement("tr"); tr.dataset.id = id; }
    tbody.appendChild(tr);  // keeps server order
    tr.replaceChildren();
    render(tr, item);
  }
  for (const tr of [...tbody.rows]) if (!keep.has(tr.dataset.id)) tr.remove();
}
// Run ``step`` now and every ``ms``; a failure is shown in #error (as text) and the loop goes on.
function every(ms, step) {
  const run = async () => {
    try {
      await step();
      document.getElementById("error").textContent = "";
    } catch (e) {
      document.getElementById("error").textContent = "refresh failed: " + e.message;
    } finally {
      setTimeout(run, ms);
    }
  };
  run();
}
// A file behind the bearer token: fetched with the header, handed to the browser as a download.
async function download(url, name) {
  const blob = await (await request(url)).blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}
