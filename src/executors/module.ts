/** The executors service: its RPC methods and what it holds (tunnels it opened, worker blocks). */
import type { DaemonContext, ServiceModule } from "../daemon/module.js";
import { staticMethods } from "./methods-static.js";

export function executorsModule(_ctx: DaemonContext): ServiceModule {
  return {
    name: "executors",
    methods: [...staticMethods()],
  };
}
