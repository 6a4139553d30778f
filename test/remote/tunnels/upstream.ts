// The sidecar's end of the durable relay's upstream, played by hand for the relay's direct test:
// a TCP listener (the forwarded port) that reads each channel's handshake line, answers it as the
// sidecar would (durable-hub.ts: `OK <received> <nonce> <mac>`, then checks the relay's proof) and
// collects the frames that follow (durable-frames.ts).
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { type Frame, FrameReader, single } from "../../../src/tunnels/durable-frames.js";
import { HELLO, mac, readLine } from "../../../src/tunnels/durable-hub.js";
import { waitUntil } from "../helpers.js";
import { server } from "./helpers.js";

export interface Channel {
  sock: Socket;
  /** the relay's hello, split: [HELLO, relay id, kind, conn, mode, received, nonce] */
  hello: string[];
  kind: "ctl" | "data";
  conn: string;
  mode: "new" | "resume";
  /** data bytes the relay said it has received on this connection */
  received: number;
  /** frames received after the handshake; D frames' payloads joined in `data` */
  frames: Frame[];
  data(): Buffer;
  /** answer the handshake with OK (`received`: the bytes this end has) and check the proof */
  accept(received?: number): Promise<void>;
  /** answer with a reply whose mac is not the relay's secret's */
  forge(): void;
}

export interface Upstream {
  port: number;
  channels: Channel[];
  /** the `n`th channel of `kind` (0 first) once its hello has arrived */
  channel(kind: "ctl" | "data", n?: number, timeoutMs?: number): Promise<Channel>;
  /** close every channel (the upstream drops) */
  drop(): void;
  close(): Promise<void>;
}

export async function upstream(secret: Buffer): Promise<Upstream> {
  const channels: Channel[] = [];
  const srv = await server((sock) => {
    void readLine(sock, 512, 10_000).then(
      ({ line }) => {
        const w = line.split(" ");
        const frames: Frame[] = [];
        const reader = new FrameReader();
        const take = (b: Buffer): void =>
          reader.push(b, (f) => {
            frames.push(copy(f));
            // the relay's pings want an answer, as the sidecar gives (else it calls the link dead)
            if (f.t === "P") sock.write(single("Q"));
          });
        const ch: Channel = {
          sock,
          hello: w,
          kind: w[2] as "ctl",
          conn: w[3]!,
          mode: w[4] as "new",
          received: Number(w[5]),
          frames,
          data: () => Buffer.concat(frames.flatMap((f) => (f.t === "D" ? [f.data] : []))),
          accept: async (received = 0) => {
            const nonce = randomBytes(16).toString("hex");
            const reply = `OK ${received} ${nonce}`;
            sock.write(`${reply} ${mac(secret, `${line}|${reply}`)}\n`);
            const proof = await readLine(sock, 200, 10_000);
            if (proof.line !== mac(secret, `r|${nonce}`)) throw new Error("a wrong proof");
            sock.on("data", take);
            sock.resume();
            if (proof.rest.length > 0) take(proof.rest);
          },
          forge: () => {
            const reply = `OK 0 ${randomBytes(16).toString("hex")}`;
            sock.write(`${reply} ${mac(randomBytes(32), `${line}|${reply}`)}\n`);
          },
        };
        channels.push(ch);
      },
      () => sock.destroy(),
    );
  });
  return {
    port: srv.port,
    channels,
    channel: (kind, n = 0, timeoutMs = 10_000) =>
      waitUntil(
        () => channels.filter((c) => c.kind === kind)[n],
        timeoutMs,
        `${kind} channel ${n} of the relay`,
      ),
    drop: () => {
      for (const c of channels) c.sock.destroy();
    },
    close: () => srv.close(),
  };
}

/** A frame whose payload outlives the buffer it was read into. */
function copy(f: Frame): Frame {
  return f.t === "D" ? { t: "D", data: Buffer.from(f.data) } : f;
}

export { HELLO };
