// The status page's behaviour: ask for a token once, fetch the status with it, run live checks.
//
// The token lives in sessionStorage (this tab only) and goes out only in the Authorization
// header of same-origin API calls. Everything shown is built with DOM nodes and textContent,
// never innerHTML, so a name or message from the API cannot inject markup.
"use strict";

(() => {
  const TOKEN_KEY = "healthd.token";
  const STATUS = {
    ok: { text: "OK", icon: "✓" },
    degraded: { text: "Degraded", icon: "!" },
    failing: { text: "Failing", icon: "✕" },
    unreachable: { text: "Unreachable", icon: "⚠" },
    unknown: { text: "Not checked yet", icon: "?" },
  };
  const SEVERITY = { failing: 0, unreachable: 1, degraded: 2, unknown: 3, ok: 4 };

  let views = new Map(); // integration id -> the API's integration view
  let histories = new Map(); // integration id -> its history summary (GET /api/v1/history)
  let admin = false;
  let shared = []; // the shared services a workspace token is shown (shared_dependencies)
  // The list is read a page at a time (`limit`, `cursor`), filtered by the server: at ten
  // thousand integrations the page renders a hundred cards, never all of them.
  const PAGE_SIZE = 100;
  let cursors = [null]; // the cursor of each page seen so far; the last one is this page's
  let nextCursor = null;
  const tenantsSeen = new Set();

  const byId = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  async function api(method, path) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      throw new ApiError(0, "healthd did not answer; is it running?", null);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
      throw new ApiError(response.status, detail, response.headers.get("Retry-After"));
    }
    return body;
  }

  // -- formatting ---------------------------------------------------------------------------

  function when(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    let ago;
    if (seconds < 60) ago = "just now";
    else if (seconds < 3600) ago = `${Math.floor(seconds / 60)} min ago`;
    else if (seconds < 86400) ago = `${Math.floor(seconds / 3600)} h ago`;
    else ago = `${Math.floor(seconds / 86400)} days ago`;
    const exact = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    return el("time", { datetime: iso, title: exact }, `${exact} (${ago})`);
  }

  function badge(status) {
    const s = STATUS[status] || { text: status, icon: "?" };
    return el(
      "p",
      { class: `badge badge-${status}` },
      el("span", { class: "icon", "aria-hidden": "true" }, s.icon),
      el("span", { class: "visually-hidden" }, "Status: "),
      s.text,
    );
  }

  function percent(share) {
    if (share === null || share === undefined) return "no checks";
    if (share === 1) return "100%";
    return `${Math.min(share * 100, 99.99).toFixed(2)}%`;
  }

  // A length of time as people say it (healthd.history.describe says it the same way).
  function lasted(seconds) {
    const total = Math.floor(seconds);
    if (total < 60) return `${total} s`;
    if (total < 3600) return `${Math.floor(total / 60)} min`;
    const days = Math.floor(total / 86400);
    const hours = Math.floor(total / 3600) % 24;
    const minutes = Math.floor(total / 60) % 60;
    if (days === 0) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
    return hours ? `${days} d ${hours} h` : `${days} d`;
  }

  function milliseconds(seconds) {
    return `${Math.round(seconds * 1000)} ms`;
  }

  // -- history --------------------------------------------------------------------------------

  const DAY_MS = 86400000;
  const SPARK_COLOUR = "#0550ae"; // --accent in status.css

  function dayClass(share) {
    if (share === null) return "day-none";
    if (share === 1) return "day-up";
    if (share >= 0.99) return "day-mostly";
    return "day-down";
  }

  function barLabel(summary) {
    const start = new Date(summary.days_start).getTime();
    const checked = summary.days.map((share, n) => [share, n]).filter(([share]) => share !== null);
    if (!checked.length) return "Uptime over the last 90 days: no checks yet.";
    const full = checked.filter(([share]) => share === 1).length;
    const [worst, at] = checked.reduce((a, b) => (b[0] < a[0] ? b : a));
    const day = new Date(start + at * DAY_MS).toISOString().slice(0, 10);
    const lowest = worst === 1 ? "" : ` The worst day was ${day}, at ${percent(worst)}.`;
    return `Uptime over the last 90 days: checks on ${checked.length} days, every check worked on ${full} of them.${lowest}`;
  }

  function uptimeBar(summary) {
    const start = new Date(summary.days_start).getTime();
    const bar = el("ol", { class: "uptime-bar", role: "img", "aria-label": barLabel(summary) });
    // Plain DOM calls, not `el`: a page of 1,000 integrations makes 90,000 of these cells.
    summary.days.forEach((share, n) => {
      const day = new Date(start + n * DAY_MS).toISOString().slice(0, 10);
      const cell = document.createElement("li");
      cell.className = `day ${dayClass(share)}`;
      cell.dataset.day = day;
      cell.dataset.uptime = share === null ? "" : String(share);
      cell.title = `${day}: ${share === null ? "no checks" : `${percent(share)} of checks worked`}`;
      bar.append(cell);
    });
    return bar;
  }

  function latencyTrend(values) {
    const known = values.filter((v) => v !== null);
    if (!known.length) return el("p", { class: "latency" }, "Latency: no checks in the last 24 hours.");
    const low = Math.min(...known);
    const high = Math.max(...known);
    const width = 144;
    const height = 28;
    const step = width / Math.max(values.length - 1, 1);
    const y = (v) => height - 3 - ((v - low) / (high - low || 1)) * (height - 6);
    const latest = known[known.length - 1];
    const label = `Latency over the last 24 hours, mean per hour: from ${milliseconds(low)} to ${milliseconds(high)}, latest ${milliseconds(latest)}.`;
    // A canvas: one element per card, drawn once; its words are in the label.
    const canvas = el("canvas", { class: "spark", width, height, role: "img", "aria-label": label });
    const pen = canvas.getContext("2d");
    if (pen) {
      pen.strokeStyle = SPARK_COLOUR;
      pen.lineWidth = 1.5;
      pen.beginPath();
      let drawn = 0;
      let x = 0;
      values.forEach((v, n) => {
        if (v === null) return;
        x = n * step;
        if (drawn++ === 0) pen.moveTo(x, y(v));
        else pen.lineTo(x, y(v));
      });
      if (drawn === 1) {
        pen.moveTo(Math.max(x - 8, 0), y(latest)); // one hour: a short dash
        pen.lineTo(Math.max(x, 8), y(latest));
      }
      pen.stroke();
    }
    return el("p", { class: "latency" }, el("span", { "aria-hidden": "true" }, "Latency "), canvas, el("span", { class: "latency-range", "aria-hidden": "true" }, ` ${milliseconds(low)}–${milliseconds(high)}`));
  }

  function incidentItem(incident) {
    const length = incident.open ? `open for ${lasted(incident.duration_seconds)}` : `lasted ${lasted(incident.duration_seconds)}`;
    return el("li", { class: incident.open ? "incident incident-open" : "incident" }, when(incident.opened_at), ` · ${length} · `, incident.summary);
  }

  function historyBlock(summary, headingId) {
    if (!summary) return null;
    const shares = el("dl", { class: "shares" });
    for (const [label, share] of [["24 hours", summary.uptime_24h], ["7 days", summary.uptime_7d], ["30 days", summary.uptime_30d]]) {
      shares.append(el("div", {}, el("dt", {}, `Uptime, ${label}`), el("dd", {}, percent(share))));
    }
    const incidents = summary.incidents.length
      ? [el("h5", { id: `${headingId}-incidents` }, "Recent incidents"), el("ul", { class: "incidents", "aria-labelledby": `${headingId}-incidents` }, summary.incidents.map(incidentItem))]
      : [];
    return el("div", { class: "history" }, shares, uptimeBar(summary), el("p", { class: "bar-legend", "aria-hidden": "true" }, "90 days ago", el("span", {}, "today")), latencyTrend(summary.latency), incidents);
  }

  // -- rendering ----------------------------------------------------------------------------

  // A message-count finding with a provider code: the message ids a provider's support asks
  // for, from the support bundle (the last 24 hours; 7 days for carrier filtering).
  function supportExamples(id, finding) {
    const box = el("div", { class: "examples" });
    const path = `/api/v1/integrations/${encodeURIComponent(id)}/examples?code=${encodeURIComponent(finding.provider_code)}`;
    api("GET", path)
      .then((bundle) => {
        if (!bundle.count) return;
        const span = bundle.window === "7d" ? "7 days" : "24 hours";
        box.append(
          el("p", {}, el("strong", {}, "For a support request: "), `messages with code ${bundle.provider_code} in the last ${span}`),
          el(
            "ul",
            { class: "example-list" },
            bundle.examples.map((e) => el("li", {}, el("code", {}, e.message_id), ` ${e.status}, `, when(e.at))),
          ),
        );
      })
      .catch(() => {}); // the finding stands without its examples
    return box;
  }

  function problemItem(finding, id) {
    const codes = [el("code", {}, finding.code)];
    if (finding.provider_code) codes.push(" (provider code ", el("code", {}, finding.provider_code), ")");
    return el(
      "li",
      { class: `problem problem-${finding.status}` },
      el("p", { class: "problem-summary" }, el("strong", {}, `${(STATUS[finding.status] || {}).text || finding.status}: `), finding.summary),
      finding.remediation ? el("p", { class: "fix" }, el("strong", {}, "Fix: "), finding.remediation) : null,
      el("p", { class: "code" }, "Code ", codes),
      finding.provider_code && finding.count !== null ? supportExamples(id, finding) : null,
    );
  }

  function integrationCard(view) {
    const headingId = `integration-${cssSafe(view.id)}`;
    const details = el("dl", { class: "facts" });
    const fact = (term, value) => {
      if (value === null || value === undefined) return;
      details.append(el("dt", {}, term), el("dd", {}, value));
    };
    fact("Since", when(view.since) || "not yet known");
    fact("Last checked", when(view.last_checked) || "never");
    if (view.last_result_status && view.last_result_status !== view.status) {
      const latest = STATUS[view.last_result_status] || { text: view.last_result_status };
      fact("Latest check", `${latest.text} (not yet confirmed by the next checks)`);
    }
    if (admin) fact("Workspace", view.tenant);
    if (view.fresh === false) fact("Live check", "still running; this is the previous result");
    if (view.name && view.name !== view.id) fact("Id", el("code", {}, view.id));

    const problems = view.problems || [];
    const body = problems.length
      ? [el("h5", { class: "problems-title" }, "What is failing"), el("ul", { class: "problems" }, problems.map((f) => problemItem(f, view.id)))]
      : [el("p", { class: "all-good" }, view.status === "unknown" ? "No result yet." : "Nothing is failing.")];

    return el(
      "li",
      { class: `integration status-${view.status}`, "data-id": view.id, "data-status": view.status },
      el(
        "article",
        { "aria-labelledby": headingId },
        el("div", { class: "integration-head" }, el("h4", { id: headingId }, view.name || view.id), badge(view.status)),
        details,
        body,
        historyBlock(histories.get(view.id), headingId),
      ),
    );
  }

  // The platform's shared services this workspace's messages go through (the iMessage
  // bridge): read-only, with what their state means for this workspace.
  function sharedCard(dep) {
    const details = el("dl", { class: "facts" }, el("dt", {}, "Since"), el("dd", {}, when(dep.since) || "not yet known"));
    return el(
      "li",
      { class: `integration shared status-${dep.status}`, "data-shared": dep.provider, "data-status": dep.status },
      el(
        "article",
        {},
        el("div", { class: "integration-head" }, el("h4", {}, dep.name), badge(dep.status)),
        details,
        el("p", { class: dep.impact ? "impact" : "all-good" }, dep.impact || "Working normally."),
      ),
    );
  }

  function cssSafe(text) {
    return Array.from(text, (c) => (/[A-Za-z0-9_-]/.test(c) ? c : `_${c.codePointAt(0).toString(16)}_`)).join("");
  }

  function shown() {
    return Array.from(views.values());
  }

  function listPath() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const status = byId("status-filter").value;
    const provider = byId("provider-filter").value;
    const tenant = admin ? byId("tenant-filter").value.trim() : "";
    if (status) query.set("status", status);
    if (provider) query.set("provider", provider);
    if (tenant) query.set("tenant", tenant);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    return `/api/v1/integrations?${query}`;
  }

  function fillFilters(providers) {
    const select = byId("provider-filter");
    const chosen = select.value;
    for (const provider of providers) {
      if (!Array.from(select.options).some((option) => option.value === provider)) {
        select.append(el("option", { value: provider }, provider));
      }
    }
    select.value = chosen;
    for (const view of views.values()) tenantsSeen.add(view.tenant);
    byId("tenant-names").replaceChildren(...Array.from(tenantsSeen).sort().map((t) => el("option", { value: t })));
    byId("tenant-field").hidden = !admin;
  }

  function showPager() {
    const many = cursors.length > 1 || nextCursor !== null;
    byId("pager").hidden = !many;
    byId("prev-page").disabled = cursors.length <= 1;
    byId("next-page").disabled = nextCursor === null;
    byId("page-info").textContent = `Page ${cursors.length}`;
  }

  function render() {
    const groups = byId("groups");
    const all = shown();
    const byProvider = new Map();
    const names = new Map(); // provider -> its display name, as the API serves it
    for (const view of all) {
      if (!byProvider.has(view.provider)) byProvider.set(view.provider, []);
      byProvider.get(view.provider).push(view);
      names.set(view.provider, view.provider_name || view.provider);
    }
    const sections = [];
    // The provider with the worst integration first: a failing one is never below the fold.
    const worst = (provider) => Math.min(...byProvider.get(provider).map((v) => SEVERITY[v.status] ?? 9));
    const providers = Array.from(byProvider.keys()).sort((a, b) => worst(a) - worst(b) || names.get(a).localeCompare(names.get(b)));
    for (const provider of providers) {
      const items = byProvider.get(provider).sort(
        (a, b) => (SEVERITY[a.status] ?? 9) - (SEVERITY[b.status] ?? 9) || (a.name || a.id).localeCompare(b.name || b.id),
      );
      const titleId = `provider-${cssSafe(provider)}`;
      sections.push(
        el(
          "section",
          { class: "provider", "aria-labelledby": titleId },
          el("h3", { id: titleId, class: "provider-title" }, names.get(provider), el("span", { class: "count" }, ` · ${counted(items)}`)),
          el("ul", { class: "integrations" }, items.map(integrationCard)),
        ),
      );
    }
    if (!sections.length) sections.push(el("p", { class: "empty" }, "No integrations are connected for this token."));
    if (shared.length) {
      sections.unshift(
        el(
          "section",
          { class: "provider shared-services", "aria-labelledby": "shared-title" },
          el("h3", { id: "shared-title", class: "provider-title" }, "Shared services your messages use"),
          el("ul", { class: "integrations" }, shared.map(sharedCard)),
        ),
      );
    }
    groups.replaceChildren(...sections);
    const where = cursors.length > 1 || nextCursor !== null ? ` on page ${cursors.length}` : "";
    byId("summary").textContent = all.length ? `${all.length} integration${all.length === 1 ? "" : "s"}${where}: ${counted(all)}.` : "";
  }

  function counted(items) {
    const counts = new Map();
    for (const view of items) counts.set(view.status, (counts.get(view.status) || 0) + 1);
    return Array.from(counts.entries())
      .sort((a, b) => (SEVERITY[a[0]] ?? 9) - (SEVERITY[b[0]] ?? 9))
      .map(([status, n]) => `${n} ${(STATUS[status] || { text: status }).text.toLowerCase()}`)
      .join(", ");
  }

  function announce(text) {
    byId("announce").textContent = text;
  }

  // -- flows --------------------------------------------------------------------------------

  function showSignin(message) {
    byId("status").hidden = true;
    byId("signin").hidden = false;
    byId("who").hidden = true;
    byId("forget").hidden = true;
    const error = byId("token-error");
    error.hidden = !message;
    error.textContent = message || "";
    byId("token").focus();
  }

  function showStatus() {
    byId("signin").hidden = true;
    byId("status").hidden = false;
    byId("forget").hidden = false;
    const who = byId("who");
    const tenants = new Set(Array.from(views.values(), (v) => v.tenant));
    who.textContent = admin ? "Signed in with an admin token" : `Workspace: ${Array.from(tenants).join(", ") || "—"}`;
    who.hidden = false;
  }

  function forget(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    views = new Map();
    histories = new Map();
    shared = [];
    admin = false;
    cursors = [null];
    nextCursor = null;
    byId("groups").replaceChildren();
    byId("summary").textContent = "";
    announce("");
    showSignin(message);
  }

  // History is read for the cards on screen only (`?ids=`), after the list is shown: the
  // list never waits for it, and each card gains its bar when it arrives. `fresh` reads
  // them all again (after a health check); otherwise only cards not read yet are asked.
  async function loadHistory(fresh) {
    const ids = shown().map((v) => v.id).filter((id) => fresh || !histories.has(id));
    if (!ids.length) return;
    const summary = await api("GET", `/api/v1/history?ids=${ids.map(encodeURIComponent).join(",")}`);
    for (const h of summary.integrations) histories.set(h.id, h);
    if (!byId("status").hidden) render();
  }

  async function load(fromForm) {
    const groups = byId("groups");
    groups.setAttribute("aria-busy", "true");
    try {
      const me = await api("GET", "/api/v1/me");
      admin = me.role === "admin";
      const list = await api("GET", listPath());
      views = new Map(list.integrations.map((v) => [v.id, v]));
      shared = list.shared_dependencies || [];
      nextCursor = list.next_cursor;
      fillFilters(await providerNames());
      showPager();
      showStatus();
      render();
      if (fromForm) byId("status-title").focus(); // the form is gone: keep the reader's place
      // A refused token shows in the list, which matters; the cards just lack history.
      loadHistory(false).catch(() => {});
    } catch (err) {
      if (err.status === 401) forget("That token was not accepted. Check it and try again.");
      else if (err.status === 400 && !byId("status").hidden) announce(err.message); // a filter
      else showSignin(err.message);
    } finally {
      groups.setAttribute("aria-busy", "false");
    }
  }

  async function runCheck() {
    const button = byId("run-check");
    const groups = byId("groups");
    const targets = shown();
    const tenants = Array.from(new Set(targets.map((v) => v.tenant))).sort();
    if (!tenants.length) {
      announce("There is nothing to check.");
      return;
    }
    button.disabled = true;
    button.textContent = "Checking…";
    groups.setAttribute("aria-busy", "true");
    announce(`Running a live health check of ${targets.length} integration${targets.length === 1 ? "" : "s"}…`);
    const failures = [];
    const answers = await Promise.allSettled(
      tenants.map((tenant) => api("POST", `/api/v1/tenants/${encodeURIComponent(tenant)}/check`)),
    );
    for (const answer of answers) {
      if (answer.status === "fulfilled") {
        for (const view of answer.value.integrations) views.set(view.id, view);
      } else {
        failures.push(answer.reason);
      }
    }
    try {
      await loadHistory(true);
    } catch (err) {
      failures.push(err);
    }
    render();
    groups.setAttribute("aria-busy", "false");
    button.disabled = false;
    button.textContent = "Run health check";
    const time = new Date().toLocaleTimeString(undefined, { timeStyle: "short" });
    if (failures.some((err) => err.status === 401)) {
      forget("The token is no longer accepted. Enter it again.");
      return;
    }
    const limited = failures.find((err) => err.status === 429);
    if (limited) {
      const wait = limited.retryAfter ? ` Try again in ${limited.retryAfter} seconds.` : "";
      announce(`Too many health checks in a short time; healthd limits them to spare the providers.${wait}`);
    } else if (failures.length) {
      announce(`The health check did not complete: ${failures[0].message}`);
    } else {
      const stale = shown().filter((v) => v.fresh === false).length;
      const note = stale ? ` ${stale} did not finish in time and show their previous result.` : "";
      announce(`Health check finished at ${time}: ${counted(shown())}.${note}`);
    }
  }

  let providers = null;
  async function providerNames() {
    // The provider filter's choices, from the API description (public, fetched once).
    if (providers === null) {
      try {
        const doc = await (await fetch("/openapi.json")).json();
        const params = doc.paths["/api/v1/integrations"].get.parameters;
        providers = params.find((p) => p.name === "provider").schema.enum;
      } catch {
        providers = [];
      }
    }
    return providers;
  }

  function start() {
    byId("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      cursors = [null];
      load(false);
    });
    byId("next-page").addEventListener("click", () => {
      if (nextCursor === null) return;
      cursors.push(nextCursor);
      load(false);
    });
    byId("prev-page").addEventListener("click", () => {
      if (cursors.length > 1) cursors.pop();
      load(false);
    });
    byId("token-form").addEventListener("submit", (event) => {
      event.preventDefault(); // the token must not leave in a form post or a URL
      const input = byId("token");
      const token = input.value.trim();
      input.value = "";
      if (!token) {
        showSignin("Enter a token.");
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      load(true);
    });
    byId("forget").addEventListener("click", () => forget(""));
    byId("run-check").addEventListener("click", runCheck);
    if (sessionStorage.getItem(TOKEN_KEY)) load(false);
    else showSignin("");
  }

  start();
})();
