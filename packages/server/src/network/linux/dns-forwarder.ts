/**
 * The resolver sandboxes use: cairnd listens on the gateway address (port 53, UDP and TCP), which
 * only sandboxes' interfaces may reach, and relays each query to the host's resolvers (those of
 * its /etc/resolv.conf, or CAIRN_SANDBOX_DNS). A relay, not a resolver: no cache, no answers of
 * its own. Bounded: a sandbox that floods it gets its queries dropped, not cairnd's memory.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { readFile } from "node:fs/promises";
import { connect, createServer, isIPv6, type Server, type Socket } from "node:net";
import type { Logger } from "../../logger.js";

/** Queries in flight at once (each holds one UDP socket). */
const MAX_IN_FLIGHT = 256;
const MAX_TCP_CONNECTIONS = 64;
const QUERY_TIMEOUT_MS = 2_000;
const TCP_IDLE_MS = 10_000;

export interface Upstream {
  host: string;
  port: number;
}

/** `1.1.1.1`, `127.0.0.1:5353`, `[::1]:53`, comma-separated. */
export function parseUpstreams(text: string): Upstream[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(s) ?? /^([0-9.]+)(?::(\d+))?$/.exec(s) ?? /^([0-9a-fA-F:]+)()$/.exec(s);
      if (!m) throw new Error(`not a resolver address: ${s}`);
      return { host: m[1]!, port: m[2] ? Number(m[2]) : 53 };
    });
}

/** The host's resolvers, as its /etc/resolv.conf names them. */
export async function hostResolvers(path = "/etc/resolv.conf"): Promise<Upstream[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  const out: Upstream[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push({ host: m[1]!.replace(/%.*$/, ""), port: 53 });
  }
  return out;
}

export class DnsForwarder {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private inFlight = 0;
  private readonly conns = new Set<Socket>();

  constructor(
    private readonly address: string,
    private readonly upstreams: Upstream[],
    private readonly log: Logger,
    private readonly port = 53,
  ) {}

  async start(): Promise<void> {
    const udp = createSocket("udp4");
    udp.on("message", (msg, from) => this.relayUdp(msg, from.address, from.port));
    udp.on("error", (err) => this.log.warn({ err }, "sandbox DNS forwarder (udp) failed"));
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(this.port, this.address, () => {
        udp.off("error", reject);
        resolve();
      });
    });
    this.udp = udp;
    const tcp = createServer((c) => this.relayTcp(c));
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(this.port, this.address, () => {
        tcp.off("error", reject);
        resolve();
      });
    });
    this.tcp = tcp;
  }

  private relayUdp(query: Buffer, host: string, port: number, attempt = 0): void {
    const upstream = this.upstreams[attempt];
    if (!upstream || query.length < 12 || this.inFlight >= MAX_IN_FLIGHT) return;
    this.inFlight++;
    const s = createSocket(isIPv6(upstream.host) ? "udp6" : "udp4");
    let done = false;
    const finish = (retry: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.inFlight--;
      s.close();
      if (retry) this.relayUdp(query, host, port, attempt + 1);
    };
    const timer = setTimeout(() => finish(true), QUERY_TIMEOUT_MS);
    s.on("error", () => finish(true));
    s.on("message", (answer) => {
      // Only the upstream's answer to this query (same id) goes back.
      if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) return;
      this.udp?.send(answer, port, host);
      finish(false);
    });
    s.connect(upstream.port, upstream.host, () => s.send(query));
  }

  private relayTcp(client: Socket): void {
    const upstream = this.upstreams[0];
    if (!upstream) return void client.destroy();
    this.conns.add(client);
    const up = connect(upstream.port, upstream.host);
    const close = () => {
      client.destroy();
      up.destroy();
      this.conns.delete(client);
    };
    client.setTimeout(TCP_IDLE_MS, close);
    up.setTimeout(TCP_IDLE_MS, close);
    client.on("error", close).on("close", close);
    up.on("error", close).on("close", close);
    client.pipe(up);
    up.pipe(client);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
    this.udp = undefined;
    this.tcp = undefined;
  }
}
