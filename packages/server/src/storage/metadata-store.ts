/**
 * The metadata store: one implementation over Kysely that runs on SQLite (embedded default, WAL)
 * and PostgreSQL (scale-out). Each entity family has its rows in a file of its own
 * (projects.ts, volumes.ts, checkpoints.ts, sandboxes.ts, deployments.ts, operations.ts); the
 * database handle stays private to them.
 */
import SqliteDatabase from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from "kysely";
import pg from "pg";
import { migrationProvider } from "./migrations.js";
import type { Database } from "./schema.js";
import { KeyRows, ProjectRows } from "./projects.js";
import { VolumeRows } from "./volumes.js";
import { CheckpointRows } from "./checkpoints.js";
import { AttachmentRows, SandboxRows } from "./sandboxes.js";
import { DeploymentRows } from "./deployments.js";
import { OperationRows } from "./operations.js";

export type { Project, ApiKeyRecord } from "./projects.js";
export { volumeToWire, type VolumeRecord, type ListVolumesOptions } from "./volumes.js";
export type { CheckpointRecord } from "./checkpoints.js";
export type { SandboxState, AttachmentState, SandboxSpec, SandboxRecord, AttachmentRecord } from "./sandboxes.js";
export type { DeploymentState, DeploymentRecord } from "./deployments.js";
export type { OperationRecord } from "./operations.js";

export type DatabaseConfig = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

export class MetadataStore {
  readonly projects: ProjectRows;
  readonly keys: KeyRows;
  readonly volumes: VolumeRows;
  readonly checkpoints: CheckpointRows;
  readonly sandboxes: SandboxRows;
  readonly attachments: AttachmentRows;
  readonly deployments: DeploymentRows;
  readonly operations: OperationRows;

  private constructor(
    private readonly db: Kysely<Database>,
    readonly kind: DatabaseConfig["kind"],
  ) {
    this.projects = new ProjectRows(db);
    this.keys = new KeyRows(db);
    // SQLite lives in the data dir, which one cairnd holds: nobody else changes its rows.
    this.volumes = new VolumeRows(db, { soleWriter: kind === "sqlite" });
    this.checkpoints = new CheckpointRows(db);
    this.sandboxes = new SandboxRows(db);
    this.attachments = new AttachmentRows(db);
    this.deployments = new DeploymentRows(db);
    this.operations = new OperationRows(db);
  }

  static async open(config: DatabaseConfig): Promise<MetadataStore> {
    let db: Kysely<Database>;
    if (config.kind === "sqlite") {
      const sqlite = new SqliteDatabase(config.path);
      sqlite.pragma("journal_mode = WAL");
      sqlite.pragma("synchronous = NORMAL");
      sqlite.pragma("busy_timeout = 5000");
      sqlite.pragma("foreign_keys = ON");
      db = new Kysely<Database>({ dialect: new SqliteDialect({ database: reusingStatements(sqlite) }) });
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
}

/**
 * Kysely prepares every query anew; compiling the SQL was a large part of a small request. Keep
 * prepared statements by their SQL (a bounded number; one being iterated is not shared).
 */
function reusingStatements(sqlite: SqliteDatabase.Database): { prepare(sql: string): SqliteDatabase.Statement; close(): void } {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    prepare(sql) {
      const kept = statements.get(sql);
      if (kept && !kept.busy) return kept;
      const stmt = sqlite.prepare(sql);
      if (statements.size >= 500) statements.clear();
      statements.set(sql, stmt);
      return stmt;
    },
    close: () => sqlite.close(),
  };
}
