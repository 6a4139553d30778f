/**
 * Reads the user's spec file (never writes it): a conda YAML is parsed with `yaml` and, when it
 * has top-level `name:` or `prefix:`, a copy without those two keys is made (the -p we pass
 * decides where the environment goes); nothing else in it changes, comments included.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { Document } from "yaml";
import { SidecarError } from "../errors.js";
import type { EnvSpec } from "./spec.js";

export interface LoadedSpecFile {
  /** the user's file, as given */
  path: string;
  bytes: Buffer;
  /** what the tool gets: the user's bytes, or the sanitized copy */
  content: Buffer;
  /** file name for the copy on the host (keeps the extension tools look at) */
  copyName: string;
  /** top-level keys dropped from the copy */
  dropped: string[];
  sha256: string;
}

async function readUserFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SidecarError(
      "ENV_NOT_FOUND",
      `Cannot read the ${what} ${path}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`,
      { cause: err, data: { file: path } },
    );
  }
}

/** Parse a conda environment file; ENV_INVALID names the file and line of a syntax error. */
export async function parseCondaYaml(
  path: string,
  bytes: Buffer,
): Promise<{ content: Buffer; dropped: string[] }> {
  // loaded here: the uv backend and the CLI's start-up do not need a YAML parser
  const { isMap, parseDocument } = await import("yaml");
  const text = bytes.toString("utf8");
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    const col = e.linePos?.[0]?.col;
    const msg = e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw new SidecarError(
      "ENV_INVALID",
      `${path}${line ? `:${line}${col ? `:${col}` : ""}` : ""}: the conda environment file is not valid YAML: ${msg}`,
      {
        data: { file: path, line: line ?? null, column: col ?? null },
      },
    );
  }
  if (!isMap(doc.contents)) {
    throw new SidecarError(
      "ENV_INVALID",
      `${path}: a conda environment file must be a mapping with \`dependencies:\` (and optionally \`channels:\`), got ${doc.contents === null ? "an empty document" : "something else"}`,
      { data: { file: path } },
    );
  }
  const deps = doc.get("dependencies");
  if (deps === undefined || deps === null) {
    throw new SidecarError(
      "ENV_INVALID",
      `${path}: the conda environment file has no \`dependencies:\` list`,
      { data: { file: path } },
    );
  }
  const dropped = ["name", "prefix"].filter((k) => doc.has(k));
  if (dropped.length === 0) return { content: bytes, dropped };
  const want = doc.toJS() as Record<string, unknown>;
  for (const k of dropped) delete want[k];
  const cut = cutTopLevelKeys(text, doc, dropped, await import("yaml"));
  if (cut !== undefined && isDeepStrictEqual(parseDocument(cut).toJS(), want))
    return { content: Buffer.from(cut, "utf8"), dropped };
  // a flow mapping or an unusual layout: let the library write it (comments may move)
  for (const k of dropped) doc.delete(k);
  return { content: Buffer.from(doc.toString({ lineWidth: 0 }), "utf8"), dropped };
}

/** Remove whole lines holding top-level `keys` (and their values) from the text; undefined if not a plain block mapping. */
function cutTopLevelKeys(
  text: string,
  doc: Document,
  keys: string[],
  y: typeof import("yaml"),
): string | undefined {
  const { isMap, isNode, isScalar } = y;
  const map = doc.contents;
  if (!isMap(map) || map.flow) return undefined;
  const ranges: Array<[number, number]> = [];
  for (const pair of map.items) {
    if (!isScalar(pair.key) || !keys.includes(String(pair.key.value))) continue;
    const kr = pair.key.range;
    if (!kr) return undefined;
    const vr = isNode(pair.value) && pair.value.range ? pair.value.range : kr;
    const start = text.lastIndexOf("\n", kr[0] - 1) + 1;
    if (text.slice(start, kr[0]).trim() !== "") return undefined;
    let end = vr[2];
    if (end > 0 && text[end - 1] !== "\n") {
      const nl = text.indexOf("\n", end);
      end = nl < 0 ? text.length : nl + 1;
    }
    ranges.push([start, end]);
  }
  let out = text;
  for (const [a, b] of ranges.sort((x, y) => y[0] - x[0])) out = out.slice(0, a) + out.slice(b);
  return out;
}

/** Read the spec file of `spec` on this machine and prepare what goes to the host. */
export async function loadSpecFile(spec: EnvSpec): Promise<LoadedSpecFile> {
  const what = spec.backend === "conda" ? "conda environment file" : "requirements file";
  const bytes = await readUserFile(spec.file, what);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (spec.backend === "conda") {
    const { content, dropped } = await parseCondaYaml(spec.file, bytes);
    return { path: spec.file, bytes, content, copyName: "environment.yml", dropped, sha256 };
  }
  const name = basename(spec.file);
  if (name === "pyproject.toml" && !/^\s*\[project\]/m.test(bytes.toString("utf8"))) {
    throw new SidecarError(
      "ENV_INVALID",
      `${spec.file}: a pyproject.toml for the uv backend needs a [project] table with dependencies`,
      { data: { file: spec.file } },
    );
  }
  return {
    path: spec.file,
    bytes,
    content: bytes,
    copyName: name === "pyproject.toml" ? "pyproject.toml" : "requirements.txt",
    dropped: [],
    sha256,
  };
}

/** The hash recorded after a successful ensure: the file's bytes and the options that change the result. */
export function specHash(spec: EnvSpec, fileSha256: string): string {
  const opts =
    spec.backend === "uv"
      ? {
          python: spec.python ?? null,
          ssp: spec.systemSitePackages ?? false,
          findLinks: spec.findLinks ?? [],
          noIndex: spec.noIndex ?? false,
          indexUrl: spec.indexUrl ?? null,
        }
      : {};
  return createHash("sha256")
    .update(
      JSON.stringify({
        v: 1,
        backend: spec.backend,
        file: fileSha256,
        opts,
        // only when pinned, so that the hashes of environments ensured before stay valid
        ...(spec.parsl ? { parsl: spec.parsl } : {}),
      }),
    )
    .digest("hex");
}
