/** The options of an OpenSshLink, and the master settings they make. */
import type { AskpassHook, MasterSettings } from "./master.js";

export interface OpenSshLinkOptions {
  /** the sidecar's private runtime directory; sockets go to DIR/ssh (mode 0700) */
  runtimeDir: string;
  /** `-F` file; without it ssh reads ~/.ssh/config and /etc/ssh/ssh_config as `ssh TARGET` does */
  configPath?: string;
  /** @default "ssh" */
  sshPath?: string;
  /** ask through this program (SSH_ASKPASS) instead of BatchMode; for prompts routed to the user */
  askpass?: AskpassHook;
  /** ServerAliveInterval when the config sets none @default 15000 */
  keepaliveMs?: number;
  /** ServerAliveCountMax then @default 3 */
  keepaliveCount?: number;
  /** ConnectTimeout when the config sets none @default 20000 */
  connectTimeoutMs?: number;
  /** bound on a master's whole start, authentication included @default 60000 */
  startTimeoutMs?: number;
  /**
   * our master's ControlPersist: it ends this long after its last client; the link is one
   * while open, so this is how long a master outlives a sidecar that died @default 60
   */
  persistSeconds?: number;
  /** @default { initialMs: 100, maxMs: 10000 } */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** session channels at once; OpenSSH's MaxSessions is 10 @default 10 */
  maxSessions?: number;
  /** how long listen, connect-less calls and putFile wait for a reconnect @default 30000 */
  waitReadyMs?: number;
  /** use the user's running ControlMaster when their config names a ControlPath @default true */
  reuseUserMaster?: boolean;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

/** The settings of a master the link starts, from its options. */
export function masterSettings(o: OpenSshLinkOptions, sshPath: string): MasterSettings {
  const s: MasterSettings = {
    sshPath,
    keepaliveMs: o.keepaliveMs ?? 15_000,
    keepaliveCount: o.keepaliveCount ?? 3,
    connectTimeoutMs: o.connectTimeoutMs ?? 20_000,
    startTimeoutMs: o.startTimeoutMs ?? 60_000,
    persistSeconds: o.persistSeconds ?? 10,
  };
  if (o.askpass) s.askpass = o.askpass;
  return s;
}
