/** The volume lifecycle: create, get, list, update (labels, grow), delete, and start-up reconciliation. */
import {
  CairnError,
  DEFAULT_SIZE_BYTES,
  GiB,
  MiB,
  NAME_IS_ID_MESSAGE,
  VOLUME_FIELDS,
  formatSize,
  type CreateVolumeRequest,
  type Filesystem,
  type ResizeResult,
  type UpdateVolumeRequest,
  type Volume,
  type VolumeList,
} from "@cairn/protocol";
import type { Config } from "../config.js";
import { ID_PATTERN, newId } from "../ids.js";
import type { Logger } from "../logger.js";
import type { MetadataStore, VolumeRecord } from "../storage/metadata-store.js";
import { MIN_FS_BYTES, type Lease, type VolumeEngine, type VolumeReconciler } from "./port.js";
import type { CheckpointStore } from "../checkpoints/port.js";
import { Readable } from "node:stream";
import { extractArchive } from "../files/archive.js";
import type { PoolCapacity } from "./capacity.js";

export interface VolumeServiceDeps {
  store: MetadataStore;
  engine: VolumeEngine & VolumeReconciler;
  checkpointStore: CheckpointStore;
  config: Pick<Config, "region" | "maxVolumeBytes">;
  log: Logger;
  /** Admission: a volume or a grow only while all that is promised fits in the pool. */
  capacity: Pick<PoolCapacity, "admit">;
}

import { setTimeout as sleep } from "node:timers/promises";

export class VolumeService {
  constructor(private readonly deps: VolumeServiceDeps) {}

  /** Find a volume of the project by id or name; another project's volume is simply not found. */
  async find(projectId: string, ref: string, options: { includeDeleted?: boolean } = {}): Promise<VolumeRecord> {
    const { store } = this.deps;
    const byId = ID_PATTERN.test(ref) ? await store.volumes.get(projectId, { id: ref }) : undefined;
    const v = byId ?? (await store.volumes.get(projectId, { name: ref }));
    // A deleted volume kept for its checkpoints is found by id, and only where its checkpoints are used.
    if (!v || (v.status === "deleted" && !(options.includeDeleted && byId))) {
      throw new CairnError("VOLUME_NOT_FOUND", `Volume "${ref}" not found`);
    }
    return v;
  }

  async toWire(v: VolumeRecord): Promise<Volume> {
    const usage = v.status === "ready" || v.status === "resizing" ? await this.deps.engine.usage(v.id) : undefined;
    return { ...v, usedBytes: usage?.usedBytes ?? v.usedBytes };
  }

  resolveSize(req: { sizeGb?: number | undefined; sizeBytes?: number | undefined }, filesystem: "ext4" | "xfs"): number {
    if (req.sizeGb !== undefined && req.sizeBytes !== undefined) {
      throw new CairnError("INVALID_SIZE", "Give sizeGb or sizeBytes, not both");
    }
    const { maxVolumeBytes } = this.deps.config;
    let size = req.sizeGb !== undefined ? req.sizeGb * GiB : req.sizeBytes ?? DEFAULT_SIZE_BYTES;
    size = Math.ceil(size / MiB) * MiB;
    const min = MIN_FS_BYTES[filesystem];
    if (size < min) {
      throw new CairnError("INVALID_SIZE", `Size must be at least ${formatSize(min)} for ${filesystem}`);
    }
    if (size > maxVolumeBytes) {
      throw new CairnError("INVALID_SIZE", `Size must be at most ${formatSize(maxVolumeBytes)} (this server's limit)`);
    }
    return size;
  }

