/**
 * The warm pool: sandboxes started ahead of demand, whose volumes are hot-plugged when a create
 * claims one, and the cold path (`CAIRN_WARM_SANDBOXES=0`), which binds volumes at start. Both must
 * give the same sandbox: same mounts with the same flags, same limits, nothing left behind.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cairn, type Sandbox } from "@cairn/sdk";
import { MiB } from "@cairn/protocol";
import { startCairnd, type CairndProcess } from "./harness.js";
import { cgroupPrefix } from "../src/sandboxes/crun/driver.js";

const run = promisify(execFile);

/** The containers crun knows in cairnd's namespace (warm ones included: the API does not list those). */
async function containers(c: CairndProcess): Promise<string[]> {
  const { stdout } = await run("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "crun", "--root", join(c.dataDir, "run", "crun"), "list", "-q"]);
  return stdout.split("\n").map((l) => l.trim()).filter(Boolean).sort();
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What every sandbox must get, however it was started. */
async function checkSandbox(cairn: Cairn, sb: Sandbox, c: CairndProcess): Promise<void> {
  // ro refuses writes; the subpath shows only its subtree; the rw mount writes through to the volume.
  const ro = await sb.exec("cat /data/readme.txt; echo x > /data/new.txt");
  assert.equal(ro.stdout, "read me");
  assert.match(ro.stderr, /Read-only file system/);
  const sub = await sb.exec("ls /proj");
  assert.equal(sub.stdout, "a.txt\n");
  // Mount flags as a sandbox needs them: nosuid,nodev; programs and symlinks on a volume work.
  const flags = await sb.exec(
    "grep ' /proj ' /proc/self/mountinfo; printf '#!/bin/sh\\necho ran\\n' > /proj/x.sh && chmod +x /proj/x.sh && /proj/x.sh; ln -s a.txt /proj/l && cat /proj/l",
  );
  assert.equal(flags.exitCode, 0, flags.stderr);
  assert.match(flags.stdout, /nosuid/);
  assert.match(flags.stdout, /nodev/);
  assert.doesNotMatch(flags.stdout.split("\n")[0]!, /noexec|nosymfollow/);
  assert.match(flags.stdout, /ran\np1$/);
  const proj = await cairn.volumes.get("warm-proj");
  assert.equal(await proj.files.readText("/projects/p1/x.sh"), "#!/bin/sh\necho ran\n");
  // The limits asked for, not the pool's defaults.
  const cg = cgroupPrefix(c.dataDir);
  assert.equal((await readFile(`/sys/fs/cgroup/memory/${cg}/${sb.id}/memory.limit_in_bytes`, "utf8")).trim(), String(128 * MiB));
  assert.equal((await readFile(`/sys/fs/cgroup/pids/${cg}/${sb.id}/pids.max`, "utf8")).trim(), "64");
  assert.equal((await readFile(`/sys/fs/cgroup/cpu/${cg}/${sb.id}/cpu.cfs_quota_us`, "utf8")).trim(), "50000");
  // The env and cwd asked for.
  assert.equal((await sb.exec("echo $GREETING; pwd")).stdout, "hi\n/proj\n");
}

async function makeVolumes(cairn: Cairn): Promise<void> {
  const data = await cairn.volumes.create({ name: "warm-data" });
  await data.files.write("/readme.txt", "read me");
  const proj = await cairn.volumes.create({ name: "warm-proj" });
  await proj.files.write("/projects/p1/a.txt", "p1");
  await proj.files.write("/projects/p2/secret.txt", "p2");
}

const request = {
  template: "base",
  volumes: [
    { volume: "warm-data", mountPath: "/data", mode: "ro" as const },
    { volume: "warm-proj", mountPath: "/proj", subpath: "projects/p1" },
  ],
  memoryMb: 128,
  pids: 64,
  cpus: 0.5,
  env: { GREETING: "hi" },
  cwd: "/proj",
};

describe("warm pool", () => {
  const servers: CairndProcess[] = [];
  after(async () => {
    for (const c of servers) await c.destroy();
  });

  it("keeps sandboxes started ahead, hands one to a create with its volumes hot-plugged, and refills", async () => {
    const c = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "2" } });
    servers.push(c);
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    await makeVolumes(cairn);
    // Ready in cairnd's count, not only listed by crun (a start is done a moment after crun lists it).
    await until("two warm sandboxes ready", async () => ((await cairn.health()).warmSandboxes.ready === 2 ? true : undefined), 120_000);
    const warm = await containers(c);
    assert.equal(warm.length, 2);
    assert.deepEqual(await cairn.sandboxes.list(), [], "warm sandboxes are nobody's: the API does not list them");
    assert.deepEqual((await cairn.health()).warmSandboxes, { ready: 2, target: 2 });

    const sb = await cairn.sandboxes.create(request);
    assert.ok(warm.includes(sb.id), `the create took a warm sandbox (${sb.id} of ${warm.join(", ")})`);
    assert.equal(sb.state, "running");
    assert.deepEqual((await sb.attachments()).map((a) => a.state), ["mounted", "mounted"]);
    await checkSandbox(cairn, sb, c);

    // The pool refills; the sandbox in use is not part of it.
    await until("the pool refilled", async () => ((await containers(c)).length === 3 ? true : undefined));
    await sb.kill();

    // A graceful stop removes the warm sandboxes (nobody's), and keeps a running one (somebody's).
    const kept = await cairn.sandboxes.create({ template: "base" });
    await until("the pool refilled", async () => ((await containers(c)).length === 3 ? true : undefined));
    await c.stop();
    assert.deepEqual(await containers(c), [kept.id]);
  });

  it("without a pool (CAIRN_WARM_SANDBOXES=0) binds the volumes at start, with the same result", async () => {
    const c = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "0" } });
    servers.push(c);
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    await makeVolumes(cairn);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await containers(c), []);
    const sb = await cairn.sandboxes.create(request);
    assert.deepEqual(await containers(c), [sb.id]);
    await checkSandbox(cairn, sb, c);
    await sb.kill();
    assert.deepEqual(await containers(c), []);
  });

  it("replaces a warm sandbox that died before a create claimed it", async () => {
    const c = await startCairnd({ env: { CAIRN_WARM_SANDBOXES: "1" } });
    servers.push(c);
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    const [dead] = await until("a warm sandbox", async () => ((await containers(c)).length === 1 ? containers(c) : undefined));
    await run("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "crun", "--root", join(c.dataDir, "run", "crun"), "kill", dead!, "KILL"]);
    // Dead, not dying: wait until crun says so (a process being killed still runs for a moment).
    await until("the warm sandbox to be dead", async () => {
      const { stdout } = await run("nsenter", [`--mount=${join(c.dataDir, "run", "mnt.ns")}`, "--", "crun", "--root", join(c.dataDir, "run", "crun"), "state", dead!]);
      return (JSON.parse(stdout) as { status: string }).status === "stopped" ? true : undefined;
    });
    const sb = await cairn.sandboxes.create({ template: "base" });
    assert.notEqual(sb.id, dead);
    assert.equal((await sb.exec("echo alive")).stdout, "alive\n");
    await sb.kill();
  });
});
