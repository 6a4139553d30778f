/**
 * Why a master could not start, from what `ssh -v` wrote: a changed or unknown host key
 * (SSH_HOST_KEY, with both fingerprints), a refused login (SSH_AUTH, with what the server wanted
 * and what was offered), an unreachable host, a ProxyCommand or jump host that failed
 * (SSH_CONNECT), a config OpenSSH refuses (SSH_CONFIG). ssh's own words are kept.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { SidecarError } from "../../errors.js";
import type { Resolved } from "./resolve.js";

export interface FailureContext {
  target: string;
  /** the host part of the target */
  alias: string;
  configPath?: string;
  resolved: Resolved;
  /** no one can be asked (BatchMode) */
  batch: boolean;
  /** why no one can be asked, when it is the ssh binary and not the user's BatchMode */
  batchWhy?: string;
}

/** `SHA256:...` of a known_hosts line's key, or undefined when the line cannot be read. */
export function knownLineFingerprint(file: string, line: number): string | undefined {
  try {
    const text = readFileSync(file, "utf8").split(/\r?\n/)[line - 1] ?? "";
    const fields = text.trim().split(/\s+/);
    const key = fields[0]?.startsWith("@") ? fields[3] : fields[2];
    if (!key) return undefined;
    const digest = createHash("sha256").update(Buffer.from(key, "base64")).digest("base64");
    return `SHA256:${digest.replace(/=+$/, "")}`;
  } catch {
    return undefined;
  }
}

function where(ctx: FailureContext): string {
  const r = ctx.resolved;
  const at = `${r.user}@${r.hostName}:${r.port}`;
  return ctx.target === at ? `\`${at}\`` : `\`${at}\` (target \`${ctx.target}\`)`;
}

function find(lines: string[], re: RegExp): RegExpExecArray | undefined {
  for (const l of lines) {
    const m = re.exec(l);
    if (m) return m;
  }
  return undefined;
}

function hostKeyChanged(lines: string[], ctx: FailureContext): SidecarError {
  const name = find(lines, /Host key for (\S+) has changed/)?.[1] ?? ctx.resolved.hostName;
  const i = lines.findIndex((l) => /key sent by the remote host is/.test(l));
  const type = find(lines, /The fingerprint for the (\S+) key sent/)?.[1] ?? "";
  const presented = i >= 0 ? (lines[i + 1] ?? "").trim().replace(/\.$/, "") : "unknown";
  const offending = lines
    .map((l) => /Offending (\S+) key in (.+):(\d+)\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ type: m[1]!, file: m[2]!, line: Number(m[3]) }))
    .map((o) => ({ ...o, fp: knownLineFingerprint(o.file, o.line) ?? "unknown fingerprint" }));
  const known = offending.map((o) => `${o.fp} (${o.type}, ${o.file}:${o.line})`);
  const first = offending[0];
  return new SidecarError(
    "SSH_HOST_KEY",
    `The host key of \`${name}\`${name === ctx.target ? "" : ` (target \`${ctx.target}\`)`} has changed: known_hosts has ${known.join(", ") || "another key"}, the server presented ${type} ${presented}. ` +
      "This can mean someone is intercepting the connection, or the host was reinstalled. If the change is expected, remove the old key with " +
      `\`ssh-keygen -R '${name}'${first ? ` -f ${first.file}` : ""}\` and connect again.`,
    {
      data: {
        host: name,
        known: offending.map((o) => o.fp),
        presented,
        ...(first ? { file: first.file, line: first.line } : {}),
      },
    },
  );
}

