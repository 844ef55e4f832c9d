/**
 * Sandbox networks on this host (docs/ARCHITECTURE.md "Sandbox networks"). Each sandbox with a
 * network gets a veth pair: `eth0` in its own network namespace (made by crun, owned by its user
 * namespace) with one address of the subnet, and the host end, unnumbered, routed to that address.
 * Every sandbox's default gateway is the same address, held by a bridge without ports (the
 * anchor) so that the DNS forwarder can listen there whether or not a sandbox runs; the host
 * answers ARP for it on every veth. No two sandboxes share a link: whatever one sends to another
 * goes through the host's forward hook, where nftables (nft.ts) drops it.
 *
 * Nothing of the sandbox is run: `ip` is the host's, in the sandbox's network namespace only
 * (entered through a descriptor held from before the pid was checked again).
 */
import { spawn } from "node:child_process";
import { open, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";
import { run, type ExecError } from "../../host/exec.js";
import type { Logger } from "../../logger.js";
import { formatIpv4, overlaps, parseCidr, type Cidr, type NetworkSpec } from "../policy.js";
import type { ConnectOptions, RunningSandboxNetwork, SandboxNetwork } from "../port.js";
import { DnsForwarder, hostResolvers, type Upstream } from "./dns-forwarder.js";
import { hostNames, type HostNames } from "./names.js";
import { addSandboxScript, removeSandboxScript, tableScript, type NftSandbox } from "./nft.js";

/** Where a subnet is picked when the operator names none: /20 blocks of the shared address space. */
const AUTO_SPACE = parseCidr("100.64.0.0/10")!;
const AUTO_PREFIX = 20;

export interface HostNetworkOptions {
  dataDir: string;
  /** CAIRN_SANDBOX_SUBNET; else one picked (and kept in the data dir) that no route on the host uses. */
  subnet?: string | undefined;
  /** CAIRN_SANDBOX_DNS; else the host's /etc/resolv.conf. */
  upstreams?: Upstream[] | undefined;
  log: Logger;
}

const ip = (args: string[], input?: string) => run("ip", args, { timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });
const nft = (script: string) => run("nft", ["-f", "-"], { timeoutMs: 30_000, input: script });
const text = (err: unknown) => ((err as ExecError).stderr ?? (err as Error).message).trim();

/** Routes and addresses on the host, as CIDRs (to keep a picked subnet clear of them). */
async function usedRanges(): Promise<Cidr[]> {
  const { stdout } = await ip(["-4", "-j", "route", "show", "table", "all"]);
  const out: Cidr[] = [];
  for (const r of JSON.parse(stdout || "[]") as { dst?: string }[]) {
    const c = r.dst && r.dst !== "default" ? parseCidr(r.dst) : undefined;
    if (c) out.push(c);
  }
  return out;
}

export class HostNetwork implements SandboxNetwork {
  readonly names: HostNames;
  private readonly cidr: Cidr;
  private readonly gateway: string;
  /** Sandboxes connected now: id → what their chain was built from. */
  private readonly connected = new Map<string, NftSandbox>();
  private ready: Promise<void> | undefined;
  private dns: DnsForwarder | undefined;
  private nextHost = 2;
  private missing: Promise<string | undefined> | undefined;

  private constructor(
    private readonly options: HostNetworkOptions,
    readonly subnet: string,
  ) {
    this.names = hostNames(options.dataDir);
    this.cidr = parseCidr(subnet)!;
    this.gateway = formatIpv4(this.cidr.base + 1);
  }

  get nameserver(): string {
    return this.gateway;
  }

  /** The data dir's subnet: the operator's, the one picked before, or a new one clear of every route. */
  static async open(options: HostNetworkOptions): Promise<HostNetwork> {
    const file = join(options.dataDir, "network.json");
    let subnet = options.subnet;
    if (!subnet) {
      subnet = await readFile(file, "utf8").then((t) => (JSON.parse(t) as { subnet?: string }).subnet, () => undefined);
    }
    if (!subnet) {
      const names = hostNames(options.dataDir);
      const used = await usedRanges().catch(() => []);
      const slots = 2 ** (AUTO_PREFIX - AUTO_SPACE.prefix);
      const first = parseInt(names.table.slice(-8), 16) % slots;
      for (let i = 0; i < slots && !subnet; i++) {
        const c = { base: AUTO_SPACE.base + ((first + i) % slots) * 2 ** (32 - AUTO_PREFIX), prefix: AUTO_PREFIX };
        if (!used.some((u) => overlaps(u, c))) subnet = `${formatIpv4(c.base)}/${AUTO_PREFIX}`;
      }
      if (!subnet) throw new Error("no free /20 for sandboxes in 100.64.0.0/10: set CAIRN_SANDBOX_SUBNET");
      await writeFile(`${file}.tmp`, JSON.stringify({ subnet }) + "\n");
      await rename(`${file}.tmp`, file);
    }
    const c = parseCidr(subnet);
    if (!c || c.prefix > 28) throw new Error(`CAIRN_SANDBOX_SUBNET must be an IPv4 CIDR of /28 or larger, got "${subnet}"`);
    return new HostNetwork(options, `${formatIpv4(c.base)}/${c.prefix}`);
  }

  async unavailable(): Promise<string | undefined> {
    this.missing ??= (async () => {
      for (const tool of ["ip", "nft"]) {
        if (!(await run("sh", ["-c", `command -v ${tool} || PATH=$PATH:/usr/sbin:/sbin command -v ${tool}`]).then(() => true, () => false))) {
          return `${tool} is not installed (scripts/setup.sh installs it)`;
        }
      }
      return undefined;
    })();
    return this.missing;
  }

  /** Forwarding, the anchor, the table and the DNS forwarder: once, before the first interface. */
  private ensureReady(): Promise<void> {
    this.ready ??= (async () => {
      const why = await this.unavailable();
      if (why) throw new CairnError("NETWORK_UNAVAILABLE", `Sandboxes cannot have a network on this host: ${why}`);
      // Routing between interfaces is what NAT needs; the host's forward hook is left open for
      // everything else, as it was (only this table's interfaces are filtered).
      if ((await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim() !== "1") {
        await writeFile("/proc/sys/net/ipv4/ip_forward", "1");
        this.options.log.info({}, "turned on IPv4 forwarding (net.ipv4.ip_forward=1) for sandboxes' egress");
      }
      const { anchor } = this.names;
      if (!(await ip(["link", "show", anchor]).then(() => true, () => false))) {
        await ip(["-batch", "-"], [`link add ${anchor} type bridge`, `link set ${anchor} addrgenmode none`, `link set ${anchor} up`, `addr add ${this.gateway}/32 dev ${anchor}`, ""].join("\n"));
      }
      await nft(tableScript(this.names, this.subnet, this.gateway, [...this.connected.values()]));
      const upstreams = this.options.upstreams ?? (await hostResolvers());
      const dns = new DnsForwarder(this.gateway, upstreams, this.options.log);
      await dns.start().then(
        () => void (this.dns = dns),
        (err: unknown) => this.options.log.warn({ err }, "the sandboxes' DNS forwarder could not listen; name lookups in sandboxes will fail"),
      );
    })();
    this.ready.catch(() => (this.ready = undefined));
    return this.ready;
  }

  private allocate(wanted?: string): string {
    const used = new Set([...this.connected.values()].map((s) => s.address));
    const w = wanted ? parseCidr(wanted) : undefined;
    if (wanted && w && !used.has(wanted) && overlaps(this.cidr, w)) return wanted;
    // Hosts .2 up to the one before broadcast (.0 is the network, .1 the gateway). Round robin from
    // the last one given: an address just freed is not handed out again at once (the host may
    // still hold connection state of its last owner).
    const first = 2;
    const count = 2 ** (32 - this.cidr.prefix) - 3;
    for (let i = 0; i < count; i++) {
      const host = first + ((this.nextHost - first + i) % count);
      const address = formatIpv4(this.cidr.base + host);
      if (!used.has(address)) {
        this.nextHost = host + 1;
        return address;
      }
    }
    throw new CairnError("NETWORK_UNAVAILABLE", `Every address of the sandboxes' subnet ${this.subnet} is in use`);
  }

  async connect(id: string, options: ConnectOptions): Promise<string> {
    await this.ensureReady();
    const address = this.allocate(options.spec.address);
    const sb: NftSandbox = { id, address, spec: { ...options.spec, address } };
    this.connected.set(id, sb);
    try {
      await this.plug(id, address, options.pid);
      await nft(addSandboxScript(this.names, sb));
    } catch (err) {
      await this.disconnect(id, sb.spec);
      if (err instanceof CairnError) throw err;
      throw new CairnError("INTERNAL", `could not give sandbox ${id} its network: ${text(err)}`, { cause: err });
    }
    return address;
  }

  /** The veth pair: made inside the sandbox's namespace, its host end sent to ours, both configured. */
  private async plug(id: string, address: string, pidOf: () => Promise<number | undefined>): Promise<void> {
    const iface = this.names.iface(id);
    const pid = await pidOf();
    if (!pid) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} is not running`);
    const sandboxNs = await open(`/proc/${pid}/ns/net`, "r");
    const hostNs = await open("/proc/self/ns/net", "r");
    try {
      // The descriptor is held: if the pid is still the sandbox's init now, it names its namespace.
      if ((await pidOf()) !== pid) throw new CairnError("SANDBOX_NOT_RUNNING", `Sandbox ${id} stopped`);
      const inside = [
        `link add eth0 type veth peer name ${iface} netns /proc/self/fd/4`,
        "link set eth0 addrgenmode none",
        `addr add ${address}/32 dev eth0`,
        "link set eth0 up",
        `route add ${this.gateway}/32 dev eth0 scope link`,
        `route add default via ${this.gateway} dev eth0`,
        "",
      ].join("\n");
      await new Promise<void>((resolve, reject) => {
        const child = spawn("nsenter", ["--net=/proc/self/fd/3", "--", "ip", "-batch", "-"], {
          stdio: ["pipe", "ignore", "pipe", sandboxNs.fd, hostNs.fd],
        });
        let stderr = "";
        child.stderr!.on("data", (d) => (stderr += d));
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`ip in the sandbox's namespace: ${stderr.trim() || `exit ${code}`}`))));
        child.stdin!.end(inside);
      });
    } finally {
      await sandboxNs.close();
      await hostNs.close();
    }
    await ip(["-batch", "-"], [`link set ${iface} addrgenmode none`, `link set ${iface} up`, `route add ${address}/32 dev ${iface} src ${this.gateway}`, ""].join("\n"));
  }

  async disconnect(id: string, _spec: NetworkSpec | undefined): Promise<void> {
    this.connected.delete(id);
    // The pair goes with the sandbox's namespace, unless something still holds that namespace.
    await ip(["link", "del", this.names.iface(id)]).catch(() => undefined);
    if (!this.ready) return;
    const [element, chain] = removeSandboxScript(this.names, id);
    await nft(element! + chain!).catch(async () => {
      // Half there (a start cut short): each part on its own, whatever is left of it.
      await nft(element!).catch(() => undefined);
      await nft(chain!).catch(() => undefined);
    });
  }

  async reconcile(running: RunningSandboxNetwork[]): Promise<Map<string, string>> {
    const { log } = this.options;
    const links = await this.ownLinks();
    const keep = new Set<string>();
    for (const r of running) {
      const iface = this.names.iface(r.id);
      if (r.spec.address && links.includes(iface)) {
        this.connected.set(r.id, { id: r.id, address: r.spec.address, spec: r.spec });
        keep.add(iface);
      }
    }
    for (const l of links) if (!keep.has(l)) await ip(["link", "del", l]).catch(() => undefined);
    if (this.connected.size > 0 || running.length > 0) {
      await this.ensureReady();
      // The table as it must be, in one transaction (a crash may have left it half-changed).
      await nft(tableScript(this.names, this.subnet, this.gateway, [...this.connected.values()]));
    } else {
      await HostNetwork.release(this.options.dataDir);
    }
    const addresses = new Map([...this.connected.values()].map((s) => [s.id, s.address]));
    for (const r of running) {
      if (this.connected.has(r.id)) continue;
      // Running, but its interface is gone: give it one again.
      try {
        addresses.set(r.id, await this.connect(r.id, { pid: r.pid, spec: r.spec }));
      } catch (err) {
        log.warn({ err, sandboxId: r.id }, "could not give a running sandbox its network back");
      }
    }
    return addresses;
  }

  private async ownLinks(): Promise<string[]> {
    const { stdout } = await ip(["-j", "link", "show"]).catch(() => ({ stdout: "[]" }));
    return (JSON.parse(stdout || "[]") as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith(this.names.ifacePrefix));
  }

  async close(): Promise<void> {
    await this.dns?.close();
    this.dns = undefined;
    if (this.connected.size === 0 && this.ready) {
      this.ready = undefined;
      await HostNetwork.release(this.options.dataDir);
    }
  }

  /** Remove everything a data dir's cairnd made on the host's network (run while it is stopped, or has nothing connected). */
  static async release(dataDir: string): Promise<void> {
    const names = hostNames(dataDir);
    await nft(`table inet ${names.table}\ndelete table inet ${names.table}\n`).catch(() => undefined);
    const { stdout } = await ip(["-j", "link", "show"]).catch(() => ({ stdout: "[]" }));
    for (const { ifname } of JSON.parse(stdout || "[]") as { ifname: string }[]) {
      if (ifname === names.anchor || ifname.startsWith(names.ifacePrefix)) await ip(["link", "del", ifname]).catch(() => undefined);
    }
  }
}
