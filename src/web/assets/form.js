// Turns a JSON Schema (of one executor entry) into field descriptions, and typed text back into
// JSON values. Generic: $ref/$defs, anyOf/oneOf/allOf (properties merged), enum/const, types.

/** Follow a local $ref (#/$defs/X or #/definitions/X) within `root`. */
function deref(schema, root) {
  let s = schema;
  for (let i = 0; i < 16 && s && typeof s.$ref === "string"; i++) {
    const path = s.$ref
      .replace(/^#\//, "")
      .split("/")
      .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    s = path.reduce((acc, k) => (acc ? acc[k] : undefined), root);
  }
  return s ?? {};
}

/** The branches of a schema: itself plus every anyOf/oneOf/allOf member, dereferenced. */
function branches(schema, root) {
  const s = deref(schema, root);
  const out = [s];
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (Array.isArray(s[key])) for (const b of s[key]) out.push(...branches(b, root));
  }
  return out;
}

/** What a property accepts: types, enum values, description, default. */
export function describeProperty(schema, root) {
  const types = new Set();
  let values;
  let description;
  let deflt;
  for (const b of branches(schema, root)) {
    if (typeof b.type === "string") types.add(b.type);
    if (Array.isArray(b.type)) for (const t of b.type) types.add(t);
    if (Array.isArray(b.enum)) values = [...(values ?? []), ...b.enum];
    if (b.const !== undefined) values = [...(values ?? []), b.const];
    description ??= b.description;
    if (deflt === undefined && b.default !== undefined) deflt = b.default;
  }
  if (values)
    for (const v of values)
      types.add(v === null ? "null" : typeof v === "number" ? "number" : typeof v);
  return { types, values, description, default: deflt };
}

/** Properties (name → schema) and required names of an object schema, merged over its branches. */
export function objectShape(schema, root = schema) {
  const properties = {};
  const required = new Set();
  for (const b of branches(schema, root)) {
    if (b.properties) for (const [k, v] of Object.entries(b.properties)) properties[k] ??= v;
  }
  // a key is required when the top schema or every union member requires it
  const top = deref(schema, root);
  for (const k of top.required ?? []) required.add(k);
  const unions = top.anyOf ?? top.oneOf;
  if (Array.isArray(unions) && unions.length > 0) {
    const sets = unions.map((u) => new Set(deref(u, root).required ?? []));
    for (const k of sets[0]) if (sets.every((s) => s.has(k))) required.add(k);
  }
  return { properties, required };
}

/** How a value is edited: "json" for objects and arrays, "bool" for booleans only, "enum" for fixed choices, else "text". */
export function editorKind(prop, value) {
  if (value !== null && typeof value === "object") return "json";
  if (prop?.values && prop.values.length > 0 && prop.values.every((v) => typeof v !== "object"))
    return "enum";
  if (prop && prop.types.size === 1 && prop.types.has("boolean")) return "bool";
  if (prop && (prop.types.has("object") || prop.types.has("array")) && !prop.types.has("string"))
    return "json";
  return "text";
}

/** The text shown in an input for a value. */
export function toText(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

const NUMERIC = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * Typed text → the JSON value to send. Numbers and booleans become numbers and booleans when the
 * schema allows them (or, without a schema, when the original value was one), unless the original
 * was a string the schema also allows. Anything else stays a string, so the check can name it.
 * Returns undefined for an empty input (the key is left out).
 */
export function fromText(text, prop, original) {
  if (text === "") return undefined;
  const types = prop?.types?.size
    ? prop.types
    : new Set([original === undefined ? "string" : original === null ? "null" : typeof original]);
  const keepString = types.has("string") && typeof original === "string";
  if (!keepString) {
    if ((types.has("number") || types.has("integer")) && NUMERIC.test(text.trim()))
      return Number(text.trim());
    if (types.has("boolean") && (text === "true" || text === "false")) return text === "true";
    if (types.has("null") && text === "null") return null;
  }
  return text;
}
