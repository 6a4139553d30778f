// What the review shows next to the form: each issue of the check beside its field (or its card,
// or the page), what completion fills in, the preflight checks, and what each pool must provide.
import { badge, h, mount, richText } from "./dom.js";
import { toText } from "./form.js";

const errors = (list) => list.filter((i) => i.severity === "error").length;
const byId = (root, id) => root.querySelector(`#${CSS.escape(id)}`);

/** Place issues; returns how many errors there are (warnings do not block Accept). */
export function placeIssues(view) {
  const byField = new Map();
  const byCard = new Map();
  const global = [];
  const add = (map, key, item) => map.set(key, [...(map.get(key) ?? []), item]);
  for (const card of view.model)
    for (const f of card.fields)
      if (f.jsonError)
        add(byField, `${card.label}.${f.key}`, { message: f.jsonError, severity: "error" });
  for (const issue of view.issues) {
    const item = { message: issue.message, severity: issue.severity ?? "error" };
    const parts = issue.path ? issue.path.split(".") : [];
    const card = view.model.find((c) => c.label === parts[0]);
    const field = card?.fields.find((f) => f.key === parts[1]);
    if (field) add(byField, `${card.label}.${field.key}`, item);
    else if (card) add(byCard, card.label, item);
    else global.push(item);
  }
  let total = errors(global);
  for (const card of view.model) {
    const cardItems = byCard.get(card.label) ?? [];
    let count = errors(cardItems);
    let warnings = cardItems.length - count;
    for (const f of card.fields) {
      const items = byField.get(`${card.label}.${f.key}`) ?? [];
      count += errors(items);
      warnings += items.length - errors(items);
      const el = byId(view.root, `err-${card.label}-${f.key}`);
      if (el)
        mount(
          el,
          items.map((i) =>
            h("div", { class: i.severity === "error" ? "" : "warn-text" }, richText(i.message)),
          ),
        );
      el?.closest(".field")?.classList.toggle("invalid", errors(items) > 0);
      el?.closest(".field")?.classList.toggle("warned", items.length > 0 && errors(items) === 0);
    }
    total += count;
    const ci = byId(view.root, `issues-${card.label}`);
    if (ci)
      mount(
        ci,
        cardItems.map((i) =>
          h(
            "div",
            { class: i.severity === "error" ? "issue" : "issue issue-warn" },
            richText(i.message),
          ),
        ),
      );
    const st = byId(view.root, `status-${card.label}`);
    if (st)
      mount(
        st,
        count > 0 ? badge(`${count} problem${count > 1 ? "s" : ""}`, "bad") : badge("valid", "ok"),
        warnings > 0 ? badge(`${warnings} warning${warnings > 1 ? "s" : ""}`, "warn") : null,
      );
  }
  view.root.querySelector("#global-issues")?.remove();
  if (global.length > 0)
    view.bannerEl?.prepend(
      h(
        "div",
        { class: `banner ${errors(global) ? "banner-bad" : "banner-warn"}`, id: "global-issues" },
        global.map((i) => h("div", {}, richText(i.message))),
      ),
    );
  return total;
}

function completeBox(extras, filled) {
  const known = (v) => v.value !== null && v.value !== undefined;
  return h(
    "div",
    { class: "extra" },
    h("h3", {}, "Filled in when the run starts"),
    extras.completeError
      ? h("p", { class: "bad-text" }, extras.completeError)
      : filled
        ? h(
            "dl",
            { class: "kv" },
            filled.map((v) => [
              h("dt", {}, h("code", {}, v.key)),
              h(
                "dd",
                {},
                known(v) ? h("code", { class: "filled" }, toText(v.value)) : null,
                h("span", { class: "muted small" }, known(v) ? " " : "", richText(v.note)),
              ),
            ]),
          )
        : h("p", { class: "muted" }, "Fix the problems above to see what completion fills in."),
  );
}

function checkItem(c) {
  return h(
    "li",
    {
      class: c.pending ? "check pending" : c.ok ? "check ok" : "check bad",
      dataset: { check: c.name },
    },
    h("span", { class: "mark" }, c.pending ? "…" : c.ok ? "✓" : "✗"),
    h("span", { class: "check-name" }, c.name),
    h("span", { class: "check-msg" }, richText(c.message)),
  );
}

function preflightBox(view, checks) {
  const x = view.extras;
  const can = view.snap?.features?.preflight;
  return h(
    "div",
    { class: "extra" },
    h(
      "h3",
      {},
      "Preflight checks",
      can
        ? h(
            "button",
            {
              type: "button",
              class: "btn btn-small btn-ghost",
              disabled: x.checking,
              onclick: () => void view.runChecks(),
            },
            "Run again",
          )
        : null,
    ),
    !can
      ? h(
          "p",
          { class: "muted" },
          "This sidecar cannot run preflight checks yet (no executors.preflight method).",
        )
      : x.checking
        ? h("p", { class: "muted" }, h("span", { class: "spinner" }), " checking the pool…")
        : x.preflightError
          ? h("p", { class: "bad-text" }, richText(x.preflightError))
          : !checks || checks.length === 0
            ? h("p", { class: "muted" }, "No checks ran for this executor.")
            : h("ul", { class: "checks" }, checks.map(checkItem)),
  );
}

/** Completion preview, preflight and the pool's requirements under each card. */
export function renderExtras(view) {
  for (const card of view.model) {
    const el = byId(view.root, `extras-${card.label}`);
    if (!el) continue;
    const needs = view.snap.pools?.[card.label];
    const needsBox = needs?.length
      ? h(
          "details",
          { class: "needs" },
          h("summary", {}, "What this pool must provide"),
          h(
            "ul",
            {},
            needs.map((n) => h("li", {}, n)),
          ),
        )
      : null;
    mount(
      el,
      h(
        "div",
        { class: "extras-grid" },
        completeBox(view.extras, view.extras.complete[card.label]),
        preflightBox(view, view.extras.preflight[card.label]),
      ),
      needsBox,
    );
  }
}

/** Failed preflight checks do not block Accept (the pool may be fixed meanwhile), but are said. */
export function preflightNote(extras) {
  const failed = Object.values(extras.preflight ?? {})
    .flat()
    .filter((c) => !c.ok).length;
  if (failed === 0) return null;
  return h(
    "span",
    { class: "warn-text", id: "preflight-note" },
    ` · ${failed} preflight check${failed > 1 ? "s" : ""} failed: the run will stop there unless the pool is fixed`,
  );
}
