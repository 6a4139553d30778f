// The live view: jobs (with Stop), tunnels, transfers, throughput charts, recent log lines and
// connection/environment events, kept current by the sidecar's event stream.
import { getJson, postJson } from "./api.js";
import { RateChart } from "./chart.js";
import { badge, h, mount } from "./dom.js";
import { bytes, duration, pick, pickNum, rate, time } from "./format.js";

const MAX_LOGS = 300;
const MAX_EVENTS = 100;
const RUNNING = new Set(["running", "starting", "started", "pending", "stopping"]);

function stateKind(state) {
  const s = String(state ?? "").toLowerCase();
  if (["running", "up", "open", "connected", "ready", "done", "ok", "completed", "succeeded", "active"].includes(s)) return "ok";
  if (["failed", "error", "down", "closed", "killed", "lost", "timed-out"].includes(s)) return "bad";
  if (["starting", "pending", "reconnecting", "connecting", "stopping", "queued"].includes(s)) return "warn";
  return "muted";
}

export class LiveView {
  constructor(root) {
    this.root = root;
    this.jobs = { available: true, jobs: [] };
    this.tunnels = { available: true, tunnels: [] };
    this.conns = { available: true, connections: [] };
    this.connTimer = undefined;
    this.transfers = new Map();
    this.logs = [];
    this.events = [];
    this.prevTunnel = new Map();
    this.tunnelRates = new Map();
    this.stopping = new Set();
    this.jobTimer = undefined;
    this.build();
  }

