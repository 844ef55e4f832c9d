/**
 * Sandbox networks, played by the attacker: a sandbox reaches what its policy opens and nothing
 * else — not cairnd's API, not the host's own addresses and services, not link-local metadata, not
 * another sandbox, not a denied range. The outside world is a host the test makes in its own
 * network namespace (net-helpers.ts); no traffic leaves the machine.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { run } from "../src/host/exec.js";
import { hostNames } from "../src/network/linux/names.js";
import { startCairnd, type CairndProcess } from "./harness.js";
import { startDnsServer, startTestHost, type TestHost } from "./net-helpers.js";

/** Connect from inside the sandbox to each target at once; each is "open" (an HTTP answer came) or "closed". */
async function probe(sb: Sandbox, targets: Record<string, string>): Promise<Record<string, string>> {
  const lines = Object.entries(targets).map(
    ([name, target]) =>
      `( out=$(timeout 8 bash -c 'exec 3<>/dev/tcp/${target.replace(":", "/")} && printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3' 2>&1); case "$out" in *hello*|*HTTP/1.*) echo "${name}=open";; *) echo "${name}=closed";; esac ) &`,
  );
  const r = await sb.exec(`${lines.join("\n")}\nwait`);
  return Object.fromEntries(r.stdout.trim().split("\n").filter(Boolean).map((l) => l.split("=") as [string, string]));
}

async function links(prefix: string): Promise<string[]> {
  const { stdout } = await run("ip", ["-j", "link", "show"]);
  return (JSON.parse(stdout) as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.startsWith(prefix));
}
const tableOf = (table: string) => run("nft", ["list", "table", "inet", table]).then((o) => o.stdout, () => undefined);

