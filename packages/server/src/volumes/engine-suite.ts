/**
 * The contract of the volume engine and checkpoint store ports, as tests. Every implementation
 * runs it: the loop engine as root (test/engine-loop.test.ts), the directory engine without
 * (volumes/fake/dir-engine.test.ts). What only one of them can do is tested beside it.
 */
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, writeFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { CairnError } from "@cairn/protocol";
import type { VolumeEngine, VolumeReconciler } from "./port.js";
import type { CheckpointStore } from "../checkpoints/port.js";

export type EngineUnderTest = VolumeEngine & CheckpointStore & VolumeReconciler;

const MiB = 1024 * 1024;
let counter = 0;
const newVolumeId = () => `vol_suite${process.pid}x${++counter}`;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return err instanceof CairnError ? err.code : `error: ${(err as Error).message}`;
  }
}

export function volumeEngineSuite(name: string, open: () => Promise<{ engine: EngineUnderTest; close(): Promise<void> }>): void {
  describe(`volume engine port: ${name}`, () => {
    let engine: EngineUnderTest;
    let closeEngine: (() => Promise<void>) | undefined;
    const ready = open().then((o) => {
      engine = o.engine;
      closeEngine = o.close;
    });
    after(async () => {
      await ready.catch(() => undefined);
      await closeEngine?.();
    });

    async function volumeWith(files: Record<string, Buffer | string>, sizeBytes = 64 * MiB): Promise<string> {
      await ready;
      const id = newVolumeId();
      await engine.create({ id, sizeBytes, filesystem: "ext4" });
      const lease = await engine.acquire(id);
      try {
        for (const [path, data] of Object.entries(files)) await writeFile(join(lease.path, path), data);
      } finally {
        lease.release();
      }
      return id;
    }

    async function read(id: string, path: string): Promise<Buffer> {
      const lease = await engine.acquire(id);
      try {
        return await readFile(join(lease.path, path));
      } finally {
        lease.release();
      }
    }

    it("keeps what was written under one lease for the next, byte for byte", async () => {
      const data = randomBytes(3 * MiB + 17);
      const id = await volumeWith({ "blob.bin": data, "hello.txt": "hi\n" });
      assert.deepEqual(await read(id, "blob.bin"), data);
      assert.equal((await read(id, "hello.txt")).toString(), "hi\n");
      await engine.destroy(id);
    });

    it("gives every lease of a volume the same files, and refuses to destroy a leased volume", async () => {
      const id = await volumeWith({ "a.txt": "a" });
      const one = await engine.acquire(id);
      const two = await engine.acquire(id);
      assert.equal(one.path, two.path);
      one.release();
      one.release(); // a second release of the same lease changes nothing
      assert.equal(await codeOf(engine.destroy(id)), "VOLUME_BUSY");
      two.release();
      await engine.destroy(id);
      assert.equal(await engine.imageSize(id), undefined);
      assert.notEqual(await codeOf(engine.acquire(id)), "ok");
    });

    it("grows but never shrinks, and says how big a volume is", async () => {
      const id = await volumeWith({ "keep.txt": "kept" });
      assert.equal(await engine.imageSize(id), 64 * MiB);
      assert.equal(await codeOf(engine.grow({ id, sizeBytes: 32 * MiB, filesystem: "ext4" })), "VOLUME_SHRINK_NOT_ALLOWED");
      assert.notEqual(await engine.grow({ id, sizeBytes: 96 * MiB, filesystem: "ext4" }), "none");
      assert.equal(await engine.imageSize(id), 96 * MiB);
      assert.equal((await read(id, "keep.txt")).toString(), "kept");
      await engine.destroy(id);
    });

    it("reports usage while leased: what was written is counted", async () => {
      const id = await volumeWith({});
      const lease = await engine.acquire(id);
      try {
        await writeFile(join(lease.path, "two-mib"), randomBytes(2 * MiB));
        const u = await engine.usage(id);
        assert.ok(u, "usage of a leased volume");
        assert.ok(u.usedBytes >= 2 * MiB, `used ${u.usedBytes}`);
        assert.ok(u.availableBytes < u.totalBytes);
      } finally {
        lease.release();
      }
      await engine.destroy(id);
    });

    it("restores a checkpoint: the files as they were, later writes gone", async () => {
      const id = await volumeWith({ "state.txt": "v1" });
      const info = await engine.checkpoint({ volumeId: id, checkpointId: "cp_one" });
      assert.equal(info.sizeBytes, 64 * MiB);
      const lease = await engine.acquire(id);
      await writeFile(join(lease.path, "state.txt"), "v2");
      await writeFile(join(lease.path, "later.txt"), "later");
      assert.equal(await codeOf(engine.restore({ volumeId: id, checkpointId: "cp_one" })), "VOLUME_BUSY");
      lease.release();
      await engine.restore({ volumeId: id, checkpointId: "cp_one" });
      assert.equal((await read(id, "state.txt")).toString(), "v1");
      const names = await (async () => {
        const l = await engine.acquire(id);
        try {
          return (await readdir(l.path)).filter((n) => n !== "lost+found");
        } finally {
          l.release();
        }
      })();
      assert.deepEqual(names, ["state.txt"]);
      await engine.deleteCheckpoints(id);
      await engine.destroy(id);
    });

    it("forks a checkpoint into a volume of its own: writes to one never reach the other", async () => {
      const id = await volumeWith({ "shared.txt": "origin" });
      await engine.checkpoint({ volumeId: id, checkpointId: "cp_fork" });
      const forkId = newVolumeId();
      await engine.fork({ volumeId: id, checkpointId: "cp_fork", newVolumeId: forkId });
      assert.equal((await read(forkId, "shared.txt")).toString(), "origin");
      const lease = await engine.acquire(forkId);
      await writeFile(join(lease.path, "shared.txt"), "fork");
      lease.release();
      assert.equal((await read(id, "shared.txt")).toString(), "origin");
      assert.equal((await read(forkId, "shared.txt")).toString(), "fork");
      await engine.deleteCheckpoints(id);
      await engine.destroy(forkId);
      await engine.destroy(id);
    });

    it("shows a checkpoint's files read from the checkpoint, and deletes one checkpoint alone", async () => {
      const id = await volumeWith({ "f.txt": "first" });
      await engine.checkpoint({ volumeId: id, checkpointId: "cp_a" });
      const lease = await engine.acquire(id);
      await writeFile(join(lease.path, "f.txt"), "second");
      lease.release();
      await engine.checkpoint({ volumeId: id, checkpointId: "cp_b" });
      const view = await engine.mountCheckpoint({ volumeId: id, checkpointId: "cp_a" });
      try {
        assert.equal(await readFile(join(view.path, "f.txt"), "utf8"), "first");
      } finally {
        view.release();
      }
      assert.ok((await engine.allocatedBytes({ volumeId: id, checkpointId: "cp_a" })) > 0);
      await engine.deleteCheckpoint({ volumeId: id, checkpointId: "cp_a" });
      assert.equal(await engine.allocatedBytes({ volumeId: id, checkpointId: "cp_a" }), 0);
      const b = await engine.mountCheckpoint({ volumeId: id, checkpointId: "cp_b" });
      try {
        assert.equal(await readFile(join(b.path, "f.txt"), "utf8"), "second");
      } finally {
        b.release();
      }
      await engine.deleteCheckpoints(id);
      assert.equal(await engine.allocatedBytes({ volumeId: id, checkpointId: "cp_b" }), 0);
      await engine.destroy(id);
    });

    it("reconciles: volumes and checkpoints nobody knows are removed, known ones kept", async () => {
      const kept = await volumeWith({ "k.txt": "kept" });
      const orphan = await volumeWith({ "o.txt": "orphan" });
      await engine.checkpoint({ volumeId: kept, checkpointId: "cp_known" });
      await engine.checkpoint({ volumeId: kept, checkpointId: "cp_unknown" });
      await engine.reconcile(new Set([kept]), new Map([[kept, new Set(["cp_known"])]]));
      assert.equal((await read(kept, "k.txt")).toString(), "kept");
      assert.equal(await engine.imageSize(orphan), undefined);
      assert.ok((await engine.allocatedBytes({ volumeId: kept, checkpointId: "cp_known" })) > 0);
      assert.equal(await engine.allocatedBytes({ volumeId: kept, checkpointId: "cp_unknown" }), 0);
      await engine.deleteCheckpoints(kept);
      await engine.destroy(kept);
    });
  });
}
