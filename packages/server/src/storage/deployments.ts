/** Deployments: versions of an app's environment. */
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";
import { isUniqueViolation, now } from "./rows.js";

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

/** Deployment rows. */
export class DeploymentRows {
  constructor(private readonly db: Kysely<Database>) {}

  /** Insert the next version of an app's environment; the unique (app, env, version) index orders racing deploys. */
  async insert(d: Omit<DeploymentRecord, "version">): Promise<DeploymentRecord> {
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

  async update(id: string, patch: { state?: DeploymentState; sandboxId?: string | null; error?: string | null; command?: string }): Promise<void> {
    const values: Partial<Database["deployments"]> = { updated_at: now() };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.sandboxId !== undefined) values.sandbox_id = patch.sandboxId;
    if (patch.error !== undefined) values.error = patch.error;
    if (patch.command !== undefined) values.command = patch.command;
    await this.db.updateTable("deployments").set(values).where("id", "=", id).execute();
  }

  async list(filter: { app?: string; env?: string; projectId?: string; states?: DeploymentState[] }): Promise<DeploymentRecord[]> {
    let q = this.db.selectFrom("deployments").selectAll();
    if (filter.app !== undefined) q = q.where("app", "=", filter.app);
    if (filter.env !== undefined) q = q.where("env", "=", filter.env);
    if (filter.projectId !== undefined) q = q.where("project_id", "=", filter.projectId);
    if (filter.states) q = q.where("state", "in", filter.states);
    const rows = await q.orderBy("created_at", "desc").orderBy("version", "desc").limit(1000).execute();
    return rows.map(toDeployment);
  }

  async get(id: string): Promise<DeploymentRecord | undefined> {
    const row = await this.db.selectFrom("deployments").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toDeployment(row);
  }
}
