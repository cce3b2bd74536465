// pump batch dashboard: a view of the JSON API (/api/v1), with live updates from its event stream.
// No framework and no network beyond this server; text goes into the page through textContent only.
"use strict";

const PAGE = 50;
const STATUSES = ["pending", "processing", "completed", "failed", "cancelled"];
const numbers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes (`on*` are listeners) and children (strings become text). */
function h(tag, attributes = {}, ...children) {
  const element = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces `element`'s children, skipping empty ones (as `h` does). */
function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== undefined && child !== null && child !== false)
    .map((child) => (child instanceof Node ? child : document.createTextNode(String(child)))));
  return element;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; a 401 opens the sign-in dialog. */
async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    if (response.status === 401) showSignIn();
    const code = data && data.code ? data.code : `HTTP_${response.status}`;
    throw new ApiError(response.status, code, data && data.message ? data.message : text);
  }
  return data;
}

const app = {
  role: null,
  kinds: null,
  timers: [],
  streams: [],
  view: null,
};

function notice(text, isError = false) {
  const element = $("#notice");
  element.hidden = !text;
  element.textContent = text || "";
  element.classList.toggle("error", isError);
}

function every(ms, action) {
  app.timers.push(setInterval(action, ms));
}

/** Opens an event stream; `onTask` gets each task summary. Closed when the view changes. */
function follow(url, onTask, onLagged) {
  const source = new EventSource(url, { withCredentials: true });
  source.addEventListener("task", (event) => {
    try { onTask(JSON.parse(event.data)); } catch (error) { console.error(error); }
  });
  source.addEventListener("lagged", () => onLagged && onLagged());
  app.streams.push(source);
  return source;
}

function stopLive() {
  for (const timer of app.timers) clearInterval(timer);
  for (const stream of app.streams) stream.close();
  app.timers = [];
  app.streams = [];
}

/** Asks for confirmation in the page's own dialog. */
function confirmAction(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

// ---------- sign-in ----------

function showSignIn() {
  const dialog = $("#signin");
  if (!dialog.open) dialog.showModal();
}

async function signIn(event) {
  event.preventDefault();
  const error = $("#signin-error");
  try {
    await api("POST", "/api/v1/session", { token: $("#token").value });
    $("#token").value = "";
    error.hidden = true;
    $("#signin").close();
    await start();
  } catch (failure) {
    error.hidden = false;
    error.textContent = failure.message;
  }
}

async function signOut() {
  await api("DELETE", "/api/v1/session").catch(() => {});
  location.hash = "#/";
  location.reload();
}

// ---------- formatting ----------

function percentOf(progress) {
  if (progress.percentage !== null && progress.percentage !== undefined) return progress.percentage;
  return null;
}

function progressBar(task) {
  const percent = percentOf(task.progress);
  const shown = task.status === "completed" ? 100 : percent;
  const bar = h("div", {
    class: `bar ${task.status === "completed" ? "done" : ""} ${task.status === "failed" ? "failed" : ""} ${task.status === "cancelled" ? "cancelled" : ""}`,
    "data-percent": shown === null ? "" : Math.round(shown),
    role: "progressbar",
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": shown === null ? undefined : Math.round(shown),
  });
  const fill = h("div", { class: "bar-fill" });
  fill.style.width = `${shown === null ? 0 : shown}%`;
  bar.append(fill, h("span", { class: "bar-text" }, shown === null ? "…" : `${numbers.format(shown)}%`));
  return bar;
}

function done(progress) {
  return progress.processed + progress.failed + progress.skipped;
}

function rate(progress) {
  return progress.throughput ? `${numbers.format(progress.throughput)}/s` : "";
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "";
}

function statusBadge(status) {
  return h("span", { class: `status ${status}` }, status);
}

// ---------- counters ----------

let countersDue = false;
/** Refreshes the counters soon (at most once a second), after a change. */
function countersSoon() {
  if (countersDue) return;
  countersDue = true;
  setTimeout(() => { countersDue = false; refreshCounters(); }, 1000);
}

async function refreshCounters() {
  try {
    const metrics = await api("GET", "/api/v1/metrics");
    for (const status of STATUSES) {
      $(`[data-count=${status}] .value`).textContent = numbers.format(metrics[`${status}_tasks`]);
    }
    const finished = metrics.completed_tasks + metrics.failed_tasks;
    $("#success-rate").textContent = finished ? `${numbers.format(metrics.success_rate * 100)}%` : "–";
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) notice(error.message, true);
  }
}

