// Emporium supervisor dashboard: signs in, follows the cluster over the gateway's event stream
// (/api/v1/dashboard/stream), shows nodes, services, supervision trees, faults, traces and the
// operator journal, and posts operator actions (/api/v1/dashboard/actions).
//
// Plain ES2020, no framework. Every text from the server goes into the page as a text node
// (see `h`), never as HTML. Tables are updated in place by key (see `syncChildren`), so that
// what the user expanded, opened or scrolled stays as it was when the next snapshot arrives.
"use strict";

(function () {
  // ------------------------------------------------------------------------------------------
  // Constants and state

  const API = "/api/v1";
  const AUTH_KEY = "emporium.dashboard.auth";
  const HISTORY_MILLIS = 5 * 60 * 1000;        // chart history kept in memory
  const EVICTED_KEEP_MILLIS = 5 * 60 * 1000;   // how long an evicted node stays greyed out
  const RECONNECT_MILLIS = 1000;
  const STREAM_SILENCE_MILLIS = 20000;         // no byte for this long (keep-alives come every 15 s): reopen
  const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"];
  const FAULTS = ["panic", "error", "stall"];
  const STALL_MILLIS = 2000;
  const BREAKER_SECONDS = 30;
  const NOT_ADMIN = "Signed out: this account is not an admin.";

  const state = {
    auth: null,                 // {accessToken, refreshToken, expiresAt, email}
    view: null,                 // the newest ClusterView
    rates: null,                // rates between the last two snapshots (computeRates)
    history: [],                // chart samples, oldest first
    knownNodes: new Map(),      // nodeId -> the last node object seen
    evicted: new Map(),         // nodeId -> {node, at (ms)}
    expandedActors: new Set(),  // "nodeId|actorPath" whose flight recorder is open
    expandedFaults: new Set(),  // fault keys that are open
    seenFaults: null,           // fault keys the user has had on screen (null until the first snapshot)
    tab: "cluster",
    selectedNode: null,
    stream: null,               // AbortController of the event stream
    refreshTimer: null,
    charts: null,
    sessionId: 0,               // bumped at every sign-in/out: stale async work checks it
  };

  // ------------------------------------------------------------------------------------------
  // DOM helpers

  const $ = (selector, root = document) => root.querySelector(selector);

  // h("td", {class: "x", "data-key": k, onclick: f}, "text", child, ...): an element whose
  // strings become text nodes (so server text is never parsed as HTML). `style` goes through
  // the CSSOM: the gateway's Content-Security-Policy (style-src 'self') refuses style attributes.
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Sets an element's text (and class) only when it changed, to spare layout work.
  function setText(node, text, className) {
    const value = text === null || text === undefined ? "" : String(text);
    if (node.textContent !== value) node.textContent = value;
    if (className !== undefined && node.className !== className) node.className = className;
  }

  function setAttr(node, name, value) {
    if (value === null || value === undefined) node.removeAttribute(name);
    else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
  }

  // Makes `parent`'s children match `items` in order, one per key: an existing child is kept
  // (and updated), a new one created, a child whose key is gone removed. Children already in
  // order are never moved (a moved element can lose its focus or selection).
  function syncChildren(parent, items, keyOf, create, update) {
    const wanted = new Map();
    for (const item of items) {
      const key = String(keyOf(item));
      if (!wanted.has(key)) wanted.set(key, item);
    }
    const existing = new Map();
    for (const child of Array.from(parent.children)) {
      if (child.dataset.key === undefined || !wanted.has(child.dataset.key)) child.remove();
      else existing.set(child.dataset.key, child);
    }
    let cursor = parent.firstElementChild;
    for (const [key, item] of wanted) {
      let node = existing.get(key);
      if (!node) {
        node = create(item);
        node.dataset.key = key;
      }
      if (update) update(node, item);
      if (node === cursor) cursor = cursor.nextElementSibling;
      else parent.insertBefore(node, cursor);
    }
  }

  // A button that stays disabled while its action runs (data-pending), whatever renders meanwhile.
  function setEnabled(button, enabled, title) {
    const disabled = !enabled || button.dataset.pending === "1";
    if (button.disabled !== disabled) button.disabled = disabled;
    if (title !== undefined) setAttr(button, "title", title || null);
  }

  function badge(text, tone, extraClass) {
    return h("span", {class: `badge ${tone}${extraClass ? " " + extraClass : ""}`}, text);
  }

  // ------------------------------------------------------------------------------------------
  // Formatting

  const dash = "–";
  const isNum = (value) => typeof value === "number" && Number.isFinite(value);

  function statusTone(status) {
    switch (String(status || "").toUpperCase()) {
      case "UP": case "RUNNING": case "OK": case "CLOSED": return "ok";
      case "STARTING": case "RESTARTING": case "HALF_OPEN": return "info";
      case "OUT_OF_SERVICE": case "STALLED": case "BACKING_OFF": return "warn";
      case "DOWN": case "UNREACHABLE": case "FAILED": case "OPEN": case "STOPPED": return "bad";
      default: return "grey";
    }
  }

  // RFC 3339 to microseconds since the epoch (Date.parse keeps only milliseconds).
  function parseMicros(text) {
    if (!text) return NaN;
    const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$/i.exec(String(text));
    if (!match) return Date.parse(text) * 1000;
    const base = Date.parse(match[1] + (match[3] || "Z"));
    return base * 1000 + Number((match[2] || "").padEnd(6, "0").slice(0, 6));
  }
  const parseMillis = (text) => parseMicros(text) / 1000;

  function fmtClock(text) {
    const millis = typeof text === "number" ? text : parseMillis(text);
    if (!Number.isFinite(millis)) return dash;
    const date = new Date(millis);
    return [date.getHours(), date.getMinutes(), date.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  function fmtDateTime(text) {
    const millis = parseMillis(text);
    if (!Number.isFinite(millis)) return dash;
    const date = new Date(millis);
    return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")} ${fmtClock(millis)}`;
  }

  function fmtSeconds(seconds) {
    if (!isNum(seconds)) return dash;
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    const s = Math.floor(seconds);
    if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function fmtBytes(bytes) {
    if (!isNum(bytes)) return dash;
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value.toFixed(unit && value < 100 ? 1 : 0)} ${units[unit]}`;
  }

  const fmtMillis = (millis) => (isNum(millis) && millis >= 1000 ? fmtSeconds(millis / 1000) : `${millis ?? 0} ms`);

  function fmtMicros(micros) {
    if (!isNum(micros)) return dash;
    if (micros < 1000) return `${Math.round(micros)} µs`;
    if (micros < 1e6) return `${(micros / 1000).toFixed(micros < 1e4 ? 2 : 1)} ms`;
    return `${(micros / 1e6).toFixed(2)} s`;
  }

  function fmtRate(value) {
    if (!isNum(value)) return dash;
    return value >= 10 ? value.toFixed(0) : value.toFixed(1);
  }

  const shortVersion = (version) => (version === null || version === undefined ? dash : String(version).slice(0, 10));

  // The node a journal target names: "order-1 order/desk", "order@order-1", "order-1/order", "order-1".
  function nodeIdOfTarget(target) {
    const text = String(target || "").trim();
    for (const token of text.split(/[\s@/]+/)) if (state.knownNodes.has(token)) return token;
    const first = text.split(/\s+/)[0] || "";
    if (first.includes("@")) return first.slice(first.lastIndexOf("@") + 1);
    if (first.includes("/")) return first.slice(0, first.indexOf("/"));
    return first || null;
  }

  // ------------------------------------------------------------------------------------------
  // Toasts

  function toast(message, kind = "ok") {
    const box = $("#toasts");
    const item = h("div", {class: `toast ${kind}`, role: "status"}, message);
    box.append(item);
    while (box.children.length > 5) box.firstElementChild.remove();
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 5000);
  }

  // ------------------------------------------------------------------------------------------
  // Authentication: tokens in sessionStorage, refreshed before they expire

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function loadAuth() {
    try {
      const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
      return auth && auth.accessToken ? auth : null;
    } catch (_) {
      return null;
    }
  }

  function storeTokens(answer, email) {
    state.auth = {
      accessToken: answer.accessToken,
      refreshToken: answer.refreshToken,
      expiresAt: Date.now() + (Number(answer.expiresIn) || 900) * 1000,
      email: email || (state.auth && state.auth.email) || emailOfToken(answer.accessToken),
    };
    sessionStorage.setItem(AUTH_KEY, JSON.stringify(state.auth));
    scheduleRefresh();
  }

  // The email (or subject) claim of a JWT, read without checking it: only for the header.
  function emailOfToken(token) {
    try {
      const payload = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)));
      return claims.email || claims.sub || "";
    } catch (_) {
      return "";
    }
  }

  // The error of an answer: the envelope's message, else the status line.
  async function errorOf(response) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const error = body && body.error;
    return new ApiError(response.status, error && error.code ? error.code : `http_${response.status}`,
      error && error.message ? error.message : `${response.status} ${response.statusText || "error"}`);
  }

  async function postJson(path, body) {
    return fetch(API + path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    if (!state.auth || !state.auth.refreshToken) return;
    const lifetime = state.auth.expiresAt - Date.now();
    // A minute before expiry, or at 80 % of a short lifetime; never sooner than in 5 s.
    const wait = Math.max(5000, Math.min(lifetime - 60000, lifetime * 0.8));
    state.refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), wait);
  }

  let refreshing = null; // one refresh at a time; concurrent callers share it
  function refreshTokens() {
    if (!state.auth || !state.auth.refreshToken) return Promise.resolve(false);
    if (!refreshing) {
      const session = state.sessionId;
      refreshing = (async () => {
        try {
          const response = await postJson("/auth/refresh", {refreshToken: state.auth.refreshToken});
          if (session !== state.sessionId) return false;
          if (response.ok) {
            storeTokens(await response.json());
            return true;
          }
          if (response.status === 401 || response.status === 400) {
            signOut("Your session has ended: sign in again.");
            return false;
          }
          scheduleRetryRefresh();
          return false;
        } catch (_) {
          scheduleRetryRefresh(); // the gateway is away: try again soon, keep the session
          return false;
        } finally {
          refreshing = null;
        }
      })();
    }
    return refreshing;
  }

  function scheduleRetryRefresh() {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => refreshTokens().catch(() => {}), 5000);
  }

  // A data call with the access token. A 401 is retried once after a refresh, then signs out;
  // a 403 signs out with "not an admin". Answers the parsed JSON; throws ApiError.
  async function api(method, path, body, retried = false) {
    const session = state.sessionId;
    if (!state.auth) throw new ApiError(401, "signed_out", "signed out");
    const headers = {Authorization: `Bearer ${state.auth.accessToken}`, Accept: "application/json"};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store"});
    } catch (error) {
      throw new ApiError(0, "network", `cannot reach the gateway (${error.message})`);
    }
    if (session !== state.sessionId) throw new ApiError(0, "stale", "signed out meanwhile");
    if (response.status === 401) {
      if (!retried && (await refreshTokens())) return api(method, path, body, true);
      const error = await errorOf(response);
      signOut("Your session has ended: sign in again.");
      throw error;
    }
    if (response.status === 403) {
      const error = await errorOf(response);
      signOut(NOT_ADMIN);
      throw error;
    }
    if (!response.ok) throw await errorOf(response);
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  async function signIn(email, password) {
    const error = $("#signin-error");
    const submit = $("#signin-submit");
    setText(error, "");
    submit.disabled = true;
    try {
      let response;
      try {
        response = await postJson("/auth/login", {email, password});
      } catch (failure) {
        setText(error, `Cannot reach the gateway (${failure.message}).`);
        return;
      }
      if (!response.ok) {
        setText(error, (await errorOf(response)).message);
        return;
      }
      state.sessionId += 1;
      storeTokens(await response.json(), email);
      $("#signin-password").value = "";
      startSession();
    } finally {
      submit.disabled = false;
    }
  }

  function signOut(message) {
    state.sessionId += 1;
    clearTimeout(state.refreshTimer);
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.auth = null;
    sessionStorage.removeItem(AUTH_KEY);
    resetData();
    showSignIn(message || "");
  }

  function resetData() {
    state.view = null;
    state.rates = null;
    state.history = [];
    state.knownNodes.clear();
    state.evicted.clear();
    state.seenFaults = null;
    for (const selector of ["#nodes tbody", "#services tbody", "#journal tbody"]) $(selector).replaceChildren();
    $("#faults").replaceChildren(h("p", {class: "muted empty"}, "No faults."));
    $("#node-detail").replaceChildren(h("p", {class: "muted empty"}, "Pick a node."));
    delete $("#node-detail").dataset.nodeId;
    $("#trace-view").replaceChildren(h("p", {class: "muted empty"}, "Open a trace from a fault or a flight record."));
    delete $("#trace-view").dataset.traceId;
  }

  function showSignIn(message) {
    $("#app").hidden = true;
    $("#session").hidden = true;
    $("#summary").hidden = true;
    $("#signin").hidden = false;
    setText($("#signin-error"), message);
    $("#signin-email").focus();
  }

  // Signed in (or a reload with tokens): first paint from /snapshot, then the live stream.
  function startSession() {
    $("#signin").hidden = true;
    $("#app").hidden = false;
    $("#session").hidden = false;
    $("#summary").hidden = false;
    setText($("#user-email"), state.auth.email || "");
    scheduleRefresh();
    if (state.auth.expiresAt - Date.now() < 30000) refreshTokens();
    showTab(state.tab);
    api("GET", "/dashboard/snapshot").then(onSnapshot).catch((error) => {
      if (error.status !== 401 && error.status !== 403 && error.code !== "stale") toast(error.message, "error");
    });
    openStream();
  }

  // ------------------------------------------------------------------------------------------
  // The event stream: fetch + a ReadableStream reader (EventSource cannot send the token)

  function setStreamStatus(text) {
    const node = $("#stream-status");
    setText(node, text, `stream-status ${text === "live" ? "live" : "reconnecting"}`);
  }

  function openStream() {
    if (state.stream) state.stream.abort();
    const controller = new AbortController();
    state.stream = controller;
    setStreamStatus("connecting");
    (async () => {
      while (!controller.signal.aborted) {
        const outcome = await readStreamOnce(controller.signal);
        if (controller.signal.aborted || outcome === "stop") return;
        setStreamStatus("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MILLIS));
      }
    })();
  }

  // One connection: answers when it ended ("again") or must not be retried ("stop").
  async function readStreamOnce(outerSignal) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    outerSignal.addEventListener("abort", abort);
    let lastActivity = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastActivity > STREAM_SILENCE_MILLIS) connection.abort();
    }, 1000);
    try {
      const response = await fetch(`${API}/dashboard/stream`, {
        headers: {Authorization: `Bearer ${state.auth.accessToken}`, Accept: "text/event-stream"},
        cache: "no-store", signal: connection.signal,
      });
      if (response.status === 401) {
        if (await refreshTokens()) return "again";
        signOut("Your session has ended: sign in again.");
        return "stop";
      }
      if (response.status === 403) {
        signOut(NOT_ADMIN);
        return "stop";
      }
      if (!response.ok || !response.body) return "again";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) return "again";
        lastActivity = Date.now();
        buffer += decoder.decode(value, {stream: true}).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          handleEventBlock(block);
        }
      }
    } catch (_) {
      return "again";
    } finally {
      clearInterval(watchdog);
      outerSignal.removeEventListener("abort", abort);
    }
  }

  // One server-sent event: "event:" and "data:" lines; comment lines (":") are keep-alives.
  function handleEventBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length || (event !== "snapshot" && event !== "message")) return;
    try {
      const view = JSON.parse(data.join("\n"));
      setStreamStatus("live");
      onSnapshot(view);
    } catch (error) {
      console.error("dashboard: a snapshot could not be shown", error);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Snapshots: rates, history, evictions

  function onSnapshot(view) {
    if (!view || !Array.isArray(view.nodes)) return;
    const previous = state.view;
    const at = parseMillis(view.at);
    if (previous && !(at > parseMillis(previous.at))) {
      if (at < parseMillis(previous.at)) return; // an older snapshot (the first paint after the stream's)
    } else if (previous) {
      state.rates = computeRates(previous, view);
      if (state.rates) appendHistory(at, state.rates, view);
    }
    state.view = view;
    trackEvictions(view);
    render();
  }

  // A counter's growth; a counter that went down was reset (its node restarted).
  const growth = (now, before) => (!isNum(now) ? 0 : !isNum(before) || now < before ? now : now - before);

  // The quantile `q` of a histogram ([[upper bound µs | null, count], ...], counts per bucket),
  // interpolated within its bucket; null when it is empty.
  function quantile(buckets, q) {
    const total = buckets.reduce((sum, [, count]) => sum + count, 0);
    if (!total) return null;
    const target = q * total;
    let seen = 0, lower = 0;
    for (const [bound, count] of buckets) {
      if (count > 0 && seen + count >= target) {
        if (bound === null) return lower;
        return lower + ((bound - lower) * (target - seen)) / count;
      }
      seen += count;
      if (bound !== null) lower = bound;
    }
    return lower;
  }

  // The charts' series: a service with its bus parts ("order.outbox", "order.payment-events" -> "order").
  const chartGroup = (service) => String(service).split(".")[0];

  // CPU % of a node over the last 10 s of snapshots: the kernel counts CPU time in 10 ms ticks,
  // so a rate between two snapshots a second apart would only ever read 0 %, 1 %, 2 %...
  const CPU_WINDOW_MS = 10000;
  const cpuSamples = new Map();
  function cpuOverWindow(node, atMillis) {
    if (!isNum(node.cpuSeconds)) return null;
    const samples = (cpuSamples.get(node.nodeId) || []).filter(([at, cpu]) =>
      at >= atMillis - CPU_WINDOW_MS && at < atMillis && cpu <= node.cpuSeconds);
    samples.push([atMillis, node.cpuSeconds]);
    cpuSamples.set(node.nodeId, samples);
    const [firstAt, firstCpu] = samples[0];
    const seconds = (atMillis - firstAt) / 1000;
    return seconds > 0.05 ? ((node.cpuSeconds - firstCpu) / seconds) * 100 : null;
  }

  // Rates between two snapshots: CPU % per node, messages/s per actor, and per service (over
  // every node) requests/s, errors/s and the p99 handler time of the messages in between.
  function computeRates(previous, view) {
    const seconds = (parseMillis(view.at) - parseMillis(previous.at)) / 1000;
    if (!(seconds > 0.05)) return null;
    const before = new Map(previous.nodes.map((node) => [node.nodeId, node]));
    const rates = {nodeCpu: new Map(), actorRate: new Map(), services: new Map()};
    for (const node of view.nodes) {
      const old = before.get(node.nodeId);
      const cpu = cpuOverWindow(node, parseMillis(view.at));
      if (cpu !== null) rates.nodeCpu.set(node.nodeId, cpu);
      const oldActors = new Map();
      for (const service of (old && old.services) || []) {
        for (const actor of service.actors || []) oldActors.set(actor.path, actor);
      }
      for (const service of node.services || []) {
        const group = chartGroup(service.service);
        const sum = rates.services.get(group) || {handled: 0, errors: 0, buckets: null};
        for (const actor of service.actors || []) {
          const oldActor = oldActors.get(actor.path) || {};
          const handled = growth(actor.numHandled, oldActor.numHandled);
          rates.actorRate.set(`${node.nodeId}|${actor.path}`, handled / seconds);
          sum.handled += handled;
          sum.errors += growth(actor.numErrors, oldActor.numErrors) + growth(actor.numPanics, oldActor.numPanics);
          const buckets = actor.handlerTimeHistogram || [];
          const oldBuckets = oldActor.handlerTimeHistogram || [];
          if (!sum.buckets) sum.buckets = buckets.map(([bound]) => [bound, 0]);
          buckets.forEach(([bound, count], index) => {
            if (sum.buckets[index] && sum.buckets[index][0] === bound) {
              sum.buckets[index][1] += growth(count, (oldBuckets[index] || [])[1]);
            }
          });
        }
        rates.services.set(group, sum);
      }
    }
    rates.seconds = seconds;
    return rates;
  }

  // One chart sample per snapshot; samples older than the window are dropped.
  function appendHistory(at, rates, view) {
    const sample = {t: at, requests: {}, p99: {}, errors: {}, restarts: {}};
    for (const [service, sum] of rates.services) {
      sample.requests[service] = sum.handled / rates.seconds;
      sample.errors[service] = sum.errors / rates.seconds;
      const p99 = sum.buckets ? quantile(sum.buckets, 0.99) : null;
      sample.p99[service] = p99 === null ? null : p99 / 1000;
    }
    for (const node of view.nodes) {
      for (const service of node.services || []) {
        const restarts = (service.actors || []).reduce((total, actor) => total + (actor.numRestarts || 0), 0);
        const group = chartGroup(service.service);
        sample.restarts[group] = (sample.restarts[group] || 0) + restarts;
      }
    }
    state.history.push(sample);
    while (state.history.length && state.history[0].t < at - HISTORY_MILLIS) state.history.shift();
  }

  // Nodes gone from the registry stay listed as EVICTED for five minutes: those this page saw
  // go, and those the journal's instance_evicted entries name (a page opened after the fact).
  function trackEvictions(view) {
    const now = parseMillis(view.at) || Date.now();
    const present = new Set(view.nodes.map((node) => node.nodeId));
    if (view.registry && view.registry.reachable !== false) {
      for (const [nodeId, node] of state.knownNodes) {
        if (!present.has(nodeId) && !state.evicted.has(nodeId)) state.evicted.set(nodeId, {node, at: now});
      }
    }
    for (const node of view.nodes) {
      state.knownNodes.set(node.nodeId, node);
      state.evicted.delete(node.nodeId);
    }
    for (const entry of view.journal || []) {
      if (entry.action !== "instance_evicted") continue;
      const nodeId = nodeIdOfTarget(entry.target);
      const at = parseMillis(entry.at);
      if (!nodeId || present.has(nodeId) || !(now - at < EVICTED_KEEP_MILLIS)) continue;
      const known = state.evicted.get(nodeId);
      if (!known) state.evicted.set(nodeId, {node: state.knownNodes.get(nodeId) || {nodeId}, at});
      else if (at < known.at && now - known.at < 15000) known.at = at; // the journal knows the moment better
    }
    for (const [nodeId, entry] of state.evicted) {
      if (now - entry.at > EVICTED_KEEP_MILLIS) {
        state.evicted.delete(nodeId);
        state.knownNodes.delete(nodeId);
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Actions

  // Posts an operator action; the toast shows the journal entry's result or the error message.
  async function act(body, button) {
    if (button) {
      button.dataset.pending = "1";
      button.disabled = true;
    }
    try {
      const answer = await api("POST", "/dashboard/actions", body);
      const entry = (answer && answer.entry) || {};
      const ok = entry.result !== "failed";
      const text = `${entry.action || body.action} ${entry.target || ""}: ${entry.result || "ok"}`;
      toast(entry.detail ? `${text} — ${entry.detail}` : text, ok ? "ok" : "error");
    } catch (error) {
      if (error.code !== "stale") toast(`${body.action}: ${error.message}`, "error");
    } finally {
      if (button) {
        delete button.dataset.pending;
        button.disabled = false;
      }
      render();
    }
  }

  // A destructive button asks for a second click within 3 s (no modal dialog).
  function confirmThen(button, label, run) {
    if (button.dataset.confirming === "1") {
      delete button.dataset.confirming;
      button.textContent = label;
      run();
      return;
    }
    button.dataset.confirming = "1";
    button.textContent = "Confirm?";
    setTimeout(() => {
      if (button.dataset.confirming === "1") {
        delete button.dataset.confirming;
        button.textContent = label;
      }
    }, 3000);
  }

  // ------------------------------------------------------------------------------------------
  // Rendering: header, tabs

  function render() {
    if (!state.view) return;
    renderSummary();
    renderFaultsTab();
    renderRegistry();
    renderNodes();
    renderServices();
    if (state.tab === "cluster") renderCharts();
    renderNodeSelect();
    renderNodeDetail();
    renderFaults();
    renderJournal();
  }

  function allNodeEntries() {
    const entries = state.view.nodes.map((node) => ({node, evictedAt: null}));
    for (const [, evicted] of state.evicted) entries.push({node: evicted.node, evictedAt: evicted.at});
    return entries;
  }

  function renderSummary() {
    const view = state.view;
    const up = view.nodes.filter((node) => node.status === "UP").length;
    const unhealthy = view.nodes.length - up;
    const registry = view.registry || {};
    const parts = [
      h("span", null, h("b", null, String(view.nodes.length)), " nodes"),
      h("span", null, h("b", null, String(up)), " up"),
      unhealthy ? h("span", {class: "warn"}, h("b", null, String(unhealthy)), " not up") : null,
      state.evicted.size ? h("span", {class: "bad"}, h("b", null, String(state.evicted.size)), " evicted") : null,
      h("span", {class: registry.reachable === false ? "bad" : null},
        "registry ", h("b", null, registry.reachable === false ? "unreachable" : "ok")),
      registry.selfPreservation ? h("span", {class: "warn"}, "self-preservation ", h("b", null, "ON")) : null,
      h("span", null, "faults ", h("b", null, String((view.faults || []).length))),
      h("span", {title: view.at}, "at ", h("b", null, fmtClock(view.at))),
    ];
    $("#summary").replaceChildren(...parts.filter(Boolean));
  }

  function renderFaultsTab() {
    const faults = state.view.faults || [];
    if (state.seenFaults === null) state.seenFaults = new Set(faults.map((fault) => fault.key));
    if (state.tab === "faults") for (const fault of faults) state.seenFaults.add(fault.key);
    const unseen = faults.filter((fault) => !state.seenFaults.has(fault.key)).length;
    const tab = $("#tab-faults");
    setText(tab, `Faults (${faults.length})`);
    tab.classList.toggle("has-new", unseen > 0);
    setAttr(tab, "title", unseen ? `${unseen} new since you last looked` : null);
  }

  function showTab(name) {
    state.tab = name;
    for (const tab of document.querySelectorAll("#tabs .tab")) tab.classList.toggle("active", tab.dataset.view === name);
    for (const view of document.querySelectorAll("main .view")) view.hidden = view.dataset.view !== name;
    if (name === "node" && !state.selectedNode && state.view && state.view.nodes.length) {
      state.selectedNode = state.view.nodes[0].nodeId;
    }
    render();
  }

  // ------------------------------------------------------------------------------------------
  // Cluster view

  function fact(label, value, tone) {
    return h("div", {class: "fact"}, h("div", {class: "label"}, label),
      h("div", {class: "value"}, tone ? badge(value, tone) : value));
  }

  function renderRegistry() {
    const registry = state.view.registry || {};
    $("#registry-facts").replaceChildren(
      fact("Registry", registry.reachable === false ? "UNREACHABLE" : "REACHABLE", registry.reachable === false ? "bad" : "ok"),
      fact("Self-preservation", registry.selfPreservation ? "ON" : "off", registry.selfPreservation ? "warn" : "grey"),
      fact("State version", registry.stateVersion === undefined || registry.stateVersion === null ? dash : String(registry.stateVersion)),
      fact("Config version", shortVersion(registry.configVersion)),
      fact("Nodes", `${state.view.nodes.length}` + (state.evicted.size ? ` (+${state.evicted.size} evicted)` : "")),
      fact("Snapshot", fmtClock(state.view.at)),
    );
  }

  const NODE_COLUMNS = ["node-id", "node-status", "node-roles", "node-address", "node-lease", "node-config",
    "num node-uptime", "num node-rss", "num node-cpu", "node-log-level"];

  function renderNodes() {
    const entries = allNodeEntries();
    syncChildren($("#nodes tbody"), entries, (entry) => entry.node.nodeId, (entry) => {
      const nodeId = entry.node.nodeId;
      const row = h("tr", {class: "clickable", "data-node-id": nodeId, onclick: () => openNode(nodeId)},
        NODE_COLUMNS.map((name) => h("td", {class: name})));
      return row;
    }, updateNodeRow);
    setText($("#nodes-note"), state.evicted.size ? "evicted nodes stay greyed out for 5 minutes" : "click a node for its supervision tree");
  }

  function updateNodeRow(row, {node, evictedAt}) {
    const cell = (name) => row.querySelector(`.${name}`);
    const evicted = evictedAt !== null;
    row.classList.toggle("evicted", evicted);
    row.classList.toggle("selected", node.nodeId === state.selectedNode && state.tab === "node");
    const status = evicted ? "EVICTED" : node.status || "UNKNOWN";
    const statusCell = cell("node-status");
    if (statusCell.textContent !== status) statusCell.replaceChildren(badge(status, evicted ? "grey" : statusTone(status)));
    const idCell = cell("node-id");
    if (!idCell.firstChild) idCell.append(h("b", null, node.nodeId), " ", h("span", {class: "muted version"}, ""));
    setText(idCell.lastChild, node.version ? `v${node.version}` : "");
    setText(cell("node-roles"), (node.roles || []).join(", ") || dash);
    setText(cell("node-address"), node.address || dash, "node-address mono");
    const lease = cell("node-lease");
    if (evicted) {
      const ago = (parseMillis(state.view.at) - evictedAt) / 1000;
      setText(lease, `evicted ${fmtClock(evictedAt)} (${fmtSeconds(Math.max(0, ago))} ago)`);
    } else if (isNum(node.leaseAgeMillis) || isNum(node.leaseExpiresInMillis)) {
      const left = node.leaseExpiresInMillis;
      setText(lease, `renewed ${fmtSeconds(node.leaseAgeMillis / 1000)} ago · expires in ${fmtSeconds(left / 1000)}`,
        `node-lease${isNum(left) && left < 1000 ? " flag" : ""}`);
    } else {
      setText(lease, dash);
    }
    const current = state.view.registry && state.view.registry.configVersion;
    const applied = node.configVersionApplied;
    const behind = !evicted && applied !== null && applied !== undefined && current !== null && current !== undefined
      && String(applied) !== String(current);
    setText(cell("node-config"), applied === null || applied === undefined ? dash
      : behind ? `${shortVersion(applied)} → ${shortVersion(current)} behind` : `${shortVersion(applied)} ✓`,
    `node-config${behind ? " flag" : ""}`);
    setAttr(cell("node-config"), "title", `applied ${applied ?? dash}, current ${current ?? dash}`);
    setText(cell("node-uptime"), evicted ? dash : fmtSeconds(node.uptimeSeconds));
    setText(cell("node-rss"), evicted ? dash : fmtBytes(node.rssBytes));
    const cpu = state.rates && state.rates.nodeCpu.get(node.nodeId);
    setText(cell("node-cpu"), evicted || !isNum(cpu) ? dash : `${cpu.toFixed(1)} %`);
    setText(cell("node-log-level"), evicted ? dash : node.logLevel || dash);
  }

  function openNode(nodeId) {
    state.selectedNode = nodeId;
    showTab("node");
    window.scrollTo(0, 0);
  }

  // Services: every service with its instances (across nodes), as the registry lists them.
  function renderServices() {
    const byService = new Map();
    for (const node of state.view.nodes) {
      for (const instance of node.instances || []) {
        if (!byService.has(instance.service)) byService.set(instance.service, []);
        byService.get(instance.service).push({instance, node});
      }
    }
    const rows = [];
    for (const service of [...byService.keys()].sort()) {
      const instances = byService.get(service);
      rows.push({kind: "service", service, instances});
      for (const item of instances) rows.push({kind: "instance", ...item});
    }
    const at = parseMillis(state.view.at);
    syncChildren($("#services tbody"), rows,
      (row) => (row.kind === "service" ? `s:${row.service}` : `i:${row.instance.id}`),
      (row) => (row.kind === "service" ? createServiceRow(row) : createInstanceRow(row)),
      (tr, row) => {
        if (row.kind === "service") {
          const up = row.instances.filter((item) => item.instance.status === "UP").length;
          setText(tr.querySelector(".service-count"), `${row.instances.length} instance${row.instances.length === 1 ? "" : "s"}, ${up} UP`);
          return;
        }
        const {instance, node} = row;
        const statusCell = tr.querySelector(".instance-status");
        if (statusCell.textContent !== instance.status) statusCell.replaceChildren(badge(instance.status, statusTone(instance.status)));
        setText(tr.querySelector(".instance-node"), node.nodeId);
        setText(tr.querySelector(".instance-registered"), fmtDateTime(instance.registeredAt));
        const beat = parseMillis(instance.lastHeartbeatAt);
        setText(tr.querySelector(".instance-heartbeat"), Number.isFinite(beat) ? `${fmtSeconds(Math.max(0, (at - beat) / 1000))} ago` : dash);
        const button = tr.querySelector(".instance-toggle");
        const out = instance.status === "OUT_OF_SERVICE";
        button.dataset.nextStatus = out ? "UP" : "OUT_OF_SERVICE";
        setText(button, out ? "Put back UP" : "Take out of service");
        setEnabled(button, true);
      });
  }

  function createServiceRow(row) {
    return h("tr", {class: "service-row", "data-service": row.service},
      h("td", {colspan: 6}, row.service, " ", h("span", {class: "muted service-count"})));
  }

  function createInstanceRow({instance}) {
    const id = instance.id;
    const button = h("button", {type: "button", class: "small instance-toggle"});
    button.addEventListener("click", () =>
      act({action: "set_instance_status", instanceId: id, status: button.dataset.nextStatus}, button));
    return h("tr", {"data-instance-id": id},
      h("td", {class: "path"}, id), h("td", {class: "instance-node"}), h("td", {class: "instance-status"}),
      h("td", {class: "instance-registered"}), h("td", {class: "instance-heartbeat"}), h("td", {class: "actions"}, button));
  }

  function renderCharts() {
    if (!state.charts) {
      state.charts = {
        requests: new LineChart($("#chart-requests"), {title: "Requests/s by service", unit: "/s"}),
        p99: new LineChart($("#chart-p99"), {title: "p99 handler time (ms)", unit: " ms"}),
        errors: new LineChart($("#chart-errors"), {title: "Errors/s by service", unit: "/s"}),
        restarts: new LineChart($("#chart-restarts"), {title: "Actor restarts (total)", unit: "", integer: true}),
      };
    }
    // The time axis covers the history there is, at least a minute, at most five.
    const span = state.history.length ? state.history[state.history.length - 1].t - state.history[0].t : 0;
    const windowMillis = Math.min(HISTORY_MILLIS, Math.max(60000, span));
    for (const metric of ["requests", "p99", "errors", "restarts"]) {
      const names = new Set();
      for (const sample of state.history) for (const name of Object.keys(sample[metric])) names.add(name);
      const series = [...names].sort().map((name) => ({
        name,
        points: state.history.map((sample) => [sample.t, name in sample[metric] ? sample[metric][name] : null]),
      }));
      state.charts[metric].update(series, windowMillis);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Node view

  function renderNodeSelect() {
    const select = $("#node-select");
    const ids = allNodeEntries().map((entry) => entry.node.nodeId);
    const signature = ids.join("\n");
    if (select.dataset.signature !== signature) {
      select.dataset.signature = signature;
      select.replaceChildren(...ids.map((id) => h("option", {value: id}, state.evicted.has(id) ? `${id} (evicted)` : id)));
    }
    if (state.selectedNode && select.value !== state.selectedNode) select.value = state.selectedNode;
  }

  function selectedEntry() {
    const node = state.view.nodes.find((candidate) => candidate.nodeId === state.selectedNode);
    if (node) return {node, evictedAt: null};
    const evicted = state.evicted.get(state.selectedNode);
    return evicted ? {node: evicted.node, evictedAt: evicted.at} : null;
  }

  // The node detail's skeleton is built once per node; its parts update in place.
  function renderNodeDetail() {
    const detail = $("#node-detail");
    const entry = state.selectedNode ? selectedEntry() : null;
    if (!entry) {
      if (detail.dataset.nodeId !== "") {
        detail.dataset.nodeId = "";
        detail.replaceChildren(h("p", {class: "muted empty"}, state.selectedNode ? `Node ${state.selectedNode} is gone.` : "Pick a node."));
      }
      return;
    }
    const {node, evictedAt} = entry;
    if (detail.dataset.nodeId !== node.nodeId) buildNodeDetail(detail, node);
    const evicted = evictedAt !== null;
    const head = $(".node-head", detail);
    const status = evicted ? "EVICTED" : node.status;
    head.querySelector(".node-head-status").replaceChildren(badge(status, evicted ? "grey" : statusTone(status)));
    const notice = $(".node-notice", detail);
    notice.hidden = !(evicted || node.reachable === false);
    setText(notice, evicted ? `Evicted from the registry at ${fmtClock(evictedAt)}: the last state seen is shown.`
      : "The node's admin endpoint did not answer: its tree, call sites and consumers are unknown right now.");
    renderNodeFacts(node, evicted);
    const current = $(".current-level", detail);
    setText(current, `current: ${node.logLevel || dash}`);
    setEnabled($("#apply-log-level"), !evicted && node.reachable !== false);
    const roles = node.roles || [];
    const rank = (service) => (roles.includes(service.service) ? 0 : roles.includes(chartGroup(service.service)) ? 1 : 2);
    const services = (evicted ? [] : node.services || []).slice()
      .sort((a, b) => rank(a) - rank(b) || String(a.service).localeCompare(String(b.service)));
    syncChildren($(".tree", detail), services, (service) => service.service,
      (service) => createServiceBlock(node.nodeId, service), (block, service) => updateServiceBlock(block, node, service));
    renderCallSites(node, evicted);
    renderBus(node, evicted);
  }

  function buildNodeDetail(detail, node) {
    detail.dataset.nodeId = node.nodeId;
    const levels = h("select", {id: "log-level"}, LOG_LEVELS.map((level) => h("option", {value: level}, level)));
    if (LOG_LEVELS.includes(String(node.logLevel || "").toLowerCase())) levels.value = node.logLevel.toLowerCase();
    else levels.value = "info";
    const apply = h("button", {type: "button", id: "apply-log-level", class: "btn"}, "Apply");
    apply.addEventListener("click", () => act({action: "set_log_level", nodeId: node.nodeId, level: levels.value}, apply));
    detail.replaceChildren(
      h("div", {class: "card"},
        h("div", {class: "card-head node-head"}, h("h2", null, node.nodeId), h("span", {class: "node-head-status"}),
          h("span", {class: "muted"}, (node.roles || []).join(", ")),
          h("div", {class: "loglevel"}, h("label", {for: "log-level"}, "Log level"), levels, apply,
            h("span", {class: "muted current-level"}))),
        h("div", {class: "trace-notice node-notice", hidden: true}),
        h("div", {class: "facts node-facts"})),
      h("div", {class: "tree"}),
      h("div", {class: "card callsites-card"},
        h("div", {class: "card-head"}, h("h2", null, "Call sites"), h("span", {class: "muted"}, "outgoing calls and their circuit breakers")),
        h("table", {class: "grid-table callsites"},
          h("thead", null, h("tr", null, ["Service", "Breaker", "Forced until", "Calls", "Failures", "Failure rate",
            "Retries", "Rejected", "Opened", "In flight", ""].map((name, index) =>
            h("th", {class: index >= 3 && index <= 9 ? "num" : null}, name)))),
          h("tbody"))),
      h("div", {class: "card bus-card"},
        h("div", {class: "card-head"}, h("h2", null, "Bus"), h("span", {class: "muted outbox"})),
        h("table", {class: "grid-table consumers"},
          h("thead", null, h("tr", null, ["Consumer", "Queue", "Connection", "Dead-lettered", "Recent dead letters", ""]
            .map((name, index) => h("th", {class: index === 3 ? "num" : null}, name)))),
          h("tbody"))),
    );
  }

  function renderNodeFacts(node, evicted) {
    const cpu = state.rates && state.rates.nodeCpu.get(node.nodeId);
    const facts = [
      fact("Address", node.address || dash),
      fact("Version", node.version || dash),
      fact("Uptime", evicted ? dash : fmtSeconds(node.uptimeSeconds)),
      fact("RSS", evicted ? dash : fmtBytes(node.rssBytes)),
      fact("CPU", evicted || !isNum(cpu) ? dash : `${cpu.toFixed(1)} %`),
      fact("Log level", node.logLevel || dash),
      fact("Chaos", node.chaosEnabled ? "enabled" : "disabled", node.chaosEnabled ? "warn" : "grey"),
      fact("Config applied", shortVersion(node.configVersionApplied)),
      fact("Instances", (node.instances || []).map((instance) => `${instance.service} ${instance.status}`).join(", ") || dash),
    ];
    $("#node-detail .node-facts").replaceChildren(...facts);
  }

  const ACTOR_COLUMNS = [["Actor", ""], ["Status", ""], ["Restarts", "num"], ["Mailbox", "num"], ["In flight", "num"],
    ["Msgs/s", "num"], ["Errors", "num"], ["Handling now", ""], ["Handler time", ""], ["", ""]];

  function createServiceBlock(nodeId, service) {
    const name = service.service;
    const restart = h("button", {type: "button", class: "small danger restart-service"}, "Restart service");
    restart.addEventListener("click", () => confirmThen(restart, "Restart service",
      () => act({action: "restart_service", nodeId, service: name}, restart)));
    return h("div", {class: "card service-block", "data-service": name},
      h("div", {class: "card-head"}, h("h2", null, name), h("span", {class: "service-health"}),
        h("span", {class: "policy"}), h("span", {class: "right"}, restart)),
      h("table", {class: "grid-table actors"},
        h("thead", null, h("tr", null, ACTOR_COLUMNS.map(([label, cls]) => h("th", {class: cls || null}, label)))),
        h("tbody")));
  }

  function updateServiceBlock(block, node, service) {
    const health = (service.health && service.health.status) || "UNKNOWN";
    const healthCell = $(".service-health", block);
    if (healthCell.textContent !== health) healthCell.replaceChildren(badge(health, statusTone(health)));
    setAttr(healthCell, "title", service.health && service.health.reason ? service.health.reason : null);
    const policy = service.policy || {};
    const intensity = policy.intensity || {};
    const used = service.restartsInWindow || 0;
    const max = intensity.maxRestarts || 0;
    const left = Math.max(0, max - used);
    const tone = left === 0 ? "bad" : used / Math.max(1, max) >= 0.6 ? "warn" : "";
    const signature = [policy.strategy, policy.restart, used, max, intensity.periodMillis].join("|");
    const policyCell = $(".policy", block);
    if (policyCell.dataset.signature !== signature) {
      policyCell.dataset.signature = signature;
      policyCell.replaceChildren(
        h("span", null, "strategy ", h("b", null, policy.strategy || dash)),
        h("span", null, "restart ", h("b", null, policy.restart || dash)),
        h("span", {class: "intensity", title: `${used} restarts in the last ${fmtSeconds((intensity.periodMillis || 0) / 1000)}, ${max} allowed`},
          "intensity ", h("b", null, `${used}/${max} in ${fmtSeconds((intensity.periodMillis || 0) / 1000)}`),
          ` (${left} left)`,
          h("span", {class: `intensity-bar ${tone}`}, h("i", {style: `width:${max ? Math.min(100, (left / max) * 100) : 0}%`}))));
    }
    const rows = [];
    for (const actor of service.actors || []) {
      rows.push({kind: "actor", actor});
      if (state.expandedActors.has(`${node.nodeId}|${actor.path}`)) rows.push({kind: "flight", actor});
    }
    syncChildren($("tbody", block), rows, (row) => `${row.kind}:${row.actor.path}`,
      (row) => (row.kind === "actor" ? createActorRow(node.nodeId, row.actor) : createFlightRow(row.actor)),
      (tr, row) => (row.kind === "actor" ? updateActorRow(tr, node, row.actor) : updateFlightRow(tr, row.actor)));
  }

  function createActorRow(nodeId, actor) {
    const path = actor.path;
    const restart = h("button", {type: "button", class: "small restart-actor", title: "Restart this actor"}, "Restart");
    restart.addEventListener("click", () => act({action: "restart_actor", nodeId, actor: path}, restart));
    const faults = FAULTS.map((fault) => {
      const button = h("button", {type: "button", class: "small danger inject-fault", "data-fault": fault}, fault);
      button.addEventListener("click", () => {
        const body = {action: "inject_fault", nodeId, actor: path, fault};
        if (fault === "stall") body.millis = STALL_MILLIS;
        act(body, button);
      });
      return button;
    });
    const row = h("tr", {class: "actor-row", "data-actor-path": path},
      h("td", {class: "path", title: path}, path), h("td", {class: "actor-status"}), h("td", {class: "num actor-restarts"}),
      h("td", {class: "num actor-mailbox"}), h("td", {class: "num actor-in-flight"}), h("td", {class: "num actor-rate"}),
      h("td", {class: "num actor-errors"}), h("td", {class: "actor-current"}), h("td", {class: "actor-histogram"}),
      h("td", {class: "actions"}, restart, " ", ...faults));
    row.addEventListener("click", (event) => {
      if (event.target.closest("button, a")) return;
      const key = `${nodeId}|${path}`;
      if (state.expandedActors.has(key)) state.expandedActors.delete(key);
      else state.expandedActors.add(key);
      render();
    });
    return row;
  }

  function updateActorRow(row, node, actor) {
    const cell = (name) => row.querySelector(`.${name}`);
    row.classList.toggle("expanded", state.expandedActors.has(`${node.nodeId}|${actor.path}`));
    const status = actor.status || "unknown";
    if (cell("actor-status").textContent !== status) cell("actor-status").replaceChildren(badge(status, statusTone(status)));
    setText(cell("actor-restarts"), actor.numRestarts ?? 0);
    setText(cell("actor-mailbox"), actor.mailboxDepth ?? 0);
    setText(cell("actor-in-flight"), actor.numInFlight ?? 0);
    const rate = state.rates && state.rates.actorRate.get(`${node.nodeId}|${actor.path}`);
    setText(cell("actor-rate"), fmtRate(rate));
    setText(cell("actor-errors"), (actor.numErrors ?? 0) + (actor.numPanics ? ` · ${actor.numPanics} panic${actor.numPanics === 1 ? "" : "s"}` : ""));
    setAttr(cell("actor-errors"), "title", `${actor.numErrors ?? 0} errors, ${actor.numPanics ?? 0} panics, ${actor.numHandled ?? 0} handled`);
    const current = actor.currentMessage;
    // Flagged when it has taken a second while other messages wait (a long-running task alone is normal).
    const stuck = current && current.forMillis >= 1000 && (actor.mailboxDepth || 0) > 0;
    setText(cell("actor-current"), current ? `${current.messageType} · ${fmtMillis(current.forMillis)}` : dash,
      `actor-current${stuck ? " slow" : ""}`);
    renderHistogram(cell("actor-histogram"), actor);
    const chaos = node.chaosEnabled === true;
    for (const button of row.querySelectorAll(".inject-fault")) {
      setEnabled(button, chaos, chaos ? `Inject a ${button.dataset.fault} into ${actor.path}`
        : "Fault injection is disabled on this node (chaos.enabled = false)");
    }
  }

  // A small bar per histogram bucket (counts since start), scaled to the fullest bucket.
  function renderHistogram(cell, actor) {
    const buckets = actor.handlerTimeHistogram || [];
    const signature = buckets.map(([, count]) => count).join(",");
    if (cell.dataset.signature === signature) return;
    cell.dataset.signature = signature;
    const top = Math.max(1, ...buckets.map(([, count]) => count));
    let lower = 0;
    const title = [];
    const bars = buckets.map(([bound, count]) => {
      const label = bound === null ? `> ${fmtMicros(lower)}` : `≤ ${fmtMicros(bound)}`;
      title.push(`${label}: ${count}`);
      const slow = lower >= 10000;
      if (bound !== null) lower = bound;
      return h("i", {class: count ? (slow ? "slow" : "") : "zero", style: `height:${count ? Math.max(2, Math.round((count / top) * 20)) : 1}px`});
    });
    const handled = buckets.reduce((sum, [, count]) => sum + count, 0);
    const mean = handled && isNum(actor.handlerTimeSumMicros) ? ` · mean ${fmtMicros(actor.handlerTimeSumMicros / handled)}` : "";
    cell.replaceChildren(h("span", {class: "hist", title: title.join("\n") + mean}, bars));
  }

  function createFlightRow(actor) {
    return h("tr", {class: "flight-row", "data-flight-for": actor.path}, h("td", {colspan: ACTOR_COLUMNS.length}));
  }

  function updateFlightRow(row, actor) {
    const entries = actor.flightRecorder || [];
    const signature = entries.map((entry) => `${entry.seq}:${entry.outcome}`).join(",");
    if (row.dataset.signature === signature) return;
    row.dataset.signature = signature;
    row.firstElementChild.replaceChildren(entries.length ? flightTable(entries)
      : h("span", {class: "muted"}, "The flight recorder is empty."));
  }

  // The last messages an actor handled: one row per entry, newest first.
  function flightTable(entries) {
    const sorted = [...entries].sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0));
    return h("table", {class: "inner-table flight-record"},
      h("thead", null, h("tr", null, ["Seq", "Type", "At", "Summary", "Outcome", "Elapsed", "Trace"].map((name, index) =>
        h("th", {class: index === 0 || index === 5 ? "num" : null}, name)))),
      h("tbody", null, sorted.map((entry) => h("tr", null,
        h("td", {class: "num"}, entry.seq ?? dash),
        h("td", {class: "mono"}, entry.messageType || dash),
        h("td", {title: entry.at || ""}, fmtClock(entry.at)),
        h("td", {class: "mono wrap"}, entry.summary || ""),
        h("td", null, badge(entry.outcome || "?", entry.outcome === "ok" ? "ok" : "bad")),
        h("td", {class: "num"}, fmtMicros(entry.elapsedMicros)),
        h("td", null, traceLink(entry.traceId))))));
  }

  function traceLink(traceId) {
    if (!traceId) return dash;
    return h("a", {class: "trace-link mono", href: `#trace/${encodeURIComponent(traceId)}`, "data-trace-id": traceId,
      title: `Open trace ${traceId}`, onclick: (event) => {
        event.preventDefault();
        event.stopPropagation();
        openTrace(traceId);
      }}, String(traceId).slice(0, 12));
  }

  function renderCallSites(node, evicted) {
    const sites = evicted ? [] : node.callSites || [];
    syncChildren($("#node-detail .callsites tbody"), sites, (site) => site.service, (site) => {
      const buttons = ["open", "closed"].map((breakerState) => {
        const button = h("button", {type: "button", class: "small force-breaker", "data-state": breakerState,
          title: `Force the breaker ${breakerState} for ${BREAKER_SECONDS} s`}, `Force ${breakerState}`);
        button.addEventListener("click", () => act({action: "force_breaker", nodeId: node.nodeId, service: site.service,
          state: breakerState, seconds: BREAKER_SECONDS}, button));
        return button;
      });
      return h("tr", {"data-call-site": site.service},
        h("td", {class: "path"}, site.service), h("td", {class: "breaker"}), h("td", {class: "forced"}),
        ["calls", "failures", "failure-rate", "retries", "rejected", "opened", "in-flight"].map((name) => h("td", {class: `num ${name}`})),
        h("td", {class: "actions"}, buttons));
    }, (row, site) => {
      const breaker = site.breaker || "unknown";
      const cell = row.querySelector(".breaker");
      if (cell.textContent !== breaker) cell.replaceChildren(badge(breaker, statusTone(breaker)));
      const forced = parseMillis(site.forcedUntil);
      setText(row.querySelector(".forced"), site.forcedUntil && Number.isFinite(forced)
        ? `${fmtClock(forced)} (${fmtSeconds(Math.max(0, (forced - parseMillis(state.view.at)) / 1000))} left)` : dash);
      setText(row.querySelector(".calls"), site.numCalls ?? 0);
      setText(row.querySelector(".failures"), site.numFailures ?? 0);
      setText(row.querySelector(".failure-rate"), site.numCalls ? `${((100 * (site.numFailures || 0)) / site.numCalls).toFixed(1)} %` : dash);
      setText(row.querySelector(".retries"), site.numRetries ?? 0);
      setText(row.querySelector(".rejected"), site.numRejected ?? 0);
      setText(row.querySelector(".opened"), site.numBreakerOpened ?? 0);
      setText(row.querySelector(".in-flight"), site.numInFlight ?? 0);
    });
    $("#node-detail .callsites-card").hidden = !sites.length;
  }

  function renderBus(node, evicted) {
    const consumers = evicted ? [] : node.consumers || [];
    const relays = evicted || !Array.isArray(node.outbox) ? [] : node.outbox;
    $("#node-detail .bus-card").hidden = !relays.length && !consumers.length;
    setText($("#node-detail .outbox"), relays.length
      ? relays.map((relay) => `${relay.service} outbox: ${relay.lag?.numUnsent ?? 0} unsent, oldest `
        + `${fmtSeconds(relay.lag?.oldestUnsentAgeSecs || 0)}, ${relay.numPublished ?? 0} published`
        + (relay.lastError ? ` (${relay.lastError})` : "")).join(" · ")
      : "no outbox");
    syncChildren($("#node-detail .consumers tbody"), consumers, (consumer) => consumer.queue, (consumer) => {
      const name = consumer.consumer;
      const queue = consumer.queue;
      const retry = h("button", {type: "button", class: "small retry-dead-letters"}, "Retry");
      retry.addEventListener("click", () => act({action: "retry_dead_letters", nodeId: node.nodeId, queue}, retry));
      const discard = h("button", {type: "button", class: "small danger discard-dead-letters"}, "Discard");
      discard.addEventListener("click", () => confirmThen(discard, "Discard",
        () => act({action: "discard_dead_letters", nodeId: node.nodeId, queue}, discard)));
      return h("tr", {"data-consumer": name, "data-queue": queue}, h("td", {class: "path"}, name), h("td", {class: "mono queue"}),
        h("td", {class: "connected"}), h("td", {class: "num dead-count"}), h("td", {class: "dead-list"}),
        h("td", {class: "actions"}, retry, discard));
    }, (row, consumer) => {
      setText(row.querySelector(".queue"), consumer.queue || dash);
      const connected = consumer.connected ? "connected" : "disconnected";
      const cell = row.querySelector(".connected");
      if (cell.textContent !== connected) cell.replaceChildren(badge(connected, consumer.connected ? "ok" : "bad"));
      setText(row.querySelector(".dead-count"), consumer.numDeadLettered ?? 0);
      const recent = consumer.recentDeadLetters || [];
      const signature = recent.map((letter) => `${letter.eventId}@${letter.deadLetteredAt}`).join(",");
      const list = row.querySelector(".dead-list");
      if (list.dataset.signature !== signature) {
        list.dataset.signature = signature;
        list.replaceChildren(recent.length ? h("ul", {class: "dead-letters"}, recent.map((letter) => h("li", null,
          h("code", null, letter.eventId || "(no event id)"), ` · ${letter.reason || ""} · ${letter.attempts ?? "?"} attempts · ${fmtClock(letter.deadLetteredAt)}`)))
          : h("span", {class: "muted"}, "none"));
      }
      const any = recent.length > 0 || (consumer.numDeadLettered || 0) > 0;
      for (const button of row.querySelectorAll("button")) setEnabled(button, any, any ? "" : "No dead letters");
    });
  }

  // ------------------------------------------------------------------------------------------
  // Faults view

  function renderFaults() {
    const faults = state.view.faults || [];
    const container = $("#faults");
    if (!faults.length) {
      if (!container.querySelector(".empty")) container.replaceChildren(h("p", {class: "muted empty"}, "No faults."));
      return;
    }
    syncChildren(container, faults, (fault) => fault.key, createFault, (element, fault) => {
      const open = state.expandedFaults.has(fault.key);
      element.classList.toggle("expanded", open);
      element.querySelector(".fault-body").hidden = !open;
    });
  }

  // A timeline entry never changes: it is built once, with its (hidden) body.
  function createFault(fault) {
    const kind = fault.kind || "unknown";
    const element = h("div", {class: "fault", "data-fault-key": fault.key, "data-node-id": fault.nodeId || "",
      "data-kind": kind, "data-actor-path": fault.actorPath || ""},
    h("div", {class: "fault-head", title: "Show the flight record"},
      h("span", {class: "fault-at mono", title: fault.at || ""}, fmtClock(fault.at)),
      h("span", {class: "fault-node"}, fault.nodeId || dash),
      h("span", null, badge(kind, "", `fault-kind kind-${kind.replace(/[^a-z_]/gi, "")}`)),
      h("span", {class: "fault-actor mono"}, fault.actorPath || dash),
      h("span", {class: "fault-message mono"}, fault.messageType || dash),
      h("span", {class: "fault-error", title: fault.error || ""}, fault.error || ""),
      h("span", null, traceLink(fault.traceId))),
    h("div", {class: "fault-body", hidden: true},
      h("h3", null, "Error"), h("pre", {class: "fault-error-text"}, fault.error || dash),
      h("h3", null, `Flight record (${(fault.flightRecord || []).length})`),
      flightTable(fault.flightRecord || []),
      fault.backtrace ? h("details", {class: "backtrace"}, h("summary", null, "Backtrace"), h("pre", null, fault.backtrace)) : null));
    element.querySelector(".fault-head").addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      if (state.expandedFaults.has(fault.key)) state.expandedFaults.delete(fault.key);
      else state.expandedFaults.add(fault.key);
      renderFaults();
    });
    return element;
  }

  // ------------------------------------------------------------------------------------------
  // Trace view

  async function openTrace(traceId) {
    const container = $("#trace-view");
    container.dataset.traceId = traceId;
    container.replaceChildren(h("p", {class: "muted empty"}, `Loading trace ${traceId}…`));
    showTab("trace");
    try {
      const trace = await api("GET", `/dashboard/traces/${encodeURIComponent(traceId)}`);
      if (container.dataset.traceId === traceId) renderTrace(container, trace || {traceId});
    } catch (error) {
      if (container.dataset.traceId === traceId) {
        container.replaceChildren(h("p", {class: "empty signin-error"}, `Trace ${traceId}: ${error.message}`));
      }
    }
  }

  function renderTrace(container, trace) {
    const spans = (trace.spans || []).map((span) => ({...span, startMicros: parseMicros(span.start)}))
      .filter((span) => Number.isFinite(span.startMicros)).sort((a, b) => a.startMicros - b.startMicros);
    const logs = trace.logs || [];
    const unreachable = trace.unreachableNodes || [];
    const parts = [h("div", {class: "card-head"}, h("h2", null, "Trace ", h("span", {class: "mono"}, trace.traceId || "")),
      h("span", {class: "muted"}, `${spans.length} spans, ${logs.length} log lines, from ${new Set([...spans, ...logs].map((item) => item.nodeId)).size} nodes`))];
    if (unreachable.length) {
      parts.push(h("div", {class: "trace-notice unreachable-nodes"},
        `Not answering, so their part of the trace is missing: ${unreachable.join(", ")}`));
    }
    parts.push(h("div", {class: "card-head"}, h("h2", null, "Spans")));
    parts.push(spans.length ? waterfall(spans) : h("p", {class: "muted empty"}, "No spans recorded for this trace."));
    parts.push(h("div", {class: "card-head"}, h("h2", null, "Log lines")));
    parts.push(logs.length ? h("table", {class: "grid-table trace-logs"},
      h("thead", null, h("tr", null, ["Time", "Node", "Level", "Target", "Message", "Fields"].map((name) => h("th", null, name)))),
      h("tbody", null, logs.map((line) => h("tr", {class: "trace-log"},
        h("td", {class: "mono", title: line.at || ""}, fmtClockMicros(line.at)),
        h("td", null, line.nodeId || dash),
        h("td", {class: `level-${String(line.level || "").toUpperCase()}`}, line.level || dash),
        h("td", {class: "mono"}, line.target || ""),
        h("td", {class: "wrap"}, line.message || ""),
        h("td", {class: "fields"}, extraFields(line.fields))))))
      : h("p", {class: "muted empty"}, "No log lines for this trace."));
    container.replaceChildren(...parts);
  }

  // A log line's fields as JSON, less what the other columns already show.
  const SHOWN_FIELDS = new Set(["level", "message", "target", "timestamp", "trace_id", "span_id", "span", "spans"]);
  function extraFields(fields) {
    if (!fields || typeof fields !== "object") return "";
    const rest = Object.fromEntries(Object.entries(fields).filter(([key]) => !SHOWN_FIELDS.has(key)));
    return Object.keys(rest).length ? JSON.stringify(rest) : "";
  }

  function fmtClockMicros(text) {
    const micros = parseMicros(text);
    if (!Number.isFinite(micros)) return dash;
    return `${fmtClock(micros / 1000)}.${String(Math.floor((micros / 1000) % 1000)).padStart(3, "0")}`;
  }

  // Spans as bars on a common time line, indented under their parents.
  function waterfall(spans) {
    const start = spans[0].startMicros;
    const end = Math.max(...spans.map((span) => span.startMicros + (span.durationMicros || 0)));
    const total = Math.max(1, end - start);
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const depth = (span) => {
      let level = 0, parent = span.parentSpanId;
      while (parent && byId.has(parent) && level < 20) { level += 1; parent = byId.get(parent).parentSpanId; }
      return level;
    };
    return h("table", {class: "waterfall"},
      h("thead", null, h("tr", null, h("th", null, "Node"), h("th", null, "Span"),
        h("th", {class: "bar-cell"}, h("span", null, "0"), h("span", {class: "right-end"}, fmtMicros(total))),
        h("th", {class: "num"}, "Duration"), h("th", null, "Status"))),
      h("tbody", null, spans.map((span) => {
        const left = ((span.startMicros - start) / total) * 100;
        const width = Math.max(0.3, ((span.durationMicros || 0) / total) * 100);
        const error = span.status === "error";
        return h("tr", {class: "span-row", "data-span-id": span.spanId || ""},
          h("td", {class: "muted"}, span.nodeId || dash),
          h("td", {class: "mono", style: `padding-left:${8 + depth(span) * 14}px`, title: span.attributes ? JSON.stringify(span.attributes) : ""},
            span.name || dash, " ", h("span", {class: "muted"}, span.kind || "")),
          h("td", {class: "bar-cell"}, h("div", {class: "track"},
            h("div", {class: `bar${error ? " error" : ""}`, style: `left:${left.toFixed(2)}%;width:${Math.min(100 - left, width).toFixed(2)}%`}))),
          h("td", {class: "num"}, fmtMicros(span.durationMicros)),
          h("td", null, badge(span.status || "ok", error ? "bad" : "ok")));
      })));
  }

  // ------------------------------------------------------------------------------------------
  // Journal view

  function renderJournal() {
    syncChildren($("#journal tbody"), state.view.journal || [], (entry) => entry.id, (entry) =>
      h("tr", {"data-journal-id": entry.id},
        h("td", {class: "journal-at mono", title: entry.at || ""}, fmtDateTime(entry.at)),
        h("td", {class: "journal-who"}, entry.who || dash),
        h("td", {class: "journal-action mono"}, entry.action || dash),
        h("td", {class: "journal-target mono"}, entry.target || ""),
        h("td", {class: "journal-result"}, badge(entry.result || "?", entry.result === "ok" ? "ok" : "bad")),
        h("td", {class: "journal-detail wrap"}, entry.detail || "")));
  }

  // ------------------------------------------------------------------------------------------
  // Start

  function init() {
    $("#signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signIn($("#signin-email").value.trim(), $("#signin-password").value);
    });
    $("#signout").addEventListener("click", () => signOut("Signed out."));
    for (const tab of document.querySelectorAll("#tabs .tab")) tab.addEventListener("click", () => showTab(tab.dataset.view));
    $("#node-select").addEventListener("change", (event) => {
      state.selectedNode = event.target.value;
      render();
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.tab === "cluster" && state.view && renderCharts(), 150);
    });
    state.auth = loadAuth();
    if (state.auth) startSession();
    else showSignIn("");
  }

  init();
})();