  async create(projectId: string, req: CreateVolumeRequest): Promise<{ volume: Volume; created: boolean }> {
    const { store, engine, config, log } = this.deps;
    const source = req.fromCheckpoint !== undefined ? await this.findCheckpointSource(projectId, req.fromCheckpoint) : undefined;
    if (source && req.filesystem !== undefined && req.filesystem !== source.volume.filesystem) {
      throw new CairnError("INVALID_REQUEST", `A fork keeps the filesystem of its source (${source.volume.filesystem})`);
    }
    const filesystem = source?.volume.filesystem ?? req.filesystem ?? "ext4";
    const requested = req.sizeGb !== undefined || req.sizeBytes !== undefined ? this.resolveSize(req, filesystem) : undefined;
    if (source && requested !== undefined && requested < source.checkpoint.sizeBytes) {
      throw new CairnError("INVALID_SIZE", `The checkpoint is ${formatSize(source.checkpoint.sizeBytes)}; a fork of it cannot be smaller`);
    }
    const sizeBytes = requested ?? source?.checkpoint.sizeBytes ?? this.resolveSize(req, filesystem);
    if (req.region !== undefined && req.region !== config.region) {
      throw new CairnError(
        "REGION_MISMATCH",
        `This cairnd serves region ${config.region}; create volumes for region ${req.region} on a host of that region`,
      );
    }
    // Every way in (the API, a sandbox's { path: name } shorthand, an import) comes through here.
    if (ID_PATTERN.test(req.name)) throw new CairnError("INVALID_VOLUME_NAME", `Volume name ${NAME_IS_ID_MESSAGE}`);
    const record = this.newRecord(projectId, req, sizeBytes, filesystem);
    try {
      await this.deps.capacity.admit(sizeBytes, `a ${formatSize(sizeBytes)} volume`, () => store.volumes.insert(record));
    } catch (err) {
      if (err instanceof CairnError && err.code === "VOLUME_ALREADY_EXISTS" && req.ifExists === "return") {
        return { volume: await this.toWire(await this.waitUntilSettled(projectId, req.name)), created: false };
      }
      throw err;
    }
    const opId = newId("op");
    await store.operations.start({
      id: opId,
      volumeId: record.id,
      kind: source ? "fork" : "create",
      detail: { sizeBytes, filesystem, ...(source ? { checkpointId: source.checkpoint.id } : {}) },
    });
    try {
      if (source) {
        await this.deps.checkpointStore.fork({ volumeId: source.volume.id, checkpointId: source.checkpoint.id, newVolumeId: record.id });
        if (sizeBytes > source.checkpoint.sizeBytes) await engine.grow({ id: record.id, sizeBytes, filesystem });
      } else {
        await engine.create({ id: record.id, sizeBytes, filesystem });
      }
      await store.volumes.transition(record.id, ["creating"], "ready");
      await store.operations.finish(opId, "succeeded");
      // A fork holds data it never wrote through cairnd: mount it once so usedBytes is measured
      // (and recorded when it is unmounted), not the 0 of a volume nothing has used yet.
      if (source) (await engine.acquire(record.id)).release();
    } catch (err) {
      log.error({ err, volumeId: record.id }, "volume create failed; rolling back");
      await store.volumes.delete(record.id);
      await store.operations.finish(opId, "failed", { error: String(err) });
      throw err;
    }
    const created = await this.find(projectId, record.id);
    return { volume: await this.toWire(created), created: true };
  }

  private async findCheckpointSource(projectId: string, ref: string) {
    const [volRef, cpRef] = ref.split(":") as [string, string];
    const volume = await this.find(projectId, volRef, { includeDeleted: true });
    const { store } = this.deps;
    const checkpoint =
      (ID_PATTERN.test(cpRef) ? await store.checkpoints.get(volume.id, { id: cpRef }) : undefined) ??
      (await store.checkpoints.get(volume.id, { name: cpRef }));
    if (!checkpoint || checkpoint.status !== "ready") {
      throw new CairnError("CHECKPOINT_NOT_FOUND", `Checkpoint "${cpRef}" of volume "${volume.name}" not found`);
    }
    return { volume, checkpoint };
  }