// ---------- the task list ----------

function listState() {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  return {
    status: query.get("status") || "",
    type: query.get("type") || "",
    offset: Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0),
  };
}

function listHash(state) {
  const query = new URLSearchParams();
  if (state.status) query.set("status", state.status);
  if (state.type) query.set("type", state.type);
  if (state.offset) query.set("offset", String(state.offset));
  const text = query.toString();
  return text ? `#/?${text}` : "#/";
}

function taskRow(task) {
  const progress = task.progress;
  return h("tr", { "data-id": task.id, "data-status": task.status },
    h("td", {}, h("a", { href: `#/tasks/${task.id}`, class: "mono" }, task.id)),
    h("td", {}, task.task_type),
    h("td", { class: "status-cell" }, statusBadge(task.status)),
    h("td", {}, progressBar(task)),
    h("td", { class: "num" }, `${numbers.format(done(progress))}${progress.total !== null ? ` / ${numbers.format(progress.total)}` : ""}`),
    h("td", { class: "num" }, rate(progress)),
    h("td", { class: "num" }, task.status === "processing" && progress.eta ? progress.eta : ""),
    h("td", { class: "num" }, progress.failed ? numbers.format(progress.failed) : ""),
    h("td", { class: "muted" }, when(task.created_at)),
  );
}

async function renderList() {
  const state = listState();
  const kinds = await loadKinds();
  const statusSelect = h("select", { id: "filter-status", "aria-label": "Status",
    onchange: (event) => { location.hash = listHash({ ...state, status: event.target.value, offset: 0 }); } },
    h("option", { value: "" }, "any status"),
    STATUSES.map((status) => h("option", { value: status, selected: status === state.status }, status)));
  const typeSelect = h("select", { id: "filter-type", "aria-label": "Type",
    onchange: (event) => { location.hash = listHash({ ...state, type: event.target.value, offset: 0 }); } },
    h("option", { value: "" }, "any type"),
    kinds.map((kind) => h("option", { value: kind.task_type, selected: kind.task_type === state.type }, kind.task_type)));
  const rows = h("tbody", { id: "task-rows" });
  const summary = h("span", { class: "muted", id: "list-summary" }, "loading…");
  const previous = h("button", { class: "secondary", id: "page-previous", disabled: state.offset === 0,
    onclick: () => { location.hash = listHash({ ...state, offset: Math.max(0, state.offset - PAGE) }); } }, "← newer");
  const next = h("button", { class: "secondary", id: "page-next", disabled: true,
    onclick: () => { location.hash = listHash({ ...state, offset: state.offset + PAGE }); } }, "older →");
  const view = $("#view");
  fill(view,
    h("div", { class: "toolbar" }, statusSelect, typeSelect, h("span", { class: "spacer" }), summary),
    h("table", {},
      h("thead", {}, h("tr", {}, ["id", "type", "status", "progress", "items", "items/s", "ETA", "failed", "created"].map((name) => h("th", {}, name)))),
      rows),
    h("div", { class: "pager" }, previous, next));

  const load = async () => {
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(state.offset) });
    if (state.status) query.set("status", state.status);
    if (state.type) query.set("type", state.type);
    const page = await api("GET", `/api/v1/tasks?${query}`);
    fill(rows, ...page.tasks.map(taskRow));
    if (page.tasks.length === 0) rows.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "no tasks")));
    const last = state.offset + page.tasks.length;
    summary.textContent = page.total ? `${numbers.format(state.offset + (page.tasks.length ? 1 : 0))}–${numbers.format(last)} of ${numbers.format(page.total)}` : "0 tasks";
    next.disabled = last >= page.total;
  };
  await load();

  // Live: update the rows on the page in place; a new task reloads the first page (at most every 2 s).
  let reloadDue = false;
  const reload = () => { if (!reloadDue) { reloadDue = true; setTimeout(() => { reloadDue = false; load().catch(() => {}); }, 2000); } };
  follow("/api/v1/events", (task) => {
    countersSoon();
    const row = rows.querySelector(`tr[data-id="${task.id}"]`);
    const matches = (!state.status || task.status === state.status) && (!state.type || task.task_type === state.type);
    if (row && matches) row.replaceWith(taskRow(task));
    else if (row || (state.offset === 0 && matches)) reload();
  }, reload);
}

