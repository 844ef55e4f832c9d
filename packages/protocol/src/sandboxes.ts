import { z } from "zod";
import { SandboxNetwork, SandboxNetworkRequest } from "./network.js";

export const TEMPLATES = ["base"] as const;
export const SANDBOX_STATES = ["starting", "running", "hibernated", "stopped", "failed"] as const;
export const ATTACHMENT_STATES = ["pending", "mounted", "suspended", "released", "failed"] as const;

export const MountRequest = z
  .object({
    volume: z.string().min(1).meta({ description: "Volume id or name" }),
    mountPath: z.string().min(1).meta({ description: "Absolute path inside the sandbox", example: "/workspace" }),
    mode: z.enum(["rw", "ro"]).optional().meta({ description: "Default rw (ro for ReadOnlyMany volumes and checkpoints)" }),
    subpath: z.string().optional().meta({ description: "Mount only this directory of the volume (created if missing)" }),
    checkpoint: z.string().optional().meta({ description: "Mount this checkpoint of the volume, read-only" }),
  })
  .strict()
  .meta({ id: "MountRequest" });
export type MountRequest = z.infer<typeof MountRequest>;

export const CreateSandboxRequest = z
  .object({
    template: z.string().optional().meta({ description: "Default `base`: the host's /usr and /etc, read-only below a per-sandbox overlay" }),
    image: z
      .string()
      .optional()
      .meta({ description: "An OCI image to run (`node:20`, `127.0.0.1:5000/team/tool:1.2`): pulled once if not here yet, its tag pinned to a digest. A template name (`base`) works too" }),
    region: z.string().optional().meta({ description: "Where it must run: this host's region, or 409 REGION_MISMATCH; its volumes must live there too" }),
    volumes: z
      .union([z.array(MountRequest), z.record(z.string(), z.string())])
      .optional()
      .meta({ description: 'A list of mounts, or `{ "/workspace": "my_project" }` (creates missing volumes with the default size)' }),
    env: z.record(z.string(), z.string()).optional(),
    cwd: z.string().optional().meta({ description: "Default working directory of exec, default /" }),
    memoryMb: z.int().min(16).max(65536).optional().meta({ description: "Memory limit, default 512" }),
    pids: z.int().min(8).max(65536).optional().meta({ description: "Process limit, default 256" }),
    cpus: z.number().min(0.05).max(256).optional().meta({ description: "CPU limit in cores (a CFS quota: 0.5 is half a core), default 1" }),
    diskGb: z
      .int()
      .min(1)
      .max(1024)
      .optional()
      .meta({ description: "Size of the sandbox's own writable disk (its root, installs, /usr and /etc changes); a full disk is ENOSPC in this sandbox only. Default CAIRN_SANDBOX_DISK_SIZE (4 GiB)" }),
    timeoutMs: z.int().min(1000).optional().meta({ description: "Kill the sandbox after this long" }),
    network: SandboxNetworkRequest.optional(),
  })
  .strict()
  .meta({ id: "CreateSandboxRequest" });
export type CreateSandboxRequest = z.infer<typeof CreateSandboxRequest>;

export const Attachment = z
  .object({
    id: z.string(),
    volume: z.string().meta({ description: "Volume id" }),
    volumeName: z.string(),
    sandbox: z.string(),
    mountPath: z.string(),
    mode: z.enum(["rw", "ro"]),
    subpath: z.string(),
    checkpoint: z.string().nullable(),
    state: z.enum(ATTACHMENT_STATES),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Attachment" });
export type Attachment = z.infer<typeof Attachment>;

export const Sandbox = z
  .object({
    id: z.string(),
    template: z.string().meta({ description: "`base`, or `image` for a sandbox of an OCI image" }),
    image: z
      .object({ ref: z.string(), digest: z.string(), exposedPorts: z.array(z.string()) })
      .nullable()
      .meta({ description: "The image it runs, pinned to the digest its tag named at create time" }),
    state: z.enum(SANDBOX_STATES),
    cwd: z.string(),
    env: z.record(z.string(), z.string()),
    memoryMb: z.int(),
    pids: z.int(),
    cpus: z.number(),
    diskGb: z.number().meta({ description: "Size of the sandbox's writable disk" }),
    timeoutMs: z.int().nullable(),
    network: SandboxNetwork,
    error: z.string().nullable(),
    attachments: z.array(Attachment),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Sandbox" });
export type Sandbox = z.infer<typeof Sandbox>;

export const ExecRequest = z
  .object({
    command: z
      .string()
      .min(1)
      .optional()
      .meta({ description: "Run with /bin/sh -c. Absent: the sandbox's image's entrypoint and cmd, run as they are (a sandbox of the base template needs one)", example: "npm init -y && node -e 'console.log(1+1)'" }),
    cwd: z.string().optional(),
    env: z.record(z.string(), z.string()).optional(),
    timeoutMs: z.int().min(1).optional(),
    background: z.boolean().optional().meta({ description: "Start and return a process id at once; read logs and wait later" }),
  })
  .strict()
  .meta({ id: "ExecRequest" });
export type ExecRequest = z.infer<typeof ExecRequest>;

/** One line of the NDJSON exec stream. */
export type ExecEvent =
  | { type: "stdout"; data: string }
  | { type: "stderr"; data: string }
  | { type: "exit"; exitCode: number };

export const ProcessInfo = z
  .object({
    id: z.string(),
    command: z.string(),
    state: z.enum(["running", "exited"]),
    exitCode: z.int().nullable(),
    stdout: z.string().optional(),
    stderr: z.string().optional(),
  })
  .meta({ id: "Process" });
export type ProcessInfo = z.infer<typeof ProcessInfo>;

export const ForkSandboxRequest = z
  .object({
    keepVolumes: z
      .boolean()
      .optional()
      .meta({ description: "Keep the volumes forked for it (ReadWriteOnce ones it mounted read-write) when the fork is killed; default: they go with it" }),
  })
  .strict()
  .meta({ id: "ForkSandboxRequest" });
export type ForkSandboxRequest = z.infer<typeof ForkSandboxRequest>;

export const DetachRequest = z
  .object({
    mountPath: z.string().min(1),
    force: z.boolean().optional().meta({ description: "Detach even if busy: the processes in the sandbox that use the volume are killed first" }),
  })
  .strict();
export type DetachRequest = z.infer<typeof DetachRequest>;
