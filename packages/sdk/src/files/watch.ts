/** `files.watch`: change events as an async iterator that reconnects and resumes from its cursor. */
import { CairnError, normalizeVolumePath, type WatchEvent } from "@cairn/protocol";
import { emptyStream } from "../transport/body.js";
import { backoffMs, delay } from "../transport/retry.js";
import { parseSse } from "../transport/sse.js";
import type { WatchMessage, WatchOptions } from "./types.js";
import type { FileTarget } from "./content.js";

/**
 * Change events under `path` (create, modify, delete, rename), for changes through the API and
 * inside sandboxes. Reconnects by itself and resumes from the last cursor; a `reset` message
 * means events were missed (list again). Stop with the signal or by breaking out of the loop.
 *
 * @example
 * for await (const m of volume.files.watch("/inbox", { signal })) if (m.type === "create") console.log(m.path);
 */
export async function* watch(t: FileTarget, path = "/", options: WatchOptions = {}): AsyncGenerator<WatchMessage> {
  let cursor = options.cursor;
  const reconnect = options.reconnect ?? true;
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await t.http.request({
        method: "GET",
        path: t.base("/watch"),
        query: { path: normalizeVolumePath(path) },
        headers: { accept: "text/event-stream", ...(cursor ? { "last-event-id": cursor } : {}) },
        signal: options.signal,
      });
    } catch (err) {
      if (options.signal?.aborted || !reconnect || (err instanceof CairnError && err.status < 500) || attempt >= 10) throw err;
      await delay(backoffMs(attempt), options.signal);
      continue;
    }
    try {
      for await (const sse of parseSse(res.body ?? emptyStream())) {
        attempt = 0;
        if (sse.id) cursor = sse.id;
        if (sse.event === "ready") yield { type: "ready", cursor: sse.id ?? cursor ?? "" };
        else if (sse.event === "reset") yield { type: "reset", cursor: sse.id ?? "", reason: (JSON.parse(sse.data) as { reason: string }).reason };
        else if (sse.event === "error") {
          const problem = JSON.parse(sse.data) as unknown;
          throw CairnError.fromProblem(problem, 503);
        } else if (sse.event === "message") yield { ...(JSON.parse(sse.data) as WatchEvent), cursor: sse.id ?? "" };
      }
    } catch (err) {
      if (options.signal?.aborted) return;
      if (!reconnect || (err instanceof CairnError && err.code !== "UNAVAILABLE")) throw err;
    } finally {
      await res.body?.cancel().catch(() => undefined);
    }
    if (options.signal?.aborted || !reconnect) return;
    await delay(backoffMs(attempt), options.signal).catch(() => undefined);
    if (options.signal?.aborted) return;
  }
}