// ---------- one task ----------

function facts(entries) {
  return h("dl", { class: "facts" }, entries.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]));
}

function barChart(id, title, entries, format) {
  const width = 420;
  const row = 22;
  const label = 90;
  const max = Math.max(...entries.map(([, value]) => value), 0) || 1;
  const svg = h("svg:svg", { id, class: "chart", viewBox: `0 0 ${width} ${entries.length * row + 8}`, role: "img", "aria-label": title });
  entries.forEach(([name, value], index) => {
    const y = index * row + 4;
    const length = Math.max(1, ((width - label - 90) * value) / max);
    svg.append(
      h("svg:text", { x: label - 6, y: y + 14, "text-anchor": "end" }, name),
      h("svg:rect", { class: "bar-rect", x: label, y, width: length, height: row - 6, rx: 2 }),
      h("svg:text", { x: label + length + 4, y: y + 14 }, format(value)));
  });
  return h("div", { class: "panel" }, h("h3", {}, title), svg);
}

function lineChart(id, title, series, formatX, formatY) {
  const width = 420;
  const height = 180;
  const pad = { left: 52, right: 10, top: 8, bottom: 22 };
  const points = series.flatMap((line) => line.points);
  const svg = h("svg:svg", { id, class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  if (points.length > 0) {
    const minX = Math.min(...points.map(([x]) => x));
    const maxX = Math.max(...points.map(([x]) => x));
    const maxY = Math.max(...points.map(([, y]) => y), 0) || 1;
    const sx = (x) => pad.left + ((x - minX) / (maxX - minX || 1)) * (width - pad.left - pad.right);
    const sy = (y) => height - pad.bottom - (y / maxY) * (height - pad.top - pad.bottom);
    svg.append(
      h("svg:line", { class: "axis", x1: pad.left, y1: height - pad.bottom, x2: width - pad.right, y2: height - pad.bottom }),
      h("svg:line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: height - pad.bottom }),
      h("svg:text", { x: pad.left - 4, y: pad.top + 10, "text-anchor": "end" }, formatY(maxY)),
      h("svg:text", { x: pad.left - 4, y: height - pad.bottom, "text-anchor": "end" }, formatY(0)),
      h("svg:text", { x: pad.left, y: height - 6 }, formatX(minX)),
      h("svg:text", { x: width - pad.right, y: height - 6, "text-anchor": "end" }, formatX(maxX)));
    series.forEach((line, index) => {
      const path = line.points.map(([x, y], at) => `${at ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
      svg.append(h("svg:path", { class: `line ${index ? "second" : ""}`, d: path }));
    });
  }
  return h("div", { class: "panel" }, h("h3", {}, title), svg,
    series.length > 1 ? h("p", { class: "muted" }, series.map((line) => line.name).join(" · ")) : null);
}

function decimal(text) {
  const value = Number.parseFloat(text);
  return Number.isFinite(value) ? value : 0;
}

/** The kind's result as charts. */
function resultView(task, result) {
  const summary = result.result || {};
  const parts = [];
  if (task.task_type === "youzan_order" && summary.regions) {
    const regions = Object.entries(summary.regions);
    parts.push(
      barChart("chart-gmv-region", "GMV by region", regions.map(([name, totals]) => [name, decimal(totals.gmv)]).sort((a, b) => b[1] - a[1]), (value) => money.format(value)),
      barChart("chart-orders-region", "Orders by region", regions.map(([name, totals]) => [name, totals.orders]).sort((a, b) => b[1] - a[1]), (value) => numbers.format(value)));
    if (summary.categories) {
      const categories = Object.entries(summary.categories);
      parts.push(
        barChart("chart-gmv-category", "GMV by category", categories.map(([name, totals]) => [name, decimal(totals.gmv)]).sort((a, b) => b[1] - a[1]), (value) => money.format(value)),
        barChart("chart-orders-category", "Orders by category", categories.map(([name, totals]) => [name, totals.orders]).sort((a, b) => b[1] - a[1]), (value) => numbers.format(value)));
    }
    parts.push(h("div", { class: "panel" }, h("h3", {}, "Totals"), facts([
      ["GMV", money.format(decimal(summary.gmv))], ["valid orders", numbers.format(summary.valid ?? 0)],
      ["invalid records", numbers.format(summary.invalid ?? 0)]])));
  } else if (task.task_type === "train") {
    const epochs = Array.isArray(summary.epochs) ? summary.epochs : [];
    if (epochs.length) {
      parts.push(lineChart("chart-train-accuracy", "Accuracy and loss per epoch", [
        { name: "accuracy", points: epochs.map((epoch) => [epoch.epoch, epoch.accuracy]) },
        { name: "loss", points: epochs.map((epoch) => [epoch.epoch, epoch.loss]) },
      ], (x) => `epoch ${x}`, (y) => numbers.format(y)));
    }
    parts.push(h("div", { class: "panel", id: "train-accuracy" }, h("h3", {}, "Model"), facts([
      ["model", summary.model ?? ""], ["hold-out accuracy", summary.holdout_accuracy ?? "none"],
      ["eval accuracy", summary.eval_accuracy ?? "none"], ["classes", (summary.classes || []).join(", ")],
      ["written to", summary.model_out ?? ""]])));
  } else if (task.task_type === "batch_process" && Array.isArray(summary.rows)) {
    const rows = summary.rows;
    const columns = rows.length ? Object.keys(rows[0]) : [];
    const numeric = columns.find((column) => column !== "count" && rows.every((row) => Number.isFinite(Number.parseFloat(row[column])) && typeof row[column] !== "object"));
    const keyColumn = columns.find((column) => !/^(count|sum_|avg_|min_|max_)/.test(column)) || columns[0];
    if (numeric || columns.includes("count")) {
      const measure = numeric || "count";
      parts.push(barChart("chart-groups", `${measure} by ${keyColumn}`, rows.slice(0, 30).map((row) => [String(row[keyColumn] ?? "∅"), decimal(row[measure])]), (value) => numbers.format(value)));
    }
    parts.push(h("div", { class: "panel" }, h("h3", {}, `Groups (${numbers.format(summary.groups ?? rows.length)})`),
      h("table", {}, h("thead", {}, h("tr", {}, columns.map((column) => h("th", {}, column)))),
        h("tbody", {}, rows.slice(0, 200).map((row) => h("tr", {}, columns.map((column) => h("td", {}, row[column] === null ? "∅" : String(row[column])))))))));
  }
  parts.push(h("div", { class: "panel" }, h("h3", {}, "Result"), h("pre", {}, JSON.stringify(summary, null, 2))));
  return parts;
}

async function renderTask(id) {
  const view = $("#view");
  let task;
  try {
    task = await api("GET", `/api/v1/tasks/${encodeURIComponent(id)}`);
  } catch (error) {
    fill(view, h("p", { class: "error" }, error.message));
    return;
  }
  const samples = [];
  const sample = (current) => {
    const at = Date.parse(current.progress.updated_at || current.updated_at);
    if (!samples.length || samples[samples.length - 1][0] !== at) samples.push([at, done(current.progress)]);
    if (samples.length > 600) samples.shift();
  };
  if (task.started_at) samples.push([Date.parse(task.started_at), 0]);
  sample(task);

  const head = h("div", { class: "toolbar" });
  const live = h("div", { class: "panel", id: "task-live" });
  const chart = h("div", { id: "progress-chart" });
  const extras = h("div", { class: "grid", id: "task-extras" });
  const deadLetters = h("div", { class: "panel", id: "dead-letters" });
  fill(view, head, h("div", { class: "grid" }, live, chart), extras, deadLetters);

  const act = async (action, question) => {
    if (!(await confirmAction(question))) return;
    try {
      await api("POST", `/api/v1/tasks/${task.id}/${action}`, action === "stop" ? { reason: "stopped from the dashboard" } : undefined);
      notice(`${action} requested`);
      if (action === "resume") await route();
      else draw(await api("GET", `/api/v1/tasks/${task.id}`));
    } catch (error) {
      notice(error.message, true);
    }
  };

  let headFor = "";
  const draw = (current) => {
    task = { ...task, ...current };
    const progress = task.progress;
    const canAct = app.role === "admin";
    // The head (and its buttons) is redrawn only when the status or attempt changes, so a click is
    // never lost to a progress update.
    const headKey = `${task.status}/${task.attempt}`;
    if (headKey !== headFor) {
      headFor = headKey;
      fill(head,
        h("h2", { class: "mono" }, task.id), h("span", { id: "task-status" }, statusBadge(task.status)),
        h("span", { class: "spacer" }),
        canAct && !["completed", "failed", "cancelled"].includes(task.status)
          ? h("button", { id: "stop-task", class: "danger", onclick: () => act("stop", `Stop task ${task.id}? It stops at its next chunk and keeps its last checkpoint.`) }, "Stop")
          : null,
        canAct && (task.status === "failed" || task.status === "cancelled")
          ? h("button", { id: "resume-task", class: "secondary", onclick: () => act("resume", `Resume task ${task.id} from its last checkpoint, as attempt ${(task.attempt ?? 1) + 1}?`) }, "Resume")
          : null);
    }
    fill(live, h("h3", {}, "Progress"), h("div", { id: "task-progress" }, progressBar(task)), facts([
      ["type", task.task_type],
      ["attempt", String(task.attempt ?? 1)],
      ["items", `${numbers.format(done(progress))}${progress.total !== null ? ` of ${numbers.format(progress.total)}` : ""}`],
      ["processed", numbers.format(progress.processed)], ["failed", numbers.format(progress.failed)],
      ["skipped", numbers.format(progress.skipped)], ["rate", rate(progress) || "–"],
      ["ETA", task.status === "processing" ? progress.eta || "–" : "–"],
      ["message", progress.message || ""],
      ["created", when(task.created_at)], ["started", when(task.started_at)], ["finished", when(task.completed_at)],
    ]), task.error ? h("p", { class: "error", id: "task-error" }, `${task.error.code}: ${task.error.message}`) : null);
    samples.sort((left, right) => left[0] - right[0]);
    const start = samples.length ? samples[0][0] : 0;
    fill(chart, lineChart("chart-progress", "Items done over time", [{ name: "items", points: samples.map(([at, count]) => [(at - start) / 1000, count]) }],
      (x) => `${numbers.format(x)} s`, (y) => numbers.format(y)));
  };
  draw(task);

  const loadExtras = async () => {
    const panels = [];
    panels.push(h("div", { class: "panel" }, h("h3", {}, "Config"), h("pre", {}, JSON.stringify(task.config, null, 2))));
    panels.push(h("div", { class: "panel" }, h("h3", {}, "Params"), h("pre", {}, JSON.stringify(task.params, null, 2))));
    if (Array.isArray(task.attempts) && task.attempts.length) {
      panels.push(h("div", { class: "panel", id: "attempts" }, h("h3", {}, "Earlier attempts"),
        h("table", {}, h("thead", {}, h("tr", {}, ["attempt", "ended", "items", "error"].map((name) => h("th", {}, name)))),
          h("tbody", {}, task.attempts.map((attempt) => h("tr", {},
            h("td", { class: "num" }, attempt.attempt), h("td", {}, statusBadge(attempt.status)),
            h("td", { class: "num" }, numbers.format(done(attempt.progress))),
            h("td", {}, attempt.error ? `${attempt.error.code}: ${attempt.error.message}` : "")))))));
    }
    try {
      const checkpoint = await api("GET", `/api/v1/tasks/${task.id}/checkpoint`);
      panels.push(h("div", { class: "panel", id: "checkpoint" }, h("h3", {}, "Last checkpoint"),
        checkpoint.checkpoint ? facts([
          ["sequence", checkpoint.checkpoint.sequence], ["committed", when(checkpoint.checkpoint.committed_at)],
          ["processed", numbers.format(checkpoint.checkpoint.counters.processed)],
          ["failed", numbers.format(checkpoint.checkpoint.counters.failed)],
          ["source", JSON.stringify(checkpoint.checkpoint.source)], ["sink", JSON.stringify(checkpoint.checkpoint.sink)],
        ]) : h("p", { class: "muted" }, "none yet")));
    } catch (error) { panels.push(h("p", { class: "error" }, error.message)); }
    if (task.status === "completed") {
      try {
        const result = await api("GET", `/api/v1/tasks/${task.id}/result`);
        panels.push(...resultView(task, result));
      } catch (error) { panels.push(h("p", { class: "error" }, error.message)); }
    }
    fill(extras, ...panels);
    await loadDeadLetters(task, deadLetters, 0);
  };
  await loadExtras();

  if (!["completed", "failed", "cancelled"].includes(task.status)) {
    const source = follow(`/api/v1/events?task=${encodeURIComponent(task.id)}`, (current) => {
      const finished = ["completed", "failed", "cancelled"].includes(current.status);
      sample(current);
      draw(current);
      countersSoon();
      if (finished) { source.close(); loadExtras().catch((error) => notice(error.message, true)); }
    });
  }
}

async function loadDeadLetters(task, panel, offset) {
  const limit = 20;
  try {
    const page = await api("GET", `/api/v1/tasks/${task.id}/dead-letters?limit=${limit}&offset=${offset}`);
    fill(panel, h("h3", {}, `Dead letters${task.progress.failed ? ` (${numbers.format(task.progress.failed)})` : ""}`),
      page.dead_letters.length
        ? h("table", {}, h("thead", {}, h("tr", {}, ["line", "code", "field", "message", "record"].map((name) => h("th", {}, name)))),
          h("tbody", {}, page.dead_letters.map((record) => h("tr", {},
            h("td", { class: "num" }, record.line), h("td", {}, record.code), h("td", {}, record.field ?? ""),
            h("td", {}, record.message), h("td", { class: "mono" }, record.raw.length > 120 ? `${record.raw.slice(0, 120)}…` : record.raw)))))
        : h("p", { class: "muted" }, "none"),
      h("div", { class: "pager" },
        h("button", { class: "secondary", disabled: offset === 0, onclick: () => loadDeadLetters(task, panel, Math.max(0, offset - limit)) }, "← previous"),
        h("button", { class: "secondary", disabled: !page.has_more, onclick: () => loadDeadLetters(task, panel, offset + limit) }, "next →")));
  } catch (error) {
    fill(panel, h("h3", {}, "Dead letters"), h("p", { class: "error" }, error.message));
  }
}

// ---------- submit ----------

async function loadKinds() {
  if (!app.kinds) app.kinds = (await api("GET", "/api/v1/kinds")).kinds;
  return app.kinds;
}

function paramValue(param, text) {
  switch (param.type) {
    case "integer": return Number.parseInt(text, 10);
    case "number": return Number.parseFloat(text);
    case "boolean": return text === "true";
    case "string_list": return text.split(",").map((item) => item.trim()).filter(Boolean);
    default: return text;
  }
}

/** A form field for a param or setting (`prefix-name`), typed by its spec. */
function field(prefix, param) {
  const name = `${prefix}-${param.name}`;
  const shownDefault = param.default === null || param.default === undefined ? "" : String(param.default);
  let input;
  if (param.type === "choice" || param.type === "boolean") {
    const choices = param.type === "boolean" ? ["true", "false"] : param.choices;
    input = h("select", { name },
      h("option", { value: "" }, shownDefault ? `default (${shownDefault})` : "default"),
      choices.map((choice) => h("option", { value: choice }, choice)));
  } else {
    input = h("input", {
      name, required: param.required,
      type: param.type === "integer" || param.type === "number" ? "number" : "text",
      step: param.type === "number" ? "any" : undefined,
      min: param.type === "integer" ? 0 : undefined,
      placeholder: shownDefault || (param.type === "string_list" ? "comma-separated" : param.role !== "setting" ? "relative to the data root, or absolute" : ""),
    });
  }
  return h("label", {},
    h("span", {}, param.name, param.required ? " *" : "", param.role === "input" || param.role === "output" ? h("span", { class: "muted" }, ` (${param.role} path)`) : null),
    input,
    h("span", { class: "help" }, param.help));
}

async function renderSubmit() {
  const kinds = await loadKinds();
  const view = $("#view");
  if (app.role !== "admin") {
    fill(view, h("p", { class: "muted" }, "The read-only token cannot submit tasks."));
    return;
  }
  const chosen = new URLSearchParams(location.hash.split("?")[1] || "").get("kind") || (kinds[0] && kinds[0].task_type);
  const kind = kinds.find((candidate) => candidate.task_type === chosen) || kinds[0];
  const select = h("select", { id: "kind", name: "kind", onchange: (event) => { location.hash = `#/submit?kind=${event.target.value}`; } },
    kinds.map((candidate) => h("option", { value: candidate.task_type, selected: candidate === kind }, candidate.task_type)));
  const error = h("p", { class: "error", id: "submit-error", hidden: true });
  const form = h("form", { class: "submit", id: "submit-form", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = {};
    for (const param of kind.params) {
      const text = String(data.get(`param-${param.name}`) || "").trim();
      if (text) params[param.name] = paramValue(param, text);
    }
    const settings = {};
    for (const setting of kind.settings) {
      const text = String(data.get(`config-${setting.name}`) || "").trim();
      if (text) settings[setting.name] = paramValue(setting, text);
    }
    try {
      const task = await api("POST", "/api/v1/tasks", { task_type: kind.task_type, params, config: Object.keys(settings).length ? settings : null });
      location.hash = `#/tasks/${task.id}`;
    } catch (failure) {
      error.hidden = false;
      error.textContent = failure.message;
    }
  } },
  h("label", {}, h("span", {}, "kind"), select),
  kind.description ? h("p", { class: "muted" }, kind.description) : null,
  h("fieldset", {}, h("legend", {}, "Parameters"), kind.params.map((param) => field("param", param))),
  h("fieldset", {}, h("legend", {}, "Config (empty: the kind's defaults)"), h("div", { class: "row" }, kind.settings.map((setting) => field("config", setting)))),
  error,
  h("div", {}, h("button", { id: "submit-task", type: "submit" }, "Submit")));
  fill(view, h("h2", {}, "Submit a task"), form);
}

// ---------- routing and lifecycle ----------

async function route() {
  stopLive();
  notice("");
  const hash = location.hash || "#/";
  const path = hash.slice(1).split("?")[0];
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.getAttribute("href") === `#${path}`);
  try {
    if (path.startsWith("/tasks/")) await renderTask(decodeURIComponent(path.slice("/tasks/".length)));
    else if (path === "/submit") await renderSubmit();
    else await renderList();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) notice(error.message, true);
  }
  await refreshCounters();
  every(5000, refreshCounters);
}

async function start() {
  try {
    const session = await api("GET", "/api/v1/session");
    app.role = session.role;
    $("#role").textContent = session.auth_required ? `signed in (${session.role === "admin" ? "admin" : "read-only"})` : "no token needed (loopback)";
    $("#sign-out").hidden = !session.auth_required;
    for (const element of document.querySelectorAll("#nav-submit")) element.hidden = session.role !== "admin";
  } catch {
    return; // 401: the sign-in dialog is open.
  }
  await route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  $("#search").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#search-id").value.trim();
    if (id) location.hash = `#/tasks/${id}`;
  });
  window.addEventListener("hashchange", () => { if (app.role) route(); });
  // Updates pause while the tab is hidden, and catch up when it shows again.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) stopLive();
    else if (app.role) route();
  });
  start();
});