  build() {
    this.tiles = h("div", { class: "tiles" });
    const tunnelCanvas = h("canvas", { class: "chart", id: "chart-tunnels", "aria-label": "tunnel throughput" });
    const transferCanvas = h("canvas", { class: "chart", id: "chart-transfers", "aria-label": "transfer throughput" });
    this.jobsEl = h("div", { id: "jobs" });
    this.tunnelsEl = h("div", { id: "tunnels" });
    this.connsEl = h("div", { id: "connections" });
    this.transfersEl = h("div", { id: "transfers" });
    this.logsEl = h("div", { class: "logs", id: "logs" });
    this.eventsEl = h("div", { class: "events", id: "events" });
    const legend = (items) => h("div", { class: "legend" }, items.map(([c, t]) => h("span", {}, h("i", { class: "swatch", style: `background:${c}` }), t)));
    mount(
      this.root,
      h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Live"), h("p", { class: "sub" }, "What the sidecar is doing now: jobs, tunnels, transfers and its log."))),
      this.tiles,
      h(
        "div",
        { class: "grid2" },
        h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Tunnel throughput"), legend([["#2563eb", "in"], ["#16a34a", "out"]])), tunnelCanvas),
        h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Transfer throughput"), legend([["#9333ea", "all transfers"]])), transferCanvas),
      ),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Jobs")), this.jobsEl),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Pools"), h("span", { class: "muted small" }, "SSH connections to the pools' head nodes")), this.connsEl),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Tunnels")), this.tunnelsEl),
      h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Transfers")), this.transfersEl),
      h("div", { class: "grid2" }, h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Sidecar log")), this.logsEl), h("div", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "SSH, tunnel and environment events")), this.eventsEl)),
    );
    this.tunnelChart = new RateChart(tunnelCanvas, [
      { key: "tunnel_in", label: "in", color: "#2563eb" },
      { key: "tunnel_out", label: "out", color: "#16a34a" },
    ]);
    this.transferChart = new RateChart(transferCanvas, [{ key: "transfer", label: "transfers", color: "#9333ea" }]);
  }

  async load() {
    const snap = await getJson("/api/live");
    this.jobs = snap.jobs;
    this.tunnels = snap.tunnels;
    this.conns = snap.connections;
    for (const t of snap.transfers) this.transfers.set(String(t.id), t);
    this.logs = snap.logs.slice(-MAX_LOGS);
    this.events = snap.events.slice(-MAX_EVENTS);
    this.tunnelChart.setPoints(snap.samples);
    this.transferChart.setPoints(snap.samples);
    this.renderAll();
  }

  /** The stream's first message: history and samples (also after a reconnect). */
  onHello(data) {
    this.tunnelChart.setPoints(data.samples);
    this.transferChart.setPoints(data.samples);
    for (const t of data.transfers) this.transfers.set(String(t.id), t);
    this.renderTransfers();
    this.renderTiles();
    void this.refreshJobs();
    void this.refreshConnections();
  }

  onSample({ sample, tunnels }) {
    this.tunnelChart.push(sample);
    this.transferChart.push(sample);
    if (this.tunnels.available) {
      this.tunnels = { ...this.tunnels, tunnels };
      this.computeTunnelRates(sample.ts);
      this.renderTunnels();
    }
    this.renderTransfers();
    this.renderTiles();
  }

  onBus(e) {
    const top = e.topic.split(".")[0];
    if (top === "log") {
      this.logs.push(e);
      if (this.logs.length > MAX_LOGS) this.logs.shift();
      this.appendLog(e);
    } else if (top === "job") {
      clearTimeout(this.jobTimer);
      this.jobTimer = setTimeout(() => void this.refreshJobs(), 150);
    } else if (top === "transfer") {
      const id = String(pick(e.data, "id", "transfer_id", "transferId") ?? "");
      if (id) this.transfers.set(id, { ...this.transfers.get(id), ...e.data, id, topic: e.topic, updated: e.ts });
      this.renderTransfers();
      this.renderTiles();
    } else if (top === "ssh" || top === "env" || top === "tunnel") {
      if (top === "ssh") {
        clearTimeout(this.connTimer);
        this.connTimer = setTimeout(() => void this.refreshConnections(), 150);
      }
      this.events.push(e);
      if (this.events.length > MAX_EVENTS) this.events.shift();
      this.renderEvents();
    }
  }

  async refreshJobs() {
    try {
      this.jobs = await getJson("/api/jobs");
    } catch (err) {
      this.jobs = { available: true, jobs: this.jobs.jobs, error: err.message };
    }
    this.renderJobs();
    this.renderTiles();
  }

  async refreshConnections() {
    try {
      this.conns = await getJson("/api/connections");
    } catch (err) {
      this.conns = { available: true, connections: this.conns.connections, error: err.message };
    }
    this.renderConnections();
    this.renderTiles();
  }

  renderConnections() {
    if (!this.conns.available) return mount(this.connsEl, h("p", { class: "empty" }, "This sidecar has no SSH service."));
    const rows = this.conns.connections.map((c) => {
      const state = String(c.state ?? "unknown");
      const jumps = Array.isArray(c.jumps) && c.jumps.length ? ` via ${c.jumps.join(" → ")}` : "";
      return h(
        "tr",
        { dataset: { target: String(c.target) } },
        h("td", {}, h("code", {}, String(c.target))),
        h("td", {}, h("code", {}, `${c.user ?? "?"}@${c.host ?? "?"}:${c.port ?? 22}`), jumps ? h("div", { class: "muted small" }, jumps) : null),
        h("td", {}, badge(state, stateKind(state)), c.last_error ? h("div", { class: "bad-text small" }, String(c.last_error)) : null),
        h("td", { class: "num" }, String(c.reconnects ?? 0)),
        h("td", { class: "num" }, String(c.sessions ?? 0)),
        h("td", {}, c.connected_at ? time(c.connected_at) : "–", c.connected_at && state === "ready" ? h("div", { class: "muted small" }, duration(Date.now() - c.connected_at)) : null),
        h("td", { class: "muted small" }, c.cipher ? String(c.cipher) : "–"),
      );
    });
    mount(
      this.connsEl,
      this.conns.error ? h("p", { class: "bad-text" }, this.conns.error) : null,
      rows.length === 0 ? h("p", { class: "empty" }, "No SSH connections open.") : h("table", { class: "table" }, h("thead", {}, h("tr", {}, ["Pool", "Login", "State", "Reconnects", "Sessions", "Connected", "Cipher"].map((c) => h("th", { class: c === "Reconnects" || c === "Sessions" ? "num" : "" }, c)))), h("tbody", {}, rows)),
    );
  }

  computeTunnelRates(ts) {
    for (const t of this.tunnels.tunnels) {
      const id = String(pick(t, "id", "name") ?? "");
      const now = { ts, in: tunnelIn(t), out: tunnelOut(t) };
      const prev = this.prevTunnel.get(id);
      if (prev && ts > prev.ts) this.tunnelRates.set(id, { in: Math.max(0, now.in - prev.in) / ((ts - prev.ts) / 1000), out: Math.max(0, now.out - prev.out) / ((ts - prev.ts) / 1000) });
      this.prevTunnel.set(id, now);
    }
  }

  renderAll() {
    this.renderTiles();
    this.renderJobs();
    this.renderConnections();
    this.renderTunnels();
    this.renderTransfers();
    mount(this.logsEl);
    for (const e of this.logs) this.appendLog(e);
    this.renderEvents();
  }

  renderTiles() {
    const running = this.jobs.jobs.filter((j) => (typeof j.live === "boolean" ? j.live : RUNNING.has(String(pick(j, "state", "status") ?? "").toLowerCase()))).length;
    const up = this.tunnels.tunnels.filter((t) => stateKind(pick(t, "state", "status")) === "ok").length;
    const ready = this.conns.connections.filter((c) => c.state === "ready").length;
    const active = [...this.transfers.values()].filter((t) => !transferFinished(t)).length;
    const failed = [...this.transfers.values()].filter((t) => pick(t, "error") !== undefined).length;
    const tile = (label, value, sub) => h("div", { class: "tile" }, h("div", { class: "tile-label" }, label), h("div", { class: "tile-value" }, String(value)), h("div", { class: "tile-sub" }, sub));
    mount(
      this.tiles,
      tile("Jobs running", running, `${this.jobs.jobs.length} known`),
      tile("Pools connected", ready, `${this.conns.connections.length} SSH connection${this.conns.connections.length === 1 ? "" : "s"}`),
      tile("Tunnels up", up, `${this.tunnels.tunnels.length} total`),
      tile("Transfers active", active, failed > 0 ? `${failed} failed` : `${this.transfers.size} seen`),
    );
  }

  renderJobs() {
    if (!this.jobs.available) return mount(this.jobsEl, h("p", { class: "empty" }, "This sidecar has no jobs service."));
    const rows = this.jobs.jobs.map((j) => {
      const id = String(pick(j, "id", "job_id", "name") ?? "");
      const state = String(pick(j, "state", "status") ?? "unknown");
      const cmd = pick(j, "command", "cmd", "argv");
      const started = pick(j, "started_at", "start", "started", "start_time");
      const pools = pick(j, "pools", "pool");
      const live = typeof j.live === "boolean" ? j.live && !["succeeded", "failed", "killed", "timed-out", "lost"].includes(state) : RUNNING.has(state.toLowerCase());
      const stopping = this.stopping.has(id);
      return h(
        "tr",
        { dataset: { job: id } },
        h("td", {}, h("code", {}, id)),
        h("td", {}, badge(state, stateKind(state)), !live && j.reason ? h("div", { class: "muted small" }, String(j.reason)) : null),
        h("td", { class: "cmd" }, h("code", {}, Array.isArray(cmd) ? cmd.map(shellWord).join(" ") : String(cmd ?? "–"))),
        h("td", {}, time(started), live && started ? h("div", { class: "muted small" }, duration(Date.now() - new Date(started).getTime())) : null),
        h("td", {}, Array.isArray(pools) ? pools.join(", ") || "–" : String(pools ?? "–")),
        h("td", { class: "right" }, live ? h("button", { type: "button", class: "btn btn-small btn-danger", disabled: stopping, onclick: () => void this.stop(id) }, stopping ? "Stopping…" : "Stop") : null),
      );
    });
    mount(
      this.jobsEl,
      this.jobs.error ? h("p", { class: "bad-text" }, this.jobs.error) : null,
      rows.length === 0 ? h("p", { class: "empty" }, "No jobs.") : h("table", { class: "table" }, h("thead", {}, h("tr", {}, ["Job", "State", "Command", "Started", "Pools", ""].map((c) => h("th", {}, c)))), h("tbody", {}, rows)),
    );
  }

  async stop(id) {
    this.stopping.add(id);
    this.renderJobs();
    try {
      await postJson(`/api/jobs/${encodeURIComponent(id)}/stop`);
    } catch (err) {
      alertBox(this.jobsEl, `Could not stop ${id}: ${err.message}`);
    }
    this.stopping.delete(id);
    await this.refreshJobs();
  }

  renderTunnels() {
    if (!this.tunnels.available) return mount(this.tunnelsEl, h("p", { class: "empty" }, "This sidecar has no tunnels service."));
    const rows = this.tunnels.tunnels.map((t) => {
      const id = String(pick(t, "id", "name") ?? "");
      const state = String(pick(t, "state", "status") ?? "unknown");
      const r = this.tunnelRates.get(id);
      const err = pick(t, "error", "last_error");
      const changes = Array.isArray(t.port_changes) ? t.port_changes : [];
      const lastChange = changes.at(-1);
      return h(
        "tr",
        { dataset: { tunnel: id } },
        h("td", {}, h("code", {}, id), h("div", { class: "muted small" }, [pick(t, "kind", "direction", "type"), t.owner ? `owner ${t.owner}` : null].filter(Boolean).join(" · "))),
        h("td", {}, String(pick(t, "target", "pool", "host") ?? "–"), t.reach ? h("div", { class: "muted small" }, `reach: ${t.reach}`) : null),
        h("td", {}, h("code", {}, ports(t)), lastChange ? h("div", { class: "warn-text small" }, `${lastChange.which} ${lastChange.from} → ${lastChange.to}: ${lastChange.reason}`) : null),
        h("td", { class: "num" }, bytes(tunnelIn(t)), r ? h("div", { class: "muted small" }, rate(r.in)) : null),
        h("td", { class: "num" }, bytes(tunnelOut(t)), r ? h("div", { class: "muted small" }, rate(r.out)) : null),
        h("td", { class: "num" }, String(pickNum(t, "connections") ?? 0)),
        h("td", { class: "num" }, String(pickNum(t, "reconnects", "reconnect_count", "reconnections") ?? 0)),
        h("td", {}, badge(state, stateKind(state)), err ? h("div", { class: "bad-text small" }, String(err)) : null),
      );
    });
    const numeric = new Set(["Bytes in", "Bytes out", "Conns", "Reconnects"]);
    mount(
      this.tunnelsEl,
      this.tunnels.error ? h("p", { class: "bad-text" }, this.tunnels.error) : null,
      rows.length === 0 ? h("p", { class: "empty" }, "No tunnels.") : h("table", { class: "table" }, h("thead", {}, h("tr", {}, ["Tunnel", "Pool", "Ports", "Bytes in", "Bytes out", "Conns", "Reconnects", "State"].map((c) => h("th", { class: numeric.has(c) ? "num" : "" }, c)))), h("tbody", {}, rows)),
    );
  }

  renderTransfers() {
    const list = [...this.transfers.values()].reverse().slice(0, 50);
    if (list.length === 0) return mount(this.transfersEl, h("p", { class: "empty" }, "No transfers yet."));
    mount(
      this.transfersEl,
      h(
        "div",
        { class: "transfers" },
        list.map((t) => {
          const done = pickNum(t, "bytes", "done", "bytes_done", "transferred", "bytes_transferred") ?? 0;
          const total = pickNum(t, "total_bytes", "total", "bytes_total", "size");
          const err = pick(t, "error");
          const pct = total ? Math.min(100, (done / total) * 100) : transferFinished(t) ? 100 : 0;
          const state = String(pick(t, "state", "status") ?? (err || t.ok === false ? "failed" : transferFinished(t) ? "done" : "running"));
          const r = transferFinished(t) ? undefined : pickNum(t, "rate_bps", "rate", "bytes_per_s");
          const files = pickNum(t, "total_files") ? ` · ${t.files ?? 0} of ${t.total_files} files` : "";
          const errText = err && typeof err === "object" ? [err.code, err.message ?? JSON.stringify(err)].filter(Boolean).join(": ") : err;
          return h(
            "div",
            { class: "transfer", dataset: { transfer: String(t.id) } },
            h("div", { class: "transfer-head" }, h("code", { class: "transfer-name" }, transferName(t)), badge(state, err ? "bad" : stateKind(state))),
            h("div", { class: `bar${err ? " bar-bad" : ""}` }, h("div", { class: "bar-fill", style: `width:${pct.toFixed(1)}%` })),
            h("div", { class: "transfer-meta muted small" }, `${bytes(done)}${total ? ` of ${bytes(total)} (${pct.toFixed(0)}%)` : ""}${files}`, r !== undefined ? ` · ${rate(r)}` : "", t.skipped ? ` · ${t.skipped} skipped (identical)` : "", ` · ${time(t.updated)}`),
            errText ? h("div", { class: "bad-text small" }, String(errText)) : null,
          );
        }),
      ),
    );
  }

  appendLog(e) {
    const d = e.data ?? {};
    const { level, msg, time: t, ...rest } = d;
    const extras = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    const stick = this.logsEl.scrollTop + this.logsEl.clientHeight >= this.logsEl.scrollHeight - 4;
    this.logsEl.append(h("div", { class: `log log-${level ?? "info"}` }, h("span", { class: "log-time" }, time(t ?? e.ts)), h("span", { class: "log-level" }, String(level ?? "")), h("span", { class: "log-msg" }, String(msg ?? "")), extras ? h("span", { class: "log-extra" }, ` ${extras}`) : null));
    while (this.logsEl.childElementCount > MAX_LOGS) this.logsEl.firstElementChild.remove();
    if (stick) this.logsEl.scrollTop = this.logsEl.scrollHeight;
  }

  renderEvents() {
    if (this.events.length === 0) return mount(this.eventsEl, h("p", { class: "empty" }, "No SSH, tunnel or environment events yet."));
    mount(
      this.eventsEl,
      [...this.events].reverse().map((e) => h("div", { class: "event" }, h("span", { class: "log-time" }, time(e.ts)), h("code", { class: "event-topic" }, e.topic), h("span", { class: "event-data" }, summary(e.data)))),
    );
  }
}

