/** The OpenAPI 3.1 document, generated from the route declarations. */
import { z } from "zod";
import { ERROR_CODES, PROBLEM_CONTENT_TYPE, ProblemSchema, type ErrorCode } from "@cairn/protocol";
import type { RouteSpec } from "./route.js";
import { declaredErrors } from "./route-errors.js";

const PROBLEM_REF = { $ref: "#/components/schemas/Problem" };

/**
 * One response per status the operation's codes have: its description lists the codes and their
 * titles, its schema is the Problem with `code` narrowed to them. `allOf` of the shared Problem and
 * the narrowing, rather than keywords beside a `$ref`, because generators that predate OpenAPI 3.1
 * drop those; with `allOf` a TypeScript generator gives `Problem & { code?: "A" | "B" }`.
 */
function errorResponses(codes: ErrorCode[]): [string, unknown][] {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return [...byStatus].map(([status, list]) => [
    String(status),
    {
      description: list.map((c) => `\`${c}\` (${ERROR_CODES[c].title})`).join(", "),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: { allOf: [PROBLEM_REF, { properties: { code: { enum: list } } }] } } },
    },
  ]);
}

export function buildOpenApi(routes: RouteSpec[], version: string): Record<string, unknown> {
  const components: Record<string, unknown> = {};
  /**
   * zod puts named schemas (`.meta({ id })`) in a local `$defs`; in an OpenAPI document those
   * belong in `components.schemas`, so move them there and point the refs at them.
   */
  const jsonSchema = (schema: z.ZodType, io: "input" | "output"): Record<string, unknown> => {
    const js = z.toJSONSchema(schema, { io, target: "draft-2020-12", unrepresentable: "any" }) as Record<string, unknown>;
    const text = JSON.stringify(js).replaceAll('"#/$defs/', '"#/components/schemas/');
    const { $defs, $schema: _, ...rest } = JSON.parse(text) as Record<string, unknown> & { $defs?: Record<string, unknown> };
    for (const [id, def] of Object.entries($defs ?? {})) {
      // Input and output shapes of one schema can differ (defaults); the first seen names it.
      components[id] ??= def;
    }
    return rest;
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const parameters: unknown[] = [];
    for (const [where, schema] of [["path", r.params], ["query", r.query]] as const) {
      if (!schema) continue;
      const js = jsonSchema(schema, "input");
      const props = (js.properties ?? {}) as Record<string, Record<string, unknown>>;
      const required = new Set((js.required as string[] | undefined) ?? []);
      for (const [name, s] of Object.entries(props)) {
        const { description, ...rest } = s;
        parameters.push({ name, in: where, required: where === "path" || required.has(name), description, schema: rest });
      }
    }
    for (const [name, description] of Object.entries(r.headers ?? {})) {
      parameters.push({ name, in: "header", required: false, description, schema: { type: "string" } });
    }
    const op: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      tags: r.tags,
      parameters,
      responses: Object.fromEntries([
        ...Object.entries(r.responses).map(([status, spec]) => [
          status,
          {
            description: spec.description,
            ...(spec.schema
              ? { content: { "application/json": { schema: jsonSchema(spec.schema, "output") } } }
              : spec.contentType
                ? { content: { [spec.contentType]: { schema: { type: "string", format: "binary" } } } }
                : {}),
          },
        ]),
        ...errorResponses(declaredErrors(r)),
        // For generators: what a proxy in front of cairnd may answer. cairnd's own codes are those above.
        ["default", { description: "Any other error", content: { [PROBLEM_CONTENT_TYPE]: { schema: PROBLEM_REF } } }],
      ]),
    };
    if (r.description) op.description = r.description;
    if (r.auth === false) op.security = [];
    if (r.body) op.requestBody = { required: true, content: { "application/json": { schema: jsonSchema(r.body, "input") } } };
    if (r.rawBody) {
      op.requestBody = {
        required: true,
        description: r.rawBody.description,
        content: { [r.rawBody.contentType]: { schema: { type: "string", format: "binary" } } },
      };
    }
    (paths[r.path] ??= {})[r.method.toLowerCase()] = op;
  }
  jsonSchema(ProblemSchema, "output");
  return {
    openapi: "3.1.0",
    info: {
      title: "Cairn",
      version,
      description: "Persistent volumes for sandboxes. Every error is application/problem+json with a stable `code`.",
    },
    // Relative: the cairnd that serves this document (it has no fixed address; see --listen).
    servers: [{ url: "/", description: "The cairnd that serves this document" }],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A project API key, or the admin key" } },
      schemas: components,
    },
  };
}
