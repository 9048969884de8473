"use strict";
// One job: its graph coloured by operator state, live while it runs (polling, bounded), final
// after; inputs by series, outputs with download links and export state, the log, cancel/retry.
const JOB_ID = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const JOB = "/jobs/" + encodeURIComponent(JOB_ID);
const POLL_MS = 500;
const LOG_EVERY = 4;  // polls between log reads while running
const LOG_CHARS = 20000;  // the tail shown
let graph = null;
let polls = 0;
let timer = null;

function renderOperators(ops) {
  fill(document.querySelector("#operators tbody"), ops, "name", (tr, o) => {
    tr.dataset.state = o.state;
    cell(tr, o.name, "name"); cell(tr, o.state, "state"); cell(tr, o.messages, "num");
    cell(tr, fmtMs(o.timeMs), "num"); cell(tr, fmtMs(o.p50Ms), "num"); cell(tr, fmtMs(o.p95Ms), "num");
    cell(tr, o.error ?? "", "reason");
  });
  const failed = ops.filter((o) => o.state === "failed");
  document.getElementById("failures").replaceChildren(...failed.map((o) => {
    const li = el("li", `${o.name}: ${o.error ?? "failed"}`); li.dataset.name = o.name; return li; }));
}

function renderInputs(job, instances) {
  document.getElementById("input-dir").textContent = "folder: " + job.inputDir;
  const bySeries = new Map();
  for (const i of instances) {
    const s = bySeries.get(i.series_uid) || { series: i.series_uid, study: i.study_uid, n: 0, from: new Set(), conflicts: 0 };
    s.n += 1; s.from.add(`${i.calling_ae}@${i.calling_host}`); if (i.conflict) s.conflicts += 1;
    bySeries.set(i.series_uid, s);
  }
  fill(document.querySelector("#inputs tbody"), [...bySeries.values()], "series", (tr, s) => {
    cell(tr, s.series); cell(tr, s.study); cell(tr, s.n, "num"); cell(tr, [...s.from].join(", "));
    cell(tr, s.conflicts || "", s.conflicts ? "conflict" : "");
  });
}

function renderOutputs(job, results) {
  const prefix = job.outputDir.replace(/\/+$/, "") + "/";
  fill(document.querySelector("#outputs tbody"), results, "id", (tr, r) => {
    const rel = r.path.startsWith(prefix) ? r.path.slice(prefix.length) : r.path.split("/").pop();
    const a = link("#", rel);
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      download(JOB + "/files/" + rel.split("/").map(encodeURIComponent).join("/"), rel.split("/").pop())
        .catch((e) => { document.getElementById("error").textContent = "download failed: " + e.message; });
    });
    cell(tr, "", "file").appendChild(a);
    cell(tr, r.size, "num");
    cell(tr, (r.exports || []).map((e) => `${e.destination}: ${e.state}${e.last_error ? " (" + e.last_error + ")" : ""}`).join("; "));
  });
}

async function refresh() {
  timer = null;
  let job = null;
  try {
    job = await getJson(JOB);  // first: operator rows are stored before the job's end state
    const ops = await getJson(JOB + "/operators");
    if (!graph || (graph.source === "pipeline" && ops.length)) graph = await getJson(JOB + "/graph");
    document.getElementById("job-id").textContent = job.id;
    document.getElementById("status").replaceChildren(statusBadge(job.status));
    document.getElementById("summary").textContent =
      `pipeline ${job.pipeline} · app ${job.app} · priority ${job.priority} · start ${fmtTime(job.startedAt)} · ` +
      `duration ${fmtDuration(job)} · attempt ${job.attempts}` + (job.worker ? ` · worker ${job.worker}` : "") +
      (job.error ? ` · ${job.error.split("\n")[0]}` : "");
    document.getElementById("start").disabled = job.status !== "created";
    document.getElementById("cancel").disabled = TERMINAL.includes(job.status);
    document.getElementById("retry").disabled = !TERMINAL.includes(job.status);
    drawGraph(document.getElementById("graph"), graph, Object.fromEntries(ops.map((o) => [o.name, o])));
    renderOperators(ops);
    const done = TERMINAL.includes(job.status);
    if (polls === 0 || done) {
      const [instances, results] = await Promise.all([getJson(JOB + "/instances"), getJson("/results?job_id=" + encodeURIComponent(JOB_ID))]);
      renderInputs(job, instances);
      renderOutputs(job, results);
    }
    if (polls % LOG_EVERY === 0 || done) document.getElementById("log").textContent = (await getText(JOB + "/log")).slice(-LOG_CHARS);
    document.body.dataset.status = job.status;  // last: a page marked with a status shows all of it
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "refresh failed: " + e.message;
  } finally {
    polls += 1;
    if (!job || !TERMINAL.includes(job.status)) timer = setTimeout(refresh, POLL_MS);  // final once ended
  }
}
function again() { if (timer) clearTimeout(timer); polls = 0; refresh(); }

document.getElementById("start").addEventListener("click", () =>
  postJson(JOB + "/start").then(again, (e) => { document.getElementById("error").textContent = "start failed: " + e.message; }));
document.getElementById("cancel").addEventListener("click", () =>
  postJson(JOB + "/cancel").then(again, (e) => { document.getElementById("error").textContent = "cancel failed: " + e.message; }));
document.getElementById("retry").addEventListener("click", () =>
  postJson(JOB + "/retry").then((j) => { location.href = jobHref(j.id); },
    (e) => { document.getElementById("error").textContent = "retry failed: " + e.message; }));
refresh();
