"use strict";
// The status page: polls GET /admin/status (the document `graphfleet ctl` reads too) and
// updates the page in place, so keyboard focus stays where it was between updates. Actions
// are the admin API's own calls, with the session's CSRF token in X-CSRF-Token.
(() => {
  const POLL_MS = 2000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const rows = new Map();
  const lastStates = new Map();
  let strategiesShown = "";
  let paused = false;

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (response.status === 401) {
      window.location.reload(); // the session expired: the server shows the login form
      throw new Error("signed out");
    }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error.message : `HTTP ${response.status}`);
    }
    return data;
  }

  function announce(message) {
    $("announce").textContent = message;
  }

  async function act(label, method, path, body) {
    try {
      await api(method, path, body);
      announce(`${label}: done.`);
      $("problem").textContent = "";
    } catch (err) {
      $("problem").textContent = `${label} failed: ${err.message}`;
    }
    refresh();
  }

  const fmt = {
    num: (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits)),
    ms: (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(v < 10 ? 1 : 0)} ms`),
    pct: (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`),
    age: (v) => (v === null || v === undefined ? "never" : `${Number(v).toFixed(1)} s ago`),
  };

  function cell(row, label) {
    const td = document.createElement("td");
    td.dataset.label = label;
    row.appendChild(td);
    return td;
  }

  function button(text, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  function makeRow(id) {
    const tr = document.createElement("tr");
    tr.dataset.instance = id;
    const th = document.createElement("th");
    th.scope = "row";
    th.dataset.label = "Instance";
    tr.appendChild(th);
    const labels = ["State", "In flight", "Load / capacity", "Req/s", "Errors", "p50", "p99",
      "Last check", "Ejections", "Runs (running / queued)"];
    const cells = labels.map((label) => cell(tr, label));
    const cellOfActions = cell(tr, "Actions");
    cellOfActions.className = "actions";
    const actions = document.createElement("div");
    actions.className = "buttons";
    cellOfActions.appendChild(actions);
    const path = `/admin/instances/${encodeURIComponent(id)}`;
    const drain = button("Drain", () => act(`Drain ${id}`, "POST", `${path}/drain`));
    const enable = button("Enable", () => act(`Enable ${id}`, "POST", `${path}/enable`));
    const remove = button("Remove", () => {
      // Two steps instead of a modal dialog: a second press within 5 s confirms.
      if (remove.dataset.armed === "1") {
        remove.dataset.armed = "";
        remove.textContent = "Remove";
        act(`Remove ${id}`, "DELETE", path);
        return;
      }
      remove.dataset.armed = "1";
      remove.textContent = "Confirm remove";
      setTimeout(() => { remove.dataset.armed = ""; remove.textContent = "Remove"; }, 5000);
    });
    for (const [b, verb] of [[drain, "Drain"], [enable, "Enable"], [remove, "Remove"]]) {
      b.setAttribute("aria-label", `${verb} ${id}`);
      actions.appendChild(b);
    }
    return { tr, th, cells, drain, enable, remove };
  }

  function renderInstances(instances) {
    const tbody = document.querySelector("#instances tbody");
    const seen = new Set();
    for (const inst of instances) {
      seen.add(inst.id);
      let row = rows.get(inst.id);
      if (!row) {
        row = makeRow(inst.id);
        rows.set(inst.id, row);
      }
      tbody.appendChild(row.tr); // keeps the document's order; moving keeps focus inside
      row.th.textContent = inst.id;
      row.th.title = inst.url;
      const state = inst.pending_removal ? `${inst.state} (removing)` : inst.state;
      const values = [
        state,
        String(inst.inflight),
        `${inst.reported_load} / ${inst.max_capacity}`,
        fmt.num(inst.requests_per_s),
        fmt.pct(inst.error_ratio),
        fmt.ms(inst.p50_ms),
        fmt.ms(inst.p99_ms),
        fmt.age(inst.last_check_age_s),
        String(inst.ejections),
        inst.runs ? `${inst.runs.running} / ${inst.runs.queued}` : "–",
      ];
      values.forEach((v, i) => { if (row.cells[i].textContent !== v) row.cells[i].textContent = v; });
      row.cells[0].className = `state state-${inst.state}`;
      row.drain.disabled = inst.draining;
      row.enable.disabled = !inst.draining && !inst.pending_removal;
      const before = lastStates.get(inst.id);
      if (before !== undefined && before !== inst.state) announce(`${inst.id} is now ${inst.state}.`);
      lastStates.set(inst.id, inst.state);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
        lastStates.delete(id);
        announce(`${id} left the fleet.`);
      }
    }
    $("no-instances").hidden = instances.length > 0;
  }

  function chart(containerId, series, captionId, caption, digits = 1) {
    // Inline SVG polylines over the sampled history; the caption carries the numbers.
    const W = 300, H = 80, NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    const all = series.flatMap((s) => s.values.filter((v) => v !== null));
    const max = Math.max(1e-9, ...all);
    series.forEach((s, index) => {
      const n = s.values.length;
      const points = s.values
        .map((v, i) => (v === null ? null : `${n > 1 ? (i / (n - 1)) * W : 0},${H - 2 - (v / max) * (H - 4)}`))
        .filter((p) => p !== null);
      const line = document.createElementNS(NS, "polyline");
      line.setAttribute("points", points.join(" "));
      line.setAttribute("class", `series series-${index}`);
      svg.appendChild(line);
    });
    const box = $(containerId);
    box.replaceChildren(svg);
    const latest = series.map((s) => `${s.name} ${fmt.num(s.values[s.values.length - 1], digits)}`);
    const peak = fmt.num(all.length ? max : null, digits);
    $(captionId).textContent = `${caption} — now ${latest.join(", ") || "–"}; peak ${peak}`;
  }

  function renderCharts(history) {
    const p = history.points;
    chart("chart-rate", [{ name: "req/s", values: p.map((x) => x.requests_per_s) }],
      "chart-rate-caption", "Requests per second");
    chart("chart-latency", [
      { name: "p50", values: p.map((x) => x.p50_ms) },
      { name: "p99", values: p.map((x) => x.p99_ms) },
    ], "chart-latency-caption", "Latency (ms)");
    chart("chart-size", [
      { name: "instances", values: p.map((x) => x.instances) },
      { name: "taking work", values: p.map((x) => x.routable) },
      { name: "desired", values: p.map((x) => x.desired) },
    ], "chart-size-caption", "Fleet size", 0);
  }

  function renderStrategy(doc) {
    const select = $("strategy");
    const key = doc.strategies.join(",");
    if (key !== strategiesShown) {
      select.replaceChildren(...doc.strategies.map((name) => new Option(name, name)));
      strategiesShown = key;
    }
    if (document.activeElement !== select) select.value = doc.strategy;
  }

  function renderAutoscaler(as) {
    $("autoscaler-off").hidden = as !== null;
    $("autoscaler-on").hidden = as === null;
    if (as === null) return;
    $("as-backend").textContent = as.backend;
    $("as-current").textContent = as.current ?? "–";
    $("as-desired").textContent = as.desired ?? "–";
    paused = as.paused;
    $("as-paused").textContent = as.paused ? "paused" : "running";
    $("as-pause").textContent = as.paused ? "Resume" : "Pause";
    for (const [id, value] of [["as-min", as.min], ["as-max", as.max]]) {
      if (document.activeElement !== $(id)) $(id).value = value;
    }
    $("as-error").textContent = as.last_error ? `Last backend error: ${as.last_error}` : "";
    $("as-decisions").replaceChildren(...as.decisions.map((d) => {
      const li = document.createElement("li");
      const at = new Date(d.at * 1000).toLocaleTimeString();
      li.textContent = `${at} — ${d.action} ${d.current} → ${d.desired} (utilization ${fmt.pct(d.utilization)}): ${d.reason}`;
      return li;
    }));
  }

  function renderRuns(doc) {
    $("sum-running").textContent = doc.runs.running;
    $("sum-queued").textContent = doc.runs.queued;
    const since = doc.runs.counted_since;
    const windowStart = doc.generated_at - doc.runs.window_s;
    $("runs-title").textContent = since === null || since <= windowStart
      ? `Runs ended, last ${Math.round(doc.runs.window_s / 60)} minutes`
      : `Runs ended since ${new Date(since * 1000).toLocaleTimeString()}`;
    const entries = Object.entries(doc.runs.ended);
    $("runs-ended").replaceChildren(...(entries.length ? entries : [["none", 0]]).map(([k, v]) => {
      const li = document.createElement("li");
      li.textContent = k === "none" ? "No run ended." : `${k}: ${v}`;
      return li;
    }));
  }

  function render(doc) {
    $("sum-instances").textContent = doc.instances.length;
    $("sum-routable").textContent = doc.instances.filter((i) => i.state === "healthy").length;
    renderInstances(doc.instances);
    renderStrategy(doc);
    renderCharts(doc.history);
    renderRuns(doc);
    renderAutoscaler(doc.autoscaler);
    $("updated").textContent = `Updated ${new Date(doc.generated_at * 1000).toLocaleTimeString()}`;
  }

  let timer = null;
  async function refresh() {
    try {
      render(await api("GET", "/admin/status"));
      document.body.dataset.loaded = "1";
    } catch (err) {
      $("updated").textContent = `Not updated: ${err.message}`;
    }
    // Whichever refresh ends last (a poll or one after an action) sets the one next poll.
    clearTimeout(timer);
    timer = setTimeout(refresh, POLL_MS);
  }

  $("strategy-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("strategy").value;
    act(`Strategy ${name}`, "PUT", "/admin/strategy", { strategy: name });
  });
  $("autoscaler-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act("Autoscaler bounds", "PUT", "/admin/autoscaler",
      { min: Number($("as-min").value), max: Number($("as-max").value) });
  });
  $("as-pause").addEventListener("click", () => {
    act(paused ? "Resume autoscaler" : "Pause autoscaler", "PUT", "/admin/autoscaler", { paused: !paused });
  });
  $("logout").addEventListener("submit", async (event) => {
    event.preventDefault();
    await api("POST", "/status/logout").catch(() => null);
    window.location.replace("/");
  });
  refresh();
})();
