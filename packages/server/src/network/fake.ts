/** A sandbox network for tests without root: addresses handed out and taken back, nothing on the host. */
import { formatIpv4, parseCidr } from "./policy.js";
import type { ConnectOptions, RunningSandboxNetwork, SandboxNetwork } from "./port.js";

export class FakeNetwork implements SandboxNetwork {
  readonly subnet = "100.127.0.0/20";
  readonly nameserver = "100.127.0.1";
  /** Sandbox id → address, for tests to read. */
  readonly connected = new Map<string, string>();
  private next = 2;

  constructor(private readonly reason?: string) {}

  async unavailable(): Promise<string | undefined> {
    return this.reason;
  }

  async connect(id: string, _options: ConnectOptions): Promise<string> {
    const address = formatIpv4(parseCidr(this.subnet)!.base + this.next++);
    this.connected.set(id, address);
    return address;
  }

  async disconnect(id: string): Promise<void> {
    this.connected.delete(id);
  }

  async reconcile(running: RunningSandboxNetwork[]): Promise<Map<string, string>> {
    for (const id of [...this.connected.keys()]) if (!running.some((r) => r.id === id)) this.connected.delete(id);
    return new Map(this.connected);
  }

  async close(): Promise<void> {}
}
