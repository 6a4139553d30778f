/** Open a client from the CLI's --connection flag and close it after use. */
import { SidecarClient } from "../client/client.js";

export async function withClient<T>(
  connection: string | undefined,
  fn: (c: SidecarClient) => Promise<T>,
): Promise<T> {
  const client = SidecarClient.connect(connection);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