  /**
   * Create a volume from an upload: a raw ext4/XFS image (`image`, e.g. a checkpoint export) or a
   * tar of files (`tar`) extracted into a new volume. All or nothing: a failed import leaves no volume.
   */
  async importVolume(
    projectId: string,
    req: CreateVolumeRequest & { format: "image" | "tar" },
    body: AsyncIterable<Uint8Array> & NodeJS.ReadableStream,
  ): Promise<Volume> {
    const { store, engine, config } = this.deps;
    if (req.format === "image" && (req.sizeGb !== undefined || req.sizeBytes !== undefined || req.filesystem !== undefined)) {
      throw new CairnError("INVALID_REQUEST", "An image import takes its size and filesystem from the image; drop sizeGb/sizeBytes/filesystem");
    }
    const filesystem = req.filesystem ?? "ext4";
    const sizeBytes = req.format === "tar" ? this.resolveSize(req, filesystem) : 0;
    const record = this.newRecord(projectId, req, sizeBytes, filesystem);
    // An image's size is known only once it is in: it is admitted then (and removed if it does not fit).
    await this.deps.capacity.admit(sizeBytes, `a ${formatSize(sizeBytes)} volume`, () => store.volumes.insert(record));
    const opId = newId("op");
    await store.operations.start({ id: opId, volumeId: record.id, kind: `import-${req.format}`, detail: {} });
    try {
      if (req.format === "image") {
        const r = await engine.importImage({ id: record.id, body, maxBytes: config.maxVolumeBytes });
        await this.deps.capacity.admit(r.sizeBytes, `a ${formatSize(r.sizeBytes)} volume`, () => store.volumes.update(record.id, { sizeBytes: r.sizeBytes }));
        if (r.filesystem !== filesystem) {
          await store.volumes.update(record.id, { filesystem: r.filesystem });
        }
      } else {
        await engine.create({ id: record.id, sizeBytes, filesystem });
        const lease = await engine.acquire(record.id);
        try {
          // The file API's extraction, with its rules: owners dropped, setuid/setgid cleared,
          // devices, fifos and sockets left out, nothing visible until all of it is in.
          await extractArchive(lease.path, "/", "tar", Readable.from(body), { volumeName: req.name }).catch((err: unknown) => {
            if (err instanceof CairnError && err.code === "QUOTA_EXCEEDED") {
              throw new CairnError("QUOTA_EXCEEDED", `The archive does not fit in volume "${req.name}"; nothing was imported. Give a larger size.`, { cause: err });
            }
            if (err instanceof CairnError && err.code === "INVALID_ARCHIVE") throw new CairnError("INVALID_REQUEST", `The upload is not a tar archive tar can extract: ${err.message}`, { cause: err });
            throw err;
          });
        } finally {
          lease.release();
        }
      }
      await store.volumes.transition(record.id, ["creating"], "ready");
      await store.operations.finish(opId, "succeeded");
      if (req.format === "image") (await engine.acquire(record.id)).release(); // measure usedBytes, as after a fork
    } catch (err) {
      await engine.destroy(record.id).catch(() => undefined);
      await store.volumes.delete(record.id);
      await store.operations.finish(opId, "failed", { error: String(err) });
      throw err;
    }
    return this.get(projectId, record.id);
  }

  /** The record of a volume about to be created: `creating` until its image exists. */
  private newRecord(projectId: string, req: CreateVolumeRequest, sizeBytes: number, filesystem: Filesystem): VolumeRecord {
    const at = new Date().toISOString();
    return {
      id: newId("vol"),
      projectId,
      name: req.name,
      region: this.deps.config.region,
      sizeBytes,
      usedBytes: 0,
      filesystem,
      accessMode: req.accessMode ?? "ReadWriteOnce",
      status: "creating",
      labels: req.labels ?? {},
      createdAt: at,
      updatedAt: at,
    };
  }

  /** A create-if-missing racing a create returns the volume once it is ready. */
  private async waitUntilSettled(projectId: string, name: string): Promise<VolumeRecord> {
    for (let i = 0; i < 200; i++) {
      const v = await this.find(projectId, name);
      if (v.status !== "creating") {
        if (v.status === "deleting") throw new CairnError("VOLUME_NOT_READY", `Volume "${name}" is being deleted; retry in a moment`);
        return v;
      }
      await sleep(50);
    }
    throw new CairnError("VOLUME_NOT_READY", `Volume "${name}" is still being created; retry in a moment`);
  }

  async get(projectId: string, ref: string): Promise<Volume> {
    return this.toWire(await this.find(projectId, ref));
  }

  async list(
    projectId: string,
    query: { labels: Record<string, string>; fields: string[] | undefined; limit: number; cursor: string | undefined; deleted?: boolean },
  ): Promise<VolumeList> {
    let afterName: string | undefined;
    if (query.cursor !== undefined) {
      afterName = Buffer.from(query.cursor, "base64url").toString("utf8");
      if (!afterName) throw new CairnError("INVALID_REQUEST", "cursor is not one this server gave out; start again without it");
    }
    const fields = query.fields;
    for (const f of fields ?? []) {
      if (!(VOLUME_FIELDS as string[]).includes(f)) {
        throw new CairnError("INVALID_REQUEST", `Unknown field "${f}"; fields are ${VOLUME_FIELDS.join(", ")}`);
      }
    }
    const rows = await this.deps.store.volumes.list(projectId, { labels: query.labels, limit: query.limit + 1, afterName, deleted: query.deleted === true });
    const page = rows.slice(0, query.limit);
    const items = await Promise.all(
      page.map(async (v) => {
        const wire = fields?.includes("usedBytes") || !fields ? await this.toWire(v) : { ...v };
        return fields ? pick(wire, fields) : wire;
      }),
    );
    const last = page.at(-1);
    return {
      items,
      nextCursor: rows.length > query.limit && last ? Buffer.from(last.name, "utf8").toString("base64url") : null,
    };
  }

