// The live view's tables and lists, built from the services' records as they cross the API:
// jobs (with Stop), SSH connections, tunnels, transfers, log lines and events.
import { badge, h } from "./dom.js";
import { bytes, duration, pick, pickNum, rate, time } from "./format.js";

const RUNNING = new Set(["running", "starting", "started", "pending", "stopping"]);
const FINAL = ["succeeded", "failed", "killed", "timed-out", "lost"];

/** Which colour a state gets: ok, bad, warn or muted. */
export function stateKind(state) {
  const s = String(state ?? "").toLowerCase();
  if (
    [
      "running",
      "up",
      "open",
      "connected",
      "ready",
      "done",
      "ok",
      "completed",
      "succeeded",
      "active",
    ].includes(s)
  )
    return "ok";
  if (["failed", "error", "down", "closed", "killed", "lost", "timed-out"].includes(s))
    return "bad";
  if (
    ["starting", "pending", "reconnecting", "connecting", "stopping", "queued", "opening"].includes(
      s,
    )
  )
    return "warn";
  return "muted";
}

export function isJobLive(j) {
  const state = String(pick(j, "state", "status") ?? "").toLowerCase();
  return typeof j.live === "boolean" ? j.live && !FINAL.includes(state) : RUNNING.has(state);
}

function table(headers, numeric, rows) {
  return h(
    "table",
    { class: "table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        headers.map((c) => h("th", { class: numeric.has(c) ? "num" : "" }, c)),
      ),
    ),
    h("tbody", {}, rows),
  );
}

