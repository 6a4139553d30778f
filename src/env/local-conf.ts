/** Reads `local.conf`: bash-style KEY=VALUE lines (comments, quotes, `export ` prefix tolerated). */
import { readFileSync } from "node:fs";
import { SidecarError } from "../errors.js";

/** One problem found in a local.conf line. */
export interface ConfProblem {
  line: number;
  message: string;
}

/**
 * Parse the text of a local.conf. Values may be bare, 'single-quoted' (taken literally) or
 * "double-quoted" (with \" \\ \$ \` escapes); a bare value ends at an unquoted ` #` comment.
 * Variable references ($X) are kept as they are, not expanded.
 *
 * @example parseLocalConf('export CONDA_ENV="parsl py"  # env\n') // {CONDA_ENV: "parsl py"}
 */
export function parseLocalConf(text: string, file = "local.conf"): Record<string, string> {
  const out: Record<string, string> = {};
  const problems: ConfProblem[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) {
      problems.push({
        line: i + 1,
        message: `expected KEY=VALUE, got \`${line.length > 60 ? `${line.slice(0, 57)}...` : line}\``,
      });
      return;
    }
    try {
      out[m[1]!] = parseValue(m[2]!);
    } catch (err) {
      problems.push({ line: i + 1, message: (err as Error).message });
    }
  });
  if (problems.length > 0) {
    throw new SidecarError(
      "ENV_INVALID",
      `Cannot read ${file}: ${problems.map((p) => `line ${p.line}: ${p.message}`).join("; ")}`,
      { data: { file, problems } },
    );
  }
  return out;
}

function parseValue(v: string): string {
  let out = "";
  let i = 0;
  while (i < v.length) {
    const c = v[i]!;
    if (c === "'") {
      const end = v.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated single quote");
      out += v.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      let closed = false;
      while (i < v.length) {
        const d = v[i]!;
        if (d === "\\" && i + 1 < v.length && '"\\$`'.includes(v[i + 1]!)) {
          out += v[i + 1];
          i += 2;
        } else if (d === '"') {
          closed = true;
          i++;
          break;
        } else {
          out += d;
          i++;
        }
      }
      if (!closed) throw new Error("unterminated double quote");
    } else if (/\s/.test(c)) {
      const rest = v.slice(i).trimStart();
      if (rest === "" || rest.startsWith("#")) break;
      // bash would run the rest as a command; a value with spaces must be quoted, but be lenient
      out += c;
      i++;
    } else if (c === "\\" && i + 1 < v.length) {
      out += v[i + 1];
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Read and parse a local.conf file; a missing or unreadable file is ENV_NOT_FOUND. */
export function readLocalConf(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new SidecarError(
      "ENV_NOT_FOUND",
      `Cannot read ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`,
      { cause: err, data: { file: path } },
    );
  }
  return parseLocalConf(text, path);
}
