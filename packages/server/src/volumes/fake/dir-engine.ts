/**
 * A volume engine that keeps each volume as a plain directory and each checkpoint as a copy of
 * one. No root, no loop devices, no quota: for tests of the services above the port (it passes
 * the same `engine-suite.ts` as the loop engine, minus what only a filesystem image can do).
 */
import { cp, mkdir, readdir, readFile, rm, rename, lstat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CairnError, type Filesystem } from "@cairn/protocol";
import type { GrowMode, Lease, ReconcileReport, VolumeEngine, VolumeReconciler, VolumeUsage } from "../port.js";
import type { CheckpointInfo, CheckpointStore } from "../../checkpoints/port.js";
import { KeyedMutex } from "../../host/mutex.js";

interface Meta {
  sizeBytes: number;
  filesystem: Filesystem;
}

export interface DirEngineOptions {
  root: string;
  /** Called with the volume's usage when its last lease is released (as the loop engine does at unmount). */
  onUnmount?: (id: string, usage: VolumeUsage) => Promise<void> | void;
}

/** Bytes the files under a directory take (apparent sizes; the fake has no blocks to count). */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else total += (await lstat(p).catch(() => ({ size: 0 }))).size;
    }
  };
  await walk(dir);
  return total;
}

export class DirVolumeEngine implements VolumeEngine, CheckpointStore, VolumeReconciler {
  private readonly refs = new Map<string, number>();
  private readonly lock = new KeyedMutex();
  private closed = false;

  constructor(private readonly options: DirEngineOptions) {}

  static async open(options: DirEngineOptions): Promise<DirVolumeEngine> {
    await mkdir(join(options.root, "volumes"), { recursive: true });
    await mkdir(join(options.root, "checkpoints"), { recursive: true });
    return new DirVolumeEngine(options);
  }

  private dir(id: string): string {
    return join(this.options.root, "volumes", id);
  }

  private cpDir(volumeId: string, checkpointId: string): string {
    return join(this.options.root, "checkpoints", volumeId, checkpointId);
  }

  private async meta(path: string): Promise<Meta | undefined> {
    return readFile(path + ".json", "utf8").then((s) => JSON.parse(s) as Meta, () => undefined);
  }

  private async requireMeta(id: string): Promise<Meta> {
    const m = await this.meta(this.dir(id));
    if (!m) throw new Error(`volume ${id} does not exist in this engine`);
    return m;
  }

