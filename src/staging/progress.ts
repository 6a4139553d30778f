/** Progress of one transfer: counts, rate, and throttled reports to events and the RPC caller. */

export interface ProgressSnapshot {
  id: string;
  bytes: number;
  total_bytes: number;
  files: number;
  total_files: number;
  skipped: number;
  rate_bps: number;
}

export type ProgressSink = (p: ProgressSnapshot) => void;

export class Progress {
  bytes = 0;
  totalBytes = 0;
  files = 0;
  totalFiles = 0;
  skipped = 0;
  readonly started = performance.now();
  private last = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    private readonly sink: ProgressSink | undefined,
    private readonly everyMs = 250,
  ) {}

  addBytes(n: number): void {
    this.bytes += n;
    this.poke();
  }

  /** A file was completed (or skipped). */
  fileDone(skipped = false, size = 0): void {
    this.files++;
    if (skipped) {
      this.skipped++;
      this.bytes += size;
    }
    this.poke();
  }

  /** Undo the bytes (and files) of an attempt that will be retried. */
  rewind(n: number, files = 0): void {
    this.bytes -= n;
    this.files -= files;
  }

  setTotals(bytes: number, files: number): void {
    this.totalBytes = bytes;
    this.totalFiles = files;
    this.report();
  }

  snapshot(): ProgressSnapshot {
    const secs = (performance.now() - this.started) / 1000;
    return {
      id: this.id,
      bytes: this.bytes,
      total_bytes: this.totalBytes,
      files: this.files,
      total_files: this.totalFiles,
      skipped: this.skipped,
      rate_bps: secs > 0 ? Math.round(this.bytes / secs) : 0,
    };
  }

  private poke(): void {
    if (!this.sink || this.timer) return;
    const wait = this.last + this.everyMs - performance.now();
    if (wait <= 0) this.report();
    else {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.report();
      }, wait);
      this.timer.unref();
    }
  }

  report(): void {
    if (!this.sink) return;
    this.last = performance.now();
    this.sink(this.snapshot());
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
