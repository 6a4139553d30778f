/**
 * Open a client from the CLI's --connection flag and close it after use. While it is open, the
 * command's terminal answers what servers ask because of its calls (./prompts.ts).
 */
import { SidecarClient } from "../client/client.js";
import { answerPromptsOverRpc } from "./prompts.js";

export async function withClient<T>(
  connection: string | undefined,
  fn: (c: SidecarClient) => Promise<T>,
): Promise<T> {
  const client = SidecarClient.connect(connection);
  try {
    const stop = await answerPromptsOverRpc(client);
    try {
      return await fn(client);
    } finally {
      await stop();
    }
  } finally {
    client.close();
  }
}
