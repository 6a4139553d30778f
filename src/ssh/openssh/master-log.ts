/**
 * The `-v` log of a master the sidecar started: what the handshake chose (server version,
 * cipher, host key), the lines an error is explained with, and why a `-W` connection failed.
 * Kept in memory only and bounded; after the start only message lines are kept (the debug lines
 * then name the commands run, with their environment).
 */
import { ForwardedLog } from "./forwarded-log.js";

const START_LINES = 400;
const RECENT_LINES = 20;
const FAILURES = 32;

export class MasterLog {
  serverVersion: string | null = null;
  cipher: string | null = null;
  fingerprint: string | null = null;
  /** every line until the master is up (the handshake and authentication) */
  readonly startLines: string[] = [];
  /** OpenSSH's warnings during the start (a host key recorded, a config note) */
  readonly notes: string[] = [];
  private recentLines: string[] = [];
  private started = false;
  private partial = "";
  private readonly openFailed = new Map<string, string>();
  private readonly connectFailures: Array<{ dest: string; reason: string; at: number }> = [];
  /** the connections sshd forwarded to the master (direct forwards are seen only here) */
  readonly forwarded = new ForwardedLog();

  feed(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) this.line(line.replace(/\r$/, ""));
  }

  /** the master is up: from now on only message lines are kept */
  markStarted(): void {
    this.started = true;
    this.startLines.length = 0;
  }

  /** the last message lines (not debug) since the start */
  recent(): string[] {
    const tail = this.partial.trim();
    return tail && !tail.startsWith("debug") ? [...this.recentLines, tail] : [...this.recentLines];
  }

  /** why the master could not connect to `host:port` for a `-W` request made at `since` */
  connectFailure(host: string, port: number, since: number): string | undefined {
    const dest = `${host}:${port}`;
    for (let i = this.connectFailures.length - 1; i >= 0; i--) {
      const f = this.connectFailures[i]!;
      if (f.at < since) break;
      if (f.dest === dest) return f.reason;
    }
    return undefined;
  }

  private line(line: string): void {
    if (!this.started) {
      if (this.startLines.length < START_LINES) this.startLines.push(line);
      if (/^Warning: /.test(line)) this.notes.push(line.trim());
      this.handshake(line);
    } else if (line.trim() !== "" && !line.startsWith("debug")) {
      this.recentLines.push(line.trim());
      if (this.recentLines.length > RECENT_LINES) this.recentLines.shift();
    }
    this.forwards(line);
    if (this.started) this.forwarded.line(line);
  }

  private handshake(line: string): void {
    let m = /Remote protocol version ([\d.]+), remote software version (.+)$/.exec(line);
    if (m) this.serverVersion = `SSH-${m[1]}-${m[2]!.trim()}`;
    m = /kex: client->server cipher: (\S+)/.exec(line);
    if (m) this.cipher = m[1]!;
    m = /Server host key: \S+ (SHA256:\S+)/.exec(line);
    if (m) this.fingerprint = m[1]!;
  }

  /** `channel N: open failed: REASON` then `channel N: free: direct-tcpip: ... for HOST port P` */
  private forwards(line: string): void {
    let m = /channel (\d+): open failed: (.+)$/.exec(line);
    if (m) {
      this.openFailed.set(m[1]!, m[2]!.trim());
      return;
    }
    m = /channel (\d+): free: direct-tcpip: listening port \d+ for (\S+) port (\d+)/.exec(line);
    if (!m) return;
    const reason = this.openFailed.get(m[1]!);
    if (reason === undefined) return;
    this.openFailed.delete(m[1]!);
    this.connectFailures.push({ dest: `${m[2]}:${m[3]}`, reason, at: Date.now() });
    if (this.connectFailures.length > FAILURES) this.connectFailures.shift();
  }
}
