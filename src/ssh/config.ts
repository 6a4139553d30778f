/**
 * Resolves a target against ~/.ssh/config (via the ssh-config package): HostName, User, Port,
 * IdentityFile, ProxyJump, ServerAlive*, StrictHostKeyChecking, UserKnownHostsFile and friends.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { basename, dirname, isAbsolute, join } from "node:path";
import SSHConfig from "ssh-config";
import { SidecarError } from "../errors.js";
import { parsePort, parseTarget, type ParsedTarget } from "./target.js";

/** Env var naming an ssh config file to use instead of ~/.ssh/config. */
export const SSH_CONFIG_ENV = "PARSL_SIDECAR_SSH_CONFIG";

export type HostKeyPolicy = "yes" | "accept-new" | "no";

/** Everything needed to connect to one hop, after ~/.ssh/config was applied. */
export interface ResolvedHost {
  /** the target as given */
  target: string;
  /** the host part as given (what Host patterns matched) */
  alias: string;
  hostName: string;
  user: string;
  port: number;
  identityFiles: string[];
  /** true when IdentityFile came from the config (a missing file is then an error) */
  identityFilesExplicit: boolean;
  /** agent socket path, `none`, or undefined for $SSH_AUTH_SOCK */
  identityAgent?: string;
  identitiesOnly: boolean;
  /** raw ProxyJump hops, in order (empty when none) */
  proxyJump: string[];
  /** seconds; 0 = not configured */
  serverAliveInterval: number;
  serverAliveCountMax: number;
  strictHostKeyChecking: HostKeyPolicy;
  strictHostKeyCheckingExplicit: boolean;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  hashKnownHosts: boolean;
  hostKeyAlias?: string;
  /** seconds; 0 = not configured */
  connectTimeout: number;
  /** the config file used (undefined when none exists) */
  configFile?: string;
  /** true when a Host/Match section other than `Host *` matched */
  matchedSection: boolean;
  /** `BatchMode yes`: no questions asked of the user (no codes, passwords, passphrases) */
  batchMode: boolean;
  /** `KbdInteractiveAuthentication` (or ChallengeResponseAuthentication), default yes */
  kbdInteractiveAuthentication: boolean;
  /** `PasswordAuthentication`, default yes */
  passwordAuthentication: boolean;
  /** `NumberOfPasswordPrompts`: tries of a code or password, default 3 */
  numberOfPasswordPrompts: number;
  /** What only OpenSSH can do (the built-in ssh2 transport names them when they matter). */
  proxyCommand?: string;
  certificateFiles: string[];
  gssapiAuthentication: boolean;
}

/** Which config file to read: explicit path, $PARSL_SIDECAR_SSH_CONFIG, else ~/.ssh/config. */
export function configPath(explicit?: string): { path: string; explicit: boolean } {
  const chosen = explicit ?? process.env[SSH_CONFIG_ENV];
  if (chosen) return { path: expandHome(chosen), explicit: true };
  return { path: join(homedir(), ".ssh", "config"), explicit: false };
}

export function expandHome(p: string): string {
  if (p === "~") return homedir();
  if (p.startsWith("~/")) return join(homedir(), p.slice(2));
  return p;
}

