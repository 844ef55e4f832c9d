/** Versioned migrations, one list for SQLite and PostgreSQL. Append; never edit a shipped one. */
import type { Kysely, Migration, MigrationProvider } from "kysely";

const migrations: Record<string, Migration> = {
  "0001_initial": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("projects")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("api_keys")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id").onDelete("cascade"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("secret_hash", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("volumes")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull().references("projects.id"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("region", "text", (c) => c.notNull())
        .addColumn("size_bytes", "bigint", (c) => c.notNull())
        .addColumn("used_bytes", "bigint", (c) => c.notNull().defaultTo(0))
        .addColumn("filesystem", "text", (c) => c.notNull())
        .addColumn("access_mode", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("volumes_project_name_unique", ["project_id", "name"])
        .execute();
      await db.schema
        .createTable("volume_labels")
        .addColumn("volume_id", "text", (c) => c.notNull().references("volumes.id").onDelete("cascade"))
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("volume_labels_pk", ["volume_id", "key"])
        .execute();
      await db.schema.createIndex("volume_labels_kv").on("volume_labels").columns(["key", "value"]).execute();
      await db.schema
        .createTable("operations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("volume_id", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("detail", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("finished_at", "text")
        .execute();
      await db.schema.createIndex("operations_volume").on("operations").columns(["volume_id", "created_at"]).execute();
    },
  },
  "0002_checkpoints": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("checkpoints")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("volume_id", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("size_bytes", "bigint", (c) => c.notNull())
        .addColumn("frozen_ms", "real", (c) => c.notNull().defaultTo(0))
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addUniqueConstraint("checkpoints_volume_name_unique", ["volume_id", "name"])
        .execute();
    },
  },
  "0003_sandboxes": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("sandboxes")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("template", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("error", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("sandboxes_project").on("sandboxes").columns(["project_id", "created_at"]).execute();
      await db.schema
        .createTable("attachments")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("sandbox_id", "text", (c) => c.notNull())
        .addColumn("volume_id", "text", (c) => c.notNull())
        .addColumn("checkpoint_id", "text")
        .addColumn("mount_path", "text", (c) => c.notNull())
        .addColumn("mode", "text", (c) => c.notNull())
        .addColumn("subpath", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("error", "text")
        .addColumn("exclusive_key", "text", (c) => c.unique())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("attachments_sandbox").on("attachments").columns(["sandbox_id"]).execute();
      await db.schema.createIndex("attachments_volume").on("attachments").columns(["volume_id", "state"]).execute();
    },
  },
  "0004_deployments": {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("deployments")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("project_id", "text", (c) => c.notNull())
        .addColumn("app", "text", (c) => c.notNull())
        .addColumn("env", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("sandbox_id", "text")
        .addColumn("volume_id", "text", (c) => c.notNull())
        .addColumn("command", "text", (c) => c.notNull())
        .addColumn("error", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("deployments_app_env_version", ["app", "env", "version"])
        .execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
