/**
 * A volume whose filesystem meets an error: the kernel makes it read-only, clients get a clear 503
 * VOLUME_DAMAGED (not INTERNAL), and the next mount checks and repairs it before it is used again.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { Cairn, CairnError } from "@cairn/sdk";
import { withCairnd, type CairndProcess } from "./harness.js";
import { listLoops } from "../src/volumes/loop/filesystem.js";

describe("a volume after a filesystem error", () => {
  let c: CairndProcess;
  let cairn: Cairn;
  withCairnd({ env: { CAIRN_WARM_SANDBOXES: "0", CAIRN_LOG_LEVEL: "info" } }, (s) => ({ c, cairn } = s));
  before(async () => {
  });

  it("answers 503 VOLUME_DAMAGED while read-only, then is repaired and writable again with its data", async () => {
    const v = await cairn.volumes.create({ name: "fragile" });
    await v.files.write("/keep.txt", "kept");
    // A sandbox holds the volume mounted while the error strikes.
    const sb = await cairn.sandboxes.create({ volumes: [v.mount("/data")] });
    try {
      const loop = (await listLoops()).find((l) => l.backFile.endsWith(`/volumes/${v.id}.img`));
      assert.ok(loop, "the volume's loop device");
      // What a failing disk would do: the kernel records an ext4 error (and, as told at mkfs, goes read-only).
      await writeFile(`/sys/fs/ext4/${loop.name.replace("/dev/", "")}/trigger_fs_error`, "1");
      const err = await v.files.write("/new.txt", "x").catch((e: unknown) => e);
      assert.ok(err instanceof CairnError, String(err));
      assert.equal(err.code, "VOLUME_DAMAGED");
      assert.equal(err.status, 503);
      assert.equal(await v.files.readText("/keep.txt"), "kept", "reads still work");
      assert.match((await sb.exec("touch /data/x 2>&1")).stdout, /Read-only/);
    } finally {
      await sb.kill();
    }
    // Nothing holds it: cairnd unmounts it when idle, and the next use checks, repairs and mounts it read-write.
    let wrote = false;
    for (let i = 0; i < 300 && !wrote; i++) {
      wrote = await v.files.write("/new.txt", "after").then(() => true, () => false);
      if (!wrote) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(wrote, "writable again after the check");
    assert.equal(await v.files.readText("/keep.txt"), "kept");
    assert.equal(await v.files.readText("/new.txt"), "after");
    assert.match(c.logs(), /filesystem repaired/);
  });
});
