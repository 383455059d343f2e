// app.js: `mutirao dashboard`'s page: polls the JSON API every 2 s and
// renders pools, workers, and the selected pool's dead letters and recent
// failures. Every value goes into the page as text (textContent), never as
// markup: task errors and tracebacks are user text. Retry and drop send
// the token in the X-Mutirao-Token header.
"use strict";

const state = { pool: null, canWrite: false, busy: false };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function iso(ms) {
  return ms ? new Date(ms).toISOString().replace(".000Z", "Z") : "-";
}

function ago(ms) {
  if (!ms) return "-";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? s + "s ago" : Math.round(s / 60) + "m ago";
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderPools(pools) {
  const fields = ["workers", "queued", "running", "completed", "failed", "retried",
                  "dead_lettered", "rate_per_min"];
  if (!state.pool && pools.length) selectPool(pools[0].pool, false);
  fill(document.querySelector("#pools tbody"), pools.map((p) => {
    const tr = el("tr");
    tr.dataset.pool = p.pool;
    if (p.pool === state.pool) tr.className = "selected";
    tr.appendChild(el("td", p.pool));
    for (const f of fields) {
      const td = el("td", p[f], "num");
      td.dataset.field = f;
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => selectPool(p.pool, true));
    return tr;
  }));
}

function renderWorkers(ws) {
  fill(document.querySelector("#workers tbody"), ws.map((w) => {
    const tr = el("tr");
    tr.dataset.worker = w.id;
    tr.appendChild(el("td", w.id));
    tr.appendChild(el("td", w.host || "-"));
    tr.appendChild(el("td", w.pools.length ? w.pools.join(",") : w.serves || "(all)"));
    tr.appendChild(el("td", w.running, "num"));
    tr.appendChild(el("td", w.slots, "num"));
    tr.appendChild(el("td", ago(w.last_seen_ms)));
    tr.appendChild(el("td", w.version || "-"));
    return tr;
  }));
}

function renderDlq(letters) {
  fill(document.querySelector("#dlq tbody"), letters.map((l) => {
    const tr = el("tr");
    tr.dataset.id = l.id;
    tr.appendChild(el("td", l.id));
    tr.appendChild(el("td", l.attempts, "num"));
    tr.appendChild(el("td", iso(l.dead_at_ms)));
    const err = el("td");
    err.appendChild(el("pre", l.error || ""));
    tr.appendChild(err);
    const act = el("td");
    for (const what of ["retry", "drop"]) {
      const b = el("button", what, what);
      b.type = "button";
      b.disabled = !state.canWrite;
      b.title = state.canWrite ? what + " " + l.id : "no token is set: read-only";
      b.addEventListener("click", () => act_on(what, l.id));
      act.appendChild(b);
    }
    tr.appendChild(act);
    return tr;
  }));
}

function renderFailures(fs) {
  const box = document.getElementById("failures");
  if (!fs.length) {
    box.replaceChildren(el("p", "no recent failures", "hint"));
    return;
  }
  box.replaceChildren(...fs.map((f) => {
    const d = el("div", null, "failure");
    d.dataset.id = f.id;
    d.appendChild(el("div", f.id + " · " + f.state + " · attempt " + f.attempts + " · " +
                     (f.worker || "-") + " · " + iso(f.finished_ms)));
    d.appendChild(el("pre", f.error || "(no error kept)"));
    return d;
  }));
}

function selectPool(name, refreshNow) {
  state.pool = name;
  document.getElementById("selected-pool").textContent = name;
  for (const tr of document.querySelectorAll("#pools tbody tr"))
    tr.className = tr.dataset.pool === name ? "selected" : "";
  if (refreshNow) refresh();
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = bad ? "error" : "";
}

function say(text, bad) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = bad ? "error" : "";
}

async function act_on(what, id) {
  const pool = state.pool;
  const token = document.getElementById("token").value;
  try {
    const r = await fetch("/api/dlq/" + encodeURIComponent(pool) + "/" + what, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Mutirao-Token": token },
      body: JSON.stringify({ id: id }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.status);
    say(body.action + " " + id, false);
  } catch (e) {
    say(what + " " + id + ": " + e.message, true);
  }
  refresh();
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const [pools, workers] = await Promise.all([getJSON("/api/pools"), getJSON("/api/workers")]);
    renderPools(pools);
    renderWorkers(workers);
    if (state.pool) {
      const p = encodeURIComponent(state.pool);
      const [dlq, fails] = await Promise.all([
        getJSON("/api/dlq/" + p).catch(() => []),
        getJSON("/api/failures/" + p),
      ]);
      renderDlq(dlq);
      renderFailures(fails);
    }
    setStatus("updated " + new Date().toLocaleTimeString(), false);
    document.body.dataset.loaded = "1";
  } catch (e) {
    setStatus("cannot read the fleet: " + e.message, true);
  } finally {
    state.busy = false;
  }
}

async function start() {
  const tok = document.getElementById("token");
  tok.value = sessionStorage.getItem("mutirao-token") || "";
  tok.addEventListener("change", () => sessionStorage.setItem("mutirao-token", tok.value));
  try {
    state.canWrite = (await getJSON("/api/config")).can_write;
  } catch (e) {
    state.canWrite = false;
  }
  document.getElementById("write-note").textContent = state.canWrite
    ? "Retry and drop send the token above."
    : "Read-only: the dashboard has no token (dashboard.token_file, MUTIRAO_DASHBOARD_TOKEN or --token-file).";
  await refresh();
  setInterval(refresh, 2000);
}

start();