  async update(projectId: string, ref: string, req: UpdateVolumeRequest): Promise<ResizeResult> {
    const { store, engine, log } = this.deps;
    let v = await this.find(projectId, ref);
    if (req.labels !== undefined) v = (await store.volumes.update(v.id, { labels: req.labels }))!;
    if (req.sizeBytes === undefined && req.sizeGb === undefined) return { volume: await this.toWire(v), resize: null };
    const target = this.resolveSize(req, v.filesystem);
    if (target < v.sizeBytes) {
      throw new CairnError(
        "VOLUME_SHRINK_NOT_ALLOWED",
        `Volume "${v.name}" is ${formatSize(v.sizeBytes)}; volumes can grow but not shrink. Give a size of at least ${formatSize(v.sizeBytes)}.`,
      );
    }
    const previousSizeBytes = v.sizeBytes;
    if (target === v.sizeBytes) return { volume: await this.toWire(v), resize: { mode: "none", previousSizeBytes } };
    if (!(await store.volumes.transition(v.id, ["ready"], "resizing"))) {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${v.name}" is ${v.status}; retry when it is ready`);
    }
    // The new size is promised (and recorded) before the image grows; a failed grow gives it back.
    try {
      await this.deps.capacity.admit(target - v.sizeBytes, `${formatSize(target - v.sizeBytes)} more for volume "${v.name}"`, () =>
        store.volumes.update(v.id, { sizeBytes: target }),
      );
    } catch (err) {
      await store.volumes.update(v.id, { status: "ready" });
      throw err;
    }
    const opId = newId("op");
    await store.operations.start({ id: opId, volumeId: v.id, kind: "grow", detail: { from: v.sizeBytes, to: target } });
    try {
      const mode = await engine.grow({ id: v.id, sizeBytes: target, filesystem: v.filesystem });
      await store.volumes.update(v.id, { sizeBytes: target, status: "ready" });
      await store.operations.finish(opId, "succeeded", { mode });
      return { volume: await this.get(projectId, v.id), resize: { mode, previousSizeBytes } };
    } catch (err) {
      log.warn({ err, volumeId: v.id }, "grow failed");
      // The image may already be larger; the filesystem is not: the old size stays the truth.
      await store.volumes.update(v.id, { status: "ready", sizeBytes: previousSizeBytes });
      await store.operations.finish(opId, "failed", { error: String(err) });
      throw err;
    }
  }

  async delete(projectId: string, ref: string, options: { keepCheckpoints?: boolean } = {}): Promise<{ keptCheckpoints: number }> {
    const { store, engine } = this.deps;
    const v = await this.find(projectId, ref);
    const attached = await store.attachments.liveOfVolume(v.id);
    if (attached.length > 0) {
      throw new CairnError(
        "VOLUME_BUSY",
        `Volume "${v.name}" is attached to sandbox ${attached[0]!.sandboxId}; detach it or kill the sandbox first`,
      );
    }
    // Two-phase: the metadata says `deleting` before the image goes, so a crash in between is
    // finished by the reconciler instead of leaving a volume without an image.
    if (!(await store.volumes.transition(v.id, ["ready"], "deleting"))) {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${v.name}" is ${v.status}; retry when it is ready`);
    }
    try {
      await engine.destroy(v.id);
    } catch (err) {
      await store.volumes.transition(v.id, ["deleting"], "ready");
      throw err;
    }
    const kept = options.keepCheckpoints ? (await store.checkpoints.list(v.id)).filter((c) => c.status === "ready").length : 0;
    if (kept > 0) {
      // The data goes, the checkpoints stay: the volume is `deleted` under a name that frees its
      // own (a "." never appears in a volume name), found by id to fork its checkpoints.
      await store.volumes.update(v.id, { status: "deleted", name: `${v.name}.deleted.${Date.now()}`, usedBytes: 0 });
      return { keptCheckpoints: kept };
    }
    await this.deps.checkpointStore.deleteCheckpoints(v.id);
    await store.checkpoints.deleteOf(v.id);
    await store.volumes.delete(v.id);
    return { keptCheckpoints: 0 };
  }

