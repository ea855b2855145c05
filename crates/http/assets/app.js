// The SPANE dashboard: plain JavaScript, no build step. Hash routes:
// #/executions, #/executions/<id>, #/workflows, #/schedules, #/dlq.
"use strict";

const view = document.getElementById("view");
let cleanup = [];          // closers of the current page (event sources, timers)
let token = localStorage.getItem("spane.token") || "";

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fmtTime = (ms) => ms ? new Date(ms).toLocaleString() : "—";
const fmtDur = (a, b) => {
  if (!a) return "—";
  const ms = (b || Date.now()) - a;
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
};
// A compact date and time: the year only when it is not this year's.
const fmtShort = (ms) => {
  if (!ms) return "—";
  const d = new Date(ms);
  const opts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = "numeric";
  return d.toLocaleString(undefined, opts);
};
const fmtIn = (ms) => {
  if (!ms) return "";
  const s = Math.round((ms - Date.now()) / 1000), a = Math.abs(s);
  const t = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h`
    : a < 86400 * 365 ? `${Math.round(a / 86400)} d` : `${Math.round(a / (86400 * 365))} y`;
  return a === 0 ? "now" : s > 0 ? `in ${t}` : `${t} ago`;
};
const shortId = (id) => `${String(id).slice(0, 10)}…`;
const badge = (s) => `<span class="badge ${esc(s)}">${esc(s)}</span>`;
const json = (v) => esc(JSON.stringify(v, null, 2));

// `keep`: the toast announces a navigation, so the next page keeps it.
function toast(text, bad, keep) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  toast.keep = !!keep;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 3500);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  if (r.status === 401) {
    const t = prompt("This server needs an API token:");
    if (t) { token = t; localStorage.setItem("spane.token", t); return api(path, options); }
  }
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw Object.assign(new Error(body.detail || body.title || r.statusText), { problem: body });
  return body;
}

function events(path, handlers) {
  const sep = path.includes("?") ? "&" : "?";
  const es = new EventSource(token ? `${path}${sep}access_token=${encodeURIComponent(token)}` : path);
  for (const [name, fn] of Object.entries(handlers)) {
    if (name === "open" || name === "error") es[`on${name}`] = fn;
    else es.addEventListener(name, (m) => fn(JSON.parse(m.data), m));
  }
  cleanup.push(() => es.close());
  return es;
}

async function refreshStats() {
  try {
    const s = await api("/queue/stats");
    document.getElementById("dlq-count").textContent = s.deadLetters || "";
    const by = s.executionsByStatus || {};
    document.getElementById("stats").innerHTML = ["running", "completed", "failed"]
      .map((k) => `<span>${k} <b>${by[k] || 0}</b></span>`).join("");
  } catch (_) { /* the header is best effort */ }
}

// ---- Executions list -------------------------------------------------------------------
async function executionsPage(params) {
  const status = params.get("status") || "";
  const cursors = [];  // cursors of the pages before the current one
  let cursor = null;
  view.innerHTML = `
    <h1>Executions</h1>
    <div class="panel">
      <h2>Start an execution</h2>
      <div class="start">
        <select id="wf"></select>
        <textarea id="data" spellcheck="false">{}</textarea>
        <button class="primary" id="start">Start</button>
      </div>
    </div>
    <div class="panel">
      <div class="toolbar">
        <label>Status <select id="status">
          ${["", "running", "paused", "completed", "failed", "cancelled"].map((s) => `<option value="${s}" ${s === status ? "selected" : ""}>${s || "any"}</option>`).join("")}
        </select></label>
        <span class="grow"></span>
        <span id="live" class="live">live</span>
      </div>
      <table><thead><tr><th>Execution</th><th>Workflow</th><th>Status</th><th>Started</th><th>Duration</th><th>Nodes</th></tr></thead>
      <tbody id="rows"><tr><td colspan="6" class="empty">Loading…</td></tr></tbody></table>
      <div class="pager"><button id="prev" disabled>← Newer</button><button id="next" disabled>Older →</button></div>
    </div>`;
  const wfSelect = document.getElementById("wf");
  api("/workflows?limit=500").then((list) => {
    wfSelect.innerHTML = list.items.map((w) => `<option value="${esc(w.id)}">${esc(w.name || w.id)}</option>`).join("");
  }).catch((e) => toast(e.message, true));
  document.getElementById("status").onchange = (e) => { location.hash = `#/executions${e.target.value ? `?status=${e.target.value}` : ""}`; };
  document.getElementById("start").onclick = async () => {
    let data;
    try { data = JSON.parse(document.getElementById("data").value || "null"); } catch (e) { return toast(`Input is not JSON: ${e.message}`, true); }
    try {
      const r = await api(`/workflows/${encodeURIComponent(wfSelect.value)}/executions`, { method: "POST", body: { data } });
      location.hash = `#/executions/${r.executionId}`;
    } catch (e) { toast(e.message, true); }
  };
  async function load() {
    const q = new URLSearchParams({ limit: "20" });
    if (status) q.set("status", status);
    if (cursor) q.set("cursor", cursor);
    let page;
    try { page = await api(`/executions?${q}`); } catch (e) {
      document.getElementById("rows").innerHTML = `<tr><td colspan="6" class="empty">${esc(e.message)}</td></tr>`;
      return;
    }
    const rows = page.items.map((x) => {
      const results = Object.values(x.nodeResults || {});
      const done = results.filter((r) => r.status === "completed").length;
      return `<tr data-execution-id="${esc(x.executionId)}">
        <td class="mono"><a href="#/executions/${esc(x.executionId)}">${esc(x.executionId)}</a></td>
        <td>${esc(x.workflowId)} <span class="muted">v${esc(x.workflowVersion)}</span></td>
        <td>${badge(x.status)}</td><td>${fmtTime(x.createdAt)}</td>
        <td>${fmtDur(x.createdAt, x.finishedAt)}</td><td class="muted">${done}/${results.length} done</td></tr>`;
    }).join("");
    document.getElementById("rows").innerHTML = rows || `<tr><td colspan="6" class="empty">No executions${status ? ` with status ${esc(status)}` : ""} yet.</td></tr>`;
    const next = document.getElementById("next"), prev = document.getElementById("prev");
    next.disabled = !page.nextCursor;
    prev.disabled = cursors.length === 0;
    next.onclick = () => { cursors.push(cursor); cursor = page.nextCursor; load(); };
    prev.onclick = () => { cursor = cursors.pop() ?? null; load(); };
  }
  await load();
  // Live: reload the first page when an execution changes state (at most twice a second).
  let pending = null;
  const live = document.getElementById("live");
  events("/events", {
    open: () => live.classList.add("on"),
    error: () => live.classList.remove("on"),
    "workflow:status": () => {
      if (cursor || pending) return;
      pending = setTimeout(() => { pending = null; load(); refreshStats(); }, 500);
    },
  });
  cleanup.push(() => clearTimeout(pending));
}

