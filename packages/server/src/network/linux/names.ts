/**
 * Everything a cairnd makes on the host's network is named after its data dir (the hash its
 * cgroups use), so two cairnd on one machine never touch each other's, and a restarted or
 * crashed one finds its own again.
 */
import { createHash } from "node:crypto";
import { cgroupPrefix } from "../../sandboxes/crun/driver.js";

export interface HostNames {
  /** The nftables table (family inet). */
  table: string;
  /** The bridge without ports that holds the gateway address (the DNS forwarder binds it). */
  anchor: string;
  /** Every sandbox's host-side interface starts with this (nft matches it as `prefix*`). */
  ifacePrefix: string;
  /** The host-side interface of one sandbox (15 characters, the kernel's limit). */
  iface(sandboxId: string): string;
  /** The nftables chain of one sandbox's policy. */
  chain(sandboxId: string): string;
}

export function hostNames(dataDir: string): HostNames {
  const hex = cgroupPrefix(dataDir).slice("cairn-".length);
  const short = hex.slice(0, 6);
  const of = (id: string) => createHash("sha256").update(id).digest("hex").slice(0, 6);
  return {
    table: `cairn_${hex}`,
    anchor: `cn${short}gw`,
    ifacePrefix: `cn${short}s`,
    iface: (id) => `cn${short}s${of(id)}`,
    chain: (id) => `sb_${of(id)}`,
  };
}