function globToRegExp(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`);
}

/** Read a config file with its `Include` lines expanded in place (relative to ~/.ssh). */
export function readConfigText(path: string, depth = 0): string {
  if (depth > 16)
    throw new SidecarError("SSH_CONFIG", `ssh config ${path}: Include nested more than 16 deep`);
  const text = readFileSync(path, "utf8");
  return text
    .split(/\r?\n/)
    .map((line) => {
      const m = /^\s*include\s+(.+)$/i.exec(line);
      if (!m) return line;
      const parts = m[1]!
        .trim()
        .split(/\s+/)
        .map((s) => s.replace(/^"|"$/g, ""));
      const chunks: string[] = [];
      for (const part of parts) {
        const full = isAbsolute(expandHome(part))
          ? expandHome(part)
          : join(homedir(), ".ssh", part);
        const dir = dirname(full);
        const files = /[*?]/.test(basename(full))
          ? existsSync(dir)
            ? readdirSync(dir)
                .filter((f) => globToRegExp(basename(full)).test(f))
                .sort()
                .map((f) => join(dir, f))
            : []
          : [full];
        for (const f of files)
          if (existsSync(f) && statSync(f).isFile()) chunks.push(readConfigText(f, depth + 1));
      }
      return chunks.join("\n");
    })
    .join("\n");
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function list(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(/\s+/)).filter(Boolean);
}

/** OpenSSH percent tokens: %d %u %h %r %p %n %%. */
function expandTokens(
  s: string,
  t: { host: string; user: string; port: number; alias: string },
): string {
  const local = userInfo().username;
  const out = s.replace(/%([%dhnpru])/g, (_m, c: string) => {
    switch (c) {
      case "%":
        return "%";
      case "d":
        return homedir();
      case "u":
        return local;
      case "h":
        return t.host;
      case "r":
        return t.user;
      case "p":
        return String(t.port);
      case "n":
        return t.alias;
      default:
        return _m;
    }
  });
  return expandHome(out);
}

function policy(v: string | undefined): { policy: HostKeyPolicy; explicit: boolean } {
  if (v === undefined) return { policy: "accept-new", explicit: false };
  const s = v.toLowerCase();
  if (s === "accept-new") return { policy: "accept-new", explicit: true };
  if (s === "no" || s === "off") return { policy: "no", explicit: true };
  // `yes`, and `ask` (no one to ask here): unknown hosts are refused
  return { policy: "yes", explicit: true };
}

/** An ssh_config yes/no flag (`true`/`false` too, as OpenSSH takes them). */
function yes(v: string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  const s = v.toLowerCase();
  return s === "yes" || s === "true";
}

function seconds(v: string | undefined, what: string, file: string | undefined): number {
  if (v === undefined) return 0;
  if (!/^[0-9]+$/.test(v))
    throw new SidecarError(
      "SSH_CONFIG",
      `Expected \`${what}\` in ${file ?? "ssh config"} to be a whole number, got \`${v}\``,
    );
  return Number(v);
}

