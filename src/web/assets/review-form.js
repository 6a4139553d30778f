// Rendering of the review form: a card per executor label (fields with their explanation, the
// keys one may add), and the excerpt of a file that does not parse.
import { badge, h } from "./dom.js";
import { describeProperty, toText } from "./form.js";

const NOT_IN_SCHEMA = "Not a setting parsl-sidecar knows: kept in the file exactly as it is.";

/** Where the file does not parse: the message, the lines around it, a caret under the column. */
export function renderParseError(snap, onReload) {
  const e = snap.parse_error;
  const lines = snap.text.split("\n");
  const excerpt = [];
  for (let i = Math.max(0, e.line - 4); i < Math.min(lines.length, e.line + 3); i++) {
    const n = i + 1;
    excerpt.push(
      h(
        "div",
        { class: n === e.line ? "src-line src-bad" : "src-line" },
        h("span", { class: "ln" }, String(n)),
        h("span", { class: "code" }, lines[i] || " "),
      ),
    );
    if (n === e.line)
      excerpt.push(
        h(
          "div",
          { class: "src-line src-caret" },
          h("span", { class: "ln" }, ""),
          h("span", { class: "code" }, `${" ".repeat(Math.max(0, e.column - 1))}^ ${e.message}`),
        ),
      );
  }
  return h(
    "div",
    { class: "card card-error", id: "parse-error" },
    h(
      "div",
      { class: "card-head" },
      h("h2", {}, "The file does not parse as JSON"),
      badge(`line ${e.line}, column ${e.column}`, "bad"),
    ),
    h("p", { class: "parse-msg" }, `${e.message} at line ${e.line}, column ${e.column}.`),
    h("div", { class: "src" }, excerpt),
    h("p", { class: "muted" }, "Fix the file in your editor and press Reload, or cancel the run."),
    h(
      "button",
      { type: "button", class: "btn", id: "reload", onclick: onReload },
      "Reload from disk",
    ),
  );
}

/** The explanation beside a key: what it means, then its default and where it applies. */
export function explainFor(snap, key, prop) {
  const e = snap.explain?.[key];
  if (!e) return h("div", {}, prop?.description ?? (prop ? "" : NOT_IN_SCHEMA));
  const meta = [
    e.default !== undefined ? `Default: ${e.default}` : null,
    e.providers ? `Used with PROVIDER ${e.providers.join(" or ")}` : null,
    e.example !== undefined ? `Example: ${e.example}` : null,
  ].filter(Boolean);
  return h(
    "div",
    {},
    h("div", {}, e.description),
    e.deprecated ? h("div", { class: "warn-text small" }, `Deprecated: ${e.deprecated}`) : null,
    meta.length ? h("div", { class: "meta" }, meta.join(" · ")) : null,
  );
}

/** A card: header with status, the fields, "other settings you can add", and a slot for checks. */
export function renderCard(view, card) {
  const pool = card.valid ? (card.entry.POOL ?? card.entry.pool) : undefined;
  const head = h(
    "div",
    { class: "card-head" },
    h("h2", {}, card.label),
    pool !== undefined ? h("span", { class: "pool" }, "pool ", h("code", {}, String(pool))) : null,
    h("span", { class: "card-status", id: `status-${card.label}` }),
  );
  const issues = h("div", { class: "card-issues", id: `issues-${card.label}` });
  if (!card.valid)
    return h(
      "div",
      { class: "card", dataset: { label: card.label } },
      head,
      issues,
      h("pre", { class: "raw" }, JSON.stringify(card.entry, null, 2)),
    );
  const missing = addableKeys(view.snap, view.shape, card);
  return h(
    "div",
    { class: "card", dataset: { label: card.label } },
    head,
    issues,
    h(
      "div",
      { class: "fields" },
      h("div", { class: "fields-head" }, h("span", {}, "Setting"), h("span", {}, "What it means")),
      card.fields.map((f) => renderField(view, f)),
    ),
    missing.length > 0
      ? h(
          "details",
          { class: "more" },
          h("summary", {}, `Other settings you can add (${missing.length})`),
          addRows(view, card, missing),
        )
      : null,
    h("div", { class: "extras", id: `extras-${card.label}` }),
  );
}

/** Keys of the schema not in the card; not the ones completion fills, not deprecated ones. */
function addableKeys(snap, shape, card) {
  return Object.keys(shape.properties).filter((k) => {
    const e = snap.explain?.[k];
    return !card.fields.some((f) => f.key === k) && e?.group !== "completed" && !e?.deprecated;
  });
}

function addRows(view, card, keys) {
  const groups = view.snap.groups ?? {};
  const byGroup = new Map();
  for (const k of keys) {
    const g = view.snap.explain?.[k]?.group ?? "";
    byGroup.set(g, [...(byGroup.get(g) ?? []), k]);
  }
  return [...byGroup].map(([g, ks]) => [
    g ? h("div", { class: "group-title" }, groups[g] ?? g) : null,
    ks.map((k) =>
      h(
        "div",
        { class: "add-row" },
        h(
          "button",
          { type: "button", class: "btn btn-small", onclick: () => view.addField(card, k) },
          `+ ${k}`,
        ),
        h(
          "div",
          { class: "help" },
          explainFor(
            view.snap,
            k,
            describeProperty(view.shape.properties[k], view.snap.entry_schema),
          ),
        ),
      ),
    ),
  ]);
}

/** One setting: its key (required / not in schema), an input that fits its type, its error line. */
export function renderField(view, f) {
  const id = `f-${f.label}-${f.key}`;
  const onInput = (ev) => {
    if (f.kind === "bool") f.checked = ev.target.checked;
    else f.text = ev.target.value;
    view.onEdit();
  };
  let input;
  if (f.kind === "bool")
    input = h(
      "label",
      { class: "switch" },
      h("input", { type: "checkbox", id, checked: f.checked, oninput: onInput }),
      h("span", {}, "enabled"),
    );
  else if (f.kind === "enum") {
    const opts = f.prop.values.map((v) => toText(v));
    if (f.text !== "" && !opts.includes(f.text)) opts.unshift(f.text);
    input = h(
      "select",
      { id, oninput: onInput },
      h("option", { value: "" }, "(not set)"),
      opts.map((o) => h("option", { value: o, selected: o === f.text }, o)),
    );
    input.value = f.text;
  } else if (f.kind === "json")
    input = h(
      "textarea",
      { id, rows: Math.min(8, f.text.split("\n").length), spellcheck: "false", oninput: onInput },
      f.text,
    );
  else {
    const example = view.snap.explain?.[f.key]?.example;
    input = h("input", {
      type: "text",
      id,
      value: f.text,
      spellcheck: "false",
      autocomplete: "off",
      placeholder: example !== undefined ? `e.g. ${example}` : "",
      oninput: onInput,
    });
  }
  return h(
    "div",
    { class: "field", dataset: { key: f.key } },
    h(
      "div",
      { class: "field-main" },
      h(
        "label",
        { for: id, class: "key" },
        h("code", {}, f.key),
        view.shape.required.has(f.key)
          ? h("span", { class: "req", title: "required" }, "required")
          : null,
        f.inSchema ? null : h("span", { class: "tag" }, "not in schema"),
      ),
      input,
      h("div", { class: "field-error", id: `err-${f.label}-${f.key}`, role: "alert" }),
    ),
    h("div", { class: "help" }, explainFor(view.snap, f.key, f.prop)),
  );
}