describe("sandbox networks", () => {
  let host: TestHost;
  let dns: Awaited<ReturnType<typeof startDnsServer>>;
  let c: CairndProcess;
  let cairn: Cairn;
  let hostService: Server;
  let hostServicePort: number;
  let names: ReturnType<typeof hostNames>;
  const apiPort = () => new URL(c.url).port;

  before(async () => {
    host = await startTestHost([80, 5432, 5433]);
    dns = await startDnsServer({ "outside.cairn.test": host.publicIp, "private.cairn.test": host.privateIp });
    // A service of the host's own, on every address (as a careless one would be).
    hostService = createServer((_q, s) => s.end("hello from the host"));
    await new Promise<void>((resolve) => hostService.listen(0, "0.0.0.0", resolve));
    hostServicePort = (hostService.address() as { port: number }).port;
    // cairnd's API on the host's address that faces the test host: reachable from that side, not from sandboxes.
    c = await startCairnd({ args: ["--listen", `${host.machineIp}:0`], env: { CAIRN_SANDBOX_DNS: `127.0.0.1:${dns.port}`, CAIRN_WARM_SANDBOXES: "1" } });
    cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    names = hostNames(c.dataDir);
  });
  after(async () => {
    await c?.destroy();
    // Nothing of this data dir's on the host's network once it is released.
    if (names) {
      assert.deepEqual(await links(names.ifacePrefix.slice(0, -1)), []);
      assert.equal(await tableOf(names.table), undefined);
    }
    hostService?.close();
    await dns?.close();
    await host?.close();
  });

  it("egress reaches the outside and resolves names through the test's resolver; none reaches nothing", async () => {
    const [out, none] = await Promise.all([cairn.sandboxes.create({ network: "egress" }), cairn.sandboxes.create({})]);
    try {
      assert.equal(out.info.network.egress, true);
      assert.match(out.info.network.address ?? "", /^100\.\d+\.\d+\.\d+$/);
      assert.equal(none.info.network.address, null);
      const r = await out.exec("getent hosts outside.cairn.test && timeout 8 bash -c 'exec 3<>/dev/tcp/outside.cairn.test/80; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'");
      assert.equal(r.exitCode, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^${host.publicIp.replaceAll(".", "\\.")}\\s+outside\\.cairn\\.test`, "m"));
      assert.match(r.stdout, new RegExp(`hello 80 ${host.publicIp.replaceAll(".", "\\.")}`));
      assert.ok(dns.queries.includes("outside.cairn.test"));
      assert.deepEqual(await probe(none, { outside: `${host.publicIp}:80` }), { outside: "closed" });
      const lookup = await none.exec("getent hosts outside.cairn.test");
      assert.notEqual(lookup.exitCode, 0);
    } finally {
      await Promise.all([out.kill(), none.kill()]);
    }
  });

  it("the host, its services, cairnd's API, link-local metadata and other sandboxes are out of reach; a deny wins; an allowed CIDR:port opens only that port", async () => {
    const gateway = (await cairn.sandboxes.create({ network: "egress" }).then(async (s) => {
      const r = await s.exec("ip route show default");
      await s.kill();
      return /via (\S+)/.exec(r.stdout)![1]!;
    }));
    const a = await cairn.sandboxes.create({ network: { egress: true, allow: [`${host.privateIp}/32:5432`] } });
    const b = await cairn.sandboxes.create({ network: "egress" });
    const d = await cairn.sandboxes.create({ network: { egress: true, deny: [`${host.publicIp}/32`] } });
    try {
      await b.exec(`node -e 'require("http").createServer((q,s)=>s.end("hello from b")).listen(8080,"0.0.0.0")' >/dev/null 2>&1 &`);
      const bAddress = b.info.network.address!;
      // Controls: each target answers from the machine itself, so "closed" below is the policy.
      const fromMachine = async (target: string) => (await fetch(`http://${target}/`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.text(), () => "")).startsWith("hello");
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && !(await fromMachine(`${bAddress}:8080`)); ) await new Promise((r) => setTimeout(r, 100));
      for (const t of [`${bAddress}:8080`, `${host.linkLocalIp}:80`, `${host.privateIp}:5433`, `${host.machineIp}:${hostServicePort}`, `127.0.0.1:${hostServicePort}`]) {
        assert.ok(await fromMachine(t), `${t} answers the machine`);
      }
      assert.equal((await fetch(`${c.url}/healthz`)).status, 200);

      const seen = await probe(a, {
        outside: `${host.publicIp}:80`,
        allowedPort: `${host.privateIp}:5432`,
        otherPortOfAllowed: `${host.privateIp}:5433`,
        privateByDefault: `${host.privateIp}:80`,
        metadata: `${host.linkLocalIp}:80`,
        otherSandbox: `${bAddress}:8080`,
        apiOnMachineAddress: `${host.machineIp}:${apiPort()}`,
        apiOnGateway: `${gateway}:${apiPort()}`,
        hostServiceOnMachineAddress: `${host.machineIp}:${hostServicePort}`,
        hostServiceOnGateway: `${gateway}:${hostServicePort}`,
        hostLoopbackService: `127.0.0.1:${hostServicePort}`,
        hostLoopbackApi: `127.0.0.1:${apiPort()}`,
      });
      assert.deepEqual(seen, {
        outside: "open",
        allowedPort: "open",
        otherPortOfAllowed: "closed",
        privateByDefault: "closed",
        metadata: "closed",
        otherSandbox: "closed",
        apiOnMachineAddress: "closed",
        apiOnGateway: "closed",
        hostServiceOnMachineAddress: "closed",
        hostServiceOnGateway: "closed",
        hostLoopbackService: "closed",
        hostLoopbackApi: "closed",
      });
      assert.deepEqual(await probe(d, { denied: `${host.publicIp}:80`, otherSandbox: `${a.info.network.address}:22` }), { denied: "closed", otherSandbox: "closed" });
      // Not even with CAP_NET_ADMIN-free tricks: its address, routes and interface are not its to change.
      const tamper = await a.exec(`ip addr add ${host.publicIp}/32 dev eth0 2>&1; ip route add 169.254.0.0/16 dev eth0 2>&1; ip link set eth0 down 2>&1; echo done`);
      assert.match(tamper.stdout, /Operation not permitted/);
      assert.deepEqual(await probe(a, { outside: `${host.publicIp}:80`, metadata: `${host.linkLocalIp}:80` }), { outside: "open", metadata: "closed" });
    } finally {
      await Promise.all([a.kill(), b.kill(), d.kill()]);
    }
  });

  it("an allow rule cannot open link-local metadata or loopback; a policy that is not one is a 400", async () => {
    for (const rule of ["169.254.169.254/32:80", "127.0.0.1/32", "not-a-cidr", "::1"]) {
      await assert.rejects(cairn.sandboxes.create({ network: { egress: true, allow: [rule] } }), (err: Error & { code?: string }) => err.code === "INVALID_NETWORK_POLICY");
    }
  });

  it("network state goes with the sandbox: kill, hibernate and resume, fork", async () => {
    const sb = await cairn.sandboxes.create({ network: "egress" });
    const iface = names.iface(sb.info.id);
    assert.deepEqual(await links(iface), [iface]);
    assert.match((await tableOf(names.table)) ?? "", new RegExp(names.chain(sb.info.id)));
    await sb.hibernate();
    assert.deepEqual(await links(iface), []);
    assert.doesNotMatch((await tableOf(names.table)) ?? "", new RegExp(names.chain(sb.info.id)));
    await sb.resume();
    assert.deepEqual(await probe(sb, { outside: `${host.publicIp}:80` }), { outside: "open" });
    const fork = await sb.fork();
    try {
      assert.notEqual(fork.info.network.address, sb.info.network.address);
      assert.deepEqual(fork.info.network, { ...sb.info.network, address: fork.info.network.address });
      assert.deepEqual(await probe(fork, { outside: `${host.publicIp}:80` }), { outside: "open" });
    } finally {
      await fork.kill();
    }
    await sb.kill();
    assert.deepEqual(await links(names.ifacePrefix), []);
    assert.doesNotMatch((await tableOf(names.table)) ?? "", /sb_/);
  });

  it("after a crash: running sandboxes keep their network, leftovers of a half-made one go, and kill releases it all", async () => {
    const sb = await cairn.sandboxes.create({ network: "egress" });
    await c.crash();
    // What a crash in the middle of giving a sandbox its network leaves: an interface and a chain nobody owns.
    const stray = `${names.ifacePrefix}dead00`;
    await run("ip", ["link", "add", stray, "type", "veth", "peer", "name", `${stray.slice(0, 12)}p`]);
    await run("nft", ["add chain inet", names.table, "sb_dead00"].join(" ").split(" "));
    c = await startCairnd({ dataDir: c.dataDir, args: ["--listen", `${host.machineIp}:0`], env: { CAIRN_SANDBOX_DNS: `127.0.0.1:${dns.port}`, CAIRN_WARM_SANDBOXES: "1" } });
    cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    const again = await cairn.sandboxes.get(sb.info.id);
    assert.equal(again.info.state, "running");
    assert.deepEqual(await probe(again, { outside: `${host.publicIp}:80`, metadata: `${host.linkLocalIp}:80` }), { outside: "open", metadata: "closed" });
    assert.deepEqual(await links(names.ifacePrefix), [names.iface(sb.info.id)]);
    assert.doesNotMatch((await tableOf(names.table)) ?? "", /sb_dead00/);
    await again.kill();
    assert.deepEqual(await links(names.ifacePrefix), []);
    assert.doesNotMatch((await tableOf(names.table)) ?? "", /sb_/);
  });
});
