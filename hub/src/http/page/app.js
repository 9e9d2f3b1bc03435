// Switchyard's status page. Plain JavaScript, no framework, no build step:
// it polls the hub's admin API (docs/admin-api.md) and renders plugins,
// recent records and dead letters. The hub serves it with a strict
// Content-Security-Policy, so everything here builds DOM nodes and sets
// textContent; nothing is ever parsed as HTML.
"use strict";

(() => {
  const REFRESH_MS = 1500;
  const RECORDS_SHOWN = 50;
  const TOKEN_KEY = "switchyard.admin_token";

  const $ = (id) => document.getElementById(id);

  // ---- the admin token ---------------------------------------------------

  // `/#token=…` fills the token in, then leaves the address bar.
  let token = sessionStorage.getItem(TOKEN_KEY);
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl !== null) {
    token = fromUrl;
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, "", location.pathname + location.search);
  }

  /** Thrown by api() on a 401: the page is waiting for a token. */
  class NeedsToken extends Error {}

  let waitingForToken = false;

  function askForToken(refused) {
    if (waitingForToken) return;
    waitingForToken = true;
    $("token-error").textContent = refused ? "The hub refused this token." : "";
    $("token-form").hidden = false;
    $("token-input").focus();
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    token = value;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("token-form").hidden = true;
    waitingForToken = false;
    refresh();
  });

  // ---- the API -------------------------------------------------------------

  /** An error answer of the hub, with its `{"error", "code"}` body. */
  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.error ? body.error : `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
    }
  }

  async function api(method, path, accept = "application/json") {
    const sent = token;
    const headers = { Accept: accept };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const response = await fetch(path, { method, headers, cache: "no-store" });
    if (response.status === 401) {
      // A call sent before the operator typed a new token says nothing
      // about the new one.
      if (token === sent) {
        token = null;
        sessionStorage.removeItem(TOKEN_KEY);
        askForToken(Boolean(sent));
      }
      throw new NeedsToken("the hub needs the admin token");
    }
    if (response.status === 204) return null;
    const isJson = (response.headers.get("content-type") || "").startsWith("application/json");
    const body = isJson ? await response.json() : await response.text();
    if (!response.ok) throw new ApiError(response.status, isJson ? body : null);
    return body;
  }

  // ---- small DOM helpers -------------------------------------------------

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else node[key] = value;
    }
    for (const child of children) node.append(child);
    return node;
  }

  function badge(text, kind) {
    return el("span", { className: `badge ${kind}`, text });
  }

  function setCell(cell, content) {
    if (typeof content === "string") {
      if (cell.textContent !== content || cell.children.length) cell.textContent = content;
    } else {
      cell.replaceChildren(content);
    }
  }

  function showMessage(id, text, isError) {
    const node = $(id);
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  function describe(error) {
    return error instanceof ApiError ? `${error.message} (${error.code || error.status})` : String(error.message || error);
  }

  function formatLag(seconds) {
    if (seconds === undefined || seconds === null) return "—";
    if (seconds < 1) return "0 s";
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function formatTime(text) {
    if (!text) return "—";
    const time = new Date(text);
    return Number.isNaN(time.getTime()) ? text : time.toLocaleString();
  }

  // ---- output lag, from /metrics ----------------------------------------

  // switchyard_output_lag_seconds{plugin="archive"} 0.25
  const LAG_LINE = /^switchyard_output_lag_seconds\{plugin="((?:[^"\\]|\\.)*)"\} (\S+)/;

  async function outputLags() {
    const lags = new Map();
    try {
      const text = await api("GET", "/metrics", "text/plain");
      for (const line of String(text).split("\n")) {
        const match = LAG_LINE.exec(line);
        if (match) lags.set(match[1].replace(/\\(.)/g, "$1"), Number(match[2]));
      }
    } catch (error) {
      if (error instanceof NeedsToken) throw error;
      // Without metrics the page still shows everything else.
    }
    return lags;
  }

  // ---- plugins -------------------------------------------------------------

  const pluginRows = new Map();
  let knownPlugins = [];

  async function control(name, action, button) {
    const row = pluginRows.get(name);
    const buttons = row.buttons;
    row.busy = true;
    for (const b of buttons) b.disabled = true;
    showMessage("action-message", `${action} ${name}…`);
    try {
      const status = await api("POST", `/api/v1/plugins/${encodeURIComponent(name)}/${action}`);
      showMessage("action-message", `${name}: ${action} done, now ${status.state}.`);
      renderPlugin(status, undefined);
    } catch (error) {
      if (!(error instanceof NeedsToken)) showMessage("action-message", `${name}: ${action} failed: ${describe(error)}`, true);
    } finally {
      row.busy = false;
      enableButtons(row);
      button.blur();
    }
  }

  function pluginRow(name) {
    let row = pluginRows.get(name);
    if (row) return row;
    const cells = {};
    const tr = el("tr", { dataset: { plugin: name } });
    for (const key of ["name", "roles", "state", "pid", "restarts", "health", "breaker", "lag", "error", "actions"]) {
      cells[key] = el("td", { className: `col-${key}` });
      tr.append(cells[key]);
    }
    cells.pid.classList.add("num");
    cells.restarts.classList.add("num");
    cells.lag.classList.add("num");
    cells.error.classList.add("error-text");
    cells.name.textContent = name;
    const buttons = ["stop", "start", "restart"].map((action) => {
      const button = el("button", { type: "button", text: action, className: `action-${action}` });
      button.addEventListener("click", () => control(name, action, button));
      return button;
    });
    cells.actions.append(...buttons);
    row = { tr, cells, buttons, busy: false, state: null };
    pluginRows.set(name, row);
    return row;
  }

  // Stop makes sense unless it is stopped already; start unless it runs.
  function enableButtons(row) {
    const [stop, start, restart] = row.buttons;
    stop.disabled = row.busy || ["stopped", "failed"].includes(row.state);
    start.disabled = row.busy || ["running", "starting", "stopping"].includes(row.state);
    restart.disabled = row.busy;
  }

  function renderPlugin(status, lag) {
    const row = pluginRow(status.name);
    const { cells } = row;
    row.state = status.state;
    enableButtons(row);
    setCell(cells.roles, status.roles.join(", ") || "—");
    // An on-demand plugin stopped here runs on the hub that owns its work.
    const stateText = status.on_demand && status.state === "stopped" ? "on another hub" : status.state;
    setCell(cells.state, badge(stateText, status.state));
    setCell(cells.pid, status.pid === null ? "—" : String(status.pid));
    setCell(cells.restarts, String(status.restarts));
    setCell(cells.health, status.healthy ? badge("healthy", "healthy") : badge("unhealthy", "unhealthy"));
    setCell(cells.breaker, badge(status.circuit_breaker, status.circuit_breaker));
    if (lag !== undefined || !status.roles.includes("output")) {
      const seconds = typeof status.output_lag_seconds === "number" ? status.output_lag_seconds : lag;
      setCell(cells.lag, status.roles.includes("output") ? formatLag(seconds) : "—");
    }
    setCell(cells.error, status.last_error || "");
  }

  async function refreshPlugins() {
    const [plugins, lags] = await Promise.all([api("GET", "/api/v1/plugins"), outputLags()]);
    knownPlugins = plugins;
    const tbody = $("plugins").tBodies[0];
    const names = new Set(plugins.map((p) => p.name));
    for (const [name, row] of pluginRows) {
      if (!names.has(name)) {
        row.tr.remove();
        pluginRows.delete(name);
      }
    }
    for (const status of plugins) {
      renderPlugin(status, lags.get(status.name));
      tbody.append(pluginRow(status.name).tr); // keeps config order
    }
  }

  // ---- records ---------------------------------------------------------------

  const sources = new Set();

  function updateSourceOptions(records) {
    for (const plugin of knownPlugins) {
      if (plugin.roles.some((role) => role.endsWith("-input"))) sources.add(plugin.name);
    }
    for (const record of records) sources.add(record.source);
    const select = $("source-filter");
    const present = new Set(Array.from(select.options, (option) => option.value));
    for (const source of [...sources].sort()) {
      if (!present.has(source)) select.append(el("option", { value: source, text: source }));
    }
  }

  async function refreshRecords() {
    const source = $("source-filter").value;
    const query = new URLSearchParams({ order: "newest", limit: String(RECORDS_SHOWN) });
    if (source) query.set("source", source);
    const page = await api("GET", `/api/v1/records?${query}`);
    if ($("source-filter").value !== source) return; // changed meanwhile
    updateSourceOptions(page.records);
    const rows = page.records.map((record) =>
      el("tr", { dataset: { record: String(record.id), source: record.source } }, [
        el("td", { className: "num", text: String(record.id) }),
        el("td", { text: record.source }),
        el("td", { text: record.source_id }),
        el("td", { text: record.type }),
        el("td", { text: formatTime(record.updated_at) }),
        el("td", { className: "payload", text: JSON.stringify(record.payload) }),
      ]),
    );
    $("records").tBodies[0].replaceChildren(...rows);
    $("records-empty").hidden = rows.length > 0;
  }

  $("source-filter").addEventListener("change", () => {
    $("records").tBodies[0].replaceChildren();
    refreshRecords().catch(reportError);
  });

  // ---- dead letters --------------------------------------------------------

  const deadRows = new Map();

  async function deadLetterAction(letter, action, row) {
    for (const b of row.querySelectorAll("button")) b.disabled = true;
    try {
      if (action === "replay") {
        const answer = await api("POST", `/api/v1/dead-letters/${letter.id}/replay`);
        const outcome = answer.outcome === "dead-lettered"
          ? `failed again and was dead-lettered anew: ${answer.error}`
          : answer.outcome === "stored"
            ? `stored as record ${answer.record_id}`
            : `queued for ${answer.plugin}`;
        showMessage("dead-message", `Dead letter ${letter.id} replayed: ${outcome}.`);
      } else {
        await api("DELETE", `/api/v1/dead-letters/${letter.id}`);
        showMessage("dead-message", `Dead letter ${letter.id} deleted.`);
      }
      row.remove();
      deadRows.delete(letter.id);
      await refreshDeadLetters();
    } catch (error) {
      if (!(error instanceof NeedsToken)) {
        showMessage("dead-message", `Dead letter ${letter.id}: ${action} failed: ${describe(error)}`, true);
      }
      for (const b of row.querySelectorAll("button")) b.disabled = false;
    }
  }

  function deadRow(letter) {
    const row = el("tr", { dataset: { deadLetter: String(letter.id) } }, [
      el("td", { className: "num", text: String(letter.id) }),
      el("td", { text: letter.plugin }),
      el("td", { text: letter.stage }),
      el("td", { text: `${letter.record.source}/${letter.record.id}` }),
      el("td", { className: "error-text", text: letter.error }),
      el("td", { className: "num", text: String(letter.attempts) }),
      el("td", { text: formatTime(letter.last_failed_at) }),
    ]);
    const actions = el("td");
    for (const action of ["replay", "delete"]) {
      const button = el("button", { type: "button", text: action, className: `action-${action}` });
      button.addEventListener("click", () => deadLetterAction(letter, action, row));
      actions.append(button);
    }
    row.append(actions);
    return row;
  }

  async function refreshDeadLetters() {
    const page = await api("GET", "/api/v1/dead-letters?limit=100");
    const ids = new Set(page.dead_letters.map((letter) => letter.id));
    for (const [id, row] of deadRows) {
      if (!ids.has(id)) {
        row.remove();
        deadRows.delete(id);
      }
    }
    const tbody = $("dead-letters").tBodies[0];
    for (const letter of page.dead_letters) {
      if (!deadRows.has(letter.id)) {
        const row = deadRow(letter);
        deadRows.set(letter.id, row);
        tbody.append(row);
      }
    }
    $("dead-empty").hidden = page.dead_letters.length > 0;
  }

  // ---- the refresh loop ------------------------------------------------------

  function reportError(error) {
    if (error instanceof NeedsToken) return;
    const connection = $("connection");
    connection.textContent = `error: ${describe(error)}`;
    connection.classList.add("down");
  }

  let refreshing = false;

  async function refresh() {
    if (refreshing || waitingForToken) return;
    refreshing = true;
    try {
      await refreshPlugins();
      await Promise.all([refreshRecords(), refreshDeadLetters()]);
      const connection = $("connection");
      connection.textContent = `updated ${new Date().toLocaleTimeString()}`;
      connection.classList.remove("down");
    } catch (error) {
      reportError(error);
    } finally {
      refreshing = false;
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
