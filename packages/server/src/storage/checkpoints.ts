/** Checkpoints of volumes. */
import type { Kysely } from "kysely";
import { CairnError } from "@cairn/protocol";
import type { Database } from "./schema.js";
import { isUniqueViolation } from "./rows.js";

export interface CheckpointRecord {
  id: string;
  volumeId: string;
  name: string;
  labels: Record<string, string>;
  sizeBytes: number;
  frozenMs: number;
  status: "creating" | "ready" | "deleting";
  createdAt: string;
}

function toCheckpoint(r: Database["checkpoints"]): CheckpointRecord {
  return {
    id: r.id,
    volumeId: r.volume_id,
    name: r.name,
    labels: JSON.parse(r.labels) as Record<string, string>,
    sizeBytes: Number(r.size_bytes),
    frozenMs: Number(r.frozen_ms),
    status: r.status as CheckpointRecord["status"],
    createdAt: r.created_at,
  };
}

/** Checkpoint rows. */
export class CheckpointRows {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(c: CheckpointRecord): Promise<void> {
    try {
      await this.db
        .insertInto("checkpoints")
        .values({
          id: c.id,
          volume_id: c.volumeId,
          name: c.name,
          labels: JSON.stringify(c.labels),
          size_bytes: c.sizeBytes,
          frozen_ms: c.frozenMs,
          status: c.status,
          created_at: c.createdAt,
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new CairnError("CHECKPOINT_ALREADY_EXISTS", `Checkpoint "${c.name}" already exists on this volume`);
      throw err;
    }
  }

  async update(id: string, patch: Partial<Pick<CheckpointRecord, "status" | "sizeBytes" | "frozenMs">>): Promise<void> {
    const values: Partial<Database["checkpoints"]> = {};
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.sizeBytes !== undefined) values.size_bytes = patch.sizeBytes;
    if (patch.frozenMs !== undefined) values.frozen_ms = patch.frozenMs;
    await this.db.updateTable("checkpoints").set(values).where("id", "=", id).execute();
  }

  async get(volumeId: string, ref: { id?: string; name?: string }): Promise<CheckpointRecord | undefined> {
    let q = this.db.selectFrom("checkpoints").selectAll().where("volume_id", "=", volumeId);
    if (ref.id !== undefined) q = q.where("id", "=", ref.id);
    if (ref.name !== undefined) q = q.where("name", "=", ref.name);
    const row = await q.executeTakeFirst();
    return row && toCheckpoint(row);
  }

  /** Oldest first. */
  async list(volumeId: string): Promise<CheckpointRecord[]> {
    const rows = await this.db.selectFrom("checkpoints").selectAll().where("volume_id", "=", volumeId).orderBy("created_at").orderBy("id").execute();
    return rows.map(toCheckpoint);
  }

  async all(): Promise<CheckpointRecord[]> {
    const rows = await this.db.selectFrom("checkpoints").selectAll().execute();
    return rows.map(toCheckpoint);
  }

  async delete(id: string): Promise<void> {
    await this.db.deleteFrom("checkpoints").where("id", "=", id).execute();
  }

  async deleteOf(volumeId: string): Promise<void> {
    await this.db.deleteFrom("checkpoints").where("volume_id", "=", volumeId).execute();
  }
}
