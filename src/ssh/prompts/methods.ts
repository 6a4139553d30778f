/**
 * `ssh.prompt.list` and `ssh.prompt.answer`: the open questions of servers and the way to answer
 * one over the RPC (signed like every call). The answer is checked by shape only, so that no
 * error message or log line can carry it.
 */
import { z } from "zod";
import { defineMethod, type MethodDef } from "../../rpc/registry.js";
import type { PromptBroker } from "./broker.js";

const promptSchema = z.object({
  id: z.string(),
  target: z.string(),
  host: z.string(),
  kind: z.enum(["code", "password", "passphrase", "host"]),
  name: z.string(),
  instructions: z.string(),
  prompts: z.array(z.object({ text: z.string(), echo: z.boolean() })),
  attempt: z.number(),
  message: z.string().optional(),
  transport: z.enum(["ssh2", "openssh"]),
  cause: z
    .object({
      client: z.string().optional(),
      session: z.string().optional(),
      request: z.string().optional(),
      method: z.string().optional(),
      job: z.string().optional(),
    })
    .nullable(),
  attended: z.boolean(),
  askpass: z.boolean(),
  opened_at: z.number(),
  expires_at: z.number(),
});

export function promptMethods(broker: PromptBroker): MethodDef[] {
  return [
    defineMethod({
      name: "ssh.prompt.list",
      description:
        "The open questions of SSH servers (one-time codes, passwords, key passphrases, host questions), oldest first; each is also published as an `ssh.prompt` event.",
      params: z.object({}).strict(),
      result: z.array(promptSchema),
      handler: () => broker.list(),
    }),
    defineMethod({
      name: "ssh.prompt.answer",
      description:
        "Answer an open prompt: one string per prompt line. Only an open prompt can be answered, once; the answer goes to the server and is not kept, logged or shown in any error.",
      // answers: unknown here and checked by the broker, which never echoes a value
      params: z.object({ id: z.string().min(1), answers: z.unknown() }).strict(),
      result: z.object({ ok: z.literal(true) }),
      handler: (p) => {
        broker.answer(p.id, p.answers);
        return { ok: true as const };
      },
    }),
  ];
}