/** An argument as a shell would need it written. */
function shellWord(a) {
  const s = String(a);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

function tunnelIn(t) {
  return pickNum(t, "bytes_in", "bytesIn", "rx_bytes") ?? pickNum(t.bytes ?? {}, "in", "rx") ?? 0;
}

function tunnelOut(t) {
  return pickNum(t, "bytes_out", "bytesOut", "tx_bytes") ?? pickNum(t.bytes ?? {}, "out", "tx") ?? 0;
}

/** Where each end listens: for a reverse tunnel the pool's dial address reaches a port here. */
function ports(t) {
  const local = pick(t, "local_port", "localPort", "bind_port");
  if (t.kind === "reverse" && t.dial_port !== undefined) return `pool ${t.dial_host ?? "?"}:${t.dial_port} → here :${local ?? "?"}`;
  if (t.kind === "local" && t.remote_port !== undefined) return `here :${local ?? "?"} → ${t.remote_host ?? "?"}:${t.remote_port}`;
  const remote = pick(t, "remote_port", "remotePort", "dest_port");
  if (local !== undefined || remote !== undefined) return `${local ?? "?"} ↔ ${remote ?? "?"}`;
  const p = pick(t, "ports", "port");
  return p === undefined ? "–" : Array.isArray(p) ? p.join(", ") : String(p);
}

function transferFinished(t) {
  const s = String(pick(t, "state", "status") ?? "").toLowerCase();
  return ["done", "completed", "finished", "failed", "error", "cancelled"].includes(s) || t.topic === "transfer.done" || pick(t, "error") !== undefined;
}

function transferName(t) {
  const src = pick(t, "src", "source", "from");
  const dst = pick(t, "dst", "dest", "destination", "to");
  if (src !== undefined || dst !== undefined) return `${src ?? "?"} → ${dst ?? "?"}`;
  return String(pick(t, "name", "path", "id") ?? "");
}

function summary(data) {
  const text = Object.entries(data ?? {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return text.length > 200 ? `${text.slice(0, 197)}…` : text;
}

function alertBox(el, text) {
  el.prepend(h("div", { class: "banner banner-bad" }, text));
}
