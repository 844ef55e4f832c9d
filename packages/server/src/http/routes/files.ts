/**
 * The file API of a volume, no sandbox needed: content, stat, list, mkdir, move, remove, edit,
 * batch write, search, replace, archives and signed URLs. Every route takes a lease on the volume
 * for exactly as long as it works on it (streamed responses: until the response closes).
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import {
  ArchiveQuery,
  BatchWriteRequest,
  BatchWriteResult,
  CairnError,
  EditRequest,
  EditResult,
  ExtractResult,
  FileEntry,
  FileList,
  ListFilesQuery,
  MkdirRequest,
  MkdirResult,
  MoveRequest,
  RemoveQuery,
  ReplaceRequest,
  ReplaceResult,
  SearchQuery,
  SearchResult,
  SignRequest,
  SignedUrl,
  StatQuery,
  WriteFileResult,
  normalizeVolumePath,
  type ArchiveFormat,
  type ErrorCode,
} from "@cairn/protocol";
import { constants as fsc } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { pumpFile } from "@cairn/blockio";
import { openForRead, parseRange, readSmall, writeFile } from "../../files/core.js";
import { editFile, listFiles, makeDirectory, movePath, removePath, statPath } from "../../files/ops.js";
import { batchWrite } from "../../files/batch.js";
import { ARCHIVE_CONTENT_TYPES, createArchive, extractArchive } from "../../files/archive.js";
import { searchFiles } from "../../files/search.js";
import { replaceInFiles } from "../../files/replace.js";
import type { FileService } from "../../files/service.js";
import type { Lease } from "../../volumes/port.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { LEASE_ERRORS, VolumeParams } from "./volumes.js";

/** Work on a path in a volume: leasing the volume, then resolving the path inside it (files/core.ts resolvePath). */
const PATH_ERRORS: ErrorCode[] = [...LEASE_ERRORS, "INVALID_PATH", "PATH_NOT_FOUND"];

const PathQuery = z.object({
  path: z.string().meta({ description: "File path inside the volume, e.g. `/hello.txt`", example: "/hello.txt" }),
});

/** Whole files up to this size are read in one go rather than streamed. */
const SMALL_FILE_BYTES = 64 * 1024;
/** Responses from this size up read what is not in the page cache with O_DIRECT (file-reader.ts). */
const DIRECT_READ_FROM = 4 * 1024 * 1024;

export const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(", ") : v);

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function clientGone(req: FastifyRequest, reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
  req.raw.on("aborted", () => ac.abort());
  return ac.signal;
}

/**
 * Stream a regular file (or one `Range` of it) as the response. Takes over `lease`: it is
 * released when the response closes, whatever happens.
 */
