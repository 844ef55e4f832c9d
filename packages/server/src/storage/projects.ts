/** Projects and their API keys (hashed; a key is shown once, at creation). */
import type { Kysely } from "kysely";
import { CairnError } from "@cairn/protocol";
import type { Database } from "./schema.js";
import { isUniqueViolation, now } from "./rows.js";

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

/** Projects: the tenants. */
export class ProjectRows {
  constructor(private readonly db: Kysely<Database>) {}

  async ensure(id: string, name: string): Promise<Project> {
    const existing = await this.byName(name);
    if (existing) return existing;
    try {
      return await this.create(id, name);
    } catch (err) {
      const again = await this.byName(name);
      if (again) return again;
      throw err;
    }
  }

  async create(id: string, name: string): Promise<Project> {
    const row = { id, name, created_at: now() };
    try {
      await this.db.insertInto("projects").values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new CairnError("PROJECT_ALREADY_EXISTS", `Project "${name}" already exists`);
      throw err;
    }
    return { id, name, createdAt: row.created_at };
  }

  async byName(name: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("name", "=", name).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  async byId(id: string): Promise<Project | undefined> {
    const row = await this.db.selectFrom("projects").selectAll().where("id", "=", id).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  async list(): Promise<Project[]> {
    const rows = await this.db.selectFrom("projects").selectAll().orderBy("name").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }
}

/** API keys of projects. */
export class KeyRows {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(key: ApiKeyRecord): Promise<void> {
    await this.db
      .insertInto("api_keys")
      .values({ id: key.id, project_id: key.projectId, name: key.name, secret_hash: key.secretHash, created_at: now() })
      .execute();
  }

  async list(projectId: string): Promise<{ id: string; name: string; projectId: string; createdAt: string }[]> {
    const rows = await this.db.selectFrom("api_keys").selectAll().where("project_id", "=", projectId).orderBy("created_at").orderBy("id").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, projectId: r.project_id, createdAt: r.created_at }));
  }

  /** Revoke a key: false when the project has no such key. */
  async delete(projectId: string, id: string): Promise<boolean> {
    const r = await this.db.deleteFrom("api_keys").where("project_id", "=", projectId).where("id", "=", id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
    return row && { id: row.id, projectId: row.project_id, name: row.name, secretHash: row.secret_hash };
  }
}
