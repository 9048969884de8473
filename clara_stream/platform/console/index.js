"use strict";
// The overview: pipelines and jobs, refreshed every second; ids link to the job and pipeline pages.
const REFRESH_MS = 1000;
async function refresh() {
  const [health, pipelines, jobs] = await Promise.all(
    [getJson("/health"), getJson("/pipelines"), getJson("/jobs?limit=100")]);
  document.getElementById("health").textContent =
    `${health.aeTitle} · DICOM port ${health.dicomPort ?? "off"} · ${health.activeAssociations} association(s)`;
  fill(document.querySelector("#pipelines tbody"), pipelines, "name", (tr, p) => {
    cell(tr, "", "name").appendChild(link(pipelineHref(p.name), p.name));
    cell(tr, p.app); cell(tr, fmtTime(p.registeredAt));
    cell(tr, p.queued, "num"); cell(tr, p.running, "num");
  });
  fill(document.querySelector("#jobs tbody"), jobs, "id", (tr, j) => {
    tr.dataset.status = j.status;
    cell(tr, "", "id").appendChild(link(jobHref(j.id), j.id));
    cell(tr, "", "pipeline").appendChild(link(pipelineHref(j.pipeline), j.pipeline));
    cell(tr, "", "status").appendChild(statusBadge(j.status));
    cell(tr, j.priority, "num"); cell(tr, fmtTime(j.startedAt)); cell(tr, fmtDuration(j), "num");
    cell(tr, j.conflicts ? `${j.conflicts} instance UID conflict(s)` : "", j.conflicts ? "conflict" : "");
    cell(tr, j.worker ?? "", "worker");  // which node ran it (celery backend; empty when embedded)
  });
  const alerts = [];  // text only: names and reasons come from peers and files, never markup
  if (health.lowSpace) alerts.push(health.lowSpace);
  if (health.instanceConflicts) alerts.push(`${health.instanceConflicts} received instance(s) share a SOP Instance UID with other content or another study (kept apart)`);
  for (const g of Array.isArray(health.failedGroups) ? health.failedGroups : []) alerts.push(`group ${g.group_uid} for ${g.called_ae} failed: ${g.error}`);
  document.getElementById("alerts").replaceChildren(...alerts.map((t) => el("li", t)));
}
every(REFRESH_MS, refresh);
