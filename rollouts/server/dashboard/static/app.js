// The rollouts dashboard: plain JavaScript over the controller's HTTP API. The token
// stays in this tab's sessionStorage and goes out only as "Authorization: Bearer" to
// this origin. Views poll the API every POLL_MS (live without reload).
"use strict";
(() => {
  const POLL_MS = 2000;
  const KEY = "rollouts-token";
  const ACTIONS = [  // [button, verb, label, request body]
    ["promote", "promote", "Promote", {full: false}],
    ["promote-full", "promote", "Promote full", {full: true}],
    ["pause", "pause", "Pause", null],
    ["resume", "resume", "Resume", null],
    ["retry", "retry", "Retry", null],
    ["abort", "abort", "Abort", null],
  ];
  const COLORS = {canary: "#bf8700", baseline: "#1f6feb", err: "#cf222e", lat: "#8250df"};
  const {esc, fmt, fmtTime} = Charts;
  const $ = id => document.getElementById(id);
  let timer = null, gen = 0, armed = null, notice = null;
  const openDetails = new Set();

  const token = () => sessionStorage.getItem(KEY) || "";

  class ApiError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, opts = {}) {
    const r = await fetch(path, {...opts, headers: {
      "Authorization": `Bearer ${token()}`, ...(opts.body ? {"Content-Type": "application/json"} : {})}});
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (r.status === 401) { logout("session ended: " + ((body && body.detail) || "token not accepted")); throw new ApiError(401, "unauthenticated"); }
    if (!r.ok) throw new ApiError(r.status, (body && (body.detail || body.message)) || `HTTP ${r.status}`);
    return body;
  }

  function live(state) { $("live").className = "live " + state; }

  function logout(message) {
    sessionStorage.removeItem(KEY);
    $("whoami").textContent = "";
    history.replaceState(null, "", "#/");  // no hashchange: it would redraw the login without the message
    showLogin(message);
  }

  function badge(text, extra = "") { return `<span class="badge b-${esc(text)} ${extra}">${esc(text)}</span>`; }
  function weights(w) {
    // SVG attributes, not style="": the page's CSP allows no inline style
    const c = Math.max(0, Math.min(100, Number(w.canary) || 0));
    return `<svg class="weights" viewBox="0 0 100 10" preserveAspectRatio="none"><title>canary ${c}% / stable ${100 - c}%</title><rect width="${c}" height="10" fill="#bf8700"/><rect x="${c}" width="${100 - c}" height="10" fill="#1f6feb"/></svg>`;
  }
  function stepText(r) {
    if (r.strategy === "blueGreen") return "-";
    return r.totalSteps ? `${r.currentStepIndex === null || r.currentStepIndex === undefined ? "-" : r.currentStepIndex}/${r.totalSteps}` : "-";
  }

  // ---- login
  function showLogin(message) {
    stop();
    $("whoami").textContent = "";
    $("logout").hidden = true;
    $("view").innerHTML = `<div class="card login"><h1>Log in</h1>
      <p class="muted">Paste a Kubernetes token the cluster accepts, e.g. <span class="mono">kubectl create token NAME</span>
      or your OIDC token. The controller checks it with a TokenReview and every request with a SubjectAccessReview.
      It is kept in this browser tab only (sessionStorage).</p>
      <form id="login-form"><textarea id="token" placeholder="eyJhbGciOi..." autocomplete="off" spellcheck="false"></textarea>
      <p><button class="primary" type="submit" id="login">Log in</button></p></form>
      <div id="login-error" class="notice err" ${message ? "" : "hidden"}>${esc(message || "")}</div></div>`;
    // the page's CSP forbids inline handlers: listeners only
    $("login-form").addEventListener("submit", async ev => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (!t) return;
      sessionStorage.setItem(KEY, t);
      try { await whoami(); route(); } catch (e) {
        sessionStorage.removeItem(KEY);
        const box = $("login-error");
        if (box) { box.hidden = false; box.textContent = e.status === 401 ? "token not accepted by the cluster" : String(e.message); }
      }
    });
  }

  async function whoami() {
    const me = await api("/api/v1/whoami");
    $("whoami").textContent = me.username;
    $("logout").hidden = false;
    return me;
  }

  // ---- polling
  function stop() { gen++; if (timer) clearTimeout(timer); timer = null; }
  function poll(fn) {
    stop();
    const mine = gen;
    const tick = async () => {
      try { await fn(); live("on"); } catch (e) {
        live("err");
        if (!(e instanceof ApiError)) console.error(e);  // a bug of the page, not an API answer
        if (e.status === 401) return;
      }
      if (mine === gen) timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  // ---- list
  function showList() {
    const ns = new URLSearchParams(location.hash.split("?")[1] || "").get("namespace") || "";
    $("view").innerHTML = `<h1>Rollouts</h1><div id="list-error" class="notice err" hidden></div>
      <form id="ns-form" class="muted">namespace: <input id="ns" value="${esc(ns)}" placeholder="all"> <button type="submit">show</button></form>
      <div class="card"><table id="rollout-list"><thead><tr><th>namespace</th><th>name</th><th>strategy</th><th>phase</th><th>step</th><th>weights</th><th>ready</th><th>message</th></tr></thead><tbody></tbody></table></div>`;
    $("ns-form").addEventListener("submit", ev => { ev.preventDefault(); const v = $("ns").value.trim(); location.hash = v ? `#/?namespace=${encodeURIComponent(v)}` : "#/"; });
    poll(async () => {
      let data;
      try {
        data = await api(ns ? `/api/v1/namespaces/${encodeURIComponent(ns)}/rollouts` : "/api/v1/rollouts");
        $("list-error").hidden = true;
      } catch (e) {
        if (e.status === 401) throw e;
        $("list-error").hidden = false;
        $("list-error").textContent = e.status === 403 ? `${e.message} (enter a namespace you may list)` : e.message;
        throw e;
      }
      const rows = data.items.map(r => `<tr class="link" data-ns="${esc(r.namespace)}" data-name="${esc(r.name)}">
        <td>${esc(r.namespace)}</td><td><a href="#/rollouts/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}">${esc(r.name)}</a></td>
        <td>${esc(r.strategy)}</td><td class="phase">${badge(r.phase)}${r.aborted ? " " + badge("aborted", "b-Degraded") : ""}</td>
        <td class="step">${stepText(r)}</td><td class="weights-cell">${r.strategy === "blueGreen" ? "-" : `${weights(r.weights)} <span class="mono">${r.weights.canary}/${r.weights.stable}</span>`}</td>
        <td>${r.replicas.ready}/${r.replicas.desired === null ? "?" : r.replicas.desired}</td><td class="muted">${esc(r.message)}</td></tr>`);
      const tbody = document.querySelector("#rollout-list tbody");
      const html = rows.join("") || `<tr><td colspan="8" class="muted">no rollouts</td></tr>`;
      if (tbody.innerHTML !== html && tbody.dataset.html !== html) { tbody.innerHTML = html; tbody.dataset.html = html; }
    });
    document.querySelector("#rollout-list").addEventListener("click", ev => {
      const tr = ev.target.closest("tr[data-name]");
      if (tr && ev.target.tagName !== "A") location.hash = `#/rollouts/${encodeURIComponent(tr.dataset.ns)}/${encodeURIComponent(tr.dataset.name)}`;
    });
  }

  // ---- one rollout
  function showRollout(ns, name) {
    armed = null; notice = null;
    const base = `/api/v1/namespaces/${encodeURIComponent(ns)}/rollouts/${encodeURIComponent(name)}`;
    $("view").innerHTML = `<p><a href="#/">&larr; all rollouts</a></p><div id="rollout"><p class="muted">loading...</p></div>`;
    let access = null, accessAt = 0;
    const render = async () => {
      const now = Date.now();
      const [tree, acc] = await Promise.all([
        api(`${base}/tree`),
        now - accessAt > 10000 || !access ? api(`${base}/access`).catch(e => { if (e.status === 401) throw e; return null; }) : Promise.resolve(access)]);
      if (acc !== access) { access = acc; accessAt = now; }
      paint(ns, name, base, tree, access);
    };
    poll(async () => {
      try { await render(); } catch (e) {
        if (e.status !== 401) { shown = ""; $("rollout").innerHTML = `<div class="notice err" id="rollout-error">${esc(e.message)}</div>`; }
        throw e;
      }
    });
    $("rollout").addEventListener("click", async ev => {
      const b = ev.target.closest("button[data-action]");
      if (!b) return;
      const id = b.dataset.action;
      if (armed !== id) { armed = id; notice = null; repaint(); return; }  // first click arms
      armed = null;
      const [, verb, label, body] = ACTIONS.find(a => a[0] === id);
      try {
        const r = await api(`${base}/${verb}`, {method: "POST", body: body ? JSON.stringify(body) : undefined});
        notice = {ok: true, text: `${label} recorded by ${r.user} (id ${r.id.slice(0, 8)}): the controller applies it`};
      } catch (e) {
        notice = {ok: false, text: `${label} refused (${e.status}): ${e.message}`};
      }
      repaint();
    });
    $("rollout").addEventListener("toggle", ev => {
      const d = ev.target;
      if (d.tagName === "DETAILS" && d.dataset.key) d.open ? openDetails.add(d.dataset.key) : openDetails.delete(d.dataset.key);
    }, true);
    let last = null, shown = "";
    const repaint = () => { if (last) paint(...last); };
    function paint(...args) {
      last = args;
      const [, , , tree, acc] = args;
      const html = rolloutHtml(tree, acc);
      if (html === shown) return;  // unchanged: keep the nodes (a click in progress, an open <details>)
      shown = html;
      $("rollout").innerHTML = html;
      for (const d of document.querySelectorAll("details[data-key]")) d.open = openDetails.has(d.dataset.key);
    }
  }

  function actionsHtml(r, acc) {
    if (!acc) return `<span class="muted">permissions unknown (the access check failed)</span>`;
    const allowed = ACTIONS.filter(([, verb]) => acc.verbs[verb]);
    if (!allowed.length) return `<span class="muted" id="no-actions">${esc(acc.user)} may not act on this rollout (RBAC)</span>`;
    const btns = allowed.map(([id, , label]) => {
      const cls = armed === id ? "confirm" : id === "abort" ? "danger" : id === "promote" ? "primary" : "";
      return `<button data-action="${id}" class="${cls}">${armed === id ? `Confirm ${esc(label.toLowerCase())}` : esc(label)}</button>`;
    }).join("");
    return btns + (armed ? `<span class="muted">click again to confirm</span>` : "");
  }

  function rolloutHtml(t, acc) {
    const r = t.rollout;
    const la = r.lastAction;
    const kv = [
      ["strategy", esc(r.strategy)],
      ["step", `<span id="step">${stepText(r)}</span>`],
      ["weights", r.strategy === "blueGreen" ? "-" : `${weights(r.weights)} <span class="mono" id="weights">canary ${r.weights.canary}% / stable ${r.weights.stable}%</span>`],
      ["replicas", `${r.replicas.ready} ready / ${r.replicas.desired === null ? "?" : r.replicas.desired} desired (${r.replicas.updated} updated)`],
      ["revisions", `canary <span class="mono">${esc(r.revisions.canary || "-")}</span>, stable <span class="mono">${esc(r.revisions.stable || "-")}</span>`],
      ["images", r.containers.map(c => `<span class="mono">${esc(c.name)}=${esc(c.image)}</span>`).join(" ")],
      ...(r.pausedBy ? [["paused by", esc(r.pausedBy)]] : []),
      ...(r.pendingAction ? [["pending action", `${esc(r.pendingAction.action)} by ${esc(r.pendingAction.user || "?")}`]] : []),
      ...(la ? [["last action", `<span id="last-action">${esc(la.action)}${la.full ? " (full)" : ""} by ${esc(la.user || "?")}: ${badge(la.result || "?")} ${esc(la.message || "")}</span>`]] : []),
    ];
    const notes = [...(r.specErrors || []).map(e => `<div class="notice err">spec: ${esc(e)}</div>`),
      ...(notice ? [`<div class="notice ${notice.ok ? "ok" : "err"}" id="action-result">${esc(notice.text)}</div>`] : [])];
    return `<h1>${esc(r.namespace)}/${esc(r.name)} <span id="phase">${badge(r.phase)}</span>${r.aborted ? " " + badge("aborted", "b-Degraded") : ""}</h1>
      <p class="muted" id="message">${esc(r.message || "")}</p>
      <div class="actions" id="actions">${actionsHtml(r, acc)}</div>${notes.join("")}
      <div class="grid"><div class="card"><h2>Status</h2><dl class="kv">${kv.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl></div>
      <div class="card"><h2>Steps</h2>${r.steps.length ? `<ol class="steps" id="steps">${r.steps.map(s => `<li class="${s.state}" data-state="${s.state}">${s.index}. ${esc(s.description)}</li>`).join("")}</ol>` : `<p class="muted">no steps</p>`}
      ${r.analysis ? `<h3>Analysis of this rollout</h3>${r.analysis.runs.map(a => `<div>${esc(a.kind)} ${badge(a.phase || "?")} <span class="mono">${esc(a.name)}</span>${a.current ? "" : ` <span class="muted">(earlier revision)</span>`} <span class="muted">${esc(a.message || "")}</span></div>`).join("")}` : ""}</div></div>
      <h2>ReplicaSets and pods</h2><div class="grid" id="replicasets">${t.replicaSets.map(rsHtml).join("") || `<p class="muted">none</p>`}</div>
      <h2>AnalysisRuns</h2><div id="analysisruns">${t.analysisRuns.map(runHtml).join("") || `<p class="muted">none</p>`}</div>
      <h2>Events</h2><div class="card">${t.eventsError ? `<p class="muted">${esc(t.eventsError)}</p>` : ""}<table><tbody>${t.events.map(e => `<tr><td class="mono muted">${esc(e.time)}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}</td><td>${esc(e.message)}</td></tr>`).join("") || `<tr><td class="muted">none</td></tr>`}</tbody></table></div>`;
  }

  const POD_SYMBOL = {Running: "✔", Succeeded: "✔", Pending: "◌", Terminating: "◌", ContainerCreating: "◌", Failed: "✖", CrashLoopBackOff: "✖", ImagePullBackOff: "✖", ErrImagePull: "✖"};
  function rsHtml(rs) {
    return `<div class="card rs" data-role="${esc(rs.role)}" data-hash="${esc(rs.hash)}"><h3>${badge(rs.role)} <span class="mono">${esc(rs.name)}</span></h3>
      <div class="muted">revision ${rs.revision} &middot; ${rs.ready}/${rs.desired} ready &middot; <span class="mono">${rs.images.map(esc).join(", ")}</span></div>
      <table class="pods"><tbody>${rs.pods.map(p => `<tr class="pod"><td>${POD_SYMBOL[p.status] || "?"}</td><td class="mono">${esc(p.name)}</td><td>${esc(p.status)}</td><td>${esc(p.ready)}</td><td class="muted">${p.restarts} restarts</td><td class="muted">${esc(p.age)}</td></tr>`).join("") || `<tr><td class="muted" colspan="6">no pods</td></tr>`}</tbody></table></div>`;
  }

  function runHtml(run) {
    return `<div class="card run" data-run="${esc(run.name)}"><h3>${badge(run.phase)} <span class="mono">${esc(run.name)}</span> <span class="muted">${esc(run.kind)}${run.step !== null && run.step !== undefined ? ` (step ${esc(run.step)})` : ""}</span></h3>
      ${run.message ? `<p class="muted">${esc(run.message)}</p>` : ""}
      ${run.metrics.map(m => metricHtml(run, m)).join("")}</div>`;
  }

  function metricHtml(run, m) {
    const c = m.counts;
    const rows = m.measurements.slice().reverse().map(x => `<tr><td class="mono muted">${esc(x.finishedAt || x.startedAt || "")}</td><td>${badge(x.phase || "?")}</td><td class="mono">${esc(x.value === undefined ? "" : x.value)}</td><td>${esc(x.message || "")}</td></tr>`).join("");
    const key = `${run.name}/${m.name}`;
    return `<div class="metric" data-metric="${esc(m.name)}"><div><b>${esc(m.name)}</b> ${badge(m.phase || "Pending")}
      <span class="muted">${c.count} measured: ${c.successful} successful, ${c.failed} failed, ${c.inconclusive} inconclusive, ${c.error} errors</span></div>
      ${m.message ? `<div class="muted">${esc(m.message)}</div>` : ""}
      ${m.judge ? judgeHtml(m.judge, m.message) : numericChart(m)}
      <details data-key="${esc(key)}"><summary>measurements (${m.measurementsTotal})</summary><table><tbody>${rows}</tbody></table></details></div>`;
  }

  function numericChart(m) {
    const pts = m.measurements.map(x => [Date.parse(x.finishedAt || x.startedAt) / 1000, parseFloat(x.value)]).filter(([t, v]) => isFinite(t) && isFinite(v));
    if (pts.length < 2) return "";
    const t0 = pts[0][0];
    return Charts.line({title: `${m.name}: measured value`, series: [{name: "value", color: COLORS.baseline, points: pts.map(([t, v]) => [t - t0, v])}]});
  }

  function judgeHtml(j, msg) {
    const h = j.history || {points: []};
    const ev = j.evidence;
    const head = ev && ev.explanation && ev.explanation !== msg ? `<div class="muted evidence-now">now: ${esc(ev.explanation)}</div>` : "";
    if (h.error) return `${head}<div class="notice err">evidence over time unavailable: ${esc(h.error)}</div>`;
    const pts = h.points;
    if (!pts.length) return `${head}<p class="muted">no judge snapshot yet</p>`;
    const t0 = pts[0].t, span = pts[pts.length - 1].t - t0;
    const x = p => p.t - t0;
    const line = o => Charts.line({xMin: 0, xMax: span, ...o});
    const tests = [...new Set(pts.flatMap(p => Object.keys(p.tests)))];
    const charts = [];
    const eSeries = tests.map((name, i) => ({name: `${name} e-value`, color: i ? COLORS.lat : COLORS.err, points: pts.filter(p => p.tests[name]).map(p => [x(p), p.tests[name].eValue])}));
    const now = pts[pts.length - 1].tests;
    const thrs = [...new Set(tests.map(n => now[n] && now[n].threshold).filter(v => typeof v === "number"))];
    charts.push(line({title: "e-value against its threshold (roll back at or above it)", logY: true, series: eSeries,
      hlines: thrs.map(v => ({y: v, label: `threshold ${fmt(v)}${thrs.length > 1 ? ` (${tests.filter(n => now[n] && now[n].threshold === v).join(", ")})` : ""}`}))}));
    for (const [i, name] of tests.entries()) {
      const ps = pts.filter(p => p.tests[name]);
      charts.push(line({title: `${name}: canary/stable ratio, anytime-valid confidence sequence`, logY: true,
        series: [{name: "estimate", color: i ? COLORS.lat : COLORS.err, points: ps.map(p => [x(p), p.tests[name].estimate])}],
        band: {name: "confidence sequence", color: i ? COLORS.lat : COLORS.err, points: ps.map(p => [x(p), p.tests[name].low, p.tests[name].high])},
        hlines: [{y: 1, label: "equal", color: "#57606a"}]}));
    }
    if (pts.some(p => p.canaryErrorRate !== undefined)) {
      charts.push(line({title: "error rate per arm (cumulative)", yMin: 0, yFormat: v => `${+(v * 100).toPrecision(3)}%`,
        series: [{name: "canary", color: COLORS.canary, points: pts.map(p => [x(p), p.canaryErrorRate])},
                 {name: "stable (baseline)", color: COLORS.baseline, points: pts.map(p => [x(p), p.baselineErrorRate])}]}));
    }
    charts.push(line({title: "requests per arm (cumulative)", yMin: 0,
      series: [{name: "canary", color: COLORS.canary, points: pts.map(p => [x(p), p.canaryRequests])},
               {name: "stable (baseline)", color: COLORS.baseline, points: pts.map(p => [x(p), p.baselineRequests])}]}));
    return `${head}<div class="grid judge-charts" data-looks="${pts.length}">${charts.map(s => `<div>${s}</div>`).join("")}</div>
      <div class="legend">${pts.length} looks over ${fmtTime(pts[pts.length - 1].t - t0)}; replayed from the run's stored counter snapshots</div>`;
  }

  // ---- routing
  async function route() {
    if (!token()) { showLogin(""); return; }
    if (!$("whoami").textContent) {
      try { await whoami(); } catch (e) { if (e.status !== 401) showLogin(e.message); return; }
    }
    const m = location.hash.match(/^#\/rollouts\/([^/]+)\/([^/?]+)/);
    if (m) showRollout(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    else showList();
  }
  $("logout").addEventListener("click", () => logout(""));
  window.addEventListener("hashchange", route);
  route();
})();
