/** The journal of engine work, so a restart sees what was in flight. */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import { now } from "./rows.js";

export interface OperationRecord {
  id: string;
  volumeId: string;
  kind: string;
  status: "running" | "succeeded" | "failed";
  detail: Record<string, unknown>;
}

/** Operation rows. */
export class OperationRows {
  constructor(private readonly db: Kysely<Database>) {}

  async start(op: Omit<OperationRecord, "status">): Promise<void> {
    await this.db
      .insertInto("operations")
      .values({ id: op.id, volume_id: op.volumeId, kind: op.kind, status: "running", detail: JSON.stringify(op.detail), created_at: now(), finished_at: null })
      .execute();
  }

  async finish(id: string, status: "succeeded" | "failed", detail?: Record<string, unknown>): Promise<void> {
    const values: Partial<Database["operations"]> = { status, finished_at: now() };
    if (detail) values.detail = JSON.stringify(detail);
    await this.db.updateTable("operations").set(values).where("id", "=", id).execute();
  }

  async running(): Promise<OperationRecord[]> {
    const rows = await this.db.selectFrom("operations").selectAll().where("status", "=", "running").execute();
    return rows.map((r) => ({
      id: r.id,
      volumeId: r.volume_id,
      kind: r.kind,
      status: r.status as OperationRecord["status"],
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
  }
}