export async function sendFile(req: FastifyRequest, reply: FastifyReply, root: string, path: string, lease: Lease, extraHeaders: Record<string, string> = {}) {
  // A small file whole is read in one go (most reads are of small files): no handle, no pump.
  if (req.method === "GET" && req.headers.range === undefined) {
    let small;
    try {
      small = await readSmall(root, path, SMALL_FILE_BYTES);
    } catch (err) {
      lease.release();
      throw err;
    }
    if (small) {
      lease.release();
      reply
        .code(200)
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("etag", small.etag)
        .header("last-modified", small.stat.mtime.toUTCString());
      for (const [k, v] of Object.entries(extraHeaders)) reply.header(k, v);
      return reply.send(small.data);
    }
  }
  let file;
  try {
    file = await openForRead(root, path);
  } catch (err) {
    lease.release();
    throw err;
  }
  const size = file.stat.size;
  let range;
  try {
    range = parseRange(header(req.headers.range), size);
  } catch (err) {
    await file.fh.close();
    lease.release();
    reply.header("content-range", `bytes */${size}`);
    throw err;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  reply
    .code(range ? 206 : 200)
    .header("content-type", "application/octet-stream")
    .header("content-length", String(Math.max(0, end - start + 1)))
    .header("accept-ranges", "bytes")
    .header("etag", file.etag)
    .header("last-modified", file.stat.mtime.toUTCString());
  for (const [k, v] of Object.entries(extraHeaders)) reply.header(k, v);
  if (range) reply.header("content-range", `bytes ${start}-${end}/${size}`);
  reply.raw.on("close", () => lease.release());
  if (size === 0 || req.method === "HEAD") {
    await file.fh.close();
    return reply.send(Buffer.alloc(0));
  }
  // The body goes from a few reused buffers straight into the socket, not through a read stream
  // that allocates a buffer per read (file-reader.ts says why). Fastify's onSend hook does not
  // run for a hijacked reply: its one header is set here.
  reply.hijack();
  const res = reply.raw;
  const gone = clientGone(req, reply);
  let direct: FileHandle | undefined;
  try {
    res.writeHead(reply.statusCode, { ...reply.getHeaders(), "x-request-id": req.id } as import("node:http").OutgoingHttpHeaders);
    // Bodies of a block or more read what the page cache lacks with O_DIRECT (file-reader.ts says
    // why): the same open file, reopened through /proc so no path in the volume is resolved twice.
    const length = end - start + 1;
    direct = length >= DIRECT_READ_FROM ? await open(`/proc/self/fd/${file.fh.fd}`, fsc.O_RDONLY | fsc.O_DIRECT).catch(() => undefined) : undefined;
    await pumpFile(file.fh, start, length, res, { signal: gone, direct });
    if (!gone.aborted) res.end();
  } catch (err) {
    // A body cut short must not look complete to the client: end the connection, not the response.
    req.log.warn({ err }, "sending a file failed");
    res.destroy();
  } finally {
    await direct?.close();
    await file.fh.close();
  }
  return reply;
}

/**
 * Write the request body to a file (atomic); the shared part of the PUT routes. A refused body
 * (full volume, failed precondition) is not destroyed: the error handler (app.ts) drains what is
 * left before answering, so the client reads the answer rather than a reset.
 */
export async function receiveFile(
  req: FastifyRequest,
  reply: FastifyReply,
  ctx: { root: string; volume: { name: string }; onWrite: (path: string, created: boolean) => void },
  path: string,
) {
  const length = req.headers["content-length"];
  const result = await writeFile(ctx.root, path, req.raw, {
    volumeName: ctx.volume.name,
    contentLength: length !== undefined ? Number(length) : undefined,
    ifMatch: header(req.headers["if-match"]),
    ifNoneMatch: header(req.headers["if-none-match"]),
    onCommit: ctx.onWrite,
  });
  reply.code(result.created ? 201 : 200).header("etag", result.etag);
  return result;
}

function archiveFormatOf(query: ArchiveFormat | undefined, contentType: string | undefined): ArchiveFormat {
  if (query) return query;
  const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct === "application/gzip" || ct === "application/x-gzip" || ct === "application/x-gtar") return "tar.gz";
  if (ct === "application/zip") return "zip";
  return "tar";
}

