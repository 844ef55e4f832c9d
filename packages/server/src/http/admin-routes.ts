import { z } from "zod";
import { ApiKey, CreateApiKeyRequest, CreateProjectRequest, CreateProjectResult, Project, CairnError } from "@cairn/protocol";
import { newId } from "../ids.js";
import type { AuthService } from "../services/auth.js";
import type { MetadataStore } from "../storage/metadata-store.js";
import { defineRoute, type RouteSpec } from "./route.js";

export function adminRoutes(store: MetadataStore, auth: AuthService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/projects",
      operationId: "createProject",
      summary: "Create a project and its first API key (admin)",
      tags: ["projects"],
      adminOnly: true,
      body: CreateProjectRequest,
      responses: { 201: { description: "Created; the key is shown once", schema: CreateProjectResult } },
      handler: async ({ body, reply }) => {
        const project = await store.createProject(newId("prj"), body.name);
        const key = await auth.createKey(project.id, "default");
        reply.code(201);
        return { project, apiKey: { ...key, projectId: project.id } };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/projects",
      operationId: "listProjects",
      summary: "List projects (admin)",
      tags: ["projects"],
      adminOnly: true,
      responses: { 200: { description: "All projects", schema: z.object({ items: z.array(Project) }) } },
      handler: async () => ({ items: await store.listProjects() }),
    }),
    defineRoute({
      method: "POST",
      path: "/v1/projects/{project}/keys",
      operationId: "createApiKey",
      summary: "Create another API key for a project (admin)",
      tags: ["projects"],
      adminOnly: true,
      params: z.object({ project: z.string() }),
      body: CreateApiKeyRequest,
      responses: { 201: { description: "Created; the key is shown once", schema: ApiKey } },
      handler: async ({ params, body, reply }) => {
        const project = await store.getProjectByName(params.project);
        if (!project) throw new CairnError("PROJECT_NOT_FOUND", `Project "${params.project}" does not exist`);
        const key = await auth.createKey(project.id, body.name ?? "key");
        reply.code(201);
        return { ...key, projectId: project.id };
      },
    }),
  ];
}
