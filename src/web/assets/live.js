// The live view: tiles, throughput charts, jobs (with Stop), pools, tunnels, transfers, recent
// log lines and events, kept current by the sidecar's event stream.
import { getJson, postJson } from "./api.js";
import { RateChart } from "./chart.js";
import { h, mount } from "./dom.js";
import { pick } from "./format.js";
import { PromptsPanel } from "./live-prompts.js";
import {
  connectionsTable,
  eventLine,
  isJobLive,
  jobsTable,
  logLine,
  stateKind,
  transferFinished,
  transferItem,
  tunnelIn,
  tunnelOut,
  tunnelsTable,
} from "./live-tables.js";

const MAX_LOGS = 300;
const MAX_EVENTS = 100;

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
    this.promptsEl = h("div", { id: "prompts" });
    this.prompts = new PromptsPanel(this.promptsEl);
    this.tiles = h("div", { class: "tiles" });
    const tunnelCanvas = h("canvas", {
      class: "chart",
      id: "chart-tunnels",
      "aria-label": "tunnel throughput",
    });
    const transferCanvas = h("canvas", {
      class: "chart",
      id: "chart-transfers",
      "aria-label": "transfer throughput",
    });
    this.jobsEl = h("div", { id: "jobs" });
    this.tunnelsEl = h("div", { id: "tunnels" });
    this.connsEl = h("div", { id: "connections" });
    this.transfersEl = h("div", { id: "transfers" });
    this.logsEl = h("div", { class: "logs", id: "logs" });
    this.eventsEl = h("div", { class: "events", id: "events" });
    const legend = (items) =>
      h(
        "div",
        { class: "legend" },
        items.map(([c, t]) =>
          h("span", {}, h("i", { class: "swatch", style: `background:${c}` }), t),
        ),
      );
    mount(
      this.root,
      h(
        "div",
        { class: "page-head" },
        h(
          "div",
          {},
          h("h1", {}, "Live"),
          h(
            "p",
            { class: "sub" },
            "What the sidecar is doing now: jobs, tunnels, transfers and its log.",
          ),
        ),
      ),
      this.promptsEl,
      this.tiles,
      h(
        "div",
        { class: "grid2" },
        h(
          "div",
          { class: "card" },
          h(
            "div",
            { class: "card-head" },
            h("h2", {}, "Tunnel throughput"),
            legend([
              ["#2563eb", "in"],
              ["#16a34a", "out"],
            ]),
          ),
          tunnelCanvas,
        ),
        h(
          "div",
          { class: "card" },
          h(
            "div",
            { class: "card-head" },
            h("h2", {}, "Transfer throughput"),
            legend([["#9333ea", "all transfers"]]),
          ),
          transferCanvas,
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Jobs")),
        this.jobsEl,
      ),
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "card-head" },
          h("h2", {}, "Pools"),
          h("span", { class: "muted small" }, "SSH connections to the pools' head nodes"),
        ),
        this.connsEl,
      ),
      h(
        "div",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Tunnels")),
        this.tunnelsEl,
      ),
      h(
        "div",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, "Transfers")),
        this.transfersEl,
      ),
      h(
        "div",
        { class: "grid2" },
        h(
          "div",
          { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, "Sidecar log")),
          this.logsEl,
        ),
        h(
          "div",
          { class: "card" },
          h("div", { class: "card-head" }, h("h2", {}, "SSH, tunnel and environment events")),
          this.eventsEl,
        ),
      ),
    );
    this.tunnelChart = new RateChart(tunnelCanvas, [
      { key: "tunnel_in", label: "in", color: "#2563eb" },
      { key: "tunnel_out", label: "out", color: "#16a34a" },
    ]);
    this.transferChart = new RateChart(transferCanvas, [
      { key: "transfer", label: "transfers", color: "#9333ea" },
    ]);
  }

  async load() {
    void this.prompts.load();
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
      if (id)
        this.transfers.set(id, {
          ...this.transfers.get(id),
          ...e.data,
          id,
          topic: e.topic,
          updated: e.ts,
        });
      this.renderTransfers();
      this.renderTiles();
    } else if (top === "ssh" || top === "env" || top === "tunnel") {
      if (e.topic.startsWith("ssh.prompt")) this.prompts.onBus(e);
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
    if (!this.conns.available)
      return mount(this.connsEl, h("p", { class: "empty" }, "This sidecar has no SSH service."));
    mount(
      this.connsEl,
      this.conns.error ? h("p", { class: "bad-text" }, this.conns.error) : null,
      connectionsTable(this.conns.connections),
    );
  }

  computeTunnelRates(ts) {
    for (const t of this.tunnels.tunnels) {
      const id = String(pick(t, "id", "name") ?? "");
      const now = { ts, in: tunnelIn(t), out: tunnelOut(t) };
      const prev = this.prevTunnel.get(id);
      if (prev && ts > prev.ts)
        this.tunnelRates.set(id, {
          in: Math.max(0, now.in - prev.in) / ((ts - prev.ts) / 1000),
          out: Math.max(0, now.out - prev.out) / ((ts - prev.ts) / 1000),
        });
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
    const running = this.jobs.jobs.filter(isJobLive).length;
    const up = this.tunnels.tunnels.filter(
      (t) => stateKind(pick(t, "state", "status")) === "ok",
    ).length;
    const ready = this.conns.connections.filter((c) => c.state === "ready").length;
    const active = [...this.transfers.values()].filter((t) => !transferFinished(t)).length;
    const failed = [...this.transfers.values()].filter(
      (t) => pick(t, "error") !== undefined,
    ).length;
    const tile = (label, value, sub) =>
      h(
        "div",
        { class: "tile" },
        h("div", { class: "tile-label" }, label),
        h("div", { class: "tile-value" }, String(value)),
        h("div", { class: "tile-sub" }, sub),
      );
    mount(
      this.tiles,
      tile("Jobs running", running, `${this.jobs.jobs.length} known`),
      tile(
        "Pools connected",
        ready,
        `${this.conns.connections.length} SSH connection${this.conns.connections.length === 1 ? "" : "s"}`,
      ),
      tile("Tunnels up", up, `${this.tunnels.tunnels.length} total`),
      tile(
        "Transfers active",
        active,
        failed > 0 ? `${failed} failed` : `${this.transfers.size} seen`,
      ),
    );
  }

  renderJobs() {
    if (!this.jobs.available)
      return mount(this.jobsEl, h("p", { class: "empty" }, "This sidecar has no jobs service."));
    mount(
      this.jobsEl,
      this.jobs.error ? h("p", { class: "bad-text" }, this.jobs.error) : null,
      jobsTable(this.jobs.jobs, this.stopping, (id) => void this.stop(id)),
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
    if (!this.tunnels.available)
      return mount(
        this.tunnelsEl,
        h("p", { class: "empty" }, "This sidecar has no tunnels service."),
      );
    mount(
      this.tunnelsEl,
      this.tunnels.error ? h("p", { class: "bad-text" }, this.tunnels.error) : null,
      tunnelsTable(this.tunnels.tunnels, this.tunnelRates),
    );
  }

  renderTransfers() {
    const list = [...this.transfers.values()].reverse().slice(0, 50);
    mount(
      this.transfersEl,
      list.length === 0
        ? h("p", { class: "empty" }, "No transfers yet.")
        : h("div", { class: "transfers" }, list.map(transferItem)),
    );
  }

  appendLog(e) {
    const stick = this.logsEl.scrollTop + this.logsEl.clientHeight >= this.logsEl.scrollHeight - 4;
    this.logsEl.querySelector(".empty")?.remove();
    this.logsEl.append(logLine(e));
    while (this.logsEl.childElementCount > MAX_LOGS) this.logsEl.firstElementChild.remove();
    if (stick) this.logsEl.scrollTop = this.logsEl.scrollHeight;
  }

  renderEvents() {
    if (this.events.length === 0)
      return mount(
        this.eventsEl,
        h("p", { class: "empty" }, "No SSH, tunnel or environment events yet."),
      );
    mount(this.eventsEl, [...this.events].reverse().map(eventLine));
  }
}

function alertBox(el, text) {
  el.prepend(h("div", { class: "banner banner-bad" }, text));
}