function hostKeyUnknown(m: RegExpExecArray, lines: string[], ctx: FailureContext): SidecarError {
  const [, type, name] = m;
  const fp = find(lines, /Server host key: \S+ (SHA256:\S+)/)?.[1] ?? "an unknown key";
  const files = ctx.resolved.userKnownHostsFiles;
  const r = ctx.resolved;
  return new SidecarError(
    "SSH_HOST_KEY",
    `The host \`${name}\`${name === ctx.target ? "" : ` (target \`${ctx.target}\`)`} is not in known_hosts (${files.join(", ")}) and StrictHostKeyChecking is ${r.strictHostKeyChecking === "true" ? "yes" : r.strictHostKeyChecking} with no one to ask; it presented ${type} ${fp}. ` +
      `Verify the fingerprint, then add it (e.g. \`ssh-keyscan -p ${r.port} ${r.hostName} >> ${files[0] ?? "~/.ssh/known_hosts"}\`) or set StrictHostKeyChecking accept-new.`,
    { data: { host: name, presented: fp } },
  );
}

function authRefused(denied: string, lines: string[], ctx: FailureContext): SidecarError {
  const methods = denied.split(",").filter(Boolean);
  const partial = find(lines, /Authenticated using "([^"]+)" with partial success/)?.[1];
  const offered = lines
    .map((l) => /Offering public key: (.+?) (\S+) (SHA256:\S+)/.exec(l))
    .filter((x): x is RegExpExecArray => x !== null)
    .map((x) => `${x[1]} (${x[2]})`);
  const problems = lines
    .map((l) => /(Load key "[^"]+": .+|no such identity: .+)$/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
  const asks = methods.filter((x) => x === "keyboard-interactive" || x === "password");
  let msg = `${where(ctx)} refused the login: Permission denied (${methods.join(",")}).`;
  if (partial)
    msg += ` It accepted ${partial} and then asks for ${methods.join(" or ")} as well (AuthenticationMethods).`;
  // what became of the questions: the helper's own error when no answer came (ssh then sends an
  // empty one), else every answer given was refused
  const questions = lines.filter((l) => /read_passphrase: requested to askpass/.test(l)).length;
  const unanswered = lines
    .map((l) => /^parsl-sidecar askpass: (.+)$/.exec(l.trim())?.[1])
    .filter((x): x is string => x !== undefined);
  if (unanswered.length > 0) msg += ` No answer reached the server: ${unanswered[0]}`;
  else if (questions > 0 && asks.length > 0)
    msg += ` It asked ${questions === 1 ? "once" : `${questions} times`} and refused ${questions === 1 ? "the answer" : "every answer"}: a wrong or expired one-time code, or a wrong password.`;
  const certs = certificateProblems(lines, ctx.resolved.user);
  if (certs.length > 0) msg += ` ${certs.map((c) => c.problem).join(" ")}`;
  if (asks.length > 0 && ctx.batch)
    msg +=
      ` The server asks for a password or a one-time code (keyboard-interactive), and no one can be asked here${ctx.batchWhy ? ` (${ctx.batchWhy})` : ""}: ` +
      "log in once with your own ControlMaster (a ControlPath for this host in your ssh config, then `ssh -M` or ControlMaster auto), which the sidecar then uses.";
  msg += offered.length > 0 ? ` Keys offered: ${offered.join(", ")}.` : " No key was offered.";
  if (problems.length > 0) msg += ` Problems: ${problems.join("; ")}.`;
  if (lines.some((l) => /Too many authentication failures/.test(l)))
    msg += " The server stopped after too many keys (set IdentitiesOnly yes and the IdentityFile).";
  return new SidecarError("SSH_AUTH", msg, {
    data: {
      target: ctx.target,
      methods,
      ...(partial ? { partial } : {}),
      offered,
      ...(questions > 0 ? { asked: questions, unanswered } : {}),
      ...(certs.length > 0 ? { certificates: certs } : {}),
    },
  });
}

export interface CertificateProblem {
  path: string;
  /** `ssh-keygen -L`'s validity, e.g. `from 2020-01-01T00:00:00 to 2020-01-02T00:00:00` */
  valid: string;
  problem: string;
}

/**
 * Why the certificates ssh offered cannot log in, when it shows: expired, not yet valid, or for
 * other principals. ssh offers a certificate whatever its dates and the server only says
 * "Permission denied", so this reads each one with `ssh-keygen -L` (local times, as it prints).
 */
export function certificateProblems(
  lines: string[],
  user: string,
  now = new Date(),
  keygen = "ssh-keygen",
): CertificateProblem[] {
  const paths = lines
    .map((l) => /Offering public key: (.+?) (\S+-CERT) SHA256:/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
  const out: CertificateProblem[] = [];
  for (const path of new Set(paths)) {
    let text: string;
    try {
      text = execFileSync(keygen, ["-L", "-f", path], {
        encoding: "utf8",
        timeout: 5000,
        stdio: ["ignore", "pipe", "ignore"],
      });
    } catch {
      continue; // not a file (an agent's key) or no ssh-keygen: nothing more to say
    }
    const valid = /^\s*Valid: (.+)$/m.exec(text)?.[1]?.trim() ?? "";
    const from = /(?:from|after) (\S+)/.exec(valid)?.[1];
    const to = /(?:to|before) (\S+)/.exec(valid)?.[1];
    const principals = /^[ \t]*Principals:[ \t]*\n((?:[ \t]{9,}\S.*\n?)*)/m
      .exec(text)?.[1]
      ?.split("\n")
      .map((x) => x.trim())
      .filter(Boolean);
    let problem: string | undefined;
    if (to && new Date(to) <= now)
      problem = `The certificate ${path} expired at ${to} (valid ${valid}): get a new one, e.g. from your site's certificate service, and connect again.`;
    else if (from && new Date(from) > now)
      problem = `The certificate ${path} is not valid yet (valid ${valid}; the time here is ${now.toISOString()}): check this machine's clock.`;
    else if (principals && principals.length > 0 && !principals.includes(user))
      problem = `The certificate ${path} is for ${principals.join(", ")}, not for the user \`${user}\` the login is made as: set User, or use a certificate for that user.`;
    if (problem) out.push({ path, valid, problem });
  }
  return out;
}

function unreachable(m: RegExpExecArray, ctx: FailureContext): SidecarError {
  const [, host, port, why] = m;
  let reason = why!;
  if (/refused/i.test(why!))
    reason = "connection refused: is sshd running there and is the port right?";
  else if (/timed out/i.test(why!)) reason = `no answer in time (${why})`;
  else if (/no route|unreachable/i.test(why!)) reason = `no route to the host (${why})`;
  const jump = ctx.resolved.proxyJump;
  const isJump =
    jump.length > 0 && !(host === ctx.resolved.hostName && Number(port) === ctx.resolved.port);
  return new SidecarError(
    "SSH_CONNECT",
    `Cannot connect to ${host}:${port} (${isJump ? `jump host of \`${ctx.target}\`, ProxyJump ${jump.join(",")}` : `target \`${ctx.target}\``}): ${reason}`,
    { data: { target: ctx.target, host, port: Number(port) } },
  );
}

function unresolved(m: RegExpExecArray, ctx: FailureContext): SidecarError {
  const [, name, why] = m;
  if (name === ctx.alias && ctx.resolved.hostName === ctx.alias)
    return new SidecarError(
      "SSH_CONFIG",
      `Unknown host \`${ctx.alias}\`: no Host entry in ${ctx.configPath ?? "your ssh config"} gives it a HostName and the name does not resolve (${why}). Check the spelling or add a Host entry.`,
      { data: { target: ctx.target } },
    );
  return new SidecarError(
    "SSH_CONNECT",
    `Cannot connect to \`${name}\` (${name === ctx.resolved.hostName ? `HostName of \`${ctx.target}\`` : `a jump host of \`${ctx.target}\``}): the host name does not resolve (${why})`,
    { data: { target: ctx.target, host: name } },
  );
}

/** The message lines of ssh, without its version banner. */
function said(lines: string[]): string[] {
  return lines
    .map((l) => l.replace(/\r$/, "").trim())
    .filter((l) => l !== "" && !l.startsWith("debug") && !/^OpenSSH_\d/.test(l));
}

const CLOSED_EARLY =
  /kex_exchange_identification|ssh_exchange_identification|Connection closed by UNKNOWN/;

/** The error for a master that did not start; `lines` are its `-v` stderr. */
export function masterFailure(
  lines: string[],
  ctx: FailureContext,
  exit: { code: number | null; timedOut: boolean; timeoutMs: number },
): SidecarError {
  const words = said(lines);
  const text = words.join(" ");
  const data = { target: ctx.target, lines: words.slice(-10) };
  let m: RegExpExecArray | undefined;
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/.test(text))
    return hostKeyChanged(words, ctx);
  if ((m = find(words, /No (\S+) host key is known for (\S+) and you have requested strict/)))
    return hostKeyUnknown(m, lines, ctx);
  if (/REVOKED HOST KEY|Host key verification failed/.test(text))
    return new SidecarError(
      "SSH_HOST_KEY",
      `OpenSSH refused the host key of ${where(ctx)}: ${words.join(" ")}`,
      { data },
    );
  if ((m = find(words, /Permission denied \(([^)]*)\)/))) return authRefused(m[1]!, lines, ctx);
  if (/Too many authentication failures/.test(text)) return authRefused("", lines, ctx);
  if ((m = find(words, /connect to host (\S+) port (\d+): (.+)$/))) return unreachable(m, ctx);
  if ((m = find(words, /Could not resolve hostname (\S+): (.+?)\.?$/))) return unresolved(m, ctx);
  if (
    (m = find(
      words,
      /(Bad owner or permissions on .+|.+ line \d+: .+|Can't open user config file .+)$/,
    ))
  )
    return new SidecarError(
      "SSH_CONFIG",
      `OpenSSH refuses the config for \`${ctx.target}\`: ${m[1]}`,
      {
        data,
      },
    );
  // a ProxyCommand that delivered no server (no version line came): it is the cause
  const noServer = !lines.some((l) => /Remote protocol version/.test(l));
  if (ctx.resolved.proxyCommand && (noServer || CLOSED_EARLY.test(text))) {
    const own = words.filter((l) => !CLOSED_EARLY.test(l));
    return new SidecarError(
      "SSH_CONNECT",
      `The ProxyCommand of \`${ctx.target}\` (\`${ctx.resolved.proxyCommand}\`) ended before the SSH handshake${own.length > 0 ? `: ${own.join("; ")}` : " without a message"}`,
      { data: { ...data, proxyCommand: ctx.resolved.proxyCommand } },
    );
  }
  if (exit.timedOut)
    return new SidecarError(
      "SSH_CONNECT",
      `No connection to ${where(ctx)} after ${Math.round(exit.timeoutMs / 1000)} s${words.length > 0 ? ` (ssh said: ${words.slice(-3).join("; ")})` : ""}`,
      { data },
    );
  if (CLOSED_EARLY.test(text) || /Connection closed by|Connection reset/.test(text))
    return new SidecarError(
      "SSH_CONNECT",
      `${where(ctx)} closed the connection during the SSH handshake (${words.join("; ")}); sshd may refuse this address (MaxStartups, AllowUsers, a firewall)`,
      { data },
    );
  return new SidecarError(
    "SSH_CONNECT",
    `Cannot connect to ${where(ctx)}: ${words.length > 0 ? words.join("; ") : `ssh exited with code ${exit.code} without a message`}`,
    { data },
  );
}
