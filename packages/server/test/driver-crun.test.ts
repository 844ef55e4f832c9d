/** The sandbox driver port's shared suite against the real crun driver (root: containers, mounts). */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { sandboxDriverSuite } from "../src/sandboxes/driver-suite.js";
import { CrunDriver, cgroupPrefix } from "../src/sandboxes/crun/driver.js";
import { openPool } from "../src/volumes/loop/pool.js";
import { run } from "../src/host/exec.js";
import { findMount } from "../src/host/mountinfo.js";
import { makeDataDir } from "./harness.js";

sandboxDriverSuite("crun driver", async () => {
  const dataDir = await makeDataDir("driver");
  const pool = await openPool(dataDir, { sizeBytes: 8 * 1024 ** 3 });
  await CrunDriver.prepareHost();
  const prefix = cgroupPrefix(dataDir);
  const bundles = await CrunDriver.bundleRoot(join(pool.root, "sandboxes"), prefix);
  const driver = new CrunDriver(bundles, join(dataDir, "run", "crun"), prefix, join(pool.root, "templates"));
  return {
    driver,
    async close() {
      if (await findMount(bundles)) await run("umount", ["-l", bundles]);
      await rm(`/run/${prefix}`, { recursive: true, force: true });
      if (pool.kind === "image" && (await findMount(pool.root))) await run("umount", ["-l", pool.root]);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});
