/** The volume engine port's shared suite against the real loop engine (root: loop devices, mounts). */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { volumeEngineSuite } from "../src/volumes/engine-suite.js";
import { LoopVolumeEngine } from "../src/volumes/loop/engine.js";
import { openPool } from "../src/volumes/loop/pool.js";
import { run } from "../src/host/exec.js";
import { findMount } from "../src/host/mountinfo.js";
import { makeDataDir } from "./harness.js";

volumeEngineSuite("loop engine", async () => {
  const dataDir = await makeDataDir("engine");
  const pool = await openPool(dataDir, { sizeBytes: 4 * 1024 ** 3 });
  const engine = new LoopVolumeEngine({ pool, mountRoot: join(dataDir, "mounts"), idleUnmountMs: 50 });
  return {
    engine,
    async close() {
      await engine.close();
      if (pool.kind === "image" && (await findMount(pool.root))) await run("umount", [pool.root]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
