// A free TCP port on an address inside a network namespace, found by binding port 0 there.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

const FREE_PORT_JS =
  "const s=require('net').createServer();s.listen(0,process.argv[1],()=>{console.log(s.address().port);s.close();});";

/** Asks the kernel for a free port by listening on port 0 at `host` inside `netns`. */
export async function freePortInNetns(netns: string, host: string): Promise<number> {
  const { stdout } = await run("ip", [
    "netns",
    "exec",
    netns,
    process.execPath,
    "-e",
    FREE_PORT_JS,
    host,
  ]);
  const port = Number(stdout.trim());
  if (!Number.isInteger(port) || port <= 0)
    throw new Error(`no free port in netns ${netns}: ${stdout}`);
  return port;
}
