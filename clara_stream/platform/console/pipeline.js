"use strict";
// One pipeline: its app's graph, its recent jobs with durations, and why the failed ones failed.
const NAME = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
const REFRESH_MS = 2000;
let drawn = false;

async function refresh() {
  const p = await getJson("/pipelines/" + encodeURIComponent(NAME));  // a name or an id
  const jobs = await getJson("/jobs?limit=50&pipeline=" + encodeURIComponent(p.name));
  document.getElementById("name").textContent = p.name;
  document.getElementById("summary").textContent =
    `app ${p.app} · cpu ${p.cpuMemoryMb} MB · gpu ${p.gpuMemoryMb} MB · retries ${p.maxRetries}` +
    (p.timeoutS ? ` · timeout ${p.timeoutS} s` : "") + (p.overrides.length ? ` · ${p.overrides.join(" ")}` : "");
  if (!drawn) {  // the graph comes from a bounded `clara-stream graph` run: once per page
    drawGraph(document.getElementById("graph"), await getJson("/pipelines/" + encodeURIComponent(NAME) + "/graph"), {}, "idle");
    drawn = true;
  }
  fill(document.querySelector("#jobs tbody"), jobs, "id", (tr, j) => {
    tr.dataset.status = j.status;
    cell(tr, "", "id").appendChild(link(jobHref(j.id), j.id));
    cell(tr, "", "status").appendChild(statusBadge(j.status));
    cell(tr, fmtTime(j.startedAt)); cell(tr, fmtDuration(j), "num"); cell(tr, j.attempts, "num");
    cell(tr, j.worker ?? ""); cell(tr, j.status === "failed" ? j.error ?? "" : "", "reason");
  });
}
every(REFRESH_MS, refresh);
