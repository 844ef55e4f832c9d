/** Volumes and their labels. */
import { sql, type Kysely } from "kysely";
import { CairnError, type AccessMode, type Filesystem, type Volume, type VolumeStatus } from "@cairn/protocol";
import type { Database } from "./schema.js";
import { isUniqueViolation, now } from "./rows.js";

const LOOKUP_MS = 1000;
const LOOKUPS_MAX = 10_000;
const copy = (v: VolumeRecord): VolumeRecord => ({ ...v, labels: { ...v.labels } });

export interface VolumeRecord {
  id: string;
  projectId: string;
  name: string;
  region: string;
  sizeBytes: number;
  usedBytes: number;
  filesystem: Filesystem;
  accessMode: AccessMode;
  status: VolumeStatus;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
}

export interface ListVolumesOptions {
  labels?: Record<string, string>;
  limit: number;
  /** Exclusive lower bound on name (pages are ordered by name). */
  afterName?: string | undefined;
  /** Only deleted volumes (kept for their checkpoints) instead of live ones. */
  deleted?: boolean;
}

function toVolume(row: Database["volumes"]): VolumeRecord {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    region: row.region,
    sizeBytes: Number(row.size_bytes),
    usedBytes: Number(row.used_bytes),
    filesystem: row.filesystem as Filesystem,
    accessMode: row.access_mode as AccessMode,
    status: row.status as VolumeStatus,
    labels: JSON.parse(row.labels) as Record<string, string>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export function volumeToWire(v: VolumeRecord): Volume {
  return { ...v };
}

async function writeLabels(trx: Kysely<Database>, volumeId: string, labels: Record<string, string>): Promise<void> {
  const rows = Object.entries(labels).map(([key, value]) => ({ volume_id: volumeId, key, value }));
  if (rows.length > 0) await trx.insertInto("volume_labels").values(rows).execute();
}

/** Volume rows: a status change goes through `transition`, the atomic gate. */
export class VolumeRows {
  /**
   * Volumes looked up by a request, kept for a moment when this process is the only writer of the
   * table (SQLite: one cairnd per data dir): every file request looks its volume up. Any change
   * through these methods forgets them all, before and after the write; a lookup that overlapped a
   * write is not kept (`generation`).
   */
  private readonly lookups = new Map<string, { record: VolumeRecord | undefined; until: number }>();
  private generation = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: { soleWriter: boolean } = { soleWriter: false },
  ) {}

  private forget(): void {
    this.generation++;
    this.lookups.clear();
  }

  /** Run a change with the lookups forgotten on both sides of it. */
  private async changing<T>(fn: () => Promise<T>): Promise<T> {
    this.forget();
    try {
      return await fn();
    } finally {
      this.forget();
    }
  }

  async insert(v: VolumeRecord): Promise<void> {
    return this.changing(() => this.insertRow(v));
  }

  private async insertRow(v: VolumeRecord): Promise<void> {
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx
          .insertInto("volumes")
          .values({
            id: v.id,
            project_id: v.projectId,
            name: v.name,
            region: v.region,
            size_bytes: v.sizeBytes,
            used_bytes: v.usedBytes,
            filesystem: v.filesystem,
            access_mode: v.accessMode,
            status: v.status,
            labels: JSON.stringify(v.labels),
            created_at: v.createdAt,
            updated_at: v.updatedAt,
          })
          .execute();
        await writeLabels(trx, v.id, v.labels);
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new CairnError("VOLUME_ALREADY_EXISTS", `Volume "${v.name}" already exists`);
      throw err;
    }
  }

  async get(projectId: string, ref: { id?: string; name?: string }): Promise<VolumeRecord | undefined> {
    if (!this.options.soleWriter) return this.getRow(projectId, ref);
    const key = `${projectId}\n${ref.id ?? ""}\n${ref.name ?? ""}`;
    const hit = this.lookups.get(key);
    const at = Date.now();
    if (hit && hit.until > at) return hit.record && copy(hit.record);
    const generation = this.generation;
    const record = await this.getRow(projectId, ref);
    if (generation === this.generation) {
      if (this.lookups.size >= LOOKUPS_MAX) this.lookups.clear();
      this.lookups.set(key, { record, until: at + LOOKUP_MS });
    }
    return record && copy(record);
  }

  private async getRow(projectId: string, ref: { id?: string; name?: string }): Promise<VolumeRecord | undefined> {
    let q = this.db.selectFrom("volumes").selectAll().where("project_id", "=", projectId);
    if (ref.id !== undefined) q = q.where("id", "=", ref.id);
    if (ref.name !== undefined) q = q.where("name", "=", ref.name);
    const row = await q.executeTakeFirst();
    return row && toVolume(row);
  }

  async byId(id: string): Promise<VolumeRecord | undefined> {
    const row = await this.db.selectFrom("volumes").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toVolume(row);
  }

  async list(projectId: string, options: ListVolumesOptions): Promise<VolumeRecord[]> {
    let q = this.db.selectFrom("volumes").selectAll().where("project_id", "=", projectId);
    for (const [key, value] of Object.entries(options.labels ?? {})) {
      q = q.where(({ exists, selectFrom }) =>
        exists(
          selectFrom("volume_labels")
            .select(sql`1`.as("one"))
            .whereRef("volume_labels.volume_id", "=", "volumes.id")
            .where("volume_labels.key", "=", key)
            .where("volume_labels.value", "=", value),
        ),
      );
    }
    if (options.afterName !== undefined) q = q.where("name", ">", options.afterName);
    q = options.deleted ? q.where("status", "=", "deleted") : q.where("status", "!=", "deleted");
    const rows = await q.orderBy("name").limit(options.limit).execute();
    return rows.map(toVolume);
  }

  async all(): Promise<VolumeRecord[]> {
    const rows = await this.db.selectFrom("volumes").selectAll().execute();
    return rows.map(toVolume);
  }

  async update(
    id: string,
    patch: Partial<Pick<VolumeRecord, "sizeBytes" | "usedBytes" | "status" | "labels" | "name" | "filesystem">>,
  ): Promise<VolumeRecord | undefined> {
    await this.changing(() => this.db.transaction().execute(async (trx) => {
      const values: Partial<Database["volumes"]> = { updated_at: now() };
      if (patch.sizeBytes !== undefined) values.size_bytes = patch.sizeBytes;
      if (patch.usedBytes !== undefined) values.used_bytes = patch.usedBytes;
      if (patch.status !== undefined) values.status = patch.status;
      if (patch.name !== undefined) values.name = patch.name;
      if (patch.filesystem !== undefined) values.filesystem = patch.filesystem;
      if (patch.labels !== undefined) {
        values.labels = JSON.stringify(patch.labels);
        await trx.deleteFrom("volume_labels").where("volume_id", "=", id).execute();
        await writeLabels(trx, id, patch.labels);
      }
      await trx.updateTable("volumes").set(values).where("id", "=", id).execute();
    }));
    return this.byId(id);
  }

  /** Set a status only if the volume is in one of `from`: the atomic gate of every state change. */
  async transition(id: string, from: VolumeStatus[], to: VolumeStatus): Promise<boolean> {
    const r = await this.changing(() => this.db
      .updateTable("volumes")
      .set({ status: to, updated_at: now() })
      .where("id", "=", id)
      .where("status", "in", from)
      .executeTakeFirst());
    return Number(r.numUpdatedRows) === 1;
  }

  async delete(id: string): Promise<void> {
    await this.changing(() =>
      this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom("volume_labels").where("volume_id", "=", id).execute();
        await trx.deleteFrom("volumes").where("id", "=", id).execute();
      }),
    );
  }
}
