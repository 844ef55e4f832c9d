/**
 * Routes are declared once, with zod schemas: the same declaration validates requests and
 * produces the OpenAPI document, so the two cannot drift.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { CairnError, type ErrorCode } from "@cairn/protocol";
import type { Principal } from "../auth/service.js";

export interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** For non-JSON bodies, e.g. `application/octet-stream`. */
  contentType?: string;
}

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  req: FastifyRequest;
  reply: FastifyReply;
  principal: Principal;
}

export interface RouteSpec<P = unknown, Q = unknown, B = unknown> {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** OpenAPI-style path: `/v1/volumes/{volume}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Default true. Health, the OpenAPI document and signed URLs are the only public routes. */
  auth?: boolean;
  adminOnly?: boolean;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Largest JSON body this route takes, over the app's 1 MiB default (e.g. a batch of files). */
  bodyLimit?: number;
  /** A streamed, unparsed body (file content); the handler reads `req.raw`. */
  rawBody?: { contentType: string; description: string };
  /** Error codes for bad fields of this route, over the defaults (e.g. `name` of a checkpoint). */
  fieldCodes?: Record<string, ErrorCode>;
  /** Extra request headers worth documenting. */
  headers?: Record<string, string>;
  responses: Record<number, ResponseSpec>;
  /**
   * The problem codes the handler's own work can answer with (a full volume, a busy one, a missing
   * path), over those the declaration already implies: route-errors.ts derives those from `auth`,
   * `adminOnly`, the schemas, the path's parameters and the method.
   */
  errors?: ErrorCode[];
  handler: (ctx: RouteContext<P, Q, B>) => Promise<unknown>;
}

export function defineRoute<P, Q, B>(spec: RouteSpec<P, Q, B>): RouteSpec {
  return spec as unknown as RouteSpec;
}

/** Which error code a bad field gets: these fields have codes users switch on. */
const FIELD_CODES: Record<string, ErrorCode> = {
  name: "INVALID_VOLUME_NAME",
  sizeGb: "INVALID_SIZE",
  sizeBytes: "INVALID_SIZE",
  labels: "INVALID_LABEL",
  path: "INVALID_PATH",
};

/** The code of a bad top-level field `key`: the route's own (`fieldCodes`), the default, or INVALID_REQUEST. */
export function fieldCode(key: string, fieldCodes: Record<string, ErrorCode> = {}): ErrorCode {
  if (Object.hasOwn(fieldCodes, key)) return fieldCodes[key]!;
  return Object.hasOwn(FIELD_CODES, key) ? FIELD_CODES[key]! : "INVALID_REQUEST";
}

export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, where: string, fieldCodes: Record<string, ErrorCode> = {}): T {
  // A missing body is an empty object where the schema allows one (e.g. a checkpoint with defaults).
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = issue.path.map(String).join(".");
  const top = String(issue.path[0] ?? "");
  if (where === "body" && value === undefined) {
    throw new CairnError("INVALID_REQUEST", "This request needs a JSON body (Content-Type: application/json)");
  }
  const code = fieldCode(top, fieldCodes);
  const message = code === "INVALID_REQUEST" ? `${where}${field ? `.${field}` : ""}: ${issue.message}` : issue.message;
  throw new CairnError(code, message, { meta: { field: field || where } });
}

export const toFastifyPath = (p: string) => p.replace(/\{(\w+)\}/g, ":$1");

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The route's operation in the OpenAPI document, and the problem codes it declares there. */
    operation?: { operationId: string; errors: ReadonlySet<ErrorCode> };
  }
}

/** `errors`: every problem code the route declares (route-errors.ts), for the error handler to check. */
export function registerRoute(
  app: FastifyInstance,
  spec: RouteSpec,
  authenticate: (req: FastifyRequest) => Promise<Principal>,
  errors: readonly ErrorCode[],
): void {
  app.route({
    method: spec.method,
    url: toFastifyPath(spec.path),
    config: { operation: { operationId: spec.operationId, errors: new Set(errors) } },
    ...(spec.bodyLimit !== undefined ? { bodyLimit: spec.bodyLimit } : {}),
    handler: async (req, reply) => {
      if (spec.rawBody) {
        // A consumer that stops early (a write that hit ENOSPC) must not destroy the body: the
        // error handler drains it, so the client reads the answer instead of a reset.
        const raw = req.raw;
        const iterator = raw.iterator.bind(raw);
        (raw as unknown as { [Symbol.asyncIterator]: () => AsyncIterator<unknown> })[Symbol.asyncIterator] = () =>
          iterator({ destroyOnReturn: false });
      }
      let principal: Principal = { kind: "project", projectId: "", projectName: "" };
      if (spec.auth !== false) {
        principal = await authenticate(req);
        if (spec.adminOnly && principal.kind !== "admin") {
          throw new CairnError("FORBIDDEN", "Only the admin key can do this");
        }
      }
      const params = spec.params ? parseOrThrow(spec.params, req.params, "params") : req.params;
      const query = spec.query ? parseOrThrow(spec.query, req.query, "query") : req.query;
      const body = spec.body ? parseOrThrow(spec.body, req.body, "body", spec.fieldCodes) : undefined;
      const result = await spec.handler({ params, query, body, req, reply, principal });
      // A handler that streamed (`return reply.send(stream)`) is awaited until the stream ends or the
      // client goes away; sending again then would throw ERR_HTTP_HEADERS_SENT outside any handler
      // and take the whole process down.
      if (reply.sent || reply.raw.headersSent) return reply;
      return result === undefined ? reply.send() : reply.send(result);
    },
  });
}