  async create({ id, sizeBytes, filesystem }: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<void> {
    await mkdir(this.dir(id));
    await writeFile(this.dir(id) + ".json", JSON.stringify({ sizeBytes, filesystem } satisfies Meta));
  }

  async destroy(id: string): Promise<void> {
    await this.lock.run(id, async () => {
      if ((this.refs.get(id) ?? 0) > 0) throw new CairnError("VOLUME_BUSY", "The volume is in use; retry when its requests have finished");
      await rm(this.dir(id), { recursive: true, force: true });
      await rm(this.dir(id) + ".json", { force: true });
    });
  }

  async acquire(id: string): Promise<Lease> {
    if (this.closed) throw new CairnError("UNAVAILABLE", "cairnd is shutting down");
    await this.lock.run(id, async () => {
      await this.requireMeta(id);
      this.refs.set(id, (this.refs.get(id) ?? 0) + 1);
    });
    let released = false;
    return {
      path: this.dir(id),
      release: () => {
        if (released) return;
        released = true;
        const left = (this.refs.get(id) ?? 1) - 1;
        if (left > 0) {
          this.refs.set(id, left);
          return;
        }
        this.refs.delete(id);
        void this.usageOf(id).then((u) => u && this.options.onUnmount?.(id, u)).catch(() => undefined);
      },
    };
  }

  markDamaged(): void {}

  async grow({ id, sizeBytes }: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<GrowMode> {
    return this.lock.run(id, async () => {
      const m = await this.requireMeta(id);
      if (sizeBytes < m.sizeBytes) throw new CairnError("VOLUME_SHRINK_NOT_ALLOWED", "Volumes can grow but not shrink");
      if (sizeBytes === m.sizeBytes) return "none";
      await writeFile(this.dir(id) + ".json", JSON.stringify({ ...m, sizeBytes }));
      return (this.refs.get(id) ?? 0) > 0 ? "online" : "offline";
    });
  }

  private async usageOf(id: string): Promise<VolumeUsage | undefined> {
    const m = await this.meta(this.dir(id));
    if (!m) return undefined;
    const usedBytes = await treeBytes(this.dir(id));
    return { usedBytes, totalBytes: m.sizeBytes, availableBytes: Math.max(0, m.sizeBytes - usedBytes) };
  }

  async usage(id: string): Promise<VolumeUsage | undefined> {
    return (this.refs.get(id) ?? 0) > 0 ? this.usageOf(id) : undefined;
  }

  async imageSize(id: string): Promise<number | undefined> {
    return (await this.meta(this.dir(id)))?.sizeBytes;
  }

  async allocatedBytes({ volumeId, checkpointId }: { volumeId: string; checkpointId?: string }): Promise<number> {
    const dir = checkpointId ? this.cpDir(volumeId, checkpointId) : this.dir(volumeId);
    return (await this.meta(dir)) ? treeBytes(dir) : 0;
  }

  async importImage(): Promise<{ sizeBytes: number; filesystem: Filesystem }> {
    throw new CairnError("INVALID_REQUEST", "This volume engine keeps volumes as directories and cannot import a filesystem image; import a tar");
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async checkpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<CheckpointInfo> {
    return this.lock.run(volumeId, async () => {
      const m = await this.requireMeta(volumeId);
      const target = this.cpDir(volumeId, checkpointId);
      await mkdir(join(this.options.root, "checkpoints", volumeId), { recursive: true });
      await cp(this.dir(volumeId), target + ".tmp", { recursive: true, verbatimSymlinks: true });
      await writeFile(target + ".json", JSON.stringify(m));
      await rename(target + ".tmp", target);
      return { sizeBytes: m.sizeBytes, frozenMs: 0 };
    });
  }

  async restore({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<void> {
    await this.lock.run(volumeId, async () => {
      if ((this.refs.get(volumeId) ?? 0) > 0) throw new CairnError("VOLUME_BUSY", "The volume is in use; restore it when nothing has it open");
      const source = this.cpDir(volumeId, checkpointId);
      const m = await this.meta(source);
      if (!m) throw new Error(`checkpoint ${checkpointId} of ${volumeId} does not exist in this engine`);
      await rm(this.dir(volumeId) + ".restore", { recursive: true, force: true });
      await cp(source, this.dir(volumeId) + ".restore", { recursive: true, verbatimSymlinks: true });
      await rm(this.dir(volumeId), { recursive: true, force: true });
      await rename(this.dir(volumeId) + ".restore", this.dir(volumeId));
      await writeFile(this.dir(volumeId) + ".json", JSON.stringify(m));
    });
  }

  async fork({ volumeId, checkpointId, newVolumeId }: { volumeId: string; checkpointId: string; newVolumeId: string }): Promise<void> {
    const source = this.cpDir(volumeId, checkpointId);
    const m = await this.meta(source);
    if (!m) throw new Error(`checkpoint ${checkpointId} of ${volumeId} does not exist in this engine`);
    await cp(source, this.dir(newVolumeId), { recursive: true, verbatimSymlinks: true, errorOnExist: true });
    await writeFile(this.dir(newVolumeId) + ".json", JSON.stringify(m));
  }

  async deleteCheckpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<void> {
    await rm(this.cpDir(volumeId, checkpointId), { recursive: true, force: true });
    await rm(this.cpDir(volumeId, checkpointId) + ".json", { force: true });
  }

  async deleteCheckpoints(volumeId: string): Promise<void> {
    await rm(join(this.options.root, "checkpoints", volumeId), { recursive: true, force: true });
  }

  async checkpointSpace({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }) {
    const bytes = await this.allocatedBytes({ volumeId, checkpointId });
    return { allocatedBytes: bytes, exclusiveBytes: bytes };
  }

  async checkpointImage(): Promise<string> {
    throw new CairnError("INVALID_REQUEST", "This engine keeps checkpoints as directories, not images; export the checkpoint as a tar");
  }

  async mountCheckpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<Lease> {
    const path = this.cpDir(volumeId, checkpointId);
    if (!(await this.meta(path))) throw new Error(`checkpoint ${checkpointId} of ${volumeId} does not exist in this engine`);
    return { path, release: () => undefined };
  }

  async reconcile(known: ReadonlySet<string>, checkpoints: ReadonlyMap<string, ReadonlySet<string>> = new Map()): Promise<ReconcileReport> {
    const report: ReconcileReport = { unmounted: [], detachedLoops: [], removedImages: [] };
    const volumesDir = join(this.options.root, "volumes");
    for (const name of await readdir(volumesDir)) {
      const id = name.replace(/\.(json|restore)$/, "");
      if (known.has(id) || (this.refs.get(id) ?? 0) > 0) continue;
      await rm(join(volumesDir, name), { recursive: true, force: true });
      if (!report.removedImages.includes(id)) report.removedImages.push(id);
    }
    const cpRoot = join(this.options.root, "checkpoints");
    for (const volumeId of await readdir(cpRoot)) {
      const keep = checkpoints.get(volumeId);
      if (!keep) {
        await rm(join(cpRoot, volumeId), { recursive: true, force: true });
        continue;
      }
      for (const name of await readdir(join(cpRoot, volumeId))) {
        const id = name.replace(/\.(json|tmp)$/, "");
        if (keep.has(id) && !name.endsWith(".tmp")) continue;
        await rm(join(cpRoot, volumeId, name), { recursive: true, force: true });
        if (!name.endsWith(".json")) report.removedImages.push(`${volumeId}/${id}`);
      }
    }
    return report;
  }
}
