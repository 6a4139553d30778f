// The review view: one form per executor label with the explanation of each key, validation as
// you type (the sidecar's own check), the values completion fills in, the preflight checks, and
// Accept / Cancel.
import { getJson, postJson } from "./api.js";
import { badge, h, mount, richText } from "./dom.js";
import { describeProperty, editorKind, fromText, objectShape, toText } from "./form.js";

const NOT_IN_SCHEMA = "Not a setting parsl-sidecar knows: kept in the file exactly as it is.";

export class ReviewView {
  constructor(root, id) {
    this.root = root;
    this.id = id;
    this.snap = null;
    this.model = [];
    this.issues = [];
    this.validateSeq = 0;
    this.timer = undefined;
    this.decidedHere = false;
    this.extras = { complete: {}, preflight: {}, completeError: null, preflightError: null, checking: false };
  }

  async load() {
    this.snap = await getJson(`/api/reviews/${encodeURIComponent(this.id)}`);
    this.buildModel();
    this.render();
    if (this.snap.doc && this.snap.state === "open") {
      void this.refreshPreview();
      void this.runChecks();
    }
  }

  /** A `web.review` event from the sidecar: another window decided or reloaded. */
  onEvent(data) {
    if (!this.snap || data.id !== this.id) return;
    if (data.state !== "open" && this.snap.state === "open") {
      this.snap.state = data.state;
      if (!this.decidedHere) this.banner("warn", `This review was ${data.state} in another window. Nothing more can be changed here.`);
      this.renderActions();
      this.lockInputs();
    }
  }

  buildModel() {
    const doc = this.snap.doc;
    const schema = this.snap.entry_schema;
    const shape = schema ? objectShape(schema) : { properties: {}, required: new Set() };
    this.shape = shape;
    this.issues = this.snap.check?.issues ?? [];
    this.model = [];
    if (!doc || typeof doc !== "object") return;
    for (const [label, entry] of Object.entries(doc)) {
      const fields = [];
      if (entry && typeof entry === "object" && !Array.isArray(entry)) {
        for (const [key, value] of Object.entries(entry)) fields.push(this.field(label, key, value));
        for (const key of shape.required) if (!(key in entry)) fields.push(this.field(label, key, undefined));
      }
      this.model.push({ label, entry, fields, valid: entry && typeof entry === "object" && !Array.isArray(entry) });
    }
  }

  field(label, key, value) {
    const inSchema = Object.hasOwn(this.shape.properties, key);
    const prop = inSchema ? describeProperty(this.shape.properties[key], this.snap.entry_schema) : null;
    const kind = editorKind(prop, value);
    return { label, key, original: value, prop, inSchema, kind, text: kind === "json" ? JSON.stringify(value ?? null, null, 2) : toText(value), checked: value === true, jsonError: null };
  }

  /** The document as edited: label → settings in the form's order. */
  currentDoc() {
    const doc = {};
    for (const card of this.model) {
      if (!card.valid) {
        doc[card.label] = card.entry;
        continue;
      }
      const entry = {};
      for (const f of card.fields) {
        let v;
        if (f.kind === "bool") v = f.checked;
        else if (f.kind === "json") {
          try {
            v = JSON.parse(f.text);
            f.jsonError = null;
          } catch (err) {
            f.jsonError = `Not valid JSON: ${err.message}`;
            v = f.text;
          }
        } else if (f.kind === "enum") v = f.text === "" ? undefined : f.prop.values.find((x) => toText(x) === f.text) ?? f.text;
        else v = fromText(f.text, f.prop, f.original);
        if (v !== undefined) entry[f.key] = v;
      }
      doc[card.label] = entry;
    }
    return doc;
  }

