/**
 * The nftables ruleset of one cairnd's sandboxes (family inet, so IPv6 is covered too: sandboxes
 * have none, and none of it passes). Text for `nft -f`; built here, without side effects, so it
 * can be read and tested as the security boundary it is.
 *
 * - input: from a sandbox's interface, only DNS to the gateway (the forwarder) and answers to
 *   connections the host opened; the host's own addresses and services, cairnd's API among them,
 *   are dropped.
 * - forward: a sandbox's packets go through `egress` (never-reachable ranges, other sandboxes,
 *   then its own chain: its source address, deny, allow, private ranges, egress); nothing new
 *   goes into a sandbox from outside, only answers.
 * - postrouting: what leaves for elsewhere is masqueraded behind the host.
 */
import { NEVER_REACHABLE, PRIVATE_RANGES, parseRule, type NetworkSpec, type Rule } from "../policy.js";
import type { HostNames } from "./names.js";

export interface NftSandbox {
  id: string;
  address: string;
  spec: NetworkSpec;
}

const q = (s: string) => `"${s}"`;

function match(rule: Rule, cidrText: string): string {
  const daddr = `ip daddr ${cidrText}`;
  if (!rule.ports) return daddr;
  const [lo, hi] = rule.ports;
  return `${daddr} meta l4proto { tcp, udp } th dport ${lo === hi ? lo : `${lo}-${hi}`}`;
}

function ruleLines(list: string[], verdict: "accept" | "drop"): string[] {
  return list.map((text) => {
    const rule = parseRule(text);
    if (!rule) throw new Error(`not a rule: ${text}`); // stored rules were validated on create
    return `${match(rule, text.split(":")[0]!)} ${verdict}`;
  });
}

/** The rules of one sandbox's chain. */
export function sandboxRules(sb: NftSandbox): string[] {
  return [
    // Only its own address leaves its interface (it cannot set another without CAP_NET_ADMIN; belt and braces).
    `ip saddr != ${sb.address} drop`,
    ...ruleLines(sb.spec.deny, "drop"),
    ...ruleLines(sb.spec.allow, "accept"),
    ...(sb.spec.egress ? [`ip daddr { ${PRIVATE_RANGES.join(", ")} } drop`, "accept"] : []),
    "drop",
  ];
}

/** The whole table, replacing whatever was there, in one transaction. */
export function tableScript(names: HostNames, subnet: string, gateway: string, sandboxes: NftSandbox[]): string {
  const ifaces = q(`${names.ifacePrefix}*`);
  const chains = sandboxes.map((sb) => `  chain ${names.chain(sb.id)} {\n${sandboxRules(sb).map((r) => `    ${r}\n`).join("")}  }\n`);
  const elements = sandboxes.map((sb) => `${q(names.iface(sb.id))} : jump ${names.chain(sb.id)}`);
  return [
    `table inet ${names.table}`,
    `delete table inet ${names.table}`,
    `table inet ${names.table} {`,
    `  map egress_of {\n    type ifname : verdict\n${elements.length ? `    elements = { ${elements.join(", ")} }\n` : ""}  }`,
    ...chains,
    `  chain input {`,
    `    type filter hook input priority filter - 10; policy accept;`,
    `    iifname ${ifaces} jump from_sandbox`,
    `  }`,
    `  chain from_sandbox {`,
    // Answers to what the host itself opened (an operator's curl to a sandbox's address); a
    // sandbox cannot make a connection look established without the host having opened it.
    `    ct state established,related accept`,
    `    ip daddr ${gateway} udp dport 53 accept`,
    `    ip daddr ${gateway} tcp dport 53 accept`,
    `    drop`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter - 10; policy accept;`,
    `    iifname ${ifaces} jump egress`,
    `    oifname ${ifaces} ct state established,related accept`,
    `    oifname ${ifaces} drop`,
    `  }`,
    `  chain egress {`,
    `    meta nfproto ipv6 drop`,
    `    oifname ${ifaces} drop`,
    `    ip daddr { ${[...NEVER_REACHABLE, subnet].join(", ")} } drop`,
    `    iifname vmap @egress_of`,
    `    drop`,
    `  }`,
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    ip saddr ${subnet} oifname != ${ifaces} masquerade`,
    `  }`,
    `}`,
    "",
  ].join("\n");
}

/** Add one sandbox's chain and route its interface to it. */
export function addSandboxScript(names: HostNames, sb: NftSandbox): string {
  const chain = names.chain(sb.id);
  return [
    `add chain inet ${names.table} ${chain}`,
    `flush chain inet ${names.table} ${chain}`,
    ...sandboxRules(sb).map((r) => `add rule inet ${names.table} ${chain} ${r}`),
    `add element inet ${names.table} egress_of { ${q(names.iface(sb.id))} : jump ${chain} }`,
    "",
  ].join("\n");
}

/** Remove one sandbox's chain (its map element first: a chain still jumped to cannot go). */
export function removeSandboxScript(names: HostNames, id: string): string[] {
  return [
    `delete element inet ${names.table} egress_of { ${q(names.iface(id))} }\n`,
    `flush chain inet ${names.table} ${names.chain(id)}\ndelete chain inet ${names.table} ${names.chain(id)}\n`,
  ];
}
