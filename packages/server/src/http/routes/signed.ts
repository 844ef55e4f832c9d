/**
 * Signed URLs (made by `POST /v1/volumes/{volume}/files/sign`): no API key, the signature is the
 * authorisation, for exactly one volume, path and method, until it expires. These routes verify
 * the HMAC themselves before touching anything.
 */
import { z } from "zod";
import { WriteFileResult, type ErrorCode } from "@cairn/protocol";
import type { FileService } from "../../files/service.js";
import { receiveFile, sendFile } from "./files.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { LEASE_ERRORS } from "./volumes.js";

/** A signature that does not verify (altered, incomplete, expired) is 403; then the file work of the keyed routes. */
const SIGNED_ERRORS: ErrorCode[] = ["FORBIDDEN", ...LEASE_ERRORS, "INVALID_PATH", "PATH_NOT_FOUND", "NOT_A_FILE"];

const SignedParams = z.object({ volume: z.string().min(1).max(128).meta({ description: "Volume id" }) });
// All optional here: an incomplete URL is refused by the signature check (403), like any altered one.
const SignedQuery = z.object({
  path: z.string().optional(),
  method: z.string().optional(),
  expires: z.string().optional().meta({ description: "Unix seconds" }),
  signature: z.string().optional(),
});

export function signedRoutes(files: FileService): RouteSpec[] {
  return [
    defineRoute({
      method: "GET",
      path: "/v1/signed/volumes/{volume}/files/content",
      operationId: "readSignedFile",
      summary: "Download a file with a signed URL (no key)",
      tags: ["signed"],
      auth: false,
      params: SignedParams,
      query: SignedQuery,
      headers: { Range: "`bytes=start-end` for a partial read" },
      responses: { 200: { description: "The file", contentType: "application/octet-stream" } },
      errors: [...SIGNED_ERRORS, "INVALID_RANGE"],
      handler: async ({ params, req, reply }) => {
        const { path } = files.signer.verify({ method: req.method, volumeId: params.volume, query: req.query as Record<string, unknown> });
        const projectId = await files.projectOf(params.volume);
        const { ctx, lease } = await files.acquire(projectId, params.volume);
        const name = path.slice(path.lastIndexOf("/") + 1).replace(/["\\\r\n]/g, "_");
        return sendFile(req, reply, ctx.root, path, lease, { "content-disposition": `inline; filename="${name}"`, "cache-control": "private, no-store" });
      },
    }),
    defineRoute({
      method: "PUT",
      path: "/v1/signed/volumes/{volume}/files/content",
      operationId: "writeSignedFile",
      summary: "Upload a file with a signed URL (no key); atomic, as the authenticated PUT",
      tags: ["signed"],
      auth: false,
      params: SignedParams,
      query: SignedQuery,
      rawBody: { contentType: "application/octet-stream", description: "The file's bytes" },
      headers: { "If-Match": "Compare-and-swap on the ETag", "If-None-Match": "`*`: only if the file does not exist" },
      responses: { 201: { description: "Created", schema: WriteFileResult }, 200: { description: "Replaced", schema: WriteFileResult } },
      errors: [...SIGNED_ERRORS, "PRECONDITION_FAILED", "QUOTA_EXCEEDED"],
      handler: async ({ params, req, reply }) => {
        const { path } = files.signer.verify({ method: req.method, volumeId: params.volume, query: req.query as Record<string, unknown> });
        const projectId = await files.projectOf(params.volume);
        return files.withVolume(projectId, params.volume, (ctx) => receiveFile(req, reply, ctx, path));
      },
    }),
  ];
}
