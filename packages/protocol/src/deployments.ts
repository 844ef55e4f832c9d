import { z } from "zod";

export const APP_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$/;
export const APP_NAME_MESSAGE = "App and environment names are lowercase letters, digits and hyphens, 1-40 characters (they become host names)";

export const DEPLOYMENT_STATES = ["starting", "running", "failed", "superseded", "stopped"] as const;

export const Deployment = z
  .object({
    id: z.string(),
    app: z.string().meta({ description: "The deployed project's name (`cairn deploy --project`)" }),
    env: z.string().meta({ description: "Environment, default production" }),
    version: z.int(),
    state: z.enum(DEPLOYMENT_STATES),
    sandbox: z.string().nullable(),
    volume: z.string().meta({ description: "The persistent filesystem's volume id, mounted at /data/local-fs" }),
    command: z.string(),
    url: z.string().meta({ description: "Where the router serves it" }),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Deployment" });
export type Deployment = z.infer<typeof Deployment>;

export const DeployQuery = z.object({
  app: z.string().regex(APP_NAME_PATTERN, { error: APP_NAME_MESSAGE }),
  env: z.string().regex(APP_NAME_PATTERN, { error: APP_NAME_MESSAGE }).optional(),
  cmd: z.string().min(1).max(4096).optional().meta({ description: "Start command; default: main.py → python3 main.py, package.json start script → npm start" }),
  format: z.enum(["tar", "tar.gz"]).optional().meta({ description: "Body format, default tar.gz" }),
});
