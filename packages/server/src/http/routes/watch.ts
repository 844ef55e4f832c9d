/**
 * `GET /v1/volumes/{volume}/files/watch`: change events as Server-Sent Events. Each event's `id`
 * is its cursor; a reconnecting client (EventSource sends `Last-Event-ID` by itself) gets what it
 * missed while that is retained, else an `event: reset` telling it to list again.
 */
import { CairnError, WatchQuery, normalizeVolumePath } from "@cairn/protocol";
import type { FileService } from "../../files/service.js";
import { header } from "./files.js";
import { defineRoute, type RouteSpec } from "../route.js";
import { LEASE_ERRORS, VolumeParams } from "./volumes.js";

const HEARTBEAT_MS = 15_000;
/** A client this far behind is dropped; it reconnects with its cursor and replays from the ring. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export function watchRoutes(files: FileService): RouteSpec[] {
  return [
    defineRoute({
      method: "GET",
      path: "/v1/volumes/{volume}/files/watch",
      operationId: "watchFiles",
      summary: "Stream change events (create, modify, delete, rename) as Server-Sent Events",
      description:
        "Covers changes through the API and by anything else that has the volume mounted (sandboxes). First comes `event: ready` (its id is the current cursor), then one unnamed event per change with a WatchEvent as `data` and its cursor as `id`. Reconnect with `Last-Event-ID` (or `?cursor=`) to resume; `event: reset` means events were missed (cursor too old, or the server restarted): list again. While watched (and 15 s after), the volume counts as in use.",
      tags: ["files"],
      params: VolumeParams,
      query: WatchQuery,
      headers: { "Last-Event-ID": "Resume after this event (EventSource sends it on reconnect)" },
      responses: { 200: { description: "Server-Sent Events; each change's `data` is `{type: create|modify|delete|rename, path, oldPath?, isDir, at}`", contentType: "text/event-stream" } },
      // Before the stream starts; an error after it is an `event: error` with a problem as its data.
      errors: [...LEASE_ERRORS, "INVALID_PATH"],
      handler: async ({ params, query, req, reply, principal }) => {
        const path = normalizeVolumePath(query.path ?? "/");
        const volume = await files.volumes.find(principal.projectId, params.volume);
        const cursor = query.cursor ?? header(req.headers["last-event-id"]);
        const res = reply.raw;
        const buffered: string[] = [];
        let open = false;
        let ended = false;
        const write = (text: string) => {
          if (ended) return;
          if (!open) {
            buffered.push(text); // replayed events come before the headers are out
            return;
          }
          res.write(text);
          if (res.writableLength > MAX_BUFFERED_BYTES) finish();
        };
        let heartbeat: NodeJS.Timeout | undefined;
        let resetSent = false;
        let unsubscribe = () => {};
        const finish = (error?: CairnError) => {
          if (ended) return;
          if (error && open) res.write(`event: error\ndata: ${JSON.stringify(error.toProblem(req.id))}\n\n`);
          ended = true;
          clearInterval(heartbeat);
          unsubscribe();
          if (open) res.end();
        };
        const sub = await files.watch.subscribe(
          volume.id,
          async () => (await files.volumes.lease(principal.projectId, volume.id)).lease,
          {
            path,
            send: (id, event) => write(`id: ${id}\ndata: ${JSON.stringify(event)}\n\n`),
            reset: (id, reason) => {
              resetSent = true;
              write(`id: ${id}\nevent: reset\ndata: ${JSON.stringify({ reason, cursor: id })}\n\n`);
            },
            end: (error) => finish(error),
          },
          cursor,
        );
        unsubscribe = sub.unsubscribe;
        if (ended) {
          unsubscribe();
          throw new CairnError("UNAVAILABLE", "The watch ended before it started; retry");
        }
        reply.hijack();
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-store",
          "x-accel-buffering": "no",
          "x-request-id": req.id,
        });
        open = true;
        // A resumed watch keeps the client's cursor until the replayed events (sent next) move it on.
        const readyId = cursor && !resetSent ? cursor : sub.cursor;
        res.write(`retry: 1000\nid: ${readyId}\nevent: ready\ndata: ${JSON.stringify({ cursor: sub.cursor, path })}\n\n`);
        for (const text of buffered.splice(0)) res.write(text);
        heartbeat = setInterval(() => res.write(`: keep-alive\n\n`), HEARTBEAT_MS);
        res.on("close", () => finish());
        return undefined;
      },
    }),
  ];
}
