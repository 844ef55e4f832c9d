import { z } from "zod";
import { ERROR_CODES } from "./errors.js";

export const ProblemSchema = z
  .object({
    type: z.string(),
    code: z.enum(Object.keys(ERROR_CODES) as [keyof typeof ERROR_CODES, ...(keyof typeof ERROR_CODES)[]]),
    title: z.string(),
    status: z.int(),
    detail: z.string().meta({ description: "What went wrong and what to do about it." }),
    requestId: z.string().optional(),
    meta: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "Problem", description: "Every non-2xx response (application/problem+json)." });

export const Project = z.object({ id: z.string(), name: z.string(), createdAt: z.string() }).meta({ id: "Project" });
export type Project = z.infer<typeof Project>;

export const PROJECT_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const CreateProjectRequest = z
  .object({
    name: z.string().regex(PROJECT_NAME_PATTERN, {
      error: "Project name must be lowercase letters, digits or hyphens, 1-63 characters",
    }),
  })
  .strict();
export const CreateApiKeyRequest = z.object({ name: z.string().min(1).max(100).optional() }).strict();
export const ApiKey = z
  .object({ id: z.string(), key: z.string().meta({ description: "Shown once; store it now." }), projectId: z.string() })
  .meta({ id: "ApiKey" });
export type ApiKey = z.infer<typeof ApiKey>;
export const ApiKeyInfo = z
  .object({ id: z.string(), name: z.string(), projectId: z.string(), createdAt: z.string() })
  .meta({ id: "ApiKeyInfo", description: "A key as listed: never its secret" });
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;
export const CreateProjectResult = z.object({ project: Project, apiKey: ApiKey });
export type CreateProjectResult = z.infer<typeof CreateProjectResult>;

export const Health = z.object({
  status: z.literal("ok"),
  version: z.string(),
  region: z.string(),
  pid: z.int(),
  warmSandboxes: z
    .object({ ready: z.int(), target: z.int() })
    .meta({ description: "The warm pool: sandboxes started ahead of demand, and how many cairnd keeps (CAIRN_WARM_SANDBOXES)." }),
  pool: z
    .object({ capacityBytes: z.number(), committedBytes: z.number(), overcommit: z.number(), warning: z.string().optional() })
    .meta({
      description:
        "The storage pool: what may be promised (its size times CAIRN_POOL_OVERCOMMIT) and what volumes, checkpoints and sandbox disks are promised now. `warning` when overcommitted.",
    }),
});
export type Health = z.infer<typeof Health>;
