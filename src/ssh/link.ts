/**
 * What the rest of the sidecar needs from one SSH connection to a pool, whatever carries it:
 * ssh2 in this process, or the user's own OpenSSH (`ssh -M`, a ControlMaster the sidecar runs
 * or the user's). SshConnections holds one SshLink per target; services reach it only through
 * Hosts/SshLease and this interface, so nothing outside src/ssh/ knows which transport it is.
 *
 * Events (EventEmitter): `ready` (generation) after every successful connect, `down` (error)
 * when the link is lost (a reconnect follows), `failed` (error) when it gives up for good (a
 * changed host key), `closed`, and `state` (state, data) on every change.
 */
import type { EventEmitter } from "node:events";
import type { Duplex, Readable } from "node:stream";

/** How a link is carried: `ssh2` (built in) or `openssh` (the user's `ssh` binary). */
export type TransportKind = "ssh2" | "openssh";

export type SshState = "connecting" | "ready" | "reconnecting" | "closed" | "failed";

export interface ConnectionInfo {
  target: string;
  transport: TransportKind;
  state: SshState;
  host: string;
  port: number;
  user: string;
  jumps: string[];
  generation: number;
  reconnects: number;
  server_version: string | null;
  fingerprint: string | null;
  cipher: string | null;
  connected_at: number | null;
  sessions: number;
  queued_sessions: number;
  last_error: string | null;
}

/**
 * A running remote command's session channel: writing is its stdin, reading its stdout.
 * Emits `exit` (code: number | null, signal?: string) when the server reports how it ended (may
 * not come when the connection dropped), then `close`.
 */
export interface SessionChannel extends Duplex {
  readonly stderr: Readable;
  /** stop this side of the channel (the remote command may go on; its group is killed apart) */
  close(): void;
}

/** sshd on the pool listening for the sidecar (a remote forward). */
export interface RemoteListener {
  /** the port it listens on (the one asked for, or the one the server chose for 0) */
  readonly port: number;
  /** stop listening there; resolves once the server answered (bounded) */
  close(): Promise<void>;
}

/**
 * A remote forward whose transport connects each connection to a TCP port here itself, without
 * the sidecar copying the bytes (docs/tunnels.md, "Direct forwards"). What the sidecar knows of
 * its connections it reads from the transport.
 */
export interface DirectListener extends RemoteListener {
  /** connections open now, arrived since the forward was made, and when the last ones ended */
  counts(): { live: number; total: number; ends: number[] };
  /**
   * How a connection that arrived at or after `since` fared: the one from `originatorPort` on the
   * pool, or any when undefined. Undefined when none arrived within `timeoutMs`.
   */
  arrival(
    originatorPort: number | undefined,
    since: number,
    timeoutMs: number,
  ): Promise<{ ok: true } | { ok: false; error: string } | undefined>;
}

export interface SshLink extends EventEmitter {
  readonly target: string;
  readonly transport: TransportKind;
  readonly state: SshState;
  /** counts connects: 1 after the first, +1 after each reconnect */
  readonly generation: number;

  /** First connect; its error is thrown as it is (no retry). */
  open(): Promise<void>;
  /** Resolves once connected, waiting through a reconnect up to `timeoutMs`. */
  ready(timeoutMs: number): Promise<void>;
  /**
   * Resolves once connection `generation` is gone (at once if it already is). For one-off
   * waits: a promise keeps every reaction until it settles; per channel, use onEnded.
   */
  ended(generation: number): Promise<void>;
  /** Calls `cb` once `generation` is gone (at once if it already is); returns what cancels it. */
  onEnded(generation: number, cb: () => void): () => void;
  /** how many onEnded callbacks wait now: 0 once no channel is open (a leak check) */
  readonly endWaiters: number;

  /**
   * A session channel running `command` (a POSIX sh command line), in a counted session slot
   * (waited for up to `timeoutMs`, as sshd's MaxSessions allows); `release` frees the slot.
   */
  exec(
    command: string,
    timeoutMs: number,
  ): Promise<{ channel: SessionChannel; release: () => void; generation: number }>;

  /**
   * Have sshd on the pool listen on `addr:port` (0: any free port) and hand every connection
   * made to it to `accept`. Rejects when the server refuses (port taken, forwarding disabled).
   * Listeners end with the connection; after a reconnect the owner listens again.
   */
  listen(addr: string, port: number, accept: (conn: Duplex) => void): Promise<RemoteListener>;

  /**
   * Like `listen`, but the transport connects each connection to `to` here itself. Absent, or
   * resolving undefined, where the transport cannot (ssh2; a user's master, whose log is not ours).
   */
  listenDirect?(
    addr: string,
    port: number,
    to: { host: string; port: number },
  ): Promise<DirectListener | undefined>;

  /** A TCP connection from the pool host to `host:port` (a local forward's one connection). */
  connect(host: string, port: number, timeoutMs: number): Promise<Duplex>;

  /** Copy a file of this machine to a path on the pool (SFTP where it has it). */
  putFile(localPath: string, remotePath: string): Promise<void>;

  info(): ConnectionInfo;
  /** End the link for good (never the user's own ControlMaster). */
  close(): void;
  /** After close(): resolves once what a connect under way started is stopped too (bounded). */
  settled?(timeoutMs: number): Promise<void>;
}
