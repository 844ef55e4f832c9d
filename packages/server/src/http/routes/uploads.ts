/**
 * tus 1.0 resumable uploads under `/v1/volumes/{volume}/uploads` (see files/tus.ts).
 * Stock tus clients work: give them this endpoint, an `Authorization` header, and the target path
 * as `path` in the upload metadata (or `?path=` on the creation request).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { CairnError, type ErrorCode } from "@cairn/protocol";
import type { FileService } from "../../files/service.js";
import { parseChecksum, parseMetadata, TUS_CHECKSUM_ALGORITHMS, TUS_EXTENSIONS, TUS_VERSION, type UploadInfo } from "../../files/tus.js";
import { header } from "./files.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { LEASE_ERRORS, VolumeParams } from "./volumes.js";

const UploadParams = VolumeParams.extend({
  upload: z.string().min(1).max(64).meta({ description: "Upload id, from the creation's Location" }),
});

const TUS_HEADERS = {
  "Tus-Resumable": `\`${TUS_VERSION}\``,
  "Upload-Length": "Creation: total bytes",
  "Upload-Defer-Length": "Creation: `1` when the length is not known yet (send Upload-Length with a later PATCH)",
  "Upload-Metadata": "Creation: `path <base64>` (the target path), other keys kept as given",
  "Upload-Offset": "PATCH: where this body starts; must equal the upload's offset",
  "Upload-Checksum": `PATCH: \`<${TUS_CHECKSUM_ALGORITHMS.join("|")}> <base64 digest>\` of this body (\`crc32\`: zlib's CRC-32, 4 bytes big-endian); 460 on mismatch, nothing kept. Every tus answer lists the algorithms in Tus-Checksum-Algorithm`,
};

/** Every tus answer: a Tus-Resumable other than ours is 412 (checkVersion); the volume is leased for the work. */
const TUS_ERRORS: ErrorCode[] = ["PRECONDITION_FAILED", ...LEASE_ERRORS];

/** Bytes arriving (a PATCH, or a creation with a body): past Upload-Length, not matching Upload-Checksum, not fitting. */
const RECEIVE_ERRORS: ErrorCode[] = ["PAYLOAD_TOO_LARGE", "CHECKSUM_MISMATCH", "QUOTA_EXCEEDED"];

/** The target path: resolved when the upload starts and again when it completes, where a directory may have taken it. */
const TARGET_ERRORS: ErrorCode[] = ["INVALID_PATH", "PATH_NOT_FOUND", "NOT_A_FILE"];

const UploadStatus = z
  .object({
    id: z.string(),
    path: z.string(),
    length: z.number().nullable(),
    offset: z.number(),
    state: z.enum(["active", "completing", "completed"]),
    expiresAt: z.string(),
  })
  .meta({ id: "UploadStatus" });

/** On every tus answer. tus says Tus-Checksum-Algorithm in an OPTIONS answer; here a client learns it from its POST or HEAD. */
function tusHeaders(reply: FastifyReply): void {
  reply.header("tus-resumable", TUS_VERSION).header("cache-control", "no-store").header("tus-checksum-algorithm", TUS_CHECKSUM_ALGORITHMS.join(","));
}

function checkVersion(req: FastifyRequest, reply: FastifyReply): void {
  tusHeaders(reply);
  const v = header(req.headers["tus-resumable"]);
  if (v !== undefined && v !== TUS_VERSION) {
    reply.header("tus-version", TUS_VERSION);
    throw new CairnError("PRECONDITION_FAILED", `This server speaks tus ${TUS_VERSION}, not ${v}`);
  }
}