  /**
   * A filesystem error met during file work (EROFS/EIO: the kernel made the volume read-only after
   * an error) becomes VOLUME_DAMAGED, and the engine checks and remounts the volume as soon as
   * nothing holds it. Any other error passes through as it was.
   */
  damageOf(v: VolumeRecord, err: unknown): unknown {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code !== "EROFS" && code !== "EIO") return err;
    this.deps.engine.markDamaged(v.id);
    this.deps.log.error({ err, volumeId: v.id }, "the volume's filesystem failed; it will be checked when nothing holds it");
    return new CairnError(
      "VOLUME_DAMAGED",
      `Volume "${v.name}" reported a filesystem error and is read-only; cairnd checks and repairs it as soon as nothing uses it (sandboxes that have it attached hold it). Retry in a moment.`,
      { cause: err },
    );
  }

  /** Take a lease on a volume for host-side file work; the volume is mounted while leases exist. */
  async lease(projectId: string, ref: string): Promise<{ volume: VolumeRecord; lease: Lease }> {
    const v = await this.find(projectId, ref);
    if (v.status !== "ready" && v.status !== "resizing") {
      throw new CairnError("VOLUME_NOT_READY", `Volume "${v.name}" is ${v.status}; retry in a moment`);
    }
    return { volume: v, lease: await this.deps.engine.acquire(v.id) };
  }

  /** Start-up reconciliation: finish or roll back half-done work, then let the engine tidy the machine. */
  async reconcile(): Promise<void> {
    const { store, engine, log } = this.deps;
    for (const op of await store.operations.running()) {
      await store.operations.finish(op.id, "failed", { ...op.detail, error: "interrupted by a restart" });
    }
    const known = new Set<string>();
    for (const v of await store.volumes.all()) {
      if (v.status === "creating") {
        // Never acknowledged: roll back.
        await store.volumes.delete(v.id);
        log.info({ volumeId: v.id }, "reconcile: rolled back an unfinished create");
      } else if (v.status === "deleting") {
        await engine.destroy(v.id);
        await this.deps.checkpointStore.deleteCheckpoints(v.id);
        await store.checkpoints.deleteOf(v.id);
        await store.volumes.delete(v.id);
        log.info({ volumeId: v.id }, "reconcile: finished a delete");
      } else {
        if (v.status === "restoring") {
          // The restore's rename is atomic: the image is the old or the new one, both whole.
          await store.volumes.transition(v.id, ["restoring"], "ready");
          const size = await engine.imageSize(v.id);
          if (size !== undefined) await store.volumes.update(v.id, { sizeBytes: size });
        }
        known.add(v.id);
      }
    }
    const checkpoints = new Map<string, Set<string>>();
    const deleted = new Set((await store.volumes.all()).filter((v) => v.status === "deleted").map((v) => v.id));
    for (const cp of await store.checkpoints.all()) {
      if (cp.status !== "ready" || !(known.has(cp.volumeId) || deleted.has(cp.volumeId))) {
        await store.checkpoints.delete(cp.id);
        continue;
      }
      let set = checkpoints.get(cp.volumeId);
      if (!set) checkpoints.set(cp.volumeId, (set = new Set()));
      set.add(cp.id);
    }
    const report = await engine.reconcile(known, checkpoints);
    for (const v of await store.volumes.all()) {
      if (v.status !== "resizing") continue;
      // Finish the grow to whatever size the image reached; the filesystem grows to fill it.
      const size = (await engine.imageSize(v.id)) ?? v.sizeBytes;
      await engine.grow({ id: v.id, sizeBytes: size, filesystem: v.filesystem });
      await store.volumes.update(v.id, { sizeBytes: size, status: "ready" });
      log.info({ volumeId: v.id, sizeBytes: size }, "reconcile: finished a grow");
    }
    if (report.unmounted.length + report.detachedLoops.length + report.removedImages.length > 0) {
      log.info(report, "reconcile: released what nothing holds");
    }
  }
}

function pick(v: Volume, fields: string[]): Partial<Volume> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = (v as unknown as Record<string, unknown>)[f];
  return out as Partial<Volume>;
}