// ---- One execution: its DAG, live ------------------------------------------------------
function layout(nodes) {
  // Layer = longest path from a root; within a layer, order by the mean position of parents.
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const layer = new Map();
  const depth = (id, seen = new Set()) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const n = byId.get(id);
    const d = (n.inputs || []).filter((p) => byId.has(p)).reduce((m, p) => Math.max(m, depth(p, seen) + 1), 0);
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id));
  const layers = [];
  nodes.forEach((n) => (layers[layer.get(n.id)] ||= []).push(n.id));
  const pos = new Map();
  layers.forEach((ids, l) => {
    if (l > 0) {
      const key = (id) => { const ps = (byId.get(id).inputs || []).map((p) => pos.get(p)).filter((v) => v !== undefined); return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0; };
      ids.sort((a, b) => key(a) - key(b));
    }
    ids.forEach((id, i) => pos.set(id, i - (ids.length - 1) / 2));
  });
  return { layer, pos, layers };
}

function drawDag(definition, states, children = {}) {
  const W = 168, H = 54, GX = 70, GY = 26;
  const { layer, pos, layers } = layout(definition.nodes);
  const widest = Math.max(...layers.map((l) => l.length));
  const width = layers.length * (W + GX) - GX + 40, height = widest * (H + GY) - GY + 40;
  const xy = (id) => [20 + layer.get(id) * (W + GX), height / 2 - H / 2 + pos.get(id) * (H + GY)];
  let edges = "", boxes = "";
  for (const n of definition.nodes) {
    const [x, y] = xy(n.id);
    for (const p of n.inputs || []) {
      if (!layer.has(p)) continue;
      const [px, py] = xy(p);
      const x1 = px + W, y1 = py + H / 2, x2 = x, y2 = y + H / 2, mx = (x1 + x2) / 2;
      edges += `<path class="edge" marker-end="url(#arrow)" d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 2},${y2}"/>`;
    }
    const st = states[n.id] || "pending";
    const max = n.type === "sub-workflow" && children[n.id]?.length ? 13 : 20;  // room for the child link
    const label = n.id.length > max ? `${n.id.slice(0, max - 1)}…` : n.id;
    boxes += `<g class="node" data-node-id="${esc(n.id)}" data-state="${esc(st)}" transform="translate(${x},${y})">
      <rect width="${W}" height="${H}" rx="8"/><title>${esc(n.id)} (${esc(n.type)})</title>
      <text x="12" y="21">${esc(label)}</text>
      <text class="type" x="12" y="40">${esc(n.type)}</text>
      <text class="state" x="${W - 12}" y="40" text-anchor="end">${esc(st)}</text>${childLink(n, children[n.id], W)}</g>`;
  }
  // Scaled down to the panel's width when wider, never up.
  return `<svg style="width:100%;max-width:${width}px;height:auto" viewBox="0 0 ${width} ${height}">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c5cad3"/></marker></defs>
    ${edges}${boxes}</svg>`;
}

