import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sandboxDriverSuite } from "../driver-suite.js";
import { FakeSandboxDriver } from "./driver.js";

sandboxDriverSuite("fake driver", async () => {
  const root = await mkdtemp(join(tmpdir(), "cairn-fake-driver-"));
  return { driver: new FakeSandboxDriver(root), close: () => rm(root, { recursive: true, force: true }) };
});
