/**
 * Which problem codes a route can answer with: what its declaration already implies (a key, the
 * admin key, validated params, query and body, a JSON body Fastify parses, the resources its path
 * names) plus the codes of its own work (`errors`). The OpenAPI document lists them per operation,
 * and with CAIRN_CHECK_ERROR_CODES the error handler reports any other code a route answers with,
 * so the list is kept true by every test that provokes an error.
 */
import { z } from "zod";
import { ERROR_CODES, type ErrorCode } from "@cairn/protocol";
import { fieldCode, type RouteSpec } from "./route.js";

/** The log message of a problem whose code the route does not declare (CAIRN_CHECK_ERROR_CODES). */
export const UNDECLARED_ERROR_CODE = "undeclared error code";

/** What the error handler reports about such a problem. */
export interface UndeclaredError {
  operationId: string;
  code: ErrorCode;
  method: string;
  url: string;
  requestId: string;
}

/** What authenticate() refuses: no or a wrong key, a project key naming another project, the admin key naming no project. */
const AUTH_ERRORS: ErrorCode[] = ["UNAUTHORIZED", "FORBIDDEN", "PROJECT_NOT_FOUND"];

/** What app.ts makes of a body Fastify could not parse: not JSON, another content type, over the route's limit. */
const BODY_ERRORS: ErrorCode[] = ["INVALID_REQUEST", "UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE"];

/** Fastify parses a body on these methods, whether the route takes one or not (streamed routes excepted). */
const PARSED_BODY_METHODS = new Set<RouteSpec["method"]>(["POST", "PUT", "PATCH", "DELETE"]);

/** A resource a path parameter names, which may not exist. */
const PARAM_CODES: Record<string, ErrorCode> = {
  volume: "VOLUME_NOT_FOUND",
  checkpoint: "CHECKPOINT_NOT_FOUND",
  sandbox: "SANDBOX_NOT_FOUND",
  process: "PROCESS_NOT_FOUND",
  upload: "UPLOAD_NOT_FOUND",
  project: "PROJECT_NOT_FOUND",
  key: "API_KEY_NOT_FOUND",
};

/** The top-level fields of an object schema (an optional body included): parseOrThrow names the first bad one. */
function fieldsOf(schema: z.ZodType): string[] {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** Every problem code `spec` can answer with, in the order of the error table. */
export function declaredErrors(spec: RouteSpec): ErrorCode[] {
  const codes = new Set<ErrorCode>(["INTERNAL"]);
  const add = (list: readonly ErrorCode[]) => list.forEach((c) => codes.add(c));
  if (spec.auth !== false) add(AUTH_ERRORS);
  if (spec.adminOnly) add(["FORBIDDEN"]);
  if (!spec.rawBody && PARSED_BODY_METHODS.has(spec.method)) add(BODY_ERRORS);
  // parseOrThrow: INVALID_REQUEST for a missing body or a bad value at the top, else the field's code.
  for (const [schema, own] of [[spec.params, {}], [spec.query, {}], [spec.body, spec.fieldCodes]] as const) {
    if (!schema) continue;
    add(["INVALID_REQUEST", ...fieldsOf(schema).map((f) => fieldCode(f, own))]);
  }
  for (const [, name] of spec.path.matchAll(/\{(\w+)\}/g)) {
    const code = PARAM_CODES[name!];
    if (code) codes.add(code);
  }
  add(spec.errors ?? []);
  return (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => codes.has(c));
}
