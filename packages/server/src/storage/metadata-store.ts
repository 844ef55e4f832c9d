/**
 * The metadata store: projects, API keys, volumes, operations. One implementation over Kysely
 * that runs on SQLite (embedded default, WAL) and PostgreSQL (scale-out).
 */
import SqliteDatabase from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { CairnError, type AccessMode, type Filesystem, type Volume, type VolumeStatus } from "@cairn/protocol";
import { migrationProvider } from "./migrations.js";
import type { Database } from "./schema.js";

export type DatabaseConfig = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

export interface Project {
  id: string;
  name: string;
  createdAt: string;
}

export interface ApiKeyRecord {
  id: string;
  projectId: string;
  name: string;
  secretHash: string;
}

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

export type DeploymentState = "starting" | "running" | "failed" | "superseded" | "stopped";

export interface DeploymentRecord {
  id: string;
  projectId: string;
  app: string;
  env: string;
  version: number;
  state: DeploymentState;
  sandboxId: string | null;
  volumeId: string;
  command: string;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

function toDeployment(r: Database["deployments"]): DeploymentRecord {
  return {
    id: r.id,
    projectId: r.project_id,
    app: r.app,
    env: r.env,
    version: Number(r.version),
    state: r.state as DeploymentState,
    sandboxId: r.sandbox_id,
    volumeId: r.volume_id,
    command: r.command,
    error: r.error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export interface OperationRecord {
  id: string;
  volumeId: string;
  kind: string;
  status: "running" | "succeeded" | "failed";
  detail: Record<string, unknown>;
}

const now = () => new Date().toISOString();

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string };
  return e?.code === "SQLITE_CONSTRAINT_UNIQUE" || e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY" || e?.code === "23505";
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

export class MetadataStore {
  private constructor(
    readonly db: Kysely<Database>,
    readonly kind: DatabaseConfig["kind"],
  ) {}

  static async open(config: DatabaseConfig): Promise<MetadataStore> {
    let db: Kysely<Database>;
    if (config.kind === "sqlite") {
      const sqlite = new SqliteDatabase(config.path);
      sqlite.pragma("journal_mode = WAL");
      sqlite.pragma("synchronous = NORMAL");
      sqlite.pragma("busy_timeout = 5000");
      sqlite.pragma("foreign_keys = ON");
      db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    } else {
      db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: config.url, max: 10 }) }) });
    }
    const store = new MetadataStore(db, config.kind);
    const { error, results } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
    const failed = results?.find((r) => r.status === "Error");
    if (error || failed) {
      await db.destroy();
      throw new Error(`database migration ${failed?.migrationName ?? ""} failed`, { cause: error });
    }
    return store;
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // Projects and keys

  async ensureProject(id: string, name: string): Promise<Project> {
    const existing = await this.getProjectByName(name);
    if (existing) return existing;
    try {
      return await this.createProject(id, name);
    } catch (err) {
      const again = await this.getProjectByName(name);
      if (again) return again;
      throw err;
    }
  }

  async createProject(id: string, name: string): Promise<Project> {
    const row = { id, name, created_at: now() };
    try {
      await this.db.insertInto("projects").values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new CairnError("PROJECT_ALREADY_EXISTS", `Project "${name}" already exists`);
      throw err;
    }
    return { id, name, createdAt: row.created_at };
  }

  async getProjectByName(name: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("name", "=", name).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  async getProjectById(id: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  async listProjects(): Promise<Project[]> {
    const rows = await this.db.selectFrom("projects").selectAll().orderBy("name").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }

  async insertApiKey(key: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto("api_keys")
      .values({ id: key.id, project_id: key.projectId, name: key.name, secret_hash: key.secretHash, created_at: now() })
      .execute();
  }

  async listApiKeys(projectId: string): Promise<{ id: string; name: string; projectId: string; createdAt: string }[]> {
    const rows = await this.db.selectFrom("api_keys").selectAll().where("project_id", "=", projectId).orderBy("created_at").orderBy("id").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, projectId: r.project_id, createdAt: r.created_at }));
  }

  /** Revoke a key: false when the project has no such key. */
  async deleteApiKey(projectId: string, id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("api_keys").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
    return row && { id: row.id, projectId: row.project_id, name: row.name, secretHash: row.secret_hash };
  }

  // Volumes

  async insertVolume(v: VolumeRecord): Promise<void> {
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

  async getVolume(projectId: string, ref: { id?: string; name?: string }): Promise<VolumeRecord | undefined> {
    let q = this.db.selectFrom("volumes").selectAll().where("project_id", "=", projectId);
    if (ref.id !== undefined) q = q.where("id", "=", ref.id);
    if (ref.name !== undefined) q = q.where("name", "=", ref.name);
    const row = await q.executeTakeFirst();
    return row && toVolume(row);
  }

  async getVolumeById(id: string): Promise<VolumeRecord | undefined> {
    const row = await this.db.selectFrom("volumes").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toVolume(row);
  }

  async listVolumes(projectId: string, options: ListVolumesOptions): Promise<VolumeRecord[]> {
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

  async listAllVolumes(): Promise<VolumeRecord[]> {
    const rows = await this.db.selectFrom("volumes").selectAll().execute();
    return rows.map(toVolume);
  }

  async updateVolume(
    id: string,
    patch: Partial<Pick<VolumeRecord, "sizeBytes" | "usedBytes" | "status" | "labels" | "name">>,
  ): Promise<VolumeRecord | undefined> {
    await this.db.transaction().execute(async (trx) => {
      const values: Partial<Database["volumes"]> = { updated_at: now() };
      if (patch.sizeBytes !== undefined) values.size_bytes = patch.sizeBytes;
      if (patch.usedBytes !== undefined) values.used_bytes = patch.usedBytes;
      if (patch.status !== undefined) values.status = patch.status;
      if (patch.name !== undefined) values.name = patch.name;
      if (patch.labels !== undefined) {
        values.labels = JSON.stringify(patch.labels);
        await trx.deleteFrom("volume_labels").where("volume_id", "=", id).execute();
        await writeLabels(trx, id, patch.labels);
      }
      await trx.updateTable("volumes").set(values).where("id", "=", id).execute();
    });
    return this.getVolumeById(id);
  }

  /** Set a status only if the volume is in one of `from`: the atomic gate of every state change. */
  async transitionVolume(id: string, from: VolumeStatus[], to: VolumeStatus): Promise<boolean> {
    const r = await this.db
      .updateTable("volumes")
      .set({ status: to, updated_at: now() })
      .where("id", "=", id)
      .where("status", "in", from)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async deleteVolume(id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("volume_labels").where("volume_id", "=", id).execute();
      await trx.deleteFrom("volumes").where("id", "=", id).execute();
    });
  }

  // Checkpoints

  async insertCheckpoint(c: CheckpointRecord): Promise<void> {
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

  async updateCheckpoint(id: string, patch: Partial<Pick<CheckpointRecord, "status" | "sizeBytes" | "frozenMs">>): Promise<void> {
    const values: Partial<Database["checkpoints"]> = {};
    if (patch.status !== undefined) values.status = patch.status;
    if (patch.sizeBytes !== undefined) values.size_bytes = patch.sizeBytes;
    if (patch.frozenMs !== undefined) values.frozen_ms = patch.frozenMs;
    await this.db.updateTable("checkpoints").set(values).where("id", "=", id).execute();
  }

  async getCheckpoint(volumeId: string, ref: { id?: string; name?: string }): Promise<CheckpointRecord | undefined> {
    let q = this.db.selectFrom("checkpoints").selectAll().where("volume_id", "=", volumeId);
    if (ref.id !== undefined) q = q.where("id", "=", ref.id);
    if (ref.name !== undefined) q = q.where("name", "=", ref.name);
    const row = await q.executeTakeFirst();
    return row && toCheckpoint(row);
  }

  /** Oldest first. */
  async listCheckpoints(volumeId: string): Promise<CheckpointRecord[]> {
    const rows = await this.db.selectFrom("checkpoints").selectAll().where("volume_id", "=", volumeId).orderBy("created_at").orderBy("id").execute();
    return rows.map(toCheckpoint);
  }

  async listAllCheckpoints(): Promise<CheckpointRecord[]> {
    const rows = await this.db.selectFrom("checkpoints").selectAll().execute();
    return rows.map(toCheckpoint);
  }

  async deleteCheckpoint(id: string): Promise<void> {
    await this.db.deleteFrom("checkpoints").where("id", "=", id).execute();
  }

  async deleteCheckpointsOf(volumeId: string): Promise<void> {
    await this.db.deleteFrom("checkpoints").where("volume_id", "=", volumeId).execute();
  }

  // Sandboxes and attachments

  async insertSandbox(sb: SandboxRecord): Promise<void> {
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

  async getSandbox(projectId: string, id: string): Promise<SandboxRecord | undefined> {
    const row = await this.db.selectFrom("sandboxes").selectAll().where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return row && toSandbox(row);
  }

  async listSandboxes(projectId: string | undefined, options: { limit: number; states?: SandboxState[] } = { limit: 1000 }): Promise<SandboxRecord[]> {
    let q = this.db.selectFrom("sandboxes").selectAll();
    if (projectId !== undefined) q = q.where("project_id", "=", projectId);
    if (options.states) q = q.where("state", "in", options.states);
    const rows = await q.orderBy("created_at", "desc").orderBy("id").limit(options.limit).execute();
    return rows.map(toSandbox);
  }

  /** Forget sandboxes that ended (stopped or failed) before `before` (ISO time), with their attachments; returns their ids. */
  async pruneSandboxes(before: string): Promise<string[]> {
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

  async updateSandboxSpec(id: string, spec: SandboxSpec): Promise<void> {
    await this.db.updateTable("sandboxes").set({ spec: JSON.stringify(spec), updated_at: now() }).where("id", "=", id).execute();
  }

  async updateSandbox(id: string, patch: { state?: SandboxState; error?: string | null }): Promise<void> {
    const values: Partial<Database["sandboxes"]> = { updated_at: now() };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.error !== undefined) values.error = patch.error;
    await this.db.updateTable("sandboxes").set(values).where("id", "=", id).execute();
  }

  /** Insert an attachment; a second live claim on a ReadWriteOnce volume fails atomically (unique index). */
  async insertAttachment(a: AttachmentRecord): Promise<boolean> {
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

  async updateAttachment(id: string, patch: { state?: AttachmentState; error?: string | null }): Promise<void> {
    const values: Partial<Database["attachments"]> = { updated_at: now() };
    if (patch.state !== undefined) {
      values.state = patch.state;
      // A released or failed attachment gives up its ReadWriteOnce claim.
      if (patch.state === "released" || patch.state === "failed") values.exclusive_key = null;
    }
    if (patch.error !== undefined) values.error = patch.error;
    await this.db.updateTable("attachments").set(values).where("id", "=", id).execute();
  }

  async listAttachments(sandboxId: string): Promise<AttachmentRecord[]> {
    const rows = await this.db.selectFrom("attachments").selectAll().where("sandbox_id", "=", sandboxId).orderBy("created_at").orderBy("id").execute();
    return rows.map(toAttachment);
  }

  async listLiveAttachmentsOfVolume(volumeId: string): Promise<AttachmentRecord[]> {
    const rows = await this.db
      .selectFrom("attachments")
      .selectAll()
      .where("volume_id", "=", volumeId)
      .where("state", "in", ["pending", "mounted", "suspended"])
      .execute();
    return rows.map(toAttachment);
  }

  // Deployments

  /** Insert the next version of an app's environment; the unique (app, env, version) index orders racing deploys. */
  async insertDeployment(d: Omit<DeploymentRecord, "version">): Promise<DeploymentRecord> {
    for (let attempt = 0; ; attempt++) {
      const last = await this.db
        .selectFrom("deployments")
        .select(({ fn }) => fn.max("version").as("v"))
        .where("app", "=", d.app)
        .where("env", "=", d.env)
        .executeTakeFirst();
      const version = Number(last?.v ?? 0) + 1;
      try {
        await this.db
          .insertInto("deployments")
          .values({
            id: d.id,
            project_id: d.projectId,
            app: d.app,
            env: d.env,
            version,
            state: d.state,
            sandbox_id: d.sandboxId,
            volume_id: d.volumeId,
            command: d.command,
            error: d.error,
            created_at: d.createdAt,
            updated_at: d.updatedAt,
          })
          .execute();
        return { ...d, version };
      } catch (err) {
        if (!isUniqueViolation(err) || attempt > 10) throw err;
      }
    }
  }

  async updateDeployment(id: string, patch: { state?: DeploymentState; sandboxId?: string | null; error?: string | null }): Promise<void> {
    const values: Partial<Database["deployments"]> = { updated_at: now() };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.sandboxId !== undefined) values.sandbox_id = patch.sandboxId;
    if (patch.error !== undefined) values.error = patch.error;
    await this.db.updateTable("deployments").set(values).where("id", "=", id).execute();
  }

  async listDeployments(filter: { app?: string; env?: string; projectId?: string; states?: DeploymentState[] }): Promise<DeploymentRecord[]> {
    let q = this.db.selectFrom("deployments").selectAll();
    if (filter.app !== undefined) q = q.where("app", "=", filter.app);
    if (filter.env !== undefined) q = q.where("env", "=", filter.env);
    if (filter.projectId !== undefined) q = q.where("project_id", "=", filter.projectId);
    if (filter.states) q = q.where("state", "in", filter.states);
    const rows = await q.orderBy("created_at", "desc").orderBy("version", "desc").limit(1000).execute();
    return rows.map(toDeployment);
  }

  async getDeployment(id: string): Promise<DeploymentRecord | undefined> {
    const row = await this.db.selectFrom("deployments").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toDeployment(row);
  }

  // Operations: a journal of engine work, so a restart can see what was in flight.

  async startOperation(op: Omit<OperationRecord, "status">): Promise<void> {
    await this.db
      .insertInto("operations")
      .values({ id: op.id, volume_id: op.volumeId, kind: op.kind, status: "running", detail: JSON.stringify(op.detail), created_at: now(), finished_at: null })
      .execute();
  }

  async finishOperation(id: string, status: "succeeded" | "failed", detail?: Record<string, unknown>): Promise<void> {
    const values: Partial<Database["operations"]> = { status, finished_at: now() };
    if (detail) values.detail = JSON.stringify(detail);
    await this.db.updateTable("operations").set(values).where("id", "=", id).execute();
  }

  async listRunningOperations(): Promise<OperationRecord[]> {
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

async function writeLabels(trx: Kysely<Database>, volumeId: string, labels: Record<string, string>): Promise<void> {
  const rows = Object.entries(labels).map(([key, value]) => ({ volume_id: volumeId, key, value }));
  if (rows.length > 0) await trx.insertInto("volume_labels").values(rows).execute();
}
