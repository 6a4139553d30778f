// The review view: one form per executor label with the explanation of each key, validation as
// you type (the sidecar's own check), the values completion fills in, the preflight checks, and
// Accept / Cancel.
import { getJson, postJson } from "./api.js";
import { badge, h, mount, richText } from "./dom.js";
import { placeIssues, preflightNote, renderExtras } from "./review-checks.js";
import { renderCard, renderParseError } from "./review-form.js";
import { buildModel, currentDoc, makeField } from "./review-model.js";

export class ReviewView {
  constructor(root, id) {
    this.root = root;
    this.id = id;
    this.snap = null;
    this.model = [];
    this.shape = { properties: {}, required: new Set() };
    this.issues = [];
    this.problemCount = 0;
    this.validateSeq = 0;
    this.timer = undefined;
    this.decidedHere = false;
    this.extras = {
      complete: {},
      preflight: {},
      completeError: null,
      preflightError: null,
      checking: false,
    };
  }

  async load() {
    this.setSnapshot(await getJson(`/api/reviews/${encodeURIComponent(this.id)}`));
    this.render();
    this.startChecks();
  }

  setSnapshot(snap) {
    this.snap = snap;
    ({ shape: this.shape, model: this.model } = buildModel(snap));
    this.issues = snap.check?.issues ?? [];
  }

  startChecks() {
    if (!this.snap.doc || this.snap.state !== "open") return;
    void this.refreshPreview();
    void this.runChecks();
  }

  /** A `web.review` event from the sidecar: another window decided. */
  onEvent(data) {
    if (!this.snap || data.id !== this.id) return;
    if (data.state !== "open" && this.snap.state === "open") {
      this.snap.state = data.state;
      if (!this.decidedHere)
        this.banner(
          "warn",
          `This review was ${data.state} in another window. Nothing more can be changed here.`,
        );
      this.renderActions();
      this.lockInputs();
    }
  }

  currentDoc() {
    return currentDoc(this.model);
  }

