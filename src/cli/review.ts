/**
 * Review of an executors file on the local page, for `run --review` and `executors edit`: ask the
 * sidecar to open the review, print the link, and wait until the page accepts or cancels it.
 */
import { SidecarClient } from "../client/client.js";
import { SidecarError } from "../errors.js";

export interface ReviewOptions {
  /** where to print the link (default: stderr, as stdout may belong to the workflow) */
  print?: (line: string) => void;
}

/** Resolves with "accepted" once the page wrote the file, or "cancelled". */
export async function reviewExecutors(
  connectionFile: string,
  file: string,
  opts: ReviewOptions = {},
): Promise<"accepted" | "cancelled"> {
  const print = opts.print ?? ((line: string) => process.stderr.write(`${line}\n`));
  const client = SidecarClient.connect(connectionFile);
  try {
    const { id, url } = await client.call<{ id: string; url: string }>("web.review", { file });
    print(`parsl-sidecar: review the executor settings of ${file} and accept or cancel at:`);
    print(`  ${url}`);
    const res = await client.call<{ outcome: "accepted" | "cancelled" }>(
      "web.review_wait",
      { id },
      { timeout: 0 },
    );
    return res.outcome;
  } finally {
    client.close();
  }
}

/** For `run --review`: returns once accepted; throws REVIEW_CANCELLED (exit 4) when cancelled. */
export async function reviewOrCancel(connectionFile: string, file: string): Promise<void> {
  if ((await reviewExecutors(connectionFile, file)) === "cancelled") {
    throw new SidecarError(
      "REVIEW_CANCELLED",
      `The review of ${file} was cancelled on the page; the command was not started`,
    );
  }
}
