/** Sandboxes run by real crun with real volumes: the flows users rely on, and the walls between them. */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Cairn, CairnError, Sandbox } from "@cairn/sdk";
import { MiB } from "@cairn/protocol";
import { codeOf, withCairnd, type CairndProcess } from "./harness.js";

describe("sandboxes with volumes (crun)", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  const cleanup: Sandbox[] = [];

  // Registered first, so it runs before the fixture destroys cairnd (after hooks run in order).
  after(async () => {
    for (const sb of cleanup) await sb.kill().catch(() => undefined);
  });
  withCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "300" } }, (s) => ({ c, cairn } = s));

  const track = (sb: Sandbox) => (cleanup.push(sb), sb);

  it("mounts a volume at create: what the volume holds is what the sandbox reads", async () => {
    const volume = await cairn.volumes.fromName("team-data", { createIfMissing: true });
    await volume.files.write("/hello.txt", "persistent\n");
    let id: string;
    {
      await using sandbox = await Sandbox.create({ client: cairn, template: "base", volumes: [volume.mount("/workspace/shared")] });
      id = sandbox.id;
      const r = await sandbox.exec("cat /workspace/shared/hello.txt");
      assert.equal(r.stdout, "persistent\n");
      assert.equal(r.exitCode, 0);
      const atts = await sandbox.attachments();
      assert.equal(atts.length, 1);
      assert.equal(atts[0]!.state, "mounted");
      assert.equal(atts[0]!.mountPath, "/workspace/shared");
    }
    // `await using` killed it: the attachment is released and the volume free again.
    const after = await cairn.sandboxes.get(id);
    assert.equal(after.state, "stopped");
    assert.equal((await after.attachments())[0]!.state, "released");
  });

  it("keeps a project's work across sandboxes with the { path: name } shorthand", async () => {
    const sandbox2 = track(await cairn.sandboxes.create({ image: "base", volumes: { "/workspace": "my_project" } }));
    assert.equal((await cairn.volumes.get("my_project")).info.sizeBytes, 1024 * MiB, "created with the default size");
    sandbox2.cwd("/workspace");
    const r = await sandbox2.exec("npm init -y >/dev/null && node -e 'console.log(1+1)'");
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim(), "2");
    await sandbox2.files.write("/workspace/app.js", "console.log('hello')");
    await sandbox2.kill();
    const next = track(await cairn.sandboxes.create({ image: "base", volumes: { "/workspace": "my_project" } }));
    const ls = await next.exec("ls /workspace && node /workspace/app.js");
    assert.match(ls.stdout, /app\.js/);
    assert.match(ls.stdout, /package\.json/);
    assert.match(ls.stdout, /hello/);
    assert.equal(await next.files.readText("/workspace/app.js"), "console.log('hello')");
    await next.kill();
  });

  it("mounts read-only (EROFS) and subpaths (only that subtree)", async () => {
    const data = await cairn.volumes.create({ name: "ro-data" });
    await data.files.write("/readme.txt", "read me");
    const proj = await cairn.volumes.create({ name: "proj-tree", accessMode: "ReadWriteMany" });
    await proj.files.write("/projects/p1/a.txt", "p1");
    await proj.files.write("/projects/p2/secret.txt", "p2");
    const sb = track(
      await cairn.sandboxes.create({
        template: "base",
        volumes: [data.mount("/data", { mode: "ro" }), proj.mount("/proj", { subpath: "projects/p1" })],
      }),
    );
    const ro = await sb.exec("cat /data/readme.txt; echo x > /data/new.txt");
    assert.equal(ro.stdout, "read me");
    assert.notEqual(ro.exitCode, 0);
    assert.match(ro.stderr, /Read-only file system/);
    const sub = await sb.exec("ls -a /proj; cat /proj/a.txt; ls /proj/../ | head -50");
    assert.match(sub.stdout, /a\.txt/);
    assert.doesNotMatch(sub.stdout, /secret|p2/, "the rest of the volume is invisible");
    await sb.exec("echo from-sandbox > /proj/b.txt");
    assert.equal(await proj.files.readText("/projects/p1/b.txt"), "from-sandbox\n");
    // No CAP_SYS_ADMIN: the read-only mount stays read-only.
    const remount = await sb.exec("mount -o remount,rw /data; grep CapEff /proc/self/status");
    assert.match(remount.stderr + remount.stdout, /permission denied|not permitted/i);
    const capEff = BigInt("0x" + /CapEff:\s*([0-9a-f]+)/.exec(remount.stdout)![1]!);
    assert.equal(capEff & (1n << 21n), 0n, "CAP_SYS_ADMIN is not in the effective set");
    assert.equal((await sb.exec("touch /data/x")).exitCode, 1);
    await sb.kill();
  });

  it("hot-plugs a volume into a running sandbox and detaches it by mount path", async () => {
    const cache = await cairn.volumes.create({ name: "cache" });
    await cache.files.write("/c.txt", "cached");
    const sb = track(await cairn.sandboxes.create({ template: "base" }));
    await sb.exec("echo started > /tmp/marker");
    const a = await sb.attach(cache.mount("/cache"));
    assert.equal(a.state, "mounted");
    const r = await sb.exec("cat /cache/c.txt; cat /tmp/marker; echo new > /cache/n.txt");
    assert.equal(r.stdout, "cachedstarted\n", "the sandbox kept running (its /tmp survived)");
    assert.equal(await cache.files.readText("/n.txt"), "new\n");
    // A busy mount is refused, then force-detached.
    const p = await sb.execBackground("cd /cache && sleep 30");
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await codeOf(sb.detach("/cache")), "VOLUME_BUSY");
    const d = await sb.detach("/cache", { force: true });
    assert.equal(d.state, "released");
    const gone = await sb.exec("ls /cache 2>&1 | wc -l");
    assert.equal(gone.stdout.trim(), "0");
    void p;
    // Released: another sandbox may take this ReadWriteOnce volume now.
    const other = track(await cairn.sandboxes.create({ template: "base", volumes: [cache.mount("/c")] }));
    assert.equal((await other.exec("cat /c/c.txt")).stdout, "cached");
    await other.kill();
    await sb.kill();
  });

  it("runs a command in the background: exec returns a handle at once, its output is readable later", async () => {
    const sb = track(await cairn.sandboxes.create());
    const server = await sb.exec("echo up; exec sleep 600", { background: true });
    assert.equal(server.info.state, "running", "returned while the command still runs");
    let out = await server.output();
    for (let i = 0; i < 100 && out.stdout === ""; i++) out = await server.output();
    assert.equal(out.stdout, "up\n");
    assert.equal(out.state, "running");
    const job = await sb.exec("echo done; exit 3", { background: true });
    const end = await job.wait();
    assert.deepEqual([end.state, end.exitCode, end.stdout], ["exited", 3, "done\n"]);
    assert.doesNotMatch(JSON.stringify(job), new RegExp(c.adminKey), "a handle serialises as the process, never the key");
    await sb.kill();
  });

  it("forks a read-only ReadWriteOnce mount as a shared read-only view, not a copy", async () => {
    const ref = await cairn.volumes.create({ name: "fork-ro-ref" });
    await ref.files.write("/ref.txt", "reference");
    const sb = track(await cairn.sandboxes.create({ volumes: [ref.mount("/ref", { mode: "ro" })] }));
    const before = (await cairn.volumes.list()).items.length;
    const fork = track(await sb.fork());
    assert.equal((await fork.exec("cat /ref/ref.txt; touch /ref/x 2>&1 | grep -c Read-only")).stdout, "reference1\n");
    const [att] = await fork.attachments();
    assert.equal(att!.volume, ref.id, "the same volume, not a copy");
    assert.ok(att!.checkpoint, "seen through a checkpoint taken at the fork");
    assert.equal((await cairn.volumes.list()).items.length, before, "no volume was made");
    await fork.kill();
    assert.deepEqual((await ref.checkpoints.list()).map((c) => c.name), [], "the view's checkpoint goes with the fork");
    await sb.kill();
  });

  it("lets exactly one of 20 racing sandboxes attach a ReadWriteOnce volume", async () => {
    const v = await cairn.volumes.create({ name: "contended" });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => cairn.sandboxes.create({ template: "base", volumes: [v.mount("/data")] })),
    );
    const won = results.filter((r) => r.status === "fulfilled") as PromiseFulfilledResult<Sandbox>[];
    for (const w of won) track(w.value);
    const lost = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    assert.equal(won.length, 1, "exactly one wins");
    for (const l of lost) {
      assert.ok(l.reason instanceof CairnError);
      assert.equal(l.reason.code, "VOLUME_ALREADY_ATTACHED");
      assert.equal(l.reason.message, 'Volume "contended" is already attached');
    }
    await won[0]!.value.kill();
    // ReadWriteMany: shared live between sandboxes.
    const shared = await cairn.volumes.create({ name: "shared", accessMode: "ReadWriteMany" });
    const a = track(await cairn.sandboxes.create({ volumes: [shared.mount("/s")] }));
    const b = track(await cairn.sandboxes.create({ volumes: [shared.mount("/s")] }));
    await a.exec("echo from-a > /s/live.txt");
    assert.equal((await b.exec("cat /s/live.txt")).stdout, "from-a\n");
    // ReadOnlyMany: readers only.
    const rox = await cairn.volumes.create({ name: "rox", accessMode: "ReadOnlyMany" });
    assert.equal(await codeOf(cairn.sandboxes.create({ volumes: [rox.mount("/r", { mode: "rw" })] })), "INVALID_MOUNT");
    const r1 = track(await cairn.sandboxes.create({ volumes: [rox.mount("/r")] }));
    assert.match((await r1.exec("touch /r/x")).stderr, /Read-only/);
    await Promise.all([a.kill(), b.kill(), r1.kill()]);
  });

  it("hibernates, resumes and forks with data and attachment states right", async () => {
    const rwo = await cairn.volumes.create({ name: "hib-rwo" });
    const rwx = await cairn.volumes.create({ name: "hib-rwx", accessMode: "ReadWriteMany" });
    const sb = track(await cairn.sandboxes.create({ volumes: [rwo.mount("/own"), rwx.mount("/shared")] }));
    await sb.exec("echo kept > /root/state.txt; echo one > /own/data.txt; echo s > /shared/s.txt");
    await sb.hibernate();
    assert.equal(sb.state, "hibernated");
    assert.deepEqual((await sb.attachments()).map((a) => a.state), ["suspended", "suspended"]);
    assert.equal(await codeOf(cairn.sandboxes.create({ volumes: [rwo.mount("/x")] })), "VOLUME_ALREADY_ATTACHED", "hibernate keeps the claim");
    await sb.resume();
    assert.equal(sb.state, "running");
    assert.deepEqual((await sb.attachments()).map((a) => a.state), ["mounted", "mounted"]);
    assert.equal((await sb.exec("cat /root/state.txt /own/data.txt")).stdout, "kept\none\n");
    const fork = track(await sb.fork());
    assert.equal((await fork.exec("cat /root/state.txt /own/data.txt /shared/s.txt")).stdout, "kept\none\ns\n");
    const fa = await fork.attachments();
    const own = fa.find((a) => a.mountPath === "/own")!;
    assert.notEqual(own.volume, rwo.id, "a ReadWriteOnce volume is forked into a copy");
    assert.equal(fa.find((a) => a.mountPath === "/shared")!.volume, rwx.id, "a ReadWriteMany volume is shared");
    await fork.exec("echo fork > /own/data.txt; echo fork-shared > /shared/s.txt");
    assert.equal((await sb.exec("cat /own/data.txt /shared/s.txt")).stdout, "one\nfork-shared\n");
    // The forked volume says where it came from, and goes with the fork.
    const forkedVolume = await cairn.volumes.get(own.volume);
    assert.equal(forkedVolume.info.labels["cairn.dev/fork-of"], rwo.id);
    assert.equal(forkedVolume.info.labels["cairn.dev/forked-for"], fork.id);
    await fork.kill();
    assert.equal(await codeOf(cairn.volumes.get(own.volume)), "VOLUME_NOT_FOUND", "deleted with the fork");
    // Asked to keep it, it stays.
    const kept = track(await sb.fork({ keepVolumes: true }));
    const keptVolume = (await kept.attachments()).find((a) => a.mountPath === "/own")!.volume;
    await kept.kill();
    assert.equal((await cairn.volumes.get(keptVolume)).info.labels["cairn.dev/fork-of"], rwo.id);
    await cairn.volumes.delete(keptVolume);
    await sb.kill();
    assert.deepEqual((await sb.attachments()).map((a) => a.state), ["released", "released"]);
  });

  it("isolates: no host /work or /root, no other volume, limits hold, a full volume says ENOSPC", async () => {
    const other = await cairn.volumes.create({ name: "not-mine" });
    await other.files.write("/other.txt", "other");
    const small = await cairn.volumes.create({ name: "small", sizeBytes: 32 * MiB });
    const sb = track(await cairn.sandboxes.create({ volumes: [small.mount("/small")], pids: 64, memoryMb: 128 }));
    const look = await sb.exec(`ls /work 2>&1; ls -A /root; find / -xdev -name other.txt 2>/dev/null; cat /proc/mounts | grep -c ${c.dataDir} || true`);
    assert.match(look.stdout, /No such file or directory/);
    assert.doesNotMatch(look.stdout, /other\.txt/);
    assert.doesNotMatch(look.stdout, /\.bashrc|\.npm/, "the host's /root is not there");
    // The network is loopback only, and loopback is up: a server in the sandbox answers on 127.0.0.1.
    const net = await sb.exec(
      `ls /sys/class/net; python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); socket.create_connection(s.getsockname()); print('loopback ok')"`,
    );
    assert.equal(net.stdout, "lo\nloopback ok\n", net.stderr);
    // A fork bomb hits the pids limit; the sandbox and cairnd go on.
    // A timeout ends the command and everything it started, and the answer comes at once.
    const t0 = Date.now();
    const slow = await sb.exec("sleep 30 | cat", { timeoutMs: 1000 });
    assert.equal(slow.exitCode, 137);
    assert.ok(Date.now() - t0 < 25_000, `a 1 s timeout answered in ${Date.now() - t0} ms, not after the 30 s sleep`);
    const bomb = await sb.exec("for i in $(seq 1 200); do sleep 5 & done 2>&1 | tail -1; echo done", { timeoutMs: 20_000 });
    assert.match(bomb.stdout + bomb.stderr, /Resource temporarily unavailable|fork|Cannot/i);
    const oom = await sb.exec("node -e 'const a=[]; for(;;) a.push(Buffer.alloc(1<<20, 1))'", { timeoutMs: 30_000 });
    assert.notEqual(oom.exitCode, 0, "the memory limit stops a runaway process");
    const full = await sb.exec("dd if=/dev/zero of=/small/fill bs=1M count=64 2>&1; echo rc=$?");
    assert.match(full.stdout, /No space left on device/);
    assert.equal((await sb.exec("echo still-alive")).stdout, "still-alive\n");
    assert.equal((await cairn.health()).status, "ok");
    assert.equal(await codeOf(cairn.sandboxes.create({ template: "ubuntu" })), "INVALID_TEMPLATE");
    await assert.rejects(cairn.sandboxes.create({ region: "iad" }), (e: unknown) => {
      assert.ok(e instanceof CairnError && e.code === "REGION_MISMATCH");
      assert.equal(e.message, "This cairnd serves region local; create sandboxes for region iad on a host of that region");
      return true;
    });
    assert.equal((await cairn.sandboxes.create({ region: "local" }).then((s) => (track(s), s.kill()), () => "failed")), undefined);
    assert.equal(await codeOf(cairn.sandboxes.create({ volumes: [small.mount("/proc/x")] })), "INVALID_MOUNT");
    await sb.kill();
  });
});
