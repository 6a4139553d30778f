// Tiny DOM helpers: elements are built with textContent only, never from HTML strings.

/**
 * Create an element: h("div", {class: "x", onclick: fn}, child, "text", [more]).
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs]
 * @param {...unknown} children
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = String(v);
    // through the CSSOM: the page's CSP refuses style attributes
    else if (k === "style") el.style.cssText = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A coloured pill: kind is ok, bad, warn, info or muted. */
export function badge(text, kind = "muted") {
  return h("span", { class: `badge badge-${kind}` }, text);
}

/** A message whose `quoted` parts (as the CLI prints them) become <code>. */
export function richText(text) {
  return String(text)
    .split(/(`[^`]*`)/)
    .filter((p) => p !== "")
    .map((p) =>
      p.length > 1 && p.startsWith("`") && p.endsWith("`") ? h("code", {}, p.slice(1, -1)) : p,
    );
}
