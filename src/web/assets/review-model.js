// The review form's model: one card per executor label, one field per key (file order first),
// and the document the edits make, in the form's order.
import { describeProperty, editorKind, fromText, objectShape, toText } from "./form.js";

/** Cards and the entry schema's shape from a review snapshot. */
export function buildModel(snap) {
  const schema = snap.entry_schema;
  const shape = schema ? objectShape(schema) : { properties: {}, required: new Set() };
  const model = [];
  const doc = snap.doc;
  if (doc && typeof doc === "object") {
    for (const [label, entry] of Object.entries(doc)) {
      const valid = Boolean(entry) && typeof entry === "object" && !Array.isArray(entry);
      const fields = [];
      if (valid) {
        for (const [key, value] of Object.entries(entry))
          fields.push(makeField(shape, schema, label, key, value));
        for (const key of shape.required)
          if (!(key in entry)) fields.push(makeField(shape, schema, label, key, undefined));
      }
      model.push({ label, entry, fields, valid });
    }
  }
  return { shape, model };
}

/** One field: how it is edited and the text it starts with. */
export function makeField(shape, schema, label, key, value) {
  const inSchema = Object.hasOwn(shape.properties, key);
  const prop = inSchema ? describeProperty(shape.properties[key], schema) : null;
  const kind = editorKind(prop, value);
  return {
    label,
    key,
    original: value,
    prop,
    inSchema,
    kind,
    text: kind === "json" ? JSON.stringify(value ?? null, null, 2) : toText(value),
    checked: value === true,
    jsonError: null,
  };
}

/** The value a field's input stands for; undefined leaves the key out. Sets `jsonError`. */
function fieldValue(f) {
  if (f.kind === "bool") return f.checked;
  if (f.kind === "json") {
    try {
      f.jsonError = null;
      return JSON.parse(f.text);
    } catch (err) {
      f.jsonError = `Not valid JSON: ${err.message}`;
      return f.text;
    }
  }
  if (f.kind === "enum")
    return f.text === "" ? undefined : (f.prop.values.find((x) => toText(x) === f.text) ?? f.text);
  return fromText(f.text, f.prop, f.original);
}

/** The document as edited: label → settings in the form's order (the server keeps the file's). */
export function currentDoc(model) {
  const doc = {};
  for (const card of model) {
    if (!card.valid) {
      doc[card.label] = card.entry;
      continue;
    }
    const entry = {};
    for (const f of card.fields) {
      const v = fieldValue(f);
      if (v !== undefined) entry[f.key] = v;
    }
    doc[card.label] = entry;
  }
  return doc;
}
