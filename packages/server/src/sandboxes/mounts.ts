/**
 * A sandbox's mounts of volumes: the claims (access modes, regions, checkpoints, subpaths) and
 * the leases behind them, taken and given back, and the unmount of one from a running sandbox.
 */
import { lstat, mkdir, stat } from "node:fs/promises";
import { CairnError, normalizeVolumePath, type MountRequest } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { Logger } from "../logger.js";
import { deviceString } from "../host/devices.js";
import { resolveInVolume } from "../files/resolve.js";
import type { AttachmentRecord, MetadataStore, SandboxRecord, VolumeRecord } from "../storage/metadata-store.js";
import type { Lease, VolumeEngine } from "../volumes/port.js";
import type { CheckpointStore } from "../checkpoints/port.js";
import type { CheckpointService } from "../checkpoints/service.js";
import type { MountedVolume, SandboxDriver, VolumeMount } from "./port.js";

/** Paths a volume may not be mounted on: they are the sandbox's own machinery. */
const RESERVED = ["/proc", "/sys", "/dev", "/run/cairn", "/usr", "/etc", "/tmp"];

/** A mount path from a request: absolute, normalised, not on the sandbox's own machinery. */
export function checkMountPath(raw: string): string {
  if (!raw.startsWith("/")) throw new CairnError("INVALID_MOUNT", `Mount path ${JSON.stringify(raw)} must be absolute, e.g. /workspace`);
  let path: string;
  try {
    path = normalizeVolumePath(raw);
  } catch (err) {
    throw new CairnError("INVALID_MOUNT", `Mount path ${JSON.stringify(raw)} is not a valid path: ${(err as Error).message}`);
  }
  if (path === "/" || RESERVED.some((r) => path === r || path.startsWith(r + "/"))) {
    throw new CairnError("INVALID_MOUNT", `Volumes cannot be mounted on ${path}; pick a path such as /workspace or /data`);
  }
  return path;
}

export interface MountsDeps {
  store: MetadataStore;
  engine: VolumeEngine;
  checkpointStore: CheckpointStore;
  checkpoints: CheckpointService;
  driver: SandboxDriver;
  log: Logger;
  region: string;
}

export class Mounts {
  /** Leases held by live attachments, by attachment id. */
  private readonly leases = new Map<string, Lease>();

  constructor(private readonly deps: MountsDeps) {}

  /** Claim an attachment: the access-mode rules and the region rule, atomically. */
  async claim(sb: SandboxRecord, volume: VolumeRecord, m: MountRequest, mountPath: string): Promise<AttachmentRecord> {
    const { store, region } = this.deps;
    if (volume.region !== region) {
      throw new CairnError("REGION_MISMATCH", `Volume "${volume.name}" is in region ${volume.region}`);
    }
    if (volume.status !== "ready" && volume.status !== "resizing") {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${volume.name}" is ${volume.status}; retry in a moment`);
    }
    let checkpointId: string | null = null;
    if (m.checkpoint !== undefined) {
      checkpointId = (await this.deps.checkpoints.find(volume, m.checkpoint)).id;
      if (m.mode === "rw") throw new CairnError("INVALID_MOUNT", "A checkpoint mounts read-only; drop mode=rw");
    }
    const mode: "rw" | "ro" = checkpointId || volume.accessMode === "ReadOnlyMany" ? "ro" : (m.mode ?? "rw");
    if (volume.accessMode === "ReadOnlyMany" && m.mode === "rw") {
      throw new CairnError("INVALID_MOUNT", `Volume "${volume.name}" is ReadOnlyMany: it mounts read-only only`);
    }
    let subpath = "/";
    if (m.subpath !== undefined) {
      try {
        subpath = normalizeVolumePath(m.subpath);
      } catch (err) {
        throw new CairnError("INVALID_MOUNT", `subpath ${JSON.stringify(m.subpath)}: ${(err as Error).message}`);
      }
    }
    const at = new Date().toISOString();
    const record: AttachmentRecord = {
      id: newId("att"),
      projectId: sb.projectId,
      sandboxId: sb.id,
      volumeId: volume.id,
      checkpointId,
      mountPath,
      mode,
      subpath,
      state: "pending",
      error: null,
      // A checkpoint view never claims the volume itself.
      exclusive: volume.accessMode === "ReadWriteOnce" && checkpointId === null,
      createdAt: at,
      updatedAt: at,
    };
    if (!(await store.attachments.insert(record))) {
      throw new CairnError("VOLUME_ALREADY_ATTACHED", `Volume "${volume.name}" is already attached`);
    }
    return record;
  }

  /** Take the lease behind an attachment and give the host path the sandbox binds. */
  async source(a: AttachmentRecord): Promise<VolumeMount> {
    const { engine } = this.deps;
    const lease = a.checkpointId
      ? await this.deps.checkpointStore.mountCheckpoint({ volumeId: a.volumeId, checkpointId: a.checkpointId })
      : await engine.acquire(a.volumeId);
    this.leases.get(a.id)?.release();
    this.leases.set(a.id, lease);
    let source = lease.path;
    if (a.subpath !== "/") {
      const resolved = await resolveInVolume(lease.path, a.subpath, { followLast: true });
      if (a.mode === "rw" && !a.checkpointId) await mkdir(resolved.hostPath, { recursive: true });
      const st = await lstat(resolved.hostPath).catch(() => undefined);
      if (!st?.isDirectory()) {
        throw new CairnError("INVALID_MOUNT", `subpath ${a.subpath} is not a directory of the volume`);
      }
      source = resolved.hostPath;
    }
    return { source, destination: a.mountPath, readonly: a.mode === "ro" };
  }

  release(attachmentId: string): void {
    this.leases.get(attachmentId)?.release();
    this.leases.delete(attachmentId);
  }

  /** Which filesystem an attachment put in its sandbox, and where. */
  private async mountedVolume(a: AttachmentRecord): Promise<MountedVolume> {
    const lease = this.leases.get(a.id);
    if (!lease) throw new CairnError("INTERNAL", `attachment ${a.id} holds no lease`);
    return { destination: a.mountPath, device: deviceString((await stat(lease.path)).dev) };
  }

  /**
   * Take a mounted attachment out of its running sandbox. The claim and the lease are given up
   * only after the unmount really happened: when the sandbox moved or replaced the mount, the
   * attachment keeps both and records why (it reads as failed until the sandbox stops).
   */
  async unmount(a: AttachmentRecord, force: boolean): Promise<void> {
    try {
      await this.deps.driver.detach(a.sandboxId, await this.mountedVolume(a), { force });
    } catch (err) {
      if (err instanceof CairnError && err.code === "MOUNT_CHANGED") {
        await this.deps.store.attachments.update(a.id, { error: err.message });
        this.deps.log.warn({ sandboxId: a.sandboxId, attachmentId: a.id, mountPath: a.mountPath }, "detach refused: the sandbox moved or replaced the mount");
      }
      throw err;
    }
  }

  /**
   * Force-detach every read-write attachment of a volume (for a restore with `detach`): running
   * sandboxes lose the mount (their processes that use it are killed), hibernated ones will resume
   * without it. All end released; a sandbox that moved its mount fails the restore (MOUNT_CHANGED).
   */
  async detachWriters(volumeId: string): Promise<number> {
    const { store } = this.deps;
    let n = 0;
    for (const a of await store.attachments.liveOfVolume(volumeId)) {
      if (a.mode !== "rw" || a.checkpointId !== null) continue;
      if (a.state === "mounted") await this.unmount(a, true);
      this.release(a.id);
      await store.attachments.update(a.id, { state: "released" });
      n++;
    }
    return n;
  }
}
