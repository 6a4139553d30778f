/**
 * One review of an executors file: what was loaded (text, mtime, hash, parsed value or the parse
 * error), validation as the page types, and the single decision: accept (atomic write keeping
 * order and unknown keys, refused if the file changed on disk) or cancel. The first decision
 * wins; later ones get WEB_CONFLICT.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { SidecarError } from "../errors.js";
import type { CheckResult, ExecutorsSupport } from "./executors-support.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { type JsonParse, mergeOrdered, parseJsonText, renderLike } from "./json-text.js";

export type ReviewState = "open" | "accepted" | "cancelled";

export interface ReviewOutcome {
  outcome: "accepted" | "cancelled";
  file: string;
}

interface Loaded {
  text: string;
  mtimeMs: number;
  hash: string;
  parsed: JsonParse;
}

function hashOf(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

function readLoaded(file: string): Loaded {
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(file, "utf8");
    mtimeMs = statSync(file).mtimeMs;
  } catch (err) {
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Cannot read the executors file ${file}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return { text, mtimeMs, hash: hashOf(text), parsed: parseJsonText(text) };
}

export class ReviewSession {
  readonly id = randomBytes(6).toString("hex");
  readonly file: string;
  state: ReviewState = "open";
  decidedAt: number | undefined;
  private loaded: Loaded;
  private readonly waiters: Array<(o: ReviewOutcome) => void> = [];

  constructor(
    file: string,
    private readonly support: ExecutorsSupport,
    private readonly onChange: (session: ReviewSession) => void = () => undefined,
  ) {
    this.file = resolve(file);
    this.loaded = readLoaded(this.file);
  }

  /** What the page renders. */
  snapshot(): Record<string, unknown> {
    const p = this.loaded.parsed;
    return {
      id: this.id,
      file: this.file,
      state: this.state,
      decided_at: this.decidedAt ?? null,
      hash: this.loaded.hash,
      text: this.loaded.text,
      parse_error: p.ok ? null : { message: p.message, line: p.line, column: p.column },
      doc: p.ok ? p.value : null,
      check: p.ok ? this.support.check(p.value) : null,
      entry_schema: this.support.entrySchema() ?? null,
      explain: this.support.explain(),
      groups: this.support.groups(),
      pools: p.ok ? this.support.pools(p.value) : {},
      features: this.support.features(),
    };
  }

  validate(doc: unknown): CheckResult {
    return this.support.check(doc);
  }

  /** Read the file again (after the user fixed it in an editor); only while open. */
  reload(): void {
    this.requireOpen();
    this.loaded = readLoaded(this.file);
    this.onChange(this);
  }

  /** Write `doc` merged into the loaded file, if nobody decided first and the file is unchanged. */
  accept(doc: unknown, baseHash: string): { file: string; text: string } {
    this.requireOpen();
    if (baseHash !== this.loaded.hash) {
      throw new SidecarError(
        "WEB_CONFLICT",
        "The file was reloaded since this page read it; reload the page to see the current contents",
        { data: { reason: "stale_page" } },
      );
    }
    const p = this.loaded.parsed;
    if (!p.ok) {
      throw new SidecarError(
        "EXECUTORS_INVALID",
        `${this.file} does not parse (line ${p.line}, column ${p.column}: ${p.message}); fix it in an editor, then press Reload`,
      );
    }
    const check = this.support.check(doc);
    if (!check.ok) {
      const errors = check.issues.filter((i) => i.severity === "error");
      throw new SidecarError(
        "EXECUTORS_INVALID",
        `Not written: ${errors.map((i) => i.message).join("; ")}`,
        { data: { issues: check.issues } },
      );
    }
    this.requireUnchangedOnDisk();
    const text = renderLike(this.loaded.text, mergeOrdered(p.value, doc));
    writeFileAtomic(this.file, text);
    this.loaded = readLoaded(this.file);
    this.decide("accepted");
    return { file: this.file, text };
  }

  cancel(): void {
    this.requireOpen();
    this.decide("cancelled");
  }

  /** Resolves once the review is accepted or cancelled. */
  wait(): Promise<ReviewOutcome> {
    if (this.state !== "open") return Promise.resolve({ outcome: this.state, file: this.file });
    return new Promise((r) => this.waiters.push(r));
  }

  private requireOpen(): void {
    if (this.state === "open") return;
    const at = this.decidedAt ? new Date(this.decidedAt).toLocaleTimeString() : "";
    throw new SidecarError(
      "WEB_CONFLICT",
      `This review was already ${this.state} (at ${at}, possibly in another window); nothing was written`,
      {
        data: { reason: "already_decided", state: this.state },
      },
    );
  }

  private requireUnchangedOnDisk(): void {
    let now: Loaded;
    try {
      now = readLoaded(this.file);
    } catch (err) {
      throw new SidecarError(
        "WEB_CONFLICT",
        `${this.file} cannot be read any more (${(err as Error).message}); not overwritten`,
        { data: { reason: "file_changed" } },
      );
    }
    // a touch (new mtime, same bytes) is not a change; same mtime with other bytes is
    if (now.hash !== this.loaded.hash) {
      throw new SidecarError(
        "WEB_CONFLICT",
        `${this.file} changed on disk since this page loaded it (modified ${new Date(now.mtimeMs).toLocaleTimeString()}); not overwritten. Reload to see the new contents, then edit again.`,
        {
          data: { reason: "file_changed" },
        },
      );
    }
  }

  private decide(state: "accepted" | "cancelled"): void {
    this.state = state;
    this.decidedAt = Date.now();
    this.onChange(this);
    for (const w of this.waiters.splice(0)) w({ outcome: state, file: this.file });
  }
}
