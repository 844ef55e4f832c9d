/**
 * The metadata store on SQLite: volume lookups that are kept for a moment never outlive a change
 * made through the store (renames, status changes, deletes are seen by the very next lookup).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetadataStore, type VolumeRecord } from "./metadata-store.js";

describe("volume lookups", () => {
  let dir = "";
  let store: MetadataStore;
  let projectId = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cairn-store-"));
    store = await MetadataStore.open({ kind: "sqlite", path: join(dir, "cairn.db") });
    projectId = (await store.projects.ensure("prj_aaaaaaaaaaaaaaaaaaaa", "p")).id;
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const volume = (id: string, name: string): VolumeRecord => ({
    id,
    projectId,
    name,
    region: "local",
    sizeBytes: 1 << 30,
    usedBytes: 0,
    filesystem: "ext4",
    accessMode: "ReadWriteOnce",
    status: "ready",
    labels: { a: "1" },
    createdAt: new Date().toISOString(),
    updatedAt: new Date().toISOString(),
  });

  it("see every change made through the store at once", async () => {
    await store.volumes.insert(volume("vol_aaaaaaaaaaaaaaaaaaaa", "one"));
    assert.equal((await store.volumes.get(projectId, { name: "one" }))?.status, "ready");
    assert.ok(await store.volumes.transition("vol_aaaaaaaaaaaaaaaaaaaa", ["ready"], "deleting"));
    assert.equal((await store.volumes.get(projectId, { name: "one" }))?.status, "deleting");
    await store.volumes.update("vol_aaaaaaaaaaaaaaaaaaaa", { name: "two", status: "ready" });
    assert.equal(await store.volumes.get(projectId, { name: "one" }), undefined, "the old name is gone");
    assert.equal((await store.volumes.get(projectId, { name: "two" }))?.id, "vol_aaaaaaaaaaaaaaaaaaaa");
    await store.volumes.delete("vol_aaaaaaaaaaaaaaaaaaaa");
    assert.equal(await store.volumes.get(projectId, { name: "two" }), undefined);
    assert.equal(await store.volumes.get(projectId, { id: "vol_aaaaaaaaaaaaaaaaaaaa" }), undefined);
  });

  it("hand out copies: a caller changing its record changes nobody else's", async () => {
    await store.volumes.insert(volume("vol_bbbbbbbbbbbbbbbbbbbb", "three"));
    const first = (await store.volumes.get(projectId, { name: "three" }))!;
    first.status = "deleted";
    first.labels.a = "changed";
    const again = (await store.volumes.get(projectId, { name: "three" }))!;
    assert.equal(again.status, "ready");
    assert.equal(again.labels.a, "1");
  });
});
