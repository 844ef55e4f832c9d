import { z } from "zod";
import { WriteFileResult } from "@cairn/protocol";
import { openForRead, parseRange, writeFile } from "../services/files.js";
import type { VolumeService } from "../services/volumes.js";
import { defineRoute, type RouteSpec } from "./route.js";
import { VolumeParams } from "./volume-routes.js";

const PathQuery = z.object({
  path: z.string().meta({ description: "File path inside the volume, e.g. `/hello.txt`", example: "/hello.txt" }),
});

const header = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(", ") : v);

export function fileRoutes(volumes: VolumeService): RouteSpec[] {
  return [
    defineRoute({
      method: "PUT",
      path: "/v1/volumes/{volume}/files/content",
      operationId: "writeFile",
      summary: "Write a whole file (streamed, atomic)",
      description:
        "The body is streamed into a temp file next to the target and renamed over it, so readers see the old or the new content, never a mix. Missing parent directories are created. A write that does not fit gives 507 QUOTA_EXCEEDED and leaves the old content untouched.",
      tags: ["files"],
      params: VolumeParams,
      query: PathQuery,
      rawBody: { contentType: "application/octet-stream", description: "The file's bytes" },
      headers: {
        "If-Match": "Write only if the file's current ETag matches (compare-and-swap); 412 otherwise",
        "If-None-Match": "`*`: write only if the file does not exist; 412 otherwise",
      },
      responses: {
        201: { description: "Created", schema: WriteFileResult },
        200: { description: "Replaced", schema: WriteFileResult },
      },
      handler: async ({ params, query, req, reply, principal }) => {
        const { volume, lease } = await volumes.lease(principal.projectId, params.volume);
        try {
          const length = req.headers["content-length"];
          const result = await writeFile(lease.path, query.path, req.raw, {
            volumeName: volume.name,
            contentLength: length !== undefined ? Number(length) : undefined,
            ifMatch: header(req.headers["if-match"]),
            ifNoneMatch: header(req.headers["if-none-match"]),
          });
          reply.code(result.created ? 201 : 200).header("etag", result.etag);
          return result;
        } catch (err) {
          // The body may be unread: do not keep the connection for another request.
          reply.header("connection", "close");
          throw err;
        } finally {
          lease.release();
        }
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
      handler: async ({ params, query, req, reply, principal }) => {
        const { lease } = await volumes.lease(principal.projectId, params.volume);
        let file;
        try {
          file = await openForRead(lease.path, query.path);
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
        if (range) reply.header("content-range", `bytes ${start}-${end}/${size}`);
        reply.raw.on("close", () => lease.release());
        if (size === 0) {
          await file.fh.close();
          return reply.send(Buffer.alloc(0));
        }
        const stream = file.fh.createReadStream({ start, end, highWaterMark: 1024 * 1024, autoClose: true });
        return reply.send(stream);
      },
    }),
  ];
}