  onEdit() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.validate(), 150);
    this.renderActions();
  }

  /** POST /api/validate runs the same check as `executors check`; stale answers are dropped. */
  async validate() {
    const seq = ++this.validateSeq;
    try {
      const res = await postJson("/api/validate", { doc: this.currentDoc() });
      if (seq !== this.validateSeq) return;
      this.issues = res.issues;
    } catch (err) {
      if (seq !== this.validateSeq) return;
      this.issues = [
        { path: "", message: `Could not check the settings: ${err.message}`, severity: "error" },
      ];
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
    renderExtras(this);
  }

  /** The preflight reaches each pool: run on load and on "Run again", not on every keystroke. */
  async runChecks() {
    if (!this.snap.features?.preflight) return;
    this.extras.checking = true;
    renderExtras(this);
    try {
      const res = await postJson(`/api/reviews/${this.id}/preflight`, { doc: this.currentDoc() });
      this.extras.preflight = res.labels ?? {};
      this.extras.preflightError = null;
    } catch (err) {
      this.extras.preflight = {};
      this.extras.preflightError = err.message;
    }
    this.extras.checking = false;
    renderExtras(this);
    this.renderActions();
  }

  render() {
    const s = this.snap;
    this.bannerEl = h("div", { class: "banners", id: "banners" });
    this.actionsEl = h("div", { class: "actionbar", id: "actions" });
    const head = h(
      "div",
      { class: "page-head" },
      h(
        "div",
        {},
        h("h1", {}, "Review executor settings"),
        h(
          "p",
          { class: "sub" },
          "Check what each pool will get, fix what is wrong, then accept to let the run continue.",
        ),
      ),
      h(
        "div",
        { class: "file" },
        h("span", { class: "muted" }, "File"),
        h("code", { id: "file-path" }, s.file),
      ),
    );
    const body = s.parse_error
      ? renderParseError(s, () => void this.reload())
      : h(
          "div",
          { class: "cards", id: "cards" },
          this.model.map((c) => renderCard(this, c)),
        );
    mount(this.root, head, this.bannerEl, body, this.actionsEl);
    if (s.state !== "open") {
      this.banner(s.state === "accepted" ? "ok" : "warn", `This review was already ${s.state}.`);
      this.lockInputs();
    }
    this.renderIssues();
    renderExtras(this);
  }

  addField(card, key) {
    card.fields.push(makeField(this.shape, this.snap.entry_schema, card.label, key, undefined));
    this.root
      .querySelector(`.card[data-label="${CSS.escape(card.label)}"]`)
      ?.replaceWith(renderCard(this, card));
    this.renderIssues();
    renderExtras(this);
    this.root.querySelector(`#${CSS.escape(`f-${card.label}-${key}`)}`)?.focus();
  }

  renderIssues() {
    this.problemCount = placeIssues(this);
    this.renderActions();
  }

  renderActions() {
    if (!this.actionsEl) return;
    const open = this.snap.state === "open";
    const parseError = Boolean(this.snap.parse_error);
    const problems = this.problemCount;
    const status = !open
      ? badge(this.snap.state, this.snap.state === "accepted" ? "ok" : "warn")
      : parseError
        ? h("span", { class: "bad-text" }, "The file does not parse")
        : problems > 0
          ? h(
              "span",
              { class: "bad-text", id: "problem-count" },
              `${problems} problem${problems > 1 ? "s" : ""} to fix before accepting`,
            )
          : h(
              "span",
              { class: "ok-text", id: "problem-count" },
              "All settings are valid",
              preflightNote(this.extras),
            );
    mount(
      this.actionsEl,
      h("div", { class: "action-status" }, status),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-danger-ghost",
          id: "cancel",
          disabled: !open,
          onclick: () => void this.cancel(),
        },
        "Cancel run",
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-primary",
          id: "accept",
          disabled: !open || parseError || problems > 0,
          onclick: () => void this.accept(),
        },
        "Accept and continue",
      ),
    );
  }

  banner(kind, text, extra) {
    for (const b of this.bannerEl?.querySelectorAll(".banner:not(#global-issues)") ?? [])
      b.remove();
    const el = h(
      "div",
      { class: `banner banner-${kind}`, id: "banner" },
      h("div", {}, richText(text)),
      extra ?? null,
    );
    this.bannerEl?.append(el);
    // the buttons are at the bottom, the banner at the top: bring it into view
    el.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  lockInputs() {
    for (const el of this.root.querySelectorAll(
      "input, select, textarea, .fields button, .more button",
    ))
      el.disabled = true;
  }

  async accept() {
    clearTimeout(this.timer);
    const doc = this.currentDoc();
    this.actionsEl.querySelector("#accept").disabled = true;
    try {
      await postJson(`/api/reviews/${this.id}/accept`, { doc, hash: this.snap.hash });
      this.decidedHere = true;
      this.snap.state = "accepted";
      this.banner(
        "ok",
        "Accepted: the settings were written to the file and the run continues. Follow it under Live.",
      );
      this.lockInputs();
    } catch (err) {
      if (err.code === "EXECUTORS_INVALID" && err.data?.issues) {
        this.issues = err.data.issues;
        this.renderIssues();
      }
      const reload = err.data?.reason === "file_changed" || err.data?.reason === "stale_page";
      this.banner(
        err.code === "WEB_CONFLICT" ? "warn" : "bad",
        err.message,
        reload
          ? h(
              "button",
              {
                type: "button",
                class: "btn btn-small",
                id: "reload",
                onclick: () => void this.reload(),
              },
              "Reload from disk (discards your edits)",
            )
          : null,
      );
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
      this.banner(
        "warn",
        "Cancelled: the run stops without using these settings. Nothing was written.",
      );
      this.lockInputs();
    } catch (err) {
      this.banner(err.code === "WEB_CONFLICT" ? "warn" : "bad", err.message);
    }
    this.renderActions();
  }

  async reload() {
    try {
      this.setSnapshot(await postJson(`/api/reviews/${this.id}/reload`));
      this.render();
      this.banner("info", "Reloaded the file from disk.");
      this.startChecks();
    } catch (err) {
      this.banner("bad", err.message);
    }
  }
}
