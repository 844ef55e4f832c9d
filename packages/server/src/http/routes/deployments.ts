import { z } from "zod";
import { APP_NAME_MESSAGE, APP_NAME_PATTERN, Deployment, DeployQuery } from "@cairn/protocol";
import type { DeploymentService } from "../../deployments/service.js";
import { defineRoute, type RouteSpec } from "../route.js";

const AppQuery = z.object({
  app: z.string().regex(APP_NAME_PATTERN, { error: APP_NAME_MESSAGE }),
  env: z.string().regex(APP_NAME_PATTERN, { error: APP_NAME_MESSAGE }).optional(),
});

export function deploymentRoutes(deployments: DeploymentService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/deployments",
      operationId: "deploy",
      summary: "Deploy an app: the body is a tar(.gz) of its code",
      description:
        "Runs the app in a sandbox with the code at /data/app (a fresh copy per deploy: writable, discarded with the version), the app's persistent filesystem at /data/local-fs (env CAIRN_LOCAL_FS) and PORT. Answers when the new version serves; then the route switches and the old version stops. A version that fails to start gives 422 DEPLOY_FAILED and the old one keeps serving.",
      tags: ["deployments"],
      query: DeployQuery,
      rawBody: { contentType: "application/gzip", description: "tar.gz (or tar with format=tar) of the app directory" },
      responses: { 201: { description: "Serving", schema: Deployment } },
      // The app's filesystem is a volume; everything after it that fails is DEPLOY_FAILED.
      errors: ["APP_NAME_TAKEN", "DEPLOY_FAILED", "VOLUME_NOT_READY", "POOL_FULL"],
      handler: async ({ query, req, principal, reply }) => {
        try {
          const d = await deployments.deploy(
            principal.projectId,
            { app: query.app, env: query.env ?? "production", cmd: query.cmd, format: query.format ?? "tar.gz" },
            req.raw,
          );
          reply.code(201);
          return d;
        } catch (err) {
          reply.header("connection", "close");
          throw err;
        }
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/deployments",
      operationId: "listDeployments",
      summary: "Deployments, newest first",
      tags: ["deployments"],
      query: z.object({ app: z.string().optional(), env: z.string().optional() }),
      responses: { 200: { description: "Deployments", schema: z.object({ items: z.array(Deployment) }) } },
      handler: async ({ query, principal }) => ({
        items: await deployments.list(principal.projectId, { ...(query.app ? { app: query.app } : {}), ...(query.env ? { env: query.env } : {}) }),
      }),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/deployments/logs",
      operationId: "deploymentLogs",
      summary: "Output of an app's latest version (or the one that serves, or one by number)",
      description:
        "The latest version is the one that serves, or the last one that failed to start: its output says why. `serving=true` gives the version that serves now (after a failed deploy, the old one), `version=<n>` any version still known.",
      tags: ["deployments"],
      query: AppQuery.extend({
        serving: z.enum(["true", "false"]).optional().meta({ description: "The version that serves now" }),
        version: z.coerce.number().int().min(1).optional().meta({ description: "This version" }),
      }),
      responses: { 200: { description: "Logs", schema: z.object({ deployment: Deployment, stdout: z.string(), stderr: z.string() }) } },
      errors: ["DEPLOYMENT_NOT_FOUND"],
      handler: async ({ query, principal }) =>
        deployments.logs(principal.projectId, query.app, query.env ?? "production", {
          serving: query.serving === "true",
          ...(query.version !== undefined ? { version: query.version } : {}),
        }),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/deployments",
      operationId: "deleteDeployments",
      summary: "Stop an app (one environment or all); its filesystem goes only with deleteFilesystem=true",
      tags: ["deployments"],
      query: AppQuery.extend({ deleteFilesystem: z.enum(["true", "false"]).optional() }),
      responses: { 200: { description: "Stopped", schema: z.object({ deployments: z.int() }) } },
      errors: ["DEPLOYMENT_NOT_FOUND"],
      handler: async ({ query, principal }) => ({
        deployments: await deployments.remove(principal.projectId, query.app, {
          ...(query.env ? { env: query.env } : {}),
          deleteFilesystem: query.deleteFilesystem === "true",
        }),
      }),
    }),
  ];
}