/** Load and parse the ssh config (empty when the default file does not exist). */
export function loadConfig(explicitPath?: string): { config: SSHConfig; file?: string } {
  const { path, explicit } = configPath(explicitPath);
  if (!existsSync(path)) {
    if (explicit)
      throw new SidecarError(
        "SSH_CONFIG",
        `ssh config file ${path} does not exist (from ${explicitPath ? "the ssh config option" : `$${SSH_CONFIG_ENV}`})`,
      );
    return { config: SSHConfig.parse("") };
  }
  try {
    return { config: SSHConfig.parse(readConfigText(path)), file: path };
  } catch (err) {
    if (err instanceof SidecarError) throw err;
    throw new SidecarError(
      "SSH_CONFIG",
      `Cannot read ssh config ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Apply the ssh config to a target; the target's own user/port win over the config. */
export function resolveTarget(
  target: string | ParsedTarget,
  loaded: { config: SSHConfig; file?: string },
): ResolvedHost {
  const parsed = typeof target === "string" ? parseTarget(target) : target;
  const cfg = loaded.config.compute(parsed.host, { ignoreCase: true, matchExec: false });
  const get = (k: string): string | undefined => first(cfg[k]);
  const matchedSection = loaded.config.some((line) => {
    if (
      line.type !== SSHConfig.DIRECTIVE ||
      !("config" in line) ||
      line.param.toLowerCase() !== "host"
    )
      return false;
    const pats = Array.isArray(line.value) ? line.value.map((v) => v.val) : [line.value];
    return pats.some((p) => p !== "*" && !p.startsWith("!") && globToRegExp(p).test(parsed.host));
  });
  const file = loaded.file;
  const user = parsed.user ?? get("user") ?? userInfo().username;
  const portText = get("port");
  let port = parsed.port ?? 22;
  if (parsed.port === undefined && portText !== undefined) {
    try {
      port = parsePort(portText, `\`Port\` for host \`${parsed.host}\` in ${file ?? "ssh config"}`);
    } catch (err) {
      throw new SidecarError("SSH_CONFIG", (err as Error).message);
    }
  }
  const tokens = { host: parsed.host, user, port, alias: parsed.host };
  const hostName =
    get("hostname") !== undefined ? expandTokens(get("hostname")!, tokens) : parsed.host;
  const tk = { ...tokens, host: hostName };
  const idFiles = list(cfg.identityfile).map((f) => expandTokens(f, tk));
  const strict = policy(get("stricthostkeychecking"));
  const jump = get("proxyjump");
  const agent = get("identityagent");
  const known = list(cfg.userknownhostsfile).map((f) => expandTokens(f, tk));
  const globalKnown = list(cfg.globalknownhostsfile).map((f) => expandTokens(f, tk));
  const out: ResolvedHost = {
    target: parsed.raw,
    alias: parsed.host,
    hostName,
    user,
    port,
    identityFiles:
      idFiles.length > 0
        ? idFiles
        : ["id_ed25519", "id_ecdsa", "id_rsa"].map((f) => join(homedir(), ".ssh", f)),
    identityFilesExplicit: idFiles.length > 0,
    identitiesOnly: (get("identitiesonly") ?? "no").toLowerCase() === "yes",
    proxyJump:
      jump && jump.toLowerCase() !== "none"
        ? jump
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean)
        : [],
    serverAliveInterval: seconds(get("serveraliveinterval"), "ServerAliveInterval", file),
    serverAliveCountMax: seconds(get("serveralivecountmax"), "ServerAliveCountMax", file) || 3,
    strictHostKeyChecking: strict.policy,
    strictHostKeyCheckingExplicit: strict.explicit,
    userKnownHostsFiles:
      known.length > 0
        ? known
        : [join(homedir(), ".ssh", "known_hosts"), join(homedir(), ".ssh", "known_hosts2")],
    globalKnownHostsFiles:
      globalKnown.length > 0
        ? globalKnown
        : ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"],
    hashKnownHosts: (get("hashknownhosts") ?? "no").toLowerCase() === "yes",
    connectTimeout: seconds(get("connecttimeout"), "ConnectTimeout", file),
    matchedSection,
    batchMode: yes(get("batchmode"), false),
    kbdInteractiveAuthentication: yes(
      get("kbdinteractiveauthentication") ?? get("challengeresponseauthentication"),
      true,
    ),
    passwordAuthentication: yes(get("passwordauthentication"), true),
    numberOfPasswordPrompts:
      get("numberofpasswordprompts") === undefined
        ? 3
        : seconds(get("numberofpasswordprompts"), "NumberOfPasswordPrompts", file),
    certificateFiles: list(cfg.certificatefile).map((f) => expandTokens(f, tk)),
    gssapiAuthentication: yes(get("gssapiauthentication"), false),
  };
  if (agent !== undefined)
    out.identityAgent =
      agent.toLowerCase() === "none"
        ? "none"
        : agent === "SSH_AUTH_SOCK"
          ? (process.env.SSH_AUTH_SOCK ?? "none")
          : expandTokens(
              agent.replace(/^\$\{?SSH_AUTH_SOCK\}?$/, process.env.SSH_AUTH_SOCK ?? "none"),
              tk,
            );
  const alias = get("hostkeyalias");
  if (alias !== undefined) out.hostKeyAlias = alias;
  const proxyCommand = get("proxycommand");
  if (proxyCommand !== undefined && proxyCommand.toLowerCase() !== "none")
    out.proxyCommand = proxyCommand;
  if (file !== undefined) out.configFile = file;
  return out;
}

/**
 * The hops to connect through, last one being the target itself. ProxyJump `a,b` means
 * connect to a (honouring a's own ProxyJump), then b through a, then the target through b.
 */
export function resolveChain(
  target: string,
  loaded: { config: SSHConfig; file?: string },
  depth = 0,
): ResolvedHost[] {
  if (depth > 8)
    throw new SidecarError(
      "SSH_CONFIG",
      `ProxyJump for \`${target}\` nests more than 8 hops deep (a loop in ${loaded.file ?? "ssh config"}?)`,
    );
  const host = resolveTarget(target, loaded);
  if (host.proxyJump.length === 0) return [host];
  const [firstHop, ...rest] = host.proxyJump;
  const hops = resolveChain(firstHop!, loaded, depth + 1);
  for (const j of rest) hops.push({ ...resolveTarget(j, loaded), proxyJump: [] });
  return [...hops, host];
}
