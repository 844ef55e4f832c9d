/**
 * A hostile sandbox against what the host keeps and what the kernel offers: no host secret in
 * /etc, no privilege through setuid files (exec'd processes have no-new-privileges, writable
 * mounts are nosuid), and an init that reaps orphans so a sandbox cannot lose fork for good.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { cgroupPrefix } from "../src/sandboxes/crun/driver.js";

describe("a hostile sandbox", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  let sb: Sandbox;
  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    await sb?.kill().catch(() => undefined);
  });
  withCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } }, (s) => ({ c, cairn } = s));
  before(async () => {
    sb = await cairn.sandboxes.create();
  });

  it("sees none of the host's /etc: no shadow hashes, no npmrc, gitconfig, ssh or TLS keys, no machine-id", async () => {
    const r = await sb.exec(
      "cat /etc/shadow; echo ---; for f in /etc/npmrc /etc/gitconfig /etc/ssh /etc/ssl/private /etc/sudoers /usr/local/etc/npmrc; do [ -e $f ] && echo LEAK $f; done; echo ---; cat /etc/machine-id; echo ---; id -un; getent passwd user | cut -d: -f1,3; hostname",
    );
    const [shadow, leaks, machineId, rest] = r.stdout.split("---\n");
    for (const line of (await readFile("/etc/shadow", "utf8")).split("\n").filter((l) => /^[^:]+:[^*!:]/.test(l))) {
      assert.ok(!shadow!.includes(line.split(":")[1]!), "no password hash of the host");
    }
    assert.match(shadow!, /^root:\*:/m, "the sandbox has its own, locked, accounts");
    assert.equal(leaks, "", leaks);
    // The sandbox's own /usr/local/etc starts empty and is its to fill.
    const own = await sb.exec("mkdir -p /usr/local/etc && echo mine > /usr/local/etc/npmrc && ls /usr/local/etc && cat /usr/local/etc/npmrc");
    assert.equal(own.stdout, "npmrc\nmine\n", own.stderr);
    assert.notEqual(machineId!.trim(), (await readFile("/etc/machine-id", "utf8")).trim());
    assert.match(rest!, /^root\nuser:1000\nsbx-/);
    // Tools still find what they need there: certificates, the loader's cache, alternatives.
    const tools = await sb.exec("ls /etc/ssl/certs | head -1 >/dev/null && awk 'BEGIN{print \"awk-ok\"}' && python3 -c 'import ssl, socket; ssl.create_default_context(); print(socket.getservbyname(\"https\"))'");
    assert.equal(tools.stdout, "awk-ok\n443\n", tools.stderr);
    // Writes to /etc stay the sandbox's.
    assert.equal((await sb.exec("echo 'x:x:5:5::/:/bin/sh' >> /etc/passwd && grep -c ^x: /etc/passwd")).stdout, "1\n");
    assert.doesNotMatch(await readFile("/etc/passwd", "utf8"), /^x:x:5:5/m);
  });

  it("is root only inside: its own user namespace maps it to an unprivileged host range", async () => {
    const r = await sb.exec("cat /proc/self/uid_map /proc/self/gid_map; grep CapEff /proc/self/status");
    const [uid, gid] = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).map(Number));
    assert.equal(uid![0], 0);
    assert.ok(uid![1]! >= 2 ** 30, `root is host uid ${uid![1]}`);
    assert.equal(uid![2], 65536);
    assert.deepEqual(gid, uid);
    // The README's set: Docker's default capabilities minus NET_RAW and MKNOD, of this namespace only.
    assert.match(r.stdout, /CapEff:\s+00000000a00405fb/);
    // Its processes are that host uid: to the host, sandbox root is a stranger.
    await sb.execBackground("exec sleep 777");
    let hostUid: number | undefined;
    for (let i = 0; i < 100 && hostUid === undefined; i++) {
      for (const pid of await readdir("/proc")) {
        if (!/^\d+$/.test(pid)) continue;
        const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
        if (cmd === "sleep\u0000777\u0000") hostUid = Number(/^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, "utf8"))?.[1]);
      }
      if (hostUid === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(hostUid, uid![1], "the sandbox's root runs as its range's first uid on the host");
    // Two sandboxes never share a range.
    const other = await cairn.sandboxes.create();
    try {
      const o = (await other.exec("cat /proc/self/uid_map")).stdout.trim().split(/\s+/).map(Number);
      assert.notEqual(o[1], uid![1]);
    } finally {
      await other.kill();
    }
  });

  it("keeps owners on volumes as the sandbox wrote them: file API, another sandbox, a fork from a checkpoint", async () => {
    const v = await cairn.volumes.create({ name: "owners", accessMode: "ReadWriteMany" });
    await v.files.write("/api.txt", "from the api");
    const a = await cairn.sandboxes.create({ volumes: [v.mount("/v")] });
    try {
      const w = await a.exec("echo r > /v/root.txt && mkdir /v/home && chown 1000:1000 /v/home && setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo u > /v/home/user.txt' && ls -ln /v/api.txt | awk '{print $3, $4}'");
      assert.equal(w.stdout, "0 0\n", `a file the API wrote is the sandbox root's: ${w.stderr}`);
      const stat = async (p: string) => ((s) => [s.uid, s.gid])(await v.files.stat(p));
      assert.deepEqual(await stat("/root.txt"), [0, 0]);
      assert.deepEqual(await stat("/home/user.txt"), [1000, 1000]);
      // Hot-plugged into another sandbox (another uid range): the same owners.
      const b = await cairn.sandboxes.create();
      try {
        await b.attach(v.mount("/w"));
        assert.equal((await b.exec("stat -c '%u:%g %n' /w/root.txt /w/home/user.txt")).stdout, "0:0 /w/root.txt\n1000:1000 /w/home/user.txt\n");
        assert.match((await b.exec("setpriv --reuid=1000 --regid=1000 --clear-groups sh -c 'echo more >> /w/home/user.txt && echo ok'")).stdout, /ok/);
      } finally {
        await b.kill();
      }
      // A checkpoint, forked into a new volume: the same owners again.
      await v.checkpoints.create({ name: "owners-cp" });
      const forked = await cairn.volumes.create({ name: "owners-fork", fromCheckpoint: "owners:owners-cp" });
      const f = await forked.files.stat("/home/user.txt");
      assert.deepEqual([f.uid, f.gid], [1000, 1000]);
    } finally {
      await a.kill();
    }
  });

  it("gives no privilege through setuid: exec'd processes have NoNewPrivs, and a setuid root copy runs as the caller", async () => {
    assert.match((await sb.exec("grep NoNewPrivs /proc/self/status")).stdout, /NoNewPrivs:\s+1/);
    // A setuid-root copy of `id` on the sandbox's root and on its /usr layer, run as nobody.
    const r = await sb.exec(
      "cp /usr/bin/id /root/id-suid && chmod 4755 /root/id-suid && cp /usr/bin/id /usr/local/bin/id-suid && chmod 4755 /usr/local/bin/id-suid && " +
        "setpriv --reuid=65534 --regid=65534 --clear-groups /root/id-suid -u && setpriv --reuid=65534 --regid=65534 --clear-groups /usr/local/bin/id-suid -u && ls -l /root/id-suid | cut -c1-10",
    );
    assert.equal(r.stdout, "65534\n65534\n-rwsr-xr-x\n", r.stderr);
    const mounts = await sb.exec("awk '$5 == \"/\" || $5 == \"/usr\" || $5 == \"/etc\" || $5 == \"/tmp\" { print $5, $6 }' /proc/self/mountinfo");
    for (const line of mounts.stdout.trim().split("\n")) assert.match(line, /nosuid/, line);
  });

  it("cannot take more CPU than its quota: a busy loop is throttled", async () => {
    assert.equal(sb.info.cpus, 1, "one core by default");
    const small = await cairn.sandboxes.create({ cpus: 0.2 });
    try {
      assert.equal(small.info.cpus, 0.2);
      const dir = `/sys/fs/cgroup/cpu/${cgroupPrefix(c.dataDir)}/${small.id}`;
      assert.equal((await readFile(`${dir}/cpu.cfs_quota_us`, "utf8")).trim(), "20000");
      await small.exec("timeout 1 sh -c 'while :; do :; done'; true", { timeoutMs: 30_000 });
      const throttled = Number(/nr_throttled (\d+)/.exec(await readFile(`${dir}/cpu.stat`, "utf8"))?.[1]);
      assert.ok(throttled > 0, `throttled ${throttled} times`);
    } finally {
      await small.kill();
    }
  });

  it("reaps orphans: 1,000 of them leave no zombie and the sandbox can still fork", async () => {
    assert.match((await sb.exec("tr '\\0' ' ' < /proc/1/cmdline")).stdout, /^\/run\/cairn\/init /);
    const r = await sb.exec(
      "for i in $(seq 1000); do (sleep 0.01 &) ; done; for t in $(seq 300); do z=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); [ $z -eq 0 ] && break; sleep 0.1; done; echo zombies=$z; sh -c 'echo forked'",
      { timeoutMs: 240_000 },
    );
    assert.equal(r.stdout, "zombies=0\nforked\n", r.stderr);
  });
});
