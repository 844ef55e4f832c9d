import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { volumeEngineSuite } from "../engine-suite.js";
import { DirVolumeEngine } from "./dir-engine.js";

volumeEngineSuite("directory engine (fake)", async () => {
  const root = await mkdtemp(join(tmpdir(), "cairn-dir-engine-"));
  const engine = await DirVolumeEngine.open({ root });
  return {
    engine,
    async close() {
      await engine.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});
