/**
 * The contract between the daemon and its services, below both: what a service gives the daemon
 * (its RPC methods, its share of status, a close path) and what the daemon gives a service.
 */
import type { EventBus } from "../events.js";
import type { MethodDef } from "./registry.js";
import type { Logger } from "../util/logger.js";

export interface DaemonContext {
  log: Logger;
  events: EventBus;
  runtimeDir: string;
  stateDir: string;
  /** the connection file of this sidecar (children get it as PARSL_SIDECAR_CONNECTION_FILE) */
  connectionFile: string;
  /** call another service's RPC method in-process (params validated as over the RPC) */
  call(method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** whether a method of that name is registered (services may be absent) */
  hasMethod(method: string): boolean;
  /** ask the daemon to shut down (after the current reply is sent) */
  requestShutdown(reason: string): void;
  /**
   * Whether an RPC client of `session` is subscribed to events of `topic` (absent: no RPC, as
   * in tests of one service).
   */
  listening?(session: string, topic: string): boolean;
}

export interface ServiceModule {
  name: string;
  methods: MethodDef[];
  /** counts and states for sidecar.status */
  status?(): Record<string, unknown>;
  /** close everything the service owns; called in reverse order of creation */
  close?(): Promise<void>;
}