// The link from a sub-workflow node to its latest child execution (earlier ones, from
// retries, are listed in the node's detail panel).
function childLink(node, kids, W) {
  if (node.type !== "sub-workflow" || !kids?.length) return "";
  const child = kids[kids.length - 1];
  return `<a class="child-link" href="#/executions/${esc(child.executionId)}" data-child-id="${esc(child.executionId)}">
    <text x="${W - 12}" y="21" text-anchor="end">child ↗</text><title>Open child execution ${esc(child.executionId)}</title></a>`;
}

const NODE_STATE = { running: "running", completed: "completed", failed: "failed", retrying: "retrying", skipped: "skipped", delayed: "delayed" };

async function executionPage(id) {
  view.innerHTML = `<div class="empty">Loading…</div>`;
  let record, definition;
  try {
    record = await api(`/executions/${encodeURIComponent(id)}`);
    definition = (await api(`/workflows/${encodeURIComponent(record.workflowId)}/versions/${record.workflowVersion}`)).definition;
  } catch (e) { view.innerHTML = `<div class="panel empty">${esc(e.message)}</div>`; return; }
  const states = {};   // node id -> state shown
  const attempts = {}; // node id -> attempts seen in events
  const errors = {};
  let children = {};   // sub-workflow node id -> its child executions, oldest first
  const hasSubWorkflows = definition.nodes.some((n) => n.type === "sub-workflow");
  const loadChildren = async () => {
    if (!hasSubWorkflows) return;
    try {
      const list = await api(`/executions/${encodeURIComponent(id)}/children`);
      children = {};
      for (const c of list.items) (children[c.parentNodeId] ||= []).push(c);
    } catch (_) { /* links are best effort */ }
  };
  await loadChildren();
  let selected = null;
  const fromRecord = (r) => {
    record = r;
    for (const n of definition.nodes) {
      const res = r.nodeResults?.[n.id];
      if (res) { states[n.id] = res.status; attempts[n.id] = res.attempts; if (res.error) errors[n.id] = res.error; }
      else if (["failed", "cancelled"].includes(r.status) && !["running", "retrying"].includes(states[n.id])) states[n.id] = "not run";
      else if (!states[n.id] || states[n.id] === "not run") states[n.id] = "pending";
    }
  };
  fromRecord(record);
  view.innerHTML = `
    <div class="head"><h1>Execution <span class="mono">${esc(id)}</span></h1><span id="status"></span>
      <span id="live" class="live">live</span>
      <div class="actions">
        <button id="pause">Pause</button><button id="resume">Resume</button>
        <button id="why" title="Why is it not progressing?">Why?</button>
        <button class="danger" id="cancel">Cancel</button><button class="primary" id="retry" hidden>Retry failed nodes</button>
      </div></div>
    <div class="meta" id="meta"></div>
    <div class="panel why" id="why-panel" hidden></div>
    <div class="layout">
      <div class="panel"><div class="dag" id="dag"></div>
        <div class="legend">${["pending", "running", "completed", "failed", "retrying", "skipped"].map((s) => `<span><i class="lg-${s}"></i>${s}</span>`).join("")}</div></div>
      <div class="panel detail" id="detail"></div>
    </div>`;
  const legendColors = { pending: "#adb5bd", running: "#1c7ed6", completed: "#2f9e44", failed: "#e03131", retrying: "#f08c00", skipped: "#ced4da" };
  view.querySelectorAll(".legend i").forEach((i) => { const s = i.className.slice(3); i.style.borderColor = legendColors[s]; });
  const render = () => {
    document.getElementById("status").innerHTML = badge(record.status);
    document.getElementById("meta").innerHTML = `
      <span>Workflow <b><a href="#/workflows">${esc(record.workflowId)}</a> v${esc(record.workflowVersion)}</b></span>
      <span>Started <b>${fmtTime(record.createdAt)}</b></span>
      <span>Duration <b>${fmtDur(record.createdAt, record.finishedAt)}</b></span>
      ${record.parentExecutionId ? `<span>Sub-workflow of <b><a id="parent-link" class="mono" href="#/executions/${esc(record.parentExecutionId)}">${esc(shortId(record.parentExecutionId))}</a></b> node <b class="mono">${esc(record.parentNodeId)}</b></span>` : ""}
      ${record.error ? `<span class="error-text">${esc(record.error)}</span>` : ""}`;
    document.getElementById("dag").innerHTML = drawDag(definition, states, children);
    document.querySelectorAll(".node").forEach((g) => {
      if (g.dataset.nodeId === selected) g.classList.add("selected");
      g.onclick = (ev) => { if (ev.target.closest(".child-link")) return; selected = g.dataset.nodeId; render(); };
    });
    const terminal = ["completed", "failed", "cancelled"].includes(record.status);
    document.getElementById("pause").disabled = terminal || record.status === "paused";
    document.getElementById("resume").disabled = record.status !== "paused";
    document.getElementById("cancel").disabled = terminal;
    document.getElementById("retry").hidden = record.status !== "failed";
    document.getElementById("why").hidden = terminal;
    if (terminal) document.getElementById("why-panel").hidden = true;
    renderDetail();
  };
  const renderDetail = () => {
    const el = document.getElementById("detail");
    if (!selected) { el.innerHTML = `<h2>Input</h2><pre>${json(record.initialData)}</pre><p class="muted">Select a node to see its input, output, error and attempts.</p>`; return; }
    const n = definition.nodes.find((x) => x.id === selected);
    const res = record.nodeResults?.[selected] || {};
    const parents = n.inputs || [];
    const input = parents.length === 0 ? record.initialData
      : Object.fromEntries(parents.map((p) => [p, record.nodeResults?.[p]?.data ?? null]));
    el.innerHTML = `<h2>${esc(n.id)} <span class="muted">${esc(n.type)}</span></h2>
      <dl><dt>State</dt><dd>${badge(states[selected] || "pending")}</dd>
      <dt>Attempts</dt><dd>${esc(res.attempts ?? attempts[selected] ?? 0)}</dd>
      <dt>Timing</dt><dd>${fmtTime(res.startedAt)} · ${fmtDur(res.startedAt, res.finishedAt)}</dd>
      ${res.error || errors[selected] ? `<dt>Error</dt><dd class="error-text">${esc(res.error || errors[selected])}</dd>` : ""}
      ${n.type === "sub-workflow" ? `<dt>Child executions</dt><dd>${(children[n.id] || []).map((c) => `<div><a class="mono" href="#/executions/${esc(c.executionId)}">${esc(c.executionId)}</a> ${badge(c.status)}</div>`).join("") || `<span class="muted">none yet</span>`}</dd>` : ""}
      <dt>Input${parents.length ? " (parents' outputs)" : ""}</dt><dd><pre>${json(input)}</pre></dd>
      <dt>Output</dt><dd><pre>${res.data === undefined ? "—" : json(res.data)}</pre></dd>
      <dt>Config</dt><dd><pre>${json(n.config ?? {})}</pre></dd></dl>
      ${["completed", "failed", "cancelled"].includes(record.status) ? `<button id="rerun-from" title="A new execution that keeps every other node's output">Re-run from ${esc(n.id)}</button>` : ""}`;
    const rerun = document.getElementById("rerun-from");
    if (rerun) rerun.onclick = async () => {
      try {
        const r = await api(`/executions/${encodeURIComponent(id)}/rerun`, { method: "POST", body: { fromNode: selected } });
        toast(`re-running ${r.rerun.join(", ")}; kept ${r.kept.join(", ") || "nothing"}`, false, true);
        location.hash = `#/executions/${r.executionId}`;
      } catch (e) { toast(e.message, true); }
    };
  };
  // "Why is it not progressing?": the engine's explanation, one line per unfinished node.
  const whyText = (reason) => {
    const rest = Object.entries(reason).filter(([k]) => k !== "kind" && k !== "child");
    if (reason.kind === "waitingForParents" && Array.isArray(reason.parents))
      return `waits for ${reason.parents.map((p) => `${p.nodeId} (${p.status || "not started"})`).join(", ")}`;
    const show = (k, v) => typeof v === "number" && v > 1e12 && /(^since|At|Until|until)$/.test(k) ? fmtIn(v)
      : typeof v === "object" ? JSON.stringify(v) : v;
    return rest.map(([k, v]) => `${k}: ${show(k, v)}`).join(" · ");
  };
  const words = (kind) => kind.replace(/([A-Z])/g, " $1").toLowerCase();
  document.getElementById("why").onclick = async () => {
    const panel = document.getElementById("why-panel");
    try {
      const e = await api(`/executions/${encodeURIComponent(id)}/explain`);
      panel.innerHTML = `<h2>Why is it not progressing?</h2><p class="summary">${esc(e.summary)}</p>
        <ul class="why-nodes">${e.nodes.map((n) => `<li data-why-node="${esc(n.nodeId)}"><b class="mono">${esc(n.nodeId)}</b>
          <span class="badge ${esc(n.status || "pending")}" data-kind="${esc(n.reason.kind)}">${esc(words(n.reason.kind))}</span> <span class="muted">${esc(whyText(n.reason))}</span></li>`).join("")}</ul>`;
      panel.hidden = false;
    } catch (err) { toast(err.message, true); }
  };
  render();
  const act = (name, path) => (document.getElementById(name).onclick = async () => {
    try { await api(path, { method: "POST" }); toast(`${name} sent`); } catch (e) { toast(e.message, true); }
  });
  act("pause", `/executions/${id}/pause`);
  act("resume", `/executions/${id}/resume`);
  act("cancel", `/executions/${id}/cancel`);
  act("retry", `/dlq/${id}/retry`);
  let refetch = null;
  const reload = () => {
    clearTimeout(refetch);
    refetch = setTimeout(async () => { try { fromRecord(await api(`/executions/${id}`)); await loadChildren(); render(); } catch (_) {} }, 150);
  };
  cleanup.push(() => clearTimeout(refetch));
  const live = document.getElementById("live");
  events(`/executions/${encodeURIComponent(id)}/events`, {
    open: () => live.classList.add("on"),
    error: () => live.classList.remove("on"),
    snapshot: (r) => { fromRecord(r); render(); },
    "node:progress": (e) => {
      states[e.nodeId] = NODE_STATE[e.status] || e.status;
      if (e.attempt) attempts[e.nodeId] = e.attempt;
      if (e.error) errors[e.nodeId] = e.error;
      render();
      const sub = definition.nodes.find((n) => n.id === e.nodeId)?.type === "sub-workflow";
      if (e.status === "completed" || e.status === "failed" || (sub && e.status === "running")) reload();
    },
    "workflow:status": (e) => {
      record.status = { started: "running", resumed: "running" }[e.status] || e.status;
      if (e.error) record.error = e.error;
      render();
      reload();
      refreshStats();
    },
  });
}

