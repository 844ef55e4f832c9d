/**
 * The pool admits only what fits: volumes, grows and checkpoints that would promise more than the
 * pool holds are refused up front with 507 POOL_FULL, so the tenants already in never meet a full
 * pool as I/O errors inside their volumes.
 */
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Cairn, CairnError } from "@cairn/sdk";
import { GiB, MiB } from "@cairn/protocol";
import { codeOf, startCairnd, withCairnd } from "./harness.js";

describe("pool admission (a 4 GiB pool)", () => {
  let cairn: Cairn;

  withCairnd({ env: { CAIRN_POOL_SIZE: "4GiB", CAIRN_WARM_SANDBOXES: "0" } }, (s) => ({ cairn } = s));
  before(async () => {
  });

  it("refuses a volume, a grow and a checkpoint that would not fit, and leaves nothing behind", async () => {
    const health = await cairn.health();
    assert.ok(health.pool.capacityBytes > 3.5 * GiB && health.pool.capacityBytes <= 4 * GiB, `capacity ${health.pool.capacityBytes}`);
    assert.equal(health.pool.committedBytes, 0);
    assert.equal(health.pool.warning, undefined);

    const a = await cairn.volumes.create({ name: "a", sizeBytes: 2 * GiB });
    await cairn.volumes.create({ name: "b", sizeBytes: 1 * GiB });
    // 3 GiB promised of ~4: another 1 GiB volume does not fit.
    const err = await cairn.volumes.create({ name: "c", sizeGb: 1 }).catch((e: unknown) => e);
    assert.ok(err instanceof CairnError);
    assert.equal(err.code, "POOL_FULL");
    assert.equal(err.status, 507);
    assert.match(err.message, /cannot take a 1 GiB volume/);
    assert.equal(await codeOf(cairn.volumes.get("c")), "VOLUME_NOT_FOUND", "a refused create leaves no volume");
    // A grow past the pool is refused and the size stays.
    assert.equal(await codeOf(cairn.volumes.resize("a", { sizeGb: 4 })), "POOL_FULL");
    assert.equal((await cairn.volumes.get("a")).info.sizeBytes, 2 * GiB);
    assert.equal((await cairn.volumes.get("a")).info.status, "ready");

    // A checkpoint costs the blocks its volume holds: small while the volume is nearly empty...
    await a.files.write("/data.bin", randomBytes(64 * MiB));
    const cp = await a.checkpoints.create({ name: "small" });
    assert.equal(cp.name, "small");
    // ...and refused once those blocks no longer fit: fill what is left but 16 MiB.
    const h = (await cairn.health()).pool;
    const fill = Math.floor((h.capacityBytes - h.committedBytes - 16 * MiB) / MiB) * MiB;
    await cairn.volumes.create({ name: "filler", sizeBytes: fill });
    assert.equal(await codeOf(a.checkpoints.create({ name: "too-big" })), "POOL_FULL");
    assert.deepEqual((await a.checkpoints.list()).map((x) => x.name), ["small"], "a refused checkpoint leaves nothing");
    // Deleting gives the space back.
    await cairn.volumes.delete("b");
    assert.equal((await a.checkpoints.create({ name: "now-fits" })).name, "now-fits");
  });
});

describe("pool admission with an operator's overcommit", () => {
  it("admits past the pool and says so in /healthz", async (t) => {
    const c = await startCairnd({ env: { CAIRN_POOL_SIZE: "4GiB", CAIRN_POOL_OVERCOMMIT: "3", CAIRN_WARM_SANDBOXES: "0" } });
    t.after(() => c.destroy());
    const cairn = new Cairn({ url: c.url, apiKey: c.adminKey });
    for (const name of ["o1", "o2", "o3", "o4", "o5"]) await cairn.volumes.create({ name, sizeBytes: 2 * GiB });
    const h = await cairn.health();
    assert.equal(h.pool.overcommit, 3);
    assert.ok(h.pool.committedBytes === 10 * GiB);
    assert.match(h.pool.warning ?? "", /overcommitted 3x/);
  });
});
