/** Checkpoints: instant copy-on-write restore points of a volume (freeze, reflink, thaw). */
import { spawn } from "node:child_process";
import { stat, statfs } from "node:fs/promises";
import type { Readable } from "node:stream";
import { CairnError, NAME_IS_ID_MESSAGE, formatSize, type Checkpoint, type CreateCheckpointRequest } from "@cairn/protocol";
import { ID_PATTERN, newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { CheckpointRecord, MetadataStore, VolumeRecord } from "../storage/metadata-store.js";
import type { VolumeEngine } from "../volumes/port.js";
import type { CheckpointStore } from "./port.js";
import type { PoolCapacity } from "../volumes/capacity.js";
import type { VolumeService } from "../volumes/service.js";

export interface CheckpointServiceDeps {
  store: MetadataStore;
  engine: VolumeEngine;
  checkpointStore: CheckpointStore;
  volumes: VolumeService;
  log: Logger;
  /** Most checkpoints one volume may have. */
  maxPerVolume: number;
  /** Share of the pool kept free: new checkpoints are refused before the pool fills, not writes. */
  poolReserveRatio: number;
  poolRoot: string;
  /** Admission: a checkpoint may keep every block its volume has now; that much must fit. */
  capacity: Pick<PoolCapacity, "admit">;
}

export class CheckpointService {
  constructor(private readonly deps: CheckpointServiceDeps) {}

  async find(volume: VolumeRecord, ref: string): Promise<CheckpointRecord> {
    const { store } = this.deps;
    const byId = ID_PATTERN.test(ref) ? await store.checkpoints.get(volume.id, { id: ref }) : undefined;
    const cp = byId ?? (await store.checkpoints.get(volume.id, { name: ref }));
    if (!cp || cp.status !== "ready") {
      throw new CairnError("CHECKPOINT_NOT_FOUND", `Checkpoint "${ref}" of volume "${volume.name}" not found`);
    }
    return cp;
  }

  async toWire(cp: CheckpointRecord): Promise<Checkpoint> {
    const space = await this.deps.checkpointStore.checkpointSpace({ volumeId: cp.volumeId, checkpointId: cp.id });
    return {
      id: cp.id,
      name: cp.name,
      volumeId: cp.volumeId,
      labels: cp.labels,
      sizeBytes: cp.sizeBytes,
      allocatedBytes: space.allocatedBytes,
      exclusiveBytes: space.exclusiveBytes,
      frozenMs: Math.round(cp.frozenMs * 100) / 100,
      createdAt: cp.createdAt,
    };
  }

  async create(projectId: string, volumeRef: string, req: CreateCheckpointRequest): Promise<Checkpoint> {
    const { store, engine, volumes, log } = this.deps;
    if (req.name !== undefined && ID_PATTERN.test(req.name)) throw new CairnError("INVALID_CHECKPOINT_NAME", `Checkpoint name ${NAME_IS_ID_MESSAGE}`);
    const volume = await volumes.find(projectId, volumeRef);
    if (volume.status !== "ready") {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${volume.name}" is ${volume.status}; retry when it is ready`);
    }
    const existing = await store.checkpoints.list(volume.id);
    const keep = req.keep;
    if (existing.length >= this.deps.maxPerVolume && (keep === undefined || keep > this.deps.maxPerVolume)) {
      throw new CairnError(
        "CHECKPOINT_LIMIT_REACHED",
        `Volume "${volume.name}" has ${existing.length} checkpoints, the most allowed; delete some or pass keep`,
      );
    }
    await this.checkPoolReserve(volume);
    const at = new Date();
    const record: CheckpointRecord = {
      id: newId("cp"),
      volumeId: volume.id,
      name: req.name ?? `cp-${at.toISOString().replace(/[-:]/g, "").replace(/\..*/, "").toLowerCase()}-${Math.random().toString(36).slice(2, 6)}`,
      labels: req.labels ?? {},
      sizeBytes: volume.sizeBytes,
      frozenMs: 0,
      status: "creating",
      createdAt: at.toISOString(),
    };
    const keeps = await engine.allocatedBytes({ volumeId: volume.id });
    await this.deps.capacity.admit(keeps, `a checkpoint of volume "${volume.name}" (${formatSize(keeps)} in use)`, () => store.checkpoints.insert(record));
    try {
      const info = await this.deps.checkpointStore.checkpoint({ volumeId: volume.id, checkpointId: record.id });
      await store.checkpoints.update(record.id, { status: "ready", sizeBytes: info.sizeBytes, frozenMs: info.frozenMs });
      record.status = "ready";
      record.sizeBytes = info.sizeBytes;
      record.frozenMs = info.frozenMs;
    } catch (err) {
      await store.checkpoints.delete(record.id);
      await this.deps.checkpointStore.deleteCheckpoint({ volumeId: volume.id, checkpointId: record.id }).catch(() => undefined);
      throw err;
    }
    if (keep !== undefined) {
      const all = (await store.checkpoints.list(volume.id)).filter((c) => c.status === "ready");
      for (const old of all.slice(0, Math.max(0, all.length - keep))) {
        await this.remove(old);
        log.info({ volumeId: volume.id, checkpointId: old.id }, "retention: deleted an old checkpoint");
      }
    }
    return this.toWire(record);
  }

  private async checkPoolReserve(volume: VolumeRecord): Promise<void> {
    const f = await statfs(this.deps.poolRoot);
    const total = f.blocks * f.bsize;
    const free = f.bavail * f.bsize;
    const reserve = total * this.deps.poolReserveRatio;
    if (free < reserve) {
      throw new CairnError(
        "POOL_FULL",
        `The storage pool has ${formatSize(free)} free, below its ${formatSize(reserve)} reserve; checkpoints are refused so volume writes keep working. Delete old checkpoints.`,
      );
    }
    void volume;
  }

  async list(projectId: string, volumeRef: string): Promise<Checkpoint[]> {
    const volume = await this.deps.volumes.find(projectId, volumeRef, { includeDeleted: true });
    const all = (await this.deps.store.checkpoints.list(volume.id)).filter((c) => c.status === "ready");
    return Promise.all(all.map((c) => this.toWire(c)));
  }

  async get(projectId: string, volumeRef: string, ref: string): Promise<Checkpoint> {
    const volume = await this.deps.volumes.find(projectId, volumeRef, { includeDeleted: true });
    return this.toWire(await this.find(volume, ref));
  }

  async delete(projectId: string, volumeRef: string, ref: string): Promise<void> {
    const volume = await this.deps.volumes.find(projectId, volumeRef, { includeDeleted: true });
    await this.remove(await this.find(volume, ref));
  }

  private async remove(cp: CheckpointRecord): Promise<void> {
    const { store } = this.deps;
    await store.checkpoints.update(cp.id, { status: "deleting" });
    await this.deps.checkpointStore.deleteCheckpoint({ volumeId: cp.volumeId, checkpointId: cp.id });
    await store.checkpoints.delete(cp.id);
    // The last checkpoint of a deleted volume takes the volume's record with it.
    const volume = await store.volumes.byId(cp.volumeId);
    if (volume?.status === "deleted" && (await store.checkpoints.list(volume.id)).length === 0) {
      await this.deps.checkpointStore.deleteCheckpoints(volume.id);
      await store.volumes.delete(volume.id);
    }
  }

  /** The checkpoint's raw image, to stream out (zeros included: a reader may write it sparse). */
  async exportImage(projectId: string, volumeRef: string, ref: string): Promise<{ path: string; size: number; name: string }> {
    const volume = await this.deps.volumes.find(projectId, volumeRef, { includeDeleted: true });
    const cp = await this.find(volume, ref);
    const path = await this.deps.checkpointStore.checkpointImage(volume.id, cp.id);
    return { path, size: (await stat(path)).size, name: `${volume.name}-${cp.name}.img` };
  }

  /**
   * A tar stream of the checkpoint's files, read from a read-only mount of the checkpoint. The
   * mount goes when the stream ends or is abandoned.
   */
  async exportTar(projectId: string, volumeRef: string, ref: string): Promise<{ stream: Readable; name: string; done: () => void }> {
    const volume = await this.deps.volumes.find(projectId, volumeRef, { includeDeleted: true });
    const cp = await this.find(volume, ref);
    const lease = await this.deps.checkpointStore.mountCheckpoint({ volumeId: volume.id, checkpointId: cp.id });
    const tar = spawn("tar", ["-c", "-f", "-", "-C", lease.path, "--one-file-system", "--sparse", "--exclude=./lost+found", "."], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    tar.stderr.on("data", (d) => (stderr += d));
    tar.on("exit", (code) => {
      if (code !== 0 && code !== null) this.deps.log.warn({ code, stderr: stderr.slice(0, 500) }, "tar export failed");
    });
    let finished = false;
    return {
      stream: tar.stdout,
      name: `${volume.name}-${cp.name}.tar`,
      done: () => {
        if (finished) return;
        finished = true;
        if (tar.exitCode === null) tar.kill("SIGKILL");
        tar.once("close", () => lease.release());
        if (tar.exitCode !== null || tar.signalCode !== null) lease.release();
      },
    };
  }

  /**
   * Restore in place: the volume becomes exactly the checkpoint, atomically. Refused while
   * anything holds the volume.
   */
  async restore(
    projectId: string,
    volumeRef: string,
    ref: string,
    options: { detachWriters?: (volumeId: string) => Promise<number> } = {},
  ): Promise<void> {
    const { store, volumes } = this.deps;
    const volume = await volumes.find(projectId, volumeRef);
    const cp = await this.find(volume, ref);
    if (options.detachWriters) await options.detachWriters(volume.id);
    const writers = (await store.attachments.liveOfVolume(volume.id)).filter((a) => a.mode === "rw" && a.checkpointId === null);
    if (writers.length > 0) {
      throw new CairnError(
        "VOLUME_BUSY",
        `Volume "${volume.name}" is attached read-write to sandbox ${writers[0]!.sandboxId}; detach it first, or restore with detach`,
      );
    }
    if (!(await store.volumes.transition(volume.id, ["ready"], "restoring"))) {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${volume.name}" is ${volume.status}; retry when it is ready`);
    }
    const opId = newId("op");
    await store.operations.start({ id: opId, volumeId: volume.id, kind: "restore", detail: { checkpointId: cp.id } });
    try {
      await this.deps.checkpointStore.restore({ volumeId: volume.id, checkpointId: cp.id });
      // A checkpoint taken before a grow is smaller: the volume takes the checkpoint's size.
      await store.volumes.update(volume.id, { status: "ready", sizeBytes: cp.sizeBytes });
      await store.operations.finish(opId, "succeeded");
    } catch (err) {
      await store.volumes.transition(volume.id, ["restoring"], "ready");
      await store.operations.finish(opId, "failed", { error: String(err) });
      throw err;
    }
  }
}