// ---- Workflows -------------------------------------------------------------------------
async function workflowsPage() {
  view.innerHTML = `<h1>Workflows</h1><div class="panel"><table><thead><tr><th>Workflow</th><th>Name</th><th>Version</th><th>Active</th><th>Nodes</th><th></th></tr></thead><tbody id="rows"><tr><td colspan="6" class="empty">Loading…</td></tr></tbody></table></div>`;
  try {
    const list = await api("/workflows?limit=500");
    const rows = await Promise.all(list.items.map(async (w) => {
      const v = await api(`/workflows/${encodeURIComponent(w.id)}`);
      return `<tr><td class="mono">${esc(w.id)}</td><td>${esc(w.name)}</td><td>v${esc(w.latestVersion)}</td>
        <td>${w.active === false ? badge("cancelled").replace("cancelled", "inactive") : w.active ? badge("completed").replace("completed", "active") : "—"}</td>
        <td>${v.definition.nodes.length}</td>
        <td><button class="primary" data-run="${esc(w.id)}">Run</button></td></tr>`;
    }));
    document.getElementById("rows").innerHTML = rows.join("") || `<tr><td colspan="6" class="empty">No workflows registered.</td></tr>`;
    view.querySelectorAll("[data-run]").forEach((b) => (b.onclick = async () => {
      try { const r = await api(`/workflows/${encodeURIComponent(b.dataset.run)}/executions`, { method: "POST", body: { data: {} } }); location.hash = `#/executions/${r.executionId}`; } catch (e) { toast(e.message, true); }
    }));
  } catch (e) { document.getElementById("rows").innerHTML = `<tr><td colspan="6" class="empty">${esc(e.message)}</td></tr>`; }
}

