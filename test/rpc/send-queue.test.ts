import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";
import { SendQueue } from "../../src/rpc/send-queue.js";

describe("SendQueue", () => {
  let dir: string;
  let router: Router;
  let dealer: Dealer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "psc-sq-"));
    router = new Router({ linger: 0 });
    await router.bind(`ipc://${join(dir, "q.sock")}`);
    dealer = new Dealer({ linger: 0, receiveTimeout: 5000 });
    dealer.connect(`ipc://${join(dir, "q.sock")}`);
  });
  afterAll(() => {
    dealer.close();
    router.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends a message pushed at any moment while the previous drain is ending", async () => {
    const q = new SendQueue(dealer);
    let sent = 0;
    // push one message, then another after 0..30 microtasks: one of them lands between the
    // drain loop seeing an empty queue and the drain being marked finished
    for (let k = 0; k < 200; k++) {
      q.push([Buffer.from(`a${k}`)]);
      q.push([Buffer.from(`a${k}`)]);
      for (let i = 0; i < k; i++) await Promise.resolve();
      q.push([Buffer.from(`b${k}`)]);
      sent += 3;
      for (let got = 0; got < 3; got++) {
        const [, body] = await router.receive();
        expect(body!.toString()).toMatch(/^[ab]\d+$/);
      }
    }
    expect(sent).toBe(600);
  });
});
