/**
 * The sandbox network port: what the sandbox service needs to give a running sandbox an interface
 * of its own, with its policy, and to take it away. The real one is `linux/` (a veth pair per
 * sandbox, nftables, a DNS forwarder); `fake.ts` only hands out addresses, for tests without root.
 */
import type { NetworkSpec } from "./policy.js";

export interface ConnectOptions {
  /** The sandbox's init on the host, read again after its namespace is opened (a reused pid is refused). */
  pid: () => Promise<number | undefined>;
  spec: NetworkSpec;
}

export interface RunningSandboxNetwork {
  id: string;
  spec: NetworkSpec;
  pid: () => Promise<number | undefined>;
}

export interface SandboxNetwork {
  /** The sandboxes' IPv4 subnet (CIDR); never reachable from a sandbox. */
  readonly subnet: string;
  /** The resolver a sandbox's /etc/resolv.conf names (unreachable without an interface, so lookups fail at once). */
  readonly nameserver: string;
  /** Why a sandbox cannot have an interface on this host, or undefined when it can. */
  unavailable(): Promise<string | undefined>;
  /** Give the running sandbox its interface and policy; returns its address. */
  connect(id: string, options: ConnectOptions): Promise<string>;
  /** Remove what `connect` made (idempotent; also when the sandbox is already gone). */
  disconnect(id: string, spec: NetworkSpec | undefined): Promise<void>;
  /**
   * After a restart: the sandboxes that run with an interface keep it (reconnected if it went);
   * whatever else this server made on the host goes. Returns the addresses now in use, by sandbox.
   */
  reconcile(running: RunningSandboxNetwork[]): Promise<Map<string, string>>;
  /** Shutdown: host state stays while sandboxes with an interface run (they outlive cairnd), else it goes. */
  close(): Promise<void>;
}