// ---- Schedules -------------------------------------------------------------------------
async function schedulesPage() {
  view.innerHTML = `<div class="head"><h1>Schedules</h1></div>
    <div class="panel">
      <h2>Add a cron schedule</h2>
      <div class="add-schedule">
        <select id="sched-wf"></select>
        <input id="sched-cron" placeholder="cron: */5 * * * *" spellcheck="false">
        <input id="sched-tz" placeholder="time zone (UTC)" spellcheck="false">
        <button class="primary" id="sched-add">Add</button>
      </div>
    </div>
    <div class="panel"><table><thead><tr><th>Workflow</th><th>When</th><th>Next fire</th><th>Last fire</th><th class="nowrap">Last run</th><th>Fires</th><th>Source</th><th></th></tr></thead>
    <tbody id="rows"><tr><td colspan="8" class="empty">Loading…</td></tr></tbody></table></div>`;
  api("/workflows?limit=500").then((list) => {
    document.getElementById("sched-wf").innerHTML = list.items.map((w) => `<option value="${esc(w.id)}">${esc(w.name || w.id)}</option>`).join("");
  }).catch((e) => toast(e.message, true));
  const when = (s) => s.kind === "cron"
    ? `<span class="mono">${esc(s.cron)}</span> <span class="muted">${esc(s.timezone || "UTC")}</span>`
    : `once <span class="muted">at ${esc(fmtShort(s.at))}</span>`;
  const load = async () => {
    try {
      const list = await api("/schedules");
      document.getElementById("rows").innerHTML = list.items.map((s) => `<tr data-schedule-id="${esc(s.id)}">
        <td><b>${esc(s.workflowId)}</b><div class="muted mono small">${esc(s.id)}</div></td>
        <td>${when(s)}</td>
        <td class="nowrap">${s.nextFire ? `${esc(fmtShort(s.nextFire))}<div class="muted small">${esc(fmtIn(s.nextFire))}</div>` : "—"}</td>
        <td class="nowrap">${s.lastFire ? `${esc(fmtShort(s.lastFire))}<div class="muted small">${esc(fmtIn(s.lastFire))}</div>` : `<span class="muted">never</span>`}</td>
        <td>${s.lastExecutionId ? `<a class="mono last-execution" href="#/executions/${esc(s.lastExecutionId)}">${esc(shortId(s.lastExecutionId))}</a>` : "—"}</td>
        <td>${esc(s.fires)}${s.misses ? ` <span class="muted">(${esc(s.misses)} missed)</span>` : ""}</td>
        <td><span class="tag">${esc(s.source)}</span></td>
        <td><button class="danger" data-remove="${esc(s.id)}">${s.kind === "once" ? "Cancel" : "Remove"}</button></td></tr>`).join("")
        || `<tr><td colspan="8" class="empty">No schedules. Add one above, or give a workflow a <span class="mono">schedule</span> trigger.</td></tr>`;
      view.querySelectorAll("[data-remove]").forEach((b) => (b.onclick = async () => {
        if (!confirm(`Remove schedule ${b.dataset.remove}?`)) return;
        try { await api(`/schedules/${encodeURIComponent(b.dataset.remove)}`, { method: "DELETE" }); toast("Schedule removed"); load(); } catch (e) { toast(e.message, true); }
      }));
    } catch (e) { document.getElementById("rows").innerHTML = `<tr><td colspan="8" class="empty">${esc(e.message)}</td></tr>`; }
  };
  document.getElementById("sched-add").onclick = async () => {
    const body = { workflowId: document.getElementById("sched-wf").value, cron: document.getElementById("sched-cron").value.trim() };
    const tz = document.getElementById("sched-tz").value.trim();
    if (tz) body.timezone = tz;
    try { await api("/schedules", { method: "POST", body }); toast("Schedule saved"); load(); } catch (e) { toast(e.message, true); }
  };
  await load();
  // Fires happen on the server's clock: refresh the table every 5 s while it is shown.
  const timer = setInterval(load, 5000);
  cleanup.push(() => clearInterval(timer));
}

