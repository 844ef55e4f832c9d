/**
 * What a sandbox may reach (docs/ARCHITECTURE.md "Sandbox networks"): rules are IPv4 `CIDR`,
 * `CIDR:port` or `CIDR:first-last`. Three tiers, in this order:
 * 1. never: loopback, this network, link-local (cloud metadata), multicast and reserved ranges,
 *    the sandboxes' own subnet; the host's own addresses are refused separately (a sandbox's
 *    traffic to the host is dropped, its DNS forwarder aside). No rule opens these.
 * 2. the sandbox's deny list, then its allow list (deny wins).
 * 3. with egress, private ranges stay closed unless allowed; everything else is open.
 *    Without egress, only the allow list is open.
 */
import { CairnError, type SandboxNetwork, type SandboxNetworkRequest } from "@cairn/protocol";

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

export interface Rule {
  cidr: Cidr;
  /** TCP and UDP destination ports, inclusive; every port and protocol when absent. */
  ports?: [number, number];
}

/** A sandbox's network as stored with it. `address` is set while it runs with an interface. */
export interface NetworkSpec {
  egress: boolean;
  allow: string[];
  deny: string[];
  address?: string;
}

export const NEVER_REACHABLE = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"];
/** Closed with egress unless an allow rule opens them: where a host's own company network lives. */
export const PRIVATE_RANGES = ["10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "192.0.0.0/24"];

function ipv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

const maskOf = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.split("/");
  if (extra !== undefined || addr === undefined) return undefined;
  const n = ipv4(addr);
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : NaN;
  if (n === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  return { base: (n & maskOf(prefix)) >>> 0, prefix };
}

export const formatCidr = (c: Cidr) => `${formatIpv4(c.base)}/${c.prefix}`;

/** Whether `inner` lies wholly inside `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && ((inner.base & maskOf(outer.prefix)) >>> 0) === outer.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b) || contains(b, a);
}

/** Parse one rule; undefined when it is not one. */
export function parseRule(text: string): Rule | undefined {
  const m = /^([0-9./]+)(?::(\d{1,5})(?:-(\d{1,5}))?)?$/.exec(text.trim());
  if (!m) return undefined;
  const cidr = parseCidr(m[1]!);
  if (!cidr) return undefined;
  if (m[2] === undefined) return { cidr };
  const lo = Number(m[2]);
  const hi = m[3] === undefined ? lo : Number(m[3]);
  if (lo < 1 || hi > 65535 || hi < lo) return undefined;
  return { cidr, ports: [lo, hi] };
}

export function formatRule(r: Rule): string {
  const ports = r.ports ? `:${r.ports[0]}${r.ports[1] !== r.ports[0] ? `-${r.ports[1]}` : ""}` : "";
  return `${formatCidr(r.cidr)}${ports}`;
}

/**
 * The network a create asks for, validated and in its stored form (rules normalised), or
 * undefined for loopback only. `sandboxSubnet` is never reachable either.
 */
export function resolveNetwork(req: SandboxNetworkRequest | undefined, fallback: "none" | "egress", sandboxSubnet: string): NetworkSpec | undefined {
  const asked = req ?? fallback;
  if (asked === "none") return undefined;
  if (asked === "egress") return { egress: true, allow: [], deny: [] };
  const never = [...NEVER_REACHABLE, sandboxSubnet].map((c) => parseCidr(c)!);
  const check = (list: string[] | undefined, which: "allow" | "deny") =>
    (list ?? []).map((text) => {
      const rule = parseRule(text);
      if (!rule) {
        throw new CairnError("INVALID_NETWORK_POLICY", `${which} rule "${text}" is not an IPv4 CIDR with an optional port or port range (10.0.0.5/32:5432, 192.168.0.0/16, 203.0.113.7:8000-8100)`, {
          meta: { field: which },
        });
      }
      const closed = which === "allow" ? never.find((n) => contains(n, rule.cidr)) : undefined;
      if (closed) {
        throw new CairnError(
          "INVALID_NETWORK_POLICY",
          `allow rule "${text}" names ${formatCidr(closed)}, which no sandbox may reach (loopback, link-local and cloud metadata, multicast, reserved, other sandboxes)`,
          { meta: { field: which } },
        );
      }
      return formatRule(rule);
    });
  const allow = check(asked.allow, "allow");
  const deny = check(asked.deny, "deny");
  if (!asked.egress && allow.length === 0) return undefined;
  return { egress: asked.egress, allow, deny };
}

export function networkToWire(spec: NetworkSpec | undefined, running: boolean): SandboxNetwork {
  return { egress: spec?.egress ?? false, allow: spec?.allow ?? [], deny: spec?.deny ?? [], address: running ? (spec?.address ?? null) : null };
}
