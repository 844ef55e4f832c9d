import { z } from "zod";
import { ApiKey, ApiKeyInfo, CreateApiKeyRequest, CreateProjectRequest, CreateProjectResult, Project, CairnError } from "@cairn/protocol";
import { newId } from "../../ids.js";
import type { AuthService } from "../../auth/service.js";
import type { MetadataStore } from "../../storage/metadata-store.js";
import { defineRoute, type RouteSpec } from "../route.js";

export function adminRoutes(store: MetadataStore, auth: AuthService): RouteSpec[] {
  const findProject = async (name: string) => {
    const project = await store.projects.byName(name);
    if (!project) throw new CairnError("PROJECT_NOT_FOUND", `Project "${name}" does not exist; \`cairn project list\` shows the projects`);
    return project;
  };
  return [
    defineRoute({
      method: "POST",
      path: "/v1/projects",
      operationId: "createProject",
      summary: "Create a project and its first API key (admin)",
      tags: ["projects"],
      adminOnly: true,
      body: CreateProjectRequest,
      fieldCodes: { name: "INVALID_PROJECT_NAME" },
      responses: { 201: { description: "Created; the key is shown once", schema: CreateProjectResult } },
      errors: ["PROJECT_ALREADY_EXISTS"],
      handler: async ({ body, reply }) => {
        const project = await store.projects.create(newId("prj"), body.name);
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
      handler: async () => ({ items: await store.projects.list() }),
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
      // A key's name is free text: not the volume name's code, which `name` gets by default.
      fieldCodes: { name: "INVALID_REQUEST" },
      responses: { 201: { description: "Created; the key is shown once", schema: ApiKey } },
      handler: async ({ params, body, reply }) => {
        const project = await store.projects.byName(params.project);
        if (!project) throw new CairnError("PROJECT_NOT_FOUND", `Project "${params.project}" does not exist`);
        const key = await auth.createKey(project.id, body.name ?? "key");
        reply.code(201);
        return { ...key, projectId: project.id };
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/projects/{project}/keys",
      operationId: "listApiKeys",
      summary: "List a project's API keys, without their secrets (admin)",
      tags: ["projects"],
      adminOnly: true,
      params: z.object({ project: z.string() }),
      responses: { 200: { description: "The project's keys", schema: z.object({ items: z.array(ApiKeyInfo) }) } },
      handler: async ({ params }) => ({ items: await store.keys.list((await findProject(params.project)).id) }),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/projects/{project}/keys/{key}",
      operationId: "revokeApiKey",
      summary: "Revoke an API key: requests with it are 401 from now on (admin)",
      tags: ["projects"],
      adminOnly: true,
      params: z.object({ project: z.string(), key: z.string() }),
      responses: { 204: { description: "Revoked" } },
      handler: async ({ params, reply }) => {
        const project = await findProject(params.project);
        if (!(await auth.revokeKey(project.id, params.key))) {
          throw new CairnError("API_KEY_NOT_FOUND", `Project "${project.name}" has no key ${params.key}; \`cairn key list ${project.name}\` shows its keys`);
        }
        reply.code(204);
        return undefined;
      },
    }),
  ];
}
