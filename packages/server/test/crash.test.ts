/**
 * kill -9 of cairnd: on restart the reconciler releases what nothing holds, finishes or rolls
 * back half-done work, and every acknowledged write is there.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { Cairn } from "@cairn/sdk";
import { makeDataDir, startCairnd, type CairndProcess } from "./harness.js";
import { run } from "../src/host/exec.js";
import { MetadataStore } from "../src/storage/metadata-store.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function nsMounts(dataDir: string): Promise<string[]> {
  const { stdout } = await run("nsenter", [`--mount=${dataDir}/run/mnt.ns`, "--", "findmnt", "-rn", "-o", "TARGET"]);
  return stdout.split("\n").filter((l) => l.startsWith(join(dataDir, "mounts") + "/"));
}

/** Loop devices of the data dir's volumes; autoclear is asynchronous, so give it a moment to finish. */
async function volumeLoops(dataDir: string): Promise<string[]> {
  let lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    const { stdout } = await run("losetup", ["-a"]);
    lines = stdout.split("\n").filter((l) => l.includes(join(dataDir, "pool", "volumes")));
    if (lines.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return lines;
}

describe("kill -9 of cairnd during a restore", () => {
  it("leaves the volume either as it was or as the checkpoint, never a mix", async () => {
    const dataDir = await makeDataDir("restorecrash");
    let c = await startCairnd({ dataDir });
    try {
      for (let round = 0; round < 4; round++) {
        const cairn = new Cairn({ url: c.url, apiKey: c.adminKey, maxRetries: 0 });
        const v = round === 0 ? await cairn.volumes.create({ name: "restored" }) : await cairn.volumes.get("restored");
        // Old state: marker "old" plus a big file; checkpoint state: marker "new" plus another.
        await v.files.write("/marker", "cp");
        await v.files.write("/cp-only.bin", randomBytes(4 * 1024 * 1024));
        await v.checkpoints.create({ name: `r${round}` });
        await v.files.write("/marker", "live");
        await v.files.write(`/live-only-${round}.bin`, randomBytes(4 * 1024 * 1024));
        const restoring = v.checkpoints.restore(`r${round}`).catch(() => undefined);
        await sleep(round * 7); // crash at different points of the restore
        await c.crash();
        await restoring;
        c = await startCairnd({ dataDir });
        const again = new Cairn({ url: c.url, apiKey: c.adminKey });
        const vol = await again.volumes.get("restored");
        assert.equal(vol.info.status, "ready");
        const marker = await vol.files.readText("/marker");
        const has = async (p: string) => vol.files.readBytes(p).then(() => true, () => false);
        if (marker === "cp") assert.equal(await has(`/live-only-${round}.bin`), false, "restored: nothing of the live state");
        else {
          assert.equal(marker, "live");
          assert.equal(await has(`/live-only-${round}.bin`), true, "not restored: the live state whole");
        }
        // Reset for the next round.
        await vol.files.write("/marker", "reset");
      }
      // Whatever happened, the image is a clean filesystem.
      await c.stop();
      const { stdout } = await run("nsenter", [`--mount=${dataDir}/run/mnt.ns`, "--", "sh", "-c", `e2fsck -fn ${dataDir}/pool/volumes/*.img >/dev/null 2>&1; echo $?`]);
      assert.equal(stdout.trim(), "0");
    } finally {
      await c.destroy();
    }
  });
});

describe("graceful shutdown", () => {
  it("lets an in-flight upload finish, then unmounts everything", async () => {
    const c = await startCairnd({ env: { CAIRN_IDLE_UNMOUNT_MS: "60000" } });
    try {
      const cairn = new Cairn({ url: c.url, apiKey: c.adminKey, maxRetries: 0 });
      const v = await cairn.volumes.create({ name: "draining" });
      const chunks = Array.from({ length: 20 }, () => randomBytes(256 * 1024));
      let sent = 0;
      async function* slow() {
        for (const ch of chunks) {
          if (sent++ === 5) stopping = c.stop(); // SIGTERM while the body is still flowing
          await sleep(20);
          yield ch;
        }
      }
      let stopping: Promise<number | null> | undefined;
      const result = await v.files.write("/slow.bin", slow());
      assert.equal(result.size, 20 * 256 * 1024, "the upload that was in flight at SIGTERM completed");
      assert.equal(await stopping, 0, "cairnd exits cleanly");
      assert.deepEqual(await nsMounts(c.dataDir), [], "nothing is left mounted");
      assert.deepEqual(await volumeLoops(c.dataDir), []);
    } finally {
      await c.destroy();
    }
  });
});

describe("kill -9 of cairnd", () => {
  const procs: CairndProcess[] = [];
  after(async () => {
    for (const p of procs.reverse()) await p.destroy().catch(() => undefined);
  });

  it("loses no acknowledged write and leaves no stray mount or loop device", async () => {
    const dataDir = await makeDataDir("crash");
    // A long idle grace keeps the volume mounted at the moment of the crash.
    const env = { CAIRN_IDLE_UNMOUNT_MS: "60000" };
    const first = await startCairnd({ dataDir, env });
    procs.push(first);
    const cairn = new Cairn({ url: first.url, apiKey: first.adminKey, maxRetries: 0 });
    const v = await cairn.volumes.create({ name: "crashy" });
    const acked = new Map<string, string>();
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const data = randomBytes(64 * 1024 + i);
        const path = `/w${w}/f${i}.bin`;
        try {
          await v.files.write(path, data);
          acked.set(path, sha(data));
        } catch {
          return; // the server died mid-request: this write was never acknowledged
        }
      }
    });
    await sleep(1500);
    await first.crash();
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.size > 10, `only ${acked.size} writes were acknowledged before the crash`);
    assert.equal((await nsMounts(dataDir)).length, 1, "the crashed cairnd left its volume mounted in the pinned namespace");

    // Half-done work a crash can leave: a create that never finished, a delete that did not,
    // an orphan image and a temp file in the pool.
    const store = await MetadataStore.open({ kind: "sqlite", path: join(dataDir, "cairn.db") });
    const project = (await store.projects.list())[0]!;
    const at = new Date().toISOString();
    const base = { projectId: project.id, region: "local", sizeBytes: 1 << 30, usedBytes: 0, filesystem: "ext4" as const, accessMode: "ReadWriteOnce" as const, labels: {}, createdAt: at, updatedAt: at };
    await store.volumes.insert({ ...base, id: "vol_creating0000000000000", name: "half-created", status: "creating" });
    await store.volumes.insert({ ...base, id: "vol_deleting0000000000000", name: "half-deleted", status: "deleting" });
    await store.close();
    const ns = `--mount=${dataDir}/run/mnt.ns`;
    await run("nsenter", [ns, "--", "sh", "-ec", `cd ${dataDir}/pool; truncate -s 1G volumes/vol_deleting0000000000000.img volumes/vol_orphan00000000000000.img tmp/vol_x.img`]);

    const second = await startCairnd({ dataDir, env: { CAIRN_IDLE_UNMOUNT_MS: "200" } });
    procs.push(second);
    assert.deepEqual(await nsMounts(dataDir), [], "the restart unmounted what nothing holds");
    assert.deepEqual(await volumeLoops(dataDir), [], "and its loop device went with it");
    const { stdout: pool } = await run("nsenter", [ns, "--", "sh", "-c", `ls ${dataDir}/pool/volumes ${dataDir}/pool/tmp`]);
    assert.match(pool, new RegExp(`${v.id}\\.img`));
    assert.doesNotMatch(pool, /vol_orphan|vol_deleting|\bvol_x\.img/, "orphan images and temp files are gone"); // (a real id may start with x)

    const again = new Cairn({ url: second.url, apiKey: second.adminKey });
    const names = (await again.volumes.list()).items.map((x) => x.name);
    assert.deepEqual(names, ["crashy"], "the unfinished create was rolled back and the delete finished");
    const vol = await again.volumes.get("crashy");
    for (const [path, hash] of acked) {
      assert.equal(sha(await vol.files.readBytes(path)), hash, `${path} was acknowledged and must be intact`);
    }
    // No temp file of an interrupted write is visible as a file of the user.
    await second.stop();
    assert.deepEqual(await nsMounts(dataDir), [], "a graceful stop unmounts everything");
    assert.deepEqual(await volumeLoops(dataDir), []);
  });
});
