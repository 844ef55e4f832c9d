import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CairnError } from "@cairn/protocol";
import { contains, parseCidr, parseRule, resolveNetwork } from "./policy.js";
import { sandboxRules, tableScript } from "./linux/nft.js";
import { hostNames } from "./linux/names.js";

const SUBNET = "100.96.0.0/20";
const code = (f: () => unknown) => {
  try {
    f();
    return "ok";
  } catch (err) {
    assert.ok(err instanceof CairnError);
    return err.code;
  }
};

describe("network policy", () => {
  it("parses CIDRs, ports and ranges, and normalises them", () => {
    assert.deepEqual(parseRule("10.0.0.5/32:5432"), { cidr: parseCidr("10.0.0.5/32"), ports: [5432, 5432] });
    assert.deepEqual(parseRule("10.0.0.5"), { cidr: { base: parseCidr("10.0.0.5")!.base, prefix: 32 } });
    assert.deepEqual(parseRule("192.168.1.7/24:8000-8100")?.ports, [8000, 8100]);
    for (const bad of ["10.0.0.256/32", "10.0.0/8", "::1", "10.0.0.1/33", "10.0.0.1:0", "10.0.0.1:70000", "10.0.0.1:9-8", "a.b.c.d", "10.0.0.1/8/8", "10.0.0.1 ; drop"]) {
      assert.equal(parseRule(bad), undefined, bad);
    }
    assert.deepEqual(resolveNetwork({ egress: true, allow: ["192.168.1.7/24:80"] }, "none", SUBNET), { egress: true, allow: ["192.168.1.0/24:80"], deny: [] });
  });

  it("a create that names nothing gets the operator's default; none and an empty allow-only list are loopback only", () => {
    assert.equal(resolveNetwork(undefined, "none", SUBNET), undefined);
    assert.deepEqual(resolveNetwork(undefined, "egress", SUBNET), { egress: true, allow: [], deny: [] });
    assert.equal(resolveNetwork("none", "egress", SUBNET), undefined);
    assert.equal(resolveNetwork({ egress: false }, "egress", SUBNET), undefined);
  });

  it("no allow rule opens loopback, link-local metadata or the sandboxes' own subnet", () => {
    for (const rule of ["169.254.169.254/32", "169.254.169.254:80", "127.0.0.1/32:7070", "100.96.0.5/32", "224.0.0.1"]) {
      assert.equal(code(() => resolveNetwork({ egress: false, allow: [rule] }, "none", SUBNET)), "INVALID_NETWORK_POLICY", rule);
    }
    assert.equal(code(() => resolveNetwork({ egress: true, allow: ["not a rule"] }, "none", SUBNET)), "INVALID_NETWORK_POLICY");
    // A wider rule is taken, and the never-reachable ranges are still dropped before it (below).
    assert.equal(code(() => resolveNetwork({ egress: false, allow: ["0.0.0.0/0"] }, "none", SUBNET)), "ok");
    assert.ok(contains(parseCidr("169.254.0.0/16")!, parseCidr("169.254.169.254")!));
  });

  it("the ruleset drops the never-reachable ranges and other sandboxes before any sandbox's own rules, and deny before allow", () => {
    const names = hostNames("/var/lib/cairn-test");
    const sb = { id: "sbx_1", address: "100.96.0.2", spec: { egress: true, allow: ["10.0.0.5/32:5432"], deny: ["10.0.0.0/8"] } };
    const text = tableScript(names, SUBNET, "100.96.0.1", [sb]);
    const egress = text.slice(text.indexOf("chain egress"));
    assert.ok(egress.indexOf("169.254.0.0/16") < egress.indexOf("vmap @egress_of"));
    assert.ok(egress.indexOf(SUBNET) < egress.indexOf("vmap @egress_of"));
    assert.ok(egress.indexOf(`oifname "${names.ifacePrefix}*" drop`) < egress.indexOf("vmap @egress_of"));
    // From a sandbox to the host: DNS to the gateway, nothing else.
    assert.match(text, /chain from_sandbox \{\n\s+ct state established,related accept\n\s+ip daddr 100\.96\.0\.1 udp dport 53 accept\n\s+ip daddr 100\.96\.0\.1 tcp dport 53 accept\n\s+drop\n/);
    const rules = sandboxRules(sb);
    assert.equal(rules[0], "ip saddr != 100.96.0.2 drop");
    assert.ok(rules.findIndex((r) => r.startsWith("ip daddr 10.0.0.0/8 drop")) < rules.findIndex((r) => r.includes("5432 accept")));
    assert.deepEqual(sandboxRules({ ...sb, spec: { egress: false, allow: [], deny: [] } }), ["ip saddr != 100.96.0.2 drop", "drop"]);
    assert.ok(names.iface("sbx_1").length <= 15);
  });
});