export function fileRoutes(files: FileService): RouteSpec[] {
  return [
    defineRoute({
      method: "PUT",
      path: "/v1/volumes/{volume}/files/content",
      operationId: "writeFile",
      summary: "Write a whole file (streamed, atomic)",
      description:
        "The body is streamed into a temp file next to the target and renamed over it, so readers see the old or the new content, never a mix. Missing parent directories are created; a replaced file keeps its mode and owner. A write that does not fit gives 507 QUOTA_EXCEEDED and leaves the old content untouched. Send `Expect: 100-continue` (curl does for large bodies) and a write refused up front (Content-Length over the free space, a failed precondition) is answered before any of the body is sent: cairnd says `100 Continue` only once it starts reading the body.",
      tags: ["files"],
      params: VolumeParams,
      query: PathQuery,
      rawBody: { contentType: "application/octet-stream", description: "The file's bytes" },
      headers: {
        "If-Match": "Write only if the file's current ETag matches (compare-and-swap); 412 otherwise",
        "If-None-Match": "`*`: write only if the file does not exist; 412 otherwise",
        Expect: "`100-continue`: send the body only after `100 Continue`; a refusal comes instead of it",
      },
      responses: {
        201: { description: "Created", schema: WriteFileResult },
        200: { description: "Replaced", schema: WriteFileResult },
      },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "PRECONDITION_FAILED", "QUOTA_EXCEEDED"],
      handler: async ({ params, query, req, reply, principal }) => {
        return files.withVolume(principal.projectId, params.volume, (ctx) => receiveFile(req, reply, ctx, query.path));
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/content",
      operationId: "readFile",
      summary: "Read a whole file, or a byte range of it (streamed)",
      tags: ["files"],
      params: VolumeParams,
      query: PathQuery,
      headers: { Range: "`bytes=start-end` (one range) for a partial read" },
      responses: {
        200: { description: "The file", contentType: "application/octet-stream" },
        206: { description: "The requested range", contentType: "application/octet-stream" },
      },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "INVALID_RANGE"],
      handler: async ({ params, query, req, reply, principal }) => {
        const { ctx, lease } = await files.acquire(principal.projectId, params.volume);
        return sendFile(req, reply, ctx.root, query.path, lease);
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/stat",
      operationId: "statFile",
      summary: "Describe a file, directory or symlink (type, size, mode, mtime, ETag, link target)",
      description: "A final symlink is described itself (`target` holds where it points) unless `follow=true`. 404 PATH_NOT_FOUND when nothing is there (the SDK's `exists`).",
      tags: ["files"],
      params: VolumeParams,
      query: StatQuery,
      responses: { 200: { description: "The entry", schema: FileEntry } },
      errors: [...PATH_ERRORS],
      handler: async ({ params, query, principal }) =>
        files.withVolume(principal.projectId, params.volume, ({ root }) => statPath(root, query.path, { follow: query.follow === true })),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/list",
      operationId: "listFiles",
      summary: "List a directory, page by page (sorted by path; depth first when recursive)",
      description:
        "Pages are at most `limit` entries; pass `nextCursor` as `cursor` for the next. Memory stays bounded however large the directory is (each page is one pass over it). Symlinked directories are listed, not entered. `/.cairn` (in-flight uploads) is hidden.",
      tags: ["files"],
      params: VolumeParams,
      query: ListFilesQuery,
      responses: { 200: { description: "A page of entries", schema: FileList } },
      errors: [...PATH_ERRORS, "NOT_A_DIRECTORY"],
      handler: async ({ params, query, principal }) =>
        files.withVolume(principal.projectId, params.volume, ({ root }) =>
          listFiles(root, { path: query.path, recursive: query.recursive, prefix: query.prefix, limit: query.limit, cursor: query.cursor }),
        ),
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/mkdir",
      operationId: "makeDirectory",
      summary: "Create a directory and any missing parents (mkdir -p)",
      description: "An existing directory is fine (`created: false`); a file in the way is 409 PATH_ALREADY_EXISTS.",
      tags: ["files"],
      params: VolumeParams,
      body: MkdirRequest,
      responses: { 201: { description: "Created", schema: MkdirResult }, 200: { description: "Already there", schema: MkdirResult } },
      errors: [...PATH_ERRORS, "PATH_ALREADY_EXISTS", "NOT_A_DIRECTORY", "QUOTA_EXCEEDED"],
      handler: async ({ params, body, principal, reply }) => {
        const r = await files.withVolume(principal.projectId, params.volume, ({ root }) => makeDirectory(root, body.path, { mode: body.mode }));
        reply.code(r.created ? 201 : 200);
        return r;
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/move",
      operationId: "moveFile",
      summary: "Move or rename a file, symlink or directory",
      description:
        "Atomic (one rename in the volume). `to` is the new path, created parents included. Without `overwrite`, an existing `to` is 409 PATH_ALREADY_EXISTS; with it, a file is replaced, an empty directory too, a non-empty one is 409 DIRECTORY_NOT_EMPTY.",
      tags: ["files"],
      params: VolumeParams,
      body: MoveRequest,
      responses: { 200: { description: "The moved entry at its new path", schema: FileEntry } },
      errors: [...PATH_ERRORS, "PATH_ALREADY_EXISTS", "DIRECTORY_NOT_EMPTY", "QUOTA_EXCEEDED"],
      handler: async ({ params, body, principal }) =>
        files.withVolume(principal.projectId, params.volume, ({ root, volume }) =>
          movePath(root, body.from, body.to, {
            overwrite: body.overwrite,
            onCommit: (from, to) => files.watch.hintMove(volume.id, from, to),
          }),
        ),
    }),
    defineRoute({
      method: "DELETE",
      path: "/v1/volumes/{volume}/files",
      operationId: "removeFile",
      summary: "Remove a file, a symlink (not its target), or a directory (`recursive` when not empty)",
      description: "A recursive remove first moves the tree out of sight in one rename, so nobody sees it half removed.",
      tags: ["files"],
      params: VolumeParams,
      query: RemoveQuery,
      headers: { "If-Match": "Remove the file only if its ETag matches; 412 otherwise" },
      responses: { 204: { description: "Removed" } },
      errors: [...PATH_ERRORS, "DIRECTORY_NOT_EMPTY", "PRECONDITION_FAILED"],
      handler: async ({ params, query, req, reply, principal }) => {
        await files.withVolume(principal.projectId, params.volume, ({ root }) =>
          removePath(root, query.path, { recursive: query.recursive === true, ifMatch: header(req.headers["if-match"]) }),
        );
        reply.code(204);
        return undefined;
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/edit",
      operationId: "editFile",
      summary: "Replace one exact occurrence of a string in a file (or all, with replaceAll)",
      description:
        "409 EDIT_NO_MATCH when `oldString` is absent, 409 EDIT_AMBIGUOUS when it occurs more than once without `replaceAll` (`meta.matches` says how often). The write is atomic and compare-and-swap against the content read: a concurrent change gives 412. Files up to 64 MiB.",
      tags: ["files"],
      params: VolumeParams,
      body: EditRequest,
      responses: { 200: { description: "Edited", schema: EditResult } },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "EDIT_NO_MATCH", "EDIT_AMBIGUOUS", "PRECONDITION_FAILED", "PAYLOAD_TOO_LARGE", "QUOTA_EXCEEDED"],
      handler: async ({ params, body, principal }) =>
        files.withVolume(principal.projectId, params.volume, ({ root, volume, onWrite }) => editFile(root, body, { volumeName: volume.name, onCommit: onWrite })),
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/batch",
      operationId: "batchWrite",
      summary: "Write many files in one request, all or nothing",
      description:
        "Each file is `content` (UTF-8) or `contentBase64`, with optional `mode`, `ifMatch` or `ifNoneMatch: \"*\"`. Everything is staged on the volume first and moved into place only when all of it is written; on any failure (a precondition, a full volume) nothing changes. Body up to 64 MiB; for more, upload a tar archive.",
      tags: ["files"],
      params: VolumeParams,
      body: BatchWriteRequest,
      bodyLimit: 64 * 1024 * 1024,
      responses: { 200: { description: "Written", schema: BatchWriteResult } },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "PATH_ALREADY_EXISTS", "PRECONDITION_FAILED", "QUOTA_EXCEEDED"],
      handler: async ({ params, body, principal }) =>
        files.withVolume(principal.projectId, params.volume, ({ root, volume, onWrite }) => batchWrite(root, body, { volumeName: volume.name, onCommit: onWrite })),
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/search",
      operationId: "searchFiles",
      summary: "Search names by glob, and contents by literal or regex, with line numbers",
      description:
        "Without `query`: entries whose path matches `glob`. With `query`: lines of regular files (matching `glob`, if given) that contain it; binary files, symlinks, devices and fifos are skipped. Regexes are PCRE. Results are capped at `limit` (`truncated: true` beyond).",
      tags: ["files"],
      params: VolumeParams,
      query: SearchQuery,
      responses: { 200: { description: "Matches", schema: SearchResult } },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "INVALID_PATTERN"],
      handler: async ({ params, query, req, reply, principal }) => {
        const signal = clientGone(req, reply);
        return files.withVolume(principal.projectId, params.volume, ({ root }) =>
          searchFiles(root, { path: query.path, glob: query.glob, query: query.query, regex: query.regex, ignoreCase: query.ignoreCase, limit: query.limit }, signal),
        );
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/replace",
      operationId: "replaceInFiles",
      summary: "Replace a literal or regex across files matching a glob (dryRun shows the changes)",
      description:
        "All or nothing across files: new contents are staged and moved into place together, compare-and-swap against what was read. `dryRun: true` changes nothing and lists the changed lines. UTF-8 text files up to 64 MiB; binary files are skipped. Regexes are JavaScript, with a time limit.",
      tags: ["files"],
      params: VolumeParams,
      body: ReplaceRequest,
      responses: { 200: { description: "What changed (or would)", schema: ReplaceResult } },
      errors: [...PATH_ERRORS, "NOT_A_FILE", "INVALID_PATTERN", "PATH_ALREADY_EXISTS", "PRECONDITION_FAILED", "PAYLOAD_TOO_LARGE", "QUOTA_EXCEEDED"],
      handler: async ({ params, body, req, reply, principal }) => {
        const signal = clientGone(req, reply);
        return files.withVolume(principal.projectId, params.volume, ({ root, volume, onWrite }) =>
          replaceInFiles(root, body, { volumeName: volume.name, onCommit: onWrite, signal }),
        );
      },
    }),
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/archive",
      operationId: "downloadArchive",
      summary: "Download a directory as a tar, tar.gz or zip archive (streamed)",
      description:
        "The directory's contents are at the archive's root (a file path gives an archive of that one file). Symlinks are stored as links; modes and mtimes are kept. A failure mid-way breaks the transfer rather than ending it short.",
      tags: ["files"],
      params: VolumeParams,
      query: ArchiveQuery,
      responses: { 200: { description: "The archive", contentType: "application/x-tar" } },
      errors: [...PATH_ERRORS, "NOT_A_FILE"],
      handler: async ({ params, query, reply, principal }) => {
        const format = query.format ?? "tar";
        const { ctx, lease } = await files.acquire(principal.projectId, params.volume);
        let archive;
        try {
          archive = await createArchive(ctx.root, query.path ?? "/", format, ctx.volume.name);
        } catch (err) {
          lease.release();
          throw err;
        }
        reply.raw.on("close", () => {
          archive.stop();
          lease.release();
        });
        reply
          .header("content-type", ARCHIVE_CONTENT_TYPES[format])
          .header("content-disposition", `attachment; filename="${archive.name.replace(/["\\\r\n]/g, "_")}"`);
        return reply.send(archive.stream);
      },
    }),
    defineRoute({
      method: "PUT",
      path: "/v1/volumes/{volume}/files/archive",
      operationId: "uploadArchive",
      summary: "Upload a tar, tar.gz or zip archive and extract it into a directory, all or nothing",
      description:
        "The directory is created if missing, and merged with otherwise (files replaced, directories merged). Nothing is visible until the whole archive is extracted; an archive that does not fit gives 507 and changes nothing. Devices, fifos and sockets in the archive are skipped, setuid/setgid bits cleared, owners not restored. `format` defaults from Content-Type (application/gzip, application/zip), else tar.",
      tags: ["files"],
      params: VolumeParams,
      query: ArchiveQuery,
      rawBody: { contentType: "application/x-tar", description: "The archive" },
      responses: { 200: { description: "Extracted", schema: ExtractResult } },
      errors: [...PATH_ERRORS, "NOT_A_DIRECTORY", "PATH_ALREADY_EXISTS", "INVALID_ARCHIVE", "QUOTA_EXCEEDED"],
      handler: async ({ params, query, req, reply, principal }) => {
        const format = archiveFormatOf(query.format, header(req.headers["content-type"]));
        return files.withVolume(principal.projectId, params.volume, ({ root, volume, onWrite }) =>
          extractArchive(root, query.path ?? "/", format, req.raw, { volumeName: volume.name, onCommit: onWrite }),
        );
      },
    }),
    defineRoute({
      method: "POST",
      path: "/v1/volumes/{volume}/files/sign",
      operationId: "signUrl",
      summary: "A URL for one file and one method (GET or PUT), usable without a key until it expires",
      description: "HMAC-SHA256 over method, volume id, path and expiry. Anyone with the URL can do that one thing; nothing else. Default 15 minutes, at most 7 days.",
      tags: ["files"],
      params: VolumeParams,
      body: SignRequest,
      responses: { 200: { description: "The URL", schema: SignedUrl } },
      errors: ["NOT_A_FILE"],
      handler: async ({ params, body, principal, req }) => {
        const volume = await files.volumes.find(principal.projectId, params.volume);
        const path = normalizeVolumePath(body.path);
        if (path === "/") throw new CairnError("NOT_A_FILE", "A signed URL is for one file; give its path");
        const expires = Math.floor(Date.now() / 1000) + (body.expiresIn ?? 900);
        const method = body.method ?? "GET";
        const pathAndQuery = files.signer.sign({ method, volumeId: volume.id, path, expires });
        return {
          url: `${req.protocol}://${req.host}${pathAndQuery}`,
          pathAndQuery,
          method,
          path,
          expiresAt: new Date(expires * 1000).toISOString(),
        };
      },
    }),
  ];
}
