import { z } from "zod";
import { ExposedPort, ExposePortRequest } from "@cairn/protocol";
import type { SandboxPorts } from "../../network/ports.js";
import { defineRoute, type RouteSpec } from "../route.js";

const SandboxParams = z.object({ sandbox: z.string().min(1).max(64).meta({ description: "Sandbox id" }) });

export function portRoutes(ports: SandboxPorts): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/sandboxes/{sandbox}/ports",
      operationId: "exposePort",
      summary: "Route a port of the sandbox: a URL that reaches a server listening there",
      description:
        "The URL is `http://<port>-<sandbox>.<domain>:<cairnd's port>/` (domain CAIRN_DEPLOY_DOMAIN), routed by cairnd: HTTP, streaming and websockets, to a server on any address inside the sandbox (loopback included), with or without a network. Private by default: the URL carries the port's token (`?cairn_token=`; a browser then keeps it in a cookie for that host), which is also accepted as a bearer token, as is an API key of the sandbox's project; without one the router answers 401. Neither ever reaches the sandbox. `public: true` needs none. Exposing a port again keeps its token.",
      tags: ["sandboxes"],
      params: SandboxParams,
      body: ExposePortRequest,
      responses: { 201: { description: "Routed", schema: ExposedPort } },
      errors: ["SANDBOX_NOT_RUNNING"],
      handler: async ({ params, body, principal, reply }) => {
        const p = await ports.expose(principal.projectId, params.sandbox, body);
        reply.code(201);
        return p;
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/sandboxes/{sandbox}/ports",
      operationId: "listPorts",
      summary: "The sandbox's routed ports, with their URLs",
      tags: ["sandboxes"],
      params: SandboxParams,
      responses: { 200: { description: "Ports", schema: z.object({ items: z.array(ExposedPort) }) } },
      handler: async ({ params, principal }) => ({ items: await ports.list(principal.projectId, params.sandbox) }),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/sandboxes/{sandbox}/ports/{port}",
      operationId: "unexposePort",
      summary: "Stop routing a port: its URL and token stop working at once",
      tags: ["sandboxes"],
      params: SandboxParams.extend({ port: z.coerce.number().int().min(1).max(65535) }),
      responses: { 200: { description: "No longer routed", schema: ExposedPort } },
      errors: ["PORT_NOT_FOUND"],
      handler: async ({ params, principal }) => ports.unexpose(principal.projectId, params.sandbox, params.port),
    }),
  ];
}