/** An argument as a shell would need it written. */
function shellWord(a) {
  const s = String(a);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`;
}

/** Jobs: state (with how it ended), command, start, pools, and Stop for live ones. */
export function jobsTable(jobs, stopping, onStop) {
  const rows = jobs.map((j) => {
    const id = String(pick(j, "id", "job_id", "name") ?? "");
    const state = String(pick(j, "state", "status") ?? "unknown");
    const cmd = pick(j, "command", "cmd", "argv");
    const started = pick(j, "started_at", "start", "started", "start_time");
    const pools = pick(j, "pools", "pool");
    const live = isJobLive(j);
    return h(
      "tr",
      { dataset: { job: id } },
      h("td", {}, h("code", {}, id)),
      h(
        "td",
        {},
        badge(state, stateKind(state)),
        !live && j.reason ? h("div", { class: "muted small" }, String(j.reason)) : null,
      ),
      h(
        "td",
        { class: "cmd" },
        h("code", {}, Array.isArray(cmd) ? cmd.map(shellWord).join(" ") : String(cmd ?? "–")),
      ),
      h(
        "td",
        {},
        time(started),
        live && started
          ? h("div", { class: "muted small" }, duration(Date.now() - new Date(started).getTime()))
          : null,
      ),
      h("td", {}, Array.isArray(pools) ? pools.join(", ") || "–" : String(pools ?? "–")),
      h(
        "td",
        { class: "right" },
        live
          ? h(
              "button",
              {
                type: "button",
                class: "btn btn-small btn-danger",
                disabled: stopping.has(id),
                onclick: () => onStop(id),
              },
              stopping.has(id) ? "Stopping…" : "Stop",
            )
          : null,
      ),
    );
  });
  return rows.length === 0
    ? h("p", { class: "empty" }, "No jobs.")
    : table(["Job", "State", "Command", "Started", "Pools", ""], new Set(), rows);
}

/** SSH connections to the pools (ssh.list). */
export function connectionsTable(connections) {
  const rows = connections.map((c) => {
    const state = String(c.state ?? "unknown");
    const jumps = Array.isArray(c.jumps) && c.jumps.length ? ` via ${c.jumps.join(" → ")}` : "";
    return h(
      "tr",
      { dataset: { target: String(c.target) } },
      h("td", {}, h("code", {}, String(c.target))),
      h(
        "td",
        {},
        h("code", {}, `${c.user ?? "?"}@${c.host ?? "?"}:${c.port ?? 22}`),
        jumps ? h("div", { class: "muted small" }, jumps) : null,
      ),
      h(
        "td",
        {},
        badge(state, stateKind(state)),
        c.last_error ? h("div", { class: "bad-text small" }, String(c.last_error)) : null,
      ),
      h("td", { class: "num" }, String(c.reconnects ?? 0)),
      h("td", { class: "num" }, String(c.sessions ?? 0)),
      h(
        "td",
        {},
        c.connected_at ? time(c.connected_at) : "–",
        c.connected_at && state === "ready"
          ? h("div", { class: "muted small" }, duration(Date.now() - c.connected_at))
          : null,
      ),
      h("td", { class: "muted small" }, c.cipher ? String(c.cipher) : "–"),
    );
  });
  return rows.length === 0
    ? h("p", { class: "empty" }, "No SSH connections open.")
    : table(
        ["Pool", "Login", "State", "Reconnects", "Sessions", "Connected", "Cipher"],
        new Set(["Reconnects", "Sessions"]),
        rows,
      );
}

export function tunnelIn(t) {
  return pickNum(t, "bytes_in", "bytesIn", "rx_bytes") ?? pickNum(t.bytes ?? {}, "in", "rx") ?? 0;
}

export function tunnelOut(t) {
  return (
    pickNum(t, "bytes_out", "bytesOut", "tx_bytes") ?? pickNum(t.bytes ?? {}, "out", "tx") ?? 0
  );
}

/** Where each end listens: for a reverse tunnel the pool's dial address reaches a port here. */
function ports(t) {
  const local = pick(t, "local_port", "localPort", "bind_port");
  if (t.kind === "reverse" && t.dial_port !== undefined)
    return `pool ${t.dial_host ?? "?"}:${t.dial_port} → here :${local ?? "?"}`;
  if (t.kind === "local" && t.remote_port !== undefined)
    return `here :${local ?? "?"} → ${t.remote_host ?? "?"}:${t.remote_port}`;
  const remote = pick(t, "remote_port", "remotePort", "dest_port");
  if (local !== undefined || remote !== undefined) return `${local ?? "?"} ↔ ${remote ?? "?"}`;
  const p = pick(t, "ports", "port");
  return p === undefined ? "–" : Array.isArray(p) ? p.join(", ") : String(p);
}

/** Tunnels (tunnels.list) with the rates computed from successive samples. */
export function tunnelsTable(tunnels, rates) {
  const rows = tunnels.map((t) => {
    const id = String(pick(t, "id", "name") ?? "");
    const state = String(pick(t, "state", "status") ?? "unknown");
    const r = rates.get(id);
    const err = pick(t, "error", "last_error");
    const lastChange = Array.isArray(t.port_changes) ? t.port_changes.at(-1) : undefined;
    return h(
      "tr",
      { dataset: { tunnel: id } },
      h(
        "td",
        {},
        h("code", {}, id),
        h(
          "div",
          { class: "muted small" },
          [pick(t, "kind", "direction", "type"), t.owner ? `owner ${t.owner}` : null]
            .filter(Boolean)
            .join(" · "),
        ),
      ),
      h(
        "td",
        {},
        String(pick(t, "target", "pool", "host") ?? "–"),
        t.reach ? h("div", { class: "muted small" }, `reach: ${t.reach}`) : null,
      ),
      h(
        "td",
        {},
        h("code", {}, ports(t)),
        lastChange
          ? h(
              "div",
              { class: "warn-text small" },
              `${lastChange.which} ${lastChange.from} → ${lastChange.to}: ${lastChange.reason}`,
            )
          : null,
      ),
      h(
        "td",
        { class: "num" },
        bytes(tunnelIn(t)),
        r ? h("div", { class: "muted small" }, rate(r.in)) : null,
      ),
      h(
        "td",
        { class: "num" },
        bytes(tunnelOut(t)),
        r ? h("div", { class: "muted small" }, rate(r.out)) : null,
      ),
      h("td", { class: "num" }, String(pickNum(t, "connections") ?? 0)),
      h(
        "td",
        { class: "num" },
        String(pickNum(t, "reconnects", "reconnect_count", "reconnections") ?? 0),
      ),
      h(
        "td",
        {},
        badge(state, stateKind(state)),
        err ? h("div", { class: "bad-text small" }, String(err)) : null,
      ),
    );
  });
  return rows.length === 0
    ? h("p", { class: "empty" }, "No tunnels.")
    : table(
        ["Tunnel", "Pool", "Ports", "Bytes in", "Bytes out", "Conns", "Reconnects", "State"],
        new Set(["Bytes in", "Bytes out", "Conns", "Reconnects"]),
        rows,
      );
}

export function transferFinished(t) {
  const s = String(pick(t, "state", "status") ?? "").toLowerCase();
  return (
    ["done", "completed", "finished", "failed", "error", "cancelled"].includes(s) ||
    t.topic === "transfer.done" ||
    pick(t, "error") !== undefined
  );
}

function transferName(t) {
  const src = pick(t, "src", "source", "from");
  const dst = pick(t, "dst", "dest", "destination", "to");
  if (src !== undefined || dst !== undefined) return `${src ?? "?"} → ${dst ?? "?"}`;
  return String(pick(t, "name", "path", "id") ?? "");
}

/** One transfer: a progress bar, bytes and files, the rate while it runs, its error if it failed. */
export function transferItem(t) {
  const done = pickNum(t, "bytes", "done", "bytes_done", "transferred", "bytes_transferred") ?? 0;
  const total = pickNum(t, "total_bytes", "total", "bytes_total", "size");
  const err = pick(t, "error");
  const finished = transferFinished(t);
  const pct = total ? Math.min(100, (done / total) * 100) : finished ? 100 : 0;
  const state = String(
    pick(t, "state", "status") ??
      (err || t.ok === false ? "failed" : finished ? "done" : "running"),
  );
  const r = finished ? undefined : pickNum(t, "rate_bps", "rate", "bytes_per_s");
  const files = pickNum(t, "total_files") ? ` · ${t.files ?? 0} of ${t.total_files} files` : "";
  const errText =
    err && typeof err === "object"
      ? [err.code, err.message ?? JSON.stringify(err)].filter(Boolean).join(": ")
      : err;
  return h(
    "div",
    { class: "transfer", dataset: { transfer: String(t.id) } },
    h(
      "div",
      { class: "transfer-head" },
      h("code", { class: "transfer-name" }, transferName(t)),
      badge(state, err ? "bad" : stateKind(state)),
    ),
    h(
      "div",
      { class: `bar${err ? " bar-bad" : ""}` },
      h("div", { class: "bar-fill", style: `width:${pct.toFixed(1)}%` }),
    ),
    h(
      "div",
      { class: "transfer-meta muted small" },
      `${bytes(done)}${total ? ` of ${bytes(total)} (${pct.toFixed(0)}%)` : ""}${files}`,
      r !== undefined ? ` · ${rate(r)}` : "",
      t.skipped ? ` · ${t.skipped} skipped (identical)` : "",
      ` · ${time(t.updated)}`,
    ),
    errText ? h("div", { class: "bad-text small" }, String(errText)) : null,
  );
}

function fields(data) {
  return Object.entries(data ?? {})
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** A `log` event as a line: time, level, message, then the other fields. */
export function logLine(e) {
  const { level, msg, time: t, ...rest } = e.data ?? {};
  const extras = fields(rest);
  return h(
    "div",
    { class: `log log-${level ?? "info"}` },
    h("span", { class: "log-time" }, time(t ?? e.ts)),
    h("span", { class: "log-level" }, String(level ?? "")),
    h("span", { class: "log-msg" }, String(msg ?? "")),
    extras ? h("span", { class: "log-extra" }, ` ${extras}`) : null,
  );
}

export function eventLine(e) {
  const text = fields(e.data);
  return h(
    "div",
    { class: "event" },
    h("span", { class: "log-time" }, time(e.ts)),
    h("code", { class: "event-topic" }, e.topic),
    h("span", { class: "event-data" }, text.length > 200 ? `${text.slice(0, 197)}…` : text),
  );
}
