/**
 * The JSON file as text: parse errors with line and column, the file's own indentation, an
 * order-keeping merge of edited values into the original object.
 */
export type JsonParse =
  | { ok: true; value: unknown }
  | { ok: false; message: string; line: number; column: number; offset: number };

/** Parse JSON; on failure say where (1-based line and column) as well as what. */
export function parseJsonText(text: string): JsonParse {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    const message = (err as Error).message;
    const m = /at position (\d+)/.exec(message);
    const offset = m ? Number(m[1]) : text.length;
    const { line, column } = lineColumn(text, offset);
    const what = message
      .replace(/\s*in JSON at position \d+.*$/, "")
      .replace(/\s*\(line \d+ column \d+\)$/, "");
    return { ok: false, message: what, line, column, offset };
  }
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return { line, column };
}

/** The indentation the file uses (a tab or N spaces), 2 spaces when it has none. */
export function detectIndent(text: string): string {
  const m = /\n([ \t]+)["{[\]}]/.exec(text);
  if (!m) return "  ";
  return m[1]!.startsWith("\t") ? "\t" : " ".repeat(m[1]!.length);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Merge `edited` into `original`: keys keep the original's order, keys only in `edited` come
 * after, keys missing from `edited` are dropped; objects merge recursively, anything else is
 * taken from `edited`.
 */
export function mergeOrdered(original: unknown, edited: unknown): unknown {
  if (!isPlainObject(original) || !isPlainObject(edited)) return edited;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(original)) {
    if (Object.hasOwn(edited, key)) out[key] = mergeOrdered(original[key], edited[key]);
  }
  for (const key of Object.keys(edited)) {
    if (!Object.hasOwn(original, key)) out[key] = edited[key];
  }
  return out;
}

/** Render like the original file: same indentation, a final newline if it had one. */
export function renderLike(originalText: string, value: unknown): string {
  const text = JSON.stringify(value, null, detectIndent(originalText));
  return originalText.endsWith("\n") || originalText === "" ? `${text}\n` : text;
}
