/** Table types for Kysely. Timestamps are RFC 3339 text on every backend. */
export interface ProjectsTable {
  id: string;
  name: string;
  created_at: string;
}

export interface ApiKeysTable {
  id: string;
  project_id: string;
  name: string;
  /** SHA-256 of the key's secret part, hex. Keys are random 256-bit values, so no slow hash is needed. */
  secret_hash: string;
  created_at: string;
}

export interface VolumesTable {
  id: string;
  project_id: string;
  name: string;
  region: string;
  size_bytes: number | string | bigint;
  used_bytes: number | string | bigint;
  filesystem: string;
  access_mode: string;
  status: string;
  labels: string;
  created_at: string;
  updated_at: string;
}

export interface VolumeLabelsTable {
  volume_id: string;
  key: string;
  value: string;
}

export interface OperationsTable {
  id: string;
  volume_id: string;
  kind: string;
  status: string;
  detail: string;
  created_at: string;
  finished_at: string | null;
}

export interface CheckpointsTable {
  id: string;
  volume_id: string;
  name: string;
  labels: string;
  size_bytes: number | string | bigint;
  frozen_ms: number;
  status: string;
  created_at: string;
}

export interface SandboxesTable {
  id: string;
  project_id: string;
  template: string;
  state: string;
  spec: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface AttachmentsTable {
  id: string;
  project_id: string;
  sandbox_id: string;
  volume_id: string;
  checkpoint_id: string | null;
  mount_path: string;
  mode: string;
  subpath: string;
  state: string;
  error: string | null;
  /** The volume id while this attachment holds a ReadWriteOnce volume, else NULL: a unique index makes the claim atomic. */
  exclusive_key: string | null;
  created_at: string;
  updated_at: string;
}

export interface DeploymentsTable {
  id: string;
  project_id: string;
  app: string;
  env: string;
  version: number;
  state: string;
  sandbox_id: string | null;
  volume_id: string;
  command: string;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface Database {
  deployments: DeploymentsTable;
  sandboxes: SandboxesTable;
  attachments: AttachmentsTable;
  checkpoints: CheckpointsTable;
  projects: ProjectsTable;
  api_keys: ApiKeysTable;
  volumes: VolumesTable;
  volume_labels: VolumeLabelsTable;
  operations: OperationsTable;
}
