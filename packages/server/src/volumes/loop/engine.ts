/**
 * The volume engine: one sparse filesystem image per volume in the pool, loop-mounted on demand
 * while something holds a lease on it, unmounted after an idle grace period.
 */
import { constants as fsc } from "node:fs";
import { copyFile, mkdir, rename, rm, readdir, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { CairnError, type Filesystem } from "@cairn/protocol";
import { ExecError, run } from "../../host/exec.js";
import { findMount, readMounts } from "../../host/mountinfo.js";
import { KeyedMutex } from "../../host/mutex.js";
import { enableDirectIo, type PoolInfo } from "./pool.js";
import { extentSpace, isZero, listLoops, mkfs, mountedDevice, repairIfDamaged, statUsage } from "./filesystem.js";
import type { GrowMode, Lease, ReconcileReport, VolumeEngine, VolumeReconciler, VolumeUsage } from "../port.js";
import type { CheckpointInfo, CheckpointStore } from "../../checkpoints/port.js";

interface VolumeState {
  refs: number;
  mounted: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  /** Its filesystem failed (read-only now): unmount, check and remount as soon as nothing holds it. */
  damaged?: boolean;
  /** The device of the filesystem mounted at its mount path, to see that it is still there. */
  dev?: number;
}

export interface LoopEngineOptions {
  pool: PoolInfo;
  /** Where volumes are mounted for host-side (file API) access. */
  mountRoot: string;
  idleUnmountMs: number;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
  /** Called with the filesystem's usage right before a volume is unmounted, to keep a cached figure. */
  onUnmount?: (id: string, usage: VolumeUsage) => Promise<void> | void;
}

export const HOST_MOUNT_OPTIONS = "loop,nosymfollow,nodev,nosuid,noexec";
import { setTimeout as sleep } from "node:timers/promises";

export class LoopVolumeEngine implements VolumeEngine, CheckpointStore, VolumeReconciler {
  private readonly states = new Map<string, VolumeState>();
  private readonly lock = new KeyedMutex();
  private closed = false;
  /** Checkpoint views being unmounted after their release: close() waits for them. */
  private readonly viewsUnmounting = new Set<Promise<void>>();

  constructor(private readonly options: LoopEngineOptions) {}

  imagePath(id: string): string {
    return join(this.options.pool.root, "volumes", `${id}.img`);
  }

  mountPath(id: string): string {
    return join(this.options.mountRoot, id);
  }

  private state(id: string): VolumeState {
    let s = this.states.get(id);
    if (!s) {
      s = { refs: 0, mounted: false, idleTimer: undefined };
      this.states.set(id, s);
    }
    return s;
  }

  async create({ id, sizeBytes, filesystem }: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<void> {
    const tmp = join(this.options.pool.root, "tmp", `${id}.img`);
    try {
      await run("truncate", ["-s", String(sizeBytes), tmp]);
      await mkfs(tmp, filesystem);
      await rename(tmp, this.imagePath(id));
    } catch (err) {
      await rm(tmp, { force: true });
      if (err instanceof ExecError && /No space left/i.test(err.stderr)) {
        throw new CairnError("POOL_FULL", "The storage pool has no room for a new volume", { cause: err });
      }
      throw err;
    }
  }

  async destroy(id: string): Promise<void> {
    await this.lock.run(id, async () => {
      const s = this.state(id);
      if (s.refs > 0) throw new CairnError("VOLUME_BUSY", "The volume is in use; retry when its requests have finished");
      clearTimeout(s.idleTimer);
      await this.unmountLocked(id);
      await rm(this.imagePath(id), { force: true });
      this.states.delete(id);
    });
  }

  async acquire(id: string): Promise<Lease> {
    if (this.closed) throw new CairnError("UNAVAILABLE", "cairnd is shutting down");
    await this.lock.run(id, async () => {
      const s = this.state(id);
      if (s.mounted && s.damaged && s.refs === 0) await this.unmountLocked(id);
      // Never hand out a lease on an empty mount point: a mount that went away behind our back
      // (an operator, another process in the namespace) would send writes to the host's disk.
      // statSync: the root of a mounted filesystem is always in memory, and this runs per request.
      if (s.mounted && mountedDevice(this.mountPath(id)) !== s.dev) {
        this.options.log?.warn({ volumeId: id }, "the volume was no longer mounted (unmounted behind cairnd's back): mounting it again");
        s.mounted = false;
      }
      if (!s.mounted) {
        await this.mountLocked(id);
        s.damaged = false;
      }
      s.refs++;
      clearTimeout(s.idleTimer);
      s.idleTimer = undefined;
    });
    let released = false;
    return {
      path: this.mountPath(id),
      symlinksRefused: true, // HOST_MOUNT_OPTIONS has nosymfollow
      release: () => {
        if (released) return;
        released = true;
        this.releaseRef(id);
      },
    };
  }

  markDamaged(id: string): void {
    this.state(id).damaged = true;
  }

  private releaseRef(id: string): void {
    const s = this.state(id);
    s.refs--;
    if (s.refs > 0 || this.closed) return;
    clearTimeout(s.idleTimer);
    s.idleTimer = setTimeout(() => {
      void this.lock
        .run(id, async () => {
          if (s.refs === 0 && s.mounted) await this.unmountLocked(id);
        })
        .catch((err) => this.options.log?.warn({ err, volumeId: id }, "idle unmount failed; will retry on next release"));
    }, this.options.idleUnmountMs);
    s.idleTimer.unref();
  }

  private async mountLocked(id: string): Promise<void> {
    const target = this.mountPath(id);
    const s = this.state(id);
    if (await findMount(target)) {
      s.mounted = true; // left by an earlier cairnd in the same namespace: adopt it
      s.dev = (await stat(target)).dev;
      return;
    }
    await mkdir(target, { recursive: true, mode: 0o700 });
    await this.checkBeforeMount(id);
    try {
      await run("mount", ["-o", HOST_MOUNT_OPTIONS, this.imagePath(id), target]);
    } catch (err) {
      throw new Error(`mounting volume ${id} failed`, { cause: err });
    }
    const m = await findMount(target);
    if (m) await enableDirectIo(m.source);
    s.mounted = true;
    s.dev = (await stat(target)).dev;
  }

  private async checkBeforeMount(id: string): Promise<void> {
    await repairIfDamaged(this.imagePath(id), id, this.options.log);
  }

  private async unmountLocked(id: string): Promise<void> {
    const target = this.mountPath(id);
    const s = this.state(id);
    if (this.options.onUnmount && (await findMount(target))) {
      const usage = await statUsage(target).catch(() => undefined);
      if (usage) await Promise.resolve(this.options.onUnmount(id, usage)).catch(() => undefined);
    }
    for (let attempt = 0; ; attempt++) {
      if (!(await findMount(target))) break;
      try {
        await run("umount", [target]);
        break;
      } catch (err) {
        // EBUSY is a normal case (docs/ARCHITECTURE.md "Volume engine"): something still holds a file open. Retry, then report.
        if (attempt >= 20) {
          throw new CairnError("VOLUME_BUSY", `Volume ${id} is still busy and cannot be unmounted`, { cause: err });
        }
        await sleep(50 * (attempt + 1));
      }
    }
    s.mounted = false;
    await rm(target, { recursive: false, force: true }).catch(() => undefined);
  }

  async grow({ id, sizeBytes, filesystem }: { id: string; sizeBytes: number; filesystem: Filesystem }): Promise<GrowMode> {
    return this.lock.run(id, async () => {
      const image = this.imagePath(id);
      const current = (await stat(image)).size;
      if (sizeBytes < current) {
        throw new CairnError("VOLUME_SHRINK_NOT_ALLOWED", "Volumes can grow but not shrink");
      }
      await truncate(image, sizeBytes);
      const s = this.state(id);
      if (s.mounted) {
        const m = await findMount(this.mountPath(id));
        if (m) {
          await run("losetup", ["-c", m.source]);
          try {
            if (filesystem === "xfs") await run("xfs_growfs", [this.mountPath(id)]);
            else await run("resize2fs", [m.source]);
            return "online";
          } catch (err) {
            if (s.refs > 0) {
              throw new CairnError(
                "VOLUME_BUSY",
                "This host cannot grow the filesystem while it is in use; retry when the volume is idle",
                { cause: err },
              );
            }
            this.options.log?.info({ volumeId: id, err: String(err) }, "online grow failed; growing offline");
            await this.unmountLocked(id);
          }
        }
      }
      if (filesystem === "xfs") {
        // XFS only grows mounted: mount briefly, grow, unmount.
        await this.mountLocked(id);
        try {
          await run("xfs_growfs", [this.mountPath(id)]);
        } finally {
          await this.unmountLocked(id);
        }
      } else {
        await run("e2fsck", ["-f", "-p", image]).catch((err: ExecError) => {
          // exit 1 = errors corrected: fine for a resize.
          if (err.exitCode !== 1) throw err;
        });
        await run("resize2fs", [image]);
      }
      return "offline";
    });
  }

  async usage(id: string): Promise<VolumeUsage | undefined> {
    const s = this.states.get(id);
    if (!s?.mounted) return undefined;
    // Not under the volume's lock (a GET must not wait for a checkpoint): an idle unmount may be
    // under way, and statfs of a bare mount point measures the host's filesystem instead (a
    // 16 MiB volume once reported 23 GiB used). The volume's device on both sides of the statfs
    // says the figure is the volume's.
    const path = this.mountPath(id);
    const onVolume = () => stat(path).then((st) => st.dev === s.dev, () => false);
    if (!(await onVolume())) return undefined;
    const usage = await statUsage(path).catch(() => undefined);
    return usage && (await onVolume()) ? usage : undefined;
  }

  async checkpointImage(volumeId: string, checkpointId: string): Promise<string> {
    return this.checkpointPath(volumeId, checkpointId);
  }

  private checkpointPath(volumeId: string, checkpointId: string): string {
    return join(this.options.pool.root, "checkpoints", volumeId, `${checkpointId}.img`);
  }

  async checkpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<CheckpointInfo> {
    return this.lock.run(volumeId, async () => {
      const target = this.checkpointPath(volumeId, checkpointId);
      await mkdir(join(this.options.pool.root, "checkpoints", volumeId), { recursive: true });
      const tmp = join(this.options.pool.root, "tmp", `${volumeId}.${checkpointId}.img`);
      const mounted = this.state(volumeId).mounted && (await findMount(this.mountPath(volumeId))) !== undefined;
      let frozenMs = 0;
      try {
        if (mounted) {
          // Crash-consistent: writers block for the clone only, then continue.
          const t0 = performance.now();
          await run("fsfreeze", ["--freeze", this.mountPath(volumeId)]);
          try {
            await copyFile(this.imagePath(volumeId), tmp, fsc.COPYFILE_FICLONE_FORCE);
          } finally {
            await run("fsfreeze", ["--unfreeze", this.mountPath(volumeId)]);
            frozenMs = performance.now() - t0;
          }
        } else {
          await copyFile(this.imagePath(volumeId), tmp, fsc.COPYFILE_FICLONE_FORCE);
        }
        await rename(tmp, target);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      return { sizeBytes: (await stat(target)).size, frozenMs };
    });
  }

  async restore({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<void> {
    await this.lock.run(volumeId, async () => {
      const s = this.state(volumeId);
      if (s.refs > 0) throw new CairnError("VOLUME_BUSY", "The volume is in use; restore it when nothing has it open");
      clearTimeout(s.idleTimer);
      await this.unmountLocked(volumeId);
      const tmp = join(this.options.pool.root, "tmp", `${volumeId}.restore.img`);
      try {
        await copyFile(this.checkpointPath(volumeId, checkpointId), tmp, fsc.COPYFILE_FICLONE_FORCE);
        // The rename is the commit point: a crash before it leaves the old volume, after it the new.
        await rename(tmp, this.imagePath(volumeId));
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    });
  }

  async fork({ volumeId, checkpointId, newVolumeId }: { volumeId: string; checkpointId: string; newVolumeId: string }): Promise<void> {
    const tmp = join(this.options.pool.root, "tmp", `${newVolumeId}.img`);
    try {
      await copyFile(this.checkpointPath(volumeId, checkpointId), tmp, fsc.COPYFILE_FICLONE_FORCE);
      await rename(tmp, this.imagePath(newVolumeId));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async deleteCheckpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<void> {
    await rm(this.checkpointPath(volumeId, checkpointId), { force: true });
  }

  async deleteCheckpoints(volumeId: string): Promise<void> {
    await rm(join(this.options.pool.root, "checkpoints", volumeId), { recursive: true, force: true });
  }

  async allocatedBytes({ volumeId, checkpointId }: { volumeId: string; checkpointId?: string }): Promise<number> {
    const path = checkpointId === undefined ? this.imagePath(volumeId) : this.checkpointPath(volumeId, checkpointId);
    const st = await stat(path).catch(() => undefined);
    return st ? st.blocks * 512 : 0;
  }

  async checkpointSpace({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }) {
    return extentSpace(this.checkpointPath(volumeId, checkpointId));
  }

  async mountCheckpoint({ volumeId, checkpointId }: { volumeId: string; checkpointId: string }): Promise<Lease> {
    const target = join(this.options.mountRoot, `${volumeId}.${checkpointId}.${process.hrtime.bigint()}`);
    await mkdir(target, { recursive: true, mode: 0o700 });
    try {
      // ro loop device and mount: nothing can change the checkpoint, not even a journal replay.
      await run("mount", ["-o", `${HOST_MOUNT_OPTIONS},ro`, this.checkpointPath(volumeId, checkpointId), target]);
    } catch (err) {
      await rm(target, { recursive: true, force: true });
      throw err;
    }
    let released = false;
    return {
      path: target,
      release: () => {
        if (released) return;
        released = true;
        const unmounting = (async () => {
          for (let i = 0; i < 20; i++) {
            try {
              await run("umount", [target]);
              break;
            } catch {
              await sleep(100 * (i + 1));
            }
          }
          await rm(target, { recursive: false, force: true }).catch(() => undefined);
        })();
        this.viewsUnmounting.add(unmounting);
        void unmounting.finally(() => this.viewsUnmounting.delete(unmounting));
      },
    };
  }

  async importImage({ id, body, maxBytes }: { id: string; body: AsyncIterable<Uint8Array>; maxBytes: number }) {
    const tmp = join(this.options.pool.root, "tmp", `${id}.import.img`);
    const { open } = await import("node:fs/promises");
    const fh = await open(tmp, "w", 0o600);
    let size = 0;
    try {
      // Hole-punching writer: all-zero 64 KiB blocks are skipped, so the image stays sparse.
      const BLOCK = 64 * 1024;
      let carry: Buffer = Buffer.alloc(0);
      const flush = async (buf: Buffer, final: boolean) => {
        let off = 0;
        while (buf.length - off >= BLOCK || (final && off < buf.length)) {
          const len = Math.min(BLOCK, buf.length - off);
          const block = buf.subarray(off, off + len);
          if (!isZero(block)) await fh.write(block, 0, len, size);
          size += len;
          off += len;
        }
        return buf.subarray(off);
      };
      for await (const chunk of body) {
        if (size + carry.length + chunk.byteLength > maxBytes) {
          throw new CairnError("INVALID_SIZE", `The image is larger than this server's largest volume (${maxBytes} bytes)`);
        }
        carry = await flush(Buffer.concat([carry, Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)]), false);
      }
      await flush(carry, true);
      await fh.truncate(size);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") throw new CairnError("POOL_FULL", "The storage pool is full", { cause: err });
      throw err;
    }
    await fh.close();
    try {
      const { stdout } = await run("blkid", ["-p", "-o", "value", "-s", "TYPE", tmp]).catch(() => ({ stdout: "" }));
      const filesystem = stdout.trim();
      if (filesystem !== "ext4" && filesystem !== "xfs") {
        throw new CairnError("INVALID_REQUEST", `The upload is not an ext4 or XFS image (found ${filesystem || "no filesystem"})`);
      }
      // Refuse images whose filesystem is not clean before the kernel ever mounts them.
      const check = filesystem === "ext4" ? run("e2fsck", ["-fn", tmp]) : run("xfs_repair", ["-n", "-f", tmp]);
      await check.catch((err) => {
        throw new CairnError("INVALID_REQUEST", `The uploaded ${filesystem} image is damaged; check it with fsck first`, { cause: err });
      });
      await rename(tmp, this.imagePath(id));
      return { sizeBytes: size, filesystem: filesystem as Filesystem };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async imageSize(id: string): Promise<number | undefined> {
    return stat(this.imagePath(id)).then((s) => s.size, () => undefined);
  }

  /**
   * Make the machine match what is known: unmount volume mounts nothing holds (a crashed cairnd's
   * mounts survive in the pinned namespace), detach our loop devices no mount uses, delete images
   * and temp files of volumes that do not exist.
   */
  async reconcile(known: ReadonlySet<string>, checkpoints: ReadonlyMap<string, ReadonlySet<string>> = new Map()): Promise<ReconcileReport> {
    const report: ReconcileReport = { unmounted: [], detachedLoops: [], removedImages: [] };
    const prefix = this.options.mountRoot + "/";
    for (const m of await readMounts()) {
      if (!m.mountPoint.startsWith(prefix)) continue;
      const id = m.mountPoint.slice(prefix.length);
      if (id.includes("/")) continue;
      await this.lock.run(id, async () => {
        const s = this.state(id);
        if (s.refs > 0) return;
        s.mounted = true;
        await this.unmountLocked(id);
        report.unmounted.push(id);
      });
    }
    const volumesDir = join(this.options.pool.root, "volumes");
    const mountedSources = new Set((await readMounts()).map((m) => m.source));
    for (const loop of await listLoops()) {
      if (!loop.backFile.startsWith(volumesDir + "/") || mountedSources.has(loop.name)) continue;
      await run("losetup", ["-d", loop.name]).catch(() => undefined);
      report.detachedLoops.push(loop.name);
    }
    for (const file of await readdir(volumesDir)) {
      const id = file.replace(/\.img$/, "");
      if (known.has(id) || (this.states.get(id)?.refs ?? 0) > 0) continue;
      await rm(join(volumesDir, file), { force: true });
      report.removedImages.push(id);
    }
    const cpRoot = join(this.options.pool.root, "checkpoints");
    await mkdir(cpRoot, { recursive: true });
    for (const volumeId of await readdir(cpRoot)) {
      const keep = checkpoints.get(volumeId);
      if (!keep) {
        await rm(join(cpRoot, volumeId), { recursive: true, force: true });
        continue;
      }
      for (const file of await readdir(join(cpRoot, volumeId))) {
        if (!keep.has(file.replace(/\.img$/, ""))) {
          await rm(join(cpRoot, volumeId, file), { force: true });
          report.removedImages.push(`${volumeId}/${file}`);
        }
      }
    }
    const tmpDir = join(this.options.pool.root, "tmp");
    for (const file of await readdir(tmpDir)) await rm(join(tmpDir, file), { force: true, recursive: true });
    return report;
  }

  /** Unmount every volume nothing holds. In-flight work must have finished (the HTTP server closes first). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.viewsUnmounting);
    for (const [id, s] of this.states) {
      clearTimeout(s.idleTimer);
      await this.lock.run(id, async () => {
        if (s.mounted && s.refs === 0) await this.unmountLocked(id);
      }).catch((err) => this.options.log?.warn({ err, volumeId: id }, "unmount at shutdown failed"));
    }
  }
}