  onEdit() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.validate(), 150);
    this.renderActions();
  }

  async validate() {
    const seq = ++this.validateSeq;
    const doc = this.currentDoc();
    try {
      const res = await postJson("/api/validate", { doc });
      if (seq !== this.validateSeq) return;
      this.issues = res.issues;
    } catch (err) {
      if (seq !== this.validateSeq) return;
      this.issues = [{ path: "", message: `Could not check the settings: ${err.message}` }];
    }
    this.renderIssues();
    void this.refreshPreview();
  }

  /** What completion fills in (cheap, no pool contact): refreshed after every check. */
  async refreshPreview() {
    try {
      const res = await postJson(`/api/reviews/${this.id}/complete`, { doc: this.currentDoc() });
      this.extras.complete = res.labels ?? {};
      if (res.pools) this.snap.pools = res.pools;
      this.extras.completeError = null;
    } catch (err) {
      this.extras.completeError = err.message;
    }
    this.renderExtras();
  }

  /** The preflight reaches each pool: run on load and on "Run again", not on every keystroke. */
  async runChecks() {
    if (!this.snap.features?.preflight) return;
    this.extras.checking = true;
    this.renderExtras();
    try {
      const res = await postJson(`/api/reviews/${this.id}/preflight`, { doc: this.currentDoc() });
      this.extras.preflight = res.labels ?? {};
      this.extras.preflightError = null;
    } catch (err) {
      this.extras.preflight = {};
      this.extras.preflightError = err.message;
    }
    this.extras.checking = false;
    this.renderExtras();
    this.renderActions();
  }

  // ---- rendering ----

  render() {
    const s = this.snap;
    this.bannerEl = h("div", { class: "banners", id: "banners" });
    this.actionsEl = h("div", { class: "actionbar", id: "actions" });
    const head = h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, "Review executor settings"), h("p", { class: "sub" }, "Check what each pool will get, fix what is wrong, then accept to let the run continue.")),
      h("div", { class: "file" }, h("span", { class: "muted" }, "File"), h("code", { id: "file-path" }, s.file)),
    );
    const body = s.parse_error ? this.renderParseError() : h("div", { class: "cards", id: "cards" }, this.model.map((c) => this.renderCard(c)));
    mount(this.root, head, this.bannerEl, body, this.actionsEl);
    if (s.state !== "open") {
      this.banner(s.state === "accepted" ? "ok" : "warn", `This review was already ${s.state}.`);
      this.lockInputs();
    }
    this.renderIssues();
    this.renderExtras();
    this.renderActions();
  }

  renderParseError() {
    const e = this.snap.parse_error;
    const lines = this.snap.text.split("\n");
    const from = Math.max(0, e.line - 4);
    const to = Math.min(lines.length, e.line + 3);
    const excerpt = [];
    for (let i = from; i < to; i++) {
      const n = i + 1;
      excerpt.push(h("div", { class: n === e.line ? "src-line src-bad" : "src-line" }, h("span", { class: "ln" }, String(n)), h("span", { class: "code" }, lines[i] || " ")));
      if (n === e.line) excerpt.push(h("div", { class: "src-line src-caret" }, h("span", { class: "ln" }, ""), h("span", { class: "code" }, `${" ".repeat(Math.max(0, e.column - 1))}^ ${e.message}`)));
    }
    return h(
      "div",
      { class: "card card-error", id: "parse-error" },
      h("div", { class: "card-head" }, h("h2", {}, "The file does not parse as JSON"), badge(`line ${e.line}, column ${e.column}`, "bad")),
      h("p", { class: "parse-msg" }, `${e.message} at line ${e.line}, column ${e.column}.`),
      h("div", { class: "src" }, excerpt),
      h("p", { class: "muted" }, "Fix the file in your editor and press Reload, or cancel the run."),
      h("button", { type: "button", class: "btn", id: "reload", onclick: () => void this.reload() }, "Reload from disk"),
    );
  }

  renderCard(card) {
    const pool = card.valid ? card.entry.POOL ?? card.entry.pool : undefined;
    const head = h(
      "div",
      { class: "card-head" },
      h("h2", {}, card.label),
      pool !== undefined ? h("span", { class: "pool" }, "pool ", h("code", {}, String(pool))) : null,
      h("span", { class: "card-status", id: `status-${card.label}` }),
    );
    if (!card.valid) {
      return h("div", { class: "card", dataset: { label: card.label } }, head, h("div", { class: "card-issues", id: `issues-${card.label}` }), h("pre", { class: "raw" }, JSON.stringify(card.entry, null, 2)));
    }
    const rows = card.fields.map((f) => this.renderField(f));
    const addable = (k) => {
      const e = this.snap.explain?.[k];
      return !card.fields.some((f) => f.key === k) && e?.group !== "completed" && !e?.deprecated;
    };
    const missing = Object.keys(this.shape.properties).filter(addable);
    const groups = this.snap.groups ?? {};
    const byGroup = new Map();
    for (const k of missing) {
      const g = this.snap.explain?.[k]?.group ?? "";
      byGroup.set(g, [...(byGroup.get(g) ?? []), k]);
    }
    const addRows = [...byGroup].map(([g, keys]) => [
      g ? h("div", { class: "group-title" }, groups[g] ?? g) : null,
      keys.map((k) =>
        h(
          "div",
          { class: "add-row" },
          h("button", { type: "button", class: "btn btn-small", onclick: () => this.addField(card, k) }, `+ ${k}`),
          h("div", { class: "help" }, this.explainFor(k, describeProperty(this.shape.properties[k], this.snap.entry_schema))),
        ),
      ),
    ]);
    return h(
      "div",
      { class: "card", dataset: { label: card.label } },
      head,
      h("div", { class: "card-issues", id: `issues-${card.label}` }),
      h("div", { class: "fields" }, h("div", { class: "fields-head" }, h("span", {}, "Setting"), h("span", {}, "What it means")), rows),
      missing.length > 0 ? h("details", { class: "more" }, h("summary", {}, `Other settings you can add (${missing.length})`), addRows) : null,
      h("div", { class: "extras", id: `extras-${card.label}` }),
    );
  }

  /** The explanation beside a key: what it means, then its default and where it applies. */
  explainFor(key, prop) {
    const e = this.snap.explain?.[key];
    if (!e) return h("div", {}, prop?.description ?? (prop ? "" : NOT_IN_SCHEMA));
    const meta = [
      e.default !== undefined ? `Default: ${e.default}` : null,
      e.providers ? `Used with PROVIDER ${e.providers.join(" or ")}` : null,
      e.example !== undefined ? `Example: ${e.example}` : null,
    ].filter(Boolean);
    return h("div", {}, h("div", {}, e.description), e.deprecated ? h("div", { class: "warn-text small" }, `Deprecated: ${e.deprecated}`) : null, meta.length ? h("div", { class: "meta" }, meta.join(" · ")) : null);
  }

  renderField(f) {
    const id = `f-${f.label}-${f.key}`;
    const onInput = (ev) => {
      if (f.kind === "bool") f.checked = ev.target.checked;
      else f.text = ev.target.value;
      this.onEdit();
    };
    let input;
    if (f.kind === "bool") input = h("label", { class: "switch" }, h("input", { type: "checkbox", id, checked: f.checked, oninput: onInput }), h("span", {}, "enabled"));
    else if (f.kind === "enum") {
      const opts = f.prop.values.map((v) => toText(v));
      if (f.text !== "" && !opts.includes(f.text)) opts.unshift(f.text);
      input = h("select", { id, oninput: onInput }, h("option", { value: "" }, "(not set)"), opts.map((o) => h("option", { value: o, selected: o === f.text }, o)));
      input.value = f.text;
    } else if (f.kind === "json") input = h("textarea", { id, rows: Math.min(8, f.text.split("\n").length), spellcheck: "false", oninput: onInput }, f.text);
    else input = h("input", { type: "text", id, value: f.text, spellcheck: "false", autocomplete: "off", placeholder: this.snap.explain?.[f.key]?.example !== undefined ? `e.g. ${this.snap.explain[f.key].example}` : "", oninput: onInput });
    const required = this.shape.required.has(f.key);
    return h(
      "div",
      { class: "field", dataset: { key: f.key } },
      h(
        "div",
        { class: "field-main" },
        h("label", { for: id, class: "key" }, h("code", {}, f.key), required ? h("span", { class: "req", title: "required" }, "required") : null, f.inSchema ? null : h("span", { class: "tag" }, "not in schema")),
        input,
        h("div", { class: "field-error", id: `err-${f.label}-${f.key}`, role: "alert" }),
      ),
      h("div", { class: "help" }, this.explainFor(f.key, f.prop)),
    );
  }

  addField(card, key) {
    card.fields.push(this.field(card.label, key, undefined));
    const el = this.root.querySelector(`.card[data-label="${CSS.escape(card.label)}"]`);
    el?.replaceWith(this.renderCard(card));
    this.renderIssues();
    this.renderExtras();
    this.root.querySelector(`#${CSS.escape(`f-${card.label}-${key}`)}`)?.focus();
  }

  /** Put each issue beside its field; others at the top of the card or of the page. Warnings do not block. */
  renderIssues() {
    const byField = new Map();
    const byCard = new Map();
    const global = [];
    const add = (map, key, item) => map.set(key, [...(map.get(key) ?? []), item]);
    for (const card of this.model) for (const f of card.fields) if (f.jsonError) add(byField, `${card.label}.${f.key}`, { message: f.jsonError, severity: "error" });
    for (const issue of this.issues) {
      const item = { message: issue.message, severity: issue.severity ?? "error" };
      const parts = issue.path ? issue.path.split(".") : [];
      const card = this.model.find((c) => c.label === parts[0]);
      const field = card?.fields.find((f) => f.key === parts[1]);
      if (field) add(byField, `${card.label}.${field.key}`, item);
      else if (card) add(byCard, card.label, item);
      else global.push(item);
    }
    const errors = (list) => list.filter((i) => i.severity === "error").length;
    let total = errors(global);
    for (const card of this.model) {
      let count = errors(byCard.get(card.label) ?? []);
      let warnings = (byCard.get(card.label) ?? []).length - count;
      for (const f of card.fields) {
        const items = byField.get(`${card.label}.${f.key}`) ?? [];
        count += errors(items);
        warnings += items.length - errors(items);
        const el = this.root.querySelector(`#${CSS.escape(`err-${card.label}-${f.key}`)}`);
        if (el) mount(el, items.map((i) => h("div", { class: i.severity === "error" ? "" : "warn-text" }, richText(i.message))));
        el?.closest(".field")?.classList.toggle("invalid", errors(items) > 0);
        el?.closest(".field")?.classList.toggle("warned", items.length > 0 && errors(items) === 0);
      }
      total += count;
      const ci = this.root.querySelector(`#${CSS.escape(`issues-${card.label}`)}`);
      if (ci) mount(ci, (byCard.get(card.label) ?? []).map((i) => h("div", { class: i.severity === "error" ? "issue" : "issue issue-warn" }, richText(i.message))));
      const st = this.root.querySelector(`#${CSS.escape(`status-${card.label}`)}`);
      if (st) mount(st, count > 0 ? badge(`${count} problem${count > 1 ? "s" : ""}`, "bad") : badge("valid", "ok"), warnings > 0 ? badge(`${warnings} warning${warnings > 1 ? "s" : ""}`, "warn") : null);
    }
    this.problemCount = total;
    this.root.querySelector("#global-issues")?.remove();
    if (global.length > 0) this.bannerEl?.prepend(h("div", { class: `banner ${errors(global) ? "banner-bad" : "banner-warn"}`, id: "global-issues" }, global.map((i) => h("div", {}, richText(i.message)))));
    this.renderActions();
  }

  renderExtras() {
    const feats = this.snap?.features ?? {};
    for (const card of this.model) {
      const el = this.root.querySelector(`#${CSS.escape(`extras-${card.label}`)}`);
      if (!el) continue;
      const filled = this.extras.complete[card.label];
      const checks = this.extras.preflight[card.label];
      const needs = this.snap.pools?.[card.label];
      const completeBox = h(
        "div",
        { class: "extra" },
        h("h3", {}, "Filled in when the run starts"),
        this.extras.completeError
            ? h("p", { class: "bad-text" }, this.extras.completeError)
            : filled
              ? h("dl", { class: "kv" }, filled.map((v) => [h("dt", {}, h("code", {}, v.key)), h("dd", {}, v.value !== null && v.value !== undefined ? h("code", { class: "filled" }, toText(v.value)) : null, h("span", { class: "muted small" }, v.value !== null && v.value !== undefined ? " " : "", richText(v.note)))]))
              : h("p", { class: "muted" }, "Fix the problems above to see what completion fills in."),
      );
      const preflightBox = h(
        "div",
        { class: "extra" },
        h("h3", {}, "Preflight checks", feats.preflight ? h("button", { type: "button", class: "btn btn-small btn-ghost", disabled: this.extras.checking, onclick: () => void this.runChecks() }, "Run again") : null),
        !feats.preflight
          ? h("p", { class: "muted" }, "This sidecar cannot run preflight checks yet (no executors.preflight method).")
          : this.extras.checking
            ? h("p", { class: "muted" }, h("span", { class: "spinner" }), " checking the pool…")
            : this.extras.preflightError
              ? h("p", { class: "bad-text" }, richText(this.extras.preflightError))
              : !checks || checks.length === 0
                ? h("p", { class: "muted" }, "No checks ran for this executor.")
                : h("ul", { class: "checks" }, checks.map((c) => h("li", { class: c.pending ? "check pending" : c.ok ? "check ok" : "check bad", dataset: { check: c.name } }, h("span", { class: "mark" }, c.pending ? "…" : c.ok ? "✓" : "✗"), h("span", { class: "check-name" }, c.name), h("span", { class: "check-msg" }, richText(c.message))))),
      );
      const needsBox = needs?.length ? h("details", { class: "needs" }, h("summary", {}, "What this pool must provide"), h("ul", {}, needs.map((n) => h("li", {}, n)))) : null;
      mount(el, h("div", { class: "extras-grid" }, completeBox, preflightBox), needsBox);
    }
  }

  /** Failed preflight checks do not block Accept (the pool may be fixed meanwhile), but are said. */
  preflightNote() {
    const failed = Object.values(this.extras.preflight ?? {}).flat().filter((c) => !c.ok).length;
    if (failed === 0) return null;
    return h("span", { class: "warn-text", id: "preflight-note" }, ` · ${failed} preflight check${failed > 1 ? "s" : ""} failed: the run will stop there unless the pool is fixed`);
  }

  renderActions() {
    if (!this.actionsEl) return;
    const open = this.snap.state === "open";
    const parseError = Boolean(this.snap.parse_error);
    const problems = this.problemCount ?? 0;
    const status = !open
      ? badge(this.snap.state, this.snap.state === "accepted" ? "ok" : "warn")
      : parseError
        ? h("span", { class: "bad-text" }, "The file does not parse")
        : problems > 0
          ? h("span", { class: "bad-text", id: "problem-count" }, `${problems} problem${problems > 1 ? "s" : ""} to fix before accepting`)
          : h("span", { class: "ok-text", id: "problem-count" }, "All settings are valid", this.preflightNote());
    mount(
      this.actionsEl,
      h("div", { class: "action-status" }, status),
      h("button", { type: "button", class: "btn btn-danger-ghost", id: "cancel", disabled: !open, onclick: () => void this.cancel() }, "Cancel run"),
      h("button", { type: "button", class: "btn btn-primary", id: "accept", disabled: !open || parseError || problems > 0, onclick: () => void this.accept() }, "Accept and continue"),
    );
  }

  banner(kind, text, extra) {
    this.bannerEl?.querySelectorAll(".banner:not(#global-issues)").forEach((b) => b.remove());
    const el = h("div", { class: `banner banner-${kind}`, id: "banner" }, h("div", {}, richText(text)), extra ?? null);
    this.bannerEl?.append(el);
    // the buttons are at the bottom, the banner at the top: bring it into view
    el.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  lockInputs() {
    for (const el of this.root.querySelectorAll("input, select, textarea, .fields button, .more button")) el.disabled = true;
  }

  async accept() {
    clearTimeout(this.timer);
    const doc = this.currentDoc();
    this.actionsEl.querySelector("#accept").disabled = true;
    try {
      await postJson(`/api/reviews/${this.id}/accept`, { doc, hash: this.snap.hash });
      this.decidedHere = true;
      this.snap.state = "accepted";
      this.banner("ok", "Accepted: the settings were written to the file and the run continues. Follow it under Live.");
      this.lockInputs();
    } catch (err) {
      if (err.code === "EXECUTORS_INVALID" && err.data?.issues) {
        this.issues = err.data.issues;
        this.renderIssues();
      }
      const reload = err.data?.reason === "file_changed" || err.data?.reason === "stale_page";
      this.banner(err.code === "WEB_CONFLICT" ? "warn" : "bad", err.message, reload ? h("button", { type: "button", class: "btn btn-small", id: "reload", onclick: () => void this.reload() }, "Reload from disk (discards your edits)") : null);
      if (err.data?.reason === "already_decided") {
        this.snap.state = err.data.state ?? "accepted";
        this.lockInputs();
      }
    }
    this.renderActions();
  }

  async cancel() {
    try {
      await postJson(`/api/reviews/${this.id}/cancel`);
      this.decidedHere = true;
      this.snap.state = "cancelled";
      this.banner("warn", "Cancelled: the run stops without using these settings. Nothing was written.");
      this.lockInputs();
    } catch (err) {
      this.banner(err.code === "WEB_CONFLICT" ? "warn" : "bad", err.message);
    }
    this.renderActions();
  }

  async reload() {
    try {
      this.snap = await postJson(`/api/reviews/${this.id}/reload`);
      this.buildModel();
      this.render();
      this.banner("info", "Reloaded the file from disk.");
      if (this.snap.doc) {
        void this.refreshPreview();
        void this.runChecks();
      }
    } catch (err) {
      this.banner("bad", err.message);
    }
  }
}
