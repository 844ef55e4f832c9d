/** Sandboxes and their attachments (the claims on volumes). */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import { isUniqueViolation, now } from "./rows.js";
import type { NetworkSpec } from "../network/policy.js";

export type SandboxState = "starting" | "running" | "hibernated" | "stopped" | "failed";

export type AttachmentState = "pending" | "mounted" | "suspended" | "released" | "failed";

export interface SandboxSpec {
  env: Record<string, string>;
  cwd: string;
  memoryBytes: number;
  pids: number;
  timeoutMs: number | null;
  /** CPU quota in cores; absent for sandboxes made before it existed (no quota). */
  cpus?: number;
  /** What a fork made for itself and deletes when it goes: forked volumes (unless kept), checkpoint views. */
  owned?: { volumes: string[]; checkpoints: { volumeId: string; checkpointId: string }[] };
  /** The host uid of its root (its user namespace); absent for sandboxes made before them. */
  uidBase?: number;
  /** The sandbox's own disk; absent for sandboxes made before disks existed. */
  diskBytes?: number;
  /** The image it runs (pinned by digest); absent for the base template. */
  image?: { ref: string; digest: string; user?: { uid: number; gid: number }; argv: string[]; exposedPorts: string[] };
  /** What it may reach, and its address while it runs with an interface; absent: loopback only. */
  network?: NetworkSpec;
  /** Its ports routed by cairnd (a private one has a token). */
  ports?: { port: number; public: boolean; token: string | null }[];
}

export interface SandboxRecord {
  id: string;
  projectId: string;
  template: string;
  state: SandboxState;
  spec: SandboxSpec;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface AttachmentRecord {
  id: string;
  projectId: string;
  sandboxId: string;
  volumeId: string;
  checkpointId: string | null;
  mountPath: string;
  mode: "rw" | "ro";
  subpath: string;
  state: AttachmentState;
  error: string | null;
  /** Holds the volume's single ReadWriteOnce claim. */
  exclusive: boolean;
  createdAt: string;
  updatedAt: string;
}

function toSandbox(r: Database["sandboxes"]): SandboxRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    template: r.template,
    state: r.state as SandboxState,
    spec: JSON.parse(r.spec) as SandboxSpec,
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toAttachment(r: Database["attachments"]): AttachmentRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    sandboxId: r.sandbox_id,
    volumeId: r.volume_id,
    checkpointId: r.checkpoint_id,
    mountPath: r.mount_path,
    mode: r.mode as "rw" | "ro",
    subpath: r.subpath,
    state: r.state as AttachmentState,
    error: r.error,
    exclusive: r.exclusive_key !== null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Sandbox rows. */
export class SandboxRows {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(sb: SandboxRecord): Promise<void> {
    await this.db
      .insertInto("sandboxes")
      .values({
        id: sb.id,
        project_id: sb.projectId,
        template: sb.template,
        state: sb.state,
        spec: JSON.stringify(sb.spec),
        error: sb.error,
        created_at: sb.createdAt,
        updated_at: sb.updatedAt,
      })
      .execute();
  }

  async get(projectId: string, id: string): Promise<SandboxRecord | undefined> {
    const row = await this.db.selectFrom("sandboxes").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return row && toSandbox(row);
  }

  /** A sandbox of whichever project (the router finds a sandbox by the host name a request names). */
  async byId(id: string): Promise<SandboxRecord | undefined> {
    const row = await this.db.selectFrom("sandboxes").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toSandbox(row);
  }

  async list(projectId: string | undefined, options: { limit: number; states?: SandboxState[] } = { limit: 1000 }): Promise<SandboxRecord[]> {
    let q = this.db.selectFrom("sandboxes").selectAll();
    if (projectId !== undefined) q = q.where("project_id", "=", projectId);
    if (options.states) q = q.where("state", "in", options.states);
    const rows = await q.orderBy("created_at", "desc").orderBy("id").limit(options.limit).execute();
    return rows.map(toSandbox);
  }

  /** Forget sandboxes that ended (stopped or failed) before `before` (ISO time), with their attachments; returns their ids. */
  async prune(before: string): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom("sandboxes").select("id").where("state", "in", ["stopped", "failed"]).where("updated_at", "<", before).execute();
      const ids = rows.map((r) => r.id);
      for (let i = 0; i < ids.length; i += 500) {
        const chunk = ids.slice(i, i + 500);
        await trx.deleteFrom("attachments").where("sandbox_id", "in", chunk).execute();
        await trx.deleteFrom("sandboxes").where("id", "in", chunk).execute();
      }
      return ids;
    });
  }

  async updateSpec(id: string, spec: SandboxSpec): Promise<void> {
    await this.db.updateTable("sandboxes").set({ spec: JSON.stringify(spec), updated_at: now() }).where("id", "=", id).execute();
  }

  async update(id: string, patch: { state?: SandboxState; error?: string | null }): Promise<void> {
    const values: Partial<Database["sandboxes"]> = { updated_at: now() };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.error !== undefined) values.error = patch.error;
    await this.db.updateTable("sandboxes").set(values).where("id", "=", id).execute();
  }
}

/** Attachment rows: a ReadWriteOnce volume has at most one live claim (a unique index). */
export class AttachmentRows {
  constructor(private readonly db: Kysely<Database>) {}

  /** Insert an attachment; a second live claim on a ReadWriteOnce volume fails atomically (unique index). */
  async insert(a: AttachmentRecord): Promise<boolean> {
    try {
      await this.db
        .insertInto("attachments")
        .values({
          id: a.id,
          project_id: a.projectId,
          sandbox_id: a.sandboxId,
          volume_id: a.volumeId,
          checkpoint_id: a.checkpointId,
          mount_path: a.mountPath,
          mode: a.mode,
          subpath: a.subpath,
          state: a.state,
          error: a.error,
          exclusive_key: a.exclusive ? a.volumeId : null,
          created_at: a.createdAt,
          updated_at: a.updatedAt,
        })
        .execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async update(id: string, patch: { state?: AttachmentState; error?: string | null }): Promise<void> {
    const values: Partial<Database["attachments"]> = { updated_at: now() };
    if (patch.state !== undefined) {
      values.state = patch.state;
      // A released or failed attachment gives up its ReadWriteOnce claim.
      if (patch.state === "released" || patch.state === "failed") values.exclusive_key = null;
    }
    if (patch.error !== undefined) values.error = patch.error;
    await this.db.updateTable("attachments").set(values).where("id", "=", id).execute();
  }

  async list(sandboxId: string): Promise<AttachmentRecord[]> {
    const rows = await this.db.selectFrom("attachments").selectAll().where("sandbox_id", "=", sandboxId).orderBy("created_at").orderBy("id").execute();
    return rows.map(toAttachment);
  }

  async liveOfVolume(volumeId: string): Promise<AttachmentRecord[]> {
    const rows = await this.db
      .selectFrom("attachments")
      .selectAll()
      .where("volume_id", "=", volumeId)
      .where("state", "in", ["pending", "mounted", "suspended"])
      .execute();
    return rows.map(toAttachment);
  }
}