function intHeader(req: FastifyRequest, name: string): number | undefined {
  const v = header(req.headers[name]);
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v.trim())) throw new CairnError("INVALID_REQUEST", `${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function statusHeaders(reply: FastifyReply, info: UploadInfo): void {
  reply.header("upload-offset", String(info.offset)).header("upload-expires", new Date(info.expiresAt).toUTCString());
  if (info.length === null) reply.header("upload-defer-length", "1");
  else reply.header("upload-length", String(info.length));
  if (info.metadata) reply.header("upload-metadata", info.metadata);
}

/** A body cut by the client is not an error worth an answer (nobody is listening) or a stack trace. */
function cutByClient(req: FastifyRequest, err: unknown): boolean {
  return !(err instanceof CairnError) && (req.raw.destroyed || (req.raw as { aborted?: boolean }).aborted === true);
}

const isUploadBody = (req: FastifyRequest) => (header(req.headers["content-type"]) ?? "").split(";")[0]!.trim() === "application/offset+octet-stream";

export function uploadRoutes(files: FileService): RouteSpec[] {
  return [
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/uploads",
      operationId: "createUpload",
      summary: "Start a resumable upload (tus 1.0 creation; a body here is the first chunk)",
      description: `tus extensions: ${TUS_EXTENSIONS}. The bytes are kept in the volume (they count against its size) until the upload completes; then the file appears at its path atomically. Unfinished uploads expire 24 h after their last PATCH.`,
      tags: ["uploads"],
      params: VolumeParams,
      query: z.object({ path: z.string().optional().meta({ description: "Target path, instead of `path` in Upload-Metadata" }) }),
      headers: TUS_HEADERS,
      rawBody: { contentType: "application/offset+octet-stream", description: "Optional: the first bytes of the upload" },
      responses: { 201: { description: "Created; Location is the upload's URL" } },
      errors: [...TUS_ERRORS, ...RECEIVE_ERRORS, ...TARGET_ERRORS, "INVALID_REQUEST"],
      handler: async ({ params, query, req, reply, principal }) => {
        checkVersion(req, reply);
        reply.header("tus-extension", TUS_EXTENSIONS);
        try {
          const length = intHeader(req, "upload-length");
          const defer = header(req.headers["upload-defer-length"]);
          if (length === undefined && defer !== "1") {
            throw new CairnError("INVALID_REQUEST", "Give Upload-Length, or Upload-Defer-Length: 1 when the length is not known yet");
          }
          const metadata = header(req.headers["upload-metadata"]) ?? "";
          const meta = parseMetadata(metadata);
          const path = query.path ?? meta.path;
          if (!path) {
            throw new CairnError("INVALID_PATH", "Say where the file goes: `path` in Upload-Metadata (base64), or ?path= on this request");
          }
          const hasBody = isUploadBody(req) && header(req.headers["content-length"]) !== "0";
          return await files.withVolume(principal.projectId, params.volume, async ({ root, volume }) => {
            let info = await files.uploads.create(root, volume.id, { path, length: length ?? null, metadata, volumeName: volume.name });
            reply.code(201).header("location", `/v1/volumes/${volume.id}/uploads/${info.id}`);
            if (hasBody) {
              info = await files.uploads.patch(root, volume.id, info.id, {
                offset: 0,
                checksum: parseChecksum(header(req.headers["upload-checksum"])),
                body: req.raw,
                volumeName: volume.name,
              });
            }
            statusHeaders(reply, info);
            return undefined;
          });
        } catch (err) {
          if (cutByClient(req, err)) {
            reply.hijack();
            reply.raw.destroy();
            return undefined;
          }
          throw err;
        }
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/uploads/{upload}",
      operationId: "getUpload",
      summary: "The upload's offset (tus HEAD; GET also returns it as JSON)",
      tags: ["uploads"],
      params: UploadParams,
      headers: { "Tus-Resumable": TUS_HEADERS["Tus-Resumable"] },
      responses: { 200: { description: "Upload-Offset and Upload-Length headers", schema: UploadStatus } },
      errors: TUS_ERRORS,
      handler: async ({ params, req, reply, principal }) => {
        checkVersion(req, reply);
        return files.withVolume(principal.projectId, params.volume, async ({ root, volume }) => {
          const info = await files.uploads.head(root, volume.id, params.upload, volume.name);
          statusHeaders(reply, info);
          return { id: info.id, path: info.path, length: info.length, offset: info.offset, state: info.state, expiresAt: info.expiresAt };
        });
      },
    }),
    defineRoute({
      method: "PATCH",
      path: "/v1/volumes/{volume}/uploads/{upload}",
      operationId: "patchUpload",
      summary: "Append bytes at Upload-Offset (tus PATCH); fsynced before the new offset is answered",
      tags: ["uploads"],
      params: UploadParams,
      headers: { "Tus-Resumable": TUS_HEADERS["Tus-Resumable"], "Upload-Offset": TUS_HEADERS["Upload-Offset"], "Upload-Checksum": TUS_HEADERS["Upload-Checksum"], "Upload-Length": "With Upload-Defer-Length: the total, once known" },
      rawBody: { contentType: "application/offset+octet-stream", description: "The next bytes" },
      responses: { 204: { description: "Stored; Upload-Offset is the new offset" } },
      errors: [...TUS_ERRORS, ...RECEIVE_ERRORS, ...TARGET_ERRORS, "INVALID_REQUEST", "UNSUPPORTED_MEDIA_TYPE", "UPLOAD_OFFSET_MISMATCH"],
      handler: async ({ params, req, reply, principal }) => {
        checkVersion(req, reply);
        try {
          if (!isUploadBody(req)) throw new CairnError("UNSUPPORTED_MEDIA_TYPE", "A PATCH body must be Content-Type: application/offset+octet-stream");
          const offset = intHeader(req, "upload-offset");
          if (offset === undefined) throw new CairnError("INVALID_REQUEST", "Upload-Offset is required");
          const length = intHeader(req, "upload-length");
          const checksum = parseChecksum(header(req.headers["upload-checksum"]));
          await files.withVolume(principal.projectId, params.volume, async ({ root, volume }) => {
            const info = await files.uploads.patch(root, volume.id, params.upload, { offset, length, checksum, body: req.raw, volumeName: volume.name });
            statusHeaders(reply, info);
          });
          reply.code(204);
          return undefined;
        } catch (err) {
          if (cutByClient(req, err)) {
            reply.hijack();
            reply.raw.destroy();
            return undefined;
          }
          if (err instanceof CairnError && err.code === "UPLOAD_OFFSET_MISMATCH" && typeof err.meta?.offset === "number") {
            reply.header("upload-offset", String(err.meta.offset));
          }
          throw err;
        }
      },
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/volumes/{volume}/uploads/{upload}",
      operationId: "terminateUpload",
      summary: "Abandon an upload and free its space (tus termination)",
      tags: ["uploads"],
      params: UploadParams,
      responses: { 204: { description: "Terminated" } },
      errors: TUS_ERRORS,
      handler: async ({ params, req, reply, principal }) => {
        checkVersion(req, reply);
        await files.withVolume(principal.projectId, params.volume, ({ root, volume }) => files.uploads.terminate(root, volume.id, params.upload));
        reply.code(204);
        return undefined;
      },
    }),
  ];
}
