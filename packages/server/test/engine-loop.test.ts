/** The volume engine port's shared suite against the real loop engine (root: loop devices, mounts). */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { volumeEngineSuite } from "../src/volumes/engine-suite.js";
import { LoopVolumeEngine } from "../src/volumes/loop/engine.js";
import { openPool } from "../src/volumes/loop/pool.js";
import { run } from "../src/host/exec.js";
import { findMount } from "../src/host/mountinfo.js";
import { makeDataDir } from "./harness.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";

/**
 * Unmount the test's pool. Lazily: these tests mount in the test runner's namespace, so a cairnd
 * another suite starts meanwhile copies those mounts into its own namespace, and their loop
 * devices keep the pool's images open there until that cairnd exits. (cairnd itself mounts only
 * in its own namespace, which no other data dir's server is made from.)
 */
async function unmountPool(root: string): Promise<void> {
  if (await findMount(root)) await run("umount", ["-l", root]);
}

volumeEngineSuite("loop engine", async () => {
  const dataDir = await makeDataDir("engine");
  const pool = await openPool(dataDir, { sizeBytes: 4 * 1024 ** 3 });
  const engine = new LoopVolumeEngine({ pool, mountRoot: join(dataDir, "mounts"), idleUnmountMs: 50 });
  return {
    engine,
    async close() {
      await engine.close();
      if (pool.kind === "image") await unmountPool(pool.root);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

test("a volume unmounted behind the engine's back is mounted again before a lease: writes land in the volume, not the host", async (t) => {
  const dataDir = await makeDataDir("engine-remount");
  const pool = await openPool(dataDir, { sizeBytes: 2 * 1024 ** 3 });
  const engine = new LoopVolumeEngine({ pool, mountRoot: join(dataDir, "mounts"), idleUnmountMs: 60_000 });
  t.after(async () => {
    await engine.close();
    if (pool.kind === "image") await unmountPool(pool.root);
    await rm(dataDir, { recursive: true, force: true });
  });
  await engine.create({ id: "vol_remount", sizeBytes: 64 * 1024 ** 2, filesystem: "ext4" });
  const first = await engine.acquire("vol_remount");
  first.release(); // still mounted: the idle unmount is a minute away
  await run("umount", [first.path]); // someone else unmounts it
  assert.equal(await findMount(first.path), undefined);
  const again = await engine.acquire("vol_remount");
  assert.ok(await findMount(again.path), "mounted again");
  await writeFile(join(again.path, "landed.txt"), "in the volume");
  again.release();
  await engine.close();
  // The file is in the image: mount it on its own and read it.
  const look = join(dataDir, "look");
  await run("mkdir", ["-p", look]);
  await run("mount", ["-o", "loop,ro", join(pool.root, "volumes", "vol_remount.img"), look]);
  try {
    assert.equal(await readFile(join(look, "landed.txt"), "utf8"), "in the volume");
  } finally {
    await run("umount", [look]);
  }
});

test("usage is the volume's or nothing: never the host filesystem's under an empty mount point", async (t) => {
  const dataDir = await makeDataDir("engine-usage");
  const pool = await openPool(dataDir, { sizeBytes: 2 * 1024 ** 3 });
  const engine = new LoopVolumeEngine({ pool, mountRoot: join(dataDir, "mounts"), idleUnmountMs: 60_000 });
  t.after(async () => {
    await engine.close();
    if (pool.kind === "image") await unmountPool(pool.root);
    await rm(dataDir, { recursive: true, force: true });
  });
  await engine.create({ id: "vol_usage", sizeBytes: 16 * 1024 ** 2, filesystem: "ext4" });
  const lease = await engine.acquire("vol_usage");
  lease.release();
  const mounted = await engine.usage("vol_usage");
  assert.ok(mounted && mounted.totalBytes <= 16 * 1024 ** 2, `the volume's own figures: ${JSON.stringify(mounted)}`);
  // The mount goes while the engine still counts it mounted (as during an idle unmount).
  await run("umount", [lease.path]);
  assert.equal(await engine.usage("vol_usage"), undefined);
});