// ---- Dead letters ----------------------------------------------------------------------
async function dlqPage() {
  view.innerHTML = `<div class="head"><h1>Dead letters</h1><div class="actions"><button class="danger" id="purge">Purge all</button></div></div>
    <div class="panel"><table><thead><tr><th>Execution</th><th>Workflow</th><th>Node</th><th>Reason</th><th>Error</th><th>Attempts</th><th>Failed</th><th></th></tr></thead>
    <tbody id="rows"><tr><td colspan="8" class="empty">Loading…</td></tr></tbody></table></div>`;
  const load = async () => {
    try {
      const list = await api("/dlq?limit=200");
      document.getElementById("rows").innerHTML = list.items.map((d) => `<tr data-dlq="${esc(d.executionId)}/${esc(d.nodeId)}">
        <td class="mono"><a href="#/executions/${esc(d.executionId)}">${esc(d.executionId)}</a></td>
        <td>${esc(d.workflowId)} <span class="muted">v${esc(d.workflowVersion)}</span></td><td class="mono">${esc(d.nodeId)}</td>
        <td>${badge(d.reason === "stalled" ? "paused" : "failed").replace(/>(paused|failed)</, `>${esc(d.reason)}<`)}</td>
        <td class="error-text">${esc(d.error)}</td><td>${esc(d.attempts)}</td><td>${fmtTime(d.failedAt)}</td>
        <td><button class="primary" data-retry="${esc(d.executionId)}/${esc(d.nodeId)}">Retry</button></td></tr>`).join("")
        || `<tr><td colspan="8" class="empty">The dead-letter queue is empty.</td></tr>`;
      view.querySelectorAll("[data-retry]").forEach((b) => (b.onclick = async () => {
        const [exec, ...node] = b.dataset.retry.split("/");
        try { await api(`/dlq/${exec}/${encodeURIComponent(node.join("/"))}/retry`, { method: "POST" }); toast("Retry started", false, true); location.hash = `#/executions/${exec}`; } catch (e) { toast(e.message, true); }
      }));
    } catch (e) { document.getElementById("rows").innerHTML = `<tr><td colspan="8" class="empty">${esc(e.message)}</td></tr>`; }
  };
  document.getElementById("purge").onclick = async () => {
    if (!confirm("Delete every dead-letter item? Their executions stay failed.")) return;
    try { const r = await api("/dlq", { method: "DELETE" }); toast(`${r.count} items purged`); load(); refreshStats(); } catch (e) { toast(e.message, true); }
  };
  await load();
}

// ---- Router ----------------------------------------------------------------------------
function route() {
  // A toast from an earlier page goes; one that announced this navigation stays.
  if (toast.keep) toast.keep = false; else document.getElementById("toast").hidden = true;
  cleanup.forEach((f) => f());
  cleanup = [];
  const hash = location.hash.slice(1) || "/executions";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === parts[0]));
  refreshStats();
  if (parts[0] === "executions" && parts[1]) return executionPage(parts[1]);
  if (parts[0] === "workflows") return workflowsPage();
  if (parts[0] === "schedules") return schedulesPage();
  if (parts[0] === "dlq") return dlqPage();
  return executionsPage(new URLSearchParams(query || ""));
}
window.addEventListener("hashchange", route);
route();
