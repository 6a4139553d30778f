/** Staging URLs: parse `file://`, `pw://`, `s3://`, `gs://`, `ssh://` and `TARGET:/path` into locations. */
import { posix } from "node:path";
import { SidecarError } from "../errors.js";

/** Where data lives: this machine, a pool host over SSH, an S3 bucket or a GCS bucket. */
export type Location =
  | { kind: "local"; path: string }
  | { kind: "pool"; target: string; path: string }
  | { kind: "s3"; bucket: string; key: string }
  | { kind: "gcs"; bucket: string; key: string };

export interface ParseOptions {
  /** replaces `{cwd}` (the workflow's working directory, absolute) */
  cwd?: string | undefined;
  /** for a bare absolute path: the host it lives on (`local`, or an ssh target) */
  host?: string | undefined;
  /** accept `TARGET:/abs/path` and bare absolute paths (the CLI) */
  cliForms?: boolean;
}

export const SCHEMES = ["file", "pw", "s3", "gs", "ssh"] as const;

function invalid(url: string, why: string): SidecarError {
  return new SidecarError("STAGING_INVALID", `Invalid staging URL \`${redactUrl(url)}\`: ${why}`, {
    data: { url: redactUrl(url) },
  });
}

function absPath(url: string, raw: string): string {
  if (!raw.startsWith("/"))
    throw invalid(
      url,
      `the path \`${raw}\` is relative; give an absolute path (use {cwd} for the workflow's directory)`,
    );
  const norm = posix.normalize(raw);
  return norm.length > 1 && norm.endsWith("/") ? norm.slice(0, -1) : norm;
}

function substituteCwd(url: string, cwd: string | undefined): string {
  if (!url.includes("{cwd}")) return url;
  if (!cwd) throw invalid(url, "it uses {cwd} but no working directory was given");
  if (!cwd.startsWith("/")) throw invalid(url, `the working directory \`${cwd}\` is not absolute`);
  return url.split("{cwd}").join(cwd.replace(/\/+$/, ""));
}

function bucketKey(url: string, rest: string, scheme: string): { bucket: string; key: string } {
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? "" : rest.slice(slash + 1);
  if (!/^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$/.test(bucket))
    throw invalid(url, `\`${bucket}\` is not a valid ${scheme} bucket name`);
  if (key.split("/").some((seg) => seg === ".." || seg === "."))
    throw invalid(url, "the key has `.` or `..` segments");
  return { bucket, key };
}

/** Parse a staging URL; throws STAGING_INVALID naming what is wrong. */
export function parseLocation(url: string, opts: ParseOptions = {}): Location {
  if (typeof url !== "string" || url.length === 0) throw invalid(String(url), "it is empty");
  const text = substituteCwd(url, opts.cwd);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text);
  if (m) {
    const scheme = m[1]!.toLowerCase();
    const rest = m[2]!;
    switch (scheme) {
      case "file":
      case "pw":
        return {
          kind: "local",
          path: absPath(url, rest.startsWith("localhost/") ? rest.slice(9) : rest),
        };
      case "s3":
        return { kind: "s3", ...bucketKey(url, rest, "S3") };
      case "gs":
        return { kind: "gcs", ...bucketKey(url, rest, "GCS") };
      case "ssh": {
        const slash = rest.indexOf("/");
        if (slash <= 0) throw invalid(url, "expected ssh://[user@]host[:port]/absolute/path");
        const target = rest.slice(0, slash);
        if (target.includes(":") && target.slice(target.lastIndexOf("@") + 1).split(":").length > 2)
          throw invalid(url, "bad host");
        return poolOrLocal(target, absPath(url, rest.slice(slash)));
      }
      default:
        throw invalid(
          url,
          `unknown scheme \`${scheme}://\`; use one of file://, pw://, s3://, gs://, ssh://`,
        );
    }
  }
  if (text.startsWith("/")) {
    if (opts.host !== undefined) return poolOrLocal(opts.host, absPath(url, text));
    if (opts.cliForms) return { kind: "local", path: absPath(url, text) };
    throw invalid(url, "expected a URL with a scheme (file://, pw://, s3://, gs://)");
  }
  if (opts.cliForms) {
    const colon = text.indexOf(":/");
    if (colon > 0 && !text.slice(0, colon).includes("/"))
      return poolOrLocal(text.slice(0, colon), absPath(url, text.slice(colon + 1)));
  }
  throw invalid(
    url,
    "it is a relative path; give an absolute path or a URL (file://, pw://, s3://, gs://)",
  );
}

function poolOrLocal(target: string, path: string): Location {
  return target === "local" || target === "localhost-local"
    ? { kind: "local", path }
    : { kind: "pool", target, path };
}

/** The URL form of a location, for messages and records (never carries credentials). */
export function formatLocation(loc: Location): string {
  switch (loc.kind) {
    case "local":
      return `file://${loc.path}`;
    case "pool":
      return `ssh://${redactTarget(loc.target)}${loc.path}`;
    case "s3":
      return `s3://${loc.bucket}/${loc.key}`;
    case "gcs":
      return `gs://${loc.bucket}/${loc.key}`;
  }
}

function redactTarget(target: string): string {
  return target.replace(/^([^@:]*):[^@]*@/, "$1@");
}

/** Drop any `user:password@` part and query string from a URL before it is shown. */
export function redactUrl(url: string): string {
  return url
    .replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/@:]*):[^/@]*@/, "$1$2@")
    .replace(/\?.*$/s, "?…");
}

/** Join a relative entry name onto a location. */
export function childLocation(loc: Location, rel: string): Location {
  if (rel === "") return loc;
  switch (loc.kind) {
    case "local":
    case "pool":
      return { ...loc, path: posix.join(loc.path, rel) };
    case "s3":
    case "gcs":
      return {
        ...loc,
        key: loc.key === "" || loc.key.endsWith("/") ? `${loc.key}${rel}` : `${loc.key}/${rel}`,
      };
  }
}
